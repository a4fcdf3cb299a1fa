/*
 * Trace point tests: enabling by pattern, option parsing, the emitted
 * line format (stderr captured through a pipe), the thread pool's real
 * trace points, and tracetool.py's handling of good and bad input.
 */
#include "qemu/osdep.h"
#include "qemu/trace.h"
#include "qemu/aio.h"
#include "qemu/thread-pool.h"
#include "util-trace.h"

typedef void CaptureFunc(void *opaque);

/* Runs @fn with stderr redirected into a pipe; returns what it wrote. */
static char *capture_stderr(CaptureFunc *fn, void *opaque)
{
    int fds[2];
    int saved;
    GString *out = g_string_new(NULL);
    char buf[4096];
    ssize_t n;

    g_assert_cmpint(pipe(fds), ==, 0);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    g_assert_cmpint(saved, >=, 0);
    g_assert_cmpint(dup2(fds[1], STDERR_FILENO), ==, STDERR_FILENO);
    close(fds[1]);

    fn(opaque);

    fflush(stderr);
    g_assert_cmpint(dup2(saved, STDERR_FILENO), ==, STDERR_FILENO);
    close(saved);
    /* All writers are closed now, so this reads up to EOF. */
    while ((n = read(fds[0], buf, sizeof(buf))) > 0) {
        g_string_append_len(out, buf, n);
    }
    close(fds[0]);
    return g_string_free(out, FALSE);
}

static void emit_submit(void *opaque)
{
    trace_thread_pool_submit((void *)0x1234, (void *)0x99, (void *)0xabc);
}

static void emit_both(void *opaque)
{
    trace_thread_pool_submit((void *)0x1234, (void *)0x99, (void *)0xabc);
    trace_thread_pool_complete((void *)0x1234, (void *)0xabc, -5);
}

static void assert_line(const char *line, const char *body)
{
    g_autofree char *re = g_strdup_printf("^%d@[0-9]+\\.[0-9]{6}:%s$",
                                          (int)getpid(), body);

    if (!g_regex_match_simple(re, line, 0, 0)) {
        g_test_message("line \"%s\" does not match /%s/", line, re);
        g_assert_not_reached();
    }
}

static void reset_all(void)
{
    trace_enable_events("-*");
}

static void test_list(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    trace_list_events(f);
    fclose(f);
    g_assert_nonnull(strstr(buf, "thread_pool_submit\n"));
    g_assert_nonnull(strstr(buf, "thread_pool_complete\n"));
    free(buf);
}

static void test_disabled_by_default(void)
{
    g_autofree char *out = NULL;

    reset_all();
    out = capture_stderr(emit_both, NULL);
    g_assert_cmpstr(out, ==, "");
}

static void test_enable_pattern(void)
{
    g_autofree char *out = NULL;
    g_auto(GStrv) lines = NULL;

    reset_all();
    g_assert_cmpint(trace_enable_events("thread_pool_sub*"), ==, 1);
    out = capture_stderr(emit_both, NULL);
    lines = g_strsplit(out, "\n", -1);
    g_assert_cmpint(g_strv_length(lines), ==, 2);
    assert_line(lines[0], "thread_pool_submit req 0x1234 func 0x99 arg 0xabc");
    g_assert_cmpstr(lines[1], ==, "");

    g_assert_cmpint(trace_enable_events("thread_pool_*"), ==, 2);
    g_free(out);
    out = capture_stderr(emit_both, NULL);
    g_strfreev(lines);
    lines = g_strsplit(out, "\n", -1);
    g_assert_cmpint(g_strv_length(lines), ==, 3);
    assert_line(lines[1], "thread_pool_complete req 0x1234 arg 0xabc ret -5");

    /* A leading '-' disables; '?' matches one character. */
    g_assert_cmpint(trace_enable_events("-thread_pool_complet?"), ==, 1);
    g_free(out);
    out = capture_stderr(emit_both, NULL);
    g_assert_nonnull(strstr(out, "thread_pool_submit"));
    g_assert_null(strstr(out, "thread_pool_complete"));

    g_assert_cmpint(trace_enable_events("no_such_event_*"), ==, 0);
    reset_all();
}

static void test_errno_preserved(void)
{
    g_autofree char *out = NULL;

    reset_all();
    trace_enable_events("thread_pool_submit");
    errno = 1234;
    out = capture_stderr(emit_submit, NULL);
    g_assert_cmpint(errno, ==, 1234);
    g_assert_cmpstr(out, !=, "");
    reset_all();
}

static void parse_bad_option(void *opaque)
{
    g_assert_false(trace_opt_parse(opaque));
}

static void test_opt_parse(void)
{
    g_autofree char *path = NULL;
    g_autofree char *out = NULL;
    g_autoptr(GError) err = NULL;
    int fd;

    reset_all();
    g_assert_true(trace_opt_parse("enable=thread_pool_complete"));
    g_assert_true(qblock_trace_state_thread_pool_complete);
    g_assert_false(qblock_trace_state_thread_pool_submit);
    g_assert_true(trace_opt_parse("thread_pool_submit,-thread_pool_complete"));
    g_assert_true(qblock_trace_state_thread_pool_submit);
    g_assert_false(qblock_trace_state_thread_pool_complete);

    reset_all();
    fd = g_file_open_tmp("trace-events-XXXXXX", &path, &err);
    g_assert_no_error(err);
    close(fd);
    g_file_set_contents(path, "# comment\n\n  thread_pool_compl*  \n", -1,
                        &err);
    g_assert_no_error(err);
    {
        g_autofree char *opt = g_strdup_printf("events=%s", path);

        g_assert_true(trace_opt_parse(opt));
    }
    g_assert_true(qblock_trace_state_thread_pool_complete);
    g_assert_false(qblock_trace_state_thread_pool_submit);
    unlink(path);

    out = capture_stderr(parse_bad_option, "events=/nonexistent/file");
    g_assert_nonnull(strstr(out, "/nonexistent/file"));
    g_free(out);
    out = capture_stderr(parse_bad_option, "file=foo");
    g_assert_nonnull(strstr(out, "invalid parameter 'file'"));
    g_free(out);
    out = capture_stderr(parse_bad_option, "enable=");
    g_assert_cmpstr(out, !=, "");
    reset_all();
}

static void test_env(void)
{
    reset_all();
    g_setenv("QBLOCK_TRACE", "thread_pool_*,-thread_pool_submit", TRUE);
    trace_init_from_env();
    g_unsetenv("QBLOCK_TRACE");
    g_assert_true(qblock_trace_state_thread_pool_complete);
    g_assert_false(qblock_trace_state_thread_pool_submit);
    reset_all();
}

static int pool_work(void *arg)
{
    return GPOINTER_TO_INT(arg);
}

typedef struct {
    bool done;
    int ret;
} PoolCo;

static void coroutine_fn pool_co(void *opaque)
{
    PoolCo *s = opaque;

    s->ret = thread_pool_submit_co(pool_work, GINT_TO_POINTER(42));
    s->done = true;
}

static void run_pool_request(void *opaque)
{
    PoolCo *s = opaque;

    qemu_coroutine_enter(qemu_coroutine_create(pool_co, s));
    AIO_WAIT_WHILE(!s->done);
}

/*
 * The trace lines of @out; the first coroutine switch may also make a
 * sanitizer print a warning there.
 */
static char **trace_lines(const char *out)
{
    g_auto(GStrv) all = g_strsplit(out, "\n", -1);
    GPtrArray *lines = g_ptr_array_new();

    for (char **l = all; *l; l++) {
        if (g_regex_match_simple("^[0-9]+@", *l, 0, 0)) {
            g_ptr_array_add(lines, g_strdup(*l));
        }
    }
    g_ptr_array_add(lines, NULL);
    return (char **)g_ptr_array_free(lines, FALSE);
}

/* The real trace points fire around a thread pool request. */
static void test_thread_pool_events(void)
{
    PoolCo s = { 0 };
    g_autofree char *out = NULL;
    g_auto(GStrv) lines = NULL;

    reset_all();
    trace_enable_events("thread_pool_*");
    out = capture_stderr(run_pool_request, &s);
    reset_all();
    g_assert_true(s.done);
    g_assert_cmpint(s.ret, ==, 42);
    lines = trace_lines(out);
    g_assert_cmpint(g_strv_length(lines), ==, 2);
    assert_line(lines[0], "thread_pool_submit req 0x[0-9a-f]+ func 0x[0-9a-f]+ "
                "arg 0x2a");
    assert_line(lines[1], "thread_pool_complete req 0x[0-9a-f]+ arg 0x2a "
                "ret 42");
}

/* Runs tracetool.py on @events; returns its exit status. */
static int run_tracetool(const char *mode, const char *events,
                         char **output, char **err_out)
{
    const char *srcdir = g_getenv("G_TEST_SRCDIR");
    g_autofree char *script = NULL;
    g_autofree char *dir = g_dir_make_tmp("tracetool-XXXXXX", NULL);
    g_autofree char *in = g_build_filename(dir, "trace-events", NULL);
    g_autofree char *out = g_build_filename(dir, "out", NULL);
    g_autofree char *mode_arg = g_strdup_printf("--mode=%s", mode);
    g_autoptr(GError) err = NULL;
    int status;

    g_assert_nonnull(srcdir);
    script = g_build_filename(srcdir, "..", "..", "scripts", "tracetool.py",
                              NULL);
    g_assert_true(g_file_set_contents(in, events, -1, NULL));
    {
        const char *argv[] = {
            "python3", script, mode_arg, "--group=test", in, out, NULL
        };

        g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL,
                                   G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
                                   err_out, &status, &err));
    }
    g_assert_no_error(err);
    if (!g_file_get_contents(out, output, NULL, NULL)) {
        *output = NULL;
    }
    unlink(in);
    unlink(out);
    rmdir(dir);
    return status;
}

static void test_tracetool(void)
{
    static const struct {
        const char *events;
        const char *error;
    } bad[] = {
        { "# c\n\nfoo(int) \"x\"\n", ":3: error: argument \"int\"" },
        { "foo(int x \"x\"\n", ":1: error: cannot parse event" },
        { "foo(int x) x\n", ":1: error: expected a format string" },
        { "foo(int x, int x) \"%d\"\n", ":1: error: duplicate argument" },
        { "a() \"x\"\nb() \"y\"\na() \"z\"\n",
          ":3: error: duplicate event \"a\" (first defined on line 1)" },
        { "foo(int x) \"%d\" junk\n", ":1: error: unexpected text" },
    };
    char *output, *err_out;
    int status;

    if (!g_getenv("G_TEST_SRCDIR")) {
        g_test_skip("G_TEST_SRCDIR not set");
        return;
    }
    status = run_tracetool("h", "# comment\n\n"
                           "ev_one(uint64_t off, const char *name) "
                           "\"off 0x%\" PRIx64 \" name %s\"\n"
                           "ev_two(void) \"nothing\"\n",
                           &output, &err_out);
    g_assert_cmpint(status, ==, 0);
    g_assert_cmpstr(err_out, ==, "");
    g_assert_nonnull(strstr(output, "static inline void trace_ev_one("
                            "uint64_t off, const char *name)"));
    g_assert_nonnull(strstr(output, "if (unlikely(qblock_trace_state_ev_one))"));
    g_assert_nonnull(strstr(output, "trace_emit(\"ev_one\", \"off 0x%\" PRIx64 "
                            "\" name %s\", off, name);"));
    g_assert_nonnull(strstr(output, "static inline void trace_ev_two(void)"));
    g_free(output);
    g_free(err_out);

    status = run_tracetool("c", "ev_one(int x) \"%d\"\n", &output, &err_out);
    g_assert_cmpint(status, ==, 0);
    g_assert_nonnull(strstr(output, "bool qblock_trace_state_ev_one;"));
    g_assert_nonnull(strstr(output, "trace_event_register_group("));
    g_assert_nonnull(strstr(output, "__attribute__((constructor))"));
    g_free(output);
    g_free(err_out);

    /* An empty file gives a valid, empty header. */
    status = run_tracetool("h", "", &output, &err_out);
    g_assert_cmpint(status, ==, 0);
    g_assert_null(strstr(output, "trace_emit"));
    g_free(output);
    g_free(err_out);

    for (int i = 0; i < ARRAY_SIZE(bad); i++) {
        status = run_tracetool("h", bad[i].events, &output, &err_out);
        g_assert_cmpint(status, !=, 0);
        if (!strstr(err_out, bad[i].error)) {
            g_test_message("stderr \"%s\" lacks \"%s\"", err_out,
                           bad[i].error);
            g_assert_not_reached();
        }
        g_free(output);
        g_free(err_out);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/trace/list", test_list);
    g_test_add_func("/trace/disabled-by-default", test_disabled_by_default);
    g_test_add_func("/trace/enable-pattern", test_enable_pattern);
    g_test_add_func("/trace/errno-preserved", test_errno_preserved);
    g_test_add_func("/trace/opt-parse", test_opt_parse);
    g_test_add_func("/trace/env", test_env);
    g_test_add_func("/trace/thread-pool", test_thread_pool_events);
    g_test_add_func("/trace/tracetool", test_tracetool);
    return g_test_run();
}
