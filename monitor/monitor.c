/*
 * The list of monitors, event broadcast and the exit request.
 */
#include "qemu/osdep.h"
#include "monitor-internal.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"

static QmpCommandList *qmp_commands;
static QLIST_HEAD(, Monitor) monitors = QLIST_HEAD_INITIALIZER(monitors);
static bool exit_requested;

Monitor *monitor_cur_mon;

void monitor_init_globals(void)
{
    if (!qmp_commands) {
        qmp_commands = qmp_command_list_new();
        qmp_init_marshal(qmp_commands);
    }
}

const QmpCommandList *monitor_qmp_commands(void)
{
    return qmp_commands;
}

void monitor_list_add(Monitor *mon)
{
    QLIST_INSERT_HEAD(&monitors, mon, next);
}

void monitor_list_remove(Monitor *mon)
{
    QLIST_REMOVE(mon, next);
}

void monitor_list_foreach(void (*fn)(Monitor *mon, void *opaque),
                          void *opaque)
{
    Monitor *mon;

    QLIST_FOREACH(mon, &monitors, next) {
        fn(mon, opaque);
    }
}

Monitor *monitor_cur(void)
{
    return monitor_cur_mon;
}

void monitor_request_exit(void)
{
    exit_requested = true;
}

bool monitor_exit_requested(void)
{
    return exit_requested;
}

static void send_event(Monitor *mon, void *opaque)
{
    /* Sessions still negotiating do not get events, as in QEMU. */
    if (mon->negotiated && !mon->closed) {
        monitor_qmp_send(mon, opaque);
    }
}

/*
 * The generated qapi_event_send_*() functions end here; @data is borrowed
 * and NULL for events without members.
 */
void qapi_event_emit(QAPIEvent event, JsonNode *data)
{
    JsonObject *msg = json_object_new();
    JsonObject *ts = json_object_new();
    JsonNode *node;
    gint64 now = g_get_real_time();

    json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
    json_object_set_object_member(msg, "timestamp", ts);
    json_object_set_string_member(msg, "event", QAPIEvent_str(event));
    if (data) {
        json_object_set_member(msg, "data", json_node_copy(data));
    }
    node = json_node_init_object(json_node_alloc(), msg);
    json_object_unref(msg);
    monitor_list_foreach(send_event, node);
    json_node_unref(node);
}
