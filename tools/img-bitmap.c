/*
 * qblock-img bitmap: qemu-img's "bitmap" command.  Applies a sequence of
 * actions (--add, --remove, --clear, --enable, --disable, --merge SOURCE)
 * to one persistent bitmap of an image, in command-line order, with the
 * block-dirty-bitmap-* semantics of block/dirty-bitmap.c.  The first
 * failing action stops the command; what the earlier ones changed is
 * stored when the image closes, as qemu-img does.
 */
#include "qemu/osdep.h"
#include <getopt.h>
#include "qemu/cutils.h"
#include "block/dirty-bitmap.h"
#include "img-common.h"

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS,
    OPTION_ADD,
    OPTION_REMOVE,
    OPTION_CLEAR,
    OPTION_ENABLE,
    OPTION_DISABLE,
    OPTION_MERGE,
};

typedef struct BitmapAction {
    int type;                   /* OPTION_ADD ... OPTION_MERGE */
    const char *src;            /* --merge: the source bitmap's name */
} BitmapAction;

static const char *action_name(int type)
{
    switch (type) {
    case OPTION_ADD:
        return "add";
    case OPTION_REMOVE:
        return "remove";
    case OPTION_CLEAR:
        return "clear";
    case OPTION_ENABLE:
        return "enable";
    case OPTION_DISABLE:
        return "disable";
    default:
        return "merge";
    }
}

/* -g: a size with suffixes, reported as qemu-img reports bad sizes. */
static bool parse_granularity(const char *arg, int64_t *granularity)
{
    uint64_t val;

    if (qemu_strtosz(arg, NULL, &val) < 0 || val > INT64_MAX) {
        error_report("Invalid granularity specified. You may use k, M, G, "
                     "T, P or E suffixes for");
        error_report("kilobytes, megabytes, gigabytes, terabytes, "
                     "petabytes and exabytes.");
        return false;
    }
    *granularity = val;
    return true;
}

static int run_action(const BitmapAction *act, BlockDriverState *bs,
                      const char *name, BlockDriverState *src_bs,
                      int64_t granularity, Error **errp)
{
    switch (act->type) {
    case OPTION_ADD:
        /*
         * Like qemu-img, -g 0 means "default" and the value is passed on
         * as QMP's 32-bit granularity (so 4G becomes 0 and is refused).
         */
        return block_dirty_bitmap_add(bs, name, granularity != 0,
                                      (uint32_t)granularity, true, false,
                                      errp) ? 0 : -1;
    case OPTION_REMOVE:
        block_dirty_bitmap_remove(bs, name, true, errp);
        return *errp ? -1 : 0;
    case OPTION_CLEAR:
        return block_dirty_bitmap_clear(bs, name, errp);
    case OPTION_ENABLE:
        return block_dirty_bitmap_enable(bs, name, errp);
    case OPTION_DISABLE:
        return block_dirty_bitmap_disable(bs, name, errp);
    default:
        return block_dirty_bitmap_merge(bs, name, src_bs, act->src, errp);
    }
}

int img_bitmap(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, OPTION_OBJECT},
        {"image-opts", no_argument, 0, OPTION_IMAGE_OPTS},
        {"add", no_argument, 0, OPTION_ADD},
        {"remove", no_argument, 0, OPTION_REMOVE},
        {"clear", no_argument, 0, OPTION_CLEAR},
        {"enable", no_argument, 0, OPTION_ENABLE},
        {"disable", no_argument, 0, OPTION_DISABLE},
        {"merge", required_argument, 0, OPTION_MERGE},
        {"granularity", required_argument, 0, 'g'},
        {"source-file", required_argument, 0, 'b'},
        {"source-format", required_argument, 0, 'F'},
        {0, 0, 0, 0}
    };
    g_autoptr(GArray) actions = g_array_new(false, false,
                                            sizeof(BitmapAction));
    const char *fmt = NULL, *src_filename = NULL, *src_fmt = NULL;
    const char *filename, *name;
    bool image_opts = false, add = false, merge = false;
    int64_t granularity = 0;
    BlockBackend *blk = NULL, *src = NULL;
    BlockDriverState *bs, *src_bs;
    int c, ret = IMG_EXIT_FAILURE;

    while ((c = getopt_long(argc, argv, ":b:f:F:g:h", long_options,
                            NULL)) != -1) {
        BitmapAction act = { .type = c };

        switch (c) {
        case 'h':
            img_help();
            break;
        case 'b':
            src_filename = optarg;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'F':
            src_fmt = optarg;
            break;
        case 'g':
            if (!parse_granularity(optarg, &granularity)) {
                return IMG_EXIT_FAILURE;
            }
            break;
        case OPTION_OBJECT:
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_MERGE:
            act.src = optarg;
            merge = true;
            g_array_append_val(actions, act);
            break;
        case OPTION_ADD:
            add = true;
            /* fall through */
        case OPTION_REMOVE:
        case OPTION_CLEAR:
        case OPTION_ENABLE:
        case OPTION_DISABLE:
            g_array_append_val(actions, act);
            break;
        default:
            img_bad_option(c, argv);
        }
    }

    if (!actions->len) {
        error_report("Need at least one of --add, --remove, --clear, "
                     "--enable, --disable, or --merge");
        return IMG_EXIT_FAILURE;
    }
    if (granularity && !add) {
        error_report("granularity only supported with --add");
        return IMG_EXIT_FAILURE;
    }
    if (src_fmt && !src_filename) {
        error_report("-F only supported with -b");
        return IMG_EXIT_FAILURE;
    }
    if (src_filename && !merge) {
        error_report("Merge bitmap source file only supported with --merge");
        return IMG_EXIT_FAILURE;
    }
    if (optind != argc - 2) {
        error_report("Expecting filename and bitmap name");
        return IMG_EXIT_FAILURE;
    }
    filename = argv[optind];
    name = argv[optind + 1];

    blk = img_open(image_opts, filename, fmt, BDRV_O_RDWR);
    if (!blk) {
        goto out;
    }
    bs = blk_bs(blk);
    src_bs = bs;
    if (src_filename) {
        src = img_open(false, src_filename, src_fmt, BDRV_O_NO_BACKING);
        if (!src) {
            goto out;
        }
        src_bs = blk_bs(src);
    }

    for (guint i = 0; i < actions->len; i++) {
        const BitmapAction *act = &g_array_index(actions, BitmapAction, i);
        Error *err = NULL;

        if (run_action(act, bs, name, src_bs, granularity, &err) < 0) {
            error_reportf_err(err, "Operation %s on bitmap %s failed: ",
                              action_name(act->type), name);
            goto out;
        }
    }
    ret = 0;

out:
    /* Closing the image stores its bitmaps. */
    blk_unref(src);
    blk_unref(blk);
    return ret;
}
