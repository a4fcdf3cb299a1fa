/*
 * qcow2 guest cluster mapping: L1/L2 lookups, L2 table allocation and
 * copy-on-write, L1 growth, discard/zero of whole clusters, decompression.
 *
 * Everything here runs with s->lock held (the lock is a CoMutex, so the
 * holder may yield in I/O while others wait).
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"
#include <zlib.h>

QCow2ClusterType qcow2_get_cluster_type(BlockDriverState *bs,
                                        uint64_t l2_entry)
{
    BDRVQcow2State *s = bs->opaque;

    if (l2_entry & QCOW_OFLAG_COMPRESSED) {
        return QCOW2_CLUSTER_COMPRESSED;
    }
    /* The zero flag exists only in version 3 (bit 0 is reserved in v2). */
    if ((l2_entry & QCOW_OFLAG_ZERO) && s->qcow_version >= 3) {
        return (l2_entry & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_ZERO_ALLOC
                                            : QCOW2_CLUSTER_ZERO_PLAIN;
    }
    return (l2_entry & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_NORMAL
                                        : QCOW2_CLUSTER_UNALLOCATED;
}

int qcow2_get_subcluster_type(BlockDriverState *bs, uint64_t l2_entry,
                              uint64_t bitmap, int sc,
                              QCow2ClusterType *type)
{
    bool alloc = bitmap & (1ULL << sc);
    bool zero = bitmap & (1ULL << (sc + QCOW_EXTL2_SUBCLUSTERS));

    /* Compressed clusters have no subclusters; the bitmap is reserved. */
    if (l2_entry & QCOW_OFLAG_COMPRESSED) {
        *type = QCOW2_CLUSTER_COMPRESSED;
        return 0;
    }
    if (alloc && zero) {
        return -EIO;
    }
    if (l2_entry & L2E_OFFSET_MASK) {
        *type = alloc ? QCOW2_CLUSTER_NORMAL :
                zero ? QCOW2_CLUSTER_ZERO_ALLOC : QCOW2_CLUSTER_UNALLOCATED;
        return 0;
    }
    if (alloc) {
        return -EIO;
    }
    *type = zero ? QCOW2_CLUSTER_ZERO_PLAIN : QCOW2_CLUSTER_UNALLOCATED;
    return 0;
}

void qcow2_parse_compressed_l2_entry(BlockDriverState *bs, uint64_t l2_entry,
                                     uint64_t *coffset, int *csize)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t nb_csectors;

    *coffset = l2_entry & s->cluster_offset_mask;
    nb_csectors = ((l2_entry >> s->csize_shift) & s->csize_mask) + 1;
    *csize = nb_csectors * QCOW2_COMPRESSED_SECTOR_SIZE -
             (*coffset & (QCOW2_COMPRESSED_SECTOR_SIZE - 1));
}

/* Validates and returns the L2 offset of L1 entry @l1_index (0: none). */
static int coroutine_fn l1_entry_l2_offset(BlockDriverState *bs,
                                           int l1_index, uint64_t *l2_offset)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t off = s->l1_table[l1_index] & L1E_OFFSET_MASK;

    if (off && offset_into_cluster(s, off)) {
        qcow2_signal_corruption(bs, "L2 table offset %#" PRIx64
                                " unaligned (L1 index: %#x)", off, l1_index);
        return -EIO;
    }
    *l2_offset = off;
    return 0;
}

static bool same_run(BlockDriverState *bs, QCow2ClusterType type,
                     uint64_t first, uint64_t e, int i)
{
    BDRVQcow2State *s = bs->opaque;

    if (qcow2_get_cluster_type(bs, e) != type) {
        return false;
    }
    switch (type) {
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        return (e & L2E_OFFSET_MASK) ==
               (first & L2E_OFFSET_MASK) + (uint64_t)i * s->cluster_size &&
               (e & QCOW_OFLAG_COPIED) == (first & QCOW_OFLAG_COPIED);
    case QCOW2_CLUSTER_COMPRESSED:
        return false;
    default:
        return true;
    }
}

/*
 * With extended L2 entries: may cluster @i of a run that started with
 * entry @first continue a run of @type?  Only if all its subclusters are
 * of that type.
 */
static bool extl2_same_run(BlockDriverState *bs, QCow2ClusterType type,
                           uint64_t first, uint64_t e, uint64_t bitmap, int i)
{
    BDRVQcow2State *s = bs->opaque;
    bool no_host = !(e & (L2E_OFFSET_MASK | QCOW_OFLAG_COMPRESSED));

    switch (type) {
    case QCOW2_CLUSTER_NORMAL:
        return bitmap == QCOW_L2_BITMAP_ALL_ALLOC &&
               !(e & QCOW_OFLAG_COMPRESSED) &&
               (e & L2E_OFFSET_MASK) ==
               (first & L2E_OFFSET_MASK) + (uint64_t)i * s->cluster_size &&
               (e & QCOW_OFLAG_COPIED) == (first & QCOW_OFLAG_COPIED);
    case QCOW2_CLUSTER_UNALLOCATED:
        /* Not through a cluster with a host offset (that is reused). */
        return no_host && bitmap == 0 && !(first & L2E_OFFSET_MASK);
    case QCOW2_CLUSTER_ZERO_PLAIN:
        return no_host && bitmap == QCOW_L2_BITMAP_ALL_ZERO;
    default:
        return false;
    }
}

int qcow2_subcluster_run(BlockDriverState *bs, uint64_t first,
                         uint64_t bitmap, int sc, QCow2ClusterType *type)
{
    QCow2ClusterType t;
    int end;

    if (qcow2_get_subcluster_type(bs, first, bitmap, sc, type) < 0) {
        return -EIO;
    }
    if (*type == QCOW2_CLUSTER_COMPRESSED) {
        return QCOW_EXTL2_SUBCLUSTERS - sc;
    }
    for (end = sc + 1; end < QCOW_EXTL2_SUBCLUSTERS; end++) {
        if (qcow2_get_subcluster_type(bs, first, bitmap, end, &t) < 0 ||
            t != *type) {
            break;
        }
    }
    return end - sc;
}

int coroutine_fn qcow2_get_host_offset(BlockDriverState *bs, uint64_t offset,
                                       uint64_t *bytes, uint64_t *host,
                                       uint64_t *l2_entry,
                                       uint64_t *l2_bitmap,
                                       QCow2ClusterType *type)
{
    BDRVQcow2State *s = bs->opaque;
    int l1_index = offset_to_l1_index(s, offset);
    int l2_index = offset_to_l2_index(s, offset);
    uint64_t in_cluster = offset_into_cluster(s, offset);
    uint64_t cover_end = (uint64_t)(l1_index + 1)
                         << (s->l2_bits + s->cluster_bits);
    uint64_t max = MIN(*bytes, cover_end - offset);
    uint64_t l2_offset, first, bitmap, run;
    uint64_t *l2;
    int n, i, nb_needed;
    int ret;

    *host = 0;
    *l2_entry = 0;
    *l2_bitmap = 0;
    if (l1_index >= s->l1_size) {
        *type = QCOW2_CLUSTER_UNALLOCATED;
        *bytes = max;
        return 0;
    }
    ret = l1_entry_l2_offset(bs, l1_index, &l2_offset);
    if (ret < 0) {
        return ret;
    }
    if (!l2_offset) {
        *type = QCOW2_CLUSTER_UNALLOCATED;
        *bytes = max;
        return 0;
    }
    ret = qcow2_cache_get(bs, s->l2_table_cache, l2_offset, (void **)&l2);
    if (ret < 0) {
        return ret;
    }
    first = qcow2_l2_entry(s, l2, l2_index);
    bitmap = qcow2_l2_bitmap(s, l2, l2_index);
    *l2_entry = first;
    *l2_bitmap = bitmap;
    if (s->extended_l2) {
        int sc = in_cluster >> s->subcluster_bits;
        int nb_sc = qcow2_subcluster_run(bs, first, bitmap, sc, type);
        if (nb_sc < 0) {
            qcow2_cache_put(s->l2_table_cache, (void **)&l2);
            /* Two spaces, as in QEMU's message. */
            qcow2_signal_corruption(bs, "Invalid cluster entry found  (L2 "
                                    "offset: %#" PRIx64 ", L2 index: %#x)",
                                    l2_offset, l2_index);
            return -EIO;
        }
        run = ((uint64_t)(sc + nb_sc) << s->subcluster_bits) - in_cluster;
    } else {
        *type = qcow2_get_cluster_type(bs, first);
        run = s->cluster_size - in_cluster;
    }
    if (*type == QCOW2_CLUSTER_NORMAL || *type == QCOW2_CLUSTER_ZERO_ALLOC) {
        uint64_t h = first & L2E_OFFSET_MASK;
        if (offset_into_cluster(s, h)) {
            qcow2_cache_put(s->l2_table_cache, (void **)&l2);
            qcow2_signal_corruption(bs, "Cluster allocation offset %#" PRIx64
                                    " unaligned (L2 offset: %#" PRIx64
                                    ", L2 index: %#x)", h, l2_offset,
                                    l2_index);
            return -EIO;
        }
        *host = h + in_cluster;
    }
    nb_needed = DIV_ROUND_UP(in_cluster + max, s->cluster_size);
    if (in_cluster + run == (uint64_t)s->cluster_size) {
        for (n = 1, i = l2_index + 1; n < nb_needed; n++, i++) {
            uint64_t e = qcow2_l2_entry(s, l2, i);
            if (s->extended_l2
                ? !extl2_same_run(bs, *type, first, e,
                                  qcow2_l2_bitmap(s, l2, i), n)
                : !same_run(bs, *type, first, e, n)) {
                break;
            }
            run += s->cluster_size;
        }
    }
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    *bytes = MIN(max, run);
    return 0;
}

int coroutine_fn qcow2_write_l1_entry(BlockDriverState *bs, int l1_index)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t buf[64];
    int start = l1_index & ~63;
    int n = MIN(64, (int)s->l1_size - start);
    int i;

    /* The caller has just changed the entry in memory. */
    qcow2_metadata_map_invalidate(s);

    for (i = 0; i < n; i++) {
        buf[i] = GUINT64_TO_BE(s->l1_table[start + i]);
    }
    BLKDBG_EVENT(bs->file, BLKDBG_L1_UPDATE);
    return bdrv_co_pwrite_sync(bs->file, s->l1_table_offset + start * 8,
                               n * 8, buf, 0);
}

int coroutine_fn qcow2_grow_l1_table(BlockDriverState *bs, uint64_t min_size)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t new_bytes, i;
    uint64_t *new_table;
    int64_t new_offset;
    uint64_t old_offset = s->l1_table_offset;
    uint32_t old_size = s->l1_size;
    uint8_t hdr[12];
    int ret;

    if (min_size <= s->l1_size) {
        return 0;
    }
    if (min_size > QCOW_MAX_L1_SIZE / 8) {
        return -EFBIG;
    }
    new_bytes = ROUND_UP(min_size * 8, s->cluster_size);
    new_table = qemu_try_memalign(4096, new_bytes);
    if (!new_table) {
        return -ENOMEM;
    }
    memset(new_table, 0, new_bytes);
    for (i = 0; i < s->l1_size; i++) {
        new_table[i] = GUINT64_TO_BE(s->l1_table[i]);
    }

    BLKDBG_EVENT(bs->file, BLKDBG_L1_GROW_ALLOC_TABLE);
    new_offset = qcow2_alloc_clusters_exact(bs, new_bytes);
    if (new_offset < 0) {
        qemu_vfree(new_table);
        return new_offset;
    }
    /* The new table's refcounts must be on disk before the header moves. */
    ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    if (ret < 0) {
        goto fail;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_L1_GROW_WRITE_TABLE);
    ret = bdrv_co_pwrite_sync(bs->file, new_offset, min_size * 8, new_table,
                              0);
    if (ret < 0) {
        goto fail;
    }
    be32_put(hdr, min_size);
    be64_put(hdr + 4, new_offset);
    BLKDBG_EVENT(bs->file, BLKDBG_L1_GROW_ACTIVATE_TABLE);
    ret = bdrv_co_pwrite_sync(bs->file, 36, sizeof(hdr), hdr, 0);
    if (ret < 0) {
        goto fail;
    }
    for (i = 0; i < min_size; i++) {
        new_table[i] = GUINT64_FROM_BE(new_table[i]);
    }
    g_free(s->l1_table);
    s->l1_table = g_memdup2(new_table, min_size * 8);
    qcow2_metadata_map_invalidate(s);
    qemu_vfree(new_table);
    s->l1_table_offset = new_offset;
    s->l1_size = min_size;
    if (old_size) {
        qcow2_free_clusters(bs, old_offset, (uint64_t)old_size * 8,
                            QCOW2_DISCARD_OTHER);
    }
    return 0;

fail:
    qemu_vfree(new_table);
    qcow2_free_clusters(bs, new_offset, new_bytes, QCOW2_DISCARD_OTHER);
    return ret;
}

/*
 * A new L2 table costs a flush sequence: its refcount, then the table,
 * then the L1 entry reach the disk in that order.  The first of those
 * flushes waits for every data write since the previous flush, so a copy
 * that fills a new image (a backup target) stalled for the whole of its
 * data every 512 MiB (64 KiB clusters).  A new table therefore brings the
 * missing tables of its aligned group of L1 entries with it, empty, under
 * the same flushes: the group pays once, when little is written yet.  An
 * empty table reads as unallocated, so the image means the same; it
 * costs at most QCOW2_L2_ALLOC_GROUP - 1 clusters of metadata.
 */
#define QCOW2_L2_ALLOC_GROUP 8

typedef struct Qcow2L2Group {
    int l1_index[QCOW2_L2_ALLOC_GROUP];
    uint64_t old_l1e[QCOW2_L2_ALLOC_GROUP];
    int64_t offset[QCOW2_L2_ALLOC_GROUP];
    int n;
} Qcow2L2Group;

static void coroutine_fn qcow2_l2_group_free(BlockDriverState *bs,
                                             Qcow2L2Group *g)
{
    BDRVQcow2State *s = bs->opaque;

    while (g->n > 0) {
        g->n--;
        qcow2_free_clusters(bs, g->offset[g->n], s->cluster_size,
                            QCOW2_DISCARD_OTHER);
    }
}

/*
 * Allocates and zeroes a table for every L1 entry of @l1_index's group,
 * other than @l1_index, that has none; the caller's flush makes them
 * durable and qcow2_l2_group_link() points the L1 entries at them.
 */
static int coroutine_fn qcow2_l2_group_alloc(BlockDriverState *bs,
                                             int l1_index, Qcow2L2Group *g)
{
    BDRVQcow2State *s = bs->opaque;
    int first = l1_index & ~(QCOW2_L2_ALLOC_GROUP - 1);
    int end = MIN(first + QCOW2_L2_ALLOC_GROUP, (int)s->l1_size);
    int i, n, ret;

    g->n = 0;
    for (i = first; i < end; i++) {
        int64_t off;

        if (i == l1_index || (s->l1_table[i] & L1E_OFFSET_MASK)) {
            continue;
        }
        off = qcow2_alloc_clusters(bs, 1, &n);
        if (off < 0) {
            qcow2_l2_group_free(bs, g);
            return off;
        }
        g->l1_index[g->n] = i;
        g->old_l1e[g->n] = s->l1_table[i];
        g->offset[g->n++] = off;
        BLKDBG_EVENT(bs->file, BLKDBG_L2_ALLOC_WRITE);
        ret = bdrv_co_pwrite_zeroes(bs->file, off, s->cluster_size, 0);
        if (ret < 0) {
            qcow2_l2_group_free(bs, g);
            return ret;
        }
    }
    return 0;
}

/* Sets the group's L1 entries in memory (written with the caller's). */
static void qcow2_l2_group_link(BlockDriverState *bs, Qcow2L2Group *g)
{
    BDRVQcow2State *s = bs->opaque;
    int i;

    for (i = 0; i < g->n; i++) {
        s->l1_table[g->l1_index[i]] = g->offset[i] | QCOW_OFLAG_COPIED;
    }
}

static void qcow2_l2_group_unlink(BlockDriverState *bs, Qcow2L2Group *g)
{
    BDRVQcow2State *s = bs->opaque;
    int i;

    for (i = 0; i < g->n; i++) {
        s->l1_table[g->l1_index[i]] = g->old_l1e[i];
    }
}

int coroutine_fn qcow2_get_l2_for_write(BlockDriverState *bs, uint64_t offset,
                                        uint64_t **l2_table, int *l2_index)
{
    BDRVQcow2State *s = bs->opaque;
    int l1_index = offset_to_l1_index(s, offset);
    uint64_t old_l2, old_l1e;
    uint64_t *table = NULL, *old_table;
    Qcow2L2Group group = { .n = 0 };
    int64_t new_l2;
    int n, ret;

    *l2_index = offset_to_l2_index(s, offset);
    if (l1_index >= s->l1_size) {
        ret = qcow2_grow_l1_table(bs, l1_index + 1);
        if (ret < 0) {
            return ret;
        }
    }
    ret = l1_entry_l2_offset(bs, l1_index, &old_l2);
    if (ret < 0) {
        return ret;
    }
    old_l1e = s->l1_table[l1_index];
    if (old_l2 && (old_l1e & QCOW_OFLAG_COPIED)) {
        /*
         * The table will be written back: refuse now, while the guest
         * write can still fail, if it sits on other metadata.
         */
        ret = qcow2_pre_write_overlap_check(bs, QCOW2_OL_ACTIVE_L2, old_l2,
                                            s->cluster_size);
        if (ret < 0) {
            return ret;
        }
        return qcow2_cache_get(bs, s->l2_table_cache, old_l2,
                               (void **)l2_table);
    }

    /* A new table, or a private copy of a shared one (refcount > 1). */
    new_l2 = qcow2_alloc_clusters(bs, 1, &n);
    if (new_l2 < 0) {
        return new_l2;
    }
    ret = qcow2_cache_get_empty(bs, s->l2_table_cache, new_l2,
                                (void **)&table);
    if (ret < 0) {
        goto fail_free;
    }
    if (old_l2) {
        int i;
        BLKDBG_EVENT(bs->file, BLKDBG_L2_ALLOC_COW_READ);
        ret = qcow2_cache_get(bs, s->l2_table_cache, old_l2,
                              (void **)&old_table);
        if (ret < 0) {
            goto fail_put;
        }
        memcpy(table, old_table, s->cluster_size);
        qcow2_cache_put(s->l2_table_cache, (void **)&old_table);
        /* Data clusters stay shared with the other L1 table. */
        for (i = 0; i < s->l2_size; i++) {
            qcow2_set_l2_entry(s, table, i, qcow2_l2_entry(s, table, i) &
                                            ~QCOW_OFLAG_COPIED);
        }
    } else {
        memset(table, 0, s->cluster_size);
        ret = qcow2_l2_group_alloc(bs, l1_index, &group);
        if (ret < 0) {
            goto fail_put;
        }
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, table);

    /*
     * Refcounts and table contents reach the disk before the L1 entries;
     * the group shares the L1 block of @l1_index, so one write sets all.
     */
    BLKDBG_EVENT(bs->file, BLKDBG_L2_ALLOC_WRITE);
    ret = qcow2_cache_flush(bs, s->l2_table_cache);
    if (ret < 0) {
        goto fail_group;
    }
    s->l1_table[l1_index] = new_l2 | QCOW_OFLAG_COPIED;
    qcow2_l2_group_link(bs, &group);
    ret = qcow2_write_l1_entry(bs, l1_index);
    if (ret < 0) {
        s->l1_table[l1_index] = old_l1e;
        qcow2_l2_group_unlink(bs, &group);
        goto fail_group;
    }
    if (old_l2) {
        qcow2_free_clusters(bs, old_l2, s->cluster_size, QCOW2_DISCARD_OTHER);
    }
    *l2_table = table;
    return 0;

fail_group:
    qcow2_l2_group_free(bs, &group);
fail_put:
    qcow2_cache_put(s->l2_table_cache, (void **)&table);
fail_free:
    qcow2_free_clusters(bs, new_l2, s->cluster_size, QCOW2_DISCARD_OTHER);
    return ret;
}

static gint qcow2_alloc_cmp(gconstpointer a, gconstpointer b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

void qcow2_alloc_track_init(BDRVQcow2State *s)
{
    s->cluster_allocs = g_tree_new(qcow2_alloc_cmp);
}

void qcow2_alloc_track_destroy(BDRVQcow2State *s)
{
    if (s->cluster_allocs) {
        assert(g_tree_nnodes(s->cluster_allocs) == 0);
        g_tree_destroy(s->cluster_allocs);
        s->cluster_allocs = NULL;
    }
}

void qcow2_alloc_track_add(BDRVQcow2State *s, QCowL2Meta *m)
{
    assert(!qcow2_alloc_find_overlap(s, m->guest_offset,
                                     (uint64_t)m->nb_clusters <<
                                     s->cluster_bits));
    g_tree_insert(s->cluster_allocs, &m->guest_offset, m);
}

void qcow2_alloc_track_remove(BDRVQcow2State *s, QCowL2Meta *m)
{
    g_tree_remove(s->cluster_allocs, &m->guest_offset);
}

QCowL2Meta *qcow2_alloc_find_overlap(BDRVQcow2State *s, uint64_t offset,
                                     uint64_t bytes)
{
    GTreeNode *next = g_tree_lower_bound(s->cluster_allocs, &offset);
    GTreeNode *prev = next ? g_tree_node_previous(next)
                           : g_tree_node_last(s->cluster_allocs);
    QCowL2Meta *m;

    /* Ranges are disjoint: only the neighbours of @offset can overlap. */
    if (prev) {
        m = g_tree_node_value(prev);
        if (m->guest_offset +
            ((uint64_t)m->nb_clusters << s->cluster_bits) > offset) {
            return m;
        }
    }
    if (next) {
        m = g_tree_node_value(next);
        if (m->guest_offset < offset + bytes) {
            return m;
        }
    }
    return NULL;
}

void coroutine_fn qcow2_wait_for_allocs(BlockDriverState *bs, uint64_t offset,
                                        uint64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    QCowL2Meta *m;

    while ((m = qcow2_alloc_find_overlap(s, offset, bytes)) != NULL) {
        qemu_co_queue_wait(&m->waiters, &s->lock);
    }
}

/*
 * Rewrites the L2 entries of whole clusters [offset, offset + bytes) with
 * @new_entry_fn's result and frees the clusters they no longer reference.
 * @fn gets the subcluster bitmap in *bitmap (0 without extended L2
 * entries) and may change it.
 */
typedef uint64_t L2EntryFn(BlockDriverState *bs, uint64_t old,
                           uint64_t *bitmap, bool arg, bool *free_old);

static int coroutine_fn rewrite_l2_entries(BlockDriverState *bs,
                                           uint64_t offset, uint64_t bytes,
                                           L2EntryFn *fn, bool arg,
                                           bool alloc_tables,
                                           QCow2DiscardType type)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t end = offset + bytes;
    uint64_t *freed = g_new(uint64_t, s->l2_size);
    int ret = 0;

    while (offset < end) {
        int l1_index = offset_to_l1_index(s, offset);
        uint64_t table_end = (uint64_t)(l1_index + 1)
                             << (s->l2_bits + s->cluster_bits);
        uint64_t chunk_end = MIN(end, table_end);
        int nb = DIV_ROUND_UP(chunk_end - offset, s->cluster_size);
        int nb_freed = 0, i, l2_index;
        uint64_t *l2;

        if (!alloc_tables &&
            (l1_index >= s->l1_size || !s->l1_table[l1_index])) {
            offset = chunk_end;
            continue;
        }
        ret = qcow2_get_l2_for_write(bs, offset, &l2, &l2_index);
        if (ret < 0) {
            break;
        }
        for (i = 0; i < nb; i++) {
            uint64_t old = qcow2_l2_entry(s, l2, l2_index + i);
            uint64_t old_bitmap = qcow2_l2_bitmap(s, l2, l2_index + i);
            uint64_t bitmap = old_bitmap;
            bool free_old = false;
            uint64_t new = fn(bs, old, &bitmap, arg, &free_old);
            if (new == old && bitmap == old_bitmap) {
                continue;
            }
            qcow2_set_l2_entry(s, l2, l2_index + i, new);
            qcow2_set_l2_bitmap(s, l2, l2_index + i, bitmap);
            if (free_old) {
                freed[nb_freed++] = old;
            }
        }
        BLKDBG_EVENT(bs->file, BLKDBG_L2_UPDATE);
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        /* qcow2_free_clusters() writes the L2 change first. */
        for (i = 0; i < nb_freed; i++) {
            qcow2_free_any_cluster(bs, freed[i], type);
        }
        offset = chunk_end;
    }
    g_free(freed);
    return ret;
}

/* Does the entry reference host space (data, preallocation, compressed)? */
static bool entry_has_host(BlockDriverState *bs, uint64_t e)
{
    QCow2ClusterType t = qcow2_get_cluster_type(bs, e);

    return t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC ||
           t == QCOW2_CLUSTER_COMPRESSED;
}

/* A cluster that reads as zeroes and references no host space. */
static uint64_t zero_plain_entry(BDRVQcow2State *s, uint64_t *bitmap)
{
    if (s->extended_l2) {
        *bitmap = QCOW_L2_BITMAP_ALL_ZERO;
        return 0;
    }
    return QCOW_OFLAG_ZERO;
}

static uint64_t discard_entry(BlockDriverState *bs, uint64_t old,
                              uint64_t *bitmap, bool full_discard,
                              bool *free_old)
{
    BDRVQcow2State *s = bs->opaque;

    *free_old = entry_has_host(bs, old);
    if (full_discard) {
        *bitmap = 0;
        return 0;
    }
    /*
     * A guest discard leaves a v3 zero cluster where data was (as QEMU
     * does), and with a backing file must not expose the backing data.
     */
    if (s->qcow_version >= 3 && (bs->backing || *free_old)) {
        return zero_plain_entry(s, bitmap);
    }
    if (!*free_old && qcow2_get_cluster_type(bs, old) ==
                      QCOW2_CLUSTER_UNALLOCATED) {
        return old;
    }
    *bitmap = 0;
    return 0;
}

int coroutine_fn qcow2_cluster_discard(BlockDriverState *bs, uint64_t offset,
                                       uint64_t bytes, bool full_discard,
                                       QCow2DiscardType type)
{
    BDRVQcow2State *s = bs->opaque;
    bool need_tables = !full_discard && bs->backing && s->qcow_version >= 3;

    return rewrite_l2_entries(bs, offset, bytes, discard_entry, full_discard,
                              need_tables, type);
}

static uint64_t zero_entry(BlockDriverState *bs, uint64_t old,
                           uint64_t *bitmap, bool unmap, bool *free_old)
{
    BDRVQcow2State *s = bs->opaque;
    QCow2ClusterType t = qcow2_get_cluster_type(bs, old);

    if ((t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) &&
        (old & QCOW_OFLAG_COPIED) && !unmap) {
        /* Keep the (preallocated) host cluster; only mark it zero. */
        *free_old = false;
        if (s->extended_l2) {
            *bitmap = QCOW_L2_BITMAP_ALL_ZERO;
            return old & (L2E_OFFSET_MASK | QCOW_OFLAG_COPIED);
        }
        return (old & (L2E_OFFSET_MASK | QCOW_OFLAG_COPIED)) | QCOW_OFLAG_ZERO;
    }
    *free_old = entry_has_host(bs, old);
    return zero_plain_entry(s, bitmap);
}

int coroutine_fn qcow2_cluster_zeroize(BlockDriverState *bs, uint64_t offset,
                                       uint64_t bytes, bool unmap)
{
    /* Without a backing file, missing L2 tables already read as zeroes. */
    return rewrite_l2_entries(bs, offset, bytes, zero_entry, unmap,
                              bs->backing != NULL, QCOW2_DISCARD_REQUEST);
}

int coroutine_fn qcow2_subcluster_zeroize(BlockDriverState *bs,
                                          uint64_t offset, uint64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    int first = offset_into_cluster(s, offset) >> s->subcluster_bits;
    int n = DIV_ROUND_UP(bytes, s->subcluster_size);
    uint64_t *l2, e, bitmap, mask;
    int l2_index, ret;

    assert(s->extended_l2);
    ret = qcow2_get_l2_for_write(bs, offset, &l2, &l2_index);
    if (ret < 0) {
        return ret;
    }
    e = qcow2_l2_entry(s, l2, l2_index);
    if ((e & QCOW_OFLAG_COMPRESSED) ||
        ((e & L2E_OFFSET_MASK) && !(e & QCOW_OFLAG_COPIED))) {
        /* The other subclusters' data is not ours alone to keep. */
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        return -ENOTSUP;
    }
    mask = qcow2_subclusters_mask(first, n);
    bitmap = qcow2_l2_bitmap(s, l2, l2_index);
    qcow2_set_l2_bitmap(s, l2, l2_index,
                        (bitmap & ~mask) | (mask << QCOW_EXTL2_SUBCLUSTERS));
    BLKDBG_EVENT(bs->file, BLKDBG_L2_UPDATE);
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    return 0;
}

int coroutine_fn qcow2_decompress_cluster(BlockDriverState *bs,
                                          uint64_t l2_entry, uint8_t *out)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t coffset;
    int csize, ret;
    int64_t file_len = bdrv_getlength(bs->file->bs);
    uint8_t *in;
    z_stream strm = { 0 };

    qcow2_parse_compressed_l2_entry(bs, l2_entry, &coffset, &csize);
    if (file_len < 0) {
        return file_len;
    }
    if (coffset >= (uint64_t)file_len) {
        qcow2_signal_corruption(bs, "Compressed cluster at %#" PRIx64
                                " is past the end of the image", coffset);
        return -EIO;
    }
    /* The last sector may be cut short by the end of the file. */
    csize = MIN((uint64_t)csize, file_len - coffset);
    in = g_try_malloc(csize);
    if (!in) {
        return -ENOMEM;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_READ_COMPRESSED);
    ret = bdrv_co_pread(bs->file, coffset, csize, in, 0);
    if (ret < 0) {
        goto out;
    }
    if (inflateInit2(&strm, -12) != Z_OK) {
        ret = -EIO;
        goto out;
    }
    strm.next_in = in;
    strm.avail_in = csize;
    strm.next_out = out;
    strm.avail_out = s->cluster_size;
    ret = inflate(&strm, Z_FINISH);
    /* Decompression stops once a whole cluster was produced. */
    if ((ret != Z_STREAM_END && ret != Z_BUF_ERROR && ret != Z_OK) ||
        strm.avail_out) {
        ret = -EIO;
    } else {
        ret = 0;
    }
    inflateEnd(&strm);
out:
    g_free(in);
    return ret;
}
