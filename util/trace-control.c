/*
 * Trace point control: the registry of events, enabling them by glob
 * pattern, and the stderr backend.
 *
 * Every pattern ever applied is remembered in order, and a group that
 * registers late (constructors run in link order) gets them replayed, so
 * the result does not depend on when a group was registered.
 */
#include "qemu/osdep.h"
#include "qemu/trace.h"
#include "qemu/error.h"

typedef struct TraceGroup {
    TraceEvent *events;
    size_t n;
} TraceGroup;

/* Protects groups and patterns; emitting does not need it. */
static GMutex trace_lock;
static GArray *trace_groups;        /* of TraceGroup */
static GPtrArray *trace_patterns;   /* of char *, "-" prefixed = disable */

/* Applies one pattern to @n events; returns how many matched. */
static int trace_apply_pattern(TraceEvent *events, size_t n,
                               const char *pattern)
{
    bool enable = pattern[0] != '-';
    const char *glob = enable ? pattern : pattern + 1;
    int matched = 0;

    for (size_t i = 0; i < n; i++) {
        if (g_pattern_match_simple(glob, events[i].name)) {
            *events[i].state = enable;
            matched++;
        }
    }
    return matched;
}

void trace_event_register_group(TraceEvent *events, size_t n)
{
    TraceGroup group = { .events = events, .n = n };

    g_mutex_lock(&trace_lock);
    if (!trace_groups) {
        trace_groups = g_array_new(FALSE, FALSE, sizeof(TraceGroup));
    }
    g_array_append_val(trace_groups, group);
    if (trace_patterns) {
        for (guint i = 0; i < trace_patterns->len; i++) {
            trace_apply_pattern(events, n, g_ptr_array_index(trace_patterns, i));
        }
    }
    g_mutex_unlock(&trace_lock);
}

/*
 * Returns the number of events matching @pattern, which are now all
 * enabled (or disabled with a leading '-').
 */
int trace_enable_events(const char *pattern)
{
    int matched = 0;

    g_mutex_lock(&trace_lock);
    if (!trace_patterns) {
        trace_patterns = g_ptr_array_new_with_free_func(g_free);
    }
    g_ptr_array_add(trace_patterns, g_strdup(pattern));
    if (trace_groups) {
        for (guint i = 0; i < trace_groups->len; i++) {
            TraceGroup *g = &g_array_index(trace_groups, TraceGroup, i);

            matched += trace_apply_pattern(g->events, g->n, pattern);
        }
    }
    g_mutex_unlock(&trace_lock);
    return matched;
}

/*
 * Enables one pattern given by the user.  A plain name (no wildcard)
 * that matches nothing is most likely a typo, so it gets a warning.
 */
static void trace_enable_user_pattern(const char *pattern)
{
    const char *glob = pattern[0] == '-' ? pattern + 1 : pattern;

    if (trace_enable_events(pattern) == 0 && !strpbrk(glob, "*?")) {
        warn_report("trace event '%s' does not exist", glob);
    }
}

/* Enables the patterns listed in @path, one per line, '#' comments. */
static bool trace_enable_from_file(const char *path)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *contents = NULL;
    g_auto(GStrv) lines = NULL;

    if (!g_file_get_contents(path, &contents, NULL, &err)) {
        error_report("-trace events=%s: %s", path, err->message);
        return false;
    }
    lines = g_strsplit(contents, "\n", -1);
    for (char **l = lines; *l; l++) {
        char *pattern = g_strstrip(*l);

        if (*pattern && *pattern != '#') {
            trace_enable_user_pattern(pattern);
        }
    }
    return true;
}

/*
 * @optarg is a comma-separated list of "enable=PATTERN", "events=FILE"
 * and bare PATTERNs.
 */
bool trace_opt_parse(const char *optarg)
{
    g_auto(GStrv) items = g_strsplit(optarg, ",", -1);

    for (char **item = items; *item; item++) {
        const char *value;

        if (!**item) {
            continue;
        }
        if (g_str_has_prefix(*item, "enable=")) {
            value = *item + strlen("enable=");
            if (!*value) {
                error_report("-trace: 'enable' needs a pattern");
                return false;
            }
            trace_enable_user_pattern(value);
        } else if (g_str_has_prefix(*item, "events=")) {
            if (!trace_enable_from_file(*item + strlen("events="))) {
                return false;
            }
        } else if (strchr(*item, '=')) {
            error_report("-trace: invalid parameter '%.*s'",
                         (int)(strchr(*item, '=') - *item), *item);
            return false;
        } else {
            trace_enable_user_pattern(*item);
        }
    }
    return true;
}

void trace_init_from_env(void)
{
    const char *env = getenv("QBLOCK_TRACE");

    if (env && *env) {
        trace_opt_parse(env);
    }
}

void trace_list_events(FILE *f)
{
    g_mutex_lock(&trace_lock);
    if (trace_groups) {
        for (guint i = 0; i < trace_groups->len; i++) {
            TraceGroup *g = &g_array_index(trace_groups, TraceGroup, i);

            for (size_t j = 0; j < g->n; j++) {
                fprintf(f, "%s\n", g->events[j].name);
            }
        }
    }
    g_mutex_unlock(&trace_lock);
}

/*
 * The whole line goes out in one write() so that lines from different
 * threads or processes sharing stderr do not interleave.
 */
void trace_emit(const char *name, const char *fmt, ...)
{
    int saved_errno = errno;
    gint64 now = g_get_real_time();
    g_autoptr(GString) line = g_string_new(NULL);
    va_list ap;
    const char *p;
    size_t left;

    g_string_printf(line, "%d@%" PRId64 ".%06" PRId64 ":%s ", (int)getpid(),
                    now / G_USEC_PER_SEC, now % G_USEC_PER_SEC, name);
    va_start(ap, fmt);
    g_string_append_vprintf(line, fmt, ap);
    va_end(ap);
    g_string_append_c(line, '\n');

    p = line->str;
    left = line->len;
    while (left) {
        ssize_t n = write(STDERR_FILENO, p, left);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        p += n;
        left -= n;
    }
    /* Tracing must not disturb the errno the traced code relies on. */
    errno = saved_errno;
}
