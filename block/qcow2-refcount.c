/*
 * qcow2 cluster reference counting: allocation, freeing, refcount table
 * growth, metadata overlap checks and the consistency check.
 *
 * Crash safety.  A crash (of the process or the host) may leak clusters
 * (refcount > number of references) but must never leave a reference to a
 * cluster whose refcount is 0 on disk, or an L2 entry pointing at space
 * that was never written.  The write path therefore orders its updates:
 *
 *   1. allocate: the refcount of the new cluster is raised (in the
 *      refcount cache, dirty);
 *   2. guest data (with copy-on-write of partial clusters) is written to
 *      the new cluster;
 *   3. the L2 entry is updated (in the L2 cache, dirty).
 *
 *   The L2 cache depends on the refcount cache: before any L2 table is
 *   written back, all dirty refcount blocks are written and the file is
 *   flushed.  New L2 tables, new refcount blocks and a new refcount table
 *   are written (and flushed) before the L1 entry / refcount table entry /
 *   header field that makes them reachable.
 *
 *   Freeing goes the other way: the L2 entries that dropped a cluster are
 *   written and flushed first, and only then is the refcount lowered, so
 *   a freed cluster cannot be reused while an on-disk L2 entry still
 *   points at it.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

/* ---- refcount block entries of any width (1..64 bits) ---- */

uint64_t qcow2_refblock_get(const void *refblock, int refcount_order,
                            uint64_t index)
{
    const uint8_t *p = refblock;

    switch (refcount_order) {
    case 0: case 1: case 2: {
        int bits = 1 << refcount_order;
        uint64_t bit = index * bits;
        return (p[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
    case 3:
        return p[index];
    case 4:
        return be16_get(p + index * 2);
    case 5:
        return be32_get(p + index * 4);
    default:
        return be64_get(p + index * 8);
    }
}

void qcow2_refblock_set(void *refblock, int refcount_order, uint64_t index,
                        uint64_t value)
{
    uint8_t *p = refblock;

    switch (refcount_order) {
    case 0: case 1: case 2: {
        int bits = 1 << refcount_order;
        uint64_t bit = index * bits;
        uint8_t mask = ((1u << bits) - 1) << (bit % 8);
        p[bit / 8] = (p[bit / 8] & ~mask) | ((value << (bit % 8)) & mask);
        break;
    }
    case 3:
        p[index] = value;
        break;
    case 4:
        be16_put(p + index * 2, value);
        break;
    case 5:
        be32_put(p + index * 4, value);
        break;
    default:
        be64_put(p + index * 8, value);
        break;
    }
}

/* ---- init / teardown ---- */

int coroutine_fn qcow2_refcount_init(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t bytes = (uint64_t)s->refcount_table_size * 8;
    uint32_t i;
    int ret;

    qcow2_metadata_map_invalidate(s);
    s->refcount_table = g_try_malloc0(MAX(bytes, 8));
    if (!s->refcount_table) {
        return -ENOMEM;
    }
    if (bytes) {
        BLKDBG_EVENT(bs->file, BLKDBG_REFTABLE_LOAD);
        ret = bdrv_co_pread(bs->file, s->refcount_table_offset, bytes,
                            s->refcount_table, 0);
        if (ret < 0) {
            return ret;
        }
        for (i = 0; i < s->refcount_table_size; i++) {
            s->refcount_table[i] = GUINT64_FROM_BE(s->refcount_table[i]);
        }
    }
    return 0;
}

void qcow2_refcount_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    g_free(s->refcount_table);
    s->refcount_table = NULL;
    qcow2_metadata_map_invalidate(s);
}

/* Host offset of the refcount block for table index @rt_index, 0 if none. */
static int coroutine_fn refblock_offset(BlockDriverState *bs,
                                        uint64_t rt_index, uint64_t *offset)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t off;

    *offset = 0;
    if (rt_index >= s->refcount_table_size) {
        return 0;
    }
    off = s->refcount_table[rt_index] & REFT_OFFSET_MASK;
    if (off && offset_into_cluster(s, off)) {
        qcow2_signal_corruption(bs, "Refblock offset %#" PRIx64
                                " unaligned (reftable index: %#" PRIx64 ")",
                                off, rt_index);
        return -EIO;
    }
    *offset = off;
    return 0;
}

int coroutine_fn qcow2_get_refcount(BlockDriverState *bs,
                                    int64_t cluster_index,
                                    uint64_t *refcount)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t rt_index = cluster_index >> s->refcount_block_bits;
    uint64_t block_index = cluster_index & (s->refcount_block_size - 1);
    uint64_t block;
    void *table;
    int ret;

    ret = refblock_offset(bs, rt_index, &block);
    if (ret < 0) {
        return ret;
    }
    if (!block) {
        *refcount = 0;
        return 0;
    }
    ret = qcow2_cache_get(bs, s->refcount_block_cache, block, &table);
    if (ret < 0) {
        return ret;
    }
    *refcount = qcow2_refblock_get(table, s->refcount_order, block_index);
    qcow2_cache_put(s->refcount_block_cache, &table);
    return 0;
}

static int64_t file_end_cluster(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t len = bdrv_getlength(bs->file->bs);

    return len < 0 ? 0 : size_to_clusters(s, len);
}

/* ---- refcount table growth ---- */

/* Is refcount table index @r (possibly beyond the table) without a block? */
static bool reftable_hole(BDRVQcow2State *s, uint64_t r)
{
    return r >= s->refcount_table_size || !s->refcount_table[r];
}

/*
 * Replaces the refcount table by a larger one with at least @min_entries
 * entries.  The new table and the refcount blocks that describe it are
 * placed past everything in use (and past @pend_end, the end of an
 * allocation being accounted), all written and flushed before the header
 * points at the new table.  A crash leaks at most the new clusters.
 */
static int coroutine_fn grow_refcount_table(BlockDriverState *bs,
                                            uint64_t min_entries,
                                            int64_t pend_end)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t per_cluster = s->cluster_size / 8;
    uint64_t new_entries, table_clusters, blocks, r;
    int64_t start, k;
    uint64_t *new_table = NULL;
    uint8_t *block_buf = NULL;
    uint64_t old_offset = s->refcount_table_offset;
    uint64_t old_size = s->refcount_table_size;
    uint8_t hdr[12];
    bool changed;
    uint64_t i;
    int ret;

    BLKDBG_EVENT(bs->file, BLKDBG_REFTABLE_GROW);
    start = MAX(MAX(file_end_cluster(bs), s->alloc_end_index), pend_end);
    new_entries = MAX(min_entries, old_size + old_size / 2 + 1);
    new_entries = ROUND_UP(new_entries, per_cluster);

    /* Fixed point: enough blocks to describe blocks + table themselves. */
    blocks = 0;
    do {
        uint64_t first_r, last_r, missing = 0;
        changed = false;
        table_clusters = new_entries / per_cluster;
        k = blocks + table_clusters;
        first_r = start >> s->refcount_block_bits;
        last_r = (start + k - 1) >> s->refcount_block_bits;
        if (last_r >= new_entries) {
            new_entries = ROUND_UP(last_r + 1, per_cluster);
            changed = true;
            continue;
        }
        for (r = first_r; r <= last_r; r++) {
            missing += reftable_hole(s, r);
        }
        if (missing != blocks) {
            blocks = missing;
            changed = true;
        }
    } while (changed);

    if (new_entries * 8 > QCOW_MAX_REFTABLE_SIZE) {
        return -EFBIG;
    }

    new_table = g_try_new0(uint64_t, new_entries);
    block_buf = qemu_try_memalign(4096, s->cluster_size);
    if (!new_table || !block_buf) {
        ret = -ENOMEM;
        goto out;
    }
    memcpy(new_table, s->refcount_table, old_size * 8);

    /* Write the new blocks (at start, start + 1, ...) in index order. */
    {
        int64_t next_block = start;
        uint64_t first_r = start >> s->refcount_block_bits;
        uint64_t last_r = (start + k - 1) >> s->refcount_block_bits;

        for (r = first_r; r <= last_r; r++) {
            int64_t c, lo, hi;
            if (!reftable_hole(s, r)) {
                continue;
            }
            memset(block_buf, 0, s->cluster_size);
            lo = MAX(start, (int64_t)(r << s->refcount_block_bits));
            hi = MIN(start + k,
                     (int64_t)((r + 1) << s->refcount_block_bits));
            for (c = lo; c < hi; c++) {
                qcow2_refblock_set(block_buf, s->refcount_order,
                                   c & (s->refcount_block_size - 1), 1);
            }
            new_table[r] = (uint64_t)next_block << s->cluster_bits;
            BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC_WRITE_BLOCKS);
            ret = bdrv_co_pwrite(bs->file, new_table[r], s->cluster_size,
                                 block_buf, 0);
            if (ret < 0) {
                goto out;
            }
            next_block++;
        }
    }

    /* Clusters of the new area that fall under existing blocks. */
    for (i = 0; i < (uint64_t)k; i++) {
        uint64_t c = start + i;
        uint64_t r2 = c >> s->refcount_block_bits;
        void *table;
        if (reftable_hole(s, r2)) {
            continue;
        }
        ret = qcow2_cache_get(bs, s->refcount_block_cache,
                              s->refcount_table[r2] & REFT_OFFSET_MASK,
                              &table);
        if (ret < 0) {
            goto out;
        }
        qcow2_refblock_set(table, s->refcount_order,
                           c & (s->refcount_block_size - 1), 1);
        qcow2_cache_entry_mark_dirty(s->refcount_block_cache, table);
        qcow2_cache_put(s->refcount_block_cache, &table);
    }
    ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    if (ret < 0) {
        goto out;
    }

    for (i = 0; i < new_entries; i++) {
        new_table[i] = GUINT64_TO_BE(new_table[i]);
    }
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC_WRITE_TABLE);
    ret = bdrv_co_pwrite_sync(bs->file,
                              (uint64_t)(start + blocks) << s->cluster_bits,
                              new_entries * 8, new_table, 0);
    for (i = 0; i < new_entries; i++) {
        new_table[i] = GUINT64_FROM_BE(new_table[i]);
    }
    if (ret < 0) {
        goto out;
    }

    /* Switch: refcount_table_offset and refcount_table_clusters at 48. */
    be64_put(hdr, (uint64_t)(start + blocks) << s->cluster_bits);
    be32_put(hdr + 8, table_clusters);
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC_SWITCH_TABLE);
    ret = bdrv_co_pwrite_sync(bs->file, 48, sizeof(hdr), hdr, 0);
    if (ret < 0) {
        goto out;
    }

    g_free(s->refcount_table);
    s->refcount_table = new_table;
    new_table = NULL;
    qcow2_metadata_map_invalidate(s);
    s->refcount_table_size = new_entries;
    s->refcount_table_offset = (uint64_t)(start + blocks) << s->cluster_bits;
    s->alloc_end_index = MAX(s->alloc_end_index, start + k);

    ret = qcow2_update_refcount(bs, old_offset, old_size * 8, -1,
                                QCOW2_DISCARD_OTHER);
out:
    g_free(new_table);
    qemu_vfree(block_buf);
    return ret;
}

/*
 * Creates the missing refcount block for table index @rt_index.  It is
 * placed inside the range it describes (so it counts itself) at the first
 * cluster that is not part of the allocation [pend_start, pend_end) being
 * accounted; if that range is full, it goes to the first free cluster after
 * it and its refcount is recorded recursively.
 */
static int coroutine_fn alloc_refblock(BlockDriverState *bs, uint64_t rt_index,
                                       int64_t pend_start, int64_t pend_end)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t first = rt_index << s->refcount_block_bits;
    int64_t last = first + s->refcount_block_size;
    int64_t p = -1, c;
    bool self = false;
    uint8_t *buf;
    uint64_t be;
    int ret;

    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC);
    /* Cluster 0 always holds the header. */
    for (c = MAX(MAX(first, s->free_cluster_index), 1); c < last; c++) {
        if (c < pend_start || c >= pend_end) {
            p = c;
            self = true;
            break;
        }
    }
    if (!self) {
        uint64_t rc;
        for (c = MAX(MAX(pend_end, s->free_cluster_index), 1);; c++) {
            ret = qcow2_get_refcount(bs, c, &rc);
            if (ret < 0) {
                return ret;
            }
            if (!rc && (c < first || c >= last)) {
                p = c;
                break;
            }
        }
    }

    buf = qemu_try_memalign(4096, s->cluster_size);
    if (!buf) {
        return -ENOMEM;
    }
    memset(buf, 0, s->cluster_size);
    if (self) {
        qcow2_refblock_set(buf, s->refcount_order, p - first, 1);
    }
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC_WRITE);
    ret = bdrv_co_pwrite(bs->file, (uint64_t)p << s->cluster_bits,
                         s->cluster_size, buf, 0);
    qemu_vfree(buf);
    if (ret < 0) {
        return ret;
    }
    if (!self) {
        /* The block's own refcount lives in another block. */
        ret = qcow2_update_refcount(bs, (uint64_t)p << s->cluster_bits,
                                    s->cluster_size, 1, QCOW2_DISCARD_NEVER);
        if (ret < 0) {
            return ret;
        }
        ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    } else {
        ret = bdrv_co_flush(bs->file->bs);
    }
    if (ret < 0) {
        return ret;
    }

    /* Only now may the table point at the block. */
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC_HOOKUP);
    be = GUINT64_TO_BE((uint64_t)p << s->cluster_bits);
    ret = bdrv_co_pwrite_sync(bs->file, s->refcount_table_offset + rt_index * 8,
                              8, &be, 0);
    if (ret < 0) {
        return ret;
    }
    s->refcount_table[rt_index] = (uint64_t)p << s->cluster_bits;
    qcow2_metadata_map_invalidate(s);
    s->alloc_end_index = MAX(s->alloc_end_index, p + 1);
    return 0;
}

/* ---- refcount updates ---- */

static void coroutine_fn discard_freed(BlockDriverState *bs, int64_t offset,
                                       int64_t length, QCow2DiscardType type)
{
    BDRVQcow2State *s = bs->opaque;

    if (type != QCOW2_DISCARD_NEVER && s->discard_passthrough[type]) {
        bdrv_co_pdiscard(bs->file, offset, length);
    }
}

/* Adds @addend to the refcounts of clusters [start, end) (one block's range). */
static int coroutine_fn update_in_block(BlockDriverState *bs, int64_t start,
                                        int64_t end, int64_t addend,
                                        QCow2DiscardType type)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t rt_index = start >> s->refcount_block_bits;
    uint64_t block;
    void *table;
    int64_t c;
    int ret;

    ret = refblock_offset(bs, rt_index, &block);
    if (ret < 0) {
        return ret;
    }
    assert(block);
    ret = qcow2_cache_get(bs, s->refcount_block_cache, block, &table);
    if (ret < 0) {
        return ret;
    }
    for (c = start; c < end; c++) {
        uint64_t idx = c & (s->refcount_block_size - 1);
        uint64_t old = qcow2_refblock_get(table, s->refcount_order, idx);
        uint64_t new = old + addend;

        if ((addend < 0 && (uint64_t)-addend > old) ||
            (addend > 0 && (uint64_t)addend > s->refcount_max - old)) {
            /* Undo this block's part before failing. */
            int64_t u;
            for (u = start; u < c; u++) {
                uint64_t ui = u & (s->refcount_block_size - 1);
                qcow2_refblock_set(table, s->refcount_order, ui,
                                   qcow2_refblock_get(table, s->refcount_order,
                                                      ui) - addend);
            }
            qcow2_cache_put(s->refcount_block_cache, &table);
            return addend < 0 ? -EINVAL : -ERANGE;
        }
        qcow2_refblock_set(table, s->refcount_order, idx, new);
        if (new == 0) {
            uint64_t off = (uint64_t)c << s->cluster_bits;
            s->free_cluster_index = MIN(s->free_cluster_index, c);
            /* A freed metadata table must not be written back later. */
            qcow2_cache_discard(s->l2_table_cache, off);
            if (off != block) {
                qcow2_cache_discard(s->refcount_block_cache, off);
            }
        }
    }
    qcow2_cache_entry_mark_dirty(s->refcount_block_cache, table);
    qcow2_cache_put(s->refcount_block_cache, &table);
    return 0;
}

int coroutine_fn qcow2_update_refcount(BlockDriverState *bs, int64_t offset,
                                       int64_t length, int64_t addend,
                                       QCow2DiscardType type)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t start, end, c;
    uint64_t last_rt;
    int ret;

    if (length <= 0 || addend == 0) {
        return 0;
    }
    start = offset >> s->cluster_bits;
    end = (offset + length - 1) / s->cluster_size + 1;
    if (addend < 0) {
        BLKDBG_EVENT(bs->file, BLKDBG_CLUSTER_FREE);
    }

    last_rt = (end - 1) >> s->refcount_block_bits;
    if (last_rt >= s->refcount_table_size) {
        if (addend < 0) {
            return -EINVAL;
        }
        ret = grow_refcount_table(bs, last_rt + 1, end);
        if (ret < 0) {
            return ret;
        }
    }

    for (c = start; c < end;) {
        uint64_t rt_index = c >> s->refcount_block_bits;
        int64_t block_end = MIN(end, (int64_t)((rt_index + 1)
                                               << s->refcount_block_bits));
        uint64_t block;

        ret = refblock_offset(bs, rt_index, &block);
        if (ret < 0) {
            goto fail;
        }
        if (!block) {
            if (addend < 0) {
                ret = -EINVAL;
                goto fail;
            }
            ret = alloc_refblock(bs, rt_index, start, end);
            if (ret < 0) {
                goto fail;
            }
        }
        ret = update_in_block(bs, c, block_end, addend, type);
        if (ret < 0) {
            goto fail;
        }
        c = block_end;
    }
    if (addend > 0) {
        s->alloc_end_index = MAX(s->alloc_end_index, end);
    } else {
        /* Discard whatever dropped to zero. */
        int64_t run = -1;
        for (c = start; c <= end; c++) {
            uint64_t rc = 1;
            if (c < end) {
                ret = qcow2_get_refcount(bs, c, &rc);
                if (ret < 0) {
                    rc = 1;
                }
            }
            if (!rc && run < 0) {
                run = c;
            } else if (rc && run >= 0) {
                discard_freed(bs, run << s->cluster_bits,
                              (c - run) << s->cluster_bits, type);
                run = -1;
            }
        }
    }
    return 0;

fail:
    /* Roll back the clusters already updated (best effort). */
    if (c > start) {
        qcow2_update_refcount(bs, offset, (c - start) << s->cluster_bits,
                              -addend, QCOW2_DISCARD_NEVER);
    }
    return ret;
}

/* ---- allocation ---- */

/* Largest number of clusters accounted in one go (leaves room for blocks). */
static int max_alloc_run(BDRVQcow2State *s)
{
    return MAX(1, s->refcount_block_size / 2);
}

/* Finds @n free clusters from the hint on; returns the first index. */
static int64_t coroutine_fn find_free_clusters(BlockDriverState *bs, int n)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t idx, start;
    int found = 0;
    int ret;

    /* Cluster 0 is the header; the hint must move past used clusters. */
    s->free_cluster_index = MAX(s->free_cluster_index, 1);
    idx = start = s->free_cluster_index;

    while (found < n) {
        uint64_t rc;
        if (((uint64_t)(idx + 1) << s->cluster_bits) > (1ULL << 56)) {
            return -EFBIG;
        }
        ret = qcow2_get_refcount(bs, idx, &rc);
        if (ret < 0) {
            return ret;
        }
        if (rc) {
            found = 0;
            start = idx + 1;
            if (idx == s->free_cluster_index) {
                s->free_cluster_index = idx + 1;
            }
        } else {
            found++;
        }
        idx++;
    }
    return start;
}

int64_t coroutine_fn qcow2_alloc_clusters(BlockDriverState *bs,
                                          int nb_clusters, int *allocated)
{
    BDRVQcow2State *s = bs->opaque;
    int n = MIN(nb_clusters, max_alloc_run(s));
    int64_t start;
    int ret;

    BLKDBG_EVENT(bs->file, BLKDBG_CLUSTER_ALLOC);
    start = find_free_clusters(bs, n);
    if (start < 0) {
        return start;
    }
    ret = qcow2_update_refcount(bs, start << s->cluster_bits,
                                (int64_t)n << s->cluster_bits, 1,
                                QCOW2_DISCARD_NEVER);
    if (ret < 0) {
        return ret;
    }
    if (start == s->free_cluster_index) {
        s->free_cluster_index = start + n;
    }
    *allocated = n;
    return start << s->cluster_bits;
}

int64_t coroutine_fn qcow2_alloc_clusters_exact(BlockDriverState *bs,
                                                int64_t size)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t n = size_to_clusters(s, size);
    int64_t start;
    int ret;

    if (n > INT_MAX) {
        return -EFBIG;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_CLUSTER_ALLOC);
    start = find_free_clusters(bs, n);
    if (start < 0) {
        return start;
    }
    ret = qcow2_update_refcount(bs, start << s->cluster_bits,
                                n << s->cluster_bits, 1, QCOW2_DISCARD_NEVER);
    if (ret < 0) {
        return ret;
    }
    return start << s->cluster_bits;
}

int64_t coroutine_fn qcow2_alloc_bytes(BlockDriverState *bs, int size)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cur = s->free_byte_offset;
    int64_t result;
    int n, ret;

    assert(size > 0 && size <= s->cluster_size);
    BLKDBG_EVENT(bs->file, BLKDBG_CLUSTER_ALLOC_BYTES);
    if (cur && offset_into_cluster(s, cur)) {
        uint64_t space = s->cluster_size - offset_into_cluster(s, cur);
        int64_t this_cluster = cur >> s->cluster_bits;
        uint64_t rc;

        ret = qcow2_get_refcount(bs, this_cluster, &rc);
        if (ret < 0) {
            return ret;
        }
        if (rc && rc < s->refcount_max) {
            if (size <= space) {
                ret = qcow2_update_refcount(bs, cur, 1, 1,
                                            QCOW2_DISCARD_NEVER);
                if (ret < 0) {
                    return ret;
                }
                s->free_byte_offset = cur + size;
                goto done;
            }
            /* Spill into the next cluster if it is free. */
            ret = qcow2_get_refcount(bs, this_cluster + 1, &rc);
            if (ret < 0) {
                return ret;
            }
            if (!rc) {
                ret = qcow2_update_refcount(bs, cur, space + 1, 1,
                                            QCOW2_DISCARD_NEVER);
                if (ret < 0) {
                    return ret;
                }
                s->free_byte_offset = cur + size;
                goto done;
            }
        }
    }
    result = qcow2_alloc_clusters(bs, 1, &n);
    if (result < 0) {
        return result;
    }
    cur = result;
    s->free_byte_offset = cur + size;
done:
    if (!offset_into_cluster(s, s->free_byte_offset)) {
        s->free_byte_offset = 0;
    }
    return cur;
}

void coroutine_fn qcow2_free_clusters(BlockDriverState *bs, int64_t offset,
                                      int64_t size, QCow2DiscardType type)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    /* The references being dropped must be gone on disk first. */
    if (qcow2_cache_is_dirty(s->l2_table_cache)) {
        ret = qcow2_cache_flush(bs, s->l2_table_cache);
        if (ret < 0) {
            /* Keeping the refcount only leaks the clusters: safe. */
            return;
        }
    }
    ret = qcow2_update_refcount(bs, offset, size, -1, type);
    if (ret < 0) {
        warn_report("qcow2: Could not free clusters at %#" PRIx64 ": %s; "
                    "they are leaked", offset, strerror(-ret));
    }
}

void coroutine_fn qcow2_free_any_cluster(BlockDriverState *bs,
                                         uint64_t l2_entry,
                                         QCow2DiscardType type)
{
    BDRVQcow2State *s = bs->opaque;

    switch (qcow2_get_cluster_type(bs, l2_entry)) {
    case QCOW2_CLUSTER_COMPRESSED: {
        uint64_t coffset;
        int csize;
        qcow2_parse_compressed_l2_entry(bs, l2_entry, &coffset, &csize);
        qcow2_free_clusters(bs, coffset, csize, type);
        break;
    }
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC: {
        uint64_t off = l2_entry & L2E_OFFSET_MASK;
        if (offset_into_cluster(s, off)) {
            qcow2_signal_corruption(bs, "Cannot free unaligned cluster %#"
                                    PRIx64, off);
            return;
        }
        qcow2_free_clusters(bs, off, s->cluster_size, type);
        break;
    }
    default:
        break;
    }
}

int coroutine_fn qcow2_write_caches(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    ret = qcow2_cache_write(bs, s->l2_table_cache);
    if (ret < 0) {
        return ret;
    }
    return qcow2_cache_write(bs, s->refcount_block_cache);
}

/* ---- overlap check ---- */

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b,
                           uint64_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

void qcow2_metadata_map_invalidate(BDRVQcow2State *s)
{
    if (s->metadata_map) {
        g_hash_table_destroy(s->metadata_map);
        s->metadata_map = NULL;
    }
}

/* Cluster indexes fit a pointer: the map needs no allocation per key. */
static GHashTable *metadata_map(BDRVQcow2State *s)
{
    uint64_t i;

    if (s->metadata_map) {
        return s->metadata_map;
    }
    s->metadata_map = g_hash_table_new(g_direct_hash, g_direct_equal);
    for (i = 0; i < s->refcount_table_size; i++) {
        uint64_t b = s->refcount_table[i] & REFT_OFFSET_MASK;
        if (b) {
            g_hash_table_insert(s->metadata_map,
                                GSIZE_TO_POINTER(b >> s->cluster_bits),
                                GINT_TO_POINTER(QCOW2_OL_REFCOUNT_BLOCK));
        }
    }
    for (i = 0; i < s->l1_size; i++) {
        uint64_t l2 = s->l1_table[i] & L1E_OFFSET_MASK;
        /* A cluster that is both is reported as a refcount block. */
        if (l2 && !g_hash_table_contains(s->metadata_map,
                                         GSIZE_TO_POINTER(l2 >>
                                                          s->cluster_bits))) {
            g_hash_table_insert(s->metadata_map,
                                GSIZE_TO_POINTER(l2 >> s->cluster_bits),
                                GINT_TO_POINTER(QCOW2_OL_ACTIVE_L2));
        }
    }
    return s->metadata_map;
}

static const char *overlap_name(int kind)
{
    return kind == QCOW2_OL_REFCOUNT_BLOCK ? "refcount block"
                                           : "active L2 table";
}

const char *qcow2_check_metadata_overlap(BlockDriverState *bs, int ignore,
                                         int64_t offset, int64_t size)
{
    BDRVQcow2State *s = bs->opaque;
    int per_cluster = QCOW2_OL_REFCOUNT_BLOCK | QCOW2_OL_ACTIVE_L2;

    if (size <= 0) {
        return NULL;
    }
    if (!(ignore & QCOW2_OL_HEADER) &&
        ranges_overlap(offset, size, 0, s->cluster_size)) {
        return "qcow2_header";
    }
    if (!(ignore & QCOW2_OL_ACTIVE_L1) &&
        ranges_overlap(offset, size, s->l1_table_offset,
                       (uint64_t)s->l1_size * 8)) {
        return "active L1 table";
    }
    if (!(ignore & QCOW2_OL_REFCOUNT_TABLE) &&
        ranges_overlap(offset, size, s->refcount_table_offset,
                       (uint64_t)s->refcount_table_size * 8)) {
        return "refcount table";
    }
    if ((ignore & per_cluster) != per_cluster) {
        GHashTable *map = metadata_map(s);
        int64_t first = offset >> s->cluster_bits;
        int64_t last = (offset + size - 1) >> s->cluster_bits;

        if (last - first >= g_hash_table_size(map)) {
            /* A long range: fewer steps to look at every known table. */
            GHashTableIter iter;
            gpointer key, value;

            g_hash_table_iter_init(&iter, map);
            while (g_hash_table_iter_next(&iter, &key, &value)) {
                int64_t c = GPOINTER_TO_SIZE(key);
                int kind = GPOINTER_TO_INT(value);
                if (c >= first && c <= last && !(ignore & kind)) {
                    return overlap_name(kind);
                }
            }
        } else {
            int64_t c;

            for (c = first; c <= last; c++) {
                int kind = GPOINTER_TO_INT(
                    g_hash_table_lookup(map, GSIZE_TO_POINTER(c)));
                if (kind && !(ignore & kind)) {
                    return overlap_name(kind);
                }
            }
        }
    }
    if (!(ignore & QCOW2_OL_SNAPSHOT_TABLE) && s->nb_snapshots &&
        ranges_overlap(offset, size, s->snapshots_offset, s->cluster_size)) {
        return "snapshot table";
    }
    if (!(ignore & QCOW2_OL_BITMAP_DIR) && s->bitmap_directory_size &&
        ranges_overlap(offset, size, s->bitmap_directory_offset,
                       s->bitmap_directory_size)) {
        return "bitmap directory";
    }
    return NULL;
}

int coroutine_fn qcow2_pre_write_overlap_check(BlockDriverState *bs,
                                               int ignore, int64_t offset,
                                               int64_t size)
{
    const char *what = qcow2_check_metadata_overlap(bs, ignore, offset, size);

    if (what) {
        qcow2_signal_corruption(bs, "Preventing invalid write on metadata "
                                "(overlaps with %s)", what);
        return -EIO;
    }
    return 0;
}

/* ---- measure ---- */

int64_t qcow2_refcount_metadata_size(int64_t clusters, int cluster_size,
                                     int refcount_order)
{
    int64_t per_block = (int64_t)cluster_size * 8 / (1 << refcount_order);
    int64_t per_table_cluster = cluster_size / 8;
    int64_t blocks = 0, table = 0, total, prev = -1;

    /* Iterate until the structures also describe themselves. */
    do {
        total = clusters + blocks + table;
        if (total == prev) {
            break;
        }
        prev = total;
        blocks = DIV_ROUND_UP(total, per_block);
        table = DIV_ROUND_UP(blocks, per_table_cluster);
    } while (true);
    return (blocks + table) * cluster_size;
}

/* ---- consistency check ---- */

/* How far past the end of the file references and refcounts are looked at. */
#define CHECK_SLACK_CLUSTERS 65536
/* Bound on the computed refcount map (8 bytes per host cluster). */
#define CHECK_MAX_CLUSTERS (INT64_C(1) << 28)

typedef struct CheckState {
    uint64_t *refs;         /* computed references per host cluster */
    int64_t nb;             /* entries in refs */
    int64_t file_clusters;
    uint64_t next_contiguous;
} CheckState;

static int check_inc(BlockDriverState *bs, CheckState *cs,
                     BdrvCheckResult *res, uint64_t offset, uint64_t size)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t c, first, last;

    if (!size) {
        return 0;
    }
    first = offset >> s->cluster_bits;
    last = (offset + size - 1) >> s->cluster_bits;
    if (last >= cs->nb) {
        /* References past the end of the file: grow the map. */
        int64_t new_nb = MAX(last + 1, cs->nb * 2);
        uint64_t *n;
        /*
         * Allocated clusters may lie a little past the end of the file
         * (their data was never written), not arbitrarily far.
         */
        if (last >= MAX(cs->file_clusters * 2,
                        cs->file_clusters + CHECK_SLACK_CLUSTERS)) {
            fprintf(stderr, "ERROR: cluster %" PRId64 " is beyond the end "
                    "of the image\n", last);
            res->corruptions++;
            return 0;
        }
        n = g_try_renew(uint64_t, cs->refs, new_nb);
        if (!n) {
            res->check_errors++;
            return -ENOMEM;
        }
        memset(n + cs->nb, 0, (new_nb - cs->nb) * 8);
        cs->refs = n;
        cs->nb = new_nb;
    }
    for (c = first; c <= last; c++) {
        cs->refs[c]++;
    }
    return 0;
}

/*
 * A subcluster bitmap that contradicts itself or its entry is corruption
 * (counted, not repaired: which half is right cannot be known).
 */
static void check_subcluster_bitmap(BlockDriverState *bs,
                                    BdrvCheckResult *res, uint64_t e,
                                    uint64_t bitmap)
{
    uint64_t alloc = bitmap & QCOW_L2_BITMAP_ALL_ALLOC;
    uint64_t zero = bitmap >> QCOW_EXTL2_SUBCLUSTERS;

    if (e & QCOW_OFLAG_COMPRESSED) {
        return;
    }
    if (!(e & L2E_OFFSET_MASK)) {
        if (alloc) {
            fprintf(stderr, "ERROR: Unallocated cluster has non-zero "
                    "subcluster allocation map\n");
            res->corruptions++;
        }
    } else if (alloc & zero) {
        fprintf(stderr, "ERROR offset=%" PRIx64 ": Allocated cluster has "
                "corrupted subcluster allocation bitmap\n",
                (uint64_t)(e & L2E_OFFSET_MASK));
        res->corruptions++;
    }
}

/* Counts the references of one L2 table; @active fills bfi and fixes. */
static int coroutine_fn check_l2(BlockDriverState *bs, CheckState *cs,
                                 BdrvCheckResult *res, uint64_t l2_offset,
                                 bool active, BdrvCheckMode fix)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *l2;
    bool l2_dirty = false;
    int i, ret;

    l2 = qemu_try_memalign(4096, s->cluster_size);
    if (!l2) {
        return -ENOMEM;
    }
    ret = bdrv_co_pread(bs->file, l2_offset, s->cluster_size, l2, 0);
    if (ret < 0) {
        fprintf(stderr, "ERROR: I/O error in check_refcounts_l2\n");
        res->check_errors++;
        goto out;
    }
    for (i = 0; i < s->l2_size; i++) {
        uint64_t e = qcow2_l2_entry(s, l2, i);
        uint64_t off;

        if (s->extended_l2) {
            check_subcluster_bitmap(bs, res, e, qcow2_l2_bitmap(s, l2, i));
        }
        switch (qcow2_get_cluster_type(bs, e)) {
        case QCOW2_CLUSTER_COMPRESSED: {
            uint64_t coffset;
            int csize;
            if (e & QCOW_OFLAG_COPIED) {
                fprintf(stderr, "ERROR: coffset=0x%" PRIx64 ": Compressed "
                        "cluster entry has the COPIED flag set\n",
                        e & s->cluster_offset_mask);
                if ((fix & BDRV_FIX_ERRORS) && active) {
                    e &= ~QCOW_OFLAG_COPIED;
                    qcow2_set_l2_entry(s, l2, i, e);
                    l2_dirty = true;
                    res->corruptions_fixed++;
                } else {
                    res->corruptions++;
                }
            }
            qcow2_parse_compressed_l2_entry(bs, e, &coffset, &csize);
            ret = check_inc(bs, cs, res, coffset, csize);
            if (ret < 0) {
                goto out;
            }
            if (active) {
                res->bfi.allocated_clusters++;
                res->bfi.compressed_clusters++;
                /* Compressed data shares sectors: always fragmented. */
                res->bfi.fragmented_clusters++;
            }
            break;
        }
        case QCOW2_CLUSTER_NORMAL:
        case QCOW2_CLUSTER_ZERO_ALLOC:
            off = e & L2E_OFFSET_MASK;
            if (offset_into_cluster(s, off)) {
                fprintf(stderr, "ERROR offset=%" PRIx64 ": Cluster is not "
                        "properly aligned; L2 entry corrupted.\n", off);
                if ((fix & BDRV_FIX_ERRORS) && active) {
                    /* Drop the broken mapping: the cluster reads zeroes. */
                    e = s->qcow_version >= 3 && !s->extended_l2
                        ? QCOW_OFLAG_ZERO : 0;
                    qcow2_set_l2_entry(s, l2, i, e);
                    qcow2_set_l2_bitmap(s, l2, i, s->extended_l2
                                        ? QCOW_L2_BITMAP_ALL_ZERO : 0);
                    l2_dirty = true;
                    res->corruptions_fixed++;
                } else {
                    res->corruptions++;
                }
                break;
            }
            if (active) {
                res->bfi.allocated_clusters++;
                if (cs->next_contiguous && off != cs->next_contiguous) {
                    res->bfi.fragmented_clusters++;
                }
                cs->next_contiguous = off + s->cluster_size;
            }
            ret = check_inc(bs, cs, res, off, s->cluster_size);
            if (ret < 0) {
                goto out;
            }
            break;
        default:
            break;
        }
    }
    if (l2_dirty) {
        ret = bdrv_co_pwrite(bs->file, l2_offset, s->cluster_size, l2, 0);
        if (ret < 0) {
            res->check_errors++;
            goto out;
        }
        qcow2_cache_discard(s->l2_table_cache, l2_offset);
    }
    ret = 0;
out:
    qemu_vfree(l2);
    return ret;
}

static int coroutine_fn check_l1(BlockDriverState *bs, CheckState *cs,
                                 BdrvCheckResult *res, uint64_t l1_offset,
                                 uint32_t l1_size, bool active,
                                 BdrvCheckMode fix)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *l1;
    uint32_t i;
    int ret;

    ret = check_inc(bs, cs, res, l1_offset, (uint64_t)l1_size * 8);
    if (ret < 0 || !l1_size) {
        return ret;
    }
    if (active) {
        l1 = g_memdup2(s->l1_table, (size_t)l1_size * 8);
    } else {
        l1 = g_try_new(uint64_t, l1_size);
        if (!l1) {
            res->check_errors++;
            return -ENOMEM;
        }
        ret = bdrv_co_pread(bs->file, l1_offset, l1_size * 8, l1, 0);
        if (ret < 0) {
            fprintf(stderr, "ERROR: I/O error in check_refcounts_l1\n");
            res->check_errors++;
            g_free(l1);
            return ret;
        }
        for (i = 0; i < l1_size; i++) {
            l1[i] = GUINT64_FROM_BE(l1[i]);
        }
    }
    for (i = 0; i < l1_size; i++) {
        uint64_t l2 = l1[i] & L1E_OFFSET_MASK;
        if (!l2) {
            continue;
        }
        if (offset_into_cluster(s, l2)) {
            fprintf(stderr, "ERROR l2_offset=%" PRIx64 ": Table is not "
                    "cluster aligned; L1 entry corrupted\n", l2);
            res->corruptions++;
            continue;
        }
        ret = check_inc(bs, cs, res, l2, s->cluster_size);
        if (ret < 0) {
            break;
        }
        ret = check_l2(bs, cs, res, l2, active, fix);
        if (ret < 0) {
            break;
        }
    }
    g_free(l1);
    return ret;
}

static int coroutine_fn check_snapshots(BlockDriverState *bs, CheckState *cs,
                                        BdrvCheckResult *res,
                                        BdrvCheckMode fix)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t pos = s->snapshots_offset;
    uint32_t i;
    int ret;

    for (i = 0; i < s->nb_snapshots; i++) {
        uint8_t h[40];
        uint64_t l1_off;
        uint32_t l1_size, extra;
        uint16_t id_len, name_len;

        ret = bdrv_co_pread(bs->file, pos, sizeof(h), h, 0);
        if (ret < 0) {
            res->check_errors++;
            return ret;
        }
        l1_off = be64_get(h);
        l1_size = be32_get(h + 8);
        id_len = be16_get(h + 12);
        name_len = be16_get(h + 14);
        extra = be32_get(h + 36);
        if (offset_into_cluster(s, l1_off) ||
            (uint64_t)l1_size * 8 > QCOW_MAX_L1_SIZE || extra > 1024) {
            fprintf(stderr, "ERROR snapshot %u has an invalid L1 table\n", i);
            res->corruptions++;
            return 0;
        }
        ret = check_l1(bs, cs, res, l1_off, l1_size, false, fix);
        if (ret < 0) {
            return ret;
        }
        pos += ROUND_UP(40 + extra + id_len + name_len, 8);
    }
    return check_inc(bs, cs, res, s->snapshots_offset,
                     pos - s->snapshots_offset);
}

static int coroutine_fn check_bitmaps(BlockDriverState *bs, CheckState *cs,
                                      BdrvCheckResult *res)
{
    BDRVQcow2State *s = bs->opaque;
    uint8_t *dir;
    uint64_t pos = 0;
    int ret;

    if (!s->bitmap_directory_size) {
        return 0;
    }
    if (s->bitmap_directory_size > 64 * MiB) {
        res->corruptions++;
        return 0;
    }
    ret = check_inc(bs, cs, res, s->bitmap_directory_offset,
                    s->bitmap_directory_size);
    if (ret < 0) {
        return ret;
    }
    dir = g_malloc(s->bitmap_directory_size);
    ret = bdrv_co_pread(bs->file, s->bitmap_directory_offset,
                        s->bitmap_directory_size, dir, 0);
    if (ret < 0) {
        res->check_errors++;
        goto out;
    }
    while (pos + 24 <= s->bitmap_directory_size) {
        uint64_t table_off = be64_get(dir + pos);
        uint32_t table_size = be32_get(dir + pos + 8);
        uint16_t name_size = be16_get(dir + pos + 18);
        uint32_t extra = be32_get(dir + pos + 20);
        uint64_t *table;
        uint32_t i;

        if ((uint64_t)table_size * 8 > 64 * MiB) {
            res->corruptions++;
            break;
        }
        ret = check_inc(bs, cs, res, table_off, (uint64_t)table_size * 8);
        if (ret < 0) {
            break;
        }
        table = g_new(uint64_t, MAX(table_size, 1));
        ret = bdrv_co_pread(bs->file, table_off, (uint64_t)table_size * 8,
                            table, 0);
        if (ret < 0) {
            res->check_errors++;
            g_free(table);
            break;
        }
        for (i = 0; i < table_size; i++) {
            uint64_t e = GUINT64_FROM_BE(table[i]) & L1E_OFFSET_MASK;
            if (e) {
                ret = check_inc(bs, cs, res, e, s->cluster_size);
                if (ret < 0) {
                    break;
                }
            }
        }
        g_free(table);
        pos += ROUND_UP(24 + (uint64_t)extra + name_size, 8);
    }
    ret = 0;
out:
    g_free(dir);
    return ret;
}

/* Fixes the COPIED flags of active L1/L2 entries (refcount == 1). */
static int coroutine_fn check_oflag_copied(BlockDriverState *bs,
                                           BdrvCheckResult *res,
                                           BdrvCheckMode fix)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *l2;
    uint32_t i;
    int j, ret = 0;

    l2 = qemu_try_memalign(4096, s->cluster_size);
    if (!l2) {
        return -ENOMEM;
    }
    for (i = 0; i < s->l1_size; i++) {
        uint64_t l2_off = s->l1_table[i] & L1E_OFFSET_MASK;
        uint64_t rc;
        bool dirty = false;

        if (!l2_off || offset_into_cluster(s, l2_off)) {
            continue;
        }
        ret = qcow2_get_refcount(bs, l2_off >> s->cluster_bits, &rc);
        if (ret < 0) {
            res->check_errors++;
            continue;
        }
        if ((rc == 1) != !!(s->l1_table[i] & QCOW_OFLAG_COPIED)) {
            fprintf(stderr, "%s OFLAG_COPIED L2 cluster: l1_index=%u "
                    "l1_entry=%" PRIx64 " refcount=%" PRIu64 "\n",
                    fix & BDRV_FIX_ERRORS ? "Repairing" : "ERROR",
                    i, s->l1_table[i], rc);
            if (fix & BDRV_FIX_ERRORS) {
                s->l1_table[i] = rc == 1 ? s->l1_table[i] | QCOW_OFLAG_COPIED
                                         : s->l1_table[i] & ~QCOW_OFLAG_COPIED;
                ret = qcow2_write_l1_entry(bs, i);
                if (ret < 0) {
                    res->check_errors++;
                } else {
                    res->corruptions_fixed++;
                }
            } else {
                res->corruptions++;
            }
        }
        /* Work on the current contents, including cached updates. */
        ret = qcow2_cache_flush(bs, s->l2_table_cache);
        if (ret < 0) {
            res->check_errors++;
            continue;
        }
        ret = bdrv_co_pread(bs->file, l2_off, s->cluster_size, l2, 0);
        if (ret < 0) {
            res->check_errors++;
            continue;
        }
        for (j = 0; j < s->l2_size; j++) {
            uint64_t e = qcow2_l2_entry(s, l2, j);
            QCow2ClusterType t = qcow2_get_cluster_type(bs, e);
            uint64_t off = e & L2E_OFFSET_MASK;

            if ((t != QCOW2_CLUSTER_NORMAL && t != QCOW2_CLUSTER_ZERO_ALLOC) ||
                offset_into_cluster(s, off)) {
                continue;
            }
            ret = qcow2_get_refcount(bs, off >> s->cluster_bits, &rc);
            if (ret < 0) {
                res->check_errors++;
                continue;
            }
            if ((rc == 1) != !!(e & QCOW_OFLAG_COPIED)) {
                fprintf(stderr, "%s OFLAG_COPIED data cluster: l2_entry=%"
                        PRIx64 " refcount=%" PRIu64 "\n",
                        fix & BDRV_FIX_ERRORS ? "Repairing" : "ERROR", e, rc);
                if (fix & BDRV_FIX_ERRORS) {
                    e = rc == 1 ? e | QCOW_OFLAG_COPIED
                                : e & ~QCOW_OFLAG_COPIED;
                    qcow2_set_l2_entry(s, l2, j, e);
                    dirty = true;
                    res->corruptions_fixed++;
                } else {
                    res->corruptions++;
                }
            }
        }
        if (dirty) {
            qcow2_cache_discard(s->l2_table_cache, l2_off);
            ret = bdrv_co_pwrite(bs->file, l2_off, s->cluster_size, l2, 0);
            if (ret < 0) {
                res->check_errors++;
            }
        }
    }
    qemu_vfree(l2);
    return 0;
}

static int coroutine_fn check_refblocks(BlockDriverState *bs, CheckState *cs,
                                        BdrvCheckResult *res)
{
    BDRVQcow2State *s = bs->opaque;
    uint32_t i;
    int ret;

    ret = check_inc(bs, cs, res, s->refcount_table_offset,
                    (uint64_t)s->refcount_table_size * 8);
    if (ret < 0) {
        return ret;
    }
    for (i = 0; i < s->refcount_table_size; i++) {
        uint64_t b = s->refcount_table[i] & REFT_OFFSET_MASK;
        if (!b) {
            continue;
        }
        if (offset_into_cluster(s, b)) {
            fprintf(stderr, "ERROR refcount block %u is not cluster aligned; "
                    "refcount table entry corrupted\n", i);
            res->corruptions++;
            continue;
        }
        if ((b >> s->cluster_bits) >= cs->file_clusters) {
            fprintf(stderr, "ERROR refcount block %u is outside image\n", i);
            res->corruptions++;
            continue;
        }
        ret = check_inc(bs, cs, res, b, s->cluster_size);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/* Compares computed and stored refcounts; repairs as @fix allows. */
static void coroutine_fn compare_refcounts(BlockDriverState *bs,
                                           CheckState *cs,
                                           BdrvCheckResult *res,
                                           BdrvCheckMode fix)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t covered = (int64_t)s->refcount_table_size
                      << s->refcount_block_bits;
    int64_t last_used = 0, i, n;
    int ret;

    for (i = 0; i < cs->nb; i++) {
        if (cs->refs[i]) {
            last_used = i;
        }
    }
    /* New refcount blocks made by repairs must go past all used clusters. */
    s->free_cluster_index = MAX(s->free_cluster_index, last_used + 1);
    s->alloc_end_index = MAX(s->alloc_end_index, last_used + 1);

    /* Past the computed map, only ranges that have a refcount block. */
    n = MAX(cs->nb, MIN(covered, cs->nb + cs->file_clusters +
                                 CHECK_SLACK_CLUSTERS));
    for (i = 0; i < n; i++) {
        uint64_t stored, want = i < cs->nb ? cs->refs[i] : 0;
        uint64_t rt_index = i >> s->refcount_block_bits;
        bool is_leak;

        if (i >= cs->nb && (rt_index >= s->refcount_table_size ||
                            !s->refcount_table[rt_index])) {
            i = ((rt_index + 1) << s->refcount_block_bits) - 1;
            continue;
        }

        ret = qcow2_get_refcount(bs, i, &stored);
        if (ret < 0) {
            fprintf(stderr, "Can't get refcount for cluster %" PRId64 ": %s\n",
                    i, strerror(-ret));
            res->check_errors++;
            continue;
        }
        if (stored == want) {
            continue;
        }
        is_leak = stored > want;
        if ((is_leak && (fix & BDRV_FIX_LEAKS)) ||
            (!is_leak && (fix & BDRV_FIX_ERRORS))) {
            fprintf(stderr, "Repairing cluster %" PRId64 " refcount=%" PRIu64
                    " reference=%" PRIu64 "\n", i, stored, want);
            ret = qcow2_update_refcount(bs, (uint64_t)i << s->cluster_bits, 1,
                                        (int64_t)(want - stored),
                                        QCOW2_DISCARD_ALWAYS);
            if (ret < 0) {
                res->check_errors++;
                continue;
            }
            if (is_leak) {
                res->leaks_fixed++;
            } else {
                res->corruptions_fixed++;
            }
        } else {
            fprintf(stderr, "%s cluster %" PRId64 " refcount=%" PRIu64
                    " reference=%" PRIu64 "\n",
                    is_leak ? "Leaked" : "ERROR", i, stored, want);
            if (is_leak) {
                res->leaks++;
            } else {
                res->corruptions++;
            }
        }
    }
}

static int coroutine_fn compute_refs(BlockDriverState *bs, CheckState *cs,
                                     BdrvCheckResult *res, BdrvCheckMode fix)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    ret = check_inc(bs, cs, res, 0, s->cluster_size);
    if (ret == 0) {
        ret = check_l1(bs, cs, res, s->l1_table_offset, s->l1_size, true,
                       fix);
    }
    if (ret == 0 && s->nb_snapshots) {
        ret = check_snapshots(bs, cs, res, fix);
    }
    if (ret == 0) {
        ret = check_bitmaps(bs, cs, res);
    }
    if (ret == 0) {
        ret = check_refblocks(bs, cs, res);
    }
    return ret;
}

int coroutine_fn qcow2_check_refcounts(BlockDriverState *bs,
                                       BdrvCheckResult *res,
                                       BdrvCheckMode fix)
{
    BDRVQcow2State *s = bs->opaque;
    CheckState cs = { 0 };
    int64_t len = bdrv_getlength(bs->file->bs);
    int64_t i, last_used = -1;
    int ret;

    if (len < 0) {
        res->check_errors++;
        return len;
    }
    ret = qcow2_write_caches(bs);
    if (ret < 0) {
        res->check_errors++;
        return ret;
    }
    cs.file_clusters = size_to_clusters(s, len);
    if (cs.file_clusters > CHECK_MAX_CLUSTERS) {
        fprintf(stderr, "ERROR: the image file is too large to be checked\n");
        res->check_errors++;
        return -EFBIG;
    }
    cs.nb = MAX(cs.file_clusters, 1);
    cs.refs = g_try_new0(uint64_t, cs.nb);
    if (!cs.refs) {
        res->check_errors++;
        return -ENOMEM;
    }
    res->bfi.total_clusters = size_to_clusters(s, s->size);

    ret = compute_refs(bs, &cs, res, fix);
    if (ret < 0) {
        goto out;
    }
    if (fix) {
        /*
         * Like qemu-img: report every mismatch first, then, if there were
         * any, count afresh while repairing what @fix allows.
         */
        BdrvCheckResult before = *res;

        compare_refcounts(bs, &cs, res, 0);
        if (res->leaks != before.leaks ||
            res->corruptions != before.corruptions) {
            *res = before;
            compare_refcounts(bs, &cs, res, fix);
        }
    } else {
        compare_refcounts(bs, &cs, res, 0);
    }
    ret = check_oflag_copied(bs, res, fix);
    if (ret < 0) {
        goto out;
    }
    ret = qcow2_write_caches(bs);
    if (ret < 0) {
        res->check_errors++;
        goto out;
    }

    if (res->corruptions_fixed || res->leaks_fixed) {
        /* Repairs may have allocated refcount blocks: count again. */
        BdrvCheckResult again = { 0 };
        g_free(cs.refs);
        cs = (CheckState) { 0 };
        len = bdrv_getlength(bs->file->bs);
        cs.file_clusters = MIN(size_to_clusters(s, MAX(len, 0)),
                               CHECK_MAX_CLUSTERS);
        cs.nb = MAX(cs.file_clusters, 1);
        cs.refs = g_try_new0(uint64_t, cs.nb);
        if (!cs.refs) {
            res->check_errors++;
            ret = -ENOMEM;
            goto out;
        }
        ret = compute_refs(bs, &cs, &again, 0);
        if (ret < 0) {
            goto out;
        }
        compare_refcounts(bs, &cs, &again, BDRV_FIX_LEAKS | BDRV_FIX_ERRORS);
        res->check_errors += again.check_errors;
        ret = qcow2_write_caches(bs);
        if (ret < 0) {
            goto out;
        }
    }
    for (i = 0; i < cs.nb; i++) {
        if (cs.refs[i]) {
            last_used = i;
        }
    }
    res->image_end_offset = (last_used + 1) << s->cluster_bits;
out:
    g_free(cs.refs);
    return ret;
}

/* ---- changing the refcount width (amend) ---- */

/*
 * Reads every refcount in [0, nb) into a new array; fails when one does
 * not fit @new_order's width.
 */
static int coroutine_fn read_all_refcounts(BlockDriverState *bs, int64_t nb,
                                           int new_order, uint64_t **out,
                                           Error **errp)
{
    uint64_t new_max = new_order == 6 ? UINT64_MAX
                                      : (1ULL << (1 << new_order)) - 1;
    uint64_t *refs = g_try_new0(uint64_t, MAX(nb, 1));
    int64_t c;
    int ret;

    if (!refs) {
        error_setg(errp, "Could not allocate memory for the refcounts");
        return -ENOMEM;
    }
    for (c = 0; c < nb; c++) {
        ret = qcow2_get_refcount(bs, c, &refs[c]);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to read refcounts");
            g_free(refs);
            return ret;
        }
        if (refs[c] > new_max) {
            BDRVQcow2State *s = bs->opaque;
            error_setg(errp, "Cannot decrease refcount entry width to %i "
                       "bits: Cluster at offset %#" PRIx64 " has a refcount "
                       "of %" PRIu64, 1 << new_order,
                       (uint64_t)c << s->cluster_bits, refs[c]);
            g_free(refs);
            return -EINVAL;
        }
    }
    *out = refs;
    return 0;
}

int coroutine_fn qcow2_change_refcount_order(BlockDriverState *bs,
                                             int new_order, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int new_block_bits = s->cluster_bits + 3 - new_order;
    int64_t per_block = INT64_C(1) << new_block_bits;
    int64_t per_table_cluster = s->cluster_size / 8;
    int64_t nb, blocks = 0, table_clusters = 0, total, prev = -1, b, c;
    uint64_t *refs = NULL, *new_table = NULL;
    uint64_t table_entries, i;
    uint8_t *buf = NULL;
    int ret;

    /* Everything in memory reaches the old structures first. */
    ret = qcow2_write_caches(bs);
    if (ret == 0) {
        ret = bdrv_co_flush(bs->file->bs);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to flush the metadata");
        return ret;
    }
    nb = MAX(s->alloc_end_index, file_end_cluster(bs));
    ret = read_all_refcounts(bs, nb, new_order, &refs, errp);
    if (ret < 0) {
        return ret;
    }
    /* The old table and blocks are not referenced by the new structures. */
    for (i = 0; i < s->refcount_table_size; i++) {
        uint64_t old = s->refcount_table[i] & REFT_OFFSET_MASK;
        if (old && (int64_t)(old >> s->cluster_bits) < nb) {
            refs[old >> s->cluster_bits]--;
        }
    }
    for (c = s->refcount_table_offset >> s->cluster_bits;
         c < (int64_t)(s->refcount_table_offset >> s->cluster_bits) +
             size_to_clusters(s, (uint64_t)s->refcount_table_size * 8) &&
         c < nb; c++) {
        refs[c]--;
    }

    /*
     * The new blocks (one per range of the whole file) and then the new
     * table go past the end, sized so that they also count themselves.
     */
    do {
        total = nb + blocks + table_clusters;
        if (total == prev) {
            break;
        }
        prev = total;
        blocks = DIV_ROUND_UP(total, per_block);
        table_clusters = DIV_ROUND_UP(blocks, per_table_cluster);
    } while (true);
    table_entries = (uint64_t)table_clusters * per_table_cluster;
    if (table_entries * 8 > QCOW_MAX_REFTABLE_SIZE) {
        error_setg(errp, "Refcount table would be too large");
        ret = -EFBIG;
        goto out;
    }

    buf = qemu_try_memalign(4096, s->cluster_size);
    new_table = g_try_new0(uint64_t, table_entries);
    if (!buf || !new_table) {
        error_setg(errp, "Could not allocate memory for the refcounts");
        ret = -ENOMEM;
        goto out;
    }
    for (b = 0; b < blocks; b++) {
        memset(buf, 0, s->cluster_size);
        for (c = b * per_block; c < MIN(total, (b + 1) * per_block); c++) {
            qcow2_refblock_set(buf, new_order, c - b * per_block,
                               c < nb ? refs[c] : 1);
        }
        new_table[b] = (uint64_t)(nb + b) << s->cluster_bits;
        ret = bdrv_co_pwrite(bs->file, new_table[b], s->cluster_size, buf, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to write refcount blocks");
            goto out;
        }
    }
    for (i = 0; i < table_entries; i++) {
        new_table[i] = GUINT64_TO_BE(new_table[i]);
    }
    ret = bdrv_co_pwrite(bs->file, (uint64_t)(nb + blocks) << s->cluster_bits,
                         table_entries * 8, new_table, 0);
    for (i = 0; i < table_entries; i++) {
        new_table[i] = GUINT64_FROM_BE(new_table[i]);
    }
    if (ret == 0) {
        ret = bdrv_co_flush(bs->file->bs);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to write the refcount table");
        goto out;
    }

    /*
     * Switch: the header (one sector write) points at the new table with
     * the new width.  Until then the old structures were untouched, so a
     * crash before leaves the old image (plus leaked clusters past its end).
     */
    {
        int old_order = s->refcount_order;
        uint64_t *old_table = s->refcount_table;
        uint64_t old_offset = s->refcount_table_offset;
        uint32_t old_size = s->refcount_table_size;

        qcow2_refcount_set_order(s, new_order);
        s->refcount_table = new_table;
        s->refcount_table_offset = (uint64_t)(nb + blocks) << s->cluster_bits;
        s->refcount_table_size = table_entries;
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            qcow2_refcount_set_order(s, old_order);
            s->refcount_table = old_table;
            s->refcount_table_offset = old_offset;
            s->refcount_table_size = old_size;
            error_setg_errno(errp, -ret, "Failed to update the image header");
            goto out;
        }
        new_table = old_table;      /* freed below */
    }
    /* Cached blocks are of the old structures (all clean): drop them. */
    qcow2_cache_clean(s->refcount_block_cache);
    qcow2_metadata_map_invalidate(s);
    s->free_cluster_index = 0;
    s->alloc_end_index = total;
    ret = 0;
out:
    g_free(refs);
    g_free(new_table);
    qemu_vfree(buf);
    return ret;
}
