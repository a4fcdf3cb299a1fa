/*
 * The QMP monitor: JSON command sessions on sockets (or any pair of file
 * descriptors), events broadcast to every session that has negotiated
 * capabilities, and the human-monitor-command passthrough.
 *
 * Everything here runs in the main loop thread.
 */
#ifndef MONITOR_MONITOR_H
#define MONITOR_MONITOR_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qapi/qmp-dispatch.h"

typedef struct Monitor Monitor;

/* Registers the linked QMP commands; call once before adding monitors. */
void monitor_init_globals(void);
/* The table the monitors dispatch through (query-commands lists it). */
const QmpCommandList *monitor_qmp_commands(void);

/*
 * Listens on @addr ("unix:PATH" or "HOST:PORT"); every client that
 * connects gets its own QMP session.
 * With @wait, returns only once the first client has connected.
 * Unix socket files are removed again by monitor_cleanup().
 */
bool monitor_add_qmp_server(const char *addr, bool pretty,
                            bool wait, Error **errp);

/*
 * A QMP session on already-open descriptors (-qmp stdio: 0 and 1).  The
 * monitor takes over both.  @in_fd -1: input comes only from
 * monitor_qmp_feed() (the fuzzer).
 */
Monitor *monitor_new_qmp_fds(int in_fd, int out_fd, bool pretty);
/* Hands @len bytes to @mon's input path as if read from its fd. */
void monitor_qmp_feed(Monitor *mon, const char *buf, size_t len);
/* True while @mon has requests queued or a command running. */
bool monitor_qmp_busy(Monitor *mon);

/*
 * The monitor whose (non-coroutine) command is running, or NULL.  Command
 * handlers use it for per-session state such as capability negotiation.
 */
Monitor *monitor_cur(void);

/* Sends queued replies (waiting up to about a second), then closes every
 * session and listener. */
void monitor_cleanup(void);

/* "quit" and the signal handlers ask the daemon to exit through these. */
void monitor_request_exit(void);
bool monitor_exit_requested(void);

#endif
