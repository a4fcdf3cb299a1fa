/*
 * qcow2 image format driver: header, open/close, the request paths,
 * create, check, amend, measure and info.
 *
 * See qcow2-refcount.c for the crash-safety ordering of metadata updates
 * and docs/devel/qcow2.md for an overview.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/cutils.h"
#include "block/qcow2.h"
#include "block/block-backend.h"
#include "block/drivers.h"
#include "block/dirty-bitmap.h"
#include <zlib.h>

#define DEFAULT_CLUSTER_SIZE 65536
/* Default L2 cache: enough to map the whole disk, at most this much. */
#define DEFAULT_L2_CACHE_MAX (32 * MiB)
#define DEFAULT_REFCOUNT_CACHE_CLUSTERS 4

static const char *const qcow2_runtime_opts[] = {
    "l2-cache-size",
    "l2-cache-entry-size",
    "refcount-cache-size",
    "cache-size",
    "cache-clean-interval",
    "lazy-refcounts",
    "pass-discard-request",
    "pass-discard-snapshot",
    "pass-discard-other",
    "overlap-check",
    "discard-no-unref",
    NULL,
};

/* Names of the feature bits, for the feature table and error messages. */
typedef struct Qcow2Feature {
    uint8_t type;       /* 0 incompatible, 1 compatible, 2 autoclear */
    uint8_t bit;
    const char *name;
} Qcow2Feature;

static const Qcow2Feature qcow2_features[] = {
    { 0, 0, "dirty bit" },
    { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" },
    { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },
    { 2, 1, "raw external data" },
};

/* ---- running coroutine code from outside coroutines ---- */

typedef struct Qcow2CoCall {
    int (*fn)(void *opaque);
    void *opaque;
    int ret;
    bool done;
} Qcow2CoCall;

static void coroutine_fn qcow2_co_call_entry(void *opaque)
{
    Qcow2CoCall *call = opaque;

    call->ret = call->fn(call->opaque);
    call->done = true;
}

/* Runs @fn in a coroutine (directly if already in one) and waits for it. */
static int qcow2_run_co(int (*fn)(void *opaque), void *opaque)
{
    Qcow2CoCall call = { .fn = fn, .opaque = opaque };

    if (qemu_in_coroutine()) {
        return fn(opaque);
    }
    qemu_coroutine_enter(qemu_coroutine_create(qcow2_co_call_entry, &call));
    while (!call.done) {
        aio_poll(qemu_get_aio_context(), true);
    }
    return call.ret;
}

/* ---- probe ---- */

static int qcow2_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    if (buf_size >= 8 && be32_get(buf) == QCOW_MAGIC &&
        be32_get(buf + 4) >= 2) {
        return 100;
    }
    return 0;
}

/* ---- header ---- */

static void header_parse(QCowHeader *h, const uint8_t *b, size_t len)
{
    memset(h, 0, sizeof(*h));
    h->magic = be32_get(b);
    h->version = be32_get(b + 4);
    h->backing_file_offset = be64_get(b + 8);
    h->backing_file_size = be32_get(b + 16);
    h->cluster_bits = be32_get(b + 20);
    h->size = be64_get(b + 24);
    h->crypt_method = be32_get(b + 32);
    h->l1_size = be32_get(b + 36);
    h->l1_table_offset = be64_get(b + 40);
    h->refcount_table_offset = be64_get(b + 48);
    h->refcount_table_clusters = be32_get(b + 56);
    h->nb_snapshots = be32_get(b + 60);
    h->snapshots_offset = be64_get(b + 64);
    if (h->version >= 3 && len >= QCOW2_V3_HEADER_LEN) {
        h->incompatible_features = be64_get(b + 72);
        h->compatible_features = be64_get(b + 80);
        h->autoclear_features = be64_get(b + 88);
        h->refcount_order = be32_get(b + 96);
        h->header_length = be32_get(b + 100);
        if (len > 104 && h->header_length > 104) {
            h->compression_type = b[104];
        }
    } else {
        h->refcount_order = 4;
        h->header_length = QCOW2_V2_HEADER_LEN;
    }
}

/* Appends one header extension (padded to 8 bytes) at *pos. */
static bool header_put_ext(uint8_t *buf, size_t buf_len, size_t *pos,
                           uint32_t magic, const void *data, uint32_t len)
{
    size_t need = 8 + ROUND_UP((size_t)len, 8);

    if (*pos + need > buf_len) {
        return false;
    }
    be32_put(buf + *pos, magic);
    be32_put(buf + *pos + 4, len);
    memcpy(buf + *pos + 8, data, len);
    memset(buf + *pos + 8 + len, 0, need - 8 - len);
    *pos += need;
    return true;
}

/*
 * Builds the whole first cluster: header, extensions (backing format,
 * feature table for v3, preserved ones verbatim), end marker and the
 * backing file name.  Returns the buffer length used or -ENOSPC.
 */
static int header_build(BlockDriverState *bs, uint8_t *buf, size_t buf_len,
                        const char *backing_file, const char *backing_fmt)
{
    BDRVQcow2State *s = bs->opaque;
    size_t pos, hlen;
    Qcow2UnknownExt *ext;
    size_t blen = backing_file ? strlen(backing_file) : 0;

    memset(buf, 0, buf_len);
    hlen = s->qcow_version >= 3 ? MAX(QCOW2_V3_HEADER_LEN_FULL,
                                      s->header_length)
                                : QCOW2_V2_HEADER_LEN;
    if (hlen > buf_len) {
        return -ENOSPC;
    }
    be32_put(buf, QCOW_MAGIC);
    be32_put(buf + 4, s->qcow_version);
    be32_put(buf + 20, s->cluster_bits);
    be64_put(buf + 24, s->size);
    be32_put(buf + 32, 0);
    be32_put(buf + 36, s->l1_size);
    be64_put(buf + 40, s->l1_table_offset);
    be64_put(buf + 48, s->refcount_table_offset);
    be32_put(buf + 56, (uint64_t)s->refcount_table_size * 8 >>
                       s->cluster_bits);
    be32_put(buf + 60, s->nb_snapshots);
    be64_put(buf + 64, s->snapshots_offset);
    if (s->qcow_version >= 3) {
        be64_put(buf + 72, s->incompatible_features);
        be64_put(buf + 80, s->compatible_features);
        be64_put(buf + 88, s->autoclear_features);
        be32_put(buf + 96, s->refcount_order);
        be32_put(buf + 100, hlen);
        buf[104] = s->compression_type;
        if (s->extra_header_len) {
            memcpy(buf + QCOW2_V3_HEADER_LEN_FULL, s->extra_header,
                   s->extra_header_len);
        }
    }
    pos = hlen;

    if (backing_file && backing_fmt && *backing_fmt &&
        !header_put_ext(buf, buf_len, &pos, QCOW2_EXT_MAGIC_BACKING_FORMAT,
                        backing_fmt, strlen(backing_fmt))) {
        return -ENOSPC;
    }
    /*
     * The feature name table is optional.  qemu-img 7.2 leaves it out of
     * images with clusters of 4 KiB and less (where it would crowd the
     * backing file name out of the first cluster); so do we, so that the
     * headers are the same.
     */
    if (s->qcow_version >= 3 && s->cluster_size > 4096) {
        uint8_t table[ARRAY_SIZE(qcow2_features) * 48];
        size_t i;
        memset(table, 0, sizeof(table));
        for (i = 0; i < ARRAY_SIZE(qcow2_features); i++) {
            table[i * 48] = qcow2_features[i].type;
            table[i * 48 + 1] = qcow2_features[i].bit;
            strncpy((char *)table + i * 48 + 2, qcow2_features[i].name, 46);
        }
        if (!header_put_ext(buf, buf_len, &pos, QCOW2_EXT_MAGIC_FEATURE_TABLE,
                            table, sizeof(table))) {
            return -ENOSPC;
        }
    }
    if (s->nb_bitmaps) {
        uint8_t ext[24];
        qcow2_build_bitmaps_ext(bs, ext);
        if (!header_put_ext(buf, buf_len, &pos, QCOW2_EXT_MAGIC_BITMAPS,
                            ext, sizeof(ext))) {
            return -ENOSPC;
        }
    }
    QTAILQ_FOREACH(ext, &s->unknown_exts, next) {
        if (!header_put_ext(buf, buf_len, &pos, ext->magic, ext->data,
                            ext->len)) {
            return -ENOSPC;
        }
    }
    /* End of extensions. */
    if (pos + 8 > buf_len) {
        return -ENOSPC;
    }
    pos += 8;
    if (blen) {
        if (pos + blen > buf_len) {
            return -ENOSPC;
        }
        memcpy(buf + pos, backing_file, blen);
        be64_put(buf + 8, pos);
        be32_put(buf + 16, blen);
        pos += blen;
    }
    return pos;
}

static int coroutine_fn update_header_with(BlockDriverState *bs,
                                           const char *backing_file,
                                           const char *backing_fmt)
{
    BDRVQcow2State *s = bs->opaque;
    uint8_t *buf;
    int ret;

    buf = qemu_try_memalign(4096, s->cluster_size);
    if (!buf) {
        return -ENOMEM;
    }
    ret = header_build(bs, buf, s->cluster_size, backing_file, backing_fmt);
    if (ret >= 0) {
        ret = bdrv_co_pwrite_sync(bs->file, 0, s->cluster_size, buf, 0);
    }
    qemu_vfree(buf);
    return ret;
}

int coroutine_fn qcow2_update_header(BlockDriverState *bs)
{
    return update_header_with(bs, bs->backing_file[0] ? bs->backing_file
                                                      : NULL,
                              bs->backing_format);
}

/* Writes only the incompatible feature field (v3). */
static int coroutine_fn write_incompat(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint8_t b[8];

    be64_put(b, s->incompatible_features);
    return bdrv_co_pwrite_sync(bs->file, 72, 8, b, 0);
}

int coroutine_fn qcow2_mark_clean(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    if (!(s->incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        return 0;
    }
    s->incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
    return write_incompat(bs);
}

void coroutine_fn qcow2_signal_corruption(BlockDriverState *bs,
                                          const char *fmt, ...)
{
    BDRVQcow2State *s = bs->opaque;
    char *msg;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    if (s->corrupt_stop) {
        g_free(msg);
        return;
    }
    /* QEMU prints these without the program name in front. */
    if (bdrv_is_read_only(bs)) {
        fprintf(stderr, "qcow2: Image is corrupt: %s; further non-fatal "
                "corruption events will be suppressed\n", msg);
    } else {
        fprintf(stderr, "qcow2: Marking image as corrupt: %s; further "
                "corruption events will be suppressed\n", msg);
        /* Stop writing before touching the header, then mark it. */
        s->corrupt_stop = true;
        if (s->qcow_version >= 3) {
            s->incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
            write_incompat(bs);
        }
    }
    g_free(msg);
}

/* ---- open ---- */

static const char *feature_name(GArray *table, int type, int bit)
{
    guint i;

    for (i = 0; table && i < table->len; i++) {
        Qcow2Feature *f = &g_array_index(table, Qcow2Feature, i);
        if (f->type == type && f->bit == bit) {
            return f->name;
        }
    }
    return NULL;
}

static void report_unsupported_features(GArray *table, uint64_t mask,
                                        Error **errp)
{
    GString *str = g_string_new(NULL);
    int bit;

    for (bit = 0; bit < 64; bit++) {
        const char *name;
        if (!(mask & (1ULL << bit))) {
            continue;
        }
        if (str->len) {
            g_string_append(str, ", ");
        }
        name = feature_name(table, 0, bit);
        if (name) {
            g_string_append(str, name);
        } else {
            g_string_append_printf(str, "Unknown incompatible feature: %"
                                   PRIx64, (uint64_t)1 << bit);
        }
    }
    error_setg(errp, "Unsupported qcow2 feature(s): %s", str->str);
    g_string_free(str, true);
}

static void feature_table_free(GArray *table)
{
    guint i;

    if (!table) {
        return;
    }
    for (i = 0; i < table->len; i++) {
        g_free((char *)g_array_index(table, Qcow2Feature, i).name);
    }
    g_array_free(table, true);
}

/* Parses the header extensions in buf[start, end). */
static int read_extensions(BlockDriverState *bs, const uint8_t *buf,
                           size_t start, size_t end, GArray **features,
                           Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    size_t pos = start;

    while (pos + 8 <= end) {
        uint32_t magic = be32_get(buf + pos);
        uint32_t len = be32_get(buf + pos + 4);
        const uint8_t *data = buf + pos + 8;

        if (magic == QCOW2_EXT_MAGIC_END) {
            return 0;
        }
        if (len > end - pos - 8) {
            error_setg(errp, "Header extension too large");
            return -EINVAL;
        }
        switch (magic) {
        case QCOW2_EXT_MAGIC_BACKING_FORMAT:
            if (len >= sizeof(bs->backing_format)) {
                error_setg(errp, "ERROR: ext_backing_format: len=%u too "
                           "large (>=%zu)", len, sizeof(bs->backing_format));
                return -EINVAL;
            }
            memcpy(bs->backing_format, data, len);
            bs->backing_format[len] = 0;
            break;
        case QCOW2_EXT_MAGIC_FEATURE_TABLE: {
            uint32_t i;
            if (!*features) {
                *features = g_array_new(false, false, sizeof(Qcow2Feature));
            }
            for (i = 0; i + 48 <= len; i += 48) {
                Qcow2Feature f = {
                    .type = data[i],
                    .bit = data[i + 1],
                    .name = g_strndup((const char *)data + i + 2, 46),
                };
                g_array_append_val(*features, f);
            }
            break;
        }
        case QCOW2_EXT_MAGIC_BITMAPS: {
            int ret = qcow2_read_bitmaps_ext(bs, data, len, errp);
            if (ret < 0) {
                return ret;
            }
            break;
        }
        default: {
            /* Preserved verbatim (data file name, unknown). */
            Qcow2UnknownExt *ext = g_new0(Qcow2UnknownExt, 1);
            ext->magic = magic;
            ext->len = len;
            ext->data = g_memdup2(data, len);
            QTAILQ_INSERT_TAIL(&s->unknown_exts, ext, next);
            break;
        }
        }
        pos += 8 + ROUND_UP((size_t)len, 8);
    }
    return 0;
}

static void free_unknown_exts(BDRVQcow2State *s)
{
    Qcow2UnknownExt *ext, *next;

    QTAILQ_FOREACH_SAFE(ext, &s->unknown_exts, next, next) {
        QTAILQ_REMOVE(&s->unknown_exts, ext, next);
        g_free(ext->data);
        g_free(ext);
    }
}

static bool table_offset_valid(BDRVQcow2State *s, uint64_t offset,
                               uint64_t entries, uint64_t entry_len)
{
    uint64_t size = entries * entry_len;

    return !offset_into_cluster(s, offset) && offset < (1ULL << 62) &&
           size < (1ULL << 62) - offset;
}

static int parse_cache_options(BlockDriverState *bs, QDict *options,
                               Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t total, l2, rc, interval;
    bool has_total = qdict_haskey(options, "cache-size");
    bool has_l2 = qdict_haskey(options, "l2-cache-size");
    bool has_rc = qdict_haskey(options, "refcount-cache-size");
    /* Enough to map the whole disk (entries are 16 bytes with subclusters). */
    uint64_t max_l2 = MAX(s->size / (s->cluster_size /
                                     (s->extended_l2 ? 16 : 8)),
                          2 * (uint64_t)s->cluster_size);
    int l2_tables, rc_tables;

    if (!qdict_get_size_opt(options, "cache-size", 0, &total, errp) ||
        !qdict_get_size_opt(options, "l2-cache-size", 0, &l2, errp) ||
        !qdict_get_size_opt(options, "refcount-cache-size", 0, &rc, errp) ||
        !qdict_get_size_opt(options, "cache-clean-interval", 600, &interval,
                            errp)) {
        return -EINVAL;
    }
    if (has_total && has_l2 && has_rc) {
        if (l2 + rc != total) {
            error_setg(errp, "l2-cache-size (%" PRIu64 ") + "
                       "refcount-cache-size (%" PRIu64 ") != cache-size (%"
                       PRIu64 ")", l2, rc, total);
            return -EINVAL;
        }
    } else if (has_total && has_l2) {
        if (l2 > total) {
            error_setg(errp, "l2-cache-size may not exceed cache-size");
            return -EINVAL;
        }
        rc = total - l2;
    } else if (has_total && has_rc) {
        if (rc > total) {
            error_setg(errp, "refcount-cache-size may not exceed cache-size");
            return -EINVAL;
        }
        l2 = total - rc;
    } else if (has_total) {
        rc = MIN(total / 4, (uint64_t)DEFAULT_REFCOUNT_CACHE_CLUSTERS *
                            s->cluster_size);
        l2 = MIN(total - rc, max_l2);
    } else {
        if (!has_l2) {
            l2 = MIN(max_l2, (uint64_t)DEFAULT_L2_CACHE_MAX);
        }
        if (!has_rc) {
            rc = (uint64_t)DEFAULT_REFCOUNT_CACHE_CLUSTERS * s->cluster_size;
        }
    }
    if (interval > UINT32_MAX) {
        error_setg(errp, "Cache clean interval too big");
        return -EINVAL;
    }
    l2_tables = MIN(MAX(l2 / s->cluster_size, 2), 65536);
    rc_tables = MIN(MAX(rc / s->cluster_size, 4), 65536);
    s->l2_table_cache = qcow2_cache_create(bs, l2_tables, s->cluster_size);
    s->refcount_block_cache = qcow2_cache_create(bs, rc_tables,
                                                 s->cluster_size);
    if (!s->l2_table_cache || !s->refcount_block_cache) {
        error_setg(errp, "Could not allocate metadata caches");
        return -ENOMEM;
    }
    qcow2_cache_mark_l2(s->l2_table_cache);
    /* L2 tables are written only after the refcounts they rely on. */
    qcow2_cache_set_dependency(s->l2_table_cache, s->refcount_block_cache);
    return 0;
}

static int parse_runtime_options(BlockDriverState *bs, QDict *options,
                                 int flags, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    bool lazy, req, snap, other;
    const char *overlap;

    if (!qdict_get_bool_opt(options, "lazy-refcounts", false, &lazy, errp) ||
        !qdict_get_bool_opt(options, "pass-discard-request",
                            !!(flags & BDRV_O_UNMAP), &req, errp) ||
        !qdict_get_bool_opt(options, "pass-discard-snapshot", true, &snap,
                            errp) ||
        !qdict_get_bool_opt(options, "pass-discard-other", false, &other,
                            errp)) {
        return -EINVAL;
    }
    if (lazy) {
        error_setg(errp, "Lazy refcounts are not supported");
        return -ENOTSUP;
    }
    overlap = qdict_get_try_str(options, "overlap-check");
    if (overlap && strcmp(overlap, "none") && strcmp(overlap, "constant") &&
        strcmp(overlap, "cached") && strcmp(overlap, "all")) {
        error_setg(errp, "Unsupported value '%s' for qcow2 option "
                   "'overlap-check'. Allowed are any of the following: "
                   "none, constant, cached, all", overlap);
        return -EINVAL;
    }
    s->discard_passthrough[QCOW2_DISCARD_NEVER] = false;
    s->discard_passthrough[QCOW2_DISCARD_ALWAYS] = true;
    s->discard_passthrough[QCOW2_DISCARD_REQUEST] = req;
    s->discard_passthrough[QCOW2_DISCARD_SNAPSHOT] = snap;
    s->discard_passthrough[QCOW2_DISCARD_OTHER] = other;
    return 0;
}

/* Validates the header fields; fills the derived state. */
static int apply_header(BlockDriverState *bs, QCowHeader *h, int64_t file_len,
                        Error **errp)
{
    BDRVQcow2State *s = bs->opaque;

    if (h->magic != QCOW_MAGIC) {
        error_setg(errp, "Image is not in qcow2 format");
        return -EINVAL;
    }
    if (h->version < 2 || h->version > 3) {
        error_setg(errp, "Unsupported qcow2 version %" PRIu32, h->version);
        return -ENOTSUP;
    }
    if (h->cluster_bits < QCOW_MIN_CLUSTER_BITS ||
        h->cluster_bits > QCOW_MAX_CLUSTER_BITS) {
        error_setg(errp, "Unsupported cluster size: 2^%" PRIu32,
                   h->cluster_bits);
        return -EINVAL;
    }
    s->qcow_version = h->version;
    s->cluster_bits = h->cluster_bits;
    s->cluster_size = 1 << s->cluster_bits;
    if (h->version >= 3) {
        if (h->header_length < QCOW2_V3_HEADER_LEN) {
            error_setg(errp, "qcow2 header too short");
            return -EINVAL;
        }
        if (h->header_length > s->cluster_size) {
            error_setg(errp, "qcow2 header exceeds cluster size");
            return -EINVAL;
        }
    }
    if (h->backing_file_offset > s->cluster_size) {
        error_setg(errp, "Invalid backing file offset");
        return -EINVAL;
    }
    if (h->refcount_order > 6) {
        error_setg(errp, "Reference count entry width too large; may not "
                   "exceed 64 bits");
        return -EINVAL;
    }
    if (h->crypt_method > 2) {
        error_setg(errp, "Unsupported encryption method %" PRIu32,
                   h->crypt_method);
        return -EINVAL;
    }
    if (h->crypt_method) {
        error_setg(errp, "Encrypted qcow2 images are not supported");
        return -ENOTSUP;
    }
    s->size = h->size;
    s->extended_l2 = h->version >= 3 &&
                     (h->incompatible_features & QCOW2_INCOMPAT_EXTL2);
    if (s->extended_l2 &&
        s->cluster_bits < QCOW_EXTL2_MIN_CLUSTER_BITS) {
        error_setg(errp, "Unsupported subcluster size: %d",
                   s->cluster_size / QCOW_EXTL2_SUBCLUSTERS);
        return -EINVAL;
    }
    s->subcluster_bits = s->cluster_bits -
                         (s->extended_l2 ? QCOW_EXTL2_SUBCLUSTER_SHIFT : 0);
    s->subcluster_size = 1 << s->subcluster_bits;
    s->l2_bits = s->cluster_bits - (s->extended_l2 ? 4 : 3);
    s->l2_size = 1 << s->l2_bits;
    s->csize_shift = 62 - (s->cluster_bits - 8);
    s->csize_mask = (1ULL << (s->cluster_bits - 8)) - 1;
    s->cluster_offset_mask = (1ULL << s->csize_shift) - 1;
    qcow2_refcount_set_order(s, h->refcount_order);
    s->incompatible_features = h->incompatible_features;
    s->compatible_features = h->compatible_features;
    s->autoclear_features = h->autoclear_features;
    s->compression_type = h->compression_type;

    if (h->refcount_table_clusters == 0) {
        error_setg(errp, "Image does not contain a reference count table");
        return -EINVAL;
    }
    if ((uint64_t)h->refcount_table_clusters << s->cluster_bits >
        QCOW_MAX_REFTABLE_SIZE) {
        error_setg(errp, "Reference count table too large");
        return -EINVAL;
    }
    s->refcount_table_offset = h->refcount_table_offset;
    s->refcount_table_size = ((uint64_t)h->refcount_table_clusters
                              << s->cluster_bits) / 8;
    if (!s->refcount_table_offset ||
        !table_offset_valid(s, s->refcount_table_offset,
                            s->refcount_table_size, 8)) {
        error_setg(errp, "Reference count table offset invalid");
        return -EINVAL;
    }
    if (h->nb_snapshots > 65536) {
        error_setg(errp, "Too many snapshots");
        return -EINVAL;
    }
    if (h->nb_snapshots && !table_offset_valid(s, h->snapshots_offset, 1, 8)) {
        error_setg(errp, "Invalid snapshot table offset");
        return -EINVAL;
    }
    s->nb_snapshots = h->nb_snapshots;
    s->snapshots_offset = h->snapshots_offset;

    if ((uint64_t)h->l1_size * 8 > QCOW_MAX_L1_SIZE) {
        error_setg(errp, "Active L1 table too large");
        return -EFBIG;
    }
    /*
     * QEMU's order: a size whose L1 index does not fit an int is "too
     * big"; otherwise an L1 table that cannot map the whole disk is "too
     * small" before any other size limit applies.
     */
    if (qcow2_l1_size_for(s->cluster_bits, s->extended_l2, h->size) >
        INT_MAX) {
        error_setg(errp, "Image is too big");
        return -EFBIG;
    }
    if (qcow2_l1_size_for(s->cluster_bits, s->extended_l2, h->size) >
        h->l1_size) {
        error_setg(errp, "L1 table is too small");
        return -EINVAL;
    }
    if (h->size > (uint64_t)(QCOW_MAX_L1_SIZE / 8) <<
                  qcow2_l2_cover_bits(s->cluster_bits, s->extended_l2) ||
        h->size > INT64_MAX / 2) {
        error_setg(errp, "Image is too big");
        return -EFBIG;
    }
    if (h->l1_size && !table_offset_valid(s, h->l1_table_offset,
                                          h->l1_size, 8)) {
        error_setg(errp, "Active L1 table offset invalid");
        return -EINVAL;
    }
    s->l1_size = h->l1_size;
    s->l1_table_offset = h->l1_table_offset;
    return 0;
}

typedef struct Qcow2OpenCo {
    BlockDriverState *bs;
    QDict *options;
    int flags;
    Error **errp;
} Qcow2OpenCo;

static int coroutine_fn read_l1_table(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint32_t i;
    int ret;

    qcow2_metadata_map_invalidate(s);
    s->l1_table = g_try_new0(uint64_t, MAX(s->l1_size, 1));
    if (!s->l1_table) {
        error_setg(errp, "Could not allocate L1 table");
        return -ENOMEM;
    }
    if (!s->l1_size) {
        return 0;
    }
    ret = bdrv_co_pread(bs->file, s->l1_table_offset, s->l1_size * 8,
                        s->l1_table, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read L1 table");
        return ret;
    }
    for (i = 0; i < s->l1_size; i++) {
        s->l1_table[i] = GUINT64_FROM_BE(s->l1_table[i]);
    }
    return 0;
}

static int coroutine_fn qcow2_do_open(void *opaque)
{
    Qcow2OpenCo *o = opaque;
    BlockDriverState *bs = o->bs;
    BDRVQcow2State *s = bs->opaque;
    Error **errp = o->errp;
    GArray *features = NULL;
    uint8_t *buf = NULL;
    QCowHeader h;
    int64_t file_len;
    size_t ext_end, ext_start, head_len;
    uint64_t unsupported;
    Error *local_err = NULL;
    int ret;

    file_len = bdrv_getlength(bs->file->bs);
    if (file_len < 0) {
        error_setg_errno(errp, -file_len, "Could not get the image size");
        return file_len;
    }
    head_len = MIN((uint64_t)file_len, 2 * MiB);
    if (head_len < QCOW2_V2_HEADER_LEN) {
        error_setg(errp, "Image is not in qcow2 format");
        return -EINVAL;
    }
    buf = g_malloc0(MAX(head_len, QCOW2_V3_HEADER_LEN_FULL));
    ret = bdrv_co_pread(bs->file, 0, head_len, buf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read qcow2 header");
        goto out;
    }
    header_parse(&h, buf, head_len);
    ret = apply_header(bs, &h, file_len, errp);
    if (ret < 0) {
        goto out;
    }
    if (h.version >= 3 && h.header_length > head_len) {
        error_setg(errp, "qcow2 header exceeds cluster size");
        ret = -EINVAL;
        goto out;
    }
    s->header_length = h.header_length;
    if (s->header_length > QCOW2_V3_HEADER_LEN_FULL) {
        s->extra_header_len = s->header_length - QCOW2_V3_HEADER_LEN_FULL;
        s->extra_header = g_memdup2(buf + QCOW2_V3_HEADER_LEN_FULL,
                                    s->extra_header_len);
    }

    ext_start = h.version >= 3 ? h.header_length : QCOW2_V2_HEADER_LEN;
    ext_end = h.backing_file_offset ? h.backing_file_offset
                                    : MIN((size_t)s->cluster_size, head_len);
    ext_end = MIN(ext_end, head_len);
    if (ext_start < ext_end) {
        ret = read_extensions(bs, buf, ext_start, ext_end, &features, errp);
        if (ret < 0) {
            goto out;
        }
    }

    unsupported = s->incompatible_features & ~QCOW2_INCOMPAT_SUPPORTED;
    if (unsupported) {
        report_unsupported_features(features, unsupported, errp);
        ret = -ENOTSUP;
        goto out;
    }
    if (s->compression_type != 0) {
        error_setg(errp, "Invalid compression type %u", s->compression_type);
        ret = -EINVAL;
        goto out;
    }
    if ((s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) &&
        !bdrv_is_read_only(bs) && !(o->flags & BDRV_O_CHECK)) {
        error_setg(errp, "qcow2: Image is corrupt; cannot be opened "
                   "read/write");
        ret = -EACCES;
        goto out;
    }

    if (h.backing_file_offset) {
        if (h.backing_file_size > QCOW_MAX_BACKING_NAME ||
            h.backing_file_offset + h.backing_file_size > head_len ||
            h.backing_file_offset + h.backing_file_size > s->cluster_size) {
            error_setg(errp, "Backing file name too long");
            ret = -EINVAL;
            goto out;
        }
        memcpy(bs->backing_file, buf + h.backing_file_offset,
               h.backing_file_size);
        bs->backing_file[h.backing_file_size] = 0;
    }

    ret = parse_runtime_options(bs, o->options, o->flags, errp);
    if (ret < 0) {
        goto out;
    }
    ret = parse_cache_options(bs, o->options, errp);
    if (ret < 0) {
        goto out;
    }
    ret = read_l1_table(bs, errp);
    if (ret < 0) {
        goto out;
    }
    ret = qcow2_refcount_init(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not initialize refcount handling");
        goto out;
    }
    s->free_cluster_index = 0;
    s->alloc_end_index = size_to_clusters(s, file_len);

    if (!bdrv_is_read_only(bs) && !(o->flags & BDRV_O_CHECK) &&
        (s->incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        /* Refcounts may be stale: rebuild them before any allocation. */
        BdrvCheckResult res = { 0 };
        ret = qcow2_check_refcounts(bs, &res, BDRV_FIX_LEAKS |
                                              BDRV_FIX_ERRORS);
        if (ret < 0 || res.check_errors) {
            error_setg_errno(errp, ret < 0 ? -ret : EIO,
                             "Could not repair dirty image");
            ret = ret < 0 ? ret : -EIO;
            goto out;
        }
        ret = qcow2_mark_clean(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update qcow2 header");
            goto out;
        }
    }
    if (!bdrv_is_read_only(bs)) {
        /*
         * Unknown autoclear bits are cleared before we write anything; the
         * bitmaps bit stays while a valid extension is present.  A stale
         * extension (bit clear) is dropped from the header.
         */
        uint64_t keep = s->nb_bitmaps ? QCOW2_AUTOCLEAR_BITMAPS : 0;
        if ((s->autoclear_features & ~keep) || s->bitmaps_ext_dropped) {
            s->autoclear_features &= keep;
            ret = qcow2_update_header(bs);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not update qcow2 header");
                goto out;
            }
        }
    }
    /* Bitmaps are sized by the node's length. */
    bs->total_sectors = DIV_ROUND_UP(s->size, BDRV_SECTOR_SIZE);
    ret = qcow2_load_dirty_bitmaps(bs, &local_err);
    if (ret < 0 && (o->flags & BDRV_O_CHECK)) {
        /* A damaged directory must not keep check from running. */
        error_free(local_err);
        ret = 0;
    } else if (ret < 0) {
        error_propagate(errp, local_err);
    }
out:
    feature_table_free(features);
    g_free(buf);
    return ret;
}

static void qcow2_free_state(BDRVQcow2State *s)
{
    qcow2_cache_destroy(s->l2_table_cache);
    qcow2_cache_destroy(s->refcount_block_cache);
    s->l2_table_cache = NULL;
    s->refcount_block_cache = NULL;
    g_free(s->l1_table);
    s->l1_table = NULL;
    g_free(s->refcount_table);
    s->refcount_table = NULL;
    qcow2_metadata_map_invalidate(s);
    g_free(s->extra_header);
    s->extra_header = NULL;
    free_unknown_exts(s);
    qcow2_free_bitmap_dir(s);
    qcow2_alloc_track_destroy(s);
}

static int qcow2_open(BlockDriverState *bs, QDict *options, int flags,
                      Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2OpenCo o = { .bs = bs, .options = options, .flags = flags,
                      .errp = errp };
    int ret;

    bs->file = bdrv_open_child(NULL, options, "file", bs,
                               BDRV_CHILD_IMAGE | BDRV_CHILD_PRIMARY, false,
                               errp);
    if (!bs->file) {
        return -EINVAL;
    }
    qemu_co_mutex_init(&s->lock);
    qcow2_alloc_track_init(s);
    QTAILQ_INIT(&s->unknown_exts);

    ret = qcow2_run_co(qcow2_do_open, &o);
    if (ret < 0) {
        qcow2_free_state(s);
        bdrv_unref_child(bs, bs->file);
        bs->file = NULL;
        return ret;
    }
    bs->supported_zero_flags = BDRV_REQ_MAY_UNMAP;
    /* Passed on with guest data only; metadata stays cached. */
    bs->supported_write_flags = bs->file->bs->supported_write_flags &
                                BDRV_REQ_DONTCACHE;
    bs->total_sectors = DIV_ROUND_UP(s->size, BDRV_SECTOR_SIZE);
    return 0;
}

static int coroutine_fn qcow2_do_close(void *opaque)
{
    BlockDriverState *bs = opaque;
    BDRVQcow2State *s = bs->opaque;
    int ret = 0;

    if (!bdrv_is_read_only(bs) && !s->corrupt_stop) {
        ret = qcow2_write_caches(bs);
        if (ret == 0) {
            ret = bdrv_co_flush(bs->file->bs);
        }
    }
    return ret;
}

static void qcow2_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret = qcow2_run_co(qcow2_do_close, bs);

    if (ret < 0) {
        error_report("qcow2: Failed to flush the metadata cache: %s",
                     strerror(-ret));
    }
    qcow2_free_state(s);
}

static void qcow2_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;

    bs->bl.request_alignment = 1;
    bs->bl.pdiscard_alignment = s->cluster_size;
    bs->bl.pwrite_zeroes_alignment = s->subcluster_size;
}

/* ---- reads ---- */

/* Reads guest data of an unallocated range from the backing file. */
static int coroutine_fn read_backing(BlockDriverState *bs, uint64_t offset,
                                     uint64_t bytes, QEMUIOVector *qiov,
                                     size_t qiov_offset)
{
    int64_t blen;
    uint64_t n = 0;
    int ret;

    if (!bs->backing) {
        qemu_iovec_memset(qiov, qiov_offset, 0, bytes);
        return 0;
    }
    blen = bdrv_getlength(bs->backing->bs);
    if (blen < 0) {
        return blen;
    }
    if (offset < (uint64_t)blen) {
        QEMUIOVector sub;
        n = MIN(bytes, blen - offset);
        qemu_iovec_init_slice(&sub, qiov, qiov_offset, n);
        BLKDBG_EVENT(bs->file, BLKDBG_READ_BACKING_AIO);
        ret = bdrv_co_preadv(bs->backing, offset, n, &sub, 0);
        qemu_iovec_destroy(&sub);
        if (ret < 0) {
            return ret;
        }
    }
    if (n < bytes) {
        qemu_iovec_memset(qiov, qiov_offset + n, 0, bytes - n);
    }
    return 0;
}

/*
 * Reads [offset, offset + bytes) of one run found by
 * qcow2_get_host_offset() into @qiov at @qiov_offset.  Called without
 * s->lock: the data of allocated clusters is read in parallel.
 */
static int coroutine_fn read_run(BlockDriverState *bs, QCow2ClusterType type,
                                 uint64_t l2_entry, uint64_t host,
                                 uint64_t offset, uint64_t bytes,
                                 QEMUIOVector *qiov, size_t qiov_offset)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    switch (type) {
    case QCOW2_CLUSTER_UNALLOCATED:
        return read_backing(bs, offset, bytes, qiov, qiov_offset);
    case QCOW2_CLUSTER_ZERO_PLAIN:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        qemu_iovec_memset(qiov, qiov_offset, 0, bytes);
        return 0;
    case QCOW2_CLUSTER_COMPRESSED: {
        uint8_t *buf = qemu_try_memalign(4096, s->cluster_size);
        if (!buf) {
            return -ENOMEM;
        }
        ret = qcow2_decompress_cluster(bs, l2_entry, buf);
        if (ret == 0) {
            qemu_iovec_from_buf(qiov, qiov_offset,
                                buf + offset_into_cluster(s, offset), bytes);
        }
        qemu_vfree(buf);
        return ret;
    }
    case QCOW2_CLUSTER_NORMAL: {
        QEMUIOVector sub;
        qemu_iovec_init_slice(&sub, qiov, qiov_offset, bytes);
        BLKDBG_EVENT(bs->file, BLKDBG_READ_AIO);
        ret = bdrv_co_preadv(bs->file, host, bytes, &sub, 0);
        qemu_iovec_destroy(&sub);
        return ret;
    }
    }
    return -EIO;
}

static int coroutine_fn qcow2_co_preadv(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, QEMUIOVector *qiov,
                                        BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    size_t qiov_offset = 0;
    int ret;

    while (bytes > 0) {
        uint64_t cur = bytes, host, l2e, bitmap;
        QCow2ClusterType type;

        qemu_co_mutex_lock(&s->lock);
        ret = qcow2_get_host_offset(bs, offset, &cur, &host, &l2e, &bitmap,
                                    &type);
        qemu_co_mutex_unlock(&s->lock);
        if (ret < 0) {
            return ret;
        }
        ret = read_run(bs, type, l2e, host, offset, cur, qiov, qiov_offset);
        if (ret < 0) {
            return ret;
        }
        offset += cur;
        bytes -= cur;
        qiov_offset += cur;
    }
    return 0;
}

/* ---- writes ---- */

static bool needs_alloc(QCow2ClusterType type, uint64_t l2e)
{
    return !(type == QCOW2_CLUSTER_NORMAL && (l2e & QCOW_OFLAG_COPIED));
}

static bool alloc_in_flight(BlockDriverState *bs, uint64_t offset,
                            uint64_t bytes)
{
    return qcow2_alloc_find_overlap(bs->opaque, offset, bytes) != NULL;
}

/*
 * The copy-on-write part [offset, offset + bytes) inside one cluster whose
 * old mapping is (@type, @l2e): reads what the guest saw there before.
 */
static int coroutine_fn cow_read(BlockDriverState *bs, QCow2ClusterType type,
                                 uint64_t l2e, uint64_t offset, uint64_t bytes,
                                 uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;
    QEMUIOVector qiov;
    uint64_t host = 0;
    int ret;

    if (!bytes) {
        return 0;
    }
    if (type == QCOW2_CLUSTER_NORMAL) {
        host = (l2e & L2E_OFFSET_MASK) + offset_into_cluster(s, offset);
    }
    qemu_iovec_init_buf(&qiov, buf, bytes);
    BLKDBG_EVENT(bs->file, BLKDBG_COW_READ);
    ret = read_run(bs, type, l2e, host, offset, bytes, &qiov, 0);
    return ret;
}

/*
 * cow_read() of a part of one cluster with extended L2 entries
 * (@l2e, @bitmap), whose subclusters may differ in type.
 */
static int coroutine_fn cow_read_subclusters(BlockDriverState *bs,
                                             uint64_t l2e, uint64_t bitmap,
                                             uint64_t offset, uint64_t bytes,
                                             uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;

    while (bytes) {
        uint64_t in_cluster = offset_into_cluster(s, offset);
        QCow2ClusterType type;
        int nb_sc = qcow2_subcluster_run(bs, l2e, bitmap,
                                         in_cluster >> s->subcluster_bits,
                                         &type);
        uint64_t n;
        int ret;

        if (nb_sc < 0) {
            return nb_sc;
        }
        n = MIN(bytes, (QEMU_ALIGN_DOWN(in_cluster, s->subcluster_size) +
                        ((uint64_t)nb_sc << s->subcluster_bits)) -
                       in_cluster);
        ret = cow_read(bs, type, l2e, offset, n, buf);
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
        buf += n;
    }
    return 0;
}

/* Does the old content of a cluster of @type read as zeroes? */
static bool cow_reads_zero(BlockDriverState *bs, QCow2ClusterType type)
{
    return type == QCOW2_CLUSTER_ZERO_PLAIN ||
           type == QCOW2_CLUSTER_ZERO_ALLOC ||
           (type == QCOW2_CLUSTER_UNALLOCATED && !bs->backing);
}

/*
 * The layout of an allocating write of [offset, offset + bytes), whose
 * first (sub)cluster has type @type and L2 entry (@l2e, @bitmap):
 *  - @host is the host offset of the first cluster, @reuse whether that
 *    is the old entry's own (preallocated or partly allocated) cluster;
 *  - the file gets [cow_start, cow_end) of the guest range, the write
 *    with the old content around it;
 *  - @by_subcluster: with extended L2 entries, when the old cluster has
 *    no data elsewhere, only the subclusters the write touches are
 *    written, and the others keep their state;
 *  - otherwise whole clusters are written (and with extended L2 entries
 *    all their subclusters become allocated).
 */
typedef struct Qcow2AllocWrite {
    uint64_t start;             /* guest offset of the first cluster */
    int nb;                     /* clusters */
    int64_t host;
    bool reuse;
    bool by_subcluster;
    uint64_t cow_start;
    uint64_t cow_end;
} Qcow2AllocWrite;

static void alloc_write_plan(BlockDriverState *bs, uint64_t offset,
                             uint64_t *bytes, uint64_t l2e,
                             Qcow2AllocWrite *w)
{
    BDRVQcow2State *s = bs->opaque;
    bool compressed = l2e & QCOW_OFLAG_COMPRESSED;
    uint64_t old_host = compressed ? 0 : l2e & L2E_OFFSET_MASK;
    uint64_t gran;

    w->start = start_of_cluster(s, offset);
    w->nb = DIV_ROUND_UP(offset - w->start + *bytes, s->cluster_size);
    /*
     * Without extended L2 entries only a preallocated zero cluster can be
     * here with a host cluster of its own.
     */
    w->reuse = old_host && (l2e & QCOW_OFLAG_COPIED);
    w->by_subcluster = s->extended_l2 && (w->reuse || (!old_host &&
                                                       !compressed));
    if (s->extended_l2 && !w->by_subcluster) {
        /* Shared or compressed data: one cluster, copied whole. */
        w->nb = 1;
        *bytes = MIN(*bytes, w->start + s->cluster_size - offset);
    }
    w->host = w->reuse ? (int64_t)old_host : 0;
    gran = w->by_subcluster ? s->subcluster_size : s->cluster_size;
    w->cow_start = QEMU_ALIGN_DOWN(offset, gran);
    w->cow_end = QEMU_ALIGN_UP(offset + *bytes, gran);
}

/* The subcluster bitmap of cluster @i of @w after the write. */
static uint64_t alloc_write_bitmap(BlockDriverState *bs,
                                   const Qcow2AllocWrite *w, int i,
                                   uint64_t old_bitmap)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cstart = w->start + (uint64_t)i * s->cluster_size;
    uint64_t lo, hi, mask;

    if (!w->by_subcluster) {
        return QCOW_L2_BITMAP_ALL_ALLOC;
    }
    lo = MAX(w->cow_start, cstart);
    hi = MIN(w->cow_end, cstart + s->cluster_size);
    mask = qcow2_subclusters_mask((lo - cstart) >> s->subcluster_bits,
                                  (hi - lo) >> s->subcluster_bits);
    return (old_bitmap | mask) & ~(mask << QCOW_EXTL2_SUBCLUSTERS);
}

/*
 * Points the L2 entries of @w at the new data (under s->lock) and frees
 * the clusters the old entries referenced.
 */
static int coroutine_fn alloc_write_link(BlockDriverState *bs,
                                         const Qcow2AllocWrite *w)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *old, *l2;
    int l2_index, i, ret;

    ret = qcow2_get_l2_for_write(bs, w->start, &l2, &l2_index);
    if (ret < 0) {
        return ret;
    }
    old = g_new(uint64_t, w->nb);
    for (i = 0; i < w->nb; i++) {
        old[i] = qcow2_l2_entry(s, l2, l2_index + i);
        qcow2_set_l2_bitmap(s, l2, l2_index + i,
                            alloc_write_bitmap(bs, w, i,
                                               qcow2_l2_bitmap(s, l2,
                                                               l2_index + i)));
        qcow2_set_l2_entry(s, l2, l2_index + i,
                           (w->host + (uint64_t)i * s->cluster_size) |
                           QCOW_OFLAG_COPIED);
    }
    BLKDBG_EVENT(bs->file, BLKDBG_L2_UPDATE);
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    for (i = 0; i < w->nb; i++) {
        QCow2ClusterType t = qcow2_get_cluster_type(bs, old[i]);
        if (t == QCOW2_CLUSTER_COMPRESSED ||
            ((t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) &&
             (old[i] & L2E_OFFSET_MASK) !=
             w->host + (uint64_t)i * s->cluster_size)) {
            qcow2_free_any_cluster(bs, old[i], QCOW2_DISCARD_OTHER);
        }
    }
    g_free(old);
    return 0;
}

/*
 * Writes guest data of [offset, offset + bytes) that needs new host
 * clusters (or a preallocated or partly allocated cluster) and links them
 * in L2.  Called with s->lock held; returns with it held.  *done is set
 * to the number of bytes handled (the run may be shortened).  @flags go
 * with the data write (copy-on-write parts included).
 */
static int coroutine_fn write_alloc(BlockDriverState *bs, uint64_t offset,
                                    uint64_t bytes, QCow2ClusterType type,
                                    uint64_t l2e, uint64_t bitmap,
                                    QEMUIOVector *qiov, size_t qiov_offset,
                                    BdrvRequestFlags flags, uint64_t *done)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2AllocWrite w;
    uint64_t head, tail_start, tail_len, last_l2e = l2e, skip = 0;
    uint8_t *head_buf = NULL, *tail_buf = NULL;
    QCowL2Meta meta;
    QEMUIOVector wq;
    uint64_t *l2;
    int l2_index, n, ret;
    bool one_type;

    alloc_write_plan(bs, offset, &bytes, l2e, &w);
    n = w.nb;
    /*
     * Do the kept head and tail read as @type?  Not when a cluster with
     * extended L2 entries is copied whole: its subclusters may differ.
     */
    one_type = w.by_subcluster || !s->extended_l2;

    /*
     * Make the L2 table writable (allocating it if needed) before the
     * data clusters are allocated: qemu-img does it in this order, so the
     * same writes lay out images the same way.
     */
    ret = qcow2_get_l2_for_write(bs, w.start, &l2, &l2_index);
    if (ret < 0) {
        return ret;
    }
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);

    if (!w.reuse) {
        w.host = qcow2_alloc_clusters(bs, w.nb, &n);
        if (w.host < 0) {
            return w.host;
        }
    }
    if (n < w.nb) {
        /* Fewer contiguous clusters: the run ends at a cluster boundary. */
        w.nb = n;
        bytes = (uint64_t)n * s->cluster_size - (offset - w.start);
        w.cow_end = offset + bytes;
    }
    *done = bytes;
    ret = qcow2_pre_write_overlap_check(bs, 0, w.host,
                                        (uint64_t)w.nb * s->cluster_size);
    if (ret < 0) {
        goto fail_free;
    }
    if (type == QCOW2_CLUSTER_NORMAL && !s->extended_l2) {
        /* Shared clusters of a run are host-contiguous. */
        last_l2e = (l2e & ~L2E_OFFSET_MASK) |
                   ((l2e & L2E_OFFSET_MASK) +
                    (uint64_t)(w.nb - 1) * s->cluster_size);
    }

    meta.guest_offset = w.start;
    meta.nb_clusters = w.nb;
    qemu_co_queue_init(&meta.waiters);
    qcow2_alloc_track_add(s, &meta);
    qemu_co_mutex_unlock(&s->lock);

    /* Copy-on-write of the parts of the first and last cluster we keep. */
    head = offset - w.cow_start;
    tail_start = offset + bytes;
    tail_len = w.cow_end - tail_start;
    qemu_iovec_init(&wq, qiov->niov + 2);
    if ((head || tail_len) && one_type && cow_reads_zero(bs, type)) {
        /*
         * The kept parts read as zeroes: zero the range in the file
         * (cheap with fallocate) instead of writing zero buffers.
         */
        if (bdrv_co_pwrite_zeroes(bs->file,
                                  w.host + (w.cow_start - w.start),
                                  w.cow_end - w.cow_start, 0) == 0) {
            skip = head;
            head = 0;
            tail_len = 0;
        }
    }
    if (head) {
        head_buf = qemu_try_memalign(4096, head);
        ret = !head_buf ? -ENOMEM :
              one_type
              ? cow_read(bs, type, l2e, w.cow_start, head, head_buf)
              : cow_read_subclusters(bs, l2e, bitmap, w.cow_start, head,
                                     head_buf);
        if (ret < 0) {
            goto fail_unlocked;
        }
        qemu_iovec_add(&wq, head_buf, head);
    }
    qemu_iovec_concat(&wq, qiov, qiov_offset, bytes);
    if (tail_len) {
        tail_buf = qemu_try_memalign(4096, tail_len);
        ret = !tail_buf ? -ENOMEM :
              one_type
              ? cow_read(bs, type, last_l2e, tail_start, tail_len, tail_buf)
              : cow_read_subclusters(bs, l2e, bitmap, tail_start, tail_len,
                                     tail_buf);
        if (ret < 0) {
            goto fail_unlocked;
        }
        qemu_iovec_add(&wq, tail_buf, tail_len);
    }
    BLKDBG_EVENT(bs->file, (head || tail_len) ? BLKDBG_COW_WRITE
                                              : BLKDBG_WRITE_AIO);
    ret = bdrv_co_pwritev(bs->file,
                          w.host + (w.cow_start - w.start) + skip,
                          wq.size, &wq, flags);
    if (ret < 0) {
        goto fail_unlocked;
    }
    qemu_iovec_destroy(&wq);
    qemu_vfree(head_buf);
    qemu_vfree(tail_buf);

    /* Data is written: now (and only now) point the L2 entries at it. */
    qemu_co_mutex_lock(&s->lock);
    ret = alloc_write_link(bs, &w);
    if (ret < 0) {
        goto fail_locked;
    }
    qcow2_alloc_track_remove(s, &meta);
    qemu_co_queue_restart_all(&meta.waiters);
    return 0;

fail_unlocked:
    qemu_iovec_destroy(&wq);
    qemu_vfree(head_buf);
    qemu_vfree(tail_buf);
    qemu_co_mutex_lock(&s->lock);
fail_locked:
    qcow2_alloc_track_remove(s, &meta);
    qemu_co_queue_restart_all(&meta.waiters);
fail_free:
    if (!w.reuse) {
        qcow2_free_clusters(bs, w.host, (uint64_t)w.nb * s->cluster_size,
                            QCOW2_DISCARD_NEVER);
    }
    return ret;
}

static int coroutine_fn qcow2_co_pwritev(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes, QEMUIOVector *qiov,
                                         BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    size_t qiov_offset = 0;
    int ret = 0;

    while (bytes > 0) {
        uint64_t cur, host, l2e, bitmap, done = 0;
        QCow2ClusterType type;

        qemu_co_mutex_lock(&s->lock);
        if (s->corrupt_stop) {
            ret = -EIO;
            goto unlock;
        }
        for (;;) {
            cur = bytes;
            ret = qcow2_get_host_offset(bs, offset, &cur, &host, &l2e,
                                        &bitmap, &type);
            if (ret < 0) {
                goto unlock;
            }
            if (!needs_alloc(type, l2e) ||
                !alloc_in_flight(bs, start_of_cluster(s, offset),
                                 offset_into_cluster(s, offset) + cur)) {
                break;
            }
            /* Someone is allocating these clusters: wait, then look again. */
            qcow2_wait_for_allocs(bs, start_of_cluster(s, offset),
                                  offset_into_cluster(s, offset) + cur);
        }
        if (!needs_alloc(type, l2e)) {
            QEMUIOVector sub;
            ret = qcow2_pre_write_overlap_check(bs, 0, host, cur);
            qemu_co_mutex_unlock(&s->lock);
            if (ret < 0) {
                return ret;
            }
            qemu_iovec_init_slice(&sub, qiov, qiov_offset, cur);
            BLKDBG_EVENT(bs->file, BLKDBG_WRITE_AIO);
            ret = bdrv_co_pwritev(bs->file, host, cur, &sub, flags);
            qemu_iovec_destroy(&sub);
            if (ret < 0) {
                return ret;
            }
            done = cur;
        } else {
            ret = write_alloc(bs, offset, cur, type, l2e, bitmap, qiov,
                              qiov_offset, flags, &done);
            qemu_co_mutex_unlock(&s->lock);
            if (ret < 0) {
                return ret;
            }
        }
        offset += done;
        bytes -= done;
        qiov_offset += done;
    }
    return 0;

unlock:
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

static int coroutine_fn qcow2_co_pwritev_compressed(BlockDriverState *bs,
                                                    int64_t offset,
                                                    int64_t bytes,
                                                    QEMUIOVector *qiov)
{
    BDRVQcow2State *s = bs->opaque;
    uint8_t *buf, *out;
    z_stream strm = { 0 };
    int64_t coffset;
    uint64_t nb_csectors, *l2, old;
    QCowL2Meta meta;
    int out_len, l2_index, ret;

    if (offset_into_cluster(s, offset)) {
        return -EINVAL;
    }
    if (bytes != s->cluster_size &&
        !(bytes < s->cluster_size && offset + bytes == (int64_t)s->size)) {
        return -EINVAL;
    }
    buf = qemu_try_memalign(4096, s->cluster_size);
    out = g_try_malloc(s->cluster_size);
    if (!buf || !out) {
        ret = -ENOMEM;
        goto out;
    }
    memset(buf, 0, s->cluster_size);
    qemu_iovec_to_buf(qiov, 0, buf, bytes);

    if (deflateInit2(&strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        ret = -EIO;
        goto out;
    }
    strm.next_in = buf;
    strm.avail_in = s->cluster_size;
    strm.next_out = out;
    strm.avail_out = s->cluster_size - 1;
    ret = deflate(&strm, Z_FINISH);
    out_len = s->cluster_size - 1 - strm.avail_out;
    deflateEnd(&strm);
    if (ret != Z_STREAM_END) {
        /* Does not compress: store the cluster uncompressed. */
        QEMUIOVector q;
        qemu_iovec_init_buf(&q, buf, bytes);
        ret = qcow2_co_pwritev(bs, offset, bytes, &q, 0);
        goto out;
    }

    qemu_co_mutex_lock(&s->lock);
    if (s->corrupt_stop) {
        ret = -EIO;
        goto unlock;
    }
    qcow2_wait_for_allocs(bs, offset, s->cluster_size);
    /* L2 table before the data, as in write_alloc(). */
    ret = qcow2_get_l2_for_write(bs, offset, &l2, &l2_index);
    if (ret < 0) {
        goto unlock;
    }
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    coffset = qcow2_alloc_bytes(bs, out_len);
    if (coffset < 0) {
        ret = coffset;
        goto unlock;
    }
    ret = qcow2_pre_write_overlap_check(bs, 0, coffset, out_len);
    if (ret < 0) {
        goto unlock;
    }
    meta.guest_offset = offset;
    meta.nb_clusters = 1;
    qemu_co_queue_init(&meta.waiters);
    qcow2_alloc_track_add(s, &meta);
    qemu_co_mutex_unlock(&s->lock);

    BLKDBG_EVENT(bs->file, BLKDBG_WRITE_COMPRESSED);
    ret = bdrv_co_pwrite(bs->file, coffset, out_len, out, 0);

    qemu_co_mutex_lock(&s->lock);
    if (ret == 0) {
        ret = qcow2_get_l2_for_write(bs, offset, &l2, &l2_index);
    }
    if (ret < 0) {
        qcow2_free_clusters(bs, coffset, out_len, QCOW2_DISCARD_NEVER);
    } else {
        nb_csectors = ((coffset + out_len - 1) >> 9) - (coffset >> 9);
        old = qcow2_l2_entry(s, l2, l2_index);
        qcow2_set_l2_entry(s, l2, l2_index,
                           QCOW_OFLAG_COMPRESSED |
                           (nb_csectors << s->csize_shift) | coffset);
        /* Reserved for compressed clusters. */
        qcow2_set_l2_bitmap(s, l2, l2_index, 0);
        BLKDBG_EVENT(bs->file, BLKDBG_L2_UPDATE_COMPRESSED);
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        qcow2_free_any_cluster(bs, old, QCOW2_DISCARD_OTHER);
    }
    qcow2_alloc_track_remove(s, &meta);
    qemu_co_queue_restart_all(&meta.waiters);
unlock:
    qemu_co_mutex_unlock(&s->lock);
out:
    qemu_vfree(buf);
    g_free(out);
    return ret;
}

static int coroutine_fn qcow2_co_pwrite_zeroes(BlockDriverState *bs,
                                               int64_t offset, int64_t bytes,
                                               BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t end = offset + bytes;
    uint64_t first = start_of_cluster(s, offset);
    int ret = 0;

    if (s->qcow_version < 3) {
        return -ENOTSUP;
    }
    /*
     * Only whole subclusters (clusters without extended L2 entries); a
     * partial last one of the disk counts.
     */
    if ((offset & (s->subcluster_size - 1)) ||
        ((end & (s->subcluster_size - 1)) && end != s->size)) {
        return -ENOTSUP;
    }
    qemu_co_mutex_lock(&s->lock);
    if (s->corrupt_stop) {
        qemu_co_mutex_unlock(&s->lock);
        return -EIO;
    }
    qcow2_wait_for_allocs(bs, first, ROUND_UP(end, s->cluster_size) - first);
    while (offset < end && ret == 0) {
        uint64_t next = start_of_cluster(s, offset) + s->cluster_size;

        if (offset_into_cluster(s, offset) || (end < next && end != s->size)) {
            /* Part of a cluster: only with extended L2 entries. */
            next = MIN(next, end);
            ret = qcow2_subcluster_zeroize(bs, offset, next - offset);
        } else {
            next = end == s->size ? ROUND_UP(end, s->cluster_size)
                                  : start_of_cluster(s, end);
            ret = qcow2_cluster_zeroize(bs, offset, next - offset,
                                        flags & BDRV_REQ_MAY_UNMAP);
        }
        offset = next;
    }
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

static int coroutine_fn qcow2_co_pdiscard(BlockDriverState *bs,
                                          int64_t offset, int64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t start = ROUND_UP(offset, s->cluster_size);
    uint64_t end = offset + bytes;
    int ret;

    if (end != s->size) {
        end = start_of_cluster(s, end);
    } else {
        end = ROUND_UP(end, s->cluster_size);
    }
    if (end <= start) {
        return 0;
    }
    qemu_co_mutex_lock(&s->lock);
    if (s->corrupt_stop) {
        ret = -EIO;
    } else {
        qcow2_wait_for_allocs(bs, start, end - start);
        ret = qcow2_cluster_discard(bs, start, end - start, false,
                                    QCOW2_DISCARD_REQUEST);
    }
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

static int coroutine_fn qcow2_co_flush_to_os(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    BLKDBG_EVENT(bs->file, BLKDBG_FLUSH_TO_OS);
    qemu_co_mutex_lock(&s->lock);
    ret = s->corrupt_stop ? 0 : qcow2_write_caches(bs);
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

static int coroutine_fn qcow2_co_block_status(BlockDriverState *bs,
                                              bool want_zero, int64_t offset,
                                              int64_t bytes, int64_t *pnum,
                                              int64_t *map,
                                              BlockDriverState **file)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cur = bytes, host, l2e, bitmap;
    QCow2ClusterType type;
    int ret;

    qemu_co_mutex_lock(&s->lock);
    ret = qcow2_get_host_offset(bs, offset, &cur, &host, &l2e, &bitmap,
                                &type);
    qemu_co_mutex_unlock(&s->lock);
    if (ret < 0) {
        return ret;
    }
    *pnum = cur;
    switch (type) {
    case QCOW2_CLUSTER_UNALLOCATED:
        return 0;
    case QCOW2_CLUSTER_ZERO_PLAIN:
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED;
    case QCOW2_CLUSTER_ZERO_ALLOC:
        *map = host;
        *file = bs->file->bs;
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID |
               BDRV_BLOCK_ALLOCATED;
    case QCOW2_CLUSTER_COMPRESSED:
        return BDRV_BLOCK_DATA | BDRV_BLOCK_COMPRESSED | BDRV_BLOCK_ALLOCATED;
    case QCOW2_CLUSTER_NORMAL:
        *map = host;
        *file = bs->file->bs;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID |
               BDRV_BLOCK_ALLOCATED;
    }
    return -EIO;
}

/* ---- truncate ---- */

/* Drops the L2 tables of L1 entries >= @first (after a shrink). */
static int coroutine_fn free_l2_tables_from(BlockDriverState *bs,
                                            uint32_t first)
{
    BDRVQcow2State *s = bs->opaque;
    uint32_t i;
    int ret;

    for (i = first; i < s->l1_size; i++) {
        uint64_t l2 = s->l1_table[i] & L1E_OFFSET_MASK;
        if (!l2) {
            continue;
        }
        s->l1_table[i] = 0;
        BLKDBG_EVENT(bs->file, BLKDBG_L1_SHRINK_WRITE_TABLE);
        ret = qcow2_write_l1_entry(bs, i);
        if (ret < 0) {
            return ret;
        }
        BLKDBG_EVENT(bs->file, BLKDBG_L1_SHRINK_FREE_L2_CLUSTERS);
        qcow2_free_clusters(bs, l2, s->cluster_size, QCOW2_DISCARD_ALWAYS);
    }
    return 0;
}

static int coroutine_fn qcow2_co_truncate(BlockDriverState *bs,
                                          int64_t offset, bool exact,
                                          PreallocMode prealloc,
                                          BdrvRequestFlags flags,
                                          Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint8_t b[8];
    int ret;

    if (prealloc != PREALLOC_MODE_OFF) {
        error_setg(errp, "Unsupported preallocation mode '%s'",
                   PreallocMode_str(prealloc));
        return -ENOTSUP;
    }
    if (offset & 511) {
        error_setg(errp, "The new size must be a multiple of 512");
        return -EINVAL;
    }
    if (s->nb_snapshots && offset < (int64_t)s->size) {
        error_setg(errp, "Can't resize an image which has snapshots");
        return -ENOTSUP;
    }
    qemu_co_mutex_lock(&s->lock);
    if ((uint64_t)offset < s->size) {
        uint64_t from = ROUND_UP(offset, s->cluster_size);
        if (from < s->size) {
            qcow2_wait_for_allocs(bs, from, s->size - from);
            ret = qcow2_cluster_discard(bs, from,
                                        ROUND_UP(s->size, s->cluster_size) -
                                        from, true, QCOW2_DISCARD_ALWAYS);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Failed to discard cropped "
                                 "clusters");
                goto out;
            }
        }
        ret = free_l2_tables_from(bs, qcow2_l1_size_for(s->cluster_bits,
                                                        s->extended_l2,
                                                        offset));
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to free L2 tables");
            goto out;
        }
    } else {
        ret = qcow2_grow_l1_table(bs, qcow2_l1_size_for(s->cluster_bits,
                                                        s->extended_l2,
                                                        offset));
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to grow the L1 table");
            goto out;
        }
    }
    ret = qcow2_write_caches(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to write metadata");
        goto out;
    }
    be64_put(b, offset);
    ret = bdrv_co_pwrite_sync(bs->file, 24, 8, b, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to update the image size");
        goto out;
    }
    s->size = offset;
    bs->total_sectors = DIV_ROUND_UP(offset, BDRV_SECTOR_SIZE);
out:
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

/* ---- info ---- */

static int64_t qcow2_getlength(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    return s->size;
}

static int64_t qcow2_get_allocated_file_size(BlockDriverState *bs)
{
    return bdrv_get_allocated_file_size(bs->file->bs);
}

static int qcow2_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    BDRVQcow2State *s = bs->opaque;

    /* VM state would start at the first L2-table span past the disk. */
    int64_t span = (int64_t)s->cluster_size * s->l2_size;

    bdi->cluster_size = s->cluster_size;
    bdi->subcluster_size = s->extended_l2 ? s->subcluster_size : 0;
    bdi->is_dirty = !!(s->incompatible_features & QCOW2_INCOMPAT_DIRTY);
    bdi->vm_state_offset = DIV_ROUND_UP(bs->total_sectors * BDRV_SECTOR_SIZE,
                                        span) * span;
    return 0;
}

static JsonNode *qcow2_get_specific_info(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    JsonBuilder *b = json_builder_new();
    JsonNode *node, *bitmaps;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "type");
    json_builder_add_string_value(b, "qcow2");
    json_builder_set_member_name(b, "data");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "compat");
    json_builder_add_string_value(b, s->qcow_version >= 3 ? "1.1" : "0.10");
    json_builder_set_member_name(b, "compression-type");
    json_builder_add_string_value(b, "zlib");
    if (s->qcow_version >= 3) {
        json_builder_set_member_name(b, "lazy-refcounts");
        json_builder_add_boolean_value(b, !!(s->compatible_features &
                                             QCOW2_COMPAT_LAZY_REFCOUNTS));
    }
    bitmaps = qcow2_get_bitmap_info_list(bs);
    if (bitmaps) {
        json_builder_set_member_name(b, "bitmaps");
        json_builder_add_value(b, bitmaps);
    }
    json_builder_set_member_name(b, "refcount-bits");
    json_builder_add_int_value(b, s->refcount_bits);
    if (s->qcow_version >= 3) {
        json_builder_set_member_name(b, "corrupt");
        json_builder_add_boolean_value(b, !!(s->incompatible_features &
                                             QCOW2_INCOMPAT_CORRUPT));
        json_builder_set_member_name(b, "extended-l2");
        json_builder_add_boolean_value(b, s->extended_l2);
    }
    json_builder_end_object(b);
    json_builder_end_object(b);
    node = json_builder_get_root(b);
    g_object_unref(b);
    return node;
}

/* ---- check ---- */

static int coroutine_fn qcow2_co_check(BlockDriverState *bs,
                                       BdrvCheckResult *result,
                                       BdrvCheckMode fix)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    qemu_co_mutex_lock(&s->lock);
    ret = qcow2_check_refcounts(bs, result, fix);
    if (ret == 0 && fix && !result->corruptions && !result->check_errors &&
        !result->leaks && !bdrv_is_read_only(bs)) {
        ret = qcow2_mark_clean(bs);
    }
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

/* ---- create ---- */

typedef struct Qcow2CreateParams {
    uint64_t size;
    int version;
    int cluster_bits;
    int refcount_order;
    const char *backing_file;
    const char *backing_fmt;
    PreallocMode prealloc;
    bool lazy_refcounts;
    bool extended_l2;
} Qcow2CreateParams;

static const CreateOptDesc qcow2_create_opts[] = {
    { "size", CREATE_OPT_SIZE, "Virtual disk size", NULL },
    { "compat", CREATE_OPT_STRING,
      "Compatibility level (v2 [0.10] or v3 [1.1])", NULL },
    { "backing_file", CREATE_OPT_STRING, "File name of a base image", NULL },
    { "backing_fmt", CREATE_OPT_STRING, "Image format of the base image",
      NULL },
    /* Listed as qemu-img lists them; using them is refused (see below). */
    { "data_file", CREATE_OPT_STRING, "File name of an external data file",
      NULL },
    { "data_file_raw", CREATE_OPT_BOOL,
      "The external data file must stay valid as a raw image", NULL },
    { "encryption", CREATE_OPT_BOOL,
      "Encrypt the image with format 'aes'. (Deprecated in favor of "
      "encrypt.format=aes)", NULL },
    { "encrypt.format", CREATE_OPT_STRING,
      "Encrypt the image, format choices: 'aes', 'luks'", NULL },
    { "encrypt.key-secret", CREATE_OPT_STRING,
      "ID of secret providing qcow AES key or LUKS passphrase", NULL },
    { "encrypt.cipher-alg", CREATE_OPT_STRING,
      "Name of encryption cipher algorithm", NULL },
    { "encrypt.cipher-mode", CREATE_OPT_STRING,
      "Name of encryption cipher mode", NULL },
    { "encrypt.ivgen-alg", CREATE_OPT_STRING,
      "Name of IV generator algorithm", NULL },
    { "encrypt.ivgen-hash-alg", CREATE_OPT_STRING,
      "Name of IV generator hash algorithm", NULL },
    { "encrypt.hash-alg", CREATE_OPT_STRING,
      "Name of encryption hash algorithm", NULL },
    { "encrypt.iter-time", CREATE_OPT_NUMBER,
      "Time to spend in PBKDF in milliseconds", NULL },
    { "cluster_size", CREATE_OPT_SIZE, "qcow2 cluster size", "65536" },
    { "extended_l2", CREATE_OPT_BOOL, "Extended L2 tables", "off" },
    { "preallocation", CREATE_OPT_STRING,
      "Preallocation mode (allowed values: off, metadata, falloc, full)",
      NULL },
    { "lazy_refcounts", CREATE_OPT_BOOL, "Postpone refcount updates", "off" },
    { "refcount_bits", CREATE_OPT_NUMBER,
      "Width of a reference count entry in bits", "16" },
    { "compression_type", CREATE_OPT_STRING,
      "Compression method used for image cluster compression", "zlib" },
    { NULL },
};

/*
 * External data files and encryption are listed (as qemu-img lists them)
 * but not implemented: refuse them, with QEMU's message where QEMU would
 * refuse the same options too.
 */
static int check_unsupported_create_opts(QDict *opts, bool encryption,
                                         Error **errp)
{
    const char *data_file = qdict_get_try_str(opts, "data_file");
    const char *enc_format = qdict_get_try_str(opts, "encrypt.format");
    bool data_file_raw, any_encrypt_opt = false;
    GList *keys, *l;

    if (!qdict_get_bool_opt(opts, "data_file_raw", false, &data_file_raw,
                            errp)) {
        return -EINVAL;
    }
    if (data_file_raw && !data_file) {
        error_setg(errp, "data-file-raw requires data-file");
        return -EINVAL;
    }
    if (data_file) {
        error_setg(errp, "External data files are not supported");
        return -ENOTSUP;
    }
    keys = qdict_keys(opts);
    for (l = keys; l; l = l->next) {
        if (g_str_has_prefix(l->data, "encrypt.")) {
            any_encrypt_opt = true;
        }
    }
    g_list_free(keys);
    if (!enc_format && encryption) {
        enc_format = "aes";
    }
    if (!enc_format && any_encrypt_opt) {
        error_setg(errp, "Parameter 'encrypt.format' is missing");
        return -EINVAL;
    }
    if (enc_format && !qdict_haskey(opts, "encrypt.key-secret")) {
        error_setg(errp, "Parameter 'encrypt.key-secret' is required for "
                   "cipher");
        return -EINVAL;
    }
    if (enc_format) {
        error_setg(errp, "Encrypted qcow2 images are not supported");
        return -ENOTSUP;
    }
    return 0;
}

static int parse_create_params(QDict *opts, Qcow2CreateParams *p,
                               Error **errp)
{
    const char *compat = qdict_get_try_str(opts, "compat");
    const char *ctype = qdict_get_try_str(opts, "compression_type");
    const char *prealloc = qdict_get_try_str(opts, "preallocation");
    uint64_t cluster_size, refcount_bits;
    bool lazy, ext_l2, encryption;
    int i, ret;

    memset(p, 0, sizeof(*p));
    if (!qdict_get_size_opt(opts, "size", 0, &p->size, errp) ||
        !qdict_get_size_opt(opts, "cluster_size", DEFAULT_CLUSTER_SIZE,
                            &cluster_size, errp) ||
        !qdict_get_size_opt(opts, "refcount_bits", 16, &refcount_bits,
                            errp) ||
        !qdict_get_bool_opt(opts, "lazy_refcounts", false, &lazy, errp) ||
        !qdict_get_bool_opt(opts, "extended_l2", false, &ext_l2, errp) ||
        !qdict_get_bool_opt(opts, "encryption", false, &encryption, errp)) {
        return -EINVAL;
    }
    if (!compat || !strcmp(compat, "1.1") || !strcmp(compat, "v3")) {
        p->version = 3;
    } else if (!strcmp(compat, "0.10") || !strcmp(compat, "v2")) {
        p->version = 2;
    } else {
        error_setg(errp, "Parameter 'version' does not accept value '%s'",
                   compat);
        return -EINVAL;
    }
    if (!is_power_of_2(cluster_size) || cluster_size < 512 ||
        cluster_size > 2 * MiB) {
        error_setg(errp, "Cluster size must be a power of two between 512 "
                   "and 2048k");
        return -EINVAL;
    }
    p->cluster_bits = ctz64(cluster_size);
    if (!is_power_of_2(refcount_bits) || refcount_bits > 64) {
        error_setg(errp, "Refcount width must be a power of two and may not "
                   "exceed 64 bits");
        return -EINVAL;
    }
    if (p->version < 3 && refcount_bits != 16) {
        error_setg(errp, "Different refcount widths than 16 bits require "
                   "compatibility level 1.1 or above (use version=v3 or "
                   "greater)");
        return -EINVAL;
    }
    p->refcount_order = ctz64(refcount_bits);
    if (lazy && p->version < 3) {
        error_setg(errp, "Lazy refcounts only supported with compatibility "
                   "level 1.1 and above (use version=v3 or greater)");
        return -EINVAL;
    }
    p->lazy_refcounts = lazy;
    if (ext_l2 && p->version < 3) {
        error_setg(errp, "Extended L2 entries are only supported with "
                   "compatibility level 1.1 and above (use version=v3 or "
                   "greater)");
        return -EINVAL;
    }
    if (ext_l2 && p->cluster_bits < QCOW_EXTL2_MIN_CLUSTER_BITS) {
        error_setg(errp, "Extended L2 entries are only supported with "
                   "cluster sizes of at least %d bytes",
                   1 << QCOW_EXTL2_MIN_CLUSTER_BITS);
        return -EINVAL;
    }
    p->extended_l2 = ext_l2;
    ret = check_unsupported_create_opts(opts, encryption, errp);
    if (ret < 0) {
        return ret;
    }
    if (ctype && strcmp(ctype, "zlib")) {
        error_setg(errp, "Compression type '%s' is not supported", ctype);
        return -ENOTSUP;
    }
    p->prealloc = PREALLOC_MODE_OFF;
    if (prealloc) {
        for (i = 0; PreallocMode_lookup.array[i]; i++) {
            if (!strcmp(prealloc, PreallocMode_lookup.array[i])) {
                p->prealloc = i;
                break;
            }
        }
        if (!PreallocMode_lookup.array[i]) {
            error_setg(errp, "Parameter 'preallocation' does not accept "
                       "value '%s'", prealloc);
            return -EINVAL;
        }
    }
    p->backing_file = qdict_get_try_str(opts, "backing_file");
    p->backing_fmt = qdict_get_try_str(opts, "backing_fmt");
    if (p->backing_file && p->prealloc != PREALLOC_MODE_OFF &&
        !p->extended_l2) {
        error_setg(errp, "Backing file and preallocation can only be used "
                   "at the same time if extended_l2 is on");
        return -EINVAL;
    }
    if (p->backing_fmt && !p->backing_file) {
        error_setg(errp, "Backing format cannot be used without backing file");
        return -EINVAL;
    }
    if (p->backing_file && strlen(p->backing_file) > QCOW_MAX_BACKING_NAME) {
        error_setg(errp, "Backing file name too long");
        return -EINVAL;
    }
    return 0;
}

/* Size of the backing image for "create -b" without a size. */
static int backing_size(const char *filename, Qcow2CreateParams *p,
                        Error **errp)
{
    char *full = path_combine(filename, p->backing_file);
    QDict *opts = NULL;
    BlockBackend *blk;
    int64_t len;

    if (p->backing_fmt) {
        opts = qdict_new();
        qdict_put_str(opts, "driver", p->backing_fmt);
    }
    blk = blk_new_open(full, NULL, opts, BDRV_O_NO_BACKING, errp);
    g_free(full);
    if (!blk) {
        error_prepend(errp, "Could not open backing file: ");
        return -EINVAL;
    }
    len = blk_getlength(blk);
    blk_unref(blk);
    if (len < 0) {
        error_setg_errno(errp, -len, "Could not get the backing file size");
        return len;
    }
    p->size = len;
    return 0;
}

/*
 * Lays out a new image: header cluster, refcount table, one refcount
 * block, L1 table (as QEMU does), written through @blk.
 */
static int write_new_image(BlockBackend *blk, Qcow2CreateParams *p,
                           Error **errp)
{
    int64_t cs = 1LL << p->cluster_bits;
    uint64_t l1_size = qcow2_l1_size_for(p->cluster_bits, p->extended_l2,
                                         p->size);
    int refcount_block_bits = p->cluster_bits + 3 - p->refcount_order;
    uint8_t *buf;
    int ret;

    if (l1_size * 8 > QCOW_MAX_L1_SIZE) {
        error_setg(errp, "The image size is too large (try using a larger "
                   "cluster size)");
        return -EFBIG;
    }
    buf = g_malloc0(cs);
    /* Refcount table: one block at cluster 2. */
    be64_put(buf, 2 * cs);
    ret = blk_pwrite(blk, cs, cs, buf, 0);
    if (ret < 0) {
        goto out;
    }
    /* Refcount block: header, table, block and the L1 clusters. */
    memset(buf, 0, cs);
    {
        int64_t l1_clusters = DIV_ROUND_UP(l1_size * 8, cs);
        int64_t i, used = 3 + MAX(l1_clusters, 1);
        if (used > (1LL << refcount_block_bits)) {
            error_setg(errp, "The image size is too large for this "
                       "cluster size");
            ret = -EFBIG;
            goto out;
        }
        for (i = 0; i < used; i++) {
            qcow2_refblock_set(buf, p->refcount_order, i, 1);
        }
    }
    ret = blk_pwrite(blk, 2 * cs, cs, buf, 0);
    if (ret < 0) {
        goto out;
    }
    memset(buf, 0, cs);
    if (l1_size) {
        uint8_t *l1 = g_malloc0(l1_size * 8);
        ret = blk_pwrite(blk, 3 * cs, l1_size * 8, l1, 0);
        g_free(l1);
        if (ret < 0) {
            goto out;
        }
    }
    /* A minimal header; the driver rewrites it fully after opening. */
    be32_put(buf, QCOW_MAGIC);
    be32_put(buf + 4, p->version);
    be32_put(buf + 20, p->cluster_bits);
    be64_put(buf + 24, p->size);
    be32_put(buf + 36, l1_size);
    be64_put(buf + 40, 3 * cs);
    be64_put(buf + 48, cs);
    be32_put(buf + 56, 1);
    if (p->version >= 3) {
        be64_put(buf + 72, p->extended_l2 ? QCOW2_INCOMPAT_EXTL2 : 0);
        be64_put(buf + 80, p->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS
                                             : 0);
        be32_put(buf + 96, p->refcount_order);
        be32_put(buf + 100, QCOW2_V3_HEADER_LEN_FULL);
    }
    ret = blk_pwrite(blk, 0, cs, buf, 0);
out:
    g_free(buf);
    if (ret < 0 && errp && !*errp) {
        error_setg_errno(errp, -ret, "Could not write qcow2 header");
    }
    return ret;
}

typedef struct Qcow2PreallocCo {
    BlockDriverState *bs;
    PreallocMode mode;
} Qcow2PreallocCo;

/* Allocates L2 tables and data clusters for the whole disk. */
static int coroutine_fn qcow2_do_prealloc(void *opaque)
{
    Qcow2PreallocCo *pc = opaque;
    BlockDriverState *bs = pc->bs;
    BDRVQcow2State *s = bs->opaque;
    uint64_t offset = 0;
    int64_t end_offset;
    int ret = 0;

    qemu_co_mutex_lock(&s->lock);
    while (offset < s->size) {
        uint64_t *l2;
        int l2_index, n, i;
        int64_t host;
        uint64_t left = size_to_clusters(s, s->size - offset);

        ret = qcow2_get_l2_for_write(bs, offset, &l2, &l2_index);
        if (ret < 0) {
            break;
        }
        n = MIN(left, (uint64_t)(s->l2_size - l2_index));
        host = qcow2_alloc_clusters(bs, n, &n);
        if (host < 0) {
            qcow2_cache_put(s->l2_table_cache, (void **)&l2);
            ret = host;
            break;
        }
        for (i = 0; i < n; i++) {
            /*
             * With extended L2 entries the subclusters stay unallocated:
             * they read as before (zeroes or the backing file) and the
             * first write of each takes the preallocated space.
             */
            qcow2_set_l2_entry(s, l2, l2_index + i,
                               (host + (uint64_t)i * s->cluster_size) |
                               QCOW_OFLAG_COPIED);
            qcow2_set_l2_bitmap(s, l2, l2_index + i, 0);
        }
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        offset += (uint64_t)n << s->cluster_bits;
    }
    if (ret == 0) {
        ret = qcow2_write_caches(bs);
    }
    qemu_co_mutex_unlock(&s->lock);
    if (ret < 0) {
        return ret;
    }
    /* Make the file cover every allocated cluster. */
    end_offset = (int64_t)s->alloc_end_index << s->cluster_bits;
    if (end_offset > bdrv_getlength(bs->file->bs)) {
        ret = bdrv_co_truncate(bs->file, end_offset, false,
                               pc->mode == PREALLOC_MODE_METADATA
                               ? PREALLOC_MODE_OFF : pc->mode, 0, NULL);
    }
    return ret;
}

typedef struct Qcow2HeaderCo {
    BlockDriverState *bs;
    const char *backing_file;
    const char *backing_fmt;
} Qcow2HeaderCo;

static int coroutine_fn qcow2_do_rewrite_header(void *opaque)
{
    Qcow2HeaderCo *hc = opaque;

    return update_header_with(hc->bs, hc->backing_file, hc->backing_fmt);
}

static int coroutine_fn qcow2_co_create_opts(BlockDriver *drv,
                                             const char *filename,
                                             QDict *opts, Error **errp)
{
    Qcow2CreateParams p;
    BlockBackend *blk = NULL;
    QDict *open_opts, *file_opts;
    int ret;

    ret = parse_create_params(opts, &p, errp);
    if (ret < 0) {
        return ret;
    }
    if (!qdict_haskey(opts, "size")) {
        if (!p.backing_file) {
            error_setg(errp, "Parameter 'size' is required");
            return -EINVAL;
        }
        ret = backing_size(filename, &p, errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (p.size & 511) {
        p.size = ROUND_UP(p.size, 512);
    }

    file_opts = qdict_new();
    qdict_put_int(file_opts, "size", 0);
    ret = bdrv_create_file(filename, file_opts, errp);
    qobject_unref(file_opts);
    if (ret < 0) {
        return ret;
    }
    blk = blk_new_open(filename, NULL, NULL, BDRV_O_RDWR | BDRV_O_PROTOCOL,
                       errp);
    if (!blk) {
        return -EIO;
    }
    blk_set_allow_write_beyond_eof(blk, true);
    ret = blk_truncate(blk, 0, false, PREALLOC_MODE_OFF, 0, errp);
    if (ret == 0) {
        ret = write_new_image(blk, &p, errp);
    }
    blk_unref(blk);
    if (ret < 0) {
        return ret;
    }

    /* Reopen as qcow2 to write the full header and preallocate. */
    open_opts = qdict_new();
    qdict_put_str(open_opts, "driver", "qcow2");
    blk = blk_new_open(filename, NULL, open_opts,
                       BDRV_O_RDWR | BDRV_O_NO_BACKING | BDRV_O_NO_FLUSH,
                       errp);
    if (!blk) {
        return -EIO;
    }
    {
        Qcow2HeaderCo hc = { blk_bs(blk), p.backing_file, p.backing_fmt };
        ret = qcow2_run_co(qcow2_do_rewrite_header, &hc);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not write qcow2 header");
            goto out;
        }
    }
    if (p.prealloc != PREALLOC_MODE_OFF) {
        Qcow2PreallocCo pc = { blk_bs(blk), p.prealloc };
        ret = qcow2_run_co(qcow2_do_prealloc, &pc);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not preallocate metadata");
            goto out;
        }
    }
    ret = 0;
out:
    blk_unref(blk);
    return ret;
}

/* ---- backing file change, amend ---- */

static int coroutine_fn qcow2_do_change_backing(void *opaque)
{
    Qcow2HeaderCo *hc = opaque;
    BDRVQcow2State *s = hc->bs->opaque;
    int ret;

    qemu_co_mutex_lock(&s->lock);
    ret = update_header_with(hc->bs, hc->backing_file, hc->backing_fmt);
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

static int qcow2_change_backing_file(BlockDriverState *bs,
                                     const char *backing_file,
                                     const char *backing_fmt)
{
    Qcow2HeaderCo hc = { bs, backing_file && *backing_file ? backing_file
                                                             : NULL,
                         backing_fmt };
    int ret;

    if (backing_file && strlen(backing_file) > QCOW_MAX_BACKING_NAME) {
        return -EINVAL;
    }
    if (backing_fmt && strlen(backing_fmt) >= sizeof(bs->backing_format)) {
        return -EINVAL;
    }
    ret = qcow2_run_co(qcow2_do_change_backing, &hc);
    if (ret < 0) {
        return ret;
    }
    pstrcpy(bs->backing_file, sizeof(bs->backing_file),
            hc.backing_file ? hc.backing_file : "");
    pstrcpy(bs->backing_format, sizeof(bs->backing_format),
            hc.backing_file && backing_fmt ? backing_fmt : "");
    return 0;
}

/* Turns every zero cluster into plain data (v3 -> v2 downgrade). */
static int coroutine_fn expand_zero_clusters(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint32_t i;
    int j, ret;
    uint8_t *zero = qemu_try_memalign(4096, s->cluster_size);

    if (!zero) {
        return -ENOMEM;
    }
    memset(zero, 0, s->cluster_size);
    for (i = 0; i < s->l1_size; i++) {
        uint64_t *l2;
        int l2_index;
        if (!(s->l1_table[i] & L1E_OFFSET_MASK)) {
            continue;
        }
        ret = qcow2_get_l2_for_write(bs, (uint64_t)i << (s->l2_bits +
                                                         s->cluster_bits),
                                     &l2, &l2_index);
        if (ret < 0) {
            goto out;
        }
        for (j = 0; j < s->l2_size; j++) {
            uint64_t e = GUINT64_FROM_BE(l2[j]);
            QCow2ClusterType t = qcow2_get_cluster_type(bs, e);
            int64_t host;
            int n;

            if (t == QCOW2_CLUSTER_ZERO_PLAIN) {
                if (!bs->backing) {
                    l2[j] = 0;
                    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
                    continue;
                }
                host = qcow2_alloc_clusters(bs, 1, &n);
                if (host < 0) {
                    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
                    ret = host;
                    goto out;
                }
            } else if (t == QCOW2_CLUSTER_ZERO_ALLOC) {
                host = e & L2E_OFFSET_MASK;
            } else {
                continue;
            }
            ret = bdrv_co_pwrite(bs->file, host, s->cluster_size, zero, 0);
            if (ret < 0) {
                qcow2_cache_put(s->l2_table_cache, (void **)&l2);
                goto out;
            }
            l2[j] = GUINT64_TO_BE(host | QCOW_OFLAG_COPIED);
            qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        }
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    }
    ret = qcow2_write_caches(bs);
out:
    qemu_vfree(zero);
    return ret;
}

/* What "amend" was asked to change; -1 / false: leave as it is. */
typedef struct Qcow2AmendCo {
    BlockDriverState *bs;
    int new_version;
    int lazy_refcounts;         /* -1, 0 or 1 */
    int refcount_order;         /* -1 or the new order */
    Error **errp;
} Qcow2AmendCo;

static int coroutine_fn amend_downgrade(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (s->refcount_order != 4) {
        error_setg(errp, "compat=0.10 requires refcount_bits=16");
        return -ENOTSUP;
    }
    if (s->incompatible_features & QCOW2_INCOMPAT_DIRTY) {
        error_setg(errp, "Cannot downgrade an image with the dirty bit set");
        return -ENOTSUP;
    }
    if (s->incompatible_features & ~(QCOW2_INCOMPAT_DIRTY |
                                     QCOW2_INCOMPAT_CORRUPT)) {
        error_setg(errp, "Cannot downgrade an image with incompatible "
                   "features %#" PRIx64 " set",
                   (uint64_t)(s->incompatible_features &
                              ~(QCOW2_INCOMPAT_DIRTY |
                                QCOW2_INCOMPAT_CORRUPT)));
        return -ENOTSUP;
    }
    ret = expand_zero_clusters(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to turn zero clusters into "
                         "data clusters");
        return ret;
    }
    s->qcow_version = 2;
    s->incompatible_features = 0;
    s->compatible_features = 0;
    s->autoclear_features = 0;
    s->header_length = QCOW2_V2_HEADER_LEN;
    g_free(s->extra_header);
    s->extra_header = NULL;
    s->extra_header_len = 0;
    return 0;
}

/*
 * Applies the changes in QEMU's order: upgrade, lazy refcounts, refcount
 * width, and a downgrade last (it needs the other changes done).
 */
static int coroutine_fn qcow2_do_amend(void *opaque)
{
    Qcow2AmendCo *a = opaque;
    BlockDriverState *bs = a->bs;
    BDRVQcow2State *s = bs->opaque;
    bool header_changed = false;
    int ret = 0;

    qemu_co_mutex_lock(&s->lock);
    if (a->new_version > s->qcow_version) {
        s->qcow_version = 3;
        s->header_length = QCOW2_V3_HEADER_LEN_FULL;
        header_changed = true;
    }
    if (a->lazy_refcounts >= 0) {
        /*
         * Refcounts are always kept up to date (the dirty bit is never
         * needed), so switching only changes the advertised feature.
         */
        uint64_t f = a->lazy_refcounts
                     ? s->compatible_features | QCOW2_COMPAT_LAZY_REFCOUNTS
                     : s->compatible_features & ~QCOW2_COMPAT_LAZY_REFCOUNTS;
        header_changed |= f != s->compatible_features;
        s->compatible_features = f;
    }
    if (header_changed) {
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(a->errp, -ret, "Failed to update the image "
                             "header");
            goto out;
        }
        header_changed = false;
    }
    if (a->refcount_order >= 0 && a->refcount_order != s->refcount_order) {
        ret = qcow2_change_refcount_order(bs, a->refcount_order, a->errp);
        if (ret < 0) {
            goto out;
        }
    }
    if (a->new_version < s->qcow_version) {
        ret = amend_downgrade(bs, a->errp);
        if (ret < 0) {
            goto out;
        }
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(a->errp, -ret, "Failed to update the image "
                             "header");
        }
    }
out:
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

/* Options of qcow2 images that only "create" knows. */
static bool create_only_opt(const char *key)
{
    static const char *const keys[] = {
        "cluster_size", "compression_type", "extended_l2", "preallocation",
        "encryption", "encrypt.format", "encrypt.key-secret",
        "encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.ivgen-alg",
        "encrypt.ivgen-hash-alg", "encrypt.hash-alg", "encrypt.iter-time",
        NULL,
    };
    int i;

    for (i = 0; keys[i]; i++) {
        if (!strcmp(key, keys[i])) {
            return true;
        }
    }
    return false;
}

/* Parses one amend option into @a (or *size); errors as qemu-img's. */
static int amend_parse_opt(QDict *opts, const char *key, Qcow2AmendCo *a,
                           bool *has_size, uint64_t *size, Error **errp)
{
    if (!strcmp(key, "compat")) {
        const char *val = qdict_get_try_str(opts, key);
        if (val && (!strcmp(val, "0.10") || !strcmp(val, "v2"))) {
            a->new_version = 2;
        } else if (val && (!strcmp(val, "1.1") || !strcmp(val, "v3"))) {
            a->new_version = 3;
        } else {
            error_setg(errp, "Unknown compatibility level %s", val ? val : "");
            return -EINVAL;
        }
    } else if (!strcmp(key, "lazy_refcounts")) {
        bool lazy;
        if (!qdict_get_bool_opt(opts, key, false, &lazy, errp)) {
            return -EINVAL;
        }
        a->lazy_refcounts = lazy;
    } else if (!strcmp(key, "refcount_bits")) {
        int64_t bits;
        if (!qdict_get_int_opt(opts, key, 16, &bits, errp)) {
            return -EINVAL;
        }
        if (bits <= 0 || bits > 64 || !is_power_of_2(bits)) {
            error_setg(errp, "Refcount width must be a power of two and may "
                       "not exceed 64 bits");
            return -EINVAL;
        }
        a->refcount_order = ctz64(bits);
    } else if (!strcmp(key, "size")) {
        if (!qdict_get_size_opt(opts, key, 0, size, errp)) {
            return -EINVAL;
        }
        *has_size = true;
    } else if (!strcmp(key, "backing_file") || !strcmp(key, "backing_fmt")) {
        error_setg(errp, "Cannot amend the backing file");
        error_append_hint(errp, "You can use 'qemu-img rebase' instead.\n");
        return -EINVAL;
    } else if (!strcmp(key, "data_file")) {
        error_setg(errp, "data-file can only be set for images that use an "
                   "external data file");
        return -EINVAL;
    } else if (!strcmp(key, "data_file_raw")) {
        error_setg(errp, "data-file-raw cannot be set on existing images");
        return -EINVAL;
    } else {
        error_setg(errp, "Invalid parameter '%s'", key);
        if (create_only_opt(key)) {
            error_append_hint(errp, "This option is only supported for "
                              "image creation\n");
        }
        return -EINVAL;
    }
    return 0;
}

static int coroutine_fn qcow2_co_amend(BlockDriverState *bs, QDict *opts,
                                       bool force, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2AmendCo a = { .bs = bs, .new_version = s->qcow_version,
                       .lazy_refcounts = -1, .refcount_order = -1,
                       .errp = errp };
    GList *keys = qdict_keys(opts), *l;
    bool has_size = false;
    uint64_t size = 0;
    int ret = 0;

    for (l = keys; l && ret == 0; l = l->next) {
        ret = amend_parse_opt(opts, l->data, &a, &has_size, &size, errp);
    }
    g_list_free(keys);
    if (ret < 0) {
        return ret;
    }
    if (a.lazy_refcounts == 1 && a.new_version < 3) {
        error_setg(errp, "Lazy refcounts only supported with compatibility "
                   "level 1.1 and above (use compat=1.1 or greater)");
        return -EINVAL;
    }
    if (a.refcount_order >= 0 && a.refcount_order != 4 &&
        a.new_version < 3) {
        error_setg(errp, "Refcount widths other than 16 bits require "
                   "compatibility level 1.1 or above (use compat=1.1 or "
                   "greater)");
        return -EINVAL;
    }
    ret = qcow2_do_amend(&a);
    if (ret < 0 || !has_size || size == s->size) {
        return ret;
    }
    ret = qcow2_co_truncate(bs, size, false, PREALLOC_MODE_OFF, 0, errp);
    if (ret == 0) {
        bdrv_refresh_total_sectors(bs, size);
    }
    return ret;
}

/* ---- measure ---- */

static uint64_t prealloc_size(uint64_t size, int cluster_bits,
                              bool extended_l2, int refcount_order)
{
    int64_t cs = 1LL << cluster_bits;
    int entry = extended_l2 ? 16 : 8;
    uint64_t aligned = ROUND_UP(size, cs);
    uint64_t meta = cs;         /* header */
    uint64_t l2_entries, l1_entries;

    l2_entries = ROUND_UP(aligned / cs, cs / entry);
    meta += l2_entries * entry;
    l1_entries = ROUND_UP(l2_entries * entry / cs, cs / 8);
    meta += l1_entries * 8;
    meta += qcow2_refcount_metadata_size((meta + aligned) / cs, cs,
                                         refcount_order);
    return meta + aligned;
}

static int qcow2_measure(QDict *opts, BlockDriverState *in_bs,
                         BlockMeasureInfo *info, Error **errp)
{
    Qcow2CreateParams p;
    uint64_t data = 0, size;
    int ret;

    ret = parse_create_params(opts, &p, errp);
    if (ret < 0) {
        return ret;
    }
    size = ROUND_UP(p.size, 512);
    if (in_bs) {
        int64_t cs = 1LL << p.cluster_bits;
        int64_t len = bdrv_getlength(in_bs), off = 0, counted_end = 0;

        if (len < 0) {
            error_setg_errno(errp, -len, "Unable to get image virtual_size");
            return len;
        }
        if (!qdict_haskey(opts, "size")) {
            size = ROUND_UP(len, 512);
        }
        /* Count every cluster that holds data anywhere in the chain. */
        while (off < len) {
            int64_t pnum;
            ret = bdrv_block_status_above(in_bs, NULL, off, len - off, &pnum,
                                          NULL, NULL, NULL);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Unable to get block status");
                return ret;
            }
            if (p.prealloc == PREALLOC_MODE_FULL ||
                p.prealloc == PREALLOC_MODE_FALLOC) {
                data = ROUND_UP(len, cs);
            } else if (!(ret & BDRV_BLOCK_ZERO)) {
                int64_t a = MAX(QEMU_ALIGN_DOWN(off, cs), counted_end);
                int64_t b = ROUND_UP(off + pnum, cs);
                if (b > a) {
                    data += b - a;
                    counted_end = b;
                }
            }
            off += pnum;
        }
    } else if (p.prealloc == PREALLOC_MODE_FULL ||
               p.prealloc == PREALLOC_MODE_FALLOC) {
        data = ROUND_UP(size, 1LL << p.cluster_bits);
    }
    info->fully_allocated = prealloc_size(size, p.cluster_bits,
                                          p.extended_l2, p.refcount_order);
    info->required = info->fully_allocated -
                     ROUND_UP(size, 1LL << p.cluster_bits) + data;
    info->bitmaps = in_bs ? qcow2_persistent_bitmaps_size(in_bs,
                                                         1 << p.cluster_bits)
                          : 0;
    return 0;
}

/* ---- registration ---- */

static BlockDriver bdrv_qcow2 = {
    .format_name = "qcow2",
    .instance_size = sizeof(BDRVQcow2State),
    .is_format = true,
    .supports_backing = true,
    .runtime_opts = qcow2_runtime_opts,
    .create_opts = qcow2_create_opts,
    .bdrv_probe = qcow2_probe,
    .bdrv_open = qcow2_open,
    .bdrv_close = qcow2_close,
    .bdrv_refresh_limits = qcow2_refresh_limits,
    .bdrv_co_preadv = qcow2_co_preadv,
    .bdrv_co_pwritev = qcow2_co_pwritev,
    .bdrv_co_pwritev_compressed = qcow2_co_pwritev_compressed,
    .bdrv_co_pwrite_zeroes = qcow2_co_pwrite_zeroes,
    .bdrv_co_pdiscard = qcow2_co_pdiscard,
    .bdrv_co_flush_to_os = qcow2_co_flush_to_os,
    .bdrv_co_block_status = qcow2_co_block_status,
    .bdrv_co_truncate = qcow2_co_truncate,
    .bdrv_getlength = qcow2_getlength,
    .bdrv_get_allocated_file_size = qcow2_get_allocated_file_size,
    .bdrv_get_info = qcow2_get_info,
    .bdrv_get_specific_info = qcow2_get_specific_info,
    .bdrv_co_create_opts = qcow2_co_create_opts,
    .bdrv_co_check = qcow2_co_check,
    .bdrv_change_backing_file = qcow2_change_backing_file,
    .bdrv_co_amend = qcow2_co_amend,
    .bdrv_measure = qcow2_measure,
    .bdrv_can_store_new_dirty_bitmap = qcow2_can_store_new_dirty_bitmap,
    .bdrv_remove_persistent_dirty_bitmap =
        qcow2_remove_persistent_dirty_bitmap,
    .bdrv_store_persistent_dirty_bitmaps =
        qcow2_store_persistent_dirty_bitmaps,
};

void bdrv_qcow2_init(void)
{
    bdrv_register(&bdrv_qcow2);
}
