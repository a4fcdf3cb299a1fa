/*
 * Dirty bitmaps: per-node records of which byte ranges were written.
 *
 * A node (BlockDriverState) owns a list of BdrvDirtyBitmaps.  Every write,
 * write-zeroes and discard that reaches the node marks its range in each
 * *enabled* bitmap (bdrv_set_dirty(), called by block/io.c).  Bitmaps are
 * named (visible to users, unique per node) or anonymous (private to the
 * job that made them).  Named bitmaps may be *persistent*: a driver that
 * supports it (qcow2) loads them at open and stores them at close.
 *
 * Ownership: the node owns its bitmaps; bdrv_release_dirty_bitmap()
 * frees one, and closing the node frees those left.  Whoever creates an
 * anonymous bitmap holds a reference on the node while it exists, so a
 * node never closes under a job's bitmap.
 *
 * All functions run in the main loop thread; none of them yields.
 *
 * The API follows QEMU's (include/block/dirty-bitmap.h there) so that the
 * monitor and job code reads the same.
 */
#ifndef BLOCK_DIRTY_BITMAP_H
#define BLOCK_DIRTY_BITMAP_H

#include "block/block.h"
#include "qemu/hbitmap.h"

typedef struct BdrvDirtyBitmap BdrvDirtyBitmap;
typedef struct BdrvDirtyBitmapIter BdrvDirtyBitmapIter;

/* Longest bitmap name a persistent bitmap may have (qcow2's limit). */
#define BDRV_BITMAP_MAX_NAME_SIZE 1023

/* Flags for bdrv_dirty_bitmap_check(): the states that refuse the use. */
typedef enum BdrvDirtyBitmapFlags {
    BDRV_BITMAP_BUSY = 1,           /* in use by a job, export, migration */
    BDRV_BITMAP_RO = 2,             /* loaded from a read-only image */
    BDRV_BITMAP_INCONSISTENT = 4,   /* not saved correctly (in_use on disk) */
} BdrvDirtyBitmapFlags;

#define BDRV_BITMAP_DEFAULT (BDRV_BITMAP_BUSY | BDRV_BITMAP_RO | \
                             BDRV_BITMAP_INCONSISTENT)
#define BDRV_BITMAP_ALLOW_RO (BDRV_BITMAP_BUSY | BDRV_BITMAP_INCONSISTENT)

/* ---- lifetime ---- */

/*
 * Creates an enabled bitmap covering the node's current length.
 * @granularity: bytes per bit, a power of two >= 512.  @name: NULL for an
 * anonymous bitmap, else unique on the node ("Bitmap already exists").
 */
BdrvDirtyBitmap *bdrv_create_dirty_bitmap(BlockDriverState *bs,
                                          uint32_t granularity,
                                          const char *name, Error **errp);
/* Frees @bitmap (and its successor, if any) and unlinks it from its node. */
void bdrv_release_dirty_bitmap(BdrvDirtyBitmap *bitmap);
/* Frees every bitmap of @bs; for node close. */
void bdrv_release_all_dirty_bitmaps(BlockDriverState *bs);

/* The cluster size clamped to [4 KiB, 64 KiB]; 64 KiB if unknown. */
uint32_t bdrv_get_default_bitmap_granularity(BlockDriverState *bs);

/* ---- lookup and listing ---- */

BdrvDirtyBitmap *bdrv_find_dirty_bitmap(BlockDriverState *bs,
                                        const char *name);
/* Iteration over a node's bitmaps in creation order (NULL at the end). */
BdrvDirtyBitmap *bdrv_dirty_bitmap_first(BlockDriverState *bs);
BdrvDirtyBitmap *bdrv_dirty_bitmap_next(BdrvDirtyBitmap *bitmap);
bool bdrv_has_dirty_bitmaps(BlockDriverState *bs);
/* True if @bs has a named bitmap marked persistent. */
bool bdrv_has_persistent_dirty_bitmaps(BlockDriverState *bs);
/* True if @bs has a bitmap loaded read-only. */
bool bdrv_has_readonly_bitmaps(BlockDriverState *bs);

/* ---- properties ---- */

const char *bdrv_dirty_bitmap_name(const BdrvDirtyBitmap *bitmap);
BlockDriverState *bdrv_dirty_bitmap_bs(const BdrvDirtyBitmap *bitmap);
uint32_t bdrv_dirty_bitmap_granularity(const BdrvDirtyBitmap *bitmap);
/* Bytes covered (the node's length when the bitmap was last sized). */
int64_t bdrv_dirty_bitmap_size(const BdrvDirtyBitmap *bitmap);

void bdrv_enable_dirty_bitmap(BdrvDirtyBitmap *bitmap);
void bdrv_disable_dirty_bitmap(BdrvDirtyBitmap *bitmap);
bool bdrv_dirty_bitmap_enabled(const BdrvDirtyBitmap *bitmap);

/* Busy: a job or export uses the bitmap; users may not touch it. */
void bdrv_dirty_bitmap_set_busy(BdrvDirtyBitmap *bitmap, bool busy);
bool bdrv_dirty_bitmap_busy(const BdrvDirtyBitmap *bitmap);

void bdrv_dirty_bitmap_set_persistence(BdrvDirtyBitmap *bitmap,
                                       bool persistent);
bool bdrv_dirty_bitmap_get_persistence(const BdrvDirtyBitmap *bitmap);

/*
 * Inconsistent: loaded from an image where it was not saved correctly;
 * its contents are meaningless and it can only be removed.  Setting it
 * also disables the bitmap.
 */
void bdrv_dirty_bitmap_set_inconsistent(BdrvDirtyBitmap *bitmap);
bool bdrv_dirty_bitmap_inconsistent(const BdrvDirtyBitmap *bitmap);

/* Read-only: loaded from a read-only image; contents may not change. */
void bdrv_dirty_bitmap_set_readonly(BdrvDirtyBitmap *bitmap, bool value);
bool bdrv_dirty_bitmap_readonly(const BdrvDirtyBitmap *bitmap);

/*
 * Returns 0 if none of the states in @flags applies, else sets @errp with
 * QEMU's message for the first one that does and returns -1.
 */
int bdrv_dirty_bitmap_check(const BdrvDirtyBitmap *bitmap, uint32_t flags,
                            Error **errp);

/* ---- contents ---- */

/* Marks [offset, offset + bytes) in every enabled bitmap of @bs. */
void bdrv_set_dirty(BlockDriverState *bs, int64_t offset, int64_t bytes);

void bdrv_set_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                           int64_t bytes);
void bdrv_reset_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                             int64_t bytes);
bool bdrv_dirty_bitmap_get(const BdrvDirtyBitmap *bitmap, int64_t offset);
/* Bytes covered by set bits. */
int64_t bdrv_get_dirty_count(const BdrvDirtyBitmap *bitmap);

/*
 * Clears the whole bitmap.  With @out, the old contents are handed to the
 * caller (a transaction's undo state) instead of being freed; give them
 * back with bdrv_restore_dirty_bitmap() or free them with hbitmap_free().
 */
void bdrv_clear_dirty_bitmap(BdrvDirtyBitmap *bitmap, HBitmap **out);
/* Puts back contents taken by clear or merge; takes ownership of @backup. */
void bdrv_restore_dirty_bitmap(BdrvDirtyBitmap *bitmap, HBitmap *backup);

/*
 * dest |= src.  Both must cover the same size; the granularities may
 * differ (a coarser destination bit is set when any source bit inside it
 * is).  With @backup, the old destination contents are handed out as for
 * bdrv_clear_dirty_bitmap().  Refused (false, @errp set) if @dest is
 * busy, read-only or inconsistent or @src inconsistent.
 */
bool bdrv_merge_dirty_bitmap(BdrvDirtyBitmap *dest,
                             const BdrvDirtyBitmap *src,
                             HBitmap **backup, Error **errp);

/*
 * First dirty / clean byte offset in [offset, offset + bytes), or -1.
 * @bytes may be -1 for "to the end".
 */
int64_t bdrv_dirty_bitmap_next_dirty(const BdrvDirtyBitmap *bitmap,
                                     int64_t offset, int64_t bytes);
int64_t bdrv_dirty_bitmap_next_zero(const BdrvDirtyBitmap *bitmap,
                                    int64_t offset, int64_t bytes);
/*
 * First dirty run in [start, end), at most @max_dirty_count bytes long
 * (clamped to the bitmap's end); false if there is none.
 */
bool bdrv_dirty_bitmap_next_dirty_area(const BdrvDirtyBitmap *bitmap,
                                       int64_t start, int64_t end,
                                       int64_t max_dirty_count,
                                       int64_t *dirty_start,
                                       int64_t *dirty_count);
/*
 * Whether @offset is dirty; *pnum is the length of the run from @offset
 * (at most @bytes) sharing that state.
 */
bool bdrv_dirty_bitmap_status(const BdrvDirtyBitmap *bitmap, int64_t offset,
                              int64_t bytes, int64_t *pnum);

/*
 * Iteration over dirty granules.  The iterator sees the bitmap as it is
 * when bdrv_dirty_iter_next() runs; bits set behind it are not revisited.
 * It must be freed before the bitmap is released.
 */
BdrvDirtyBitmapIter *bdrv_dirty_iter_new(BdrvDirtyBitmap *bitmap);
/* Start offset of the next dirty granule, or -1 at the end. */
int64_t bdrv_dirty_iter_next(BdrvDirtyBitmapIter *iter);
/* Restarts at the granule containing @offset. */
void bdrv_set_dirty_iter(BdrvDirtyBitmapIter *iter, int64_t offset);
void bdrv_dirty_iter_free(BdrvDirtyBitmapIter *iter);

/* Resizes every bitmap of @bs to @bytes (new area clean); for truncate. */
void bdrv_dirty_bitmap_truncate(BlockDriverState *bs, int64_t bytes);

/* ---- serialization (qcow2's bit order, see hbitmap.h) ---- */

uint64_t bdrv_dirty_bitmap_serialization_align(const BdrvDirtyBitmap *bitmap);
uint64_t bdrv_dirty_bitmap_serialization_size(const BdrvDirtyBitmap *bitmap,
                                              uint64_t offset,
                                              uint64_t bytes);
void bdrv_dirty_bitmap_serialize_part(const BdrvDirtyBitmap *bitmap,
                                      uint8_t *buf, uint64_t offset,
                                      uint64_t bytes);
void bdrv_dirty_bitmap_deserialize_part(BdrvDirtyBitmap *bitmap,
                                        const uint8_t *buf, uint64_t offset,
                                        uint64_t bytes, bool finish);
/* Sets or clears a whole range (a qcow2 "all ones"/"all zeroes" entry). */
void bdrv_dirty_bitmap_deserialize_ones(BdrvDirtyBitmap *bitmap,
                                        uint64_t offset, uint64_t bytes);
void bdrv_dirty_bitmap_deserialize_zeroes(BdrvDirtyBitmap *bitmap,
                                          uint64_t offset, uint64_t bytes);
void bdrv_dirty_bitmap_deserialize_finish(BdrvDirtyBitmap *bitmap);

/* ---- successors (what a sync=bitmap backup uses) ---- */

/*
 * Freezes @bitmap for a job: an anonymous successor with the same
 * granularity takes over recording new writes (enabled if @bitmap was),
 * @bitmap is disabled and busy.  Refused if @bitmap is busy already.
 */
int bdrv_dirty_bitmap_create_successor(BdrvDirtyBitmap *bitmap, Error **errp);
bool bdrv_dirty_bitmap_has_successor(const BdrvDirtyBitmap *bitmap);
/*
 * The job succeeded: the successor takes @bitmap's name, persistence and
 * place and @bitmap (whose dirty bits were handled) is freed.  Returns the
 * successor, or NULL with @errp if @bitmap has none.
 */
BdrvDirtyBitmap *bdrv_dirty_bitmap_abdicate(BdrvDirtyBitmap *bitmap,
                                            Error **errp);
/*
 * The job failed (or must keep its bits): the successor's bits are merged
 * back into @bitmap, which takes the successor's enabled state and stops
 * being busy; the successor is freed.  Returns @bitmap, or NULL with
 * @errp if it has no successor.
 */
BdrvDirtyBitmap *bdrv_reclaim_dirty_bitmap(BdrvDirtyBitmap *bitmap,
                                           Error **errp);

/* ---- persistence (driver callbacks behind them) ---- */

/*
 * Asks the node's driver whether a new persistent bitmap could be stored;
 * false with @errp (prefixed "Can't make bitmap 'N' persistent in 'NODE': ")
 * if not.
 */
bool bdrv_can_store_new_dirty_bitmap(BlockDriverState *bs, const char *name,
                                     uint32_t granularity, Error **errp);
/* Deletes a persistent bitmap from the image (nothing if not stored yet). */
int bdrv_remove_persistent_dirty_bitmap(BlockDriverState *bs,
                                        const char *name, Error **errp);
/*
 * Writes every persistent bitmap of @bs to the image (no-op for drivers
 * without persistence or read-only nodes).  block.c calls it before the
 * driver's close.
 */
int bdrv_store_persistent_dirty_bitmaps(BlockDriverState *bs, Error **errp);

/* ---- monitor-level operations (the QMP handlers' semantics) ---- */

/*
 * block-dirty-bitmap-add: validates the name and granularity
 * (@granularity 0 = the node's default), checks that a persistent bitmap
 * can be stored, creates the bitmap, disabled if @disabled.
 */
BdrvDirtyBitmap *block_dirty_bitmap_add(BlockDriverState *bs,
                                        const char *name,
                                        bool has_granularity,
                                        uint32_t granularity,
                                        bool persistent, bool disabled,
                                        Error **errp);
/*
 * block-dirty-bitmap-remove: refused if busy or read-only; deletes a
 * persistent bitmap from the image first.  With @release the bitmap is
 * freed; otherwise it is returned (for a transaction to free later).
 */
BdrvDirtyBitmap *block_dirty_bitmap_remove(BlockDriverState *bs,
                                           const char *name, bool release,
                                           Error **errp);
/* Lookup with QEMU's "Dirty bitmap 'NAME' not found" message. */
BdrvDirtyBitmap *block_dirty_bitmap_lookup(BlockDriverState *bs,
                                           const char *name, Error **errp);
/* block-dirty-bitmap-clear / -enable / -disable. */
int block_dirty_bitmap_clear(BlockDriverState *bs, const char *name,
                             Error **errp);
int block_dirty_bitmap_enable(BlockDriverState *bs, const char *name,
                              Error **errp);
int block_dirty_bitmap_disable(BlockDriverState *bs, const char *name,
                               Error **errp);
/* block-dirty-bitmap-merge of one source bitmap (on @src_bs) into dest. */
int block_dirty_bitmap_merge(BlockDriverState *bs, const char *name,
                             BlockDriverState *src_bs, const char *src_name,
                             Error **errp);
/*
 * block-dirty-bitmap-merge of a whole source list into @target on @node
 * (block/monitor/bitmap-qmp-cmds.c): all sources or none.  Returns the
 * target with its old contents in *@backup (NULL if no merge changed
 * anything to undo), for bdrv_restore_dirty_bitmap() or hbitmap_free().
 */
BdrvDirtyBitmap *block_dirty_bitmap_merge_list(const char *node,
                                              const char *target,
                                              BlockDirtyBitmapOrStrList *bitmaps,
                                              HBitmap **backup, Error **errp);

#endif
