/*
 * qblock-io: qemu-io's command line and interactive shell on top of the
 * command interpreter in qemu-io-cmds.c.
 *
 * This file owns the one BlockBackend the commands work on and the
 * commands that replace it (open, close) or end the program (quit).
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/error.h"
#include "qemu/trace.h"
#include "block/block-backend.h"
#include "qemu-io.h"

#include <getopt.h>

#define PROMPT "qemu-io> "
/* As in qemu-io, discards reach the image unless -d ignore says not to. */
/*
 * Not a block layer flag: the tool's "write cache off" (writethrough and
 * directsync), qemu-io's default, applied to the BlockBackend after open.
 */
#define QEMUIO_O_WRITETHROUGH (1 << 30)
#define QEMUIO_DEFAULT_FLAGS (BDRV_O_RDWR | BDRV_O_UNMAP | QEMUIO_O_WRITETHROUGH)

static const char *progname;
static BlockBackend *qemuio_blk;
static bool quit_requested;

/* How the current image was opened, for "reopen". */
static struct {
    char *name;
    char *opts_json;            /* the options as JSON; NULL if none */
    int flags;
} opened;

/* --- option values shared by the command line and "open" --- */

/*
 * cache=MODE as open flags: direct (NOCACHE), no-flush (NO_FLUSH) and the
 * write cache switch (QEMUIO_O_WRITETHROUGH).
 */
static bool parse_cache_mode(const char *mode, int *flags)
{
    *flags &= ~(BDRV_O_NOCACHE | BDRV_O_NO_FLUSH | QEMUIO_O_WRITETHROUGH);
    if (!strcmp(mode, "writethrough") || !strcmp(mode, "directsync")) {
        *flags |= QEMUIO_O_WRITETHROUGH;
    }
    if (!strcmp(mode, "none") || !strcmp(mode, "off") ||
        !strcmp(mode, "directsync")) {
        *flags |= BDRV_O_NOCACHE;
    } else if (!strcmp(mode, "unsafe")) {
        *flags |= BDRV_O_NO_FLUSH;
    } else if (strcmp(mode, "writeback") && strcmp(mode, "writethrough")) {
        error_report("Invalid cache option: %s", mode);
        return false;
    }
    return true;
}

static bool parse_aio_mode(const char *mode, int *flags)
{
    *flags &= ~(BDRV_O_NATIVE_AIO | BDRV_O_IO_URING | BDRV_O_THREAD_POOL);
    if (!strcmp(mode, "native")) {
        *flags |= BDRV_O_NATIVE_AIO;
    } else if (!strcmp(mode, "io_uring")) {
        *flags |= BDRV_O_IO_URING;
    } else if (!strcmp(mode, "threads")) {
        *flags |= BDRV_O_THREAD_POOL;
    } else {
        error_report("Invalid aio option: %s", mode);
        return false;
    }
    return true;
}

static bool parse_discard_mode(const char *mode, int *flags)
{
    if (!strcmp(mode, "unmap") || !strcmp(mode, "on")) {
        *flags |= BDRV_O_UNMAP;
    } else if (!strcmp(mode, "ignore") || !strcmp(mode, "off")) {
        *flags &= ~BDRV_O_UNMAP;
    } else {
        error_report("Invalid discard option: %s", mode);
        return false;
    }
    return true;
}

/*
 * The open options "open" and the command line share: -n, -r, -k, -i,
 * -t and -d.  Returns 1 when @c was one of them and applied, 0 when it is
 * not an open option, -1 after reporting an invalid value.
 */
static int parse_open_option(int c, const char *arg, int *flags)
{
    switch (c) {
    case 'n':
        /* qemu-io's shorthand for -t none */
        return parse_cache_mode("none", flags) ? 1 : -1;
    case 'r':
        *flags &= ~BDRV_O_RDWR;
        return 1;
    case 'k':
        *flags |= BDRV_O_NATIVE_AIO;
        return 1;
    case 'i':
        return parse_aio_mode(arg, flags) ? 1 : -1;
    case 't':
        return parse_cache_mode(arg, flags) ? 1 : -1;
    case 'd':
        return parse_discard_mode(arg, flags) ? 1 : -1;
    default:
        return 0;
    }
}

/* The current image is gone: "reopen" has nothing to go back to. */
static void forget_open_params(void)
{
    g_free(opened.name);
    g_free(opened.opts_json);
    opened.name = NULL;
    opened.opts_json = NULL;
}

/*
 * Opens @name (may be NULL when @opts say what to open) as the current
 * image.  Consumes @opts.  Returns 0 or -errno after reporting.
 */
static int open_image(const char *name, QDict *opts, int flags,
                      bool force_share)
{
    Error *err = NULL;

    if (qemuio_blk) {
        error_report("file open already, try 'help close'");
        if (opts) {
            qobject_unref(opts);
        }
        return -EBUSY;
    }
    if (force_share) {
        if (!opts) {
            opts = qdict_new();
        }
        qdict_put_bool(opts, "force-share", true);
    }
    /* blk_new_open() consumes and edits @opts: keep them for "reopen". */
    opened.opts_json = opts ? qdict_to_json(opts, false) : NULL;
    qemuio_blk = blk_new_open(name, NULL, opts,
                              flags & ~QEMUIO_O_WRITETHROUGH, &err);
    if (!qemuio_blk) {
        error_reportf_err(err, "can't open%s%s: ", name ? " device " : "",
                          name ? name : "");
        forget_open_params();
        return -EINVAL;
    }
    blk_set_enable_write_cache(qemuio_blk, !(flags & QEMUIO_O_WRITETHROUGH));
    opened.name = g_strdup(name);
    opened.flags = flags;
    return 0;
}

/* Copies the top-level members of @src into @dst (replacing). */
static void merge_options(QDict *dst, QDict *src)
{
    GList *keys = qdict_keys(src);

    for (GList *l = keys; l; l = l->next) {
        qdict_put_node(dst, l->data, json_node_copy(qdict_get(src, l->data)));
    }
    g_list_free(keys);
}

/* Merges the keys of a "-o key=value,..." string into *@opts. */
static bool add_open_options(QDict **opts, const char *str)
{
    Error *err = NULL;
    QDict *parsed = keyval_parse(str, NULL, &err);

    if (!parsed) {
        error_report_err(err);
        return false;
    }
    if (!*opts) {
        *opts = parsed;
        return true;
    }
    merge_options(*opts, parsed);
    qobject_unref(parsed);
    return true;
}

/* --- open / close / quit --- */

static const QemuIOCommand open_cmd;

static void open_help(void)
{
    printf(
"\n"
" opens a new image in the requested mode\n"
"\n"
" Example:\n"
" 'open -n -o driver=raw /tmp/data' - opens a raw image read-write,\n"
"                                     bypassing the host cache\n"
"\n"
" Opens the image that all other commands work on.\n"
" -r, -- open read-only\n"
" -s, -- use a temporary snapshot (not supported by qblock)\n"
" -C, -- copy-on-read (not supported by qblock)\n"
" -n, -- bypass the host cache, short for -t none\n"
" -U, -- force shared permissions\n"
" -k, -- use Linux native AIO (same as -i native)\n"
" -i, -- AIO mode (threads, native or io_uring)\n"
" -t, -- cache mode (none, writeback, writethrough, directsync, unsafe)\n"
" -d, -- discard mode (ignore or unmap)\n"
" -o, -- options for the block driver (key=value,...)\n"
"\n");
}

static int open_f(BlockBackend *blk, int argc, char **argv)
{
    int flags = QEMUIO_DEFAULT_FLAGS, c;
    bool force_share = false;
    QDict *opts = NULL;

    while ((c = getopt(argc, argv, "snCro:ki:t:d:U")) != -1) {
        switch (c) {
        case 's':
        case 'C':
            error_report("-%c is not supported by qblock-io", c);
            goto fail;
        case 'o':
            if (!add_open_options(&opts, optarg)) {
                goto fail;
            }
            break;
        case 'U':
            force_share = true;
            break;
        default:
            switch (parse_open_option(c, optarg, &flags)) {
            case 1:
                break;
            case 0:
                qemuio_command_usage(&open_cmd);
                /* fall through */
            default:
                goto fail;
            }
        }
    }
    if (optind == argc - 1) {
        return open_image(argv[optind], opts, flags, force_share);
    }
    if (optind == argc) {
        return open_image(NULL, opts, flags, force_share);
    }
    qemuio_command_usage(&open_cmd);
fail:
    if (opts) {
        qobject_unref(opts);
    }
    return -EINVAL;
}

static const QemuIOCommand open_cmd = {
    .name = "open",
    .altname = "o",
    .func = open_f,
    .argmin = 1,
    .argmax = -1,
    .flags = QEMUIO_CMD_NOFILE_OK,
    .args = "[-rsCnkU] [-t cache] [-d discard] [-o options] [path]",
    .oneline = "open the file specified by path",
    .help = open_help,
};

static void close_image(void)
{
    /* Outstanding aio requests hold references; let them report first. */
    qemuio_wait_aio();
    blk_unref(qemuio_blk);
    qemuio_blk = NULL;
    forget_open_params();
}

static int close_f(BlockBackend *blk, int argc, char **argv)
{
    close_image();
    return 0;
}

static const QemuIOCommand close_cmd = {
    .name = "close",
    .altname = "c",
    .func = close_f,
    .argmin = 0,
    .argmax = 0,
    .oneline = "close the current open file",
};

static const QemuIOCommand reopen_cmd;

static void reopen_help(void)
{
    printf(
"\n"
" Changes the open options of the current image\n"
"\n"
" Example:\n"
" 'reopen -o lazy-refcounts=on' - turns on lazy refcounts of a qcow2 image\n"
"\n"
" qblock-io closes the image and opens it again with the new options;\n"
" if that fails, the image is opened again as it was.\n"
" -r, -- reopen read-only\n"
" -w, -- reopen read-write\n"
" -c, -- new cache mode\n"
" -o, -- new block driver options (see 'open')\n"
"\n");
}

/* The options the current image was opened with (new reference). */
static QDict *opened_options(void)
{
    return opened.opts_json ? qdict_from_json(opened.opts_json, &error_abort)
                            : NULL;
}

/* Opens the image again with @flags and @opts (consumed). */
static int reopen_image(QDict *opts, int flags)
{
    char *name = g_strdup(opened.name);
    QDict *old_opts = opened_options();
    int old_flags = opened.flags, ret;

    close_image();
    ret = open_image(name, opts, flags, false);
    if (ret < 0) {
        /* Back to the previous state; open_image() consumes old_opts. */
        open_image(name, old_opts, old_flags, false);
    } else if (old_opts) {
        qobject_unref(old_opts);
    }
    g_free(name);
    return ret;
}

static int reopen_f(BlockBackend *blk, int argc, char **argv)
{
    int flags = opened.flags, c;
    bool rw_given = false;
    QDict *changes = NULL, *opts;

    while ((c = getopt(argc, argv, "c:o:rw")) != -1) {
        switch (c) {
        case 'c':
            if (!parse_cache_mode(optarg, &flags)) {
                goto fail;
            }
            break;
        case 'o':
            if (!add_open_options(&changes, optarg)) {
                goto fail;
            }
            break;
        case 'r':
        case 'w':
            if (rw_given) {
                error_report("Only one -r/-w option may be given");
                goto fail;
            }
            rw_given = true;
            flags = c == 'r' ? flags & ~BDRV_O_RDWR : flags | BDRV_O_RDWR;
            break;
        default:
            qemuio_command_usage(&reopen_cmd);
            goto fail;
        }
    }
    if (optind != argc) {
        qemuio_command_usage(&reopen_cmd);
        goto fail;
    }
    if (changes && qdict_haskey(changes, "driver")) {
        error_report("Cannot change the option 'driver'");
        goto fail;
    }

    opts = opened_options();
    if (!opts) {
        opts = qdict_new();
    }
    if (changes) {
        merge_options(opts, changes);
        qobject_unref(changes);
    }
    return reopen_image(opts, flags);

fail:
    if (changes) {
        qobject_unref(changes);
    }
    return -EINVAL;
}

static const QemuIOCommand reopen_cmd = {
    .name = "reopen",
    .func = reopen_f,
    .argmin = 0,
    .argmax = -1,
    .args = "[(-r|-w)] [-c cache] [-o options]",
    .oneline = "reopens an image with new options",
    .help = reopen_help,
};

static int quit_f(BlockBackend *blk, int argc, char **argv)
{
    quit_requested = true;
    return 0;
}

static const QemuIOCommand quit_cmd = {
    .name = "quit",
    .altname = "q",
    .func = quit_f,
    .argmin = 0,
    .argmax = -1,
    .flags = QEMUIO_CMD_NOFILE_OK,
    .oneline = "exit the program",
};

/* --- interactive input --- */

/*
 * Lines from stdin are collected by a main-loop fd handler, so aio
 * completions keep being reported while the shell waits for input.
 */
static struct {
    GString *buf;
    gsize pos;          /* where the first line not yet fetched starts */
    bool eof;
} input;

static void stdin_readable(void *opaque)
{
    char chunk[4096];
    ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));

    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n <= 0) {
        /* Level-triggered: stop watching or EOF would fire forever. */
        input.eof = true;
        aio_set_fd_handler(qemu_get_aio_context(), STDIN_FILENO, NULL, NULL,
                           NULL);
        return;
    }
    g_string_append_len(input.buf, chunk, n);
}

/* The next input line without its newline (g_free), or NULL at EOF. */
static char *fetch_line(void)
{
    char *start, *nl;
    char *line;

    while (!(nl = memchr(input.buf->str + input.pos, '\n',
                         input.buf->len - input.pos)) &&
           !input.eof) {
        aio_poll(qemu_get_aio_context(), true);
    }
    start = input.buf->str + input.pos;
    if (!nl) {
        if (input.pos == input.buf->len) {
            return NULL;
        }
        nl = input.buf->str + input.buf->len;
    }
    line = g_strndup(start, nl - start);
    input.pos = MIN((gsize)(nl - input.buf->str) + 1, input.buf->len);
    /*
     * Drop the fetched part only once it outweighs the rest: each byte is
     * then moved O(1) times, even when all of a piped script is buffered.
     */
    if (input.pos > input.buf->len / 2) {
        g_string_erase(input.buf, 0, input.pos);
        input.pos = 0;
    }
    return line;
}

/* Runs commands from stdin; returns false if any failed. */
static bool command_shell(void)
{
    bool ok = true;
    char *line;

    input.buf = g_string_new(NULL);
    input.pos = 0;
    aio_set_fd_handler(qemu_get_aio_context(), STDIN_FILENO, stdin_readable,
                       NULL, NULL);
    while (!quit_requested) {
        printf("%s", PROMPT);
        fflush(stdout);
        line = fetch_line();
        if (!line) {
            break;
        }
        if (qemuio_command(qemuio_blk, line) < 0) {
            ok = false;
        }
        g_free(line);
    }
    if (!input.eof) {
        aio_set_fd_handler(qemu_get_aio_context(), STDIN_FILENO, NULL, NULL,
                           NULL);
    }
    g_string_free(input.buf, true);
    return ok;
}

/* --- main --- */

static void usage(void)
{
    printf(
"Usage: %s [OPTIONS]... [-c STRING]... [file]\n"
"qblock disk exerciser (qemu-io compatible)\n"
"\n"
"  --image-opts         treat file as an option string (key=value,...)\n"
"  -c, --cmd STRING     run the command STRING (repeatable; run in order,\n"
"                       then exit)\n"
"  -f, --format FMT     use the block driver FMT\n"
"  -r, --read-only      open the image read-only\n"
"  -n, --nocache        bypass the host cache, short for -t none\n"
"  -m, --misalign       misalign I/O buffers (tests O_DIRECT bouncing)\n"
"  -k, --native-aio     use Linux native AIO (same as -i native)\n"
"  -i, --aio=MODE       AIO mode: threads, native or io_uring\n"
"  -t, --cache=MODE     cache mode: none, writeback, writethrough,\n"
"                       directsync or unsafe\n"
"  -d, --discard=MODE   discard mode: ignore or unmap\n"
"  -T, --trace [[enable=]PATTERN][,events=FILE]\n"
"                       enable trace events\n"
"  -U, --force-share    force shared permissions\n"
"  -h, --help           print this help and exit\n"
"  -V, --version        print the version and exit\n"
"\n"
"Without -c, commands are read from standard input.\n"
"See '%s -c help' for the available commands.\n",
           progname, progname);
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "cmd", required_argument, NULL, 'c' },
        { "format", required_argument, NULL, 'f' },
        { "read-only", no_argument, NULL, 'r' },
        { "snapshot", no_argument, NULL, 's' },
        { "nocache", no_argument, NULL, 'n' },
        { "copy-on-read", no_argument, NULL, 'C' },
        { "misalign", no_argument, NULL, 'm' },
        { "native-aio", no_argument, NULL, 'k' },
        { "aio", required_argument, NULL, 'i' },
        { "cache", required_argument, NULL, 't' },
        { "discard", required_argument, NULL, 'd' },
        { "trace", required_argument, NULL, 'T' },
        { "force-share", no_argument, NULL, 'U' },
        { "image-opts", no_argument, NULL, 'I' },
        { "object", required_argument, NULL, 'O' },
        { NULL, 0, NULL, 0 },
    };
    GPtrArray *cmds = g_ptr_array_new();
    const char *format = NULL;
    bool image_opts = false, force_share = false, ok = true;
    int flags = QEMUIO_DEFAULT_FLAGS, c, status = 1;

    progname = g_path_get_basename(argv[0]);
    error_set_progname(progname);
    trace_init_from_env();

    while ((c = getopt_long(argc, argv, "hVc:f:rsnCmki:t:d:T:U",
                            long_options, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage();
            status = 0;
            goto out;
        case 'V':
            printf("%s version %s\n", progname, QBLOCK_VERSION);
            printf("qemu-io 7.2 compatible command set\n");
            status = 0;
            goto out;
        case 'c':
            g_ptr_array_add(cmds, optarg);
            break;
        case 'f':
            format = optarg;
            break;
        case 's':
        case 'C':
        case 'O':
            error_report("%s is not supported", argv[optind - 1]);
            goto out;
        case 'm':
            qemuio_misalign = true;
            break;
        case 'T':
            if (!trace_opt_parse(optarg)) {
                goto out;
            }
            break;
        case 'U':
            force_share = true;
            break;
        case 'I':
            image_opts = true;
            break;
        default:
            switch (parse_open_option(c, optarg, &flags)) {
            case 1:
                break;
            case 0:
                usage();
                /* fall through */
            default:
                goto out;
            }
        }
    }
    if (argc - optind > 1) {
        usage();
        goto out;
    }
    if (image_opts && format) {
        error_report("--image-opts and -f are mutually exclusive");
        goto out;
    }

    bdrv_init();
    qemuio_add_command(&open_cmd);
    qemuio_add_command(&close_cmd);
    qemuio_add_command(&quit_cmd);
    qemuio_add_command(&reopen_cmd);

    if (optind < argc) {
        QDict *opts = NULL;
        const char *name = argv[optind];

        if (image_opts) {
            Error *err = NULL;

            opts = keyval_parse(name, NULL, &err);
            if (!opts) {
                error_report_err(err);
                goto out;
            }
            name = NULL;
        } else if (format) {
            opts = qdict_new();
            qdict_put_str(opts, "driver", format);
        }
        if (open_image(name, opts, flags, force_share) < 0) {
            goto out;
        }
    }

    /* Like qemu-io, a failing command does not stop the ones after it. */
    for (guint i = 0; i < cmds->len && !quit_requested; i++) {
        if (qemuio_command(qemuio_blk, cmds->pdata[i]) < 0) {
            ok = false;
        }
    }
    if (cmds->len == 0 && !command_shell()) {
        ok = false;
    }
    status = ok ? 0 : 1;

out:
    qemuio_wait_aio();
    if (qemuio_blk) {
        close_image();
    }
    g_ptr_array_free(cmds, true);
    g_free((char *)progname);
    return status;
}
