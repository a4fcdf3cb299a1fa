/*
 * qblock-img convert: copies one or more source images (concatenated)
 * into a new or existing target image.
 *
 * The copy is allocation aware: ranges that read as zeroes are not
 * copied (a fresh target already reads zeroes; otherwise they become
 * write-zeroes requests), and with a target backing file (-B) only the
 * ranges allocated in the source's top layer are copied.  Several worker
 * coroutines (-m) copy chunks in parallel; unless -W is given, writes are
 * issued in the order of their offsets.
 */
#include "qemu/osdep.h"
#include <getopt.h>
#include "qemu/cutils.h"
#include "qemu/aio.h"
#include "block/block_int.h"
#include "img-common.h"

#define CONVERT_BUF_SIZE    (2 * MiB)
#define CONVERT_MAX_COROUTINES 16

typedef enum {
    CHUNK_DATA,     /* read the source and write the data */
    CHUNK_ZERO,     /* the source reads as zeroes */
    CHUNK_BACKING,  /* left to the target's backing file */
} ChunkStatus;

typedef struct ConvertState {
    BlockBackend **src;
    int64_t *src_sizes;
    int src_num;
    int64_t total_size;
    BlockBackend *target;

    bool target_has_backing;
    bool has_zero_init;     /* unwritten target ranges read as zeroes */
    bool compressed;
    bool wr_in_order;
    int64_t min_sparse;     /* 0: no zero detection, write everything */
    int64_t cluster_size;   /* target's; alignment of chunks */
    int64_t buf_size;

    /* Work distribution: the cursor is only advanced under @lock. */
    CoMutex lock;
    int64_t cursor;
    uint64_t next_ticket;
    /* In-order writes: the worker holding @write_ticket writes next. */
    uint64_t write_ticket;
    CoQueue write_queue;

    int running;            /* workers that have not finished */
    int ret;                /* first error, stops all workers */
    int64_t err_offset;
    bool err_is_write;
    /* Progress counts data chunks only, as qemu-img's does. */
    int64_t data_total;
    int64_t data_done;
    bool done;
} ConvertState;

/* Finds the source holding global @offset; *src_offset is within it. */
static int convert_locate(ConvertState *s, int64_t offset,
                          int64_t *src_offset, int64_t *src_end)
{
    int64_t base = 0;

    for (int i = 0; i < s->src_num; i++) {
        if (offset < base + s->src_sizes[i]) {
            *src_offset = offset - base;
            *src_end = base + s->src_sizes[i];
            return i;
        }
        base += s->src_sizes[i];
    }
    abort();
}

/*
 * Decides the size and kind of the chunk starting at global @offset.
 * Called with s->lock held (block status may yield).
 */
static int coroutine_fn convert_next_chunk(ConvertState *s, int64_t offset,
                                           int64_t *pnum_out,
                                           ChunkStatus *status)
{
    int64_t src_off, src_end, pnum;
    int idx = convert_locate(s, offset, &src_off, &src_end);
    BlockDriverState *bs = blk_bs(s->src[idx]);
    int64_t count = MIN(src_end - offset, BDRV_REQUEST_MAX_BYTES);
    int64_t n;
    int ret;

    if (s->target_has_backing) {
        /* Only what the source's top layer defines goes into the target. */
        ret = bdrv_co_block_status(bs, src_off, count, &pnum, NULL, NULL);
        if (ret < 0) {
            return ret;
        }
        if (!(ret & BDRV_BLOCK_ALLOCATED)) {
            *status = CHUNK_BACKING;
        } else {
            *status = (ret & BDRV_BLOCK_ZERO) ? CHUNK_ZERO : CHUNK_DATA;
        }
    } else {
        ret = bdrv_co_block_status_above(bs, NULL, src_off, count, &pnum,
                                         NULL, NULL, NULL);
        if (ret < 0) {
            return ret;
        }
        if (ret & BDRV_BLOCK_ZERO) {
            *status = CHUNK_ZERO;
        } else if (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED)) {
            *status = CHUNK_DATA;
        } else {
            *status = CHUNK_ZERO;
        }
    }
    n = pnum;

    if (s->min_sparse == 0 && *status == CHUNK_ZERO) {
        *status = CHUNK_DATA;
    }
    if (s->compressed && *status != CHUNK_BACKING) {
        /*
         * Compressed clusters are written whole: a chunk covers whole
         * target clusters, reading whatever the source has there.
         */
        int64_t end = QEMU_ALIGN_UP(offset + n, s->cluster_size);
        if (*status == CHUNK_ZERO &&
            QEMU_ALIGN_DOWN(offset + n, s->cluster_size) > offset) {
            end = QEMU_ALIGN_DOWN(offset + n, s->cluster_size);
        } else {
            *status = CHUNK_DATA;
        }
        n = MIN(end, src_end) - offset;
    }
    if (*status == CHUNK_DATA) {
        n = MIN(n, s->buf_size);
        /* End data chunks on a cluster boundary when that is possible. */
        if (s->cluster_size && offset + n < src_end &&
            QEMU_ALIGN_DOWN(offset + n, s->cluster_size) > offset) {
            n = QEMU_ALIGN_DOWN(offset + n, s->cluster_size) - offset;
        }
    }
    *pnum_out = n;
    return 0;
}

static int coroutine_fn convert_co_read(ConvertState *s, int64_t offset,
                                        int64_t bytes, uint8_t *buf)
{
    while (bytes > 0) {
        int64_t src_off, src_end;
        int idx = convert_locate(s, offset, &src_off, &src_end);
        int64_t n = MIN(bytes, src_end - offset);
        int ret = blk_co_pread(s->src[idx], src_off, n, buf, 0);

        if (ret < 0) {
            s->err_offset = offset;
            s->err_is_write = false;
            return ret;
        }
        offset += n;
        buf += n;
        bytes -= n;
    }
    return 0;
}

/* Zeroes [offset, offset + bytes) unless the target already reads zero. */
static int coroutine_fn convert_co_zero(ConvertState *s, int64_t offset,
                                        int64_t bytes)
{
    if (s->has_zero_init) {
        return 0;
    }
    return blk_co_pwrite_zeroes(s->target, offset, bytes,
                                BDRV_REQ_MAY_UNMAP);
}

static int coroutine_fn convert_co_write_compressed(ConvertState *s,
                                                    int64_t offset,
                                                    int64_t bytes,
                                                    uint8_t *buf)
{
    for (int64_t i = 0; i < bytes; i += s->cluster_size) {
        int64_t n = MIN(s->cluster_size, bytes - i);
        int ret;

        if (buffer_is_zero(buf + i, n)) {
            ret = convert_co_zero(s, offset + i, n);
        } else {
            ret = blk_co_pwrite(s->target, offset + i, n, buf + i,
                                BDRV_REQ_WRITE_COMPRESSED);
        }
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/*
 * Writes a data chunk, turning runs of zeroed min_sparse-sized blocks
 * into holes (or write-zeroes when the target does not read zeroes).
 */
static int coroutine_fn convert_co_write_sparse(ConvertState *s,
                                                int64_t offset,
                                                int64_t bytes, uint8_t *buf)
{
    int64_t pos = 0;

    while (pos < bytes) {
        int64_t block_end = QEMU_ALIGN_UP(offset + pos + 1, s->min_sparse) -
                            offset;
        bool zero = buffer_is_zero(buf + pos, MIN(block_end, bytes) - pos);
        int64_t end = MIN(block_end, bytes);
        int ret;

        /* Extend the run while the following blocks are of the same kind. */
        while (end < bytes) {
            int64_t next = MIN(end + s->min_sparse, bytes);
            if (buffer_is_zero(buf + end, next - end) != zero) {
                break;
            }
            end = next;
        }
        if (zero) {
            ret = convert_co_zero(s, offset + pos, end - pos);
        } else {
            ret = blk_co_pwrite(s->target, offset + pos, end - pos,
                                buf + pos, 0);
        }
        if (ret < 0) {
            return ret;
        }
        pos = end;
    }
    return 0;
}

static int coroutine_fn convert_co_write(ConvertState *s, int64_t offset,
                                         int64_t bytes, uint8_t *buf,
                                         ChunkStatus status)
{
    int ret;

    switch (status) {
    case CHUNK_BACKING:
        return 0;
    case CHUNK_ZERO:
        ret = convert_co_zero(s, offset, bytes);
        break;
    default:
        if (s->compressed) {
            ret = convert_co_write_compressed(s, offset, bytes, buf);
        } else if (s->min_sparse) {
            ret = convert_co_write_sparse(s, offset, bytes, buf);
        } else {
            ret = blk_co_pwrite(s->target, offset, bytes, buf, 0);
        }
        break;
    }
    if (ret < 0) {
        s->err_offset = offset;
        s->err_is_write = true;
    }
    return ret;
}

static void coroutine_fn convert_co_worker(void *opaque)
{
    ConvertState *s = opaque;
    uint8_t *buf = qemu_memalign(4096, s->buf_size);

    while (s->ret == 0) {
        ChunkStatus status;
        int64_t offset, n;
        uint64_t ticket;
        int ret;

        qemu_co_mutex_lock(&s->lock);
        if (s->cursor >= s->total_size || s->ret) {
            qemu_co_mutex_unlock(&s->lock);
            break;
        }
        offset = s->cursor;
        ret = convert_next_chunk(s, offset, &n, &status);
        if (ret < 0) {
            s->ret = ret;
            s->err_offset = offset;
            s->err_is_write = false;
            qemu_co_mutex_unlock(&s->lock);
            break;
        }
        s->cursor += n;
        ticket = s->next_ticket++;
        qemu_co_mutex_unlock(&s->lock);

        if (status == CHUNK_DATA) {
            ret = convert_co_read(s, offset, n, buf);
        }
        /* Reads run in parallel; in-order writes wait for their turn. */
        while (s->wr_in_order && s->write_ticket != ticket && !s->ret) {
            qemu_co_queue_wait(&s->write_queue, NULL);
        }
        if (ret == 0 && !s->ret) {
            ret = convert_co_write(s, offset, n, buf, status);
        }
        if (ret < 0 && !s->ret) {
            s->ret = ret;
        }
        if (s->wr_in_order) {
            s->write_ticket++;
            qemu_co_queue_restart_all(&s->write_queue);
        }
        if (status == CHUNK_DATA) {
            s->data_done += n;
            img_progress_update(s->data_done, s->data_total);
        }
    }

    qemu_vfree(buf);
    /* Waiters must see an error to leave their loop. */
    qemu_co_queue_restart_all(&s->write_queue);
    if (--s->running == 0) {
        s->done = true;
    }
}

/* Sums the sizes of the data chunks (for the progress indicator). */
static void coroutine_fn convert_co_count_data(void *opaque)
{
    ConvertState *s = opaque;
    int64_t offset = 0, n;
    ChunkStatus status;

    while (offset < s->total_size &&
           convert_next_chunk(s, offset, &n, &status) == 0) {
        if (status == CHUNK_DATA) {
            s->data_total += n;
        }
        offset += n;
    }
    s->done = true;
}

static int convert_run(ConvertState *s, int num_coroutines)
{
    qemu_co_mutex_init(&s->lock);
    qemu_co_queue_init(&s->write_queue);
    s->running = num_coroutines;
    for (int i = 0; i < num_coroutines; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(convert_co_worker, s));
    }
    while (!s->done) {
        aio_poll(qemu_get_aio_context(), true);
    }
    return s->ret;
}

enum {
    OPTION_CONV_OBJECT = 256,
    OPTION_CONV_IMAGE_OPTS,
    OPTION_CONV_TARGET_IMAGE_OPTS,
    OPTION_CONV_SALVAGE,
    OPTION_CONV_TARGET_IS_ZERO,
    OPTION_CONV_BITMAPS,
};

typedef struct ConvertArgs {
    const char *fmt, *out_fmt, *out_base, *base_fmt;
    char *options;
    bool compress, progress, quiet, skip_create, image_opts;
    bool target_image_opts, target_is_zero, wr_in_order;
    int64_t min_sparse;
    int num_coroutines;
    int src_cache_flags;        /* -T, default writeback */
    int target_cache_flags;     /* -t, default unsafe as in qemu-img */
} ConvertArgs;

static void convert_parse_args(ConvertArgs *a, int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, OPTION_CONV_OBJECT},
        {"image-opts", no_argument, 0, OPTION_CONV_IMAGE_OPTS},
        {"force-share", no_argument, 0, 'U'},
        {"target-image-opts", no_argument, 0, OPTION_CONV_TARGET_IMAGE_OPTS},
        {"salvage", no_argument, 0, OPTION_CONV_SALVAGE},
        {"target-is-zero", no_argument, 0, OPTION_CONV_TARGET_IS_ZERO},
        {"bitmaps", no_argument, 0, OPTION_CONV_BITMAPS},
        {0, 0, 0, 0}
    };
    uint64_t val;
    int c;

    while ((c = getopt_long(argc, argv, ":hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:",
                            long_options, NULL)) != -1) {
        switch (c) {
        case 'h':
            img_help();
        case 'f':
            a->fmt = optarg;
            break;
        case 'O':
            a->out_fmt = optarg;
            break;
        case 'B':
            a->out_base = optarg;
            break;
        case 'F':
            a->base_fmt = optarg;
            break;
        case 'c':
            a->compress = true;
            break;
        case 'o': {
            char *joined = a->options ?
                g_strdup_printf("%s,%s", a->options, optarg) :
                g_strdup(optarg);
            g_free(a->options);
            a->options = joined;
            break;
        }
        case 'S':
            if (qemu_strtosz(optarg, NULL, &val) < 0 ||
                !QEMU_IS_ALIGNED(val, BDRV_SECTOR_SIZE) ||
                val > 16 * MiB) {
                error_report("Invalid buffer size for sparse output "
                             "specified. Valid sizes are multiples of 512 "
                             "up to 16777216. Select 0 to disable sparse "
                             "detection (fully allocates output).");
                exit(IMG_EXIT_FAILURE);
            }
            a->min_sparse = val;
            break;
        case 'p':
            a->progress = true;
            break;
        case 'q':
            a->quiet = true;
            break;
        case 'n':
            a->skip_create = true;
            break;
        case 'm':
            if (qemu_strtoi(optarg, NULL, 0, &a->num_coroutines) < 0 ||
                a->num_coroutines < 1 ||
                a->num_coroutines > CONVERT_MAX_COROUTINES) {
                error_report("Invalid number of coroutines. Allowed number "
                             "of coroutines is between 1 and %d",
                             CONVERT_MAX_COROUTINES);
                exit(IMG_EXIT_FAILURE);
            }
            break;
        case 'W':
            a->wr_in_order = false;
            break;
        case 't':
            if (!img_parse_cache_mode(optarg, &a->target_cache_flags)) {
                error_report("Invalid cache option: %s", optarg);
                exit(IMG_EXIT_FAILURE);
            }
            break;
        case 'T':
            if (!img_parse_cache_mode(optarg, &a->src_cache_flags)) {
                error_report("Invalid source cache option: %s", optarg);
                exit(IMG_EXIT_FAILURE);
            }
            break;
        case 'C':
        case 'l':
        case 'U':
        case 'r':
        case OPTION_CONV_OBJECT:
        case OPTION_CONV_SALVAGE:
        case OPTION_CONV_BITMAPS:
            break;
        case OPTION_CONV_IMAGE_OPTS:
            a->image_opts = true;
            break;
        case OPTION_CONV_TARGET_IMAGE_OPTS:
            a->target_image_opts = true;
            break;
        case OPTION_CONV_TARGET_IS_ZERO:
            a->target_is_zero = true;
            break;
        default:
            img_bad_option(c, argv);
        }
    }
    if (a->quiet) {
        a->progress = false;
    }
}

static int convert_create_target(ConvertArgs *a, const char *out_filename,
                                 int64_t total_size)
{
    BlockDriver *drv = bdrv_find_format(a->out_fmt);
    Error *err = NULL;
    const CreateOptDesc *lists[2];
    QDict *opts;
    int ret;

    if (!drv) {
        error_report("Unknown file format '%s'", a->out_fmt);
        return -EINVAL;
    }
    if (!drv->create_opts) {
        error_report("Format driver '%s' does not support image creation",
                     a->out_fmt);
        return -ENOTSUP;
    }
    opts = img_build_create_opts(a->options, drv, lists, &err);
    if (!opts) {
        error_report_err(err);
        return -EINVAL;
    }
    if (a->out_base) {
        qdict_put_str(opts, "backing_file", a->out_base);
    }
    if (a->base_fmt) {
        qdict_put_str(opts, "backing_fmt", a->base_fmt);
    }
    if (qdict_haskey(opts, "backing_file") &&
        !qdict_haskey(opts, "backing_fmt")) {
        error_report("Use of backing file requires explicit backing format");
        qobject_unref(opts);
        return -EINVAL;
    }
    qdict_put_int(opts, "size", total_size);
    ret = bdrv_create(drv, out_filename, opts, &err);
    qobject_unref(opts);
    if (ret < 0) {
        error_reportf_err(err, "%s: error while converting %s: ",
                          out_filename, a->out_fmt);
    }
    return ret;
}

/* Opens the sources; fills s->src, s->src_sizes and s->total_size. */
static int convert_open_sources(ConvertState *s, ConvertArgs *a,
                                char **names, int n)
{
    s->src = g_new0(BlockBackend *, n);
    s->src_sizes = g_new0(int64_t, n);
    for (int i = 0; i < n; i++) {
        s->src[i] = img_open(a->image_opts, names[i], a->fmt,
                             a->src_cache_flags);
        if (!s->src[i]) {
            return -EINVAL;
        }
        s->src_num = i + 1;
        s->src_sizes[i] = blk_getlength(s->src[i]);
        if (s->src_sizes[i] < 0) {
            error_report("Could not get size of %s: %s", names[i],
                         strerror(-s->src_sizes[i]));
            return -EIO;
        }
        s->total_size += s->src_sizes[i];
    }
    return 0;
}

int img_convert(int argc, char **argv)
{
    ConvertArgs a = {
        .min_sparse = 8 * BDRV_SECTOR_SIZE,
        .num_coroutines = 8,
        .wr_in_order = true,
        .target_cache_flags = BDRV_O_NO_FLUSH,
    };
    ConvertState s = { 0 };
    BlockDriverInfo bdi = { 0 };
    const char *out_filename;
    BlockDriver *out_drv;
    int src_count, ret = IMG_EXIT_FAILURE;

    convert_parse_args(&a, argc, argv);
    a.out_fmt = a.out_fmt ? a.out_fmt : "raw";

    if (a.options && img_opts_want_help(a.options)) {
        ret = img_print_create_opts_help(a.out_fmt, NULL);
        g_free(a.options);
        return ret;
    }

    src_count = argc - optind - 1;
    if (src_count < 1) {
        error_report("Must specify image file name");
        goto out_free;
    }
    if (a.skip_create && a.options) {
        error_report("-o has no effect when skipping image creation");
        goto out_free;
    }
    if (a.target_image_opts && !a.skip_create) {
        error_report("--target-image-opts requires use of -n flag");
        goto out_free;
    }
    if (a.target_is_zero && !a.skip_create) {
        error_report("--target-is-zero requires use of -n flag");
        goto out_free;
    }
    out_filename = argv[argc - 1];
    out_drv = bdrv_find_format(a.out_fmt);
    if (!out_drv) {
        error_report("Unknown file format '%s'", a.out_fmt);
        goto out_free;
    }
    if (a.compress && !out_drv->bdrv_co_pwritev_compressed) {
        error_report("Compression not supported for this file format");
        goto out_free;
    }

    if (convert_open_sources(&s, &a, argv + optind, src_count) < 0) {
        goto out;
    }

    if (!a.skip_create) {
        if (convert_create_target(&a, out_filename, s.total_size) < 0) {
            goto out;
        }
    }
    s.target = img_open(a.target_image_opts, out_filename,
                        a.target_image_opts ? NULL : a.out_fmt,
                        BDRV_O_RDWR | a.target_cache_flags);
    if (!s.target) {
        goto out;
    }
    if (a.skip_create) {
        if (blk_getlength(s.target) < s.total_size) {
            error_report("output file is smaller than input file");
            goto out;
        }
    }

    s.target_has_backing = bdrv_backing_bs(blk_bs(s.target)) != NULL ||
                           (blk_bs(s.target)->backing_file[0] != '\0');
    /* A freshly created image without backing file reads as zeroes. */
    s.has_zero_init = a.skip_create ? a.target_is_zero
                                    : !s.target_has_backing;
    s.compressed = a.compress;
    s.wr_in_order = a.wr_in_order;
    s.min_sparse = a.min_sparse;
    if (bdrv_get_info(blk_bs(s.target), &bdi) >= 0 && bdi.cluster_size > 0) {
        s.cluster_size = bdi.cluster_size;
    }
    if (s.compressed && !s.cluster_size) {
        error_report("Compression not supported for this file format");
        goto out;
    }
    s.buf_size = MAX(CONVERT_BUF_SIZE, s.cluster_size);

    img_progress_init(a.progress);
    if (a.progress) {
        img_run_co(convert_co_count_data, &s, &s.done);
        s.done = false;
    }
    ret = convert_run(&s, a.num_coroutines);
    if (ret < 0) {
        error_report("error while %s at byte %" PRId64 ": %s",
                     s.err_is_write ? "writing" : "reading", s.err_offset,
                     strerror(-ret));
        ret = IMG_EXIT_FAILURE;
    } else {
        ret = blk_flush(s.target) < 0 ? IMG_EXIT_FAILURE : 0;
        if (ret) {
            error_report("error while flushing the target image");
        }
    }
    img_progress_final();
    img_progress_end();

out:
    if (s.target) {
        blk_unref(s.target);
    }
    for (int i = 0; i < s.src_num; i++) {
        blk_unref(s.src[i]);
    }
    g_free(s.src);
    g_free(s.src_sizes);
out_free:
    g_free(a.options);
    return ret;
}
