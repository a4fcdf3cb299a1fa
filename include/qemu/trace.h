/*
 * Trace points.
 *
 * Each directory lists its events in a "trace-events" file; the build
 * generates "<dir>-trace.h" with one inline trace_NAME(args) per event.
 * Events are compiled in and cost one predictable branch when disabled.
 * They are enabled at run time with -trace PATTERN (glob, may repeat,
 * "-trace events=FILE" reads patterns from a file) or the QBLOCK_TRACE
 * environment variable (comma-separated patterns); output goes to stderr
 * as "PID@SECONDS.MICROS:name key=value ...".
 */
#ifndef QEMU_TRACE_H
#define QEMU_TRACE_H

#include "qemu/osdep.h"

typedef struct TraceEvent {
    const char *name;
    bool *state;            /* the flag the inline trace_NAME() tests */
} TraceEvent;

/* Called by generated code at start-up to register a group's events. */
void trace_event_register_group(TraceEvent *events, size_t n);

/*
 * Enables (or with a leading '-', disables) every event matching the glob
 * @pattern; returns the number of events changed.
 */
int trace_enable_events(const char *pattern);
/* Handles one -trace argument: "PATTERN", "enable=PATTERN", "events=FILE". */
bool trace_opt_parse(const char *optarg);
/* Applies $QBLOCK_TRACE. */
void trace_init_from_env(void);
/* Lists all event names, one per line, to @f. */
void trace_list_events(FILE *f);

void trace_emit(const char *name, const char *fmt, ...) QEMU_PRINTF(2, 3);

#endif
