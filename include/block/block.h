/*
 * The block layer's public API: opening nodes, the node graph and its
 * reference counting, and the request functions.
 *
 * Reference counting: every holder of a BlockDriverState (a parent's child
 * edge, a BlockBackend, a job, an export, the monitor for nodes created by
 * blockdev-add) owns exactly one reference, taken with bdrv_ref() or
 * received from bdrv_open(), and drops it with bdrv_unref().  The node is
 * closed and freed when the last reference goes.  Image files are never
 * deleted by the block layer.
 */
#ifndef BLOCK_BLOCK_H
#define BLOCK_BLOCK_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/coroutine.h"
#include "qemu/iov.h"
#include "qemu/qdict.h"
#include "qapi/qapi-types.h"

typedef struct BlockDriver BlockDriver;
typedef struct BlockDriverState BlockDriverState;
typedef struct BdrvChild BdrvChild;
typedef struct BdrvChildClass BdrvChildClass;
typedef struct BlockBackend BlockBackend;

/* Open flags */
#define BDRV_O_RDWR        0x0002  /* open for writing */
#define BDRV_O_NOCACHE     0x0020  /* cache.direct: bypass the host cache */
#define BDRV_O_NO_BACKING  0x0100  /* do not open the backing file */
#define BDRV_O_NO_FLUSH    0x0200  /* cache.no-flush: flushes are no-ops */
#define BDRV_O_CHECK       0x1000  /* opened for checking: accept damage */
#define BDRV_O_UNMAP       0x4000  /* discard=unmap: pass discards down */
#define BDRV_O_PROTOCOL    0x8000  /* the filename names a protocol node */
#define BDRV_O_NO_IO       0x10000 /* metadata only, no guest I/O */
#define BDRV_O_NATIVE_AIO  0x20000 /* aio=native */
#define BDRV_O_IO_URING    0x40000 /* aio=io_uring */
#define BDRV_O_THREAD_POOL 0x80000 /* aio=threads, given explicitly */

/* Request flags */
typedef enum {
    BDRV_REQ_ZERO_WRITE         = 0x2,   /* the write is a write-zeroes */
    BDRV_REQ_MAY_UNMAP          = 0x4,   /* zeroes may be deallocated */
    BDRV_REQ_FUA                = 0x10,  /* force unit access */
    BDRV_REQ_WRITE_COMPRESSED   = 0x20,  /* compress if the format can */
    BDRV_REQ_WRITE_UNCHANGED    = 0x40,  /* data is unchanged (CoW copy) */
    BDRV_REQ_SERIALISING        = 0x80,  /* wait for overlapping requests */
    BDRV_REQ_NO_FALLBACK        = 0x100, /* fail rather than write zeroes slowly */
    BDRV_REQ_NO_BEFORE_WRITE    = 0x200, /* skip before-write notifiers */
    /*
     * A read that must not wait for overlapping serialising requests: the
     * copy-before-write read issued from inside the before-write notifier
     * of a serialising (read-modify-write) guest write, which would
     * otherwise wait for the very write that is waiting for it.
     */
    BDRV_REQ_NO_SERIALISING     = 0x400,
    /* A read that bypasses the read_hook of the edge it goes through. */
    BDRV_REQ_NO_READ_HOOK       = 0x800,
    /*
     * A hint on a write: the data is not read back here soon (a backup
     * target), so a host page cache should write it out at once and not
     * keep it.  Only the file driver acts on it, with RWF_DONTCACHE, and
     * only without O_DIRECT; everyone else drops it.
     */
    BDRV_REQ_DONTCACHE          = 0x1000,
    BDRV_REQ_MASK               = 0x1fff,
} BdrvRequestFlags;

/* Block status result flags (see bdrv_co_block_status()) */
#define BDRV_BLOCK_DATA         0x01  /* reads come from the file at 'map' */
#define BDRV_BLOCK_ZERO         0x02  /* reads return zeroes */
#define BDRV_BLOCK_OFFSET_VALID 0x04  /* 'map' and 'file' are meaningful */
#define BDRV_BLOCK_RAW          0x08  /* internal: continue in 'file' */
#define BDRV_BLOCK_ALLOCATED    0x10  /* the content is defined by this layer */
#define BDRV_BLOCK_EOF          0x20  /* the range ends at end of image */
#define BDRV_BLOCK_RECURSE      0x40  /* internal: ask 'file' about zeroes */
#define BDRV_BLOCK_COMPRESSED   0x80  /* stored compressed */

typedef enum {
    BDRV_FIX_LEAKS  = 1,
    BDRV_FIX_ERRORS = 2,
} BdrvCheckMode;

typedef struct BlockFragInfo {
    uint64_t allocated_clusters;
    uint64_t total_clusters;
    uint64_t fragmented_clusters;
    uint64_t compressed_clusters;
} BlockFragInfo;

typedef struct BdrvCheckResult {
    int corruptions;
    int leaks;
    int check_errors;
    int corruptions_fixed;
    int leaks_fixed;
    int64_t image_end_offset;
    BlockFragInfo bfi;
} BdrvCheckResult;

typedef struct BlockDriverInfo {
    int cluster_size;           /* 0 if not applicable */
    /*
     * The unit the image allocates in, if smaller than a cluster (qcow2
     * extended L2 entries); 0 otherwise.
     */
    int subcluster_size;
    int64_t vm_state_offset;    /* where saved VM state would start; 0: none */
    bool is_dirty;
} BlockDriverInfo;

typedef struct BlockMeasureInfo {
    uint64_t required;          /* bytes needed for a new image */
    uint64_t fully_allocated;   /* bytes needed when fully allocated */
    uint64_t bitmaps;           /* bytes for persistent bitmaps */
} BlockMeasureInfo;

/*
 * PreallocMode, BlockdevDetectZeroesOptions and BlkdebugEvent come from
 * the QAPI schema (qapi/block-core.json), as the monitor sees them;
 * T_str(v) names a value and T_lookup.array lists the names.
 */

/* Registers all drivers; idempotent.  Call once at start-up. */
void bdrv_init(void);
BlockDriver *bdrv_find_format(const char *format_name);
/* Lists the registered format/protocol names to @f (space separated). */
void bdrv_print_formats(FILE *f);

/*
 * Opens a node.  @filename and/or @options (ownership transferred) say
 * what to open; @reference instead names an existing node to reference.
 * Without "driver", the format is probed (qcow2 magic, else raw) unless
 * BDRV_O_PROTOCOL.  Returns a new reference owned by the caller.
 */
BlockDriverState *bdrv_open(const char *filename, const char *reference,
                            QDict *options, int flags, Error **errp);

void bdrv_ref(BlockDriverState *bs);
void bdrv_unref(BlockDriverState *bs);
int bdrv_get_refcnt(BlockDriverState *bs);

/* Named-node lookups. */
BlockDriverState *bdrv_find_node(const char *node_name);
/* Iterates over every open node (@bs NULL starts). */
BlockDriverState *bdrv_next_all(BlockDriverState *bs);
/* By node-name or by the name of a BlockBackend whose root it is. */
BlockDriverState *bdrv_lookup_bs(const char *device, const char *node_name,
                                 Error **errp);

const char *bdrv_get_node_name(const BlockDriverState *bs);
const char *bdrv_get_format_name(BlockDriverState *bs);
const char *bdrv_get_filename(BlockDriverState *bs);
bool bdrv_is_read_only(BlockDriverState *bs);
int bdrv_get_flags(BlockDriverState *bs);

int64_t bdrv_getlength(BlockDriverState *bs);
int64_t bdrv_nb_sectors(BlockDriverState *bs);
int64_t bdrv_get_allocated_file_size(BlockDriverState *bs);
int bdrv_get_info(BlockDriverState *bs, BlockDriverInfo *bdi);
/* {"type": fmt, "data": {...}} as qemu-img's "format-specific", or NULL. */
JsonNode *bdrv_get_specific_info(BlockDriverState *bs, Error **errp);

/* The backing child's node, the filtered child, or the file child. */
BlockDriverState *bdrv_backing_bs(BlockDriverState *bs);
BlockDriverState *bdrv_file_bs(BlockDriverState *bs);
/* Skips filter nodes (raw without offset is not a filter). */
BlockDriverState *bdrv_skip_filters(BlockDriverState *bs);
const char *bdrv_get_backing_filename(BlockDriverState *bs);
const char *bdrv_get_backing_format(BlockDriverState *bs);
/* Backing file name resolved against the image's directory; g_free. */
char *bdrv_get_full_backing_filename(BlockDriverState *bs, Error **errp);

/*
 * Creates an image of format @drv at @filename with creation options
 * @opts (QDict, may be NULL; "size" required for most drivers).  Does
 * not open it.
 */
int bdrv_create(BlockDriver *drv, const char *filename, QDict *opts,
                Error **errp);
/* Creates the protocol file (for formats that sit on "file"). */
int bdrv_create_file(const char *filename, QDict *opts, Error **errp);

int bdrv_truncate(BdrvChild *child, int64_t offset, bool exact,
                  PreallocMode prealloc, BdrvRequestFlags flags, Error **errp);
int bdrv_check(BlockDriverState *bs, BdrvCheckResult *res, BdrvCheckMode fix);
/* Rewrites the backing file name in the header (qemu-img rebase -u). */
int bdrv_change_backing_file(BlockDriverState *bs, const char *backing_file,
                             const char *backing_fmt, Error **errp);
int bdrv_amend_options(BlockDriverState *bs, QDict *opts, bool force,
                       Error **errp);
int bdrv_measure(BlockDriver *drv, QDict *opts, BlockDriverState *in_bs,
                 BlockMeasureInfo *info, Error **errp);

/* Waits until no request is in flight on @bs and below. */
void bdrv_drain(BlockDriverState *bs);
void bdrv_drain_all(void);
int bdrv_flush(BlockDriverState *bs);
int bdrv_flush_all(void);

/*
 * Request functions on a child edge.  Coroutine versions may only be
 * called from coroutine context; the plain ones work anywhere (outside a
 * coroutine they run one and poll the main loop until it finishes).
 * All return 0 on success or a negative errno.
 */
int coroutine_fn bdrv_co_preadv(BdrvChild *child, int64_t offset,
                                int64_t bytes, QEMUIOVector *qiov,
                                BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwritev(BdrvChild *child, int64_t offset,
                                 int64_t bytes, QEMUIOVector *qiov,
                                 BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pread(BdrvChild *child, int64_t offset,
                               int64_t bytes, void *buf,
                               BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwrite(BdrvChild *child, int64_t offset,
                                int64_t bytes, const void *buf,
                                BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwrite_sync(BdrvChild *child, int64_t offset,
                                     int64_t bytes, const void *buf,
                                     BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwrite_zeroes(BdrvChild *child, int64_t offset,
                                       int64_t bytes, BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pdiscard(BdrvChild *child, int64_t offset,
                                  int64_t bytes);
int coroutine_fn bdrv_co_flush(BlockDriverState *bs);
int coroutine_fn bdrv_co_truncate(BdrvChild *child, int64_t offset,
                                  bool exact, PreallocMode prealloc,
                                  BdrvRequestFlags flags, Error **errp);

int bdrv_pread(BdrvChild *child, int64_t offset, int64_t bytes, void *buf,
               BdrvRequestFlags flags);
int bdrv_pwrite(BdrvChild *child, int64_t offset, int64_t bytes,
                const void *buf, BdrvRequestFlags flags);
int bdrv_pwrite_sync(BdrvChild *child, int64_t offset, int64_t bytes,
                     const void *buf, BdrvRequestFlags flags);
int bdrv_pwrite_zeroes(BdrvChild *child, int64_t offset, int64_t bytes,
                       BdrvRequestFlags flags);
int bdrv_pdiscard(BdrvChild *child, int64_t offset, int64_t bytes);

/*
 * Block status of [offset, offset + bytes) in @bs alone: returns
 * BDRV_BLOCK_* flags valid for the first *pnum bytes (> 0 unless at EOF),
 * or a negative errno.  *map / *file locate the data when OFFSET_VALID.
 */
int coroutine_fn bdrv_co_block_status(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum,
                                      int64_t *map, BlockDriverState **file);
/*
 * Same through the backing chain from @bs down to (excluding) @base
 * (NULL = whole chain).  *depth (if non-NULL) is 0 for @bs, 1 for its
 * backing file, ...; for unallocated areas it is the chain length + 1
 * when no layer has them.
 */
int coroutine_fn bdrv_co_block_status_above(BlockDriverState *bs,
                                            BlockDriverState *base,
                                            int64_t offset, int64_t bytes,
                                            int64_t *pnum, int64_t *map,
                                            BlockDriverState **file,
                                            int *depth);
int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockDriverState **file);
int bdrv_block_status_above(BlockDriverState *bs, BlockDriverState *base,
                            int64_t offset, int64_t bytes, int64_t *pnum,
                            int64_t *map, BlockDriverState **file,
                            int *depth);
/* 1 if allocated in @bs (not its backing), 0 if not, <0 on error. */
int bdrv_is_allocated(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum);
/*
 * 1 if allocated in any layer from @top down to @base (@base included
 * only if @include_base); @base NULL means the whole chain.
 */
int bdrv_is_allocated_above(BlockDriverState *top, BlockDriverState *base,
                            bool include_base, int64_t offset,
                            int64_t bytes, int64_t *pnum);
int coroutine_fn bdrv_co_is_allocated_above(BlockDriverState *top,
                                            BlockDriverState *base,
                                            bool include_base, int64_t offset,
                                            int64_t bytes, int64_t *pnum);

/* blkdebug hooks: fire @event on @child's node (no-op if none). */
void bdrv_debug_event(BlockDriverState *bs, BlkdebugEvent event);
#define BLKDBG_EVENT(child, evt)                                        \
    do {                                                                \
        if (child) {                                                    \
            bdrv_debug_event(bdrv_child_bs(child), evt);                \
        }                                                               \
    } while (0)
int bdrv_debug_breakpoint(BlockDriverState *bs, const char *event,
                          const char *tag);
int bdrv_debug_remove_breakpoint(BlockDriverState *bs, const char *tag);
int bdrv_debug_resume(BlockDriverState *bs, const char *tag);
bool bdrv_debug_is_suspended(BlockDriverState *bs, const char *tag);

BlockDriverState *bdrv_child_bs(BdrvChild *child);

/* Closes every node still open (at exit, after the holders let go). */
void bdrv_close_all(void);

#endif
