/*
 * libFuzzer target: the QMP monitor's input path.  Each input is fed to a
 * fresh session as if read from its socket: the JSON splitter frames it,
 * the parser builds requests, and the dispatcher negotiates and runs the
 * control commands (the program links no block handlers, so no input can
 * touch files).  Replies go to /dev/null.  Hostile input must get error
 * replies: no crash, hang or unbounded allocation.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "block/block.h"
#include "monitor/monitor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int null_fd = -1;
    Monitor *mon;

    if (null_fd < 0) {
        bdrv_init();
        monitor_init_globals();
        null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        assert(null_fd >= 0);
    }
    /* The session owns its output fd; give it its own copy. */
    mon = monitor_new_qmp_fds(-1, dup(null_fd), false);
    monitor_qmp_feed(mon, (const char *)data, size);
    while (monitor_qmp_busy(mon)) {
        aio_poll(qemu_get_aio_context(), true);
    }
    monitor_cleanup();
    return 0;
}
