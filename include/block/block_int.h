/*
 * Block driver interface and node internals.
 */
#ifndef BLOCK_INT_H
#define BLOCK_INT_H

#include "block/block.h"
#include "qemu/aio.h"

/* Description of one creation option (qemu-img create -o). */
typedef enum {
    CREATE_OPT_STRING,
    CREATE_OPT_BOOL,
    CREATE_OPT_NUMBER,
    CREATE_OPT_SIZE,
} CreateOptType;

typedef struct CreateOptDesc {
    const char *name;
    CreateOptType type;
    const char *help;
    const char *def_value_str;  /* NULL: no default shown */
} CreateOptDesc;

/*
 * Roles of a child edge (as in QEMU): what the parent uses the child for.
 */
typedef enum BdrvChildRole {
    BDRV_CHILD_DATA       = (1 << 0),  /* guest data lives here */
    BDRV_CHILD_METADATA   = (1 << 1),  /* format metadata lives here */
    BDRV_CHILD_FILTERED   = (1 << 2),  /* parent is a filter of this child */
    BDRV_CHILD_COW        = (1 << 3),  /* backing file */
    BDRV_CHILD_PRIMARY    = (1 << 4),  /* the parent's main child */
    BDRV_CHILD_IMAGE      = BDRV_CHILD_DATA | BDRV_CHILD_METADATA,
} BdrvChildRole;

/* What kind of parent holds a child edge. */
struct BdrvChildClass {
    bool parent_is_bds;
    /* Human-readable description of the parent for error messages. */
    char *(*get_parent_desc)(BdrvChild *c);
    /* Name of the parent (node-name or device name) for the graph dump. */
    const char *(*get_name)(BdrvChild *c);
    /*
     * True for parents that must keep using the node they attached to
     * when a new node is installed above it (a job's internal edges):
     * bdrv_replace_node() leaves such edges in place.
     */
    bool stay_at_node;
};

/*
 * An edge from a parent (node, BlockBackend, job, export, device) to a
 * child node.  The edge owns one reference on @bs, dropped when the edge
 * is removed with bdrv_root_unref_child()/bdrv_unref_child().
 */
struct BdrvChild {
    BlockDriverState *bs;
    char *name;                 /* "file", "backing", "root", "image", ... */
    const BdrvChildClass *klass;
    BdrvChildRole role;
    void *opaque;               /* the parent (BlockDriverState * for nodes) */
    /*
     * Optional: serves every read through this edge in place of the
     * child; the hook reaches the child itself with BDRV_REQ_NO_READ_HOOK.
     * A fleecing target's backing edge uses it to read the point in time.
     */
    int coroutine_fn (*read_hook)(BdrvChild *c, int64_t offset,
                                  int64_t bytes, QEMUIOVector *qiov,
                                  BdrvRequestFlags flags);
    void *read_hook_opaque;
    QLIST_ENTRY(BdrvChild) next;        /* in the parent's children list */
    QLIST_ENTRY(BdrvChild) next_parent; /* in bs->parents */
};

extern const BdrvChildClass child_of_bds;

typedef enum {
    BDRV_TRACKED_READ,
    BDRV_TRACKED_WRITE,
    BDRV_TRACKED_DISCARD,
    BDRV_TRACKED_TRUNCATE,
} BdrvTrackedRequestType;

/*
 * A request in flight on a node.  Serialising requests (read-modify-write
 * of unaligned writes, copy-before-write, truncate) wait for every
 * overlapping request to finish, and overlapping requests started later
 * wait for them.
 */
typedef struct BdrvTrackedRequest {
    BlockDriverState *bs;
    BdrvChild *child;           /* the edge a read came through, or NULL */
    int64_t offset;
    int64_t bytes;
    BdrvTrackedRequestType type;
    BdrvRequestFlags flags;
    bool serialising;
    int64_t overlap_offset;     /* the range serialisation protects */
    int64_t overlap_bytes;
    QLIST_ENTRY(BdrvTrackedRequest) list;
    Coroutine *co;
    /* Completed to its caller (io.c): its bs->deferred_seq; else 0. */
    uint64_t deferred;
    CoQueue wait_queue;         /* requests waiting for this one */
    struct BdrvTrackedRequest *waiting_for;
} BdrvTrackedRequest;

/*
 * Before-write notifiers run in the request's coroutine after the request
 * is tracked and before the driver sees a write, write-zeroes or discard;
 * a non-zero return fails the request.  Copy-before-write hooks here.
 */
typedef struct BdrvBeforeWriteNotifier BdrvBeforeWriteNotifier;
struct BdrvBeforeWriteNotifier {
    int coroutine_fn (*notify)(BdrvBeforeWriteNotifier *n,
                               BdrvTrackedRequest *req);
    /*
     * Whether a write of [offset, offset + bytes) would wait in notify()
     * for work that may as well run after the write completed to its
     * caller (see "Deferred writes" in io.c).  NULL: the notifier's
     * errors must reach the writer, so no write is ever deferred.
     */
    bool (*may_defer)(BdrvBeforeWriteNotifier *n, int64_t offset,
                      int64_t bytes);
    QLIST_ENTRY(BdrvBeforeWriteNotifier) next;
};

void bdrv_add_before_write_notifier(BlockDriverState *bs,
                                    BdrvBeforeWriteNotifier *n);
void bdrv_remove_before_write_notifier(BdrvBeforeWriteNotifier *n);

typedef struct BlockLimits {
    uint32_t request_alignment;   /* bytes; requests are aligned to this */
    int64_t max_transfer;         /* bytes per request; 0 = no limit */
    uint32_t pdiscard_alignment;  /* 0 = request_alignment */
    int64_t max_pdiscard;
    uint32_t pwrite_zeroes_alignment;
    int64_t max_pwrite_zeroes;
    uint32_t opt_transfer;
    size_t min_mem_alignment;     /* buffer alignment for O_DIRECT */
    size_t opt_mem_alignment;
    int max_iov;
} BlockLimits;

struct BlockDriver {
    const char *format_name;
    int instance_size;          /* size of bs->opaque */
    const char *protocol_name;  /* "nbd", "null-co": filename prefixes */
    bool is_format;             /* has a "file" child with image metadata */
    bool is_filter;             /* passes I/O to its only child */
    bool supports_backing;
    bool has_variable_length;   /* re-query the length on every call */
    /* Options the driver accepts in open (NULL-terminated). */
    const char *const *runtime_opts;
    /* Creation options (terminated by a NULL name). */
    const CreateOptDesc *create_opts;

    /* Probe score 0..100 for the first bytes of an image. */
    int (*bdrv_probe)(const uint8_t *buf, int buf_size, const char *filename);
    /* Turns "proto:..." into options; for protocol drivers. */
    void (*bdrv_parse_filename)(const char *filename, QDict *options,
                                Error **errp);

    /*
     * Opens @bs with the driver's @options (borrowed; children are opened
     * with bdrv_open_child() which consumes their options).  bs->open_flags
     * and bs->read_only are already set.  On failure the driver frees its
     * own state (its close is not called); children it attached are
     * released by the generic code.
     */
    int (*bdrv_open)(BlockDriverState *bs, QDict *options, int flags,
                     Error **errp);
    void (*bdrv_close)(BlockDriverState *bs);
    void (*bdrv_refresh_limits)(BlockDriverState *bs, Error **errp);

    int coroutine_fn (*bdrv_co_preadv)(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags);
    int coroutine_fn (*bdrv_co_pwritev)(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, QEMUIOVector *qiov,
                                        BdrvRequestFlags flags);
    int coroutine_fn (*bdrv_co_pwritev_compressed)(BlockDriverState *bs,
                                                   int64_t offset,
                                                   int64_t bytes,
                                                   QEMUIOVector *qiov);
    /* -ENOTSUP makes the generic code write a zeroed buffer instead. */
    int coroutine_fn (*bdrv_co_pwrite_zeroes)(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              BdrvRequestFlags flags);
    int coroutine_fn (*bdrv_co_pdiscard)(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes);
    int coroutine_fn (*bdrv_co_flush_to_os)(BlockDriverState *bs);
    int coroutine_fn (*bdrv_co_flush_to_disk)(BlockDriverState *bs);
    /*
     * Allocation status of [offset, offset + bytes) (aligned to the
     * request alignment).  Returns BDRV_BLOCK_* for the first *pnum bytes.
     * With OFFSET_VALID, *map and *file locate the data.  BDRV_BLOCK_RAW asks
     * the generic code to answer from *file at *map instead;
     * BDRV_BLOCK_RECURSE (with DATA) asks it to check *file for zeroes
     * (e.g. preallocated clusters).  Returning 0 means "not allocated
     * here": the generic code reports ZERO if there is no backing file.
     */
    int coroutine_fn (*bdrv_co_block_status)(BlockDriverState *bs,
                                             bool want_zero, int64_t offset,
                                             int64_t bytes, int64_t *pnum,
                                             int64_t *map,
                                             BlockDriverState **file);
    int coroutine_fn (*bdrv_co_truncate)(BlockDriverState *bs, int64_t offset,
                                         bool exact, PreallocMode prealloc,
                                         BdrvRequestFlags flags, Error **errp);

    int64_t (*bdrv_getlength)(BlockDriverState *bs);
    int64_t (*bdrv_get_allocated_file_size)(BlockDriverState *bs);
    int (*bdrv_get_info)(BlockDriverState *bs, BlockDriverInfo *bdi);
    JsonNode *(*bdrv_get_specific_info)(BlockDriverState *bs, Error **errp);

    int coroutine_fn (*bdrv_co_create_opts)(BlockDriver *drv,
                                            const char *filename,
                                            QDict *opts, Error **errp);
    int coroutine_fn (*bdrv_co_check)(BlockDriverState *bs,
                                      BdrvCheckResult *result,
                                      BdrvCheckMode fix);
    int (*bdrv_change_backing_file)(BlockDriverState *bs,
                                    const char *backing_file,
                                    const char *backing_fmt);
    int coroutine_fn (*bdrv_co_amend)(BlockDriverState *bs, QDict *opts,
                                      bool force, Error **errp);
    int (*bdrv_measure)(QDict *opts, BlockDriverState *in_bs,
                        BlockMeasureInfo *info, Error **errp);

    /*
     * Persistent dirty bitmaps (see block/dirty-bitmap.h).  The driver
     * loads its bitmaps at open; these are called from the main loop,
     * outside coroutine context.  can_store checks a new bitmap against
     * the format's limits; remove deletes one from the image at once;
     * store writes every persistent bitmap before close.
     */
    bool (*bdrv_can_store_new_dirty_bitmap)(BlockDriverState *bs,
                                            const char *name,
                                            uint32_t granularity,
                                            Error **errp);
    int (*bdrv_remove_persistent_dirty_bitmap)(BlockDriverState *bs,
                                               const char *name,
                                               Error **errp);
    int (*bdrv_store_persistent_dirty_bitmaps)(BlockDriverState *bs,
                                               Error **errp);

    /* blkdebug */
    void (*bdrv_debug_event)(BlockDriverState *bs, BlkdebugEvent event);
    int (*bdrv_debug_breakpoint)(BlockDriverState *bs, const char *event,
                                 const char *tag);
    int (*bdrv_debug_remove_breakpoint)(BlockDriverState *bs,
                                        const char *tag);
    int (*bdrv_debug_resume)(BlockDriverState *bs, const char *tag);
    bool (*bdrv_debug_is_suspended)(BlockDriverState *bs, const char *tag);

    QLIST_ENTRY(BlockDriver) list;
};

struct BlockDriverState {
    BlockDriver *drv;
    void *opaque;               /* drv->instance_size bytes */

    int refcnt;                 /* see block.h: one per holder */
    int open_flags;             /* BDRV_O_* */
    bool read_only;
    bool implicit_node_name;    /* node_name was generated ("#blockNNN") */
    char node_name[32];

    /* For protocols, the file/URI; for formats, their file's filename. */
    char filename[PATH_MAX];
    /* Backing file as recorded in the image header, and its format. */
    char backing_file[PATH_MAX];
    char backing_format[16];

    QDict *options;             /* the options the node was opened with */

    BdrvChild *file;            /* convenience pointers into children */
    BdrvChild *backing;
    QLIST_HEAD(, BdrvChild) children;
    QLIST_HEAD(, BdrvChild) parents;

    int64_t total_sectors;      /* cached length in 512-byte sectors */
    BlockLimits bl;
    BdrvRequestFlags supported_write_flags;
    BdrvRequestFlags supported_zero_flags;
    BlockdevDetectZeroesOptions detect_zeroes;

    /* Request tracking (main loop thread only). */
    unsigned in_flight;
    QLIST_HEAD(, BdrvTrackedRequest) tracked_requests;
    unsigned serialising_in_flight;
    QLIST_HEAD(, BdrvBeforeWriteNotifier) before_write_notifiers;
    /*
     * Writes completed to their callers but still running (io.c,
     * "Deferred writes"), numbered from 1; deferred_done wakes flushes
     * when one ends.
     * deferred_error: the first of them that failed, reported by every
     * flush from then on.
     */
    unsigned deferred_writes;
    int64_t deferred_bytes;
    uint64_t deferred_seq;      /* the last number given to one */
    CoQueue deferred_done;
    int deferred_error;
    /* >0 while drained: new requests wait on drain_queue. */
    int quiesce_counter;
    CoQueue drain_queue;

    uint64_t wr_highest_offset;
    /*
     * Bumped by every write, write-zeroes, discard and truncate the node's
     * driver was asked to do; flushed_gen is the value the last successful
     * flush started with.  Equal: there is nothing to flush on this node.
     */
    uint64_t write_gen;
    uint64_t flushed_gen;

    /* Dirty bitmaps (block/dirty-bitmap.c), marked by every write. */
    QTAILQ_HEAD(, BdrvDirtyBitmap) dirty_bitmaps;

    QTAILQ_ENTRY(BlockDriverState) all_list;
};

/* Driver registration (called from bdrv_init()). */
void bdrv_register(BlockDriver *drv);

/*
 * Opens the child @child_name of @parent from the options under
 * "@child_name" in @options (a node-name string, a nested dict, or
 * "@child_name.*" flat keys) or, failing those, from @filename.  The
 * consumed options are removed from @options.  Returns NULL without error
 * when @allow_none and nothing was specified.  The child edge owns the
 * new node's reference.
 */
BdrvChild *bdrv_open_child(const char *filename, QDict *options,
                           const char *child_name, BlockDriverState *parent,
                           BdrvChildRole role, bool allow_none,
                           Error **errp);

/* Attaches @child_bs below @parent; takes over the caller's reference. */
BdrvChild *bdrv_attach_child(BlockDriverState *parent,
                             BlockDriverState *child_bs,
                             const char *child_name, BdrvChildRole role,
                             Error **errp);
/* Removes the edge and drops its reference. */
void bdrv_unref_child(BlockDriverState *parent, BdrvChild *child);

/* Edges from non-node parents (BlockBackend, job, export, device). */
BdrvChild *bdrv_root_attach_child(BlockDriverState *child_bs,
                                  const char *child_name,
                                  const BdrvChildClass *klass,
                                  BdrvChildRole role, void *opaque,
                                  Error **errp);
void bdrv_root_unref_child(BdrvChild *child);

/* Replaces the backing child of @bs (NULL removes it); takes a new ref. */
int bdrv_set_backing_hd(BlockDriverState *bs, BlockDriverState *backing_hd,
                        Error **errp);
/*
 * Moves every parent edge of @from to @to, except edges whose parent is
 * @to itself (its backing edge onto @from, when @to is installed as an
 * overlay) and edges of classes with stay_at_node.  Each moved edge
 * carries its reference over: it takes one on @to and drops its one on
 * @from, so the caller's references are unchanged and @from lives on
 * only if something else (typically @to's backing edge) still holds it.
 * Fails without changing anything when @to is @from or when a moved
 * parent node is reachable from @to (the move would create a cycle).
 */
int bdrv_replace_node(BlockDriverState *from, BlockDriverState *to,
                      Error **errp);
/* Opens bs->backing_file (or options["backing"]) as the backing child. */
int bdrv_open_backing_file(BlockDriverState *bs, QDict *options,
                           Error **errp);

/* Re-reads the length from the driver (after truncate/resize). */
int bdrv_refresh_total_sectors(BlockDriverState *bs, int64_t hint);

/* Helpers for drivers' create functions: open/create the protocol file. */
BlockBackend *bdrv_create_open_file(const char *filename, Error **errp);

/*
 * Runs @entry(@opaque) to completion: directly when already in coroutine
 * context, otherwise in a new coroutine while polling the main loop.
 * Completion is signalled by @entry storing its result in *@ret_ptr (which
 * is set to -EINPROGRESS before it starts); returns that result.
 */
int bdrv_co_run(CoroutineEntry *entry, void *opaque, int *ret_ptr);

/*
 * Fails with QEMU's "node is used as backing hd" error if @bs is another
 * node's backing image: QEMU refuses to delete or snapshot such a node
 * (a snapshot would go below that node's overlay).
 */
bool bdrv_check_not_backing(BlockDriverState *bs, Error **errp);

/* Request tracking helpers for users that serialise on their own. */
void bdrv_mark_request_serialising(BdrvTrackedRequest *req, uint64_t align);
BdrvTrackedRequest *bdrv_find_conflicting_request(BlockDriverState *bs,
                                                  int64_t offset,
                                                  int64_t bytes);
/*
 * Waits until no read that @parent issued on self->bs through one of its
 * child edges overlaps @self.  Reads already waiting for @self are not
 * waited for, so this cannot deadlock with a serialising @self.
 */
void coroutine_fn bdrv_co_wait_reads_from(BdrvTrackedRequest *self,
                                         BlockDriverState *parent);

/* Counts a request in flight on @bs; bdrv_drain() waits for zero. */
void bdrv_inc_in_flight(BlockDriverState *bs);
void bdrv_dec_in_flight(BlockDriverState *bs);

/* A buffer aligned for I/O on @bs (O_DIRECT safe); free with qemu_vfree. */
void *qemu_blockalign(BlockDriverState *bs, size_t size);

/* Generated "#blockNNN" names for nodes opened without node-name. */
void bdrv_assign_node_name(BlockDriverState *bs, const char *node_name,
                           Error **errp);

#endif
