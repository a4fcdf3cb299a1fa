/*
 * qcow2 persistent dirty bitmaps: the bitmaps header extension, the
 * bitmap directory and the bitmap tables (docs/interop/qcow2.txt,
 * "Bitmaps extension" and "Bitmaps"), and their link to the node's
 * BdrvDirtyBitmaps.
 *
 * Life cycle (the same as QEMU's, so the two interoperate):
 *  - open: the directory is read into s->bitmap_dir and every entry
 *    becomes a persistent BdrvDirtyBitmap.  Entries already marked in_use
 *    were not saved properly by their last writer: they become
 *    inconsistent bitmaps (contents not loaded; they can only be removed).
 *    On a writable open, every loaded entry is then marked in_use on disk,
 *    so a crash before close leaves them marked.
 *  - close (bdrv_store_persistent_dirty_bitmaps()): every persistent
 *    bitmap that is consistent is written to new clusters, a new
 *    directory (in_use clear) is written, the header switched to it, and
 *    only then are the old directory and tables freed.  Entries with no
 *    in-memory counterpart (inconsistent, unusable extra data) are kept
 *    verbatim.
 *  - remove: the entry leaves the directory at once (new directory, then
 *    header, then the bitmap's clusters are freed).
 *
 * Crash safety follows qcow2-refcount.c: new clusters get their refcount
 * first, data/table/directory are written and the refcounts flushed
 * before the header points at them; clusters are freed only after the
 * header that stopped referencing them is on disk.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"
#include "block/dirty-bitmap.h"

/* QEMU's implementation limits (so images interoperate). */
#define QCOW2_MAX_BITMAPS               65535
#define QCOW2_MAX_BITMAP_DIRECTORY_SIZE (1024 * QCOW2_MAX_BITMAPS)
#define BME_MAX_TABLE_SIZE              0x8000000
#define BME_MAX_PHYS_SIZE               0x20000000  /* 512 MiB of bits */
#define BME_MIN_GRANULARITY_BITS        9
#define BME_MAX_GRANULARITY_BITS        31
#define BME_MAX_NAME_SIZE               1023
#define BME_DIR_ENTRY_HEADER            24

/* Bitmap table entries */
#define BME_TABLE_ENTRY_OFFSET_MASK     0x00fffffffffffe00ULL
#define BME_TABLE_ENTRY_RESERVED_MASK   0xff000000000001feULL
#define BME_TABLE_ENTRY_FLAG_ALL_ONES   1ULL

static uint64_t dir_entry_size(size_t name_size, uint32_t extra_data_size)
{
    return ROUND_UP(BME_DIR_ENTRY_HEADER + extra_data_size + name_size, 8);
}

static void bitmap_free(gpointer p)
{
    Qcow2Bitmap *bm = p;

    g_free(bm->name);
    g_free(bm->extra_data);
    g_free(bm);
}

static GPtrArray *bitmap_dir_new(void)
{
    return g_ptr_array_new_with_free_func(bitmap_free);
}

void qcow2_free_bitmap_dir(BDRVQcow2State *s)
{
    if (s->bitmap_dir) {
        g_ptr_array_free(s->bitmap_dir, true);
        s->bitmap_dir = NULL;
    }
}

static Qcow2Bitmap *dir_find(GPtrArray *dir, const char *name)
{
    for (guint i = 0; dir && i < dir->len; i++) {
        Qcow2Bitmap *bm = dir->pdata[i];
        if (!strcmp(bm->name, name)) {
            return bm;
        }
    }
    return NULL;
}

/* Bytes of bitmap data for @len bytes of disk at 2^@gran_bits per bit. */
static uint64_t bitmap_data_bytes(uint64_t len, int gran_bits)
{
    uint64_t bits = DIV_ROUND_UP(len, 1ULL << gran_bits);

    return DIV_ROUND_UP(bits, 8);
}

static uint64_t bitmap_table_entries(BDRVQcow2State *s, uint64_t len,
                                     int gran_bits)
{
    return DIV_ROUND_UP(bitmap_data_bytes(len, gran_bits), s->cluster_size);
}

/* Disk bytes described by one cluster of bitmap data. */
static uint64_t bytes_per_data_cluster(BDRVQcow2State *s, int gran_bits)
{
    return ((uint64_t)s->cluster_size * 8) << gran_bits;
}

/* ---- header extension ---- */

int qcow2_read_bitmaps_ext(BlockDriverState *bs, const uint8_t *data,
                           uint32_t len, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint32_t nb, reserved;
    uint64_t dir_size, dir_offset;

    if (len != 24) {
        error_setg(errp, "bitmaps_ext: Invalid extension length");
        return -EINVAL;
    }
    if (!(s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
        /* Some program without bitmap support wrote the image. */
        if (s->qcow_version < 3) {
            warn_report("This qcow2 v2 image contains bitmaps, but they may "
                        "have been modified by a program without persistent "
                        "bitmap support; so now they must all be considered "
                        "inconsistent");
        } else {
            warn_report("a program lacking bitmap support modified this "
                        "file, so all bitmaps are now considered "
                        "inconsistent");
        }
        /* Without a newline, as qemu-img prints it. */
        fprintf(stderr, "Some clusters may be leaked, run 'qemu-img check "
                "-r' on the image file to fix.");
        s->bitmaps_ext_dropped = true;
        return 0;
    }
    nb = be32_get(data);
    reserved = be32_get(data + 4);
    dir_size = be64_get(data + 8);
    dir_offset = be64_get(data + 16);
    if (reserved) {
        error_setg(errp, "bitmaps_ext: Reserved field is not zero");
        return -EINVAL;
    }
    if (nb > QCOW2_MAX_BITMAPS) {
        error_setg(errp, "bitmaps_ext: Image has %" PRIu32 " bitmaps, "
                   "exceeding the QEMU supported maximum of %d", nb,
                   QCOW2_MAX_BITMAPS);
        return -EINVAL;
    }
    if (nb == 0) {
        error_setg(errp, "found bitmaps extension with zero bitmaps");
        return -EINVAL;
    }
    if (offset_into_cluster(s, dir_offset) || dir_offset >= (1ULL << 62)) {
        error_setg(errp, "bitmaps_ext: invalid bitmap directory offset");
        return -EINVAL;
    }
    if (dir_size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
        error_setg(errp, "bitmaps_ext: bitmap directory size (%" PRIu64
                   ") exceeds the maximum supported size (%d)", dir_size,
                   QCOW2_MAX_BITMAP_DIRECTORY_SIZE);
        return -EINVAL;
    }
    s->nb_bitmaps = nb;
    s->bitmap_directory_size = dir_size;
    s->bitmap_directory_offset = dir_offset;
    return 0;
}

void qcow2_build_bitmaps_ext(BlockDriverState *bs, uint8_t *data)
{
    BDRVQcow2State *s = bs->opaque;

    be32_put(data, s->nb_bitmaps);
    be32_put(data + 4, 0);
    be64_put(data + 8, s->bitmap_directory_size);
    be64_put(data + 16, s->bitmap_directory_offset);
}

/* ---- directory parsing and writing ---- */

static int parse_dir_entry(BDRVQcow2State *s, const uint8_t *e,
                           uint64_t avail, Qcow2Bitmap **out,
                           uint64_t *entry_len, Error **errp)
{
    Qcow2Bitmap *bm;
    uint16_t name_size;
    uint32_t extra;

    if (avail < BME_DIR_ENTRY_HEADER) {
        error_setg(errp, "Bitmap directory is truncated");
        return -EINVAL;
    }
    name_size = be16_get(e + 18);
    extra = be32_get(e + 20);
    *entry_len = dir_entry_size(name_size, extra);
    if (*entry_len > avail) {
        error_setg(errp, "Bitmap directory is truncated");
        return -EINVAL;
    }
    bm = g_new0(Qcow2Bitmap, 1);
    bm->table_offset = be64_get(e);
    bm->table_size = be32_get(e + 8);
    bm->flags = be32_get(e + 12);
    bm->type = e[16];
    bm->granularity_bits = e[17];
    bm->extra_data_size = extra;
    bm->extra_data = g_memdup2(e + BME_DIR_ENTRY_HEADER, extra);
    bm->name = g_strndup((const char *)e + BME_DIR_ENTRY_HEADER + extra,
                         name_size);
    *out = bm;

    if (name_size == 0 || name_size > BME_MAX_NAME_SIZE ||
        strlen(bm->name) != name_size) {
        error_setg(errp, "Bitmap directory entry has an invalid name");
        return -EINVAL;
    }
    if ((bm->flags & BME_RESERVED_FLAGS) ||
        bm->granularity_bits < BME_MIN_GRANULARITY_BITS ||
        bm->granularity_bits > BME_MAX_GRANULARITY_BITS ||
        offset_into_cluster(s, bm->table_offset) ||
        bm->table_size > BME_MAX_TABLE_SIZE ||
        (bm->table_size && !bm->table_offset)) {
        error_setg(errp, "Bitmap '%s' doesn't satisfy the constraints",
                   bm->name);
        return -EINVAL;
    }
    return 0;
}

static int coroutine_fn read_bitmap_dir(BlockDriverState *bs,
                                        GPtrArray **out, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    GPtrArray *dir = bitmap_dir_new();
    uint8_t *buf;
    uint64_t pos = 0;
    int ret;

    buf = g_try_malloc(s->bitmap_directory_size);
    if (!buf) {
        error_setg(errp, "Could not allocate the bitmap directory");
        g_ptr_array_free(dir, true);
        return -ENOMEM;
    }
    ret = bdrv_co_pread(bs->file, s->bitmap_directory_offset,
                        s->bitmap_directory_size, buf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read bitmap directory");
        goto fail;
    }
    for (uint32_t i = 0; i < s->nb_bitmaps; i++) {
        Qcow2Bitmap *bm = NULL;
        uint64_t len;

        ret = parse_dir_entry(s, buf + pos, s->bitmap_directory_size - pos,
                              &bm, &len, errp);
        if (bm) {
            g_ptr_array_add(dir, bm);
        }
        if (ret < 0) {
            goto fail;
        }
        if (dir_find(dir, bm->name) != bm) {
            error_setg(errp, "Duplicate bitmap name '%s' in the bitmap "
                       "directory", bm->name);
            ret = -EINVAL;
            goto fail;
        }
        pos += len;
    }
    if (pos != s->bitmap_directory_size) {
        error_setg(errp, "Bitmap directory size does not match its entries");
        ret = -EINVAL;
        goto fail;
    }
    g_free(buf);
    *out = dir;
    return 0;

fail:
    g_free(buf);
    g_ptr_array_free(dir, true);
    return ret;
}

static uint64_t bitmap_dir_size(GPtrArray *dir)
{
    uint64_t size = 0;

    for (guint i = 0; i < dir->len; i++) {
        Qcow2Bitmap *bm = dir->pdata[i];
        size += dir_entry_size(strlen(bm->name), bm->extra_data_size);
    }
    return size;
}

/* Serializes @dir; the buffer is padded with zeroes to whole clusters. */
static uint8_t *build_bitmap_dir(BDRVQcow2State *s, GPtrArray *dir,
                                 uint64_t size)
{
    uint8_t *buf = g_malloc0(ROUND_UP(size, s->cluster_size));
    uint8_t *e = buf;

    for (guint i = 0; i < dir->len; i++) {
        Qcow2Bitmap *bm = dir->pdata[i];
        size_t name_size = strlen(bm->name);

        be64_put(e, bm->table_offset);
        be32_put(e + 8, bm->table_size);
        be32_put(e + 12, bm->flags);
        e[16] = bm->type;
        e[17] = bm->granularity_bits;
        be16_put(e + 18, name_size);
        be32_put(e + 20, bm->extra_data_size);
        if (bm->extra_data_size) {
            memcpy(e + BME_DIR_ENTRY_HEADER, bm->extra_data,
                   bm->extra_data_size);
        }
        memcpy(e + BME_DIR_ENTRY_HEADER + bm->extra_data_size, bm->name,
               name_size);
        e += dir_entry_size(name_size, bm->extra_data_size);
    }
    return buf;
}

/*
 * Overwrites the current directory in place; only for changes that keep
 * its size (in_use flags).
 */
static int coroutine_fn write_bitmap_dir_in_place(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint8_t *buf = build_bitmap_dir(s, s->bitmap_dir,
                                    s->bitmap_directory_size);
    int ret;

    ret = bdrv_co_pwrite_sync(bs->file, s->bitmap_directory_offset,
                              s->bitmap_directory_size, buf, 0);
    g_free(buf);
    return ret;
}

/*
 * Makes @new_dir (ownership taken) the image's directory: writes it to
 * new clusters, makes the refcounts durable, switches the header (with
 * the autoclear bit exactly when bitmaps remain) and frees the old
 * directory's clusters.
 */
static int coroutine_fn replace_bitmap_dir(BlockDriverState *bs,
                                           GPtrArray *new_dir)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t old_offset = s->bitmap_directory_offset;
    uint64_t old_size = s->bitmap_directory_size;
    uint64_t old_autoclear = s->autoclear_features;
    uint64_t size = bitmap_dir_size(new_dir);
    int64_t offset = 0;
    int ret;

    if (new_dir->len) {
        uint8_t *buf = build_bitmap_dir(s, new_dir, size);

        offset = qcow2_alloc_clusters_exact(bs, size);
        ret = offset < 0 ? offset :
              bdrv_co_pwrite(bs->file, offset, ROUND_UP(size, s->cluster_size),
                             buf, 0);
        g_free(buf);
        if (ret < 0) {
            goto fail;
        }
    }
    ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    if (ret < 0) {
        goto fail;
    }

    s->nb_bitmaps = new_dir->len;
    s->bitmap_directory_offset = offset;
    s->bitmap_directory_size = new_dir->len ? size : 0;
    if (new_dir->len) {
        s->autoclear_features |= QCOW2_AUTOCLEAR_BITMAPS;
    } else {
        s->autoclear_features &= ~QCOW2_AUTOCLEAR_BITMAPS;
    }
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        /* The old header may still point at the old directory: keep it. */
        s->nb_bitmaps = s->bitmap_dir ? s->bitmap_dir->len : 0;
        s->bitmap_directory_offset = old_offset;
        s->bitmap_directory_size = old_size;
        s->autoclear_features = old_autoclear;
        goto fail;
    }
    if (old_size) {
        qcow2_free_clusters(bs, old_offset, ROUND_UP(old_size,
                                                     s->cluster_size),
                            QCOW2_DISCARD_OTHER);
    }
    qcow2_free_bitmap_dir(s);
    s->bitmap_dir = new_dir;
    return 0;

fail:
    if (offset > 0) {
        qcow2_free_clusters(bs, offset, ROUND_UP(size, s->cluster_size),
                            QCOW2_DISCARD_OTHER);
    }
    g_ptr_array_free(new_dir, true);
    return ret;
}

static Qcow2Bitmap *bitmap_copy(const Qcow2Bitmap *bm)
{
    Qcow2Bitmap *c = g_memdup2(bm, sizeof(*bm));

    c->name = g_strdup(bm->name);
    c->extra_data = g_memdup2(bm->extra_data, bm->extra_data_size);
    return c;
}

static GPtrArray *bitmap_dir_copy(GPtrArray *dir)
{
    GPtrArray *c = bitmap_dir_new();

    for (guint i = 0; dir && i < dir->len; i++) {
        g_ptr_array_add(c, bitmap_copy(dir->pdata[i]));
    }
    return c;
}

/* ---- bitmap tables ---- */

static int coroutine_fn read_bitmap_table(BlockDriverState *bs,
                                          const Qcow2Bitmap *bm,
                                          uint64_t **table)
{
    uint64_t *t = g_new(uint64_t, MAX(bm->table_size, 1));
    int ret = 0;

    if (bm->table_size) {
        ret = bdrv_co_pread(bs->file, bm->table_offset,
                            (int64_t)bm->table_size * 8, t, 0);
    }
    if (ret < 0) {
        g_free(t);
        return ret;
    }
    for (uint32_t i = 0; i < bm->table_size; i++) {
        t[i] = GUINT64_FROM_BE(t[i]);
    }
    *table = t;
    return 0;
}

/* Frees a stored bitmap's data clusters and table (leaks on read error). */
static void coroutine_fn free_bitmap_clusters(BlockDriverState *bs,
                                              const Qcow2Bitmap *bm)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *table;

    if (!bm->table_size) {
        return;
    }
    if (read_bitmap_table(bs, bm, &table) < 0) {
        warn_report("qcow2: Could not read the table of bitmap '%s'; its "
                    "clusters are leaked", bm->name);
        return;
    }
    for (uint32_t i = 0; i < bm->table_size; i++) {
        uint64_t off = table[i] & BME_TABLE_ENTRY_OFFSET_MASK;
        if (off) {
            qcow2_free_clusters(bs, off, s->cluster_size,
                                QCOW2_DISCARD_OTHER);
        }
    }
    g_free(table);
    qcow2_free_clusters(bs, bm->table_offset,
                        ROUND_UP((uint64_t)bm->table_size * 8,
                                 s->cluster_size),
                        QCOW2_DISCARD_OTHER);
}

/* Fills @bitmap from the table of @bm. */
static int coroutine_fn load_bitmap_data(BlockDriverState *bs,
                                         const Qcow2Bitmap *bm,
                                         BdrvDirtyBitmap *bitmap,
                                         Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t len = bdrv_dirty_bitmap_size(bitmap);
    uint64_t per_cluster = bytes_per_data_cluster(s, bm->granularity_bits);
    uint64_t *table;
    uint8_t *buf;
    int ret;

    ret = read_bitmap_table(bs, bm, &table);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read bitmap '%s' table",
                         bm->name);
        return ret;
    }
    buf = qemu_blockalign(bs->file->bs, s->cluster_size);
    for (uint32_t i = 0; i < bm->table_size; i++) {
        uint64_t entry = table[i];
        uint64_t off = entry & BME_TABLE_ENTRY_OFFSET_MASK;
        uint64_t start = i * per_cluster;
        uint64_t count = MIN(per_cluster, len - start);

        if ((entry & BME_TABLE_ENTRY_RESERVED_MASK) ||
            (off && (entry & BME_TABLE_ENTRY_FLAG_ALL_ONES)) ||
            offset_into_cluster(s, off)) {
            error_setg(errp, "Bitmap '%s' table entry %" PRIu32 " is "
                       "invalid", bm->name, i);
            ret = -EINVAL;
            break;
        }
        if (!off) {
            if (entry & BME_TABLE_ENTRY_FLAG_ALL_ONES) {
                bdrv_dirty_bitmap_deserialize_ones(bitmap, start, count);
            }
            continue;
        }
        ret = bdrv_co_pread(bs->file, off, s->cluster_size, buf, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read bitmap '%s' data",
                             bm->name);
            break;
        }
        bdrv_dirty_bitmap_deserialize_part(bitmap, buf, start, count, false);
    }
    /* Summary levels are rebuilt once, after every part is in. */
    bdrv_dirty_bitmap_deserialize_finish(bitmap);
    qemu_vfree(buf);
    g_free(table);
    return ret < 0 ? ret : 0;
}

/*
 * Writes @bitmap's data and table to new clusters; fills @bm's table
 * fields.  All-clean clusters become "all zeroes" entries.  On failure
 * every cluster taken is given back.
 */
static int coroutine_fn store_bitmap_data(BlockDriverState *bs,
                                          BdrvDirtyBitmap *bitmap,
                                          Qcow2Bitmap *bm)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t len = bdrv_dirty_bitmap_size(bitmap);
    uint64_t per_cluster = bytes_per_data_cluster(s, bm->granularity_bits);
    uint64_t n = bitmap_table_entries(s, len, bm->granularity_bits);
    uint64_t table_bytes = ROUND_UP(n * 8, s->cluster_size);
    uint64_t *table = g_malloc0(MAX(table_bytes, 8));
    uint8_t *buf = qemu_blockalign(bs->file->bs, s->cluster_size);
    int64_t table_offset = 0;
    uint64_t i;
    int ret = 0;

    for (i = 0; i < n; i++) {
        uint64_t start = i * per_cluster;
        uint64_t count = MIN(per_cluster, len - start);
        int allocated;
        int64_t off;

        if (bdrv_dirty_bitmap_next_dirty(bitmap, start, count) < 0) {
            continue;
        }
        memset(buf, 0, s->cluster_size);
        bdrv_dirty_bitmap_serialize_part(bitmap, buf, start, count);
        off = qcow2_alloc_clusters(bs, 1, &allocated);
        if (off < 0) {
            ret = off;
            goto fail;
        }
        table[i] = off;
        ret = bdrv_co_pwrite(bs->file, off, s->cluster_size, buf, 0);
        if (ret < 0) {
            goto fail;
        }
    }
    if (n) {
        table_offset = qcow2_alloc_clusters_exact(bs, table_bytes);
        if (table_offset < 0) {
            ret = table_offset;
            table_offset = 0;
            goto fail;
        }
        for (i = 0; i < n; i++) {
            table[i] = GUINT64_TO_BE(table[i]);
        }
        ret = bdrv_co_pwrite(bs->file, table_offset, table_bytes, table, 0);
        if (ret < 0) {
            goto fail;
        }
    }
    bm->table_offset = table_offset;
    bm->table_size = n;
    g_free(table);
    qemu_vfree(buf);
    return 0;

fail:
    if (table_offset) {
        qcow2_free_clusters(bs, table_offset, table_bytes,
                            QCOW2_DISCARD_OTHER);
        for (i = 0; i < n; i++) {
            table[i] = GUINT64_FROM_BE(table[i]);
        }
    }
    for (i = 0; i < n; i++) {
        if (table[i]) {
            qcow2_free_clusters(bs, table[i], s->cluster_size,
                                QCOW2_DISCARD_OTHER);
        }
    }
    g_free(table);
    qemu_vfree(buf);
    return ret;
}

/* ---- load ---- */

/* Creates the BdrvDirtyBitmap for directory entry @bm. */
static int coroutine_fn load_one_bitmap(BlockDriverState *bs,
                                        const Qcow2Bitmap *bm, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    BdrvDirtyBitmap *bitmap;
    int ret;

    if (bm->type != BME_TYPE_DIRTY_TRACKING ||
        (bm->extra_data_size &&
         !(bm->flags & BME_FLAG_EXTRA_DATA_COMPATIBLE))) {
        /* Unusable here; the entry is kept in the image as it is. */
        return 0;
    }
    bitmap = bdrv_create_dirty_bitmap(bs, 1U << bm->granularity_bits,
                                      bm->name, errp);
    if (!bitmap) {
        return -EINVAL;
    }
    bdrv_dirty_bitmap_set_persistence(bitmap, true);
    if (!(bm->flags & BME_FLAG_AUTO)) {
        bdrv_disable_dirty_bitmap(bitmap);
    }
    if ((bm->flags & BME_FLAG_IN_USE) ||
        bm->table_size != bitmap_table_entries(s,
                                               bdrv_dirty_bitmap_size(bitmap),
                                               bm->granularity_bits)) {
        /* Not saved properly, or sized for another disk length. */
        bdrv_dirty_bitmap_set_inconsistent(bitmap);
    } else {
        ret = load_bitmap_data(bs, bm, bitmap, errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (bdrv_is_read_only(bs)) {
        bdrv_dirty_bitmap_set_readonly(bitmap, true);
    }
    return 0;
}

/* Loaded entries that are being tracked in memory (for in_use marking). */
static bool entry_is_loaded(BlockDriverState *bs, const Qcow2Bitmap *bm)
{
    BdrvDirtyBitmap *bitmap = bdrv_find_dirty_bitmap(bs, bm->name);

    return bitmap && !bdrv_dirty_bitmap_inconsistent(bitmap);
}

int coroutine_fn qcow2_load_dirty_bitmaps(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    bool changed = false;
    int ret;

    if (!s->nb_bitmaps) {
        return 0;
    }
    ret = read_bitmap_dir(bs, &s->bitmap_dir, errp);
    if (ret < 0) {
        return ret;
    }
    for (guint i = 0; i < s->bitmap_dir->len; i++) {
        ret = load_one_bitmap(bs, s->bitmap_dir->pdata[i], errp);
        if (ret < 0) {
            goto fail;
        }
    }
    if (bdrv_is_read_only(bs)) {
        return 0;
    }
    /* From now on the on-disk copies are stale until we store them. */
    for (guint i = 0; i < s->bitmap_dir->len; i++) {
        Qcow2Bitmap *bm = s->bitmap_dir->pdata[i];
        if (entry_is_loaded(bs, bm) && !(bm->flags & BME_FLAG_IN_USE)) {
            bm->flags |= BME_FLAG_IN_USE;
            changed = true;
        }
    }
    if (changed) {
        ret = write_bitmap_dir_in_place(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update the bitmap "
                             "directory");
            goto fail;
        }
    }
    return 0;

fail:
    bdrv_release_all_dirty_bitmaps(bs);
    qcow2_free_bitmap_dir(s);
    return ret;
}

/* ---- store ---- */

static bool bitmap_wants_store(BdrvDirtyBitmap *bitmap)
{
    return bdrv_dirty_bitmap_name(bitmap) &&
           bdrv_dirty_bitmap_get_persistence(bitmap) &&
           !bdrv_dirty_bitmap_inconsistent(bitmap) &&
           !bdrv_dirty_bitmap_readonly(bitmap);
}

typedef struct Qcow2BitmapCo {
    BlockDriverState *bs;
    const char *name;
    Error **errp;
    int ret;
} Qcow2BitmapCo;

static int coroutine_fn store_bitmaps(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    GPtrArray *new_dir = bitmap_dir_copy(s->bitmap_dir);
    GPtrArray *replaced = bitmap_dir_new();
    BdrvDirtyBitmap *bitmap;
    bool any = false;
    int ret;

    for (bitmap = bdrv_dirty_bitmap_first(bs); bitmap;
         bitmap = bdrv_dirty_bitmap_next(bitmap)) {
        const char *name = bdrv_dirty_bitmap_name(bitmap);
        Qcow2Bitmap *bm;

        if (!bitmap_wants_store(bitmap)) {
            continue;
        }
        any = true;
        bm = dir_find(new_dir, name);
        if (bm) {
            /* The old clusters are freed once the new header is out. */
            g_ptr_array_add(replaced, bitmap_copy(bm));
        } else {
            bm = g_new0(Qcow2Bitmap, 1);
            bm->name = g_strdup(name);
            g_ptr_array_add(new_dir, bm);
        }
        bm->type = BME_TYPE_DIRTY_TRACKING;
        bm->granularity_bits = ctz64(bdrv_dirty_bitmap_granularity(bitmap));
        bm->flags = (bm->flags & BME_FLAG_EXTRA_DATA_COMPATIBLE) |
                    (bdrv_dirty_bitmap_enabled(bitmap) ? BME_FLAG_AUTO : 0);
        ret = store_bitmap_data(bs, bitmap, bm);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to write bitmap '%s' to "
                             "file", name);
            bm->table_size = 0;
            goto fail;
        }
    }
    if (!any && !s->bitmap_dir) {
        ret = 0;
        goto out;
    }
    ret = replace_bitmap_dir(bs, new_dir);
    new_dir = NULL;
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to update bitmap extension");
        goto out;
    }
    for (guint i = 0; i < replaced->len; i++) {
        free_bitmap_clusters(bs, replaced->pdata[i]);
    }
    goto out;

fail:
    /* Give back the clusters of the tables written so far. */
    for (guint i = 0; i < new_dir->len; i++) {
        Qcow2Bitmap *bm = new_dir->pdata[i];
        Qcow2Bitmap *old = dir_find(s->bitmap_dir, bm->name);
        bool rewritten = !old || old->table_offset != bm->table_offset;
        if (rewritten && bm->table_size) {
            free_bitmap_clusters(bs, bm);
        }
    }
out:
    if (new_dir) {
        g_ptr_array_free(new_dir, true);
    }
    g_ptr_array_free(replaced, true);
    return ret;
}

static void coroutine_fn qcow2_store_bitmaps_entry(void *opaque)
{
    Qcow2BitmapCo *c = opaque;
    BDRVQcow2State *s = c->bs->opaque;
    int ret = 0;

    qemu_co_mutex_lock(&s->lock);
    if (!s->corrupt_stop) {
        ret = store_bitmaps(c->bs, c->errp);
    }
    qemu_co_mutex_unlock(&s->lock);
    c->ret = ret;
}

int qcow2_store_persistent_dirty_bitmaps(BlockDriverState *bs, Error **errp)
{
    Qcow2BitmapCo c = { .bs = bs, .errp = errp };

    return bdrv_co_run(qcow2_store_bitmaps_entry, &c, &c.ret);
}

/* ---- remove ---- */

static void coroutine_fn qcow2_remove_bitmap_entry(void *opaque)
{
    Qcow2BitmapCo *c = opaque;
    BlockDriverState *bs = c->bs;
    BDRVQcow2State *s = bs->opaque;
    Qcow2Bitmap *bm, *removed;
    GPtrArray *new_dir;
    int ret = 0;

    qemu_co_mutex_lock(&s->lock);
    bm = dir_find(s->bitmap_dir, c->name);
    if (!bm) {
        /* Not stored yet: nothing to do in the image. */
        goto out;
    }
    removed = bitmap_copy(bm);
    new_dir = bitmap_dir_copy(s->bitmap_dir);
    g_ptr_array_remove(new_dir, dir_find(new_dir, c->name));
    ret = replace_bitmap_dir(bs, new_dir);
    if (ret < 0) {
        error_setg_errno(c->errp, -ret, "Failed to remove bitmap '%s' from "
                         "the image", c->name);
    } else {
        free_bitmap_clusters(bs, removed);
    }
    bitmap_free(removed);
out:
    qemu_co_mutex_unlock(&s->lock);
    c->ret = ret;
}

int qcow2_remove_persistent_dirty_bitmap(BlockDriverState *bs,
                                         const char *name, Error **errp)
{
    Qcow2BitmapCo c = { .bs = bs, .name = name, .errp = errp };

    return bdrv_co_run(qcow2_remove_bitmap_entry, &c, &c.ret);
}

/* ---- constraints ---- */

bool qcow2_can_store_new_dirty_bitmap(BlockDriverState *bs, const char *name,
                                      uint32_t granularity, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int gran_bits = ctz64(granularity);
    int64_t len = bdrv_getlength(bs);

    if (s->qcow_version < 3) {
        /* Without autoclear bits every v2 reader would leave them stale. */
        error_setg(errp, "Cannot store dirty bitmaps in qcow2 v2 files");
        return false;
    }
    if (gran_bits > BME_MAX_GRANULARITY_BITS) {
        error_setg(errp, "Granularity exceeds maximum (%llu bytes)",
                   1ULL << BME_MAX_GRANULARITY_BITS);
        return false;
    }
    if (gran_bits < BME_MIN_GRANULARITY_BITS) {
        error_setg(errp, "Granularity is under minimum (%llu bytes)",
                   1ULL << BME_MIN_GRANULARITY_BITS);
        return false;
    }
    if (len < 0 ||
        bitmap_table_entries(s, len, gran_bits) > BME_MAX_TABLE_SIZE ||
        bitmap_data_bytes(len, gran_bits) > BME_MAX_PHYS_SIZE) {
        error_setg(errp, "Too much space will be occupied by the bitmap. "
                   "Use larger granularity");
        return false;
    }
    if (strlen(name) > BME_MAX_NAME_SIZE) {
        error_setg(errp, "Name length exceeds maximum (%u characters)",
                   BME_MAX_NAME_SIZE);
        return false;
    }
    if (s->nb_bitmaps >= QCOW2_MAX_BITMAPS) {
        error_setg(errp, "Maximum number of persistent bitmaps is already "
                   "reached");
        return false;
    }
    if (s->bitmap_directory_size + dir_entry_size(strlen(name), 0) >
        QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
        error_setg(errp, "Not enough space in the bitmap directory");
        return false;
    }
    if (dir_find(s->bitmap_dir, name)) {
        error_setg(errp, "Bitmap with the same name is already stored");
        return false;
    }
    return true;
}

/* ---- measure ---- */

uint64_t qcow2_persistent_bitmaps_size(BlockDriverState *in_bs,
                                       uint32_t cluster_size)
{
    uint64_t size = 0, dir_size = 0;

    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_first(in_bs); bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        uint64_t clusters;

        if (!bdrv_dirty_bitmap_get_persistence(bm)) {
            continue;
        }
        clusters = DIV_ROUND_UP(bitmap_data_bytes(
                                    bdrv_dirty_bitmap_size(bm),
                                    ctz64(bdrv_dirty_bitmap_granularity(bm))),
                                cluster_size);
        size += clusters * cluster_size;
        size += ROUND_UP(clusters * 8, cluster_size);
        dir_size += dir_entry_size(strlen(bdrv_dirty_bitmap_name(bm)), 0);
    }
    return size + ROUND_UP(dir_size, cluster_size);
}

/* ---- info ---- */

JsonNode *qcow2_get_bitmap_info_list(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    JsonArray *list;
    JsonNode *node;

    if (!s->bitmap_dir || !s->bitmap_dir->len) {
        return NULL;
    }
    list = json_array_new();
    for (guint i = 0; i < s->bitmap_dir->len; i++) {
        Qcow2Bitmap *bm = s->bitmap_dir->pdata[i];
        JsonObject *o = json_object_new();
        JsonArray *flags = json_array_new();

        if (bm->flags & BME_FLAG_IN_USE) {
            json_array_add_string_element(flags, "in-use");
        }
        if (bm->flags & BME_FLAG_AUTO) {
            json_array_add_string_element(flags, "auto");
        }
        json_object_set_array_member(o, "flags", flags);
        json_object_set_string_member(o, "name", bm->name);
        json_object_set_int_member(o, "granularity",
                                   1LL << bm->granularity_bits);
        json_array_add_object_element(list, o);
    }
    node = json_node_init_array(json_node_alloc(), list);
    /* The node holds its own reference. */
    json_array_unref(list);
    return node;
}
