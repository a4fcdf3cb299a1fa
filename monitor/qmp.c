/*
 * QMP sessions: reading and framing requests, capability negotiation,
 * running commands in order, writing replies and events.
 *
 * Each session has a dispatcher coroutine that takes requests from its
 * queue one at a time, so replies leave in request order.  Commands
 * declared 'coroutine': true run inside it; every other command runs from
 * a bottom half outside coroutine context (handlers may then poll the main
 * loop, e.g. through synchronous block I/O) while the dispatcher waits.
 */
#include "qemu/osdep.h"
#include "monitor-internal.h"
#include "qemu/aio.h"
#include "qemu/sockets.h"

/* Requests parsed but not yet run before the session stops reading. */
#define QMP_REQ_QUEUE_MAX   8
/* Unwritten output before the session stops reading (slow readers). */
#define QMP_OUTBUF_MAX      (1024 * 1024)
#define QMP_READ_SIZE       65536

typedef struct QmpRequest {
    JsonNode *req;              /* the parsed message, or NULL ... */
    Error *err;                 /* ... and why it could not be parsed */
} QmpRequest;

typedef struct QmpServer {
    QLIST_ENTRY(QmpServer) next;
    QemuSocketListener *listener;
    bool pretty;
    bool accepted;              /* some client has connected */
} QmpServer;

static QLIST_HEAD(, QmpServer) qmp_servers =
    QLIST_HEAD_INITIALIZER(qmp_servers);

static void qmp_request_free(QmpRequest *r)
{
    if (r->req) {
        json_node_unref(r->req);
    }
    if (r->err) {
        error_free(r->err);
    }
    g_free(r);
}

/* --- output --- */

static void monitor_qmp_read(void *opaque);
static void monitor_qmp_write(void *opaque);
static void monitor_qmp_close(Monitor *mon);

/* Registers exactly the fd handlers the session's state calls for. */
static void monitor_qmp_update_handlers(Monitor *mon)
{
    AioContext *ctx = qemu_get_aio_context();
    bool want_read = !mon->closed && !mon->input_eof && mon->in_fd >= 0 &&
        g_queue_get_length(&mon->requests) < QMP_REQ_QUEUE_MAX &&
        mon->outbuf->len < QMP_OUTBUF_MAX;
    bool want_write = !mon->closed && mon->out_fd >= 0 &&
        mon->outbuf->len > 0;

    if (want_read == mon->reading && want_write == mon->writing) {
        return;
    }
    mon->reading = want_read;
    mon->writing = want_write;
    if (mon->in_fd == mon->out_fd) {
        aio_set_fd_handler(ctx, mon->in_fd,
                           want_read ? monitor_qmp_read : NULL,
                           want_write ? monitor_qmp_write : NULL, mon);
        return;
    }
    if (mon->in_fd >= 0) {
        aio_set_fd_handler(ctx, mon->in_fd,
                           want_read ? monitor_qmp_read : NULL, NULL, mon);
    }
    if (mon->out_fd >= 0) {
        aio_set_fd_handler(ctx, mon->out_fd, NULL,
                           want_write ? monitor_qmp_write : NULL, mon);
    }
}

bool monitor_qmp_busy(Monitor *mon)
{
    return mon->co_busy || !g_queue_is_empty(&mon->requests);
}

/* Writes as much of the output buffer as the peer takes now. */
static void monitor_qmp_flush(Monitor *mon)
{
    while (!mon->closed && mon->outbuf->len > 0) {
        ssize_t n = write(mon->out_fd, mon->outbuf->str, mon->outbuf->len);

        if (n > 0) {
            g_string_erase(mon->outbuf, 0, n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            /* EPIPE, ECONNRESET...: the client has gone away. */
            monitor_qmp_close(mon);
            return;
        }
    }
    if (mon->input_eof && mon->outbuf->len == 0 && !monitor_qmp_busy(mon)) {
        monitor_qmp_close(mon);
        return;
    }
    monitor_qmp_update_handlers(mon);
}

static void monitor_qmp_write(void *opaque)
{
    monitor_qmp_flush(opaque);
}

void monitor_qmp_send(Monitor *mon, JsonNode *msg)
{
    if (mon->closed || mon->out_fd < 0) {
        return;
    }
    qjson_append(mon->outbuf, msg, mon->pretty);
    g_string_append(mon->outbuf, "\r\n");
    monitor_qmp_flush(mon);
}

/* --- input --- */

/* Resumes the dispatcher if it is parked waiting for work. */
static void monitor_qmp_kick(Monitor *mon)
{
    if (mon->co_waiting) {
        mon->co_waiting = false;
        /*
         * Scheduled rather than entered: the caller (a read handler, or
         * code sending an event) must not see the monitor freed under it.
         */
        aio_co_schedule(qemu_get_aio_context(), mon->co);
    }
}

static void monitor_qmp_got_message(void *opaque, JsonNode *msg, Error *err)
{
    Monitor *mon = opaque;
    QmpRequest *r = g_new0(QmpRequest, 1);

    r->req = msg;
    r->err = err;
    g_queue_push_tail(&mon->requests, r);
}

void monitor_qmp_feed(Monitor *mon, const char *buf, size_t len)
{
    if (mon->closed) {
        return;
    }
    qjson_streamer_feed(mon->streamer, buf, len);
    monitor_qmp_update_handlers(mon);
    monitor_qmp_kick(mon);
}

static void monitor_qmp_read(void *opaque)
{
    Monitor *mon = opaque;
    char buf[QMP_READ_SIZE];
    ssize_t n = read(mon->in_fd, buf, sizeof(buf));

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                  errno == EINTR)) {
        return;
    }
    if (n < 0) {
        monitor_qmp_close(mon);
        return;
    }
    if (n == 0) {
        /* Answer what was received before closing (see input_eof). */
        mon->input_eof = true;
        monitor_qmp_flush(mon);
        return;
    }
    monitor_qmp_feed(mon, buf, n);
}

/* --- dispatch --- */

/*
 * The request checks QEMU makes before capability negotiation is
 * considered, member by member in input order.  "exec-oob" is unexpected
 * because no session enables the oob capability.
 */
static bool monitor_qmp_check_request(JsonNode *req, const char **name,
                                      Error **errp)
{
    g_autoptr(GList) members = NULL;
    JsonObject *obj;
    GList *l;

    if (!JSON_NODE_HOLDS_OBJECT(req)) {
        error_setg(errp, "QMP input must be a JSON object");
        return false;
    }
    obj = json_node_get_object(req);
    members = json_object_get_members(obj);
    *name = NULL;
    for (l = members; l; l = l->next) {
        const char *key = l->data;
        JsonNode *val = json_object_get_member(obj, key);

        if (!strcmp(key, "execute")) {
            if (!JSON_NODE_HOLDS_VALUE(val) ||
                json_node_get_value_type(val) != G_TYPE_STRING) {
                error_setg(errp, "QMP input member 'execute' must be a "
                           "string");
                return false;
            }
            *name = json_node_get_string(val);
        } else if (!strcmp(key, "arguments")) {
            if (!JSON_NODE_HOLDS_OBJECT(val)) {
                error_setg(errp, "QMP input member 'arguments' must be an "
                           "object");
                return false;
            }
        } else if (strcmp(key, "id") != 0) {
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            return false;
        }
    }
    if (!*name) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return false;
    }
    return true;
}

/* An error reply carrying the request's "id", if it had one. */
static JsonNode *monitor_qmp_error(JsonNode *req, Error *err)
{
    JsonNode *resp = qmp_error_response(err);
    JsonNode *id = NULL;

    if (req && JSON_NODE_HOLDS_OBJECT(req)) {
        id = json_object_get_member(json_node_get_object(req), "id");
    }
    if (id) {
        json_object_set_member(json_node_get_object(resp), "id",
                               json_node_copy(id));
    }
    return resp;
}

typedef struct QmpBhCall {
    Monitor *mon;
    JsonNode *req;
    JsonNode *resp;
    Coroutine *co;
} QmpBhCall;

static void monitor_qmp_dispatch_bh(void *opaque)
{
    QmpBhCall *call = opaque;
    /* A nested main loop inside the command may run another session's
     * command; each restores what it found. */
    Monitor *saved = monitor_cur_mon;

    monitor_cur_mon = call->mon;
    call->resp = qmp_dispatch(monitor_qmp_commands(), call->req);
    monitor_cur_mon = saved;
    aio_co_wake(call->co);
}

/* Runs one request; returns the reply to send (or NULL for none). */
static JsonNode *coroutine_fn monitor_qmp_handle(Monitor *mon, QmpRequest *r)
{
    const QmpCommand *cmd;
    const char *name;
    Error *err = NULL;
    QmpBhCall call;

    if (r->err) {
        err = r->err;
        r->err = NULL;
        return qmp_error_response(err);
    }
    if (!monitor_qmp_check_request(r->req, &name, &err)) {
        return monitor_qmp_error(r->req, err);
    }
    if (!mon->negotiated && strcmp(name, "qmp_capabilities") != 0) {
        error_set(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Expecting capabilities negotiation with "
                  "'qmp_capabilities'");
        return monitor_qmp_error(r->req, err);
    }
    cmd = qmp_find_command(monitor_qmp_commands(), name);
    if (cmd && (cmd->options & QCO_COROUTINE)) {
        return qmp_dispatch(monitor_qmp_commands(), r->req);
    }
    call = (QmpBhCall) {
        .mon = mon, .req = r->req, .co = qemu_coroutine_self(),
    };
    aio_bh_schedule_oneshot(qemu_get_aio_context(), monitor_qmp_dispatch_bh,
                            &call);
    qemu_coroutine_yield();
    return call.resp;
}

static void monitor_qmp_free(Monitor *mon)
{
    QmpRequest *r;

    monitor_list_remove(mon);
    if (mon->in_fd >= 0) {
        close(mon->in_fd);
    }
    if (mon->out_fd >= 0 && mon->out_fd != mon->in_fd) {
        close(mon->out_fd);
    }
    while ((r = g_queue_pop_head(&mon->requests))) {
        qmp_request_free(r);
    }
    qjson_streamer_free(mon->streamer);
    g_string_free(mon->outbuf, TRUE);
    g_free(mon);
}

/*
 * The session's dispatcher: runs requests in arrival order until the
 * session is closed, then frees the monitor.  Nothing else frees it, so a
 * command in progress never loses its session.
 */
static void coroutine_fn monitor_qmp_dispatcher(void *opaque)
{
    Monitor *mon = opaque;

    while (!mon->closed) {
        QmpRequest *r = g_queue_pop_head(&mon->requests);
        JsonNode *resp;

        if (!r) {
            if (mon->input_eof) {
                /* Closes now, or once the write handler drains output. */
                monitor_qmp_flush(mon);
                if (mon->closed) {
                    break;
                }
            }
            mon->co_waiting = true;
            qemu_coroutine_yield();
            continue;
        }
        monitor_qmp_update_handlers(mon);
        mon->co_busy = true;
        resp = monitor_qmp_handle(mon, r);
        mon->co_busy = false;
        if (resp) {
            monitor_qmp_send(mon, resp);
            json_node_unref(resp);
        }
        qmp_request_free(r);
    }
    monitor_qmp_free(mon);
}

/* The peer is gone: stop reading and writing; the dispatcher cleans up. */
static void monitor_qmp_close(Monitor *mon)
{
    QmpRequest *r;

    if (mon->closed) {
        return;
    }
    mon->closed = true;
    monitor_qmp_update_handlers(mon);
    while ((r = g_queue_pop_head(&mon->requests))) {
        qmp_request_free(r);
    }
    g_string_truncate(mon->outbuf, 0);
    monitor_qmp_kick(mon);
}

/* --- sessions and servers --- */

static void monitor_qmp_send_greeting(Monitor *mon)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) msg = NULL;
    unsigned major = 0, minor = 0, micro = 0;
    g_autofree char *package = g_strdup_printf("qblock %s", QBLOCK_VERSION);

    sscanf(QBLOCK_VERSION, "%u.%u.%u", &major, &minor, &micro);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "QMP");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "version");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "qemu");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "micro");
    json_builder_add_int_value(b, micro);
    json_builder_set_member_name(b, "minor");
    json_builder_add_int_value(b, minor);
    json_builder_set_member_name(b, "major");
    json_builder_add_int_value(b, major);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "package");
    json_builder_add_string_value(b, package);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "capabilities");
    json_builder_begin_array(b);
    json_builder_end_array(b);
    json_builder_end_object(b);
    json_builder_end_object(b);
    msg = json_builder_get_root(b);
    monitor_qmp_send(mon, msg);
}

Monitor *monitor_new_qmp_fds(int in_fd, int out_fd, bool pretty)
{
    Monitor *mon = g_new0(Monitor, 1);

    assert(monitor_qmp_commands());
    mon->in_fd = in_fd;
    mon->out_fd = out_fd;
    mon->pretty = pretty;
    mon->streamer = qjson_streamer_new(monitor_qmp_got_message, mon);
    mon->outbuf = g_string_new(NULL);
    g_queue_init(&mon->requests);
    if (in_fd >= 0) {
        qemu_socket_set_nonblock(in_fd, true);
    }
    if (out_fd >= 0) {
        qemu_socket_set_nonblock(out_fd, true);
    }
    monitor_list_add(mon);
    /* Runs until it parks waiting for the first request. */
    mon->co = qemu_coroutine_create(monitor_qmp_dispatcher, mon);
    qemu_coroutine_enter(mon->co);
    monitor_qmp_send_greeting(mon);
    monitor_qmp_update_handlers(mon);
    return mon;
}

static void qmp_server_accept(int fd, void *opaque)
{
    QmpServer *srv = opaque;

    srv->accepted = true;
    monitor_new_qmp_fds(fd, fd, srv->pretty);
}

bool monitor_add_qmp_server(const char *addr_str, bool pretty, bool wait,
                            Error **errp)
{
    g_autoptr(SocketAddress) addr = socket_parse(addr_str, errp);
    QmpServer *srv;

    if (!addr) {
        return false;
    }
    srv = g_new0(QmpServer, 1);

    assert(monitor_qmp_commands());
    srv->pretty = pretty;
    srv->listener = qemu_socket_listener_new(addr, 1, qmp_server_accept, srv,
                                             errp);
    if (!srv->listener) {
        g_free(srv);
        return false;
    }
    QLIST_INSERT_HEAD(&qmp_servers, srv, next);
    if (wait) {
        info_report("waiting for connection on: %s,server=on", addr_str);
        while (!srv->accepted && !monitor_exit_requested()) {
            aio_poll(qemu_get_aio_context(), true);
        }
    }
    return true;
}

static void check_output(Monitor *mon, void *opaque)
{
    if (!mon->closed && mon->outbuf->len > 0) {
        *(bool *)opaque = true;
    }
}

static bool monitor_any_output(void)
{
    bool pending = false;

    monitor_list_foreach(check_output, &pending);
    return pending;
}

static void close_one(Monitor *mon, void *opaque)
{
    *(bool *)opaque = true;
    monitor_qmp_close(mon);
}

void monitor_cleanup(void)
{
    QmpServer *srv, *next;
    gint64 deadline = g_get_monotonic_time() + G_USEC_PER_SEC;
    bool any;

    QLIST_FOREACH_SAFE(srv, &qmp_servers, next, next) {
        QLIST_REMOVE(srv, next);
        qemu_socket_listener_free(srv->listener);
        g_free(srv);
    }
    /* Let queued replies (say, to "quit") reach their clients. */
    while (monitor_any_output() && g_get_monotonic_time() < deadline) {
        aio_poll(qemu_get_aio_context(), false);
        g_usleep(1000);
    }
    /*
     * Close every session; each dispatcher frees its monitor once its
     * current command (if any) has finished.
     */
    deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    do {
        any = false;
        monitor_list_foreach(close_one, &any);
        if (any) {
            aio_poll(qemu_get_aio_context(), false);
            g_usleep(1000);
        }
    } while (any && g_get_monotonic_time() < deadline);
}
