/*
 * qcow2 image format: shared definitions of the driver's source files.
 *
 * On-disk layout follows docs/interop/qcow2.txt of the QEMU project.  All
 * on-disk numbers are big endian; every structure below is kept in host
 * order and converted when read or written.
 *
 * Locking: s->lock (a CoMutex) protects all metadata (L1 table, the two
 * caches, refcount table, allocation state, header).  It is dropped around
 * guest data I/O so that reads and in-place overwrites run in parallel.
 */
#ifndef BLOCK_QCOW2_H
#define BLOCK_QCOW2_H

#include "qemu/osdep.h"
#include "block/block_int.h"

#define QCOW_MAGIC 0x514649fbU      /* "QFI\xfb" */

#define QCOW_MIN_CLUSTER_BITS 9
#define QCOW_MAX_CLUSTER_BITS 21

/* Implementation limits (the same as QEMU's, so images interoperate). */
#define QCOW_MAX_L1_SIZE       (32 * MiB)
#define QCOW_MAX_REFTABLE_SIZE (8 * MiB)
#define QCOW_MAX_BACKING_NAME  1023

#define QCOW2_V2_HEADER_LEN    72
#define QCOW2_V3_HEADER_LEN    104
/* What we write for v3: up to and including compression_type, padded. */
#define QCOW2_V3_HEADER_LEN_FULL 112

/* Header extension magics */
#define QCOW2_EXT_MAGIC_END             0x00000000U
#define QCOW2_EXT_MAGIC_BACKING_FORMAT  0xe2792acaU
#define QCOW2_EXT_MAGIC_FEATURE_TABLE   0x6803f857U
#define QCOW2_EXT_MAGIC_BITMAPS         0x23852875U
#define QCOW2_EXT_MAGIC_CRYPTO_HEADER   0x0537be77U
#define QCOW2_EXT_MAGIC_DATA_FILE       0x44415441U

/* Feature bits */
#define QCOW2_INCOMPAT_DIRTY            (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT          (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE        (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION      (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2            (1ULL << 4)
/* The incompatible bits we can open (dirty and corrupt are handled). */
#define QCOW2_INCOMPAT_SUPPORTED  (QCOW2_INCOMPAT_DIRTY | \
                                   QCOW2_INCOMPAT_CORRUPT | \
                                   QCOW2_INCOMPAT_EXTL2)

#define QCOW2_COMPAT_LAZY_REFCOUNTS     (1ULL << 0)
#define QCOW2_AUTOCLEAR_BITMAPS         (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW   (1ULL << 1)

/* Table entry bits */
#define QCOW_OFLAG_COPIED       (1ULL << 63)
#define QCOW_OFLAG_COMPRESSED   (1ULL << 62)
#define QCOW_OFLAG_ZERO         (1ULL << 0)
#define L1E_OFFSET_MASK         0x00fffffffffffe00ULL
#define L2E_OFFSET_MASK         0x00fffffffffffe00ULL
#define REFT_OFFSET_MASK        0xfffffffffffffe00ULL
/* Bits that must be zero in a standard L2 entry (besides zero flag). */
#define L2E_STD_RESERVED_MASK   0x3f000000000001feULL
#define L1E_RESERVED_MASK       0x7f000000000001ffULL

/*
 * Extended L2 entries: 32 subclusters per cluster; the second half of an
 * entry has one "allocated" bit per subcluster (bits 0-31) and one
 * "reads as zeroes" bit (bits 32-63).
 */
#define QCOW_EXTL2_SUBCLUSTERS  32
#define QCOW_EXTL2_SUBCLUSTER_SHIFT 5   /* log2 of the above */
#define QCOW_EXTL2_MIN_CLUSTER_BITS 14
#define QCOW_L2_BITMAP_ALL_ALLOC 0x00000000ffffffffULL
#define QCOW_L2_BITMAP_ALL_ZERO  0xffffffff00000000ULL

/* Each compressed cluster counts one reference on every cluster it spans. */
#define QCOW2_COMPRESSED_SECTOR_SIZE 512

typedef enum QCow2ClusterType {
    QCOW2_CLUSTER_UNALLOCATED,
    QCOW2_CLUSTER_ZERO_PLAIN,
    QCOW2_CLUSTER_ZERO_ALLOC,
    QCOW2_CLUSTER_NORMAL,
    QCOW2_CLUSTER_COMPRESSED,
} QCow2ClusterType;

/* Why clusters are freed; decides whether the discard goes to the file. */
typedef enum QCow2DiscardType {
    QCOW2_DISCARD_NEVER,
    QCOW2_DISCARD_ALWAYS,
    QCOW2_DISCARD_REQUEST,
    QCOW2_DISCARD_SNAPSHOT,
    QCOW2_DISCARD_OTHER,
    QCOW2_DISCARD_MAX,
} QCow2DiscardType;

/* The fixed header fields, host order. */
typedef struct QCowHeader {
    uint32_t magic;
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
} QCowHeader;

/* A header extension we do not interpret, kept to be written back as is. */
typedef struct Qcow2UnknownExt {
    uint32_t magic;
    uint32_t len;
    uint8_t *data;
    QTAILQ_ENTRY(Qcow2UnknownExt) next;
} Qcow2UnknownExt;

/*
 * An allocating write in flight: guest clusters [guest_offset,
 * guest_offset + nb_clusters * cluster_size) get new host clusters (or,
 * with extended L2 entries, new subclusters) whose L2 entries are not
 * written yet.  Other requests touching the range wait on @waiters until
 * the L2 update is done and the entry leaves the list.
 */
typedef struct QCowL2Meta {
    uint64_t guest_offset;
    int nb_clusters;
    CoQueue waiters;
} QCowL2Meta;

typedef struct Qcow2Cache Qcow2Cache;

/* Kinds of metadata the overlap check knows (a mask selects several). */
typedef enum QCow2MetadataOverlap {
    QCOW2_OL_HEADER         = 1 << 0,
    QCOW2_OL_ACTIVE_L1      = 1 << 1,
    QCOW2_OL_REFCOUNT_TABLE = 1 << 2,
    QCOW2_OL_REFCOUNT_BLOCK = 1 << 3,
    QCOW2_OL_ACTIVE_L2      = 1 << 4,
    QCOW2_OL_SNAPSHOT_TABLE = 1 << 5,
    QCOW2_OL_BITMAP_DIR     = 1 << 6,
} QCow2MetadataOverlap;

/* Bitmap directory entry flags (docs/interop/qcow2.txt, "Bitmaps"). */
#define BME_FLAG_IN_USE                 (1U << 0)
#define BME_FLAG_AUTO                   (1U << 1)
#define BME_FLAG_EXTRA_DATA_COMPATIBLE  (1U << 2)
#define BME_RESERVED_FLAGS              (~7U)
#define BME_TYPE_DIRTY_TRACKING         1

/*
 * One entry of the bitmap directory, host order, as it is on disk: the
 * list in BDRVQcow2State always describes the directory the header
 * points at (qcow2-bitmap.c keeps the two in step).
 */
typedef struct Qcow2Bitmap {
    uint64_t table_offset;
    uint32_t table_size;        /* entries */
    uint32_t flags;             /* BME_FLAG_* */
    uint8_t type;
    uint8_t granularity_bits;
    char *name;
    uint8_t *extra_data;        /* kept verbatim */
    uint32_t extra_data_size;
} Qcow2Bitmap;

typedef struct BDRVQcow2State {
    int cluster_bits;
    int cluster_size;
    int l2_bits;                /* log2 of L2 entries per table */
    int l2_size;                /* L2 entries per table */
    /*
     * Extended L2 entries (16 bytes: entry, then subcluster bitmap).
     * Without them a subcluster is the whole cluster.
     */
    bool extended_l2;
    int subcluster_bits;
    int subcluster_size;
    int csize_shift;            /* compressed descriptor layout */
    uint64_t csize_mask;
    uint64_t cluster_offset_mask;

    int refcount_order;
    int refcount_bits;
    uint64_t refcount_max;
    int refcount_block_bits;    /* log2 of refcount entries per block */
    int refcount_block_size;

    uint64_t size;              /* virtual disk size */
    int qcow_version;
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t header_length;     /* as read (v3); we write at least 112 */
    /* Header bytes past the fields we know (v3 only), kept verbatim. */
    uint8_t *extra_header;
    uint32_t extra_header_len;
    uint8_t compression_type;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t bitmap_directory_offset;   /* from the bitmaps extension */
    uint64_t bitmap_directory_size;
    uint32_t nb_bitmaps;        /* 0: no (valid) bitmaps extension */
    /* The extension was present but invalid per autoclear: drop it. */
    bool bitmaps_ext_dropped;
    GPtrArray *bitmap_dir;      /* Qcow2Bitmap *, the on-disk directory */
    QTAILQ_HEAD(, Qcow2UnknownExt) unknown_exts;

    uint64_t *l1_table;         /* host order, l1_size entries */
    uint32_t l1_size;
    uint64_t l1_table_offset;

    uint64_t *refcount_table;   /* host order, refcount_table_size entries */
    uint64_t refcount_table_offset;
    uint32_t refcount_table_size;

    Qcow2Cache *l2_table_cache;
    Qcow2Cache *refcount_block_cache;

    /*
     * Host cluster index -> QCOW2_OL_REFCOUNT_BLOCK or QCOW2_OL_ACTIVE_L2,
     * for the overlap check; NULL means "rebuild from the L1 and refcount
     * tables on next use".  Whoever changes an entry of either table (or
     * replaces the table) calls qcow2_metadata_map_invalidate().
     */
    GHashTable *metadata_map;

    /* Lowest cluster index that may be free (allocation search hint). */
    int64_t free_cluster_index;
    /* One past the highest cluster ever given a reference (allocations
     * can be past the file's end until their data is written). */
    int64_t alloc_end_index;
    /* Next byte for compressed data inside a partly used cluster; 0: none. */
    uint64_t free_byte_offset;

    CoMutex lock;
    /*
     * In-flight allocations keyed by guest offset.  Their ranges never
     * overlap: a writer waits (qcow2_wait_for_allocs) and inserts under
     * s->lock.  A tree keeps the overlap lookup O(log n) when thousands of
     * writes are in flight.
     */
    GTree *cluster_allocs;

    bool discard_passthrough[QCOW2_DISCARD_MAX];
    /* Metadata corruption was found at run time: no more writes. */
    bool corrupt_stop;
} BDRVQcow2State;

/* ---- helpers ---- */

static inline int64_t offset_into_cluster(BDRVQcow2State *s, int64_t offset)
{
    return offset & (s->cluster_size - 1);
}

static inline int64_t start_of_cluster(BDRVQcow2State *s, int64_t offset)
{
    return offset & ~((int64_t)s->cluster_size - 1);
}

static inline int64_t size_to_clusters(BDRVQcow2State *s, int64_t size)
{
    return (size + s->cluster_size - 1) >> s->cluster_bits;
}

static inline int offset_to_l1_index(BDRVQcow2State *s, uint64_t offset)
{
    return offset >> (s->l2_bits + s->cluster_bits);
}

static inline int offset_to_l2_index(BDRVQcow2State *s, uint64_t offset)
{
    return (offset >> s->cluster_bits) & (s->l2_size - 1);
}

/* log2 of the bytes of disk one L2 table maps. */
static inline int qcow2_l2_cover_bits(int cluster_bits, bool extended_l2)
{
    return cluster_bits * 2 - (extended_l2 ? 4 : 3);
}

/* L1 entries needed for a disk of @size bytes. */
static inline uint64_t qcow2_l1_size_for(int cluster_bits, bool extended_l2,
                                         uint64_t size)
{
    return DIV_ROUND_UP(size, 1ULL << qcow2_l2_cover_bits(cluster_bits,
                                                          extended_l2));
}

/*
 * L2 table access by entry index: @l2 is a table as cached (big endian).
 * Without extended L2 entries the bitmap reads as 0 and is not stored.
 */
static inline uint64_t qcow2_l2_entry(BDRVQcow2State *s, const uint64_t *l2,
                                      int i)
{
    return GUINT64_FROM_BE(l2[(size_t)i << s->extended_l2]);
}

static inline void qcow2_set_l2_entry(BDRVQcow2State *s, uint64_t *l2, int i,
                                      uint64_t e)
{
    l2[(size_t)i << s->extended_l2] = GUINT64_TO_BE(e);
}

static inline uint64_t qcow2_l2_bitmap(BDRVQcow2State *s, const uint64_t *l2,
                                       int i)
{
    return s->extended_l2 ? GUINT64_FROM_BE(l2[(size_t)i * 2 + 1]) : 0;
}

static inline void qcow2_set_l2_bitmap(BDRVQcow2State *s, uint64_t *l2, int i,
                                       uint64_t bitmap)
{
    if (s->extended_l2) {
        l2[(size_t)i * 2 + 1] = GUINT64_TO_BE(bitmap);
    }
}

/* The "allocated" bits of subclusters [first, first + n). */
static inline uint64_t qcow2_subclusters_mask(int first, int n)
{
    return n == QCOW_EXTL2_SUBCLUSTERS ? QCOW_L2_BITMAP_ALL_ALLOC
                                       : ((1ULL << n) - 1) << first;
}

/* Sets the refcount width (2^order bits) and the values derived from it. */
static inline void qcow2_refcount_set_order(BDRVQcow2State *s, int order)
{
    s->refcount_order = order;
    s->refcount_bits = 1 << order;
    s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX
                      : (1ULL << s->refcount_bits) - 1;
    s->refcount_block_bits = s->cluster_bits + 3 - order;
    s->refcount_block_size = 1 << s->refcount_block_bits;
}

QCow2ClusterType qcow2_get_cluster_type(BlockDriverState *bs,
                                        uint64_t l2_entry);
/*
 * The type of subcluster @sc of a cluster with extended L2 entry
 * (@l2_entry, @bitmap), read-wise: an unallocated subcluster of a cluster
 * with a host offset is QCOW2_CLUSTER_UNALLOCATED.  Returns -EIO on a
 * bitmap that contradicts itself or the entry.
 */
int qcow2_get_subcluster_type(BlockDriverState *bs, uint64_t l2_entry,
                              uint64_t bitmap, int sc,
                              QCow2ClusterType *type);
/*
 * The type of subcluster @sc of (@l2_entry, @bitmap) and the number of
 * subclusters from there to the end of the cluster that share it (at
 * least 1), or -EIO as qcow2_get_subcluster_type().
 */
int qcow2_subcluster_run(BlockDriverState *bs, uint64_t l2_entry,
                         uint64_t bitmap, int sc, QCow2ClusterType *type);

/* Host byte range of a compressed cluster's data. */
void qcow2_parse_compressed_l2_entry(BlockDriverState *bs, uint64_t l2_entry,
                                     uint64_t *coffset, int *csize);

/* Big-endian access */
static inline uint64_t be64_get(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return GUINT64_FROM_BE(v);
}
static inline uint32_t be32_get(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return GUINT32_FROM_BE(v);
}
static inline uint16_t be16_get(const void *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return GUINT16_FROM_BE(v);
}
static inline void be64_put(void *p, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    memcpy(p, &v, 8);
}
static inline void be32_put(void *p, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    memcpy(p, &v, 4);
}
static inline void be16_put(void *p, uint16_t v)
{
    v = GUINT16_TO_BE(v);
    memcpy(p, &v, 2);
}

/* ---- qcow2.c ---- */

int coroutine_fn qcow2_update_header(BlockDriverState *bs);
/*
 * Reports metadata corruption.  On a writable image the corrupt bit is set
 * in the header and further writes fail; the message follows QEMU's.
 */
void coroutine_fn qcow2_signal_corruption(BlockDriverState *bs,
                                          const char *fmt, ...)
    QEMU_PRINTF(2, 3);
int coroutine_fn qcow2_mark_clean(BlockDriverState *bs);

/* ---- qcow2-refcount.c ---- */

int coroutine_fn qcow2_refcount_init(BlockDriverState *bs);
void qcow2_refcount_close(BlockDriverState *bs);
int coroutine_fn qcow2_get_refcount(BlockDriverState *bs,
                                    int64_t cluster_index,
                                    uint64_t *refcount);
/*
 * Adds @addend (may be negative) to the refcount of every cluster in
 * [offset, offset + length).  Refcounts that drop to 0 free the cluster
 * and, depending on @type, discard it in the file.
 */
int coroutine_fn qcow2_update_refcount(BlockDriverState *bs, int64_t offset,
                                       int64_t length, int64_t addend,
                                       QCow2DiscardType type);
/*
 * Allocates up to @nb_clusters contiguous clusters (at least one) with
 * refcount 1; returns the host offset and sets *allocated.
 */
int64_t coroutine_fn qcow2_alloc_clusters(BlockDriverState *bs,
                                          int nb_clusters, int *allocated);
/* Allocates exactly @size bytes of clusters (contiguous) or fails. */
int64_t coroutine_fn qcow2_alloc_clusters_exact(BlockDriverState *bs,
                                                int64_t size);
/* Sub-cluster allocation for compressed data. */
int64_t coroutine_fn qcow2_alloc_bytes(BlockDriverState *bs, int size);
void coroutine_fn qcow2_free_clusters(BlockDriverState *bs, int64_t offset,
                                      int64_t size, QCow2DiscardType type);
/* Frees what an L2 entry references (normal or compressed). */
void coroutine_fn qcow2_free_any_cluster(BlockDriverState *bs,
                                         uint64_t l2_entry,
                                         QCow2DiscardType type);
/*
 * Does [offset, offset + size) overlap metadata of a kind not in @ignore
 * (QCOW2_OL_* mask)?  Returns QEMU's name for what it hits, or NULL.
 * Costs a few comparisons plus one hash lookup per cluster of the range.
 */
const char *qcow2_check_metadata_overlap(BlockDriverState *bs, int ignore,
                                         int64_t offset, int64_t size);
/*
 * qcow2_check_metadata_overlap() that also marks the image corrupt
 * ("Preventing invalid write on metadata") and returns -EIO on a hit.
 */
int coroutine_fn qcow2_pre_write_overlap_check(BlockDriverState *bs,
                                               int ignore, int64_t offset,
                                               int64_t size);
void qcow2_metadata_map_invalidate(BDRVQcow2State *s);
int coroutine_fn qcow2_check_refcounts(BlockDriverState *bs,
                                       BdrvCheckResult *res,
                                       BdrvCheckMode fix);
/* Flushes both caches (refcounts first). */
int coroutine_fn qcow2_write_caches(BlockDriverState *bs);
/*
 * Rewrites the refcount table and blocks with entries of 2^@new_order
 * bits (amend refcount_bits=...).  Call with s->lock held.
 */
int coroutine_fn qcow2_change_refcount_order(BlockDriverState *bs,
                                             int new_order, Error **errp);
/* Byte size of refcount structures for @clusters clusters (measure). */
int64_t qcow2_refcount_metadata_size(int64_t clusters, int cluster_size,
                                     int refcount_order);

/* Refcount block entry access for any width. */
uint64_t qcow2_refblock_get(const void *refblock, int refcount_order,
                            uint64_t index);
void qcow2_refblock_set(void *refblock, int refcount_order, uint64_t index,
                        uint64_t value);

/* ---- qcow2-cluster.c ---- */

/*
 * Looks up guest @offset: returns the type of its (sub)cluster and, in
 * *bytes (in: at most, out: how many), the length of the run with the
 * same type (and contiguous host offsets for normal clusters) inside one
 * L2 table.  *host is the host offset of @offset for normal/zero-alloc
 * runs; *l2_entry and *l2_bitmap are the first cluster's entry and
 * subcluster bitmap (0 without extended L2 entries).  With extended L2
 * entries a run goes past the first cluster only through clusters whose
 * subclusters are all alike.
 */
int coroutine_fn qcow2_get_host_offset(BlockDriverState *bs, uint64_t offset,
                                       uint64_t *bytes, uint64_t *host,
                                       uint64_t *l2_entry,
                                       uint64_t *l2_bitmap,
                                       QCow2ClusterType *type);
/* Loads (and makes writable: allocating or copying) the L2 table of @offset. */
int coroutine_fn qcow2_get_l2_for_write(BlockDriverState *bs, uint64_t offset,
                                        uint64_t **l2_table, int *l2_index);
int coroutine_fn qcow2_grow_l1_table(BlockDriverState *bs, uint64_t min_size);
/* Writes L1 entry @l1_index (and its sector neighbours) to disk. */
int coroutine_fn qcow2_write_l1_entry(BlockDriverState *bs, int l1_index);
/*
 * With extended L2 entries: marks subclusters [offset, offset + bytes)
 * of one cluster as reading zeroes (their host space, if any, stays with
 * the cluster).  -ENOTSUP if the cluster is compressed or shared.
 */
int coroutine_fn qcow2_subcluster_zeroize(BlockDriverState *bs,
                                          uint64_t offset, uint64_t bytes);
/* Sets L2 entries of [offset, offset + bytes) (whole clusters) to zero or unallocated. */
int coroutine_fn qcow2_cluster_discard(BlockDriverState *bs, uint64_t offset,
                                       uint64_t bytes, bool full_discard,
                                       QCow2DiscardType type);
int coroutine_fn qcow2_cluster_zeroize(BlockDriverState *bs, uint64_t offset,
                                       uint64_t bytes, bool unmap);
int coroutine_fn qcow2_decompress_cluster(BlockDriverState *bs,
                                          uint64_t l2_entry, uint8_t *out);
/* Waits until no allocating write overlaps the guest range. */
void coroutine_fn qcow2_wait_for_allocs(BlockDriverState *bs, uint64_t offset,
                                        uint64_t bytes);
void qcow2_alloc_track_init(BDRVQcow2State *s);
void qcow2_alloc_track_destroy(BDRVQcow2State *s);
void qcow2_alloc_track_add(BDRVQcow2State *s, QCowL2Meta *m);
void qcow2_alloc_track_remove(BDRVQcow2State *s, QCowL2Meta *m);
/* An in-flight allocation overlapping guest [offset, offset + bytes). */
QCowL2Meta *qcow2_alloc_find_overlap(BDRVQcow2State *s, uint64_t offset,
                                     uint64_t bytes);

/* ---- qcow2-bitmap.c ---- */

/*
 * Parses the bitmaps header extension (validated as QEMU does; ignored
 * with a warning when the autoclear bit says it is stale).
 */
int qcow2_read_bitmaps_ext(BlockDriverState *bs, const uint8_t *data,
                           uint32_t len, Error **errp);
/* Appends the bitmaps extension body (24 bytes) for the header. */
void qcow2_build_bitmaps_ext(BlockDriverState *bs, uint8_t *data);
/*
 * Reads the bitmap directory and creates the node's persistent
 * BdrvDirtyBitmaps (read-only on a read-only node; entries marked in_use
 * become inconsistent).  On a writable node the loaded entries are marked
 * in_use on disk until they are stored again.
 */
int coroutine_fn qcow2_load_dirty_bitmaps(BlockDriverState *bs,
                                          Error **errp);
void qcow2_free_bitmap_dir(BDRVQcow2State *s);
bool qcow2_can_store_new_dirty_bitmap(BlockDriverState *bs, const char *name,
                                      uint32_t granularity, Error **errp);
int qcow2_remove_persistent_dirty_bitmap(BlockDriverState *bs,
                                         const char *name, Error **errp);
int qcow2_store_persistent_dirty_bitmaps(BlockDriverState *bs, Error **errp);
/*
 * Bytes the persistent bitmaps of @in_bs (any format) would take in a
 * qcow2 image with @cluster_size clusters, all clusters allocated
 * (qemu-img measure's "bitmaps size").
 */
uint64_t qcow2_persistent_bitmaps_size(BlockDriverState *in_bs,
                                       uint32_t cluster_size);
/* qemu-img info's "bitmaps" array (NULL when the image has none). */
JsonNode *qcow2_get_bitmap_info_list(BlockDriverState *bs);

/* ---- qcow2-cache.c ---- */

Qcow2Cache *qcow2_cache_create(BlockDriverState *bs, int num_tables,
                               int table_size);
void qcow2_cache_destroy(Qcow2Cache *c);
/*
 * Makes the cache @c write back every dirty entry of @dependency (and
 * flush the file) before it writes any of its own entries.
 */
void qcow2_cache_set_dependency(Qcow2Cache *c, Qcow2Cache *dependency);
/* Loads the table at @offset (pinned until qcow2_cache_put()). */
int coroutine_fn qcow2_cache_get(BlockDriverState *bs, Qcow2Cache *c,
                                 uint64_t offset, void **table);
/* Like qcow2_cache_get() for a new table: contents are not read. */
int coroutine_fn qcow2_cache_get_empty(BlockDriverState *bs, Qcow2Cache *c,
                                       uint64_t offset, void **table);
void qcow2_cache_put(Qcow2Cache *c, void **table);
void qcow2_cache_entry_mark_dirty(Qcow2Cache *c, void *table);
/* Writes every dirty entry (dependency first); no flush of the file. */
int coroutine_fn qcow2_cache_write(BlockDriverState *bs, Qcow2Cache *c);
/* qcow2_cache_write() + flush of the file. */
int coroutine_fn qcow2_cache_flush(BlockDriverState *bs, Qcow2Cache *c);
/* Drops the entry for @offset without writing it (the table was freed). */
void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset);
/* Drops every clean, unpinned entry. */
void qcow2_cache_clean(Qcow2Cache *c);
bool qcow2_cache_is_dirty(Qcow2Cache *c);
/* Selects the L2 blkdebug events for this cache. */
void qcow2_cache_mark_l2(Qcow2Cache *c);

#endif
