/*
 * State shared by the monitor's source files.
 */
#ifndef MONITOR_INTERNAL_H
#define MONITOR_INTERNAL_H

#include "monitor/monitor.h"
#include "monitor/qjson.h"
#include "qemu/coroutine.h"
#include "qemu/queue.h"

struct Monitor {
    QLIST_ENTRY(Monitor) next;
    int in_fd;                  /* -1: fed by monitor_qmp_feed() only */
    int out_fd;                 /* may equal in_fd (sockets) */
    bool pretty;
    bool negotiated;            /* qmp_capabilities has succeeded */
    /*
     * The peer is gone (or writing to it failed): no more input is read
     * and output is dropped.  The dispatcher coroutine notices, finishes
     * the command it is running and frees the monitor.
     */
    bool closed;
    /*
     * The input reached end of file (a script on stdin, a client that
     * shut down its sending side): requests already received are still
     * answered, then the session closes once its output is written.
     */
    bool input_eof;
    bool reading;               /* the read handler is registered */
    bool writing;               /* the write handler is registered */
    QJsonStreamer *streamer;
    GQueue requests;            /* QmpRequest *, in arrival order */
    Coroutine *co;              /* the dispatcher; runs one request at a time */
    bool co_waiting;            /* co is parked waiting for a request */
    bool co_busy;               /* co is running a command */
    GString *outbuf;            /* replies and events not yet written */
};

/* The list of live monitors (monitor.c). */
void monitor_list_add(Monitor *mon);
void monitor_list_remove(Monitor *mon);
/* Iteration; a callback must not remove monitors. */
void monitor_list_foreach(void (*fn)(Monitor *mon, void *opaque),
                          void *opaque);

/* Queues @msg (borrowed) plus "\r\n" for @mon and starts writing it. */
void monitor_qmp_send(Monitor *mon, JsonNode *msg);

/* Set by monitor/qmp.c around each non-coroutine command. */
extern Monitor *monitor_cur_mon;

#endif
