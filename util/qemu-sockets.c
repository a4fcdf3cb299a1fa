/*
 * Stream sockets: addresses, listen/connect, coroutine I/O.
 */
#include "qemu/osdep.h"
#include "qemu/sockets.h"
#include "qemu/cutils.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

SocketAddress *socket_address_new_unix(const char *path)
{
    SocketAddress *addr = g_new0(SocketAddress, 1);

    addr->type = SOCKET_ADDRESS_TYPE_UNIX;
    addr->u.q_unix.path = g_strdup(path);
    return addr;
}

SocketAddress *socket_address_new_inet(const char *host, const char *port)
{
    SocketAddress *addr = g_new0(SocketAddress, 1);

    addr->type = SOCKET_ADDRESS_TYPE_INET;
    addr->u.inet.host = g_strdup(host);
    addr->u.inet.port = g_strdup(port);
    return addr;
}

SocketAddress *socket_address_copy(const SocketAddress *addr)
{
    return addr->type == SOCKET_ADDRESS_TYPE_UNIX ?
           socket_address_new_unix(addr->u.q_unix.path) :
           socket_address_new_inet(addr->u.inet.host, addr->u.inet.port);
}

SocketAddress *socket_address_from_qdict(QDict *dict, Error **errp)
{
    const char *type = qdict_get_try_str(dict, "type");
    g_autofree char *port = NULL;
    const char *str;

    if (!type) {
        error_setg(errp, "Parameter 'type' is missing");
        return NULL;
    }
    if (!strcmp(type, "unix")) {
        str = qdict_get_try_str(dict, "path");
        if (!str) {
            error_setg(errp, "Parameter 'path' is missing");
            return NULL;
        }
        return socket_address_new_unix(str);
    }
    if (!strcmp(type, "inet")) {
        str = qdict_get_try_str(dict, "host");
        port = qdict_get_as_string(dict, "port");
        if (!str) {
            error_setg(errp, "Parameter 'host' is missing");
            return NULL;
        }
        if (!port) {
            error_setg(errp, "Parameter 'port' is missing");
            return NULL;
        }
        return socket_address_new_inet(str, port);
    }
    error_setg(errp, "Parameter 'type' does not accept value '%s'", type);
    return NULL;
}

void socket_address_to_qdict(const SocketAddress *addr, QDict *dict)
{
    if (addr->type == SOCKET_ADDRESS_TYPE_UNIX) {
        qdict_put_str(dict, "type", "unix");
        qdict_put_str(dict, "path", addr->u.q_unix.path);
    } else {
        qdict_put_str(dict, "type", "inet");
        qdict_put_str(dict, "host", addr->u.inet.host);
        qdict_put_str(dict, "port", addr->u.inet.port);
    }
}

SocketAddress *socket_parse(const char *str, Error **errp)
{
    const char *rest;
    const char *colon;

    if (strstart(str, "unix:", &rest)) {
        if (!*rest) {
            error_setg(errp, "Missing socket path in '%s'", str);
            return NULL;
        }
        return socket_address_new_unix(rest);
    }
    if (str[0] == '[') {
        const char *end = strchr(str, ']');

        if (!end || end[1] != ':' || !end[2]) {
            error_setg(errp, "Invalid address '%s'", str);
            return NULL;
        }
        g_autofree char *host = g_strndup(str + 1, end - str - 1);
        return socket_address_new_inet(host, end + 2);
    }
    colon = strrchr(str, ':');
    if (!colon || !colon[1]) {
        error_setg(errp, "Invalid address '%s': expected HOST:PORT or "
                   "unix:PATH", str);
        return NULL;
    }
    g_autofree char *host = g_strndup(str, colon - str);
    return socket_address_new_inet(host, colon + 1);
}

char *socket_address_to_string(const SocketAddress *addr)
{
    if (addr->type == SOCKET_ADDRESS_TYPE_UNIX) {
        return g_strdup_printf("unix:%s", addr->u.q_unix.path);
    }
    if (strchr(addr->u.inet.host, ':')) {
        return g_strdup_printf("[%s]:%s", addr->u.inet.host, addr->u.inet.port);
    }
    return g_strdup_printf("%s:%s", addr->u.inet.host, addr->u.inet.port);
}

int qemu_socket_set_nonblock(int fd, bool nonblock)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0) {
        return -errno;
    }
    flags = nonblock ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, flags) < 0 ? -errno : 0;
}

static bool socket_unix_sockaddr(const SocketAddress *addr,
                                 struct sockaddr_un *un, Error **errp)
{
    memset(un, 0, sizeof(*un));
    un->sun_family = AF_UNIX;
    if (strlen(addr->u.q_unix.path) >= sizeof(un->sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", addr->u.q_unix.path);
        return false;
    }
    strcpy(un->sun_path, addr->u.q_unix.path);
    return true;
}

static struct addrinfo *socket_resolve(const SocketAddress *addr,
                                       bool passive, Error **errp)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = passive ? AI_PASSIVE : 0,
    };
    struct addrinfo *res;
    const char *host = addr->u.inet.host && *addr->u.inet.host ? addr->u.inet.host : NULL;
    int rc = getaddrinfo(host, addr->u.inet.port, &hints, &res);

    if (rc) {
        error_setg(errp, "address resolution failed for %s:%s: %s",
                   addr->u.inet.host ? addr->u.inet.host : "", addr->u.inet.port,
                   gai_strerror(rc));
        return NULL;
    }
    return res;
}

int socket_connect(const SocketAddress *addr, Error **errp)
{
    struct addrinfo *res, *ai;
    int fd, saved_errno = 0;

    if (addr->type == SOCKET_ADDRESS_TYPE_UNIX) {
        struct sockaddr_un un;

        if (!socket_unix_sockaddr(addr, &un, errp)) {
            return -1;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            error_setg_errno(errp, errno, "Failed to create socket");
            return -1;
        }
        if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
            error_setg_errno(errp, errno, "Failed to connect to '%s'",
                             addr->u.q_unix.path);
            close(fd);
            return -1;
        }
        return fd;
    }

    res = socket_resolve(addr, false, errp);
    if (!res) {
        return -1;
    }
    fd = -1;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            int one = 1;

            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            break;
        }
        saved_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, saved_errno, "Failed to connect to '%s:%s'",
                         addr->u.inet.host, addr->u.inet.port);
    }
    return fd;
}

int socket_listen(const SocketAddress *addr, int backlog, Error **errp)
{
    struct addrinfo *res, *ai;
    int fd, saved_errno = 0;

    if (addr->type == SOCKET_ADDRESS_TYPE_UNIX) {
        struct sockaddr_un un;

        if (!socket_unix_sockaddr(addr, &un, errp)) {
            return -1;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            error_setg_errno(errp, errno, "Failed to create socket");
            return -1;
        }
        /* A stale socket file from an earlier run would make bind fail. */
        unlink(addr->u.q_unix.path);
        if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 ||
            listen(fd, backlog) < 0) {
            error_setg_errno(errp, errno, "Failed to bind socket to %s",
                             addr->u.q_unix.path);
            close(fd);
            return -1;
        }
        return fd;
    }

    res = socket_resolve(addr, true, errp);
    if (!res) {
        return -1;
    }
    fd = -1;
    for (ai = res; ai; ai = ai->ai_next) {
        int one = 1;

        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            saved_errno = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, backlog) == 0) {
            break;
        }
        saved_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, saved_errno, "Failed to bind socket to %s:%s",
                         addr->u.inet.host ? addr->u.inet.host : "", addr->u.inet.port);
    }
    return fd;
}

struct QemuSocketListener {
    int fd;
    char *unix_path;            /* unix sockets only; removed on free */
    bool paused;
    QemuSocketAcceptFunc *cb;
    void *opaque;
};

static void qemu_socket_listener_accept(void *opaque)
{
    QemuSocketListener *l = opaque;
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0) {
        /* EAGAIN (another waiter took it) or a transient error. */
        return;
    }
    if (!l->unix_path) {
        int one = 1;

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    l->cb(fd, l->opaque);
}

static void qemu_socket_listener_update(QemuSocketListener *l)
{
    aio_set_fd_handler(qemu_get_aio_context(), l->fd,
                       l->paused ? NULL : qemu_socket_listener_accept, NULL,
                       l);
}

QemuSocketListener *qemu_socket_listener_new(const SocketAddress *addr,
                                             int backlog,
                                             QemuSocketAcceptFunc *cb,
                                             void *opaque, Error **errp)
{
    QemuSocketListener *l;
    int fd = socket_listen(addr, backlog, errp);

    if (fd < 0) {
        return NULL;
    }
    l = g_new0(QemuSocketListener, 1);
    l->fd = fd;
    l->cb = cb;
    l->opaque = opaque;
    if (addr->type == SOCKET_ADDRESS_TYPE_UNIX) {
        l->unix_path = g_strdup(addr->u.q_unix.path);
    }
    qemu_socket_listener_update(l);
    return l;
}

void qemu_socket_listener_set_paused(QemuSocketListener *l, bool paused)
{
    if (l->paused != paused) {
        l->paused = paused;
        qemu_socket_listener_update(l);
    }
}

void qemu_socket_listener_free(QemuSocketListener *l)
{
    if (!l) {
        return;
    }
    aio_set_fd_handler(qemu_get_aio_context(), l->fd, NULL, NULL, NULL);
    close(l->fd);
    if (l->unix_path) {
        unlink(l->unix_path);
    }
    g_free(l->unix_path);
    g_free(l);
}

/* ---- coroutine I/O ------------------------------------------------ */

static void qemu_co_sock_watch(QemuCoSocket *s, bool read, bool write);

/*
 * The read handler stays registered after it woke the reader: a reader
 * that has handled its message usually waits again at once, and every
 * registration change costs the main loop a GSource and a wake-up of its
 * own.  Only a wake-up that finds nobody waiting removes it, so a socket
 * with unread data does not keep the loop spinning.
 */
static void qemu_co_sock_readable(void *opaque)
{
    QemuCoSocket *s = opaque;
    Coroutine *co = s->read_co;

    s->read_co = NULL;
    if (co) {
        aio_co_wake(co);
    } else {
        qemu_co_sock_watch(s, false, s->watch_write);
    }
}

/* A socket is nearly always writable: the handler goes at once. */
static void qemu_co_sock_writable(void *opaque)
{
    QemuCoSocket *s = opaque;
    Coroutine *co = s->write_co;

    s->write_co = NULL;
    qemu_co_sock_watch(s, s->watch_read, false);
    if (co) {
        aio_co_wake(co);
    }
}

static void qemu_co_sock_watch(QemuCoSocket *s, bool read, bool write)
{
    if (s->watch_read == read && s->watch_write == write) {
        return;
    }
    s->watch_read = read;
    s->watch_write = write;
    aio_set_fd_handler(qemu_get_aio_context(), s->fd,
                       read ? qemu_co_sock_readable : NULL,
                       write ? qemu_co_sock_writable : NULL, s);
}

static void coroutine_fn qemu_co_sock_wait(QemuCoSocket *s, bool write)
{
    if (write) {
        assert(!s->write_co);
        s->write_co = qemu_coroutine_self();
        qemu_co_sock_watch(s, s->watch_read, true);
    } else {
        assert(!s->read_co);
        s->read_co = qemu_coroutine_self();
        qemu_co_sock_watch(s, true, s->watch_write);
    }
    qemu_coroutine_yield();
}

void coroutine_fn qemu_co_sock_wait_fd(QemuCoSocket *s, bool write)
{
    if (!s->shut) {
        qemu_co_sock_wait(s, write);
    }
}

void qemu_co_sock_set_layer(QemuCoSocket *s, const QemuCoSocketLayer *layer,
                            void *opaque)
{
    s->layer = layer;
    s->layer_opaque = opaque;
}

void qemu_co_sock_init(QemuCoSocket *s, int fd)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    qemu_socket_set_nonblock(fd, true);
}

/*
 * Reads until the vector is full.  *got counts the bytes read, so callers
 * can tell a clean end-of-file (nothing read) from a truncated message.
 */
static int coroutine_fn qemu_co_sock_readv_count(QemuCoSocket *s,
                                                 const struct iovec *iov,
                                                 int niov, size_t *got,
                                                 Error **errp)
{
    g_autofree struct iovec *local = g_memdup2(iov, niov * sizeof(*iov));
    struct iovec *cur = local;
    int left = niov;

    *got = 0;
    while (left > 0 && cur->iov_len == 0) {
        cur++;
        left--;
    }
    while (left > 0) {
        ssize_t n;

        if (s->shut) {
            error_setg(errp, "Connection shut down");
            return -1;
        }
        if (s->layer) {
            n = s->layer->read(s->layer_opaque, cur->iov_base, cur->iov_len);
        } else {
            n = readv(s->fd, cur, MIN(left, IOV_MAX));
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                qemu_co_sock_wait(s, false);
                continue;
            }
            error_setg_errno(errp, errno, "Unable to read from socket");
            return -1;
        }
        if (n == 0) {
            error_setg(errp, "Unexpected end-of-file before all data were "
                       "read");
            return -1;
        }
        *got += n;
        while (left > 0 && (size_t)n >= cur->iov_len) {
            n -= cur->iov_len;
            cur++;
            left--;
        }
        if (left > 0) {
            cur->iov_base = (char *)cur->iov_base + n;
            cur->iov_len -= n;
        }
    }
    return 0;
}

int coroutine_fn qemu_co_sock_readv_all(QemuCoSocket *s,
                                        const struct iovec *iov, int niov,
                                        Error **errp)
{
    size_t got;

    return qemu_co_sock_readv_count(s, iov, niov, &got, errp);
}

int coroutine_fn qemu_co_sock_read_all_eof(QemuCoSocket *s, void *buf,
                                           size_t len, Error **errp)
{
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    Error *local_err = NULL;
    size_t got;

    if (qemu_co_sock_readv_count(s, &iov, 1, &got, &local_err) < 0) {
        if (got == 0) {
            error_free(local_err);
            return 0;
        }
        error_propagate(errp, local_err);
        return -1;
    }
    return 1;
}

int coroutine_fn qemu_co_sock_read_all(QemuCoSocket *s, void *buf,
                                       size_t len, Error **errp)
{
    struct iovec iov = { .iov_base = buf, .iov_len = len };

    return qemu_co_sock_readv_all(s, &iov, 1, errp);
}

int coroutine_fn qemu_co_sock_writev_all(QemuCoSocket *s,
                                         const struct iovec *iov, int niov,
                                         Error **errp)
{
    g_autofree struct iovec *local = g_memdup2(iov, niov * sizeof(*iov));
    struct iovec *cur = local;
    int left = niov;

    while (left > 0 && cur->iov_len == 0) {
        cur++;
        left--;
    }
    while (left > 0) {
        struct msghdr msg = { .msg_iov = cur, .msg_iovlen = MIN(left, IOV_MAX) };
        ssize_t n;

        if (s->shut) {
            error_setg(errp, "Connection shut down");
            return -1;
        }
        if (s->layer) {
            n = s->layer->write(s->layer_opaque, cur->iov_base,
                                cur->iov_len);
        } else {
            n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                qemu_co_sock_wait(s, true);
                continue;
            }
            error_setg_errno(errp, errno, "Unable to write to socket");
            return -1;
        }
        while (left > 0 && (size_t)n >= cur->iov_len) {
            n -= cur->iov_len;
            cur++;
            left--;
        }
        if (left > 0) {
            cur->iov_base = (char *)cur->iov_base + n;
            cur->iov_len -= n;
        }
    }
    return 0;
}

int coroutine_fn qemu_co_sock_write_all(QemuCoSocket *s, const void *buf,
                                        size_t len, Error **errp)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return qemu_co_sock_writev_all(s, &iov, 1, errp);
}

void qemu_co_sock_shutdown(QemuCoSocket *s)
{
    Coroutine *rco = s->read_co;
    Coroutine *wco = s->write_co;

    if (s->shut) {
        return;
    }
    s->shut = true;
    shutdown(s->fd, SHUT_RDWR);
    s->read_co = NULL;
    s->write_co = NULL;
    qemu_co_sock_watch(s, false, false);
    if (rco) {
        aio_co_wake(rco);
    }
    if (wco) {
        aio_co_wake(wco);
    }
}

void qemu_co_sock_close(QemuCoSocket *s)
{
    assert(!s->read_co && !s->write_co);
    if (s->fd >= 0) {
        qemu_co_sock_watch(s, false, false);
        close(s->fd);
        s->fd = -1;
    }
}
