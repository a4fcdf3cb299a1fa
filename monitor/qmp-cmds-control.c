/*
 * QMP commands about the session and the daemon itself: qmp_capabilities,
 * query-version, query-commands, query-status and quit.
 */
#include "qemu/osdep.h"
#include "monitor-internal.h"
#include "qapi/qapi-commands.h"

void qmp_qmp_capabilities(QMPCapabilityList *enable, Error **errp)
{
    Monitor *mon = monitor_cur();

    assert(mon);
    if (mon->negotiated) {
        /* QEMU's wording and class for a second negotiation. */
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Capabilities negotiation is already complete, command "
                  "ignored");
        return;
    }
    /* The greeting offers no capability, so none can be enabled. */
    if (enable) {
        error_setg(errp, "Capability '%s' not available",
                   QMPCapability_str(enable->value));
        return;
    }
    mon->negotiated = true;
}

VersionInfo *qmp_query_version(Error **errp)
{
    VersionInfo *info = g_new0(VersionInfo, 1);
    unsigned major = 0, minor = 0, micro = 0;

    sscanf(QBLOCK_VERSION, "%u.%u.%u", &major, &minor, &micro);
    info->qemu = g_new0(VersionTriple, 1);
    info->qemu->major = major;
    info->qemu->minor = minor;
    info->qemu->micro = micro;
    info->package = g_strdup_printf("qblock %s", QBLOCK_VERSION);
    return info;
}

static void add_command_info(const QmpCommand *cmd, void *opaque)
{
    CommandInfoList ***tail = opaque;
    CommandInfoList *elem = g_new0(CommandInfoList, 1);

    elem->value = g_new0(CommandInfo, 1);
    elem->value->name = g_strdup(cmd->name);
    **tail = elem;
    *tail = &elem->next;
}

CommandInfoList *qmp_query_commands(Error **errp)
{
    CommandInfoList *list = NULL;
    CommandInfoList **tail = &list;

    /* In name order, as the table iterates. */
    qmp_for_each_command(monitor_qmp_commands(), add_command_info, &tail);
    return list;
}

/* There is no guest: the daemon is always "running". */
StatusInfo *qmp_query_status(Error **errp)
{
    StatusInfo *info = g_new0(StatusInfo, 1);

    info->running = true;
    info->singlestep = false;
    info->status = RUN_STATE_RUNNING;
    return info;
}

/*
 * The reply is sent before the daemon acts on the request: the main loop
 * checks monitor_exit_requested() once this command has completed.
 */
void qmp_quit(Error **errp)
{
    monitor_request_exit();
}
