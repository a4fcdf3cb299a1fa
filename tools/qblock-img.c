/*
 * qblock-img: offline disk image utility with qemu-img's command syntax,
 * messages, output formats and exit codes.
 */
#include "qemu/osdep.h"
#include <getopt.h>
#include "qemu/cutils.h"
#include "qemu/aio.h"
#include "qemu/trace.h"
#include "block/block_int.h"
#include "img-common.h"

#define PROGNAME "qblock-img"

/* Long options shared by most commands (values above any short option). */
enum {
    OPTION_OUTPUT = 256,
    OPTION_BACKING_CHAIN,
    OPTION_IMAGE_OPTS,
    OPTION_OBJECT,
    OPTION_START_OFFSET,
    OPTION_MAX_LENGTH,
    OPTION_SIZE,
    OPTION_SHRINK,
    OPTION_PREALLOCATION,
    OPTION_FORCE,
};

static const char *const size_suffix_hint =
    "Invalid %s specified. You may use k, M, G, T, P or E suffixes for";

void img_error_exit_usage(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_report("%s", msg);
    fprintf(stderr, "Try '" PROGNAME " --help' for more information\n");
    exit(IMG_EXIT_FAILURE);
}

/*
 * Reports the getopt_long() failure for the option just scanned: '?' is an
 * unknown option, ':' one whose argument is missing.
 */
void img_bad_option(int c, char **argv)
{
    if (c == ':') {
        img_error_exit_usage("missing argument for option '%s'",
                             argv[optind - 1]);
    }
    if (optopt && argv[optind - 1][0] == '-' && argv[optind - 1][1] != '-') {
        img_error_exit_usage("unrecognized option '-%c'", optopt);
    }
    img_error_exit_usage("unrecognized option '%s'", argv[optind - 1]);
}


static void invalid_size_exit(const char *what)
{
    error_report(size_suffix_hint, what);
    error_report("kilobytes, megabytes, gigabytes, terabytes, "
                 "petabytes and exabytes.");
    exit(IMG_EXIT_FAILURE);
}

/* Parses a size argument; sizes above INT64_MAX are refused. */
static int64_t cvtnum(const char *what, const char *str)
{
    uint64_t val;

    if (qemu_strtosz(str, NULL, &val) < 0 || val > INT64_MAX) {
        invalid_size_exit(what);
    }
    return val;
}

static OutputFormat parse_output_format(const char *arg)
{
    if (!strcmp(arg, "json")) {
        return OFORMAT_JSON;
    }
    if (!strcmp(arg, "human")) {
        return OFORMAT_HUMAN;
    }
    error_report("--output must be used with human or json as argument.");
    exit(IMG_EXIT_FAILURE);
}

bool img_parse_cache_mode(const char *mode, int *flags)
{
    *flags &= ~(BDRV_O_NOCACHE | BDRV_O_NO_FLUSH);
    if (!strcmp(mode, "none") || !strcmp(mode, "off") ||
        !strcmp(mode, "directsync")) {
        *flags |= BDRV_O_NOCACHE;
    } else if (!strcmp(mode, "unsafe")) {
        *flags |= BDRV_O_NO_FLUSH;
    } else if (strcmp(mode, "writeback") && strcmp(mode, "writethrough")) {
        return false;
    }
    return true;
}

BlockBackend *img_open(bool image_opts, const char *filename,
                       const char *fmt, int flags)
{
    Error *err = NULL;
    QDict *options = NULL;
    BlockBackend *blk;

    if (image_opts) {
        if (fmt) {
            error_report("--image-opts and --format are mutually exclusive");
            return NULL;
        }
        options = keyval_parse(filename, "file", &err);
        if (!options) {
            error_reportf_err(err, "Could not open '%s': ", filename);
            return NULL;
        }
        blk = blk_new_open(NULL, NULL, options, flags, &err);
    } else {
        if (fmt) {
            options = qdict_new();
            qdict_put_str(options, "driver", fmt);
        }
        blk = blk_new_open(filename, NULL, options, flags, &err);
    }
    if (!blk) {
        error_reportf_err(err, "Could not open '%s': ", filename);
    } else if (!image_opts && !fmt && (flags & BDRV_O_RDWR) &&
               !strcmp(bdrv_get_format_name(blk_bs(blk)), "raw")) {
        /* The same warning as qemu-img for writable probed raw images. */
        fprintf(stderr, "WARNING: Image format was not specified for '%s' "
                "and probing guessed raw.\n"
                "         Automatically detecting the format is dangerous "
                "for raw images, write operations on block 0 will be "
                "restricted.\n"
                "         Specify the 'raw' format explicitly to remove the "
                "restrictions.\n", filename);
    }
    return blk;
}

void img_run_co(CoroutineEntry *entry, void *opaque, bool *done)
{
    Coroutine *co = qemu_coroutine_create(entry, opaque);

    qemu_coroutine_enter(co);
    while (!*done) {
        aio_poll(qemu_get_aio_context(), true);
    }
}

/* ---------------------------------------------------------------------
 * Creation options (-o): parsing, validation, help and the summary line.
 */

/* The option lists that apply to @drv: its own, then its protocol's. */
static void create_opt_lists(BlockDriver *drv, bool with_protocol,
                             const CreateOptDesc *lists[2])
{
    BlockDriver *proto = bdrv_find_format("file");

    lists[0] = drv->create_opts;
    lists[1] = (with_protocol && drv->is_format && proto) ?
               proto->create_opts : NULL;
}

/*
 * True if the format option @d only passes through to the protocol (same
 * name and description as the protocol's option): qemu-img lists such
 * options with the protocol's, not with the format's.
 */
static bool create_opt_inherited(const CreateOptDesc *d)
{
    BlockDriver *proto = bdrv_find_format("file");

    if (!proto || !strcmp(d->name, "size")) {
        return false;
    }
    for (const CreateOptDesc *p = proto->create_opts; p && p->name; p++) {
        if (!strcmp(p->name, d->name) && !g_strcmp0(p->help, d->help)) {
            return true;
        }
    }
    return false;
}

static const CreateOptDesc *find_create_opt(const CreateOptDesc *lists[2],
                                            const char *name)
{
    for (int i = 0; i < 2; i++) {
        for (const CreateOptDesc *d = lists[i]; d && d->name; d++) {
            if (!strcmp(d->name, name)) {
                return d;
            }
        }
    }
    return NULL;
}

/* True if the comma-separated option string asks for the option list. */
bool img_opts_want_help(const char *options)
{
    g_auto(GStrv) items = g_strsplit(options, ",", -1);

    for (int i = 0; items[i]; i++) {
        if (!strcmp(items[i], "help") || !strcmp(items[i], "?")) {
            return true;
        }
    }
    return false;
}

/*
 * Parses "key=value,key2=value2" (",," is a literal comma) into flat
 * string members of @opts; a later key overrides an earlier one.
 */
static bool parse_opt_string(const char *str, QDict *opts, Error **errp)
{
    while (*str) {
        GString *key = g_string_new(NULL);
        GString *val = g_string_new(NULL);
        bool has_val = false;

        for (; *str && *str != ',' && *str != '='; str++) {
            g_string_append_c(key, *str);
        }
        if (*str == '=') {
            has_val = true;
            for (str++; *str; str++) {
                if (*str == ',') {
                    if (str[1] != ',') {
                        break;
                    }
                    str++;
                }
                g_string_append_c(val, *str);
            }
        }
        if (*str == ',') {
            str++;
        }
        if (!key->len) {
            error_setg(errp, "Invalid parameter ''");
            g_string_free(key, TRUE);
            g_string_free(val, TRUE);
            return false;
        }
        /* A bare "key" means "key=on", as for QEMU's option strings. */
        qdict_put_str(opts, key->str, has_val ? val->str : "on");
        g_string_free(key, TRUE);
        g_string_free(val, TRUE);
    }
    return true;
}

static bool parse_bool_str(const char *s, bool *value)
{
    if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true") ||
        !strcmp(s, "y")) {
        *value = true;
        return true;
    }
    if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false") ||
        !strcmp(s, "n")) {
        *value = false;
        return true;
    }
    return false;
}

/*
 * Checks every member of @opts against the option descriptions; sizes
 * are replaced by their value in bytes (qemu-img shows them that way).
 */
static bool check_create_opts(QDict *opts, const CreateOptDesc *lists[2],
                              Error **errp)
{
    GList *keys = qdict_keys(opts);
    bool ok = true;

    for (GList *l = keys; l && ok; l = l->next) {
        const char *name = l->data;
        const CreateOptDesc *desc = find_create_opt(lists, name);
        const char *str = qdict_get_try_str(opts, name);
        uint64_t num;
        bool b;

        if (!desc) {
            error_setg(errp, "Invalid parameter '%s'", name);
            ok = false;
        } else if (!str) {
            continue;
        } else if (desc->type == CREATE_OPT_SIZE) {
            if (qemu_strtosz(str, NULL, &num) < 0) {
                error_setg(errp, "Parameter '%s' expects a non-negative "
                           "number below 2^64", name);
                error_append_hint(errp, "Optional suffix k, M, G, T, P or E "
                                  "means kilo-, mega-, giga-, tera-, peta-\n"
                                  "and exabytes, respectively.\n");
                ok = false;
            } else {
                qdict_put_int(opts, name, num);
            }
        } else if (desc->type == CREATE_OPT_NUMBER) {
            if (qemu_strtou64(str, NULL, 0, &num) < 0) {
                error_setg(errp, "Parameter '%s' expects a number", name);
                ok = false;
            }
        } else if (desc->type == CREATE_OPT_BOOL) {
            if (!parse_bool_str(str, &b)) {
                error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
                ok = false;
            }
        }
    }
    g_list_free(keys);
    return ok;
}

static const char *create_opt_type_name(CreateOptType type)
{
    switch (type) {
    case CREATE_OPT_BOOL:
        return "bool (on/off)";
    case CREATE_OPT_NUMBER:
        return "num";
    case CREATE_OPT_SIZE:
        return "size";
    default:
        return "str";
    }
}

static gint compare_desc_names(gconstpointer a, gconstpointer b)
{
    const CreateOptDesc *da = a, *db = b;
    return strcmp(da->name, db->name);
}

/* Prints @lists sorted by name, as qemu-img's "-o help" does. */
static void print_opt_list(const CreateOptDesc *lists[2],
                           const char *const *skip, bool skip_inherited)
{
    GList *all = NULL;

    for (int i = 0; i < 2; i++) {
        for (const CreateOptDesc *d = lists[i]; d && d->name; d++) {
            bool skipped = (skip && g_strv_contains(skip, d->name)) ||
                           (skip_inherited && create_opt_inherited(d));
            bool dup = false;
            for (GList *l = all; l; l = l->next) {
                dup |= !strcmp(((const CreateOptDesc *)l->data)->name,
                               d->name);
            }
            if (!skipped && !dup) {
                all = g_list_prepend(all, (gpointer)d);
            }
        }
    }
    all = g_list_sort(all, compare_desc_names);
    for (GList *l = all; l; l = l->next) {
        const CreateOptDesc *d = l->data;
        g_autofree char *lhs = g_strdup_printf("%s=<%s>", d->name,
                                               create_opt_type_name(d->type));
        printf("  %-22s - %s\n", lhs, d->help ? d->help : "");
    }
    g_list_free(all);
}

int img_print_create_opts_help(const char *fmt, const char *filename)
{
    BlockDriver *drv = bdrv_find_format(fmt);
    const CreateOptDesc *lists[2];

    if (!drv) {
        error_report("Unknown file format '%s'", fmt);
        return IMG_EXIT_FAILURE;
    }
    if (!drv->create_opts) {
        error_report("Format driver '%s' does not support image creation",
                     fmt);
        return IMG_EXIT_FAILURE;
    }
    create_opt_lists(drv, filename != NULL, lists);
    if (filename) {
        printf("Supported options:\n");
    } else {
        printf("Supported %s options:\n", fmt);
    }
    print_opt_list(lists, NULL, filename == NULL);
    if (!filename) {
        printf("\nThe protocol level may support further options.\n"
               "Specify the target filename to include those options.\n");
    }
    return 0;
}

/*
 * qemu-img's "Formatting" line lists the options in the order of QEMU's
 * option tables, not alphabetically; this is that order as observed for
 * qcow2, raw and the file protocol.  Options not listed follow in the
 * driver's order.
 */
static const char *const format_line_order[] = {
    "encryption", "encrypt.format", "encrypt.key-secret",
    "encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.ivgen-alg",
    "encrypt.ivgen-hash-alg", "encrypt.hash-alg", "encrypt.iter-time",
    "cluster_size", "extended_l2", "preallocation", "compression_type",
    "size", "compat", "backing_file", "backing_fmt", "data_file",
    "data_file_raw", "lazy_refcounts", "refcount_bits",
};
static const char *const protocol_line_order[] = {
    "nocow", "preallocation", "extent_size_hint",
};

/* Appends " name=value" for every set or defaulted option of @list. */
static void append_opts_line(GString *line, QDict *opts,
                             const CreateOptDesc *list,
                             const char *const *order, size_t order_len,
                             bool skip_inherited, GHashTable *printed)
{
    g_autoptr(GPtrArray) descs = g_ptr_array_new();

    for (size_t i = 0; i < order_len; i++) {
        for (const CreateOptDesc *d = list; d && d->name; d++) {
            if (!strcmp(d->name, order[i])) {
                g_ptr_array_add(descs, (gpointer)d);
            }
        }
    }
    for (const CreateOptDesc *d = list; d && d->name; d++) {
        if (!g_ptr_array_find(descs, d, NULL)) {
            g_ptr_array_add(descs, (gpointer)d);
        }
    }
    for (guint i = 0; i < descs->len; i++) {
        const CreateOptDesc *d = descs->pdata[i];
        g_autofree char *val = qdict_haskey(opts, d->name) ?
            qdict_get_as_string(opts, d->name) : g_strdup(d->def_value_str);

        if (!val || g_hash_table_contains(printed, d->name) ||
            (skip_inherited && create_opt_inherited(d))) {
            continue;
        }
        g_hash_table_add(printed, (gpointer)d->name);
        g_string_append_printf(line, " %s=%s", d->name, val);
    }
}

static void print_formatting_line(const char *filename, const char *fmt,
                                  QDict *opts, const CreateOptDesc *lists[2])
{
    g_autoptr(GString) line = g_string_new(NULL);
    g_autoptr(GHashTable) printed = g_hash_table_new(g_str_hash,
                                                     g_str_equal);

    g_string_printf(line, "Formatting '%s', fmt=%s", filename, fmt);
    append_opts_line(line, opts, lists[0], format_line_order,
                     ARRAY_SIZE(format_line_order), lists[1] != NULL,
                     printed);
    append_opts_line(line, opts, lists[1], protocol_line_order,
                     ARRAY_SIZE(protocol_line_order), false, printed);
    printf("%s\n", line->str);
    fflush(stdout);
}

/* Builds the creation options from the -o strings; NULL on error. */
QDict *img_build_create_opts(const char *options, BlockDriver *drv,
                                const CreateOptDesc *lists[2], Error **errp)
{
    QDict *opts = qdict_new();

    create_opt_lists(drv, true, lists);
    if (options && (!parse_opt_string(options, opts, errp) ||
                    !check_create_opts(opts, lists, errp))) {
        qobject_unref(opts);
        return NULL;
    }
    return opts;
}

/* Appends "-o" arguments: several -o options are joined with commas. */
static void add_options(char **options, const char *arg)
{
    char *joined = *options ? g_strdup_printf("%s,%s", *options, arg) :
                              g_strdup(arg);
    g_free(*options);
    *options = joined;
}

/* ---------------------------------------------------------------------
 * create
 */

/* Opens the backing file of a new image; returns its length or -1. */
static int64_t probe_backing(const char *filename, const char *backing,
                             const char *backing_fmt, char **detected_fmt,
                             Error **errp)
{
    g_autofree char *path = path_combine(filename, backing);
    QDict *options = NULL;
    BlockBackend *blk;
    int64_t len;

    if (backing_fmt) {
        options = qdict_new();
        qdict_put_str(options, "driver", backing_fmt);
    }
    blk = blk_new_open(path, NULL, options, BDRV_O_NO_BACKING | BDRV_O_NO_IO,
                       errp);
    if (!blk) {
        return -1;
    }
    len = blk_getlength(blk);
    if (detected_fmt) {
        *detected_fmt = g_strdup(bdrv_get_format_name(blk_bs(blk)));
    }
    blk_unref(blk);
    if (len < 0) {
        error_setg_errno(errp, -len, "Could not get the size of '%s'",
                         backing);
    }
    return len;
}

static int img_create(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, OPTION_OBJECT},
        {0, 0, 0, 0}
    };
    const char *fmt = "raw", *base_fmt = NULL, *base = NULL;
    const char *filename;
    g_autofree char *options = NULL;
    const CreateOptDesc *lists[2];
    BlockDriver *drv;
    Error *err = NULL;
    QDict *opts;
    int64_t size = -1;
    bool quiet = false, unsafe = false;
    int c, ret;

    while ((c = getopt_long(argc, argv, ":F:b:f:ho:qu", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'F':
            base_fmt = optarg;
            break;
        case 'b':
            base = optarg;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'h':
            img_help();
            break;
        case 'o':
            add_options(&options, optarg);
            break;
        case 'q':
            quiet = true;
            break;
        case 'u':
            unsafe = true;
            break;
        case OPTION_OBJECT:
            break;
        default:
            img_bad_option(c, argv);
        }
    }

    if (options && img_opts_want_help(options)) {
        return img_print_create_opts_help(fmt, optind < argc ? argv[optind]
                                                         : NULL);
    }
    if (optind >= argc) {
        img_error_exit_usage("Expecting image file name");
    }
    filename = argv[optind++];
    if (optind < argc) {
        size = cvtnum("image size", argv[optind++]);
    }
    if (optind != argc) {
        img_error_exit_usage("Unexpected argument: %s", argv[optind]);
    }

    drv = bdrv_find_format(fmt);
    if (!drv) {
        error_report("%s: Unknown file format '%s'", filename, fmt);
        return IMG_EXIT_FAILURE;
    }
    if (!drv->create_opts) {
        error_report("%s: Format driver '%s' does not support image "
                     "creation", filename, fmt);
        return IMG_EXIT_FAILURE;
    }
    opts = img_build_create_opts(options, drv, lists, &err);
    if (!opts) {
        goto fail;
    }
    if (base) {
        qdict_put_str(opts, "backing_file", base);
    }
    if (base_fmt) {
        qdict_put_str(opts, "backing_fmt", base_fmt);
    }
    base = qdict_get_try_str(opts, "backing_file");
    base_fmt = qdict_get_try_str(opts, "backing_fmt");
    if (base && !*base) {
        base = NULL;
    }
    if (base && !base_fmt) {
        g_autofree char *detected = NULL;
        error_setg(&err, "Backing file specified without backing format");
        if (probe_backing(filename, base, NULL, &detected, NULL) >= 0) {
            /* qemu-img ends this hint without a newline. */
            error_append_hint(&err, "Detected format of %s.", detected);
        }
        goto fail;
    }
    if (size >= 0) {
        qdict_put_int(opts, "size", size);
    }
    /* The backing file is checked unless -u; it gives the default size. */
    if (base && !(unsafe && qdict_haskey(opts, "size"))) {
        int64_t backing_size;
        if (unsafe) {
            error_setg(&err, "Image creation needs a size parameter");
            goto fail;
        }
        backing_size = probe_backing(filename, base, base_fmt, NULL, &err);
        if (backing_size < 0) {
            error_append_hint(&err, "Could not open backing image.\n");
            goto fail;
        }
        if (!qdict_haskey(opts, "size")) {
            qdict_put_int(opts, "size", backing_size);
        }
    }
    if (!qdict_haskey(opts, "size")) {
        error_setg(&err, "Image creation needs a size parameter");
        goto fail;
    }

    if (!quiet) {
        print_formatting_line(filename, fmt, opts, lists);
    }
    ret = bdrv_create(drv, filename, opts, &err);
    qobject_unref(opts);
    if (ret < 0) {
        error_reportf_err(err, "%s: ", filename);
        return IMG_EXIT_FAILURE;
    }
    return 0;

fail:
    if (opts) {
        qobject_unref(opts);
    }
    error_reportf_err(err, "%s: ", filename);
    return IMG_EXIT_FAILURE;
}

/* ---------------------------------------------------------------------
 * info
 */

/* Image information as qemu-img's ImageInfo; caller owns the result. */
static JsonObject *collect_image_info(BlockDriverState *bs, Error **errp)
{
    JsonObject *info = json_object_new();
    BlockDriverInfo bdi = { 0 };
    int64_t size = bdrv_getlength(bs);
    int64_t actual = bdrv_get_allocated_file_size(bs);
    const char *backing = bdrv_get_backing_filename(bs);
    const char *backing_fmt = bdrv_get_backing_format(bs);
    JsonNode *specific;
    Error *err = NULL;

    if (size < 0) {
        error_setg_errno(errp, -size, "Can't get image size '%s'",
                         bdrv_get_filename(bs));
        json_object_unref(info);
        return NULL;
    }
    json_object_set_string_member(info, "filename", bdrv_get_filename(bs));
    json_object_set_string_member(info, "format", bdrv_get_format_name(bs));
    json_object_set_int_member(info, "virtual-size", size);
    if (actual >= 0) {
        json_object_set_int_member(info, "actual-size", actual);
    }
    if (bdrv_get_info(bs, &bdi) >= 0 && bdi.cluster_size > 0) {
        json_object_set_int_member(info, "cluster-size", bdi.cluster_size);
    }
    json_object_set_boolean_member(info, "dirty-flag", bdi.is_dirty);
    if (backing && *backing) {
        g_autofree char *full = bdrv_get_full_backing_filename(bs, NULL);
        json_object_set_string_member(info, "backing-filename", backing);
        if (full) {
            json_object_set_string_member(info, "full-backing-filename",
                                          full);
        }
        if (backing_fmt && *backing_fmt) {
            json_object_set_string_member(info, "backing-filename-format",
                                          backing_fmt);
        }
    }
    specific = bdrv_get_specific_info(bs, &err);
    if (err) {
        error_propagate(errp, err);
        json_object_unref(info);
        return NULL;
    }
    if (specific) {
        json_object_set_member(info, "format-specific", specific);
    }
    return info;
}

static void dump_image_info_human(JsonObject *info)
{
    const char *backing, *full;
    g_autofree char *vsize = size_to_str(
        json_object_get_int_member(info, "virtual-size"));

    printf("image: %s\n", json_object_get_string_member(info, "filename"));
    printf("file format: %s\n", json_object_get_string_member(info, "format"));
    printf("virtual size: %s (%" PRId64 " bytes)\n", vsize,
           json_object_get_int_member(info, "virtual-size"));
    if (json_object_has_member(info, "actual-size")) {
        g_autofree char *dsize = size_to_str(
            json_object_get_int_member(info, "actual-size"));
        printf("disk size: %s\n", dsize);
    } else {
        printf("disk size: unavailable\n");
    }
    if (json_object_has_member(info, "cluster-size")) {
        printf("cluster_size: %" PRId64 "\n",
               json_object_get_int_member(info, "cluster-size"));
    }
    if (json_object_get_boolean_member(info, "dirty-flag")) {
        printf("cleanly shut down: no\n");
    }
    if (json_object_has_member(info, "backing-filename")) {
        backing = json_object_get_string_member(info, "backing-filename");
        full = json_object_has_member(info, "full-backing-filename") ?
            json_object_get_string_member(info, "full-backing-filename") :
            backing;
        printf("backing file: %s", backing);
        if (strcmp(backing, full)) {
            printf(" (actual path: %s)", full);
        }
        printf("\n");
    }
    if (json_object_has_member(info, "backing-filename-format")) {
        printf("backing file format: %s\n",
               json_object_get_string_member(info,
                                             "backing-filename-format"));
    }
    if (json_object_has_member(info, "format-specific")) {
        JsonObject *spec = json_object_get_object_member(info,
                                                         "format-specific");
        if (json_object_has_member(spec, "data")) {
            printf("Format specific information:\n");
            img_dump_human(stdout, json_object_get_member(spec, "data"), 4);
        }
    }
}

static int img_info(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"format", required_argument, 0, 'f'},
        {"output", required_argument, 0, OPTION_OUTPUT},
        {"backing-chain", no_argument, 0, OPTION_BACKING_CHAIN},
        {"object", required_argument, 0, OPTION_OBJECT},
        {"image-opts", no_argument, 0, OPTION_IMAGE_OPTS},
        {"force-share", no_argument, 0, 'U'},
        {0, 0, 0, 0}
    };
    OutputFormat ofmt = OFORMAT_HUMAN;
    bool chain = false, image_opts = false;
    g_autofree char *fmt = NULL, *filename = NULL;
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash,
                                                       g_str_equal,
                                                       g_free, NULL);
    JsonArray *list = json_array_new();
    JsonNode *root;
    int c, ret = 0;

    while ((c = getopt_long(argc, argv, ":f:hU", long_options, NULL)) != -1) {
        switch (c) {
        case 'f':
            g_free(fmt);
            fmt = g_strdup(optarg);
            break;
        case 'h':
            img_help();
            break;
        case 'U':
        case OPTION_OBJECT:
            break;
        case OPTION_OUTPUT:
            ofmt = parse_output_format(optarg);
            break;
        case OPTION_BACKING_CHAIN:
            chain = true;
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        default:
            img_bad_option(c, argv);
        }
    }
    if (optind != argc - 1) {
        img_error_exit_usage("Expecting one image file name");
    }
    filename = g_strdup(argv[optind]);

    /* Each image is opened alone; --backing-chain follows the headers. */
    while (filename) {
        BlockBackend *blk;
        JsonObject *info;
        Error *err = NULL;

        if (!g_hash_table_add(seen, g_strdup(filename))) {
            error_report("Backing file '%s' creates an infinite loop.",
                         filename);
            ret = IMG_EXIT_FAILURE;
            break;
        }
        blk = img_open(image_opts, filename, fmt,
                       BDRV_O_NO_BACKING | BDRV_O_NO_IO);
        if (!blk) {
            ret = IMG_EXIT_FAILURE;
            break;
        }
        info = collect_image_info(blk_bs(blk), &err);
        blk_unref(blk);
        if (!info) {
            error_report_err(err);
            ret = IMG_EXIT_FAILURE;
            break;
        }
        json_array_add_object_element(list, info);

        g_clear_pointer(&filename, g_free);
        g_clear_pointer(&fmt, g_free);
        image_opts = false;
        if (chain && json_object_has_member(info, "backing-filename")) {
            filename = g_strdup(json_object_has_member(info,
                                    "full-backing-filename") ?
                json_object_get_string_member(info, "full-backing-filename") :
                json_object_get_string_member(info, "backing-filename"));
            if (json_object_has_member(info, "backing-filename-format")) {
                fmt = g_strdup(json_object_get_string_member(
                                   info, "backing-filename-format"));
            }
        }
    }

    if (ret == 0) {
        /* The node takes its own reference on the list. */
        root = json_node_init_array(json_node_alloc(), list);
        if (ofmt == OFORMAT_JSON) {
            img_json_print(stdout, chain ? root :
                           json_array_get_element(list, 0));
            printf("\n");
        } else {
            for (guint i = 0; i < json_array_get_length(list); i++) {
                if (i > 0) {
                    printf("\n");
                }
                dump_image_info_human(json_array_get_object_element(list, i));
            }
        }
        json_node_unref(root);
    }
    json_array_unref(list);
    return ret;
}

/* ---------------------------------------------------------------------
 * check
 */

static void dump_check_human(BdrvCheckResult *r)
{
    if (r->corruptions_fixed || r->leaks_fixed) {
        printf("The following inconsistencies were found and repaired:\n\n"
               "    %d leaked clusters\n"
               "    %d corruptions\n\n"
               "Double checking the fixed image now...\n",
               r->leaks_fixed, r->corruptions_fixed);
    }
    if (!r->corruptions && !r->leaks && !r->check_errors) {
        printf("No errors were found on the image.\n");
    } else {
        if (r->corruptions) {
            printf("\n%d errors were found on the image.\n"
                   "Data may be corrupted, or further writes to the image "
                   "may corrupt it.\n", r->corruptions);
        }
        if (r->leaks) {
            printf("\n%d leaked clusters were found on the image.\n"
                   "This means waste of disk space, but no harm to data.\n",
                   r->leaks);
        }
        if (r->check_errors) {
            printf("\n%d internal errors have occurred during the check.\n",
                   r->check_errors);
        }
    }
    if (r->bfi.total_clusters != 0 && r->bfi.allocated_clusters != 0) {
        printf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, "
               "%0.2f%% fragmented, %0.2f%% compressed clusters\n",
               r->bfi.allocated_clusters, r->bfi.total_clusters,
               r->bfi.allocated_clusters * 100.0 / r->bfi.total_clusters,
               r->bfi.fragmented_clusters * 100.0 /
               r->bfi.allocated_clusters,
               r->bfi.compressed_clusters * 100.0 /
               r->bfi.allocated_clusters);
    }
    if (r->image_end_offset > 0) {
        printf("Image end offset: %" PRId64 "\n", r->image_end_offset);
    }
}

static void dump_check_json(BlockDriverState *bs, BdrvCheckResult *r)
{
    JsonObject *o = json_object_new();
    JsonNode *root;

    json_object_set_string_member(o, "filename", bdrv_get_filename(bs));
    json_object_set_string_member(o, "format", bdrv_get_format_name(bs));
    json_object_set_int_member(o, "check-errors", r->check_errors);
    /* Like qemu-img, zero counters other than check-errors are omitted. */
    if (r->image_end_offset) {
        json_object_set_int_member(o, "image-end-offset",
                                   r->image_end_offset);
    }
    if (r->corruptions) {
        json_object_set_int_member(o, "corruptions", r->corruptions);
    }
    if (r->leaks) {
        json_object_set_int_member(o, "leaks", r->leaks);
    }
    if (r->corruptions_fixed) {
        json_object_set_int_member(o, "corruptions-fixed",
                                   r->corruptions_fixed);
    }
    if (r->leaks_fixed) {
        json_object_set_int_member(o, "leaks-fixed", r->leaks_fixed);
    }
    if (r->bfi.total_clusters) {
        json_object_set_int_member(o, "total-clusters",
                                   r->bfi.total_clusters);
    }
    if (r->bfi.allocated_clusters) {
        json_object_set_int_member(o, "allocated-clusters",
                                   r->bfi.allocated_clusters);
    }
    if (r->bfi.fragmented_clusters) {
        json_object_set_int_member(o, "fragmented-clusters",
                                   r->bfi.fragmented_clusters);
    }
    if (r->bfi.compressed_clusters) {
        json_object_set_int_member(o, "compressed-clusters",
                                   r->bfi.compressed_clusters);
    }
    root = json_node_init_object(json_node_alloc(), o);
    img_json_print(stdout, root);
    printf("\n");
    json_node_unref(root);
    json_object_unref(o);
}

static int img_check(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"format", required_argument, 0, 'f'},
        {"repair", required_argument, 0, 'r'},
        {"output", required_argument, 0, OPTION_OUTPUT},
        {"object", required_argument, 0, OPTION_OBJECT},
        {"image-opts", no_argument, 0, OPTION_IMAGE_OPTS},
        {"force-share", no_argument, 0, 'U'},
        {0, 0, 0, 0}
    };
    OutputFormat ofmt = OFORMAT_HUMAN;
    const char *fmt = NULL;
    bool quiet = false, image_opts = false;
    int flags = BDRV_O_CHECK, fix = 0;
    BdrvCheckResult result = { 0 };
    BlockBackend *blk;
    BlockDriverState *bs;
    int c, ret;

    while ((c = getopt_long(argc, argv, ":hf:r:T:qU", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'h':
            img_help();
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'r':
            flags |= BDRV_O_RDWR;
            if (!strcmp(optarg, "leaks")) {
                fix = BDRV_FIX_LEAKS;
            } else if (!strcmp(optarg, "all")) {
                fix = BDRV_FIX_LEAKS | BDRV_FIX_ERRORS;
            } else {
                img_error_exit_usage("Unknown option value for -r "
                                     "(expecting 'leaks' or 'all'): %s",
                                     optarg);
            }
            break;
        case 'q':
            quiet = true;
            break;
        case 'T':
        case 'U':
        case OPTION_OBJECT:
            break;
        case OPTION_OUTPUT:
            ofmt = parse_output_format(optarg);
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        default:
            img_bad_option(c, argv);
        }
    }
    if (optind != argc - 1) {
        img_error_exit_usage("Expecting one image file name");
    }

    blk = img_open(image_opts, argv[optind], fmt, flags);
    if (!blk) {
        return IMG_EXIT_FAILURE;
    }
    bs = blk_bs(blk);

    ret = bdrv_check(bs, &result, fix);
    if (ret == -ENOTSUP) {
        error_report("This image format does not support checks");
        blk_unref(blk);
        return 63;
    }
    /* After a repair, report the state of the repaired image. */
    if (ret == 0 && (result.corruptions_fixed || result.leaks_fixed)) {
        int leaks_fixed = result.leaks_fixed;
        int corruptions_fixed = result.corruptions_fixed;

        memset(&result, 0, sizeof(result));
        ret = bdrv_check(bs, &result, 0);
        result.leaks_fixed = leaks_fixed;
        result.corruptions_fixed = corruptions_fixed;
    }
    if (ret < 0) {
        error_report("Check failed: %s", strerror(-ret));
        blk_unref(blk);
        return IMG_EXIT_FAILURE;
    }

    if (!quiet) {
        if (ofmt == OFORMAT_JSON) {
            dump_check_json(bs, &result);
        } else {
            dump_check_human(&result);
        }
    }
    blk_unref(blk);

    if (result.check_errors) {
        return 1;
    } else if (result.corruptions) {
        return 2;
    } else if (result.leaks) {
        return 3;
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * map
 */

typedef struct MapEntry {
    int64_t start;
    int64_t length;
    int depth;
    bool present, zero, data, has_offset;
    int64_t offset;
    BlockDriverState *file;
} MapEntry;

/*
 * Status of the range at @offset: walks down the backing chain until a
 * layer defines the content (data or zeroes); depth counts the layers
 * walked.  Unallocated ranges end at the bottom layer.
 */
static int map_get_status(BlockDriverState *bs, int64_t offset,
                          int64_t bytes, MapEntry *e)
{
    int64_t map = 0, pnum = 0;
    BlockDriverState *file = NULL;
    int depth = 0, ret;

    for (;;) {
        bs = bdrv_skip_filters(bs);
        ret = bdrv_block_status(bs, offset, bytes, &pnum, &map, &file);
        if (ret < 0) {
            return ret;
        }
        assert(pnum > 0);
        bytes = pnum;
        if (ret & (BDRV_BLOCK_ZERO | BDRV_BLOCK_DATA)) {
            break;
        }
        if (!bdrv_backing_bs(bs)) {
            /* Nothing below: the range reads as zeroes. */
            ret |= BDRV_BLOCK_ZERO;
            break;
        }
        bs = bdrv_backing_bs(bs);
        depth++;
    }
    *e = (MapEntry) {
        .start = offset,
        .length = bytes,
        .depth = depth,
        .present = !!(ret & BDRV_BLOCK_ALLOCATED),
        .zero = !!(ret & BDRV_BLOCK_ZERO),
        .data = !!(ret & BDRV_BLOCK_DATA),
        .has_offset = !!(ret & BDRV_BLOCK_OFFSET_VALID),
        .offset = map,
        .file = file,
    };
    if (!e->has_offset) {
        e->file = NULL;
        e->offset = 0;
    }
    return 0;
}

static bool map_entries_mergeable(const MapEntry *a, const MapEntry *b)
{
    if (a->depth != b->depth || a->present != b->present ||
        a->zero != b->zero || a->data != b->data ||
        a->has_offset != b->has_offset || a->file != b->file) {
        return false;
    }
    return !a->has_offset || a->offset + a->length == b->offset;
}

/* Prints one entry; returns -EINVAL if human output cannot show it. */
static int map_print_entry(const MapEntry *e, OutputFormat ofmt, bool first)
{
    if (ofmt == OFORMAT_JSON) {
        printf("%s{ \"start\": %" PRId64 ", \"length\": %" PRId64
               ", \"depth\": %d, \"present\": %s, \"zero\": %s"
               ", \"data\": %s", first ? "" : ",\n", e->start, e->length,
               e->depth, e->present ? "true" : "false",
               e->zero ? "true" : "false", e->data ? "true" : "false");
        if (e->has_offset) {
            printf(", \"offset\": %" PRId64, e->offset);
        }
        printf("}");
        return 0;
    }
    if (e->data && e->has_offset) {
        printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n",
               e->start, e->length, e->offset, bdrv_get_filename(e->file));
    } else if (e->data) {
        error_report("File contains external, encrypted or compressed "
                     "clusters.");
        return -EINVAL;
    }
    return 0;
}

static int img_map(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"format", required_argument, 0, 'f'},
        {"output", required_argument, 0, OPTION_OUTPUT},
        {"object", required_argument, 0, OPTION_OBJECT},
        {"image-opts", no_argument, 0, OPTION_IMAGE_OPTS},
        {"force-share", no_argument, 0, 'U'},
        {"start-offset", required_argument, 0, OPTION_START_OFFSET},
        {"max-length", required_argument, 0, OPTION_MAX_LENGTH},
        {0, 0, 0, 0}
    };
    OutputFormat ofmt = OFORMAT_HUMAN;
    const char *fmt = NULL;
    bool image_opts = false, first = true, have_entry = false;
    int64_t start = 0, max_len = -1, length, end, offset;
    BlockBackend *blk;
    BlockDriverState *bs;
    MapEntry curr = { 0 }, next;
    int c, ret = 0;

    while ((c = getopt_long(argc, argv, ":f:hU", long_options, NULL)) != -1) {
        switch (c) {
        case 'h':
            img_help();
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'U':
        case OPTION_OBJECT:
            break;
        case OPTION_OUTPUT:
            ofmt = parse_output_format(optarg);
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_START_OFFSET:
            start = cvtnum("start offset", optarg);
            break;
        case OPTION_MAX_LENGTH:
            max_len = cvtnum("max length", optarg);
            break;
        default:
            img_bad_option(c, argv);
        }
    }
    if (optind != argc - 1) {
        img_error_exit_usage("Expecting one image file name");
    }

    blk = img_open(image_opts, argv[optind], fmt, 0);
    if (!blk) {
        return IMG_EXIT_FAILURE;
    }
    bs = blk_bs(blk);
    length = blk_getlength(blk);
    if (length < 0) {
        error_report("Failed to get size for '%s'", argv[optind]);
        blk_unref(blk);
        return IMG_EXIT_FAILURE;
    }
    end = max_len >= 0 ? MIN(length, start + max_len) : length;

    if (ofmt == OFORMAT_HUMAN) {
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to",
               "File");
    } else {
        printf("[");
    }

    for (offset = start; offset < end; offset += next.length) {
        int64_t n = MIN(end - offset, BDRV_REQUEST_MAX_BYTES);

        ret = map_get_status(bs, offset, n, &next);
        if (ret < 0) {
            error_report("Could not read file metadata: %s", strerror(-ret));
            break;
        }
        if (have_entry && map_entries_mergeable(&curr, &next)) {
            curr.length += next.length;
            continue;
        }
        if (have_entry) {
            ret = map_print_entry(&curr, ofmt, first);
            first = false;
            if (ret < 0) {
                break;
            }
        }
        curr = next;
        have_entry = true;
    }
    if (ret == 0 && have_entry) {
        ret = map_print_entry(&curr, ofmt, first);
    }
    if (ofmt == OFORMAT_JSON) {
        printf("]\n");
    }
    blk_unref(blk);
    return ret < 0 ? IMG_EXIT_FAILURE : 0;
}

/* ---------------------------------------------------------------------
 * compare
 */

#define COMPARE_BUF_SIZE (2 * MiB)

/* Exit codes of compare, as documented for qemu-img. */
enum {
    COMPARE_IDENTICAL = 0,
    COMPARE_DIFFERENT = 1,
    COMPARE_OPEN_ERROR = 2,
    COMPARE_STATUS_ERROR = 3,
    COMPARE_READ_ERROR = 4,
};

/* Offset of the first 512-byte sector that differs, or -1. */
static int64_t first_mismatch(const uint8_t *a, const uint8_t *b,
                              int64_t bytes)
{
    for (int64_t i = 0; i < bytes; i += BDRV_SECTOR_SIZE) {
        int64_t n = MIN(BDRV_SECTOR_SIZE, bytes - i);
        if (b ? memcmp(a + i, b + i, n) : !buffer_is_zero(a + i, n)) {
            return i;
        }
    }
    return -1;
}

static int compare_read(BlockBackend *blk, const char *name, int64_t offset,
                        int64_t bytes, void *buf)
{
    int ret = blk_pread(blk, offset, bytes, buf, 0);

    if (ret < 0) {
        error_report("Error while reading offset %" PRId64 " of %s: %s",
                     offset, name, strerror(-ret));
        return COMPARE_READ_ERROR;
    }
    return 0;
}

/* Checks that [offset, end) of @blk reads as zeroes. */
static int compare_check_zero(BlockBackend *blk, const char *name,
                              int64_t offset, int64_t end, uint8_t *buf,
                              bool quiet)
{
    while (offset < end) {
        int64_t pnum;
        int64_t n = MIN(end - offset, BDRV_REQUEST_MAX_BYTES);
        int ret = bdrv_block_status_above(blk_bs(blk), NULL, offset, n,
                                          &pnum, NULL, NULL, NULL);
        if (ret < 0) {
            error_report("Sector allocation test failed for %s", name);
            return COMPARE_STATUS_ERROR;
        }
        if (!(ret & BDRV_BLOCK_ZERO) &&
            (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED))) {
            for (int64_t o = offset; o < offset + pnum;
                 o += COMPARE_BUF_SIZE) {
                int64_t len = MIN(COMPARE_BUF_SIZE, offset + pnum - o);
                int64_t bad;
                ret = compare_read(blk, name, o, len, buf);
                if (ret) {
                    return ret;
                }
                bad = first_mismatch(buf, NULL, len);
                if (bad >= 0) {
                    if (!quiet) {
                        printf("Content mismatch at offset %" PRId64 "!\n",
                               o + bad);
                    }
                    return COMPARE_DIFFERENT;
                }
            }
        }
        offset += pnum;
    }
    return COMPARE_IDENTICAL;
}

static int compare_common(BlockBackend *blk1, const char *name1,
                          BlockBackend *blk2, const char *name2,
                          int64_t total, int64_t progress_total,
                          bool strict, bool quiet, uint8_t *buf1,
                          uint8_t *buf2)
{
    int64_t offset = 0;

    while (offset < total) {
        int64_t pnum1, pnum2, n;
        int64_t req = MIN(total - offset, BDRV_REQUEST_MAX_BYTES);
        int ret1, ret2, ret;
        bool zero1, zero2;

        ret1 = bdrv_block_status_above(blk_bs(blk1), NULL, offset, req,
                                       &pnum1, NULL, NULL, NULL);
        if (ret1 < 0) {
            error_report("Sector allocation test failed for %s", name1);
            return COMPARE_STATUS_ERROR;
        }
        ret2 = bdrv_block_status_above(blk_bs(blk2), NULL, offset, req,
                                       &pnum2, NULL, NULL, NULL);
        if (ret2 < 0) {
            error_report("Sector allocation test failed for %s", name2);
            return COMPARE_STATUS_ERROR;
        }
        n = MIN(pnum1, pnum2);

        if (strict && ((ret1 ^ ret2) & BDRV_BLOCK_ALLOCATED)) {
            if (!quiet) {
                printf("Strict mode: Offset %" PRId64
                       " block status mismatch!\n", offset);
            }
            return COMPARE_DIFFERENT;
        }
        zero1 = (ret1 & BDRV_BLOCK_ZERO) ||
                !(ret1 & (BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED));
        zero2 = (ret2 & BDRV_BLOCK_ZERO) ||
                !(ret2 & (BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED));

        if (zero1 && zero2) {
            offset += n;
        } else if (zero1 || zero2) {
            BlockBackend *blk = zero1 ? blk2 : blk1;
            ret = compare_check_zero(blk, zero1 ? name2 : name1, offset,
                                     offset + n, buf1, quiet);
            if (ret != COMPARE_IDENTICAL) {
                return ret;
            }
            offset += n;
        } else {
            int64_t chunk_end = offset + n;
            while (offset < chunk_end) {
                int64_t len = MIN(COMPARE_BUF_SIZE, chunk_end - offset);
                int64_t bad;

                ret = compare_read(blk1, name1, offset, len, buf1);
                if (!ret) {
                    ret = compare_read(blk2, name2, offset, len, buf2);
                }
                if (ret) {
                    return ret;
                }
                bad = first_mismatch(buf1, buf2, len);
                if (bad >= 0) {
                    if (!quiet) {
                        printf("Content mismatch at offset %" PRId64 "!\n",
                               offset + bad);
                    }
                    return COMPARE_DIFFERENT;
                }
                offset += len;
            }
        }
        img_progress_update(offset, progress_total);
    }
    return COMPARE_IDENTICAL;
}

static int img_compare(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, OPTION_OBJECT},
        {"image-opts", no_argument, 0, OPTION_IMAGE_OPTS},
        {"force-share", no_argument, 0, 'U'},
        {0, 0, 0, 0}
    };
    const char *fmt1 = NULL, *fmt2 = NULL, *name1, *name2;
    bool quiet = false, strict = false, progress = false, image_opts = false;
    BlockBackend *blk1 = NULL, *blk2 = NULL;
    int64_t len1, len2;
    uint8_t *buf1 = NULL, *buf2 = NULL;
    int c, ret;

    while ((c = getopt_long(argc, argv, ":hf:F:T:pqsU", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'h':
            img_help();
            break;
        case 'f':
            fmt1 = optarg;
            break;
        case 'F':
            fmt2 = optarg;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 's':
            strict = true;
            break;
        case 'T':
        case 'U':
        case OPTION_OBJECT:
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        default:
            img_bad_option(c, argv);
        }
    }
    /* -q wins over -p, as in qemu-img. */
    if (quiet) {
        progress = false;
    }
    if (optind != argc - 2) {
        img_error_exit_usage("Expecting two image file names");
    }
    name1 = argv[optind];
    name2 = argv[optind + 1];

    blk1 = img_open(image_opts, name1, fmt1, 0);
    if (!blk1) {
        return COMPARE_OPEN_ERROR;
    }
    blk2 = img_open(image_opts, name2, fmt2, 0);
    if (!blk2) {
        ret = COMPARE_OPEN_ERROR;
        goto out;
    }
    len1 = blk_getlength(blk1);
    len2 = blk_getlength(blk2);
    if (len1 < 0 || len2 < 0) {
        error_report("Can't get size of %s: %s", len1 < 0 ? name1 : name2,
                     strerror(-(len1 < 0 ? len1 : len2)));
        ret = COMPARE_STATUS_ERROR;
        goto out;
    }
    buf1 = qemu_memalign(4096, COMPARE_BUF_SIZE);
    buf2 = qemu_memalign(4096, COMPARE_BUF_SIZE);

    img_progress_init(progress);
    if (strict && len1 != len2) {
        if (!quiet) {
            printf("Strict mode: Image size mismatch!\n");
        }
        ret = COMPARE_DIFFERENT;
        goto out;
    }
    ret = compare_common(blk1, name1, blk2, name2, MIN(len1, len2),
                         MAX(len1, len2), strict, quiet, buf1, buf2);
    if (ret == COMPARE_IDENTICAL && len1 != len2) {
        BlockBackend *longer = len1 > len2 ? blk1 : blk2;
        if (!quiet) {
            printf("Warning: Image size mismatch!\n");
        }
        ret = compare_check_zero(longer, len1 > len2 ? name1 : name2,
                                 MIN(len1, len2), MAX(len1, len2), buf1,
                                 quiet);
    }
    if (ret == COMPARE_IDENTICAL && !quiet) {
        printf("Images are identical.\n");
    }

out:
    img_progress_end();
    qemu_vfree(buf1);
    qemu_vfree(buf2);
    if (blk2) {
        blk_unref(blk2);
    }
    blk_unref(blk1);
    return ret;
}

/* ---------------------------------------------------------------------
 * rebase
 */

#define REBASE_BUF_SIZE (2 * MiB)

/*
 * Safe rebase: every range not allocated in the image itself reads from
 * the old backing chain; where the new backing file would read something
 * else, the old content is written into the image.
 */
static int rebase_copy_differences(BlockBackend *blk, BlockBackend *new_blk,
                                   bool progress)
{
    BlockDriverState *bs = blk_bs(blk);
    int64_t size = blk_getlength(blk);
    int64_t new_size = new_blk ? blk_getlength(new_blk) : 0;
    uint8_t *old_buf = qemu_memalign(4096, REBASE_BUF_SIZE);
    uint8_t *new_buf = qemu_memalign(4096, REBASE_BUF_SIZE);
    int64_t offset = 0;
    int ret = 0;

    if (size < 0 || new_size < 0) {
        error_report("Could not get the image size: %s",
                     strerror(-(size < 0 ? size : new_size)));
        ret = -EIO;
    }
    img_progress_init(progress);
    while (ret == 0 && offset < size) {
        int64_t pnum, n = MIN(size - offset, REBASE_BUF_SIZE);

        ret = bdrv_is_allocated(bs, offset, n, &pnum);
        if (ret < 0) {
            error_report("error while reading image metadata: %s",
                         strerror(-ret));
            break;
        }
        if (ret) {
            ret = 0;
            offset += pnum;
            continue;
        }
        n = pnum;
        ret = blk_pread(blk, offset, n, old_buf, 0);
        if (ret < 0) {
            error_report("error while reading from old backing file");
            break;
        }
        memset(new_buf, 0, n);
        if (offset < new_size) {
            ret = blk_pread(new_blk, offset, MIN(n, new_size - offset),
                            new_buf, 0);
            if (ret < 0) {
                error_report("error while reading from new backing file");
                break;
            }
        }
        /* Write only the sectors that differ, in maximal runs. */
        for (int64_t i = 0; i < n;) {
            int64_t j = i;
            while (j < n && memcmp(old_buf + j, new_buf + j,
                                   MIN(BDRV_SECTOR_SIZE, n - j))) {
                j += BDRV_SECTOR_SIZE;
            }
            j = MIN(j, n);
            if (j > i) {
                ret = blk_pwrite(blk, offset + i, j - i, old_buf + i, 0);
                if (ret < 0) {
                    error_report("Error while writing to COW image: %s",
                                 strerror(-ret));
                    goto out;
                }
                i = j;
            } else {
                i += BDRV_SECTOR_SIZE;
            }
        }
        offset += n;
        img_progress_update(offset, size);
    }
out:
    img_progress_end();
    qemu_vfree(old_buf);
    qemu_vfree(new_buf);
    return ret;
}

static int img_rebase(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, OPTION_OBJECT},
        {"image-opts", no_argument, 0, OPTION_IMAGE_OPTS},
        {"force-share", no_argument, 0, 'U'},
        {0, 0, 0, 0}
    };
    const char *fmt = NULL, *out_base = NULL, *out_fmt = NULL, *filename;
    bool unsafe = false, quiet = false, progress = false, image_opts = false;
    BlockBackend *blk, *new_blk = NULL;
    Error *err = NULL;
    int c, ret;

    while ((c = getopt_long(argc, argv, ":hf:F:b:upt:T:qU", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'h':
            img_help();
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'F':
            out_fmt = optarg;
            break;
        case 'b':
            out_base = optarg;
            break;
        case 'u':
            unsafe = true;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 't':
        case 'T':
        case 'U':
        case OPTION_OBJECT:
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        default:
            img_bad_option(c, argv);
        }
    }
    if (quiet) {
        progress = false;
    }
    if (optind != argc - 1) {
        img_error_exit_usage("Expecting one image file name");
    }
    if (!unsafe && !out_base) {
        img_error_exit_usage("Must specify backing file (-b) or use unsafe "
                             "mode (-u)");
    }
    filename = argv[optind];
    if (out_base && !*out_base) {
        out_base = NULL;
    }
    if (out_base && !out_fmt) {
        error_report("Could not change the backing file to '%s': backing "
                     "format must be specified", out_base);
        return IMG_EXIT_FAILURE;
    }

    blk = img_open(image_opts, filename, fmt,
                   BDRV_O_RDWR | (unsafe ? BDRV_O_NO_BACKING : 0));
    if (!blk) {
        return IMG_EXIT_FAILURE;
    }

    if (!unsafe) {
        if (out_base) {
            g_autofree char *path = path_combine(bdrv_get_filename(
                                                     blk_bs(blk)), out_base);
            QDict *options = qdict_new();
            qdict_put_str(options, "driver", out_fmt);
            new_blk = blk_new_open(path, NULL, options, 0, &err);
            if (!new_blk) {
                error_reportf_err(err, "Could not open new backing file "
                                  "'%s': ", out_base);
                blk_unref(blk);
                return IMG_EXIT_FAILURE;
            }
        }
        ret = rebase_copy_differences(blk, new_blk, progress);
        if (new_blk) {
            blk_unref(new_blk);
        }
        if (ret < 0) {
            blk_unref(blk);
            return IMG_EXIT_FAILURE;
        }
    }

    ret = bdrv_change_backing_file(blk_bs(blk), out_base,
                                   out_base ? out_fmt : NULL, &err);
    if (ret < 0) {
        if (err) {
            error_reportf_err(err, "Could not change the backing file to "
                              "'%s': ", out_base ? out_base : "");
        } else {
            error_report("Could not change the backing file to '%s': %s",
                         out_base ? out_base : "", strerror(-ret));
        }
        blk_unref(blk);
        return IMG_EXIT_FAILURE;
    }
    blk_unref(blk);
    return 0;
}

/* ---------------------------------------------------------------------
 * resize
 */

static int img_resize(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, OPTION_OBJECT},
        {"image-opts", no_argument, 0, OPTION_IMAGE_OPTS},
        {"preallocation", required_argument, 0, OPTION_PREALLOCATION},
        {"shrink", no_argument, 0, OPTION_SHRINK},
        {0, 0, 0, 0}
    };
    const char *fmt = NULL, *size_arg, *p;
    bool quiet = false, image_opts = false, shrink = false;
    int relative = 0, prealloc = PREALLOC_MODE_OFF;
    uint64_t n;
    int64_t current, total;
    BlockBackend *blk;
    Error *err = NULL;
    int c, ret;

    if (argc < 3) {
        img_error_exit_usage("Not enough arguments");
    }
    /* The size comes last and may look like an option ("-1G"). */
    size_arg = argv[--argc];

    while ((c = getopt_long(argc, argv, ":f:hq", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'h':
            img_help();
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case OPTION_OBJECT:
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_SHRINK:
            shrink = true;
            break;
        case OPTION_PREALLOCATION:
            prealloc = -1;
            for (int i = 0; PreallocMode_lookup.array[i]; i++) {
                if (!strcmp(PreallocMode_lookup.array[i], optarg)) {
                    prealloc = i;
                }
            }
            if (prealloc < 0) {
                error_report("Invalid preallocation mode '%s'", optarg);
                return IMG_EXIT_FAILURE;
            }
            break;
        default:
            img_bad_option(c, argv);
        }
    }
    if (optind != argc - 1) {
        img_error_exit_usage("Expecting image file name and size");
    }

    p = size_arg;
    if (*p == '+' || *p == '-') {
        relative = *p == '+' ? 1 : -1;
        p++;
    }
    if (qemu_strtosz(p, NULL, &n) < 0 || n > INT64_MAX) {
        error_report("Parameter 'size' expects a non-negative number below "
                     "2^64");
        fprintf(stderr, "Optional suffix k, M, G, T, P or E means kilo-, "
                "mega-, giga-, tera-, peta-\nand exabytes, respectively.\n");
        return IMG_EXIT_FAILURE;
    }

    blk = img_open(image_opts, argv[optind], fmt, BDRV_O_RDWR);
    if (!blk) {
        return IMG_EXIT_FAILURE;
    }
    current = blk_getlength(blk);
    if (current < 0) {
        error_report("Failed to inquire current image length: %s",
                     strerror(-current));
        ret = IMG_EXIT_FAILURE;
        goto out;
    }
    total = relative ? current + relative * (int64_t)n : (int64_t)n;
    if (total <= 0) {
        error_report("New image size must be positive");
        ret = IMG_EXIT_FAILURE;
        goto out;
    }
    if (total <= current && prealloc != PREALLOC_MODE_OFF) {
        error_report("Preallocation can only be used for growing images");
        ret = IMG_EXIT_FAILURE;
        goto out;
    }
    if (total < current && !shrink) {
        error_report("Use the --shrink option to perform a shrink "
                     "operation.");
        warn_report("Shrinking an image will delete all data beyond the "
                    "shrunken image's end. Before performing such an "
                    "operation, make sure there is no important data "
                    "there.");
        ret = IMG_EXIT_FAILURE;
        goto out;
    }

    ret = blk_truncate(blk, total, false, prealloc, 0, &err);
    if (ret < 0) {
        error_report_err(err);
        ret = IMG_EXIT_FAILURE;
        goto out;
    }
    if (!quiet) {
        printf("Image resized.\n");
    }
    ret = 0;
out:
    blk_unref(blk);
    return ret;
}

/* ---------------------------------------------------------------------
 * amend
 */

/* Creation options that cannot be changed on an existing image. */
static const char *const create_only_opts[] = {
    "cluster_size", "compression_type", "extended_l2", "preallocation",
    "encryption", "encrypt.format", "encrypt.cipher-alg",
    "encrypt.cipher-mode", "encrypt.ivgen-alg", "encrypt.ivgen-hash-alg",
    "encrypt.hash-alg", "encrypt.key-secret", NULL,
};

static int img_amend(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, OPTION_OBJECT},
        {"image-opts", no_argument, 0, OPTION_IMAGE_OPTS},
        {"force", no_argument, 0, OPTION_FORCE},
        {0, 0, 0, 0}
    };
    const char *fmt = NULL;
    g_autofree char *options = NULL;
    bool image_opts = false, force = false;
    const CreateOptDesc *lists[2] = { NULL, NULL };
    BlockBackend *blk;
    BlockDriverState *bs;
    Error *err = NULL;
    QDict *opts;
    int c, ret;

    while ((c = getopt_long(argc, argv, ":ho:f:t:pq", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'h':
            img_help();
            break;
        case 'o':
            add_options(&options, optarg);
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'q':
        case 't':
        case 'p':
        case OPTION_OBJECT:
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_FORCE:
            force = true;
            break;
        default:
            img_bad_option(c, argv);
        }
    }
    if (!options) {
        img_error_exit_usage("Must specify options (-o)");
    }
    if (img_opts_want_help(options) && fmt && optind >= argc) {
        BlockDriver *drv = bdrv_find_format(fmt);
        if (!drv) {
            error_report("Unknown file format '%s'", fmt);
            return IMG_EXIT_FAILURE;
        }
        if (!drv->bdrv_co_amend) {
            error_report("Format driver '%s' does not support option "
                         "amendment", fmt);
            return IMG_EXIT_FAILURE;
        }
        lists[0] = drv->create_opts;
        printf("Amend options for '%s':\n", fmt);
        print_opt_list(lists, create_only_opts, false);
        return 0;
    }
    if (optind != argc - 1) {
        img_error_exit_usage("Expecting one image file name");
    }

    blk = img_open(image_opts, argv[optind], fmt, BDRV_O_RDWR);
    if (!blk) {
        return IMG_EXIT_FAILURE;
    }
    bs = blk_bs(blk);
    if (!bs->drv->bdrv_co_amend) {
        error_report("Format driver '%s' does not support option amendment",
                     bdrv_get_format_name(bs));
        blk_unref(blk);
        return IMG_EXIT_FAILURE;
    }
    if (img_opts_want_help(options)) {
        lists[0] = bs->drv->create_opts;
        printf("Amend options for '%s':\n", bdrv_get_format_name(bs));
        print_opt_list(lists, create_only_opts, false);
        blk_unref(blk);
        return 0;
    }
    lists[0] = bs->drv->create_opts;
    opts = qdict_new();
    if (!parse_opt_string(options, opts, &err) ||
        !check_create_opts(opts, lists, &err)) {
        error_report_err(err);
        ret = IMG_EXIT_FAILURE;
    } else if (bdrv_amend_options(bs, opts, force, &err) < 0) {
        error_report_err(err);
        ret = IMG_EXIT_FAILURE;
    } else {
        ret = 0;
    }
    qobject_unref(opts);
    blk_unref(blk);
    return ret;
}

/* ---------------------------------------------------------------------
 * measure
 */

static int img_measure(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"image-opts", no_argument, 0, OPTION_IMAGE_OPTS},
        {"object", required_argument, 0, OPTION_OBJECT},
        {"output", required_argument, 0, OPTION_OUTPUT},
        {"size", required_argument, 0, OPTION_SIZE},
        {"force-share", no_argument, 0, 'U'},
        {0, 0, 0, 0}
    };
    OutputFormat ofmt = OFORMAT_HUMAN;
    const char *fmt = NULL, *out_fmt = "raw", *filename = NULL;
    g_autofree char *options = NULL;
    const CreateOptDesc *lists[2];
    bool image_opts = false, show_bitmaps = false;
    int64_t size = -1;
    BlockBackend *blk = NULL;
    BlockDriver *drv;
    BlockMeasureInfo info = { 0 };
    Error *err = NULL;
    QDict *opts;
    int c, ret;

    while ((c = getopt_long(argc, argv, ":hf:O:o:l:U", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'h':
            img_help();
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'o':
            add_options(&options, optarg);
            break;
        case 'l':
        case 'U':
        case OPTION_OBJECT:
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_OUTPUT:
            ofmt = parse_output_format(optarg);
            break;
        case OPTION_SIZE:
            size = cvtnum("image size", optarg);
            break;
        default:
            img_bad_option(c, argv);
        }
    }
    if (options && img_opts_want_help(options)) {
        return img_print_create_opts_help(out_fmt, NULL);
    }
    if (optind < argc) {
        filename = argv[optind++];
    }
    if (optind < argc) {
        img_error_exit_usage("Unexpected argument: %s", argv[optind]);
    }
    if (!filename && size < 0) {
        error_report("Either --size N or one filename must be specified.");
        return IMG_EXIT_FAILURE;
    }
    if (filename && size >= 0) {
        error_report("--size N cannot be used together with a filename.");
        return IMG_EXIT_FAILURE;
    }

    drv = bdrv_find_format(out_fmt);
    if (!drv) {
        error_report("Unknown file format '%s'", out_fmt);
        return IMG_EXIT_FAILURE;
    }
    if (!drv->bdrv_measure) {
        error_report("Format driver '%s' does not support size measurement",
                     out_fmt);
        return IMG_EXIT_FAILURE;
    }
    opts = img_build_create_opts(options, drv, lists, &err);
    if (!opts) {
        error_report_err(err);
        return IMG_EXIT_FAILURE;
    }
    if (filename) {
        blk = img_open(image_opts, filename, fmt, 0);
        if (!blk) {
            qobject_unref(opts);
            return IMG_EXIT_FAILURE;
        }
        /* qemu-img reports bitmaps when both sides can store them. */
        show_bitmaps = !strcmp(out_fmt, "qcow2") &&
                       !strcmp(bdrv_get_format_name(blk_bs(blk)), "qcow2");
    } else {
        qdict_put_int(opts, "size", size);
    }

    ret = bdrv_measure(drv, opts, blk ? blk_bs(blk) : NULL, &info, &err);
    qobject_unref(opts);
    if (blk) {
        blk_unref(blk);
    }
    if (ret < 0) {
        error_report_err(err);
        return IMG_EXIT_FAILURE;
    }

    if (ofmt == OFORMAT_JSON) {
        JsonObject *o = json_object_new();
        JsonNode *root;
        json_object_set_int_member(o, "required", info.required);
        json_object_set_int_member(o, "fully-allocated",
                                   info.fully_allocated);
        if (show_bitmaps) {
            json_object_set_int_member(o, "bitmaps", info.bitmaps);
        }
        root = json_node_init_object(json_node_alloc(), o);
        img_json_print(stdout, root);
        printf("\n");
        json_node_unref(root);
        json_object_unref(o);
    } else {
        printf("required size: %" PRIu64 "\n", info.required);
        printf("fully allocated size: %" PRIu64 "\n", info.fully_allocated);
        if (show_bitmaps) {
            printf("bitmaps size: %" PRIu64 "\n", info.bitmaps);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * main
 */

typedef struct ImgCmd {
    const char *name;
    int (*handler)(int argc, char **argv);
} ImgCmd;

static const ImgCmd img_cmds[] = {
    { "amend", img_amend },
    { "bitmap", img_bitmap },
    { "check", img_check },
    { "compare", img_compare },
    { "convert", img_convert },
    { "create", img_create },
    { "info", img_info },
    { "map", img_map },
    { "measure", img_measure },
    { "rebase", img_rebase },
    { "resize", img_resize },
};

static void print_version(void)
{
    printf(PROGNAME " version " QBLOCK_VERSION "\n"
           "Compatible with qemu-img 7.2: same commands, options, output "
           "and exit codes\n");
}

void img_help(void)
{
    print_version();
    printf("usage: " PROGNAME " [standard options] command [command options]\n"
"QEMU-compatible disk image utility\n"
"\n"
"    '-h', '--help'       display this help and exit\n"
"    '-V', '--version'    output version information and exit\n"
"    '-T', '--trace'      [[enable=]<pattern>][,events=<file>]\n"
"                         specify tracing options\n"
"\n"
"Command syntax:\n"
"  amend [--image-opts] [-p] [-q] [-f fmt] [--force] -o options filename\n"
"  bitmap (--merge SOURCE | --add | --remove | --clear | --enable | "
"--disable)... [-b source_file [-F source_fmt]] [-g granularity] "
"[--image-opts | -f fmt] filename bitmap\n"
"  check [--image-opts] [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] "
"[-U] filename\n"
"  compare [--image-opts] [-f fmt] [-F fmt] [-p] [-q] [-s] [-U] "
"filename1 filename2\n"
"  convert [--image-opts] [-U] [-c] [-p] [-q] [-n] [-f fmt] [-O output_fmt] "
"[-B backing_file [-F backing_fmt]] [-o options] [-S sparse_size] "
"[-m num_coroutines] [-W] filename [filename2 [...]] output_filename\n"
"  create [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] "
"[-o options] filename [size]\n"
"  info [--image-opts] [-f fmt] [--output=ofmt] [--backing-chain] [-U] "
"filename\n"
"  map [--image-opts] [-f fmt] [--start-offset=offset] [--max-length=len] "
"[--output=ofmt] [-U] filename\n"
"  measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | "
"[--image-opts] [-f fmt] filename]\n"
"  rebase [--image-opts] [-U] [-q] [-f fmt] [-p] [-u] -b backing_file "
"[-F backing_fmt] filename\n"
"  resize [--image-opts] [-f fmt] [--preallocation=prealloc] [-q] "
"[--shrink] filename [+ | -]size\n"
"\n"
"Command parameters:\n"
"  'filename' is a disk image filename\n"
"  'fmt' is the disk image format. It is guessed automatically in most "
"cases\n"
"  'size' is the disk image size in bytes. Optional suffixes\n"
"    'k' or 'K' (kilobyte, 1024), 'M' (megabyte, 1024k), 'G' (gigabyte, "
"1024M),\n"
"    'T' (terabyte, 1024G), 'P' (petabyte, 1024T) and 'E' (exabyte, 1024P)"
"  are\n"
"    supported. 'b' is ignored.\n"
"  'output_filename' is the destination disk image filename\n"
"  'output_fmt' is the destination format\n"
"  'options' is a comma separated list of format specific options in a\n"
"    name=value format. Use -o help for an overview of the options "
"supported by\n"
"    the used format\n"
"  '-c' indicates that target image must be compressed (qcow format only)\n"
"  '-u' allows unsafe backing chains. For rebasing, it is assumed that old "
"and\n"
"       new backing file match exactly. The image doesn't need a working\n"
"       backing file before rebasing in this case (useful for renaming the\n"
"       backing file). For image creation, allow creating without "
"attempting\n"
"       to open the backing file.\n"
"  '-h' with or without a command shows this help and lists the supported "
"formats\n"
"  '-p' show progress of command (only certain commands)\n"
"  '-q' use Quiet mode - do not print any output (except errors)\n"
"  '-S' indicates the consecutive number of bytes (defaults to 4k) that "
"must\n"
"       contain only zeros for " PROGNAME " to create a sparse image during\n"
"       conversion. If the number of bytes is 0, the source will not be "
"scanned for\n"
"       unallocated or zero sectors, and the destination image will always "
"be\n"
"       fully allocated\n"
"  '--output' takes the format in which the output must be done (human or "
"json)\n"
"  '-n' skips the target volume creation (useful if the volume is created\n"
"       prior to running " PROGNAME ")\n"
"\n"
"Parameters to check subcommand:\n"
"  '-r' tries to repair any inconsistencies that are found during the "
"check.\n"
"       '-r leaks' repairs only cluster leaks, whereas '-r all' fixes all\n"
"       kinds of errors, with a higher risk of choosing the wrong fix or\n"
"       hiding corruption that has already occurred.\n"
"\n"
"Parameters to convert subcommand:\n"
"  '-m' specifies how many coroutines work in parallel during the convert\n"
"       process (defaults to 8)\n"
"  '-W' allow to write to the target out of order rather than sequential\n"
"\n"
"Parameters to compare subcommand:\n"
"  '-f' first image format\n"
"  '-F' second image format\n"
"  '-s' run in Strict mode - fail on different image size or sector "
"allocation\n"
"\n"
"Supported formats:");
    fflush(stdout);
    {
        g_autofree char *formats = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&formats, &len);
        bdrv_print_formats(mem);
        fclose(mem);
        printf(" %s\n", g_strstrip(formats));
    }
    exit(0);
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {"trace", required_argument, 0, 'T'},
        {0, 0, 0, 0}
    };
    const char *cmd;
    int c;

    error_set_progname(PROGNAME);
    trace_init_from_env();
    bdrv_init();
    opterr = 0;

    if (argc < 2) {
        img_error_exit_usage("Not enough arguments");
    }
    /* Global options end at the command name ("+"). */
    while ((c = getopt_long(argc, argv, "+:hVT:", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'h':
            img_help();
            break;
        case 'V':
            print_version();
            return 0;
        case 'T':
            trace_opt_parse(optarg);
            break;
        default:
            img_bad_option(c, argv);
        }
    }
    if (optind >= argc) {
        img_error_exit_usage("Not enough arguments");
    }
    cmd = argv[optind];

    /* The command sees its own name as argv[0]; option parsing restarts. */
    argc -= optind;
    argv += optind;
    optind = 0;

    for (size_t i = 0; i < ARRAY_SIZE(img_cmds); i++) {
        if (!strcmp(cmd, img_cmds[i].name)) {
            int ret = img_cmds[i].handler(argc, argv);
            bdrv_close_all();
            return ret;
        }
    }
    img_error_exit_usage("Command not found: %s", cmd);
}
