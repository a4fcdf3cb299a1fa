/*
 * The "nbd" protocol driver: a node whose data lives in an NBD export.
 *
 * Filenames: nbd://HOST[:PORT]/NAME, nbd+tcp://..., nbd+unix:///NAME?
 * socket=PATH and the legacy nbd:unix:PATH[:exportname=NAME] /
 * nbd:HOST:PORT[:exportname=NAME].  Options: server ({type: unix, path}
 * or {type: inet, host, port}), export, reconnect-delay (seconds).
 *
 * Many requests are in flight at once.  Each request coroutine takes a
 * slot, sends its header (and payload) under send_mutex and sleeps until
 * the single reader coroutine has received its whole reply: the reader
 * reads read payloads straight into the request's vector and wakes the
 * request when the last chunk has arrived.  When the connection breaks,
 * the reader fails every pending request; with reconnect-delay, requests
 * wait for a new connection (for at most that long) and are sent again.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/cutils.h"
#include "qemu/sockets.h"
#include "block/block_int.h"
#include "block/drivers.h"
#include "block/nbd.h"

#define NBD_CLIENT_MAX_IN_FLIGHT    16
#define NBD_RECONNECT_INTERVAL_NS   (200 * 1000 * 1000)

typedef struct NBDClientRequest {
    bool in_use;
    bool done;
    bool waiting;               /* the coroutine sleeps until done */
    bool conn_lost;             /* failed because the connection broke */
    Coroutine *co;
    uint64_t cookie;
    uint16_t type;
    uint64_t offset;
    uint32_t len;
    QEMUIOVector *qiov;         /* reads: where the data goes */
    int ret;
    /* block status: the first extent */
    bool status_got;
    uint32_t status_len;
    uint32_t status_flags;
} NBDClientRequest;

typedef struct BDRVNBDState {
    SocketAddress *saddr;
    char *export;
    int64_t reconnect_delay_ns;

    QemuCoSocket sock;
    QCryptoTLSCreds *tls_creds;     /* reference; NULL: plain */
    char *tls_hostname;
    QCryptoTLSSession *tls;         /* layered over sock; freed after it */
    NBDExportInfo info;
    bool connected;
    bool closing;
    bool reader_running;
    bool reconnect_running;
    CoQueue reconnect_queue;    /* requests waiting for a connection */

    CoMutex send_mutex;
    CoQueue free_slots;         /* requests waiting for a slot */
    unsigned in_flight;
    uint32_t generation;
    NBDClientRequest reqs[NBD_CLIENT_MAX_IN_FLIGHT];
} BDRVNBDState;

/* ---- Filenames ------------------------------------------------------ */

static bool nbd_parse_uri(const char *filename, QDict *options, Error **errp)
{
    g_autoptr(GUri) uri = g_uri_parse(filename, G_URI_FLAGS_ENCODED_QUERY,
                                      NULL);
    g_autoptr(GHashTable) params = NULL;
    const char *scheme, *path, *query, *socket;
    QDict *server;
    bool is_unix;

    if (!uri) {
        error_setg(errp, "Invalid URI '%s'", filename);
        return false;
    }
    scheme = g_uri_get_scheme(uri);
    is_unix = !strcmp(scheme, "nbd+unix");
    if (strcmp(scheme, "nbd") && strcmp(scheme, "nbd+tcp") && !is_unix) {
        error_setg(errp, "Invalid NBD URI scheme '%s'", scheme);
        return false;
    }
    query = g_uri_get_query(uri);
    if (query) {
        params = g_uri_parse_params(query, -1, "&", G_URI_PARAMS_NONE, NULL);
        if (!params) {
            error_setg(errp, "Invalid query in NBD URI '%s'", filename);
            return false;
        }
    }
    socket = params ? g_hash_table_lookup(params, "socket") : NULL;
    if (params && g_hash_table_size(params) != (socket ? 1 : 0)) {
        error_setg(errp, "Unexpected query parameters in NBD URI '%s'",
                   filename);
        return false;
    }

    server = qdict_new();
    if (is_unix) {
        if (!socket || (g_uri_get_host(uri) && *g_uri_get_host(uri)) ||
            g_uri_get_port(uri) != -1) {
            error_setg(errp, "NBD URI '%s' needs a socket parameter and no "
                       "host", filename);
            qobject_unref(server);
            return false;
        }
        qdict_put_str(server, "type", "unix");
        qdict_put_str(server, "path", socket);
    } else {
        g_autofree char *port = NULL;
        const char *host = g_uri_get_host(uri);

        if (socket || !host || !*host) {
            error_setg(errp, "NBD URI '%s' needs a host and no socket",
                       filename);
            qobject_unref(server);
            return false;
        }
        port = g_strdup_printf("%d", g_uri_get_port(uri) == -1 ?
                               NBD_DEFAULT_PORT : g_uri_get_port(uri));
        qdict_put_str(server, "type", "inet");
        qdict_put_str(server, "host", host);
        qdict_put_str(server, "port", port);
    }
    qdict_put_qdict(options, "server", server);
    path = g_uri_get_path(uri);
    if (path && *path == '/') {
        path++;
    }
    if (path && *path) {
        qdict_put_str(options, "export", path);
    }
    return true;
}

/* nbd:unix:PATH[:exportname=NAME] or nbd:HOST:PORT[:exportname=NAME] */
static bool nbd_parse_legacy(const char *filename, QDict *options,
                             Error **errp)
{
    g_autofree char *spec = g_strdup(filename + strlen("nbd:"));
    char *export = strstr(spec, ":exportname=");
    QDict *server = qdict_new();

    if (export) {
        *export = '\0';
        qdict_put_str(options, "export", export + strlen(":exportname="));
    }
    if (g_str_has_prefix(spec, "unix:")) {
        qdict_put_str(server, "type", "unix");
        qdict_put_str(server, "path", spec + strlen("unix:"));
    } else {
        char *colon = strrchr(spec, ':');

        if (!colon || colon == spec) {
            error_setg(errp, "Invalid NBD filename '%s'", filename);
            qobject_unref(server);
            return false;
        }
        *colon = '\0';
        qdict_put_str(server, "type", "inet");
        qdict_put_str(server, "host", spec);
        qdict_put_str(server, "port", colon + 1);
    }
    qdict_put_qdict(options, "server", server);
    return true;
}

static void nbd_parse_filename(const char *filename, QDict *options,
                               Error **errp)
{
    if (qdict_haskey(options, "server") || qdict_haskey(options, "export")) {
        error_setg(errp, "No 'server' or 'export' options may be given "
                   "together with an NBD filename");
        return;
    }
    if (strstr(filename, "://")) {
        nbd_parse_uri(filename, options, errp);
    } else {
        nbd_parse_legacy(filename, options, errp);
    }
}

/* The URI form of the node's address, shown as its filename. */
static void nbd_refresh_filename(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;
    g_autofree char *name = g_uri_escape_string(s->export, "", false);
    g_autofree char *str = NULL;

    if (s->saddr->type == SOCKET_ADDRESS_TYPE_UNIX) {
        str = g_strdup_printf("nbd+unix:///%s?socket=%s", name,
                              s->saddr->u.q_unix.path);
    } else if (!strcmp(s->saddr->u.inet.port, G_STRINGIFY(NBD_DEFAULT_PORT))) {
        str = g_strdup_printf("nbd://%s/%s", s->saddr->u.inet.host, name);
    } else {
        str = g_strdup_printf("nbd://%s:%s/%s", s->saddr->u.inet.host,
                              s->saddr->u.inet.port, name);
    }
    pstrcpy(bs->filename, sizeof(bs->filename), str);
}

/* ---- Connection ----------------------------------------------------- */

static int coroutine_fn nbd_co_connect(BlockDriverState *bs, Error **errp)
{
    BDRVNBDState *s = bs->opaque;
    uint64_t old_size = s->info.size;
    bool reconnect = s->info.name != NULL;
    NBDClientTLS tls = { s->tls_creds, s->tls_hostname, NULL };
    int fd = socket_connect(s->saddr, errp);
    int ret;

    if (fd < 0) {
        return -1;
    }
    /* The previous connection's socket is closed: drop its session. */
    g_clear_pointer(&s->tls, qcrypto_tls_session_free);
    qemu_co_sock_init(&s->sock, fd);
    nbd_export_info_clear(&s->info);
    s->info.name = g_strdup(s->export);
    s->info.structured_reply = true;
    s->info.request_sizes = true;
    s->info.meta_context = g_strdup(NBD_META_BASE_ALLOCATION);
    ret = nbd_receive_negotiate(&s->sock, &tls, &s->info, errp);
    s->tls = tls.session;
    if (ret < 0) {
        goto fail;
    }
    if (reconnect && s->info.size != old_size) {
        error_setg(errp, "NBD export size changed across reconnect");
        goto fail;
    }
    if (s->info.min_block && !is_power_of_2(s->info.min_block)) {
        error_setg(errp, "server has invalid minimum block size %" PRIu32,
                   s->info.min_block);
        goto fail;
    }
    return 0;

fail:
    qemu_co_sock_close(&s->sock);
    g_clear_pointer(&s->tls, qcrypto_tls_session_free);
    return -1;
}

static void coroutine_fn nbd_reader_co(void *opaque);

static void nbd_start_reader(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;

    s->connected = true;
    s->reader_running = true;
    qemu_coroutine_enter(qemu_coroutine_create(nbd_reader_co, bs));
}

static void coroutine_fn nbd_reconnect_co(void *opaque)
{
    BlockDriverState *bs = opaque;
    BDRVNBDState *s = bs->opaque;
    int64_t deadline = qemu_clock_get_ns() + s->reconnect_delay_ns;

    qemu_co_sock_close(&s->sock);
    while (!s->closing) {
        Error *local_err = NULL;

        if (nbd_co_connect(bs, &local_err) == 0) {
            nbd_start_reader(bs);
            break;
        }
        error_free(local_err);
        if (qemu_clock_get_ns() >= deadline) {
            break;
        }
        qemu_co_sleep_ns(NBD_RECONNECT_INTERVAL_NS);
    }
    s->reconnect_running = false;
    qemu_co_queue_restart_all(&s->reconnect_queue);
}

static void nbd_complete(NBDClientRequest *req)
{
    req->done = true;
    if (req->waiting) {
        aio_co_wake(req->co);
    }
}

/* Reads and drops @len bytes. */
static int coroutine_fn nbd_skip(BDRVNBDState *s, uint32_t len, Error **errp)
{
    uint8_t buf[4096];

    while (len) {
        uint32_t n = MIN(len, sizeof(buf));

        if (qemu_co_sock_read_all(&s->sock, buf, n, errp) < 0) {
            return -1;
        }
        len -= n;
    }
    return 0;
}

/* Checks that [off, off + len) lies inside the request. */
static bool nbd_chunk_in_range(NBDClientRequest *req, uint64_t off,
                               uint64_t len)
{
    return off >= req->offset && len <= req->len &&
           off - req->offset <= req->len - len;
}

/* Handles one structured chunk for @req; -1 on a protocol error. */
static int coroutine_fn nbd_reader_chunk(BDRVNBDState *s,
                                         NBDClientRequest *req,
                                         NBDReply *reply, Error **errp)
{
    uint8_t buf[12];
    uint64_t off;

    switch (reply->type) {
    case NBD_REPLY_TYPE_NONE:
        if (reply->length || !(reply->flags & NBD_REPLY_FLAG_DONE)) {
            error_setg(errp, "Protocol error: invalid NBD_REPLY_TYPE_NONE");
            return -1;
        }
        return 0;
    case NBD_REPLY_TYPE_OFFSET_DATA: {
        QEMUIOVector sub;
        uint32_t dlen;
        int ret;

        if (req->type != NBD_CMD_READ || reply->length < 8 ||
            qemu_co_sock_read_all(&s->sock, buf, 8, errp) < 0) {
            goto invalid;
        }
        off = nbd_get64(buf);
        dlen = reply->length - 8;
        if (!nbd_chunk_in_range(req, off, dlen)) {
            goto invalid;
        }
        qemu_iovec_init(&sub, req->qiov->niov);
        qemu_iovec_concat(&sub, req->qiov, off - req->offset, dlen);
        ret = qemu_co_sock_readv_all(&s->sock, sub.iov, sub.niov, errp);
        qemu_iovec_destroy(&sub);
        return ret;
    }
    case NBD_REPLY_TYPE_OFFSET_HOLE:
        if (req->type != NBD_CMD_READ || reply->length != 12 ||
            qemu_co_sock_read_all(&s->sock, buf, 12, errp) < 0) {
            goto invalid;
        }
        off = nbd_get64(buf);
        if (!nbd_chunk_in_range(req, off, nbd_get32(buf + 8))) {
            goto invalid;
        }
        qemu_iovec_memset(req->qiov, off - req->offset, 0, nbd_get32(buf + 8));
        return 0;
    case NBD_REPLY_TYPE_BLOCK_STATUS:
        if (req->type != NBD_CMD_BLOCK_STATUS || reply->length < 12 ||
            qemu_co_sock_read_all(&s->sock, buf, 12, errp) < 0) {
            goto invalid;
        }
        if (nbd_get32(buf) == s->info.meta_context_id && !req->status_got) {
            req->status_got = true;
            req->status_len = nbd_get32(buf + 4);
            req->status_flags = nbd_get32(buf + 8);
        }
        return nbd_skip(s, reply->length - 12, errp);
    default:
        if (!NBD_REPLY_TYPE_IS_ERR(reply->type) || reply->length < 6 ||
            qemu_co_sock_read_all(&s->sock, buf, 4, errp) < 0) {
            goto invalid;
        }
        if (!req->ret) {
            uint32_t err = nbd_get32(buf);

            req->ret = -nbd_errno_to_system_errno(err ? err : NBD_EINVAL);
        }
        return nbd_skip(s, reply->length - 4, errp);
    }

invalid:
    if (errp && !*errp) {
        error_setg(errp, "Protocol error: unexpected %s chunk",
                   nbd_reply_type_lookup(reply->type));
    }
    return -1;
}

static void coroutine_fn nbd_reader_co(void *opaque)
{
    BlockDriverState *bs = opaque;
    BDRVNBDState *s = bs->opaque;
    Error *local_err = NULL;

    for (;;) {
        NBDClientRequest *req;
        NBDReply reply;
        uint32_t idx;

        if (nbd_receive_reply(&s->sock, &reply, &local_err) <= 0) {
            break;
        }
        idx = (uint32_t)reply.cookie;
        req = idx < NBD_CLIENT_MAX_IN_FLIGHT ? &s->reqs[idx] : NULL;
        if (!req || !req->in_use || req->done ||
            req->cookie != reply.cookie) {
            error_setg(&local_err, "Protocol error: unexpected cookie %"
                       PRIu64, reply.cookie);
            break;
        }
        if (reply.magic == NBD_SIMPLE_REPLY_MAGIC) {
            req->ret = -nbd_errno_to_system_errno(reply.error);
            if (!reply.error && req->type == NBD_CMD_READ &&
                qemu_co_sock_readv_all(&s->sock, req->qiov->iov,
                                       req->qiov->niov, &local_err) < 0) {
                break;
            }
            nbd_complete(req);
            continue;
        }
        if (!s->info.structured_reply) {
            error_setg(&local_err, "Protocol error: structured reply without "
                       "negotiation");
            break;
        }
        if (nbd_reader_chunk(s, req, &reply, &local_err) < 0) {
            break;
        }
        if (reply.flags & NBD_REPLY_FLAG_DONE) {
            nbd_complete(req);
        }
    }

    /*
     * The connection is gone: fail what is pending (the requests retry
     * if a reconnect is attempted).
     */
    if (local_err && !s->closing) {
        error_reportf_err(local_err, "NBD connection lost: ");
    } else {
        error_free(local_err);
    }
    s->connected = false;
    qemu_co_sock_shutdown(&s->sock);
    for (int i = 0; i < NBD_CLIENT_MAX_IN_FLIGHT; i++) {
        NBDClientRequest *req = &s->reqs[i];

        if (req->in_use && !req->done) {
            req->ret = -EIO;
            req->conn_lost = true;
            nbd_complete(req);
        }
    }
    s->reader_running = false;
    if (!s->closing && s->reconnect_delay_ns > 0) {
        s->reconnect_running = true;
        qemu_coroutine_enter(qemu_coroutine_create(nbd_reconnect_co, bs));
    }
}

/* ---- Requests ------------------------------------------------------- */

/* Waits for a connection while a reconnect is under way. */
static bool coroutine_fn nbd_co_wait_connected(BDRVNBDState *s)
{
    while (!s->connected) {
        if (s->closing || !s->reconnect_running) {
            return false;
        }
        qemu_co_queue_wait(&s->reconnect_queue, NULL);
    }
    return true;
}

/*
 * Sends @nreq (with @qiov as payload for writes or destination for
 * reads) and waits for its reply.  *status receives the first block
 * status extent.  Returns 0 or -errno.
 */
static int coroutine_fn nbd_co_request(BlockDriverState *bs, NBDRequest *nreq,
                                       QEMUIOVector *qiov,
                                       NBDClientRequest *status)
{
    BDRVNBDState *s = bs->opaque;

    for (;;) {
        NBDClientRequest *req = NULL;
        bool lost;
        int ret, i;

        if (!nbd_co_wait_connected(s)) {
            return -EIO;
        }
        if (s->in_flight >= NBD_CLIENT_MAX_IN_FLIGHT) {
            qemu_co_queue_wait(&s->free_slots, NULL);
            continue;
        }
        for (i = 0; s->reqs[i].in_use; i++) {
            /* a free slot exists: in_flight < max */
        }
        req = &s->reqs[i];
        *req = (NBDClientRequest) {
            .in_use = true,
            .co = qemu_coroutine_self(),
            .cookie = (uint64_t)++s->generation << 32 | i,
            .type = nreq->type,
            .offset = nreq->offset,
            .len = nreq->len,
            .qiov = qiov,
        };
        s->in_flight++;
        nreq->cookie = req->cookie;

        qemu_co_mutex_lock(&s->send_mutex);
        if (s->connected) {
            ret = nbd_send_request(&s->sock, nreq,
                                   nreq->type == NBD_CMD_WRITE ? qiov : NULL,
                                   NULL);
            if (ret < 0) {
                /* The reader notices and fails every pending request. */
                qemu_co_sock_shutdown(&s->sock);
            }
        } else {
            req->ret = -EIO;
            req->conn_lost = true;
            req->done = true;
        }
        qemu_co_mutex_unlock(&s->send_mutex);

        while (!req->done) {
            req->waiting = true;
            qemu_coroutine_yield();
            req->waiting = false;
        }
        ret = req->ret;
        lost = req->conn_lost;
        if (status) {
            *status = *req;
        }
        req->in_use = false;
        s->in_flight--;
        qemu_co_queue_next(&s->free_slots);
        if (!lost || s->closing || s->reconnect_delay_ns <= 0) {
            return ret;
        }
    }
}

static int coroutine_fn nbd_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, QEMUIOVector *qiov,
                                      BdrvRequestFlags flags)
{
    NBDRequest req = {
        .type = NBD_CMD_READ, .offset = offset, .len = bytes,
    };

    if (!bytes) {
        return 0;
    }
    return nbd_co_request(bs, &req, qiov, NULL);
}

static int coroutine_fn nbd_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    BDRVNBDState *s = bs->opaque;
    NBDRequest req = {
        .type = NBD_CMD_WRITE, .offset = offset, .len = bytes,
    };

    if (flags & BDRV_REQ_FUA) {
        assert(s->info.flags & NBD_FLAG_SEND_FUA);
        req.flags |= NBD_CMD_FLAG_FUA;
    }
    if (!bytes) {
        return 0;
    }
    return nbd_co_request(bs, &req, qiov, NULL);
}

static int coroutine_fn nbd_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    BDRVNBDState *s = bs->opaque;
    NBDRequest req = {
        .type = NBD_CMD_WRITE_ZEROES, .offset = offset, .len = bytes,
    };

    if (!(s->info.flags & NBD_FLAG_SEND_WRITE_ZEROES)) {
        return -ENOTSUP;
    }
    if (flags & BDRV_REQ_FUA) {
        req.flags |= NBD_CMD_FLAG_FUA;
    }
    if (!(flags & BDRV_REQ_MAY_UNMAP)) {
        req.flags |= NBD_CMD_FLAG_NO_HOLE;
    }
    if (flags & BDRV_REQ_NO_FALLBACK) {
        req.flags |= NBD_CMD_FLAG_FAST_ZERO;
    }
    if (!bytes) {
        return 0;
    }
    return nbd_co_request(bs, &req, NULL, NULL);
}

static int coroutine_fn nbd_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    BDRVNBDState *s = bs->opaque;
    NBDRequest req = {
        .type = NBD_CMD_TRIM, .offset = offset, .len = bytes,
    };

    /* Discard is advisory: without server support it does nothing. */
    if (!(s->info.flags & NBD_FLAG_SEND_TRIM) || !bytes) {
        return 0;
    }
    return nbd_co_request(bs, &req, NULL, NULL);
}

static int coroutine_fn nbd_co_flush(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;
    NBDRequest req = { .type = NBD_CMD_FLUSH };

    if (!(s->info.flags & NBD_FLAG_SEND_FLUSH)) {
        return 0;
    }
    return nbd_co_request(bs, &req, NULL, NULL);
}

static int coroutine_fn nbd_co_block_status(BlockDriverState *bs,
                                            bool want_zero, int64_t offset,
                                            int64_t bytes, int64_t *pnum,
                                            int64_t *map,
                                            BlockDriverState **file)
{
    BDRVNBDState *s = bs->opaque;
    uint32_t align = MAX(bs->bl.request_alignment, 1);
    NBDClientRequest result = { 0 };
    NBDRequest req = {
        .type = NBD_CMD_BLOCK_STATUS,
        .flags = NBD_CMD_FLAG_REQ_ONE,
        .offset = offset,
        .len = MIN(bytes, QEMU_ALIGN_DOWN(INT32_MAX, align)),
    };
    int ret;

    *map = offset;
    *file = bs;
    if (!s->info.meta_selected) {
        /* Without base:allocation everything is data. */
        *pnum = bytes;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    ret = nbd_co_request(bs, &req, NULL, &result);
    if (ret < 0) {
        return ret;
    }
    if (!result.status_got || !result.status_len) {
        return -EIO;
    }
    *pnum = MIN(result.status_len, req.len);
    /* Keep the block layer's alignment even if the server ignored it. */
    if (*pnum > align) {
        *pnum = QEMU_ALIGN_DOWN(*pnum, align);
    }
    return ((result.status_flags & NBD_STATE_HOLE) ? 0 : BDRV_BLOCK_DATA) |
           ((result.status_flags & NBD_STATE_ZERO) ? BDRV_BLOCK_ZERO : 0) |
           BDRV_BLOCK_OFFSET_VALID;
}

/* ---- Open/close ----------------------------------------------------- */

typedef struct NBDOpenCo {
    BlockDriverState *bs;
    Error **errp;
    int ret;
} NBDOpenCo;

static void coroutine_fn nbd_open_entry(void *opaque)
{
    NBDOpenCo *c = opaque;

    c->ret = nbd_co_connect(c->bs, c->errp) < 0 ? -EIO : 0;
}

static void nbd_free_state(BDRVNBDState *s)
{
    nbd_export_info_clear(&s->info);
    qapi_free_SocketAddress(s->saddr);
    g_free(s->export);
    g_clear_pointer(&s->tls, qcrypto_tls_session_free);
    qcrypto_tls_creds_unref(s->tls_creds);
    g_free(s->tls_hostname);
}

static int nbd_open(BlockDriverState *bs, QDict *options, int flags,
                    Error **errp)
{
    BDRVNBDState *s = bs->opaque;
    QDict *server = qdict_get_qdict(options, "server");
    const char *export = qdict_get_try_str(options, "export");
    const char *tls_creds = qdict_get_try_str(options, "tls-creds");
    const char *tls_hostname = qdict_get_try_str(options, "tls-hostname");
    int64_t delay;
    NBDOpenCo c = { .bs = bs, .errp = errp };

    if (!server) {
        error_setg(errp, "NBD server address missing");
        return -EINVAL;
    }
    if (!qdict_get_int_opt(options, "reconnect-delay", 0, &delay, errp)) {
        return -EINVAL;
    }
    if (delay < 0 || delay > 3600) {
        error_setg(errp, "reconnect-delay must be between 0 and 3600");
        return -EINVAL;
    }
    if (tls_creds) {
        QCryptoTLSCreds *creds = qcrypto_tls_creds_find(
            tls_creds, QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT, errp);

        if (!creds) {
            return -EINVAL;
        }
        s->tls_creds = qcrypto_tls_creds_ref(creds);
    }
    s->saddr = socket_address_from_qdict(server, errp);
    if (!s->saddr) {
        nbd_free_state(s);
        return -EINVAL;
    }
    /* Certificates name hosts: default to the one we connect to. */
    if (s->tls_creds) {
        s->tls_hostname = g_strdup(tls_hostname ? tls_hostname :
                                   s->saddr->type == SOCKET_ADDRESS_TYPE_INET ?
                                   s->saddr->u.inet.host : NULL);
    }
    s->export = g_strdup(export ? export : "");
    s->reconnect_delay_ns = delay * NANOSECONDS_PER_SECOND;
    s->sock.fd = -1;
    qemu_co_mutex_init(&s->send_mutex);
    qemu_co_queue_init(&s->free_slots);
    qemu_co_queue_init(&s->reconnect_queue);

    bdrv_co_run(nbd_open_entry, &c, &c.ret);
    if (c.ret < 0) {
        nbd_free_state(s);
        return c.ret;
    }
    if ((flags & BDRV_O_RDWR) && (s->info.flags & NBD_FLAG_READ_ONLY)) {
        error_setg(errp, "NBD export is read-only");
        qemu_co_sock_close(&s->sock);
        nbd_free_state(s);
        return -EACCES;
    }
    if (s->info.flags & NBD_FLAG_SEND_FUA) {
        bs->supported_write_flags = BDRV_REQ_FUA;
        bs->supported_zero_flags |= BDRV_REQ_FUA;
    }
    if (s->info.flags & NBD_FLAG_SEND_WRITE_ZEROES) {
        bs->supported_zero_flags |= BDRV_REQ_MAY_UNMAP;
        if (s->info.flags & NBD_FLAG_SEND_FAST_ZERO) {
            bs->supported_zero_flags |= BDRV_REQ_NO_FALLBACK;
        }
    }
    nbd_refresh_filename(bs);
    nbd_start_reader(bs);
    return 0;
}

typedef struct NBDDiscCo {
    BDRVNBDState *s;
    int ret;
} NBDDiscCo;

/* Best effort NBD_CMD_DISC; the server finishes and closes. */
static void coroutine_fn nbd_disconnect_entry(void *opaque)
{
    NBDDiscCo *c = opaque;
    NBDRequest req = { .type = NBD_CMD_DISC };

    qemu_co_mutex_lock(&c->s->send_mutex);
    if (c->s->connected) {
        nbd_send_request(&c->s->sock, &req, NULL, NULL);
    }
    qemu_co_mutex_unlock(&c->s->send_mutex);
    c->ret = 0;
}

static void nbd_close(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;
    NBDDiscCo c = { .s = s };

    s->closing = true;
    bdrv_co_run(nbd_disconnect_entry, &c, &c.ret);
    if (s->sock.fd >= 0) {
        qemu_co_sock_shutdown(&s->sock);
    }
    /* The reader and a reconnect attempt notice 'closing' and finish. */
    AIO_WAIT_WHILE(s->reader_running || s->reconnect_running);
    qemu_co_sock_close(&s->sock);
    nbd_free_state(s);
}

static void nbd_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVNBDState *s = bs->opaque;
    uint32_t min = MAX(s->info.min_block, 1);
    uint32_t max = s->info.max_block ?
                   MIN(s->info.max_block, NBD_MAX_BUFFER_SIZE) :
                   NBD_MAX_BUFFER_SIZE;

    bs->bl.request_alignment = min;
    bs->bl.max_transfer = QEMU_ALIGN_DOWN(max, min);
    bs->bl.max_pdiscard = QEMU_ALIGN_DOWN(INT32_MAX, min);
    bs->bl.max_pwrite_zeroes = QEMU_ALIGN_DOWN(INT32_MAX, min);
    bs->bl.opt_transfer = s->info.opt_block;
}

static int64_t nbd_getlength(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;

    return s->info.size;
}

static const char *const nbd_runtime_opts[] = {
    "server", "export", "reconnect-delay", "tls-creds", "tls-hostname", NULL,
};

#define NBD_DRIVER_COMMON                                       \
    .format_name = "nbd",                                       \
    .instance_size = sizeof(BDRVNBDState),                      \
    .runtime_opts = nbd_runtime_opts,                           \
    .bdrv_parse_filename = nbd_parse_filename,                  \
    .bdrv_open = nbd_open,                                      \
    .bdrv_close = nbd_close,                                    \
    .bdrv_refresh_limits = nbd_refresh_limits,                  \
    .bdrv_co_preadv = nbd_co_preadv,                            \
    .bdrv_co_pwritev = nbd_co_pwritev,                          \
    .bdrv_co_pwrite_zeroes = nbd_co_pwrite_zeroes,              \
    .bdrv_co_pdiscard = nbd_co_pdiscard,                        \
    .bdrv_co_flush_to_os = nbd_co_flush,                        \
    .bdrv_co_block_status = nbd_co_block_status,                \
    .bdrv_getlength = nbd_getlength

static BlockDriver bdrv_nbd = {
    NBD_DRIVER_COMMON,
    .protocol_name = "nbd",
};

static BlockDriver bdrv_nbd_tcp = {
    NBD_DRIVER_COMMON,
    .protocol_name = "nbd+tcp",
};

static BlockDriver bdrv_nbd_unix = {
    NBD_DRIVER_COMMON,
    .protocol_name = "nbd+unix",
};

void bdrv_nbd_init(void)
{
    /* Registered last so bdrv_find_format("nbd") finds the plain one. */
    bdrv_register(&bdrv_nbd_unix);
    bdrv_register(&bdrv_nbd_tcp);
    bdrv_register(&bdrv_nbd);
}
