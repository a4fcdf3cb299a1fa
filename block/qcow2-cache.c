/*
 * qcow2 metadata cache: a write-back cache of cluster-sized tables
 * (L2 tables, refcount blocks).
 *
 * Entries are found by host offset through a hash table.  A table handed
 * out by qcow2_cache_get() is pinned (ref > 0) until qcow2_cache_put() and
 * is never evicted while pinned.  Eviction picks the least recently used
 * unpinned entry and writes it back first if dirty.
 *
 * Ordering: a cache may depend on another one (the L2 cache depends on the
 * refcount cache).  Before any entry of the dependent cache reaches the
 * disk, every dirty entry of the dependency is written and the file is
 * flushed, so an L2 entry never points at a cluster whose refcount is not
 * on disk yet.  All calls happen under s->lock.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

typedef struct Qcow2CachedTable {
    uint64_t offset;        /* 0: slot unused */
    uint64_t lru_counter;
    int ref;
    bool dirty;
    void *data;
} Qcow2CachedTable;

struct Qcow2Cache {
    Qcow2CachedTable *entries;
    uint8_t *table_array;       /* entry i's data: table_array + i * table_size */
    int size;
    int table_size;
    uint64_t lru_counter;
    GHashTable *by_offset;      /* uint64 offset -> Qcow2CachedTable * */
    Qcow2Cache *depends;
    BlockDriverState *bs;       /* the qcow2 node (not a reference) */
    bool is_l2;                 /* selects the blkdebug events */
};

static guint offset_hash(gconstpointer key)
{
    uint64_t v = *(const uint64_t *)key;
    return (guint)(v ^ (v >> 32));
}

static gboolean offset_equal(gconstpointer a, gconstpointer b)
{
    return *(const uint64_t *)a == *(const uint64_t *)b;
}

Qcow2Cache *qcow2_cache_create(BlockDriverState *bs, int num_tables,
                               int table_size)
{
    Qcow2Cache *c = g_new0(Qcow2Cache, 1);
    int i;

    c->bs = bs;
    c->size = MAX(num_tables, 2);
    c->table_size = table_size;
    c->entries = g_new0(Qcow2CachedTable, c->size);
    c->by_offset = g_hash_table_new(offset_hash, offset_equal);
    c->table_array = qemu_try_memalign(4096, (size_t)c->size * table_size);
    if (!c->table_array) {
        qcow2_cache_destroy(c);
        return NULL;
    }
    for (i = 0; i < c->size; i++) {
        c->entries[i].data = c->table_array + (size_t)i * table_size;
    }
    return c;
}

void qcow2_cache_destroy(Qcow2Cache *c)
{
    if (!c) {
        return;
    }
    qemu_vfree(c->table_array);
    g_hash_table_destroy(c->by_offset);
    g_free(c->entries);
    g_free(c);
}

void qcow2_cache_set_dependency(Qcow2Cache *c, Qcow2Cache *dependency)
{
    c->depends = dependency;
}

bool qcow2_cache_is_dirty(Qcow2Cache *c)
{
    int i;

    for (i = 0; i < c->size; i++) {
        if (c->entries[i].dirty) {
            return true;
        }
    }
    return false;
}

static int coroutine_fn cache_write_deps(BlockDriverState *bs, Qcow2Cache *c)
{
    int ret;

    if (!c->depends || !qcow2_cache_is_dirty(c->depends)) {
        return 0;
    }
    ret = qcow2_cache_flush(bs, c->depends);
    return ret;
}

static int coroutine_fn cache_entry_write(BlockDriverState *bs, Qcow2Cache *c,
                                          Qcow2CachedTable *t)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (!t->dirty || !t->offset) {
        return 0;
    }
    ret = cache_write_deps(bs, c);
    if (ret < 0) {
        return ret;
    }
    if (s->corrupt_stop) {
        return -EIO;
    }
    ret = qcow2_pre_write_overlap_check(bs, c->is_l2 ? QCOW2_OL_ACTIVE_L2
                                                     : QCOW2_OL_REFCOUNT_BLOCK,
                                        t->offset, c->table_size);
    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, c->is_l2 ? BLKDBG_L2_UPDATE
                                    : BLKDBG_REFBLOCK_UPDATE_PART);
    ret = bdrv_co_pwrite(bs->file, t->offset, c->table_size, t->data, 0);
    if (ret < 0) {
        return ret;
    }
    t->dirty = false;
    return 0;
}

int coroutine_fn qcow2_cache_write(BlockDriverState *bs, Qcow2Cache *c)
{
    int i, ret, result = 0;

    for (i = 0; i < c->size; i++) {
        ret = cache_entry_write(bs, c, &c->entries[i]);
        if (ret < 0 && result != -ENOSPC) {
            result = ret;
        }
    }
    return result;
}

int coroutine_fn qcow2_cache_flush(BlockDriverState *bs, Qcow2Cache *c)
{
    int ret = qcow2_cache_write(bs, c);

    if (ret == 0) {
        ret = bdrv_co_flush(bs->file->bs);
    }
    return ret;
}

static void cache_forget(Qcow2Cache *c, Qcow2CachedTable *t)
{
    if (t->offset) {
        g_hash_table_remove(c->by_offset, &t->offset);
    }
    t->offset = 0;
    t->dirty = false;
    t->lru_counter = 0;
}

/* Finds a slot for a new table, writing back a dirty victim if needed. */
static int coroutine_fn cache_find_victim(BlockDriverState *bs, Qcow2Cache *c,
                                          Qcow2CachedTable **victim)
{
    Qcow2CachedTable *best = NULL;
    int i, ret;

    for (i = 0; i < c->size; i++) {
        Qcow2CachedTable *t = &c->entries[i];
        if (t->ref) {
            continue;
        }
        if (!t->offset) {
            best = t;
            break;
        }
        if (!best || t->lru_counter < best->lru_counter) {
            best = t;
        }
    }
    if (!best) {
        /* Every table is pinned: a caller holds more than the cache size. */
        return -ENOSPC;
    }
    ret = cache_entry_write(bs, c, best);
    if (ret < 0) {
        return ret;
    }
    cache_forget(c, best);
    *victim = best;
    return 0;
}

static int coroutine_fn cache_do_get(BlockDriverState *bs, Qcow2Cache *c,
                                     uint64_t offset, void **table,
                                     bool read_from_disk)
{
    Qcow2CachedTable *t;
    int ret;

    assert(offset != 0);
    t = g_hash_table_lookup(c->by_offset, &offset);
    if (!t) {
        ret = cache_find_victim(bs, c, &t);
        if (ret < 0) {
            return ret;
        }
        /* Pin while reading so that nobody evicts the slot meanwhile. */
        t->ref++;
        if (read_from_disk) {
            BLKDBG_EVENT(bs->file, c->is_l2 ? BLKDBG_L2_LOAD
                                            : BLKDBG_REFBLOCK_LOAD);
            ret = bdrv_co_pread(bs->file, offset, c->table_size, t->data, 0);
            if (ret < 0) {
                t->ref--;
                return ret;
            }
        }
        /*
         * Someone may have loaded the same table while we yielded in the
         * read; prefer their copy (it may be dirty already).
         */
        {
            Qcow2CachedTable *other = g_hash_table_lookup(c->by_offset,
                                                          &offset);
            if (other) {
                t->ref--;
                t = other;
                t->ref++;
            } else {
                t->offset = offset;
                g_hash_table_insert(c->by_offset, &t->offset, t);
            }
        }
    } else {
        t->ref++;
    }
    t->lru_counter = ++c->lru_counter;
    *table = t->data;
    return 0;
}

int coroutine_fn qcow2_cache_get(BlockDriverState *bs, Qcow2Cache *c,
                                 uint64_t offset, void **table)
{
    return cache_do_get(bs, c, offset, table, true);
}

int coroutine_fn qcow2_cache_get_empty(BlockDriverState *bs, Qcow2Cache *c,
                                       uint64_t offset, void **table)
{
    return cache_do_get(bs, c, offset, table, false);
}

static Qcow2CachedTable *cache_lookup_data(Qcow2Cache *c, void *table)
{
    size_t i = ((uint8_t *)table - c->table_array) / c->table_size;

    assert(i < (size_t)c->size && c->entries[i].data == table);
    return &c->entries[i];
}

void qcow2_cache_put(Qcow2Cache *c, void **table)
{
    Qcow2CachedTable *t = cache_lookup_data(c, *table);

    assert(t->ref > 0);
    t->ref--;
    *table = NULL;
}

void qcow2_cache_entry_mark_dirty(Qcow2Cache *c, void *table)
{
    Qcow2CachedTable *t = cache_lookup_data(c, table);

    assert(t->offset);
    t->dirty = true;
    /* Dirty metadata is something the node's next flush must write. */
    c->bs->write_gen++;
}

void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset)
{
    Qcow2CachedTable *t = g_hash_table_lookup(c->by_offset, &offset);

    if (t) {
        assert(t->ref == 0);
        cache_forget(c, t);
    }
}

void qcow2_cache_clean(Qcow2Cache *c)
{
    int i;

    for (i = 0; i < c->size; i++) {
        Qcow2CachedTable *t = &c->entries[i];
        if (!t->ref && !t->dirty) {
            cache_forget(c, t);
        }
    }
}

void qcow2_cache_mark_l2(Qcow2Cache *c)
{
    c->is_l2 = true;
}
