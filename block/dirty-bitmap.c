/*
 * Dirty bitmaps: see include/block/dirty-bitmap.h and
 * docs/devel/dirty-bitmaps.md.
 *
 * A BdrvDirtyBitmap wraps an HBitmap whose items are the node's bytes.
 * Frozen bitmaps (those with a successor) are disabled and busy; the
 * successor is an ordinary anonymous bitmap on the same node, so the
 * write path needs no special case for it.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"

struct BdrvDirtyBitmap {
    BlockDriverState *bs;
    HBitmap *bitmap;
    char *name;                 /* NULL: anonymous */
    int64_t size;               /* bytes covered */
    bool disabled;
    bool busy;
    bool persistent;
    bool inconsistent;
    bool readonly;
    BdrvDirtyBitmap *successor; /* set while frozen for a job */
    int active_iterators;       /* iterators must end before release */
    QTAILQ_ENTRY(BdrvDirtyBitmap) list;
};

struct BdrvDirtyBitmapIter {
    HBitmapIter hbi;
    BdrvDirtyBitmap *bitmap;
};

/* ---- lifetime ---- */

uint32_t bdrv_get_default_bitmap_granularity(BlockDriverState *bs)
{
    BlockDriverInfo bdi = { 0 };

    if (bdrv_get_info(bs, &bdi) >= 0 && bdi.cluster_size > 0) {
        return MIN(MAX((uint32_t)bdi.cluster_size, 4096), 65536);
    }
    return 65536;
}

BdrvDirtyBitmap *bdrv_create_dirty_bitmap(BlockDriverState *bs,
                                          uint32_t granularity,
                                          const char *name, Error **errp)
{
    BdrvDirtyBitmap *bitmap;
    int64_t size;

    if (granularity < BDRV_SECTOR_SIZE || !is_power_of_2(granularity)) {
        error_setg(errp, "Granularity must be power of 2 and at least 512");
        return NULL;
    }
    if (name) {
        if (bdrv_find_dirty_bitmap(bs, name)) {
            error_setg(errp, "Bitmap already exists: %s", name);
            return NULL;
        }
        if (strlen(name) > BDRV_BITMAP_MAX_NAME_SIZE) {
            error_setg(errp, "Bitmap name too long: %s", name);
            return NULL;
        }
    }
    size = bdrv_getlength(bs);
    if (size < 0) {
        error_setg_errno(errp, -size, "could not get length of device");
        return NULL;
    }
    bitmap = g_new0(BdrvDirtyBitmap, 1);
    bitmap->bs = bs;
    bitmap->bitmap = hbitmap_alloc(size, ctz64(granularity));
    bitmap->size = size;
    bitmap->name = g_strdup(name);
    QTAILQ_INSERT_TAIL(&bs->dirty_bitmaps, bitmap, list);
    return bitmap;
}

void bdrv_release_dirty_bitmap(BdrvDirtyBitmap *bitmap)
{
    /* An iterator would be left pointing at freed memory. */
    assert(!bitmap->active_iterators);
    if (bitmap->successor) {
        bdrv_release_dirty_bitmap(bitmap->successor);
        bitmap->successor = NULL;
    }
    QTAILQ_REMOVE(&bitmap->bs->dirty_bitmaps, bitmap, list);
    hbitmap_free(bitmap->bitmap);
    g_free(bitmap->name);
    g_free(bitmap);
}

void bdrv_release_all_dirty_bitmaps(BlockDriverState *bs)
{
    while (!QTAILQ_EMPTY(&bs->dirty_bitmaps)) {
        bdrv_release_dirty_bitmap(QTAILQ_FIRST(&bs->dirty_bitmaps));
    }
}

/* ---- lookup and listing ---- */

BdrvDirtyBitmap *bdrv_find_dirty_bitmap(BlockDriverState *bs,
                                        const char *name)
{
    BdrvDirtyBitmap *bm;

    QTAILQ_FOREACH(bm, &bs->dirty_bitmaps, list) {
        if (bm->name && !strcmp(bm->name, name)) {
            return bm;
        }
    }
    return NULL;
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_first(BlockDriverState *bs)
{
    return QTAILQ_FIRST(&bs->dirty_bitmaps);
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_next(BdrvDirtyBitmap *bitmap)
{
    return QTAILQ_NEXT(bitmap, list);
}

bool bdrv_has_dirty_bitmaps(BlockDriverState *bs)
{
    return !QTAILQ_EMPTY(&bs->dirty_bitmaps);
}

bool bdrv_has_persistent_dirty_bitmaps(BlockDriverState *bs)
{
    BdrvDirtyBitmap *bm;

    QTAILQ_FOREACH(bm, &bs->dirty_bitmaps, list) {
        if (bm->persistent) {
            return true;
        }
    }
    return false;
}

bool bdrv_has_readonly_bitmaps(BlockDriverState *bs)
{
    BdrvDirtyBitmap *bm;

    QTAILQ_FOREACH(bm, &bs->dirty_bitmaps, list) {
        if (bm->readonly) {
            return true;
        }
    }
    return false;
}

/* ---- properties ---- */

const char *bdrv_dirty_bitmap_name(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->name;
}

BlockDriverState *bdrv_dirty_bitmap_bs(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->bs;
}

uint32_t bdrv_dirty_bitmap_granularity(const BdrvDirtyBitmap *bitmap)
{
    return 1U << hbitmap_granularity(bitmap->bitmap);
}

int64_t bdrv_dirty_bitmap_size(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->size;
}

void bdrv_enable_dirty_bitmap(BdrvDirtyBitmap *bitmap)
{
    bitmap->disabled = false;
}

void bdrv_disable_dirty_bitmap(BdrvDirtyBitmap *bitmap)
{
    bitmap->disabled = true;
}

bool bdrv_dirty_bitmap_enabled(const BdrvDirtyBitmap *bitmap)
{
    return !bitmap->disabled;
}

void bdrv_dirty_bitmap_set_busy(BdrvDirtyBitmap *bitmap, bool busy)
{
    bitmap->busy = busy;
}

bool bdrv_dirty_bitmap_busy(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->busy;
}

void bdrv_dirty_bitmap_set_persistence(BdrvDirtyBitmap *bitmap,
                                       bool persistent)
{
    bitmap->persistent = persistent;
}

bool bdrv_dirty_bitmap_get_persistence(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->persistent;
}

void bdrv_dirty_bitmap_set_inconsistent(BdrvDirtyBitmap *bitmap)
{
    bitmap->inconsistent = true;
    bitmap->disabled = true;
}

bool bdrv_dirty_bitmap_inconsistent(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->inconsistent;
}

void bdrv_dirty_bitmap_set_readonly(BdrvDirtyBitmap *bitmap, bool value)
{
    bitmap->readonly = value;
}

bool bdrv_dirty_bitmap_readonly(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->readonly;
}

int bdrv_dirty_bitmap_check(const BdrvDirtyBitmap *bitmap, uint32_t flags,
                            Error **errp)
{
    if ((flags & BDRV_BITMAP_BUSY) && bitmap->busy) {
        error_setg(errp, "Bitmap '%s' is currently in use by another "
                   "operation and cannot be used", bitmap->name);
        return -1;
    }
    if ((flags & BDRV_BITMAP_RO) && bitmap->readonly) {
        error_setg(errp, "Bitmap '%s' is readonly and cannot be modified",
                   bitmap->name);
        return -1;
    }
    if ((flags & BDRV_BITMAP_INCONSISTENT) && bitmap->inconsistent) {
        error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used",
                   bitmap->name);
        error_append_hint(errp, "Try block-dirty-bitmap-remove to delete "
                          "this bitmap from disk\n");
        return -1;
    }
    return 0;
}

/* ---- contents ---- */

/*
 * Clamps [*offset, *offset + *bytes) to the bitmap; false if nothing of
 * it is inside (protocol nodes can grow past the size a bitmap has).
 */
static bool clamp_range(const BdrvDirtyBitmap *bitmap, int64_t *offset,
                        int64_t *bytes)
{
    if (*offset < 0 || *offset >= bitmap->size || *bytes <= 0) {
        return false;
    }
    *bytes = MIN(*bytes, bitmap->size - *offset);
    return true;
}

void bdrv_set_dirty(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BdrvDirtyBitmap *bm;

    QTAILQ_FOREACH(bm, &bs->dirty_bitmaps, list) {
        if (!bm->disabled) {
            bdrv_set_dirty_bitmap(bm, offset, bytes);
        }
    }
}

void bdrv_set_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                           int64_t bytes)
{
    assert(!bitmap->readonly);
    if (clamp_range(bitmap, &offset, &bytes)) {
        hbitmap_set(bitmap->bitmap, offset, bytes);
    }
}

void bdrv_reset_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                             int64_t bytes)
{
    assert(!bitmap->readonly);
    if (clamp_range(bitmap, &offset, &bytes)) {
        hbitmap_reset(bitmap->bitmap, offset, bytes);
    }
}

bool bdrv_dirty_bitmap_get(const BdrvDirtyBitmap *bitmap, int64_t offset)
{
    return offset >= 0 && offset < bitmap->size &&
           hbitmap_get(bitmap->bitmap, offset);
}

int64_t bdrv_get_dirty_count(const BdrvDirtyBitmap *bitmap)
{
    return MIN(hbitmap_count(bitmap->bitmap), (uint64_t)bitmap->size);
}

void bdrv_clear_dirty_bitmap(BdrvDirtyBitmap *bitmap, HBitmap **out)
{
    assert(!bitmap->readonly);
    if (!out) {
        hbitmap_reset_all(bitmap->bitmap);
        return;
    }
    *out = bitmap->bitmap;
    bitmap->bitmap = hbitmap_alloc(bitmap->size,
                                   hbitmap_granularity(*out));
}

void bdrv_restore_dirty_bitmap(BdrvDirtyBitmap *bitmap, HBitmap *backup)
{
    hbitmap_free(bitmap->bitmap);
    bitmap->bitmap = backup;
}

/* dest |= src for bitmaps of the same size but any granularity. */
static void merge_hbitmaps(HBitmap *dest, const HBitmap *src)
{
    int64_t start = 0, count, size = hbitmap_size(src);

    if (hbitmap_can_merge(dest, src)) {
        hbitmap_merge(dest, src, dest);
        return;
    }
    while (start < size &&
           hbitmap_next_dirty_area(src, start, size, INT64_MAX, &start,
                                   &count)) {
        hbitmap_set(dest, start, count);
        start += count;
    }
}

bool bdrv_merge_dirty_bitmap(BdrvDirtyBitmap *dest,
                             const BdrvDirtyBitmap *src,
                             HBitmap **backup, Error **errp)
{
    if (bdrv_dirty_bitmap_check(dest, BDRV_BITMAP_DEFAULT, errp) ||
        bdrv_dirty_bitmap_check(src, BDRV_BITMAP_INCONSISTENT, errp)) {
        return false;
    }
    if (dest->size != src->size) {
        error_setg(errp, "Bitmaps are of different sizes (destination size "
                   "is %" PRId64 ", source size is %" PRId64 ") and can't "
                   "be merged", dest->size, src->size);
        return false;
    }
    if (backup) {
        *backup = hbitmap_copy(dest->bitmap);
    }
    merge_hbitmaps(dest->bitmap, src->bitmap);
    return true;
}

int64_t bdrv_dirty_bitmap_next_dirty(const BdrvDirtyBitmap *bitmap,
                                     int64_t offset, int64_t bytes)
{
    return hbitmap_next_dirty(bitmap->bitmap, offset, bytes);
}

int64_t bdrv_dirty_bitmap_next_zero(const BdrvDirtyBitmap *bitmap,
                                    int64_t offset, int64_t bytes)
{
    return hbitmap_next_zero(bitmap->bitmap, offset, bytes);
}

bool bdrv_dirty_bitmap_next_dirty_area(const BdrvDirtyBitmap *bitmap,
                                       int64_t start, int64_t end,
                                       int64_t max_dirty_count,
                                       int64_t *dirty_start,
                                       int64_t *dirty_count)
{
    end = MIN(end, bitmap->size);
    if (start >= end) {
        return false;
    }
    return hbitmap_next_dirty_area(bitmap->bitmap, start, end,
                                   max_dirty_count, dirty_start, dirty_count);
}

bool bdrv_dirty_bitmap_status(const BdrvDirtyBitmap *bitmap, int64_t offset,
                              int64_t bytes, int64_t *pnum)
{
    return hbitmap_status(bitmap->bitmap, offset, bytes, pnum);
}

BdrvDirtyBitmapIter *bdrv_dirty_iter_new(BdrvDirtyBitmap *bitmap)
{
    BdrvDirtyBitmapIter *iter = g_new(BdrvDirtyBitmapIter, 1);

    hbitmap_iter_init(&iter->hbi, bitmap->bitmap, 0);
    iter->bitmap = bitmap;
    bitmap->active_iterators++;
    return iter;
}

int64_t bdrv_dirty_iter_next(BdrvDirtyBitmapIter *iter)
{
    return hbitmap_iter_next(&iter->hbi);
}

void bdrv_set_dirty_iter(BdrvDirtyBitmapIter *iter, int64_t offset)
{
    hbitmap_iter_init(&iter->hbi, iter->bitmap->bitmap, offset);
}

void bdrv_dirty_iter_free(BdrvDirtyBitmapIter *iter)
{
    if (iter) {
        iter->bitmap->active_iterators--;
        g_free(iter);
    }
}

void bdrv_dirty_bitmap_truncate(BlockDriverState *bs, int64_t bytes)
{
    BdrvDirtyBitmap *bm;

    QTAILQ_FOREACH(bm, &bs->dirty_bitmaps, list) {
        /* Iterators hold positions that a shrink could invalidate. */
        assert(!bm->active_iterators);
        hbitmap_truncate(bm->bitmap, bytes);
        bm->size = bytes;
    }
}

/* ---- serialization ---- */

uint64_t bdrv_dirty_bitmap_serialization_align(const BdrvDirtyBitmap *bitmap)
{
    return hbitmap_serialization_align(bitmap->bitmap);
}

uint64_t bdrv_dirty_bitmap_serialization_size(const BdrvDirtyBitmap *bitmap,
                                              uint64_t offset,
                                              uint64_t bytes)
{
    return hbitmap_serialization_size(bitmap->bitmap, offset, bytes);
}

void bdrv_dirty_bitmap_serialize_part(const BdrvDirtyBitmap *bitmap,
                                      uint8_t *buf, uint64_t offset,
                                      uint64_t bytes)
{
    hbitmap_serialize_part(bitmap->bitmap, buf, offset, bytes);
}

void bdrv_dirty_bitmap_deserialize_part(BdrvDirtyBitmap *bitmap,
                                        const uint8_t *buf, uint64_t offset,
                                        uint64_t bytes, bool finish)
{
    hbitmap_deserialize_part(bitmap->bitmap, buf, offset, bytes, finish);
}

void bdrv_dirty_bitmap_deserialize_ones(BdrvDirtyBitmap *bitmap,
                                        uint64_t offset, uint64_t bytes)
{
    int64_t off = offset, len = bytes;

    if (clamp_range(bitmap, &off, &len)) {
        hbitmap_set(bitmap->bitmap, off, len);
    }
}

void bdrv_dirty_bitmap_deserialize_zeroes(BdrvDirtyBitmap *bitmap,
                                          uint64_t offset, uint64_t bytes)
{
    int64_t off = offset, len = bytes;

    if (clamp_range(bitmap, &off, &len)) {
        hbitmap_reset(bitmap->bitmap, off, len);
    }
}

void bdrv_dirty_bitmap_deserialize_finish(BdrvDirtyBitmap *bitmap)
{
    hbitmap_deserialize_finish(bitmap->bitmap);
}

/* ---- successors ---- */

int bdrv_dirty_bitmap_create_successor(BdrvDirtyBitmap *bitmap, Error **errp)
{
    BdrvDirtyBitmap *child;

    if (bdrv_dirty_bitmap_check(bitmap, BDRV_BITMAP_BUSY, errp)) {
        return -1;
    }
    if (bitmap->successor) {
        error_setg(errp, "Cannot create a successor for a bitmap that "
                   "already has one");
        return -1;
    }
    child = bdrv_create_dirty_bitmap(bitmap->bs,
                                     bdrv_dirty_bitmap_granularity(bitmap),
                                     NULL, errp);
    if (!child) {
        return -1;
    }
    /* New writes go to the successor only; the parent is frozen. */
    child->disabled = bitmap->disabled;
    bitmap->disabled = true;
    bitmap->successor = child;
    bitmap->busy = true;
    return 0;
}

bool bdrv_dirty_bitmap_has_successor(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->successor != NULL;
}

/*
 * Unlinks @bitmap's successor and returns it; @bitmap stops being busy.
 * The caller frees the successor.
 */
static BdrvDirtyBitmap *take_successor(BdrvDirtyBitmap *bitmap,
                                       const char *why, Error **errp)
{
    BdrvDirtyBitmap *successor = bitmap->successor;

    if (!successor) {
        error_setg(errp, "%s", why);
        return NULL;
    }
    bitmap->successor = NULL;
    bitmap->busy = false;
    bitmap->disabled = successor->disabled;
    return successor;
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_abdicate(BdrvDirtyBitmap *bitmap,
                                            Error **errp)
{
    BdrvDirtyBitmap *successor;
    HBitmap *tmp;

    successor = take_successor(bitmap, "Cannot relinquish control if "
                               "there's no successor present", errp);
    if (!successor) {
        return NULL;
    }
    /*
     * The successor's contents move into @bitmap, which keeps its name,
     * flags and place in the node's list; what @bitmap recorded before
     * the job leaves with the successor's shell.
     */
    tmp = bitmap->bitmap;
    bitmap->bitmap = successor->bitmap;
    successor->bitmap = tmp;
    bdrv_release_dirty_bitmap(successor);
    return bitmap;
}

BdrvDirtyBitmap *bdrv_reclaim_dirty_bitmap(BdrvDirtyBitmap *bitmap,
                                           Error **errp)
{
    BdrvDirtyBitmap *successor;

    successor = take_successor(bitmap, "Cannot reclaim a successor when "
                               "none is present", errp);
    if (!successor) {
        return NULL;
    }
    merge_hbitmaps(bitmap->bitmap, successor->bitmap);
    bdrv_release_dirty_bitmap(successor);
    return bitmap;
}

/* ---- persistence ---- */

bool bdrv_can_store_new_dirty_bitmap(BlockDriverState *bs, const char *name,
                                     uint32_t granularity, Error **errp)
{
    Error *local_err = NULL;

    if (!bs->drv || !bs->drv->bdrv_can_store_new_dirty_bitmap) {
        error_setg_errno(errp, ENOTSUP, "Can't store persistent bitmaps to %s",
                         bdrv_get_node_name(bs));
        return false;
    }
    if (!bs->drv->bdrv_can_store_new_dirty_bitmap(bs, name, granularity,
                                                  &local_err)) {
        error_propagate_prepend(errp, local_err, "Can't make bitmap '%s' "
                                "persistent in '%s': ", name,
                                bdrv_get_node_name(bs));
        return false;
    }
    return true;
}

int bdrv_remove_persistent_dirty_bitmap(BlockDriverState *bs,
                                        const char *name, Error **errp)
{
    if (!bs->drv || !bs->drv->bdrv_remove_persistent_dirty_bitmap) {
        return 0;
    }
    return bs->drv->bdrv_remove_persistent_dirty_bitmap(bs, name, errp);
}

int bdrv_store_persistent_dirty_bitmaps(BlockDriverState *bs, Error **errp)
{
    if (!bs->drv || bs->read_only ||
        !bs->drv->bdrv_store_persistent_dirty_bitmaps) {
        return 0;
    }
    return bs->drv->bdrv_store_persistent_dirty_bitmaps(bs, errp);
}

/* ---- monitor-level operations ---- */

BdrvDirtyBitmap *block_dirty_bitmap_lookup(BlockDriverState *bs,
                                           const char *name, Error **errp)
{
    BdrvDirtyBitmap *bitmap = bdrv_find_dirty_bitmap(bs, name);

    if (!bitmap) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
    }
    return bitmap;
}

BdrvDirtyBitmap *block_dirty_bitmap_add(BlockDriverState *bs,
                                        const char *name,
                                        bool has_granularity,
                                        uint32_t granularity,
                                        bool persistent, bool disabled,
                                        Error **errp)
{
    BdrvDirtyBitmap *bitmap;

    if (!name || !*name) {
        error_setg(errp, "Bitmap name cannot be empty");
        return NULL;
    }
    if (has_granularity) {
        if (granularity < BDRV_SECTOR_SIZE || !is_power_of_2(granularity)) {
            error_setg(errp, "Granularity must be power of 2 and at least "
                       "512");
            return NULL;
        }
    } else {
        granularity = bdrv_get_default_bitmap_granularity(bs);
    }
    if (bdrv_find_dirty_bitmap(bs, name)) {
        error_setg(errp, "Bitmap already exists: %s", name);
        return NULL;
    }
    if (persistent &&
        !bdrv_can_store_new_dirty_bitmap(bs, name, granularity, errp)) {
        return NULL;
    }
    bitmap = bdrv_create_dirty_bitmap(bs, granularity, name, errp);
    if (!bitmap) {
        return NULL;
    }
    bitmap->persistent = persistent;
    bitmap->disabled = disabled;
    return bitmap;
}

BdrvDirtyBitmap *block_dirty_bitmap_remove(BlockDriverState *bs,
                                           const char *name, bool release,
                                           Error **errp)
{
    BdrvDirtyBitmap *bitmap = block_dirty_bitmap_lookup(bs, name, errp);

    if (!bitmap ||
        bdrv_dirty_bitmap_check(bitmap, BDRV_BITMAP_BUSY | BDRV_BITMAP_RO,
                                errp)) {
        return NULL;
    }
    if (bitmap->persistent &&
        bdrv_remove_persistent_dirty_bitmap(bs, name, errp) < 0) {
        return NULL;
    }
    if (release) {
        bdrv_release_dirty_bitmap(bitmap);
        return NULL;
    }
    return bitmap;
}

int block_dirty_bitmap_clear(BlockDriverState *bs, const char *name,
                             Error **errp)
{
    BdrvDirtyBitmap *bitmap = block_dirty_bitmap_lookup(bs, name, errp);

    if (!bitmap || bdrv_dirty_bitmap_check(bitmap, BDRV_BITMAP_DEFAULT,
                                           errp)) {
        return -1;
    }
    bdrv_clear_dirty_bitmap(bitmap, NULL);
    return 0;
}

int block_dirty_bitmap_enable(BlockDriverState *bs, const char *name,
                              Error **errp)
{
    BdrvDirtyBitmap *bitmap = block_dirty_bitmap_lookup(bs, name, errp);

    if (!bitmap || bdrv_dirty_bitmap_check(bitmap, BDRV_BITMAP_ALLOW_RO,
                                           errp)) {
        return -1;
    }
    bdrv_enable_dirty_bitmap(bitmap);
    return 0;
}

int block_dirty_bitmap_disable(BlockDriverState *bs, const char *name,
                               Error **errp)
{
    BdrvDirtyBitmap *bitmap = block_dirty_bitmap_lookup(bs, name, errp);

    if (!bitmap || bdrv_dirty_bitmap_check(bitmap, BDRV_BITMAP_ALLOW_RO,
                                           errp)) {
        return -1;
    }
    bdrv_disable_dirty_bitmap(bitmap);
    return 0;
}

int block_dirty_bitmap_merge(BlockDriverState *bs, const char *name,
                             BlockDriverState *src_bs, const char *src_name,
                             Error **errp)
{
    BdrvDirtyBitmap *dest, *src;

    dest = block_dirty_bitmap_lookup(bs, name, errp);
    if (!dest) {
        return -1;
    }
    src = block_dirty_bitmap_lookup(src_bs, src_name, errp);
    if (!src) {
        return -1;
    }
    return bdrv_merge_dirty_bitmap(dest, src, NULL, errp) ? 0 : -1;
}
