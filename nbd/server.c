/*
 * NBD server: fixed-newstyle handshake, exports backed by block nodes,
 * and the transmission phase with many requests in flight per client.
 *
 * Ownership and lifetimes:
 *  - NBDServer owns its listener and lists its exports and clients;
 *    nbd_server_free() waits until every client has gone.
 *  - An NBDExport is reference counted: the server's list holds one
 *    reference until the export is removed, and every client attached to
 *    it (or holding a meta context selection for it) holds one.  The last
 *    reference frees the export's BlockBackend, which drops the node
 *    reference, and then runs the "deleted" callback.
 *  - Each NBDClient is owned by its receive coroutine (nbd_client_co),
 *    which performs the handshake, reads requests and spawns one
 *    coroutine per request.  It frees the client only after every request
 *    coroutine has finished, so request coroutines can use the client
 *    freely.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/iov.h"
#include "qemu/huge-arena.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "block/nbd.h"
#include "nbd-trace.h"

#include <sys/socket.h>

/* Requests a client may have in flight before we stop reading. */
#define NBD_SERVER_MAX_IN_FLIGHT        32
/* Extents one BLOCK_STATUS chunk may carry. */
#define NBD_MAX_BLOCK_STATUS_EXTENTS    (64 * 1024)
/* Context ids given out by NBD_OPT_SET_META_CONTEXT. */
#define NBD_META_ID_BASE_ALLOCATION     1
#define NBD_META_ID_ALLOCATION_DEPTH    2
#define NBD_META_ID_BITMAP_FIRST        3

typedef struct NBDClient NBDClient;

typedef struct NBDMetaBitmap {
    char *context;              /* "qemu:dirty-bitmap:NAME" */
    NBDMetaExtentsFunc *fn;
    void *opaque;
    GDestroyNotify release;
} NBDMetaBitmap;

struct NBDExport {
    NBDServer *srv;
    int refcnt;
    char *name;
    char *description;
    BlockBackend *blk;          /* holds the node reference */
    int64_t size;
    uint16_t nbdflags;
    bool allocation_depth;
    GPtrArray *bitmaps;         /* NBDMetaBitmap * */
    bool removed;
    unsigned n_clients;
    QTAILQ_HEAD(, NBDClient) clients;
    NBDExportDeletedFunc *deleted_cb;
    void *deleted_opaque;
    QTAILQ_ENTRY(NBDExport) next;       /* in srv->exports until removed */
};

/* The meta contexts a client selected, for export @exp. */
typedef struct NBDMetaSelection {
    NBDExport *exp;             /* holds a reference; NULL: none */
    bool base_allocation;
    bool allocation_depth;
    GArray *bitmaps;            /* guint indices into exp->bitmaps */
} NBDMetaSelection;

struct NBDClient {
    NBDServer *srv;
    NBDExport *exp;             /* set when transmission starts */
    QemuCoSocket sock;
    QCryptoTLSSession *tls;     /* layered over sock after STARTTLS */
    QEMUTimer *handshake_timer;
    bool structured_reply;
    bool no_zeroes;
    uint16_t nbdflags;          /* the export's flags as sent to us */
    NBDMetaSelection meta;
    CoMutex send_lock;          /* serialises replies on the socket */
    unsigned in_flight;
    Coroutine *recv_co;
    bool recv_waiting;          /* recv_co waits for in_flight to drop */
    bool closing;
    QTAILQ_ENTRY(NBDClient) srv_next;
    QTAILQ_ENTRY(NBDClient) exp_next;
};

struct NBDServer {
    QemuSocketListener *listener;
    int max_connections;
    int64_t handshake_timeout_ns;
    QCryptoTLSCreds *tls_creds; /* reference; set: clients must use TLS */
    unsigned n_clients;
    QTAILQ_HEAD(, NBDExport) exports;
    QTAILQ_HEAD(, NBDClient) clients;
    NBDClientClosedFunc *closed_cb;
    void *closed_opaque;
};

typedef struct NBDServerRequest {
    NBDClient *client;
    NBDRequest req;
    uint8_t *data;              /* write payload (qemu_blockalign) */
    uint32_t error;             /* non-zero: answer with this error */
} NBDServerRequest;

/* An I/O buffer for @bs, or NULL if memory is short (client-sized). */
static void *nbd_try_blockalign(BlockDriverState *bs, size_t size)
{
    return qemu_try_memalign(MAX(bs->bl.opt_mem_alignment, 4096), size);
}

/*
 * Read buffers of up to NBD_READ_SLOT bytes come from huge pages, shared
 * by every client of every server of the process (all in the main loop):
 * each read is then one segment for the device, and the reads of a
 * sequential client merge into large requests.  On the reference machine
 * that made nbdcopy of a fleecing export 20-30 % faster (see
 * docs/benchmarks.md).  nbdcopy reads 256 KiB at a time; larger reads
 * keep ordinary buffers.  The arena is made on first use and kept: 64 MiB
 * of address space, at most 16 MiB of idle huge pages.
 */
#define NBD_READ_SLOT (256 * KiB)
#define NBD_READ_ARENA_SIZE (64 * MiB)
#define NBD_READ_ARENA_IDLE (16 * MiB)

static HugeArena *nbd_read_arena;
static bool nbd_read_arena_tried;

static void *nbd_read_buf_get(BlockDriverState *bs, size_t size)
{
    void *buf = NULL;

    if (size <= NBD_READ_SLOT) {
        if (!nbd_read_arena_tried) {
            nbd_read_arena_tried = true;
            nbd_read_arena = huge_arena_new(NBD_READ_SLOT, NBD_READ_ARENA_SIZE,
                                            NBD_READ_ARENA_IDLE);
        }
        if (nbd_read_arena) {
            buf = huge_arena_get(nbd_read_arena);
        }
    }
    return buf ? buf : nbd_try_blockalign(bs, size);
}

static void nbd_read_buf_put(void *buf)
{
    if (!huge_arena_put(nbd_read_arena, buf)) {
        qemu_vfree(buf);
    }
}

/* ---- Exports ---------------------------------------------------------- */

static void nbd_export_ref(NBDExport *exp)
{
    exp->refcnt++;
}

static void nbd_export_unref(NBDExport *exp)
{
    assert(exp->refcnt > 0);
    if (--exp->refcnt > 0) {
        return;
    }
    assert(exp->removed && QTAILQ_EMPTY(&exp->clients));
    trace_nbd_export_deleted(exp->name);
    /* Bitmap providers may refer to the node: release them first. */
    g_ptr_array_free(exp->bitmaps, true);
    blk_unref(exp->blk);
    if (exp->deleted_cb) {
        exp->deleted_cb(exp, exp->deleted_opaque);
    }
    g_free(exp->name);
    g_free(exp->description);
    g_free(exp);
}

static void nbd_meta_bitmap_free(gpointer p)
{
    NBDMetaBitmap *bm = p;

    if (bm->release) {
        bm->release(bm->opaque);
    }
    g_free(bm->context);
    g_free(bm);
}

NBDExport *nbd_export_find(NBDServer *srv, const char *name)
{
    NBDExport *exp;

    QTAILQ_FOREACH(exp, &srv->exports, next) {
        if (!strcmp(exp->name, name)) {
            return exp;
        }
    }
    return NULL;
}

NBDExport *nbd_export_next(NBDServer *srv, NBDExport *prev)
{
    return prev ? QTAILQ_NEXT(prev, next) : QTAILQ_FIRST(&srv->exports);
}

const char *nbd_export_get_name(NBDExport *exp)
{
    return exp->name;
}

const char *nbd_export_get_description(NBDExport *exp)
{
    return exp->description;
}

BlockBackend *nbd_export_get_blk(NBDExport *exp)
{
    return exp->blk;
}

unsigned nbd_export_client_count(NBDExport *exp)
{
    return exp->n_clients;
}

NBDExport *nbd_export_new(NBDServer *srv, BlockDriverState *bs,
                          const char *name, const char *description,
                          bool writable, bool allocation_depth,
                          Error **errp)
{
    NBDExport *exp;
    BlockBackend *blk;
    int64_t size;

    name = name ? name : "";
    if (strlen(name) > NBD_MAX_STRING_SIZE) {
        error_setg(errp, "export name '%s' too long", name);
        return NULL;
    }
    if (description && strlen(description) > NBD_MAX_STRING_SIZE) {
        error_setg(errp, "description '%s' too long", description);
        return NULL;
    }
    if (nbd_export_find(srv, name)) {
        error_setg(errp, "NBD server already has export named '%s'", name);
        return NULL;
    }
    if (writable && bdrv_is_read_only(bs)) {
        error_setg(errp, "Cannot export read-only node as writable");
        return NULL;
    }

    blk = blk_new();
    if (blk_insert_bs(blk, bs, errp) < 0) {
        blk_unref(blk);
        return NULL;
    }
    size = blk_getlength(blk);
    if (size < 0) {
        error_setg_errno(errp, -size,
                         "Failed to determine the NBD export's length");
        blk_unref(blk);
        return NULL;
    }

    exp = g_new0(NBDExport, 1);
    exp->srv = srv;
    exp->refcnt = 1;            /* the server's list */
    exp->name = g_strdup(name);
    exp->description = g_strdup(description);
    exp->blk = blk;
    exp->size = size;
    exp->allocation_depth = allocation_depth;
    exp->bitmaps = g_ptr_array_new_with_free_func(nbd_meta_bitmap_free);
    QTAILQ_INIT(&exp->clients);
    exp->nbdflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
                    NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_CACHE;
    if (writable) {
        exp->nbdflags |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
                         NBD_FLAG_SEND_FAST_ZERO;
    } else {
        exp->nbdflags |= NBD_FLAG_READ_ONLY;
    }
    QTAILQ_INSERT_TAIL(&srv->exports, exp, next);
    trace_nbd_export_new(exp->name, bs);
    return exp;
}

bool nbd_export_add_meta_context(NBDExport *exp, const char *bitmap,
                                 NBDMetaExtentsFunc *fn, void *opaque,
                                 GDestroyNotify release, Error **errp)
{
    g_autofree char *context = g_strconcat(NBD_META_DIRTY_BITMAP, bitmap,
                                           NULL);
    NBDMetaBitmap *bm;

    if (strlen(context) > NBD_MAX_STRING_SIZE) {
        error_setg(errp, "Bitmap name '%s' too long", bitmap);
        return false;
    }
    for (guint i = 0; i < exp->bitmaps->len; i++) {
        bm = g_ptr_array_index(exp->bitmaps, i);
        if (!strcmp(bm->context, context)) {
            error_setg(errp, "Bitmap '%s' is already exported", bitmap);
            return false;
        }
    }
    bm = g_new0(NBDMetaBitmap, 1);
    bm->context = g_steal_pointer(&context);
    bm->fn = fn;
    bm->opaque = opaque;
    bm->release = release;
    g_ptr_array_add(exp->bitmaps, bm);
    return true;
}

void nbd_export_set_deleted_cb(NBDExport *exp, NBDExportDeletedFunc *cb,
                               void *opaque)
{
    exp->deleted_cb = cb;
    exp->deleted_opaque = opaque;
}

static void nbd_client_close(NBDClient *client);

int nbd_export_remove(NBDExport *exp, NBDExportRemoveMode mode, Error **errp)
{
    NBDClient *client, *next;

    if (exp->removed) {
        error_setg(errp, "export '%s' is already being removed", exp->name);
        return -EBUSY;
    }
    if (mode == NBD_EXPORT_REMOVE_SAFE && exp->n_clients) {
        error_setg(errp, "export '%s' still in use", exp->name);
        error_append_hint(errp, "Use mode='hard' to force client "
                          "disconnect\n");
        return -EBUSY;
    }
    /* Closing a client may drop the last client reference right away. */
    nbd_export_ref(exp);
    exp->removed = true;
    QTAILQ_REMOVE(&exp->srv->exports, exp, next);
    QTAILQ_FOREACH_SAFE(client, &exp->clients, exp_next, next) {
        nbd_client_close(client);
    }
    nbd_export_unref(exp);      /* the server's list */
    nbd_export_unref(exp);
    return 0;
}

/* ---- Meta contexts ---------------------------------------------------- */

static void nbd_meta_clear(NBDMetaSelection *meta)
{
    if (meta->exp) {
        nbd_export_unref(meta->exp);
    }
    if (meta->bitmaps) {
        g_array_free(meta->bitmaps, true);
    }
    memset(meta, 0, sizeof(*meta));
}

static void nbd_meta_reset(NBDMetaSelection *meta, NBDExport *exp)
{
    nbd_meta_clear(meta);
    nbd_export_ref(exp);
    meta->exp = exp;
    meta->bitmaps = g_array_new(false, false, sizeof(guint));
}

static bool nbd_meta_empty(NBDMetaSelection *meta)
{
    return !meta->base_allocation && !meta->allocation_depth &&
           (!meta->bitmaps || !meta->bitmaps->len);
}

/*
 * Does @query pick context @name?  SET needs the exact name; LIST also
 * accepts a namespace ("base:") or a "qemu:dirty-bitmap:" prefix, and an
 * empty query list (handled by the caller) means everything.
 */
static bool nbd_meta_matches(const char *query, const char *name, bool list)
{
    if (!strcmp(query, name)) {
        return true;
    }
    if (!list) {
        return false;
    }
    if (!strcmp(query, "base:") || !strcmp(query, "qemu:") ||
        !strcmp(query, NBD_META_DIRTY_BITMAP)) {
        return g_str_has_prefix(name, query);
    }
    return false;
}

/* ---- Handshake -------------------------------------------------------- */

/* A cursor over an option's payload. */
typedef struct NBDOptBuf {
    const uint8_t *p;
    uint32_t left;
} NBDOptBuf;

static bool nbd_opt_get16(NBDOptBuf *b, uint16_t *v)
{
    if (b->left < 2) {
        return false;
    }
    *v = nbd_get16(b->p);
    b->p += 2;
    b->left -= 2;
    return true;
}

static bool nbd_opt_get32(NBDOptBuf *b, uint32_t *v)
{
    if (b->left < 4) {
        return false;
    }
    *v = nbd_get32(b->p);
    b->p += 4;
    b->left -= 4;
    return true;
}

/* A length-prefixed string of at most NBD_MAX_STRING_SIZE bytes. */
static bool nbd_opt_get_string(NBDOptBuf *b, char **str)
{
    uint32_t len;

    if (!nbd_opt_get32(b, &len) || len > b->left ||
        len > NBD_MAX_STRING_SIZE) {
        return false;
    }
    *str = g_strndup((const char *)b->p, len);
    b->p += len;
    b->left -= len;
    return true;
}

static int coroutine_fn nbd_send_rep(NBDClient *client, uint32_t opt,
                                     uint32_t type, const void *data,
                                     uint32_t len, Error **errp)
{
    uint8_t hdr[20];
    struct iovec iov[2] = {
        { .iov_base = hdr, .iov_len = sizeof(hdr) },
        { .iov_base = (void *)data, .iov_len = len },
    };

    trace_nbd_server_option_reply(client, opt, type, nbd_rep_lookup(type),
                                  len);
    nbd_put64(hdr, NBD_REP_MAGIC);
    nbd_put32(hdr + 8, opt);
    nbd_put32(hdr + 12, type);
    nbd_put32(hdr + 16, len);
    return qemu_co_sock_writev_all(&client->sock, iov, 2, errp);
}

/* An error reply whose payload is a human-readable message. */
static int coroutine_fn QEMU_PRINTF(5, 6)
nbd_send_rep_err(NBDClient *client, uint32_t opt, uint32_t type,
                 Error **errp, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return nbd_send_rep(client, opt, type, msg, strlen(msg), errp);
}

static int coroutine_fn nbd_send_rep_string(NBDClient *client, uint32_t opt,
                                            uint32_t type, uint16_t info,
                                            const char *str, Error **errp)
{
    size_t len = strlen(str);
    g_autofree uint8_t *buf = g_malloc(2 + len);

    nbd_put16(buf, info);
    memcpy(buf + 2, str, len);
    return nbd_send_rep(client, opt, type, buf, 2 + len, errp);
}

static uint16_t nbd_client_export_flags(NBDClient *client, NBDExport *exp)
{
    uint16_t flags = exp->nbdflags;

    if (client->structured_reply) {
        flags |= NBD_FLAG_SEND_DF;
    }
    /*
     * Nobody writes to a read-only export, so every connection sees the
     * same data; but a server taking one connection cannot serve more.
     */
    if ((flags & NBD_FLAG_READ_ONLY) && client->srv->max_connections != 1) {
        flags |= NBD_FLAG_CAN_MULTI_CONN;
    }
    return flags;
}

static void nbd_client_attach(NBDClient *client, NBDExport *exp)
{
    nbd_export_ref(exp);
    client->exp = exp;
    client->nbdflags = nbd_client_export_flags(client, exp);
    QTAILQ_INSERT_TAIL(&exp->clients, client, exp_next);
    exp->n_clients++;
    /* A selection made for another export does not carry over. */
    if (client->meta.exp != exp) {
        nbd_meta_clear(&client->meta);
    }
}

static int coroutine_fn nbd_opt_list(NBDClient *client, uint32_t len,
                                     Error **errp)
{
    NBDExport *exp;

    if (len) {
        return nbd_send_rep_err(client, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
                                errp, "NBD_OPT_LIST should not have "
                                "length");
    }
    QTAILQ_FOREACH(exp, &client->srv->exports, next) {
        size_t nlen = strlen(exp->name);
        size_t dlen = exp->description ? strlen(exp->description) : 0;
        g_autofree uint8_t *buf = g_malloc(4 + nlen + dlen);

        nbd_put32(buf, nlen);
        memcpy(buf + 4, exp->name, nlen);
        if (dlen) {
            memcpy(buf + 4 + nlen, exp->description, dlen);
        }
        if (nbd_send_rep(client, NBD_OPT_LIST, NBD_REP_SERVER, buf,
                         4 + nlen + dlen, errp) < 0) {
            return -1;
        }
    }
    return nbd_send_rep(client, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0, errp);
}

/*
 * NBD_OPT_INFO and NBD_OPT_GO.  Returns 1 to go on negotiating, 0 when GO
 * succeeded (transmission starts), -1 on a socket error.
 */
static int coroutine_fn nbd_opt_info_go(NBDClient *client, uint32_t opt,
                                        NBDOptBuf *b, Error **errp)
{
    g_autofree char *name = NULL;
    bool want_name = false, want_desc = false, want_size = false;
    uint16_t nreq, req;
    NBDExport *exp;
    uint8_t buf[14];
    uint32_t min_block;

    if (!nbd_opt_get_string(b, &name) || !nbd_opt_get16(b, &nreq) ||
        b->left != nreq * 2u) {
        return nbd_send_rep_err(client, opt, NBD_REP_ERR_INVALID, errp,
                                "request data length mismatch") < 0 ? -1 : 1;
    }
    while (nbd_opt_get16(b, &req)) {
        want_name |= req == NBD_INFO_NAME;
        want_desc |= req == NBD_INFO_DESCRIPTION;
        want_size |= req == NBD_INFO_BLOCK_SIZE;
    }
    exp = nbd_export_find(client->srv, name);
    if (!exp) {
        return nbd_send_rep_err(client, opt, NBD_REP_ERR_UNKNOWN, errp,
                                "export '%s' not present", name) < 0 ? -1 : 1;
    }

    if (want_name &&
        nbd_send_rep_string(client, opt, NBD_REP_INFO, NBD_INFO_NAME,
                            exp->name, errp) < 0) {
        return -1;
    }
    if (want_desc && exp->description &&
        nbd_send_rep_string(client, opt, NBD_REP_INFO, NBD_INFO_DESCRIPTION,
                            exp->description, errp) < 0) {
        return -1;
    }
    /*
     * The block layer handles unaligned requests itself, so byte
     * granularity is offered to clients that do not negotiate sizes.
     */
    min_block = want_size ? blk_bs(exp->blk)->bl.request_alignment : 1;
    min_block = MAX(min_block, 1);
    nbd_put16(buf, NBD_INFO_BLOCK_SIZE);
    nbd_put32(buf + 2, min_block);
    nbd_put32(buf + 6, MAX(4096, min_block));
    nbd_put32(buf + 10, NBD_MAX_BUFFER_SIZE);
    if (nbd_send_rep(client, opt, NBD_REP_INFO, buf, 14, errp) < 0) {
        return -1;
    }
    nbd_put16(buf, NBD_INFO_EXPORT);
    nbd_put64(buf + 2, exp->size);
    nbd_put16(buf + 10, nbd_client_export_flags(client, exp));
    if (nbd_send_rep(client, opt, NBD_REP_INFO, buf, 12, errp) < 0 ||
        nbd_send_rep(client, opt, NBD_REP_ACK, NULL, 0, errp) < 0) {
        return -1;
    }
    if (opt == NBD_OPT_GO) {
        nbd_client_attach(client, exp);
        return 0;
    }
    return 1;
}

static int coroutine_fn nbd_send_meta_context(NBDClient *client,
                                              uint32_t opt, uint32_t id,
                                              const char *name, Error **errp)
{
    size_t len = strlen(name);
    g_autofree uint8_t *buf = g_malloc(4 + len);

    nbd_put32(buf, id);
    memcpy(buf + 4, name, len);
    return nbd_send_rep(client, opt, NBD_REP_META_CONTEXT, buf, 4 + len,
                        errp);
}

/*
 * Answers one query of LIST/SET_META_CONTEXT for @exp (NULL query: list
 * everything).  SET records the selection in client->meta.
 */
static int coroutine_fn nbd_meta_query(NBDClient *client, uint32_t opt,
                                       NBDExport *exp, const char *query,
                                       Error **errp)
{
    bool list = opt == NBD_OPT_LIST_META_CONTEXT;
    NBDMetaSelection *meta = &client->meta;

    if ((!query || nbd_meta_matches(query, NBD_META_BASE_ALLOCATION, list)) &&
        (list || !meta->base_allocation)) {
        meta->base_allocation |= !list;
        if (nbd_send_meta_context(client, opt,
                                  list ? 0 : NBD_META_ID_BASE_ALLOCATION,
                                  NBD_META_BASE_ALLOCATION, errp) < 0) {
            return -1;
        }
    }
    if (exp->allocation_depth &&
        (!query || nbd_meta_matches(query, NBD_META_ALLOCATION_DEPTH,
                                    list)) &&
        (list || !meta->allocation_depth)) {
        meta->allocation_depth |= !list;
        if (nbd_send_meta_context(client, opt,
                                  list ? 0 : NBD_META_ID_ALLOCATION_DEPTH,
                                  NBD_META_ALLOCATION_DEPTH, errp) < 0) {
            return -1;
        }
    }
    for (guint i = 0; i < exp->bitmaps->len; i++) {
        NBDMetaBitmap *bm = g_ptr_array_index(exp->bitmaps, i);
        bool selected = false;

        if (query && !nbd_meta_matches(query, bm->context, list)) {
            continue;
        }
        if (!list) {
            for (guint j = 0; j < meta->bitmaps->len; j++) {
                selected |= g_array_index(meta->bitmaps, guint, j) == i;
            }
            if (selected) {
                continue;
            }
            g_array_append_val(meta->bitmaps, i);
        }
        if (nbd_send_meta_context(client, opt,
                                  list ? 0 : NBD_META_ID_BITMAP_FIRST + i,
                                  bm->context, errp) < 0) {
            return -1;
        }
    }
    return 0;
}

static int coroutine_fn nbd_opt_meta_context(NBDClient *client, uint32_t opt,
                                             NBDOptBuf *b, Error **errp)
{
    g_autofree char *name = NULL;
    g_autoptr(GPtrArray) queries = g_ptr_array_new_with_free_func(g_free);
    uint32_t nq;
    NBDExport *exp;

    if (!client->structured_reply) {
        return nbd_send_rep_err(client, opt, NBD_REP_ERR_INVALID, errp,
                                "request requires structured replies "
                                "first");
    }
    if (!nbd_opt_get_string(b, &name) || !nbd_opt_get32(b, &nq)) {
        goto invalid;
    }
    for (uint32_t i = 0; i < nq; i++) {
        char *query;

        if (!nbd_opt_get_string(b, &query)) {
            goto invalid;
        }
        g_ptr_array_add(queries, query);
    }
    if (b->left) {
        goto invalid;
    }
    exp = nbd_export_find(client->srv, name);
    if (!exp) {
        return nbd_send_rep_err(client, opt, NBD_REP_ERR_UNKNOWN, errp,
                                "export '%s' not present", name);
    }
    if (opt == NBD_OPT_SET_META_CONTEXT) {
        nbd_meta_reset(&client->meta, exp);
    } else if (!nq &&
               nbd_meta_query(client, opt, exp, NULL, errp) < 0) {
        return -1;
    }
    for (guint i = 0; i < queries->len; i++) {
        if (nbd_meta_query(client, opt, exp, queries->pdata[i], errp) < 0) {
            return -1;
        }
    }
    return nbd_send_rep(client, opt, NBD_REP_ACK, NULL, 0, errp);

invalid:
    return nbd_send_rep_err(client, opt, NBD_REP_ERR_INVALID, errp,
                            "request data length mismatch");
}

/* NBD_OPT_EXPORT_NAME: 0 when transmission starts, -1 to disconnect. */
static int coroutine_fn nbd_opt_export_name(NBDClient *client,
                                            const uint8_t *data,
                                            uint32_t len, Error **errp)
{
    g_autofree char *name = NULL;
    uint8_t buf[10 + 124] = { 0 };
    NBDExport *exp;

    if (len > NBD_MAX_STRING_SIZE) {
        error_setg(errp, "Bad length received");
        return -1;
    }
    name = g_strndup((const char *)data, len);
    exp = nbd_export_find(client->srv, name);
    if (!exp) {
        /* This option has no error reply: the spec says to disconnect. */
        error_setg(errp, "export not found");
        return -1;
    }
    nbd_put64(buf, exp->size);
    nbd_put16(buf + 8, nbd_client_export_flags(client, exp));
    if (qemu_co_sock_write_all(&client->sock, buf,
                               client->no_zeroes ? 10 : sizeof(buf),
                               errp) < 0) {
        return -1;
    }
    nbd_client_attach(client, exp);
    return 0;
}

/*
 * NBD_OPT_STARTTLS: acknowledges, runs the TLS handshake and layers the
 * session over the socket.  1 to continue negotiating, -1 to disconnect.
 */
static int coroutine_fn nbd_opt_starttls(NBDClient *client, uint32_t len,
                                         Error **errp)
{
    g_autoptr(QCryptoTLSSession) sess = NULL;

    if (!client->srv->tls_creds) {
        return nbd_send_rep_err(client, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY,
                                errp, "TLS not configured") < 0 ? -1 : 1;
    }
    if (client->tls) {
        return nbd_send_rep_err(client, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                                errp, "TLS already enabled") < 0 ? -1 : 1;
    }
    if (len) {
        return nbd_send_rep_err(client, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                                errp, "OPT_STARTTLS should not have "
                                "length") < 0 ? -1 : 1;
    }
    sess = qcrypto_tls_session_new(client->srv->tls_creds, NULL, errp);
    if (!sess ||
        nbd_send_rep(client, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0,
                     errp) < 0 ||
        qcrypto_tls_session_handshake(sess, &client->sock, errp) < 0) {
        return -1;
    }
    trace_nbd_server_starttls(client);
    client->tls = g_steal_pointer(&sess);
    /* Nothing negotiated in plain text carries over into TLS. */
    client->structured_reply = false;
    return 1;
}

/*
 * Handles one option.  Returns 1 to continue negotiating, 0 when
 * transmission starts, -1 to disconnect.
 */
static int coroutine_fn nbd_handle_option(NBDClient *client, uint32_t opt,
                                          const uint8_t *data, uint32_t len,
                                          Error **errp)
{
    NBDOptBuf b = { .p = data, .left = len };

    if (client->srv->tls_creds && !client->tls) {
        /* Before TLS only STARTTLS and ABORT are served. */
        switch (opt) {
        case NBD_OPT_STARTTLS:
        case NBD_OPT_ABORT:
            break;
        case NBD_OPT_EXPORT_NAME:
            /* No error reply exists for it: the spec says to disconnect. */
            error_setg(errp, "Option 0x%" PRIx32 " not permitted before TLS",
                       opt);
            return -1;
        default:
            return nbd_send_rep_err(client, opt, NBD_REP_ERR_TLS_REQD, errp,
                                    "Option 0x%" PRIx32 " not permitted "
                                    "before TLS", opt) < 0 ? -1 : 1;
        }
    }
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        return nbd_opt_export_name(client, data, len, errp);
    case NBD_OPT_ABORT:
        /* Best effort: the client may already be gone. */
        nbd_send_rep(client, opt, NBD_REP_ACK, NULL, 0, NULL);
        return -1;
    case NBD_OPT_LIST:
        return nbd_opt_list(client, len, errp) < 0 ? -1 : 1;
    case NBD_OPT_STARTTLS:
        return nbd_opt_starttls(client, len, errp);
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        return nbd_opt_info_go(client, opt, &b, errp);
    case NBD_OPT_STRUCTURED_REPLY:
        if (len) {
            return nbd_send_rep_err(client, opt, NBD_REP_ERR_INVALID, errp,
                                    "NBD_OPT_STRUCTURED_REPLY should not "
                                    "have length") < 0 ? -1 : 1;
        }
        if (client->structured_reply) {
            return nbd_send_rep_err(client, opt, NBD_REP_ERR_INVALID, errp,
                                    "structured reply already "
                                    "negotiated") < 0 ? -1 : 1;
        }
        client->structured_reply = true;
        return nbd_send_rep(client, opt, NBD_REP_ACK, NULL, 0,
                            errp) < 0 ? -1 : 1;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
        return nbd_opt_meta_context(client, opt, &b, errp) < 0 ? -1 : 1;
    default:
        return nbd_send_rep_err(client, opt, NBD_REP_ERR_UNSUP, errp,
                                "Unsupported option %" PRIu32 " (%s)", opt,
                                nbd_opt_lookup(opt)) < 0 ? -1 : 1;
    }
}

/* Runs the handshake; 0 when transmission starts, -1 to disconnect. */
static int coroutine_fn nbd_negotiate(NBDClient *client, Error **errp)
{
    uint8_t greeting[18];
    uint8_t cflags_buf[4];
    uint32_t cflags;
    bool fixed;

    nbd_put64(greeting, NBD_INIT_MAGIC);
    nbd_put64(greeting + 8, NBD_OPTS_MAGIC);
    nbd_put16(greeting + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    if (qemu_co_sock_write_all(&client->sock, greeting, sizeof(greeting),
                               errp) < 0 ||
        qemu_co_sock_read_all(&client->sock, cflags_buf, 4, errp) < 0) {
        return -1;
    }
    cflags = nbd_get32(cflags_buf);
    if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
        error_setg(errp, "Unknown client flags 0x%" PRIx32 " received",
                   cflags);
        return -1;
    }
    fixed = cflags & NBD_FLAG_C_FIXED_NEWSTYLE;
    client->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

    for (;;) {
        uint8_t hdr[16];
        g_autofree uint8_t *data = NULL;
        uint32_t opt, len;
        int ret;

        if (qemu_co_sock_read_all(&client->sock, hdr, sizeof(hdr),
                                  errp) < 0) {
            return -1;
        }
        if (nbd_get64(hdr) != NBD_OPTS_MAGIC) {
            error_setg(errp, "Bad option magic received");
            return -1;
        }
        opt = nbd_get32(hdr + 8);
        len = nbd_get32(hdr + 12);
        trace_nbd_server_option(client, opt, nbd_opt_lookup(opt), len);
        if (len > NBD_MAX_OPTION_SIZE) {
            error_setg(errp, "Option %" PRIu32 " payload of %" PRIu32
                       " bytes is too large", opt, len);
            return -1;
        }
        data = g_malloc(len ? len : 1);
        if (qemu_co_sock_read_all(&client->sock, data, len, errp) < 0) {
            return -1;
        }
        if (!fixed && opt != NBD_OPT_EXPORT_NAME) {
            /* Old clients cannot parse option replies. */
            error_setg(errp, "Unsupported option %" PRIu32 " from a client "
                       "without fixed newstyle", opt);
            return -1;
        }
        ret = nbd_handle_option(client, opt, data, len, errp);
        if (ret <= 0) {
            return ret;
        }
    }
}

/* ---- Transmission: replies -------------------------------------------- */

/*
 * Sends one reply (made of one or more chunks) atomically.  A failure
 * shuts the connection down, which ends the receive loop.
 */
static int coroutine_fn nbd_co_send_iov(NBDClient *client,
                                        const struct iovec *iov, int niov)
{
    Error *local_err = NULL;
    int ret;

    qemu_co_mutex_lock(&client->send_lock);
    ret = qemu_co_sock_writev_all(&client->sock, iov, niov, &local_err);
    qemu_co_mutex_unlock(&client->send_lock);
    if (ret < 0) {
        error_free(local_err);
        client->closing = true;
        qemu_co_sock_shutdown(&client->sock);
    }
    return ret;
}

static int coroutine_fn nbd_co_send_simple_reply(NBDClient *client,
                                                 uint64_t cookie,
                                                 uint32_t nbd_err,
                                                 void *data, size_t len)
{
    uint8_t hdr[NBD_SIMPLE_REPLY_SIZE];
    struct iovec iov[2] = {
        { .iov_base = hdr, .iov_len = sizeof(hdr) },
        { .iov_base = data, .iov_len = len },
    };

    trace_nbd_server_reply(client, cookie, nbd_err, nbd_err_lookup(nbd_err));
    nbd_encode_simple_reply(hdr, nbd_err, cookie);
    return nbd_co_send_iov(client, iov, 2);
}

static int coroutine_fn nbd_co_send_chunk_error(NBDClient *client,
                                                uint64_t cookie,
                                                uint32_t nbd_err)
{
    const char *msg = strerror(nbd_errno_to_system_errno(nbd_err));
    size_t mlen = strlen(msg);
    uint8_t hdr[NBD_STRUCTURED_REPLY_SIZE + 6];
    struct iovec iov[2] = {
        { .iov_base = hdr, .iov_len = sizeof(hdr) },
        { .iov_base = (void *)msg, .iov_len = mlen },
    };

    trace_nbd_server_reply(client, cookie, nbd_err, nbd_err_lookup(nbd_err));
    nbd_encode_chunk_header(hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR,
                            cookie, 6 + mlen);
    nbd_put32(hdr + NBD_STRUCTURED_REPLY_SIZE, nbd_err);
    nbd_put16(hdr + NBD_STRUCTURED_REPLY_SIZE + 4, mlen);
    return nbd_co_send_iov(client, iov, 2);
}

/*
 * Replies to a request that carries no data: success or @ret (-errno).
 * Structured errors are used where simple replies cannot carry them
 * (reads and block status with structured replies negotiated).
 */
static int coroutine_fn nbd_co_send_result(NBDClient *client,
                                           const NBDRequest *req, int ret)
{
    uint32_t nbd_err = ret < 0 ? system_errno_to_nbd_errno(-ret) : 0;

    if (nbd_err && client->structured_reply &&
        (req->type == NBD_CMD_READ || req->type == NBD_CMD_BLOCK_STATUS)) {
        return nbd_co_send_chunk_error(client, req->cookie, nbd_err);
    }
    if (!nbd_err && client->structured_reply && req->type == NBD_CMD_READ) {
        uint8_t hdr[NBD_STRUCTURED_REPLY_SIZE];
        struct iovec iov = { .iov_base = hdr, .iov_len = sizeof(hdr) };

        nbd_encode_chunk_header(hdr, NBD_REPLY_FLAG_DONE,
                                NBD_REPLY_TYPE_NONE, req->cookie, 0);
        return nbd_co_send_iov(client, &iov, 1);
    }
    return nbd_co_send_simple_reply(client, req->cookie, nbd_err, NULL, 0);
}

/* ---- Transmission: commands ------------------------------------------- */

typedef struct NBDReadExtent {
    int64_t offset;
    int64_t len;
    bool hole;
} NBDReadExtent;

/*
 * Splits [offset, offset + len) into data and hole (reads-as-zero) runs
 * by block status.  Status errors make the rest one data run.
 */
static GArray *coroutine_fn nbd_read_extents(BlockDriverState *bs,
                                             int64_t offset, int64_t len)
{
    GArray *ext = g_array_new(false, false, sizeof(NBDReadExtent));
    int64_t end = offset + len;
    int64_t pos = offset;

    while (pos < end) {
        int64_t pnum = 0, map;
        BlockDriverState *file;
        int ret = bdrv_co_block_status_above(bs, NULL, pos, end - pos, &pnum,
                                             &map, &file, NULL);
        bool hole = ret >= 0 && (ret & BDRV_BLOCK_ZERO);
        NBDReadExtent *last = ext->len ?
            &g_array_index(ext, NBDReadExtent, ext->len - 1) : NULL;

        if (ret < 0 || pnum <= 0) {
            hole = false;
            pnum = end - pos;
        }
        pnum = MIN(pnum, end - pos);
        if (last && last->hole == hole) {
            last->len += pnum;
        } else {
            NBDReadExtent e = { .offset = pos, .len = pnum, .hole = hole };
            g_array_append_val(ext, e);
        }
        pos += pnum;
    }
    return ext;
}

/*
 * A read answered with OFFSET_DATA and OFFSET_HOLE chunks: holes cost no
 * bandwidth, and data is read straight into the buffer that is sent.
 */
static int coroutine_fn nbd_co_read_sparse(NBDClient *client,
                                           const NBDRequest *req,
                                           uint8_t *buf)
{
    BlockBackend *blk = client->exp->blk;
    g_autoptr(GArray) ext = nbd_read_extents(blk_bs(blk), req->offset,
                                             req->len);
    g_autofree uint8_t *hdrs = g_malloc(ext->len * 32);
    g_autofree struct iovec *iov = g_new(struct iovec, ext->len * 2);
    int niov = 0;

    for (guint i = 0; i < ext->len; i++) {
        NBDReadExtent *e = &g_array_index(ext, NBDReadExtent, i);
        uint16_t flags = i == ext->len - 1 ? NBD_REPLY_FLAG_DONE : 0;
        uint8_t *h = hdrs + i * 32;
        uint8_t *data = buf + (e->offset - req->offset);

        if (e->hole) {
            nbd_encode_chunk_header(h, flags, NBD_REPLY_TYPE_OFFSET_HOLE,
                                    req->cookie, 12);
            nbd_put64(h + 20, e->offset);
            nbd_put32(h + 28, e->len);
            iov[niov++] = (struct iovec) { .iov_base = h, .iov_len = 32 };
            continue;
        }
        int ret = blk_co_pread(blk, e->offset, e->len, data, 0);
        if (ret < 0) {
            return nbd_co_send_result(client, req, ret);
        }
        nbd_encode_chunk_header(h, flags, NBD_REPLY_TYPE_OFFSET_DATA,
                                req->cookie, 8 + e->len);
        nbd_put64(h + 20, e->offset);
        iov[niov++] = (struct iovec) { .iov_base = h, .iov_len = 28 };
        iov[niov++] = (struct iovec) { .iov_base = data, .iov_len = e->len };
    }
    trace_nbd_server_reply(client, req->cookie, 0, "success");
    return nbd_co_send_iov(client, iov, niov);
}

static int coroutine_fn nbd_co_read(NBDClient *client, const NBDRequest *req)
{
    BlockBackend *blk = client->exp->blk;
    uint8_t *buf;
    int ret;

    if (!req->len) {
        return nbd_co_send_result(client, req, 0);
    }
    buf = nbd_read_buf_get(blk_bs(blk), req->len);
    if (!buf) {
        return nbd_co_send_result(client, req, -ENOMEM);
    }
    if (client->structured_reply && !(req->flags & NBD_CMD_FLAG_DF)) {
        ret = nbd_co_read_sparse(client, req, buf);
    } else {
        ret = blk_co_pread(blk, req->offset, req->len, buf, 0);
        if (ret < 0) {
            ret = nbd_co_send_result(client, req, ret);
        } else if (client->structured_reply) {
            uint8_t hdr[NBD_STRUCTURED_REPLY_SIZE + 8];
            struct iovec iov[2] = {
                { .iov_base = hdr, .iov_len = sizeof(hdr) },
                { .iov_base = buf, .iov_len = req->len },
            };

            nbd_encode_chunk_header(hdr, NBD_REPLY_FLAG_DONE,
                                    NBD_REPLY_TYPE_OFFSET_DATA, req->cookie,
                                    8 + req->len);
            nbd_put64(hdr + NBD_STRUCTURED_REPLY_SIZE, req->offset);
            trace_nbd_server_reply(client, req->cookie, 0, "success");
            ret = nbd_co_send_iov(client, iov, 2);
        } else {
            ret = nbd_co_send_simple_reply(client, req->cookie, 0, buf,
                                           req->len);
        }
    }
    nbd_read_buf_put(buf);
    return ret;
}

/* Extents of one meta context, as (length, flags) pairs. */
typedef struct NBDExtents {
    GArray *pairs;              /* uint32_t length, flags; host order */
    unsigned max;
} NBDExtents;

/* Appends a run, merging with the previous one when the flags match. */
static bool nbd_extents_add(NBDExtents *ex, uint64_t len, uint32_t flags)
{
    guint n = ex->pairs->len;

    if (n && g_array_index(ex->pairs, uint32_t, n - 1) == flags) {
        g_array_index(ex->pairs, uint32_t, n - 2) += len;
        return true;
    }
    if (n / 2 >= ex->max) {
        return false;
    }
    uint32_t pair[2] = { len, flags };
    g_array_append_vals(ex->pairs, pair, 2);
    return true;
}

/* Which layer defines each run: 0 none, 1 the top node, 2 its backing... */
static int coroutine_fn nbd_alloc_depth(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, int64_t *pnum,
                                        uint32_t *depth)
{
    uint32_t d = 1;

    *pnum = bytes;
    for (BlockDriverState *p = bdrv_skip_filters(bs); p;
         p = bdrv_backing_bs(p), d++) {
        int64_t n = 0, map;
        BlockDriverState *file;
        int ret;

        p = bdrv_skip_filters(p);
        ret = bdrv_co_block_status(p, offset, *pnum, &n, &map, &file);
        if (ret < 0) {
            return ret;
        }
        if (n <= 0) {
            break;
        }
        *pnum = n;
        if (ret & BDRV_BLOCK_ALLOCATED) {
            *depth = d;
            return 0;
        }
    }
    *depth = 0;
    return 0;
}

static int coroutine_fn nbd_meta_extents(NBDClient *client, uint32_t id,
                                         int64_t offset, int64_t len,
                                         NBDExtents *ex)
{
    BlockDriverState *bs = blk_bs(client->exp->blk);
    int64_t end = offset + len;

    while (offset < end) {
        int64_t pnum = 0, map;
        BlockDriverState *file;
        uint32_t flags;
        int ret;

        if (id == NBD_META_ID_BASE_ALLOCATION) {
            ret = bdrv_co_block_status_above(bs, NULL, offset, end - offset,
                                             &pnum, &map, &file, NULL);
            flags = ret < 0 ? 0 :
                    ((ret & BDRV_BLOCK_DATA) ? 0 : NBD_STATE_HOLE) |
                    ((ret & BDRV_BLOCK_ZERO) ? NBD_STATE_ZERO : 0);
        } else if (id == NBD_META_ID_ALLOCATION_DEPTH) {
            ret = nbd_alloc_depth(bs, offset, end - offset, &pnum, &flags);
        } else {
            NBDMetaBitmap *bm = g_ptr_array_index(client->exp->bitmaps,
                                                  id - NBD_META_ID_BITMAP_FIRST);
            ret = bm->fn(bm->opaque, offset, end - offset, &pnum, &flags);
        }
        if (ret < 0) {
            return ret;
        }
        if (pnum <= 0) {
            /* Past the node's end (it shrank): nothing more to say. */
            break;
        }
        pnum = MIN(pnum, end - offset);
        if (!nbd_extents_add(ex, pnum, flags)) {
            break;
        }
        offset += pnum;
    }
    return ex->pairs->len ? 0 : -EIO;
}

static int coroutine_fn nbd_co_block_status(NBDClient *client,
                                            const NBDRequest *req)
{
    NBDMetaSelection *meta = &client->meta;
    g_autoptr(GArray) ids = g_array_new(false, false, sizeof(uint32_t));
    g_autoptr(GPtrArray) payloads = g_ptr_array_new_with_free_func(g_free);
    g_autofree uint8_t *hdrs = NULL;
    g_autofree struct iovec *iov = NULL;
    uint32_t id;

    if (meta->base_allocation) {
        id = NBD_META_ID_BASE_ALLOCATION;
        g_array_append_val(ids, id);
    }
    if (meta->allocation_depth) {
        id = NBD_META_ID_ALLOCATION_DEPTH;
        g_array_append_val(ids, id);
    }
    for (guint i = 0; meta->bitmaps && i < meta->bitmaps->len; i++) {
        id = NBD_META_ID_BITMAP_FIRST + g_array_index(meta->bitmaps, guint, i);
        g_array_append_val(ids, id);
    }

    hdrs = g_malloc(ids->len * NBD_STRUCTURED_REPLY_SIZE);
    iov = g_new(struct iovec, ids->len * 2);
    for (guint i = 0; i < ids->len; i++) {
        NBDExtents ex = {
            .pairs = g_array_new(false, false, sizeof(uint32_t)),
            .max = (req->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 :
                   NBD_MAX_BLOCK_STATUS_EXTENTS,
        };
        uint8_t *h = hdrs + i * NBD_STRUCTURED_REPLY_SIZE;
        uint8_t *payload;
        int ret;

        id = g_array_index(ids, uint32_t, i);
        ret = nbd_meta_extents(client, id, req->offset, req->len, &ex);
        if (ret < 0) {
            g_array_free(ex.pairs, true);
            return nbd_co_send_result(client, req, ret);
        }
        payload = g_malloc(4 + ex.pairs->len * 4);
        nbd_put32(payload, id);
        for (guint j = 0; j < ex.pairs->len; j++) {
            nbd_put32(payload + 4 + j * 4,
                      g_array_index(ex.pairs, uint32_t, j));
        }
        g_ptr_array_add(payloads, payload);
        nbd_encode_chunk_header(h, i == ids->len - 1 ? NBD_REPLY_FLAG_DONE : 0,
                                NBD_REPLY_TYPE_BLOCK_STATUS, req->cookie,
                                4 + ex.pairs->len * 4);
        iov[2 * i] = (struct iovec) {
            .iov_base = h, .iov_len = NBD_STRUCTURED_REPLY_SIZE,
        };
        iov[2 * i + 1] = (struct iovec) {
            .iov_base = payload, .iov_len = 4 + ex.pairs->len * 4,
        };
        g_array_free(ex.pairs, true);
    }
    trace_nbd_server_reply(client, req->cookie, 0, "success");
    return nbd_co_send_iov(client, iov, ids->len * 2);
}

static int coroutine_fn nbd_co_execute(NBDClient *client, NBDServerRequest *r)
{
    const NBDRequest *req = &r->req;
    BlockBackend *blk = client->exp->blk;
    BdrvRequestFlags flags = 0;
    int ret;

    if (req->flags & NBD_CMD_FLAG_FUA) {
        flags |= BDRV_REQ_FUA;
    }
    switch (req->type) {
    case NBD_CMD_READ:
        return nbd_co_read(client, req);
    case NBD_CMD_BLOCK_STATUS:
        return nbd_co_block_status(client, req);
    case NBD_CMD_WRITE:
        ret = blk_co_pwrite(blk, req->offset, req->len, r->data, flags);
        break;
    case NBD_CMD_WRITE_ZEROES:
        if (!(req->flags & NBD_CMD_FLAG_NO_HOLE)) {
            flags |= BDRV_REQ_MAY_UNMAP;
        }
        if (req->flags & NBD_CMD_FLAG_FAST_ZERO) {
            flags |= BDRV_REQ_NO_FALLBACK;
        }
        ret = blk_co_pwrite_zeroes(blk, req->offset, req->len, flags);
        break;
    case NBD_CMD_TRIM:
        ret = blk_co_pdiscard(blk, req->offset, req->len);
        if (ret == 0 && (req->flags & NBD_CMD_FLAG_FUA)) {
            ret = blk_co_flush(blk);
        }
        break;
    case NBD_CMD_FLUSH:
        ret = blk_co_flush(blk);
        break;
    case NBD_CMD_CACHE:
        /* Advisory; there is no cache in front of the node to fill. */
        ret = 0;
        break;
    default:
        ret = -EINVAL;
        break;
    }
    return nbd_co_send_result(client, req, ret);
}

static void coroutine_fn nbd_request_co(void *opaque)
{
    NBDServerRequest *r = opaque;
    NBDClient *client = r->client;

    if (r->error) {
        nbd_co_send_result(client, &r->req,
                           -nbd_errno_to_system_errno(r->error));
    } else {
        nbd_co_execute(client, r);
    }
    qemu_vfree(r->data);
    g_free(r);
    client->in_flight--;
    if (client->recv_waiting) {
        client->recv_waiting = false;
        aio_co_wake(client->recv_co);
    }
}

/*
 * Validates a request header.  Returns the NBD error to answer with (0:
 * execute it), or -1 if the connection must be dropped because the
 * request cannot be skipped safely.
 */
static int nbd_check_request(NBDClient *client, const NBDRequest *req,
                             Error **errp)
{
    NBDExport *exp = client->exp;
    uint16_t allowed = 0;
    bool write = false;

    switch (req->type) {
    case NBD_CMD_READ:
        allowed = client->structured_reply ? NBD_CMD_FLAG_DF : 0;
        if (req->len > NBD_MAX_BUFFER_SIZE) {
            return (req->flags & NBD_CMD_FLAG_DF) ? NBD_EOVERFLOW :
                                                    NBD_EINVAL;
        }
        break;
    case NBD_CMD_WRITE:
        if (req->len > NBD_MAX_BUFFER_SIZE) {
            error_setg(errp, "len (%" PRIu32 ") is larger than max len "
                       "(%u)", req->len, NBD_MAX_BUFFER_SIZE);
            return -1;
        }
        allowed = NBD_CMD_FLAG_FUA;
        write = true;
        break;
    case NBD_CMD_WRITE_ZEROES:
        allowed = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
                  NBD_CMD_FLAG_FAST_ZERO;
        write = true;
        break;
    case NBD_CMD_TRIM:
        allowed = NBD_CMD_FLAG_FUA;
        write = true;
        break;
    case NBD_CMD_FLUSH:
        return req->flags ? NBD_EINVAL : 0;
    case NBD_CMD_CACHE:
        break;
    case NBD_CMD_BLOCK_STATUS:
        if (nbd_meta_empty(&client->meta) || !req->len) {
            return NBD_EINVAL;
        }
        allowed = NBD_CMD_FLAG_REQ_ONE;
        break;
    default:
        return NBD_EINVAL;
    }
    if (req->flags & ~allowed) {
        return NBD_EINVAL;
    }
    if (write && (exp->nbdflags & NBD_FLAG_READ_ONLY)) {
        return NBD_EPERM;
    }
    if (req->offset > (uint64_t)exp->size ||
        req->len > (uint64_t)exp->size - req->offset) {
        return req->type == NBD_CMD_WRITE ||
               req->type == NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
    }
    return 0;
}

/* ---- Clients -------------------------------------------------------- */

static void nbd_client_handshake_timeout(void *opaque)
{
    NBDClient *client = opaque;

    trace_nbd_server_handshake_timeout(client);
    nbd_client_close(client);
}

/* Makes the receive coroutine stop; it tears the connection down. */
static void nbd_client_close(NBDClient *client)
{
    client->closing = true;
    qemu_co_sock_shutdown(&client->sock);
}

/* Waits (in the receive coroutine) until fewer than @max are in flight. */
static void coroutine_fn nbd_client_wait_in_flight(NBDClient *client,
                                                   unsigned max)
{
    while (client->in_flight > max) {
        client->recv_waiting = true;
        qemu_coroutine_yield();
    }
}

/* Reads and dispatches requests until disconnect or error. */
static void coroutine_fn nbd_client_transmission(NBDClient *client)
{
    BlockDriverState *bs = blk_bs(client->exp->blk);

    while (!client->closing) {
        uint8_t hdr[NBD_REQUEST_SIZE];
        Error *local_err = NULL;
        NBDServerRequest *r;
        NBDRequest req;
        int err;

        nbd_client_wait_in_flight(client, NBD_SERVER_MAX_IN_FLIGHT - 1);
        if (client->closing ||
            qemu_co_sock_read_all_eof(&client->sock, hdr, sizeof(hdr),
                                      &local_err) <= 0) {
            error_free(local_err);
            break;
        }
        if (!nbd_decode_request(hdr, &req)) {
            break;
        }
        trace_nbd_server_request(client, req.cookie, nbd_cmd_lookup(req.type),
                                 req.flags, req.offset, req.len);
        if (req.type == NBD_CMD_DISC) {
            break;
        }
        err = nbd_check_request(client, &req, &local_err);
        if (err < 0) {
            error_free(local_err);
            break;
        }
        r = g_new0(NBDServerRequest, 1);
        r->client = client;
        r->req = req;
        r->error = err;
        if (req.type == NBD_CMD_WRITE && req.len) {
            /* The payload is consumed even when the request will fail. */
            r->data = nbd_try_blockalign(bs, req.len);
            if (!r->data ||
                qemu_co_sock_read_all(&client->sock, r->data, req.len,
                                      &local_err) < 0) {
                error_free(local_err);
                qemu_vfree(r->data);
                g_free(r);
                break;
            }
        }
        client->in_flight++;
        qemu_coroutine_enter(qemu_coroutine_create(nbd_request_co, r));
    }
}

static void nbd_client_free(NBDClient *client)
{
    NBDServer *srv = client->srv;

    timer_free(client->handshake_timer);
    qemu_co_sock_close(&client->sock);
    qcrypto_tls_session_free(client->tls);
    nbd_meta_clear(&client->meta);
    QTAILQ_REMOVE(&srv->clients, client, srv_next);
    srv->n_clients--;
    if (srv->listener) {
        qemu_socket_listener_set_paused(srv->listener,
                                        srv->max_connections > 0 &&
                                        srv->n_clients >=
                                        srv->max_connections);
    }
    if (client->exp) {
        NBDExport *exp = client->exp;

        QTAILQ_REMOVE(&exp->clients, client, exp_next);
        exp->n_clients--;
        nbd_export_unref(exp);
    }
    trace_nbd_server_client_closed(client);
    g_free(client);
    if (srv->closed_cb) {
        srv->closed_cb(srv->closed_opaque);
    }
}

static void coroutine_fn nbd_client_co(void *opaque)
{
    NBDClient *client = opaque;
    Error *local_err = NULL;

    timer_mod_ns(client->handshake_timer,
                 qemu_clock_get_ns() + client->srv->handshake_timeout_ns);
    if (nbd_negotiate(client, &local_err) == 0) {
        timer_del(client->handshake_timer);
        nbd_client_transmission(client);
    }
    error_free(local_err);

    /* In-flight requests still reply (NBD_CMD_DISC waits for them). */
    timer_del(client->handshake_timer);
    nbd_client_wait_in_flight(client, 0);
    qemu_co_sock_shutdown(&client->sock);
    nbd_client_free(client);
}

void nbd_server_add_client(NBDServer *srv, int fd)
{
    NBDClient *client = g_new0(NBDClient, 1);

    client->srv = srv;
    qemu_co_sock_init(&client->sock, fd);
    qemu_co_mutex_init(&client->send_lock);
    client->handshake_timer = aio_timer_new(qemu_get_aio_context(),
                                            nbd_client_handshake_timeout,
                                            client);
    QTAILQ_INSERT_TAIL(&srv->clients, client, srv_next);
    srv->n_clients++;
    if (srv->listener && srv->max_connections > 0 &&
        srv->n_clients >= srv->max_connections) {
        qemu_socket_listener_set_paused(srv->listener, true);
    }
    trace_nbd_server_client_new(client);
    client->recv_co = qemu_coroutine_create(nbd_client_co, client);
    aio_co_schedule(qemu_get_aio_context(), client->recv_co);
}

/* ---- Server --------------------------------------------------------- */

static void nbd_server_accept(int fd, void *opaque)
{
    nbd_server_add_client(opaque, fd);
}

NBDServer *nbd_server_new(const SocketAddress *addr, int max_connections,
                          Error **errp)
{
    NBDServer *srv = g_new0(NBDServer, 1);

    srv->max_connections = max_connections;
    srv->handshake_timeout_ns = NBD_DEFAULT_HANDSHAKE_TIMEOUT_NS;
    QTAILQ_INIT(&srv->exports);
    QTAILQ_INIT(&srv->clients);
    if (addr) {
        srv->listener = qemu_socket_listener_new(addr, SOMAXCONN,
                                                 nbd_server_accept, srv,
                                                 errp);
        if (!srv->listener) {
            g_free(srv);
            return NULL;
        }
    }
    return srv;
}

void nbd_server_set_handshake_timeout(NBDServer *srv, int64_t ns)
{
    srv->handshake_timeout_ns = ns;
}

void nbd_server_set_tls_creds(NBDServer *srv, QCryptoTLSCreds *creds)
{
    qcrypto_tls_creds_unref(srv->tls_creds);
    srv->tls_creds = creds ? qcrypto_tls_creds_ref(creds) : NULL;
}

void nbd_server_set_client_closed_cb(NBDServer *srv, NBDClientClosedFunc *cb,
                                     void *opaque)
{
    srv->closed_cb = cb;
    srv->closed_opaque = opaque;
}

unsigned nbd_server_client_count(NBDServer *srv)
{
    return srv->n_clients;
}

void nbd_server_free(NBDServer *srv)
{
    NBDClient *client, *next;

    if (!srv) {
        return;
    }
    qemu_socket_listener_free(srv->listener);
    srv->listener = NULL;
    srv->closed_cb = NULL;
    while (!QTAILQ_EMPTY(&srv->exports)) {
        nbd_export_remove(QTAILQ_FIRST(&srv->exports), NBD_EXPORT_REMOVE_HARD,
                          &error_abort);
    }
    /* Clients still in the handshake are attached to no export. */
    QTAILQ_FOREACH_SAFE(client, &srv->clients, srv_next, next) {
        nbd_client_close(client);
    }
    AIO_WAIT_WHILE(srv->n_clients > 0);
    qcrypto_tls_creds_unref(srv->tls_creds);
    g_free(srv);
}
