/*
 * Stream sockets: addresses in QEMU's SocketAddress shapes, listening and
 * connecting helpers, and coroutine-friendly I/O on non-blocking sockets.
 *
 * Addresses are {"type": "unix", "path": P} or {"type": "inet", "host": H,
 * "port": P}; "unix:PATH" and "HOST:PORT" strings parse to the same.
 *
 * All functions run in the main loop thread.
 */
#ifndef QEMU_SOCKETS_H
#define QEMU_SOCKETS_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/aio.h"
#include "qemu/qdict.h"
#include "qapi/qapi-types.h"

/*
 * SocketAddress is the QAPI type (qapi/sockets.json): free it with
 * qapi_free_SocketAddress() or g_autoptr(SocketAddress).
 */
SocketAddress *socket_address_new_unix(const char *path);
SocketAddress *socket_address_new_inet(const char *host, const char *port);
SocketAddress *socket_address_copy(const SocketAddress *addr);

/* {"type": "unix", "path"} or {"type": "inet", "host", "port"}. */
SocketAddress *socket_address_from_qdict(QDict *dict, Error **errp);
/* Adds the address's members (type, path / host, port) to @dict. */
void socket_address_to_qdict(const SocketAddress *addr, QDict *dict);
/* "unix:PATH" or "HOST:PORT" ("[V6]:PORT" allowed). */
SocketAddress *socket_parse(const char *str, Error **errp);
/* "unix:PATH" or "HOST:PORT"; g_free the result. */
char *socket_address_to_string(const SocketAddress *addr);

/*
 * Blocking connect; returns a blocking fd or -1 with @errp set.
 */
int socket_connect(const SocketAddress *addr, Error **errp);
/*
 * Binds and listens (SO_REUSEADDR for inet; an existing unix socket file
 * is replaced).  Returns a non-blocking, close-on-exec fd or -1.
 */
int socket_listen(const SocketAddress *addr, int backlog, Error **errp);

int qemu_socket_set_nonblock(int fd, bool nonblock);

/*
 * A listening socket whose accepted connections are passed to @cb (the
 * callee owns the fd, which is non-blocking and close-on-exec).  Accepts
 * run from the main loop through aio_set_fd_handler.
 */
typedef void QemuSocketAcceptFunc(int fd, void *opaque);
typedef struct QemuSocketListener QemuSocketListener;

QemuSocketListener *qemu_socket_listener_new(const SocketAddress *addr,
                                             int backlog,
                                             QemuSocketAcceptFunc *cb,
                                             void *opaque, Error **errp);
/* Stops (or resumes) accepting; pending connections wait in the backlog. */
void qemu_socket_listener_set_paused(QemuSocketListener *l, bool paused);
/* Closes the socket and, for unix sockets, removes the socket file. */
void qemu_socket_listener_free(QemuSocketListener *l);

/*
 * A connected non-blocking socket that coroutines read and write.  At
 * most one coroutine reads and one writes at a time (callers serialise
 * with their own locks); each waits for readiness through the fd
 * handler, which is registered only while somebody waits.
 *
 * qemu_co_sock_shutdown() wakes both waiters; their calls then fail, so a
 * connection can be torn down while requests are parked on it.
 */
/*
 * An optional layer (TLS) between the coroutine I/O and the fd.  Each
 * function moves up to @len bytes and returns their count, 0 at
 * end-of-file (reads), or -1 with errno set (EAGAIN: nothing is buffered;
 * wait for the fd in the call's own direction, then call again with the
 * same buffer).  The socket is handed one iovec element at a time.
 */
typedef struct QemuCoSocketLayer {
    ssize_t (*read)(void *opaque, void *buf, size_t len);
    ssize_t (*write)(void *opaque, const void *buf, size_t len);
} QemuCoSocketLayer;

typedef struct QemuCoSocket {
    int fd;
    Coroutine *read_co;
    Coroutine *write_co;
    bool watch_read;            /* the fd handlers registered right now */
    bool watch_write;
    bool shut;
    const QemuCoSocketLayer *layer;     /* NULL: plain fd I/O */
    void *layer_opaque;
} QemuCoSocket;

/* Takes over @fd (made non-blocking). */
void qemu_co_sock_init(QemuCoSocket *s, int fd);
/*
 * Reads exactly @len bytes.  Returns 1 on success, 0 if the peer closed
 * the connection before the first byte, -1 (with @errp) otherwise.
 */
int coroutine_fn qemu_co_sock_read_all_eof(QemuCoSocket *s, void *buf,
                                           size_t len, Error **errp);
/* Like the above, but end-of-file is an error too; 0 or -1. */
int coroutine_fn qemu_co_sock_read_all(QemuCoSocket *s, void *buf,
                                       size_t len, Error **errp);
/* Reads into every byte of the vector; 0 or -1. */
int coroutine_fn qemu_co_sock_readv_all(QemuCoSocket *s,
                                        const struct iovec *iov, int niov,
                                        Error **errp);
/* Writes every byte of the vector (MSG_NOSIGNAL); 0 or -1. */
int coroutine_fn qemu_co_sock_writev_all(QemuCoSocket *s,
                                         const struct iovec *iov, int niov,
                                         Error **errp);
int coroutine_fn qemu_co_sock_write_all(QemuCoSocket *s, const void *buf,
                                        size_t len, Error **errp);
/* Routes later reads and writes through @layer (NULL: the plain fd). */
void qemu_co_sock_set_layer(QemuCoSocket *s, const QemuCoSocketLayer *layer,
                            void *opaque);
/*
 * Waits until the fd is readable (or writable) or the socket is shut
 * down, for layers that drive the fd themselves (TLS handshakes).
 */
void coroutine_fn qemu_co_sock_wait_fd(QemuCoSocket *s, bool write);
/* Shuts the connection down both ways and wakes any waiter. */
void qemu_co_sock_shutdown(QemuCoSocket *s);
/* Closes the fd; nobody may be waiting on it. */
void qemu_co_sock_close(QemuCoSocket *s);

#endif
