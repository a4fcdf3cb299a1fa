/*
 * Unit tests for QDict options and the keyval parser.
 */
#include "qemu/osdep.h"
#include "qemu/qdict.h"

static void test_clone_is_deep(void)
{
    QDict *orig = keyval_parse("driver=qcow2,file.driver=file,"
                               "file.filename=a.img", NULL, &error_abort);
    QDict *copy = qdict_clone(orig);

    qdict_put_str(qdict_get_qdict(copy, "file"), "filename", "b.img");
    qdict_del(qdict_get_qdict(copy, "file"), "driver");
    g_assert_cmpstr(qdict_get_try_str(qdict_get_qdict(orig, "file"),
                                      "filename"), ==, "a.img");
    g_assert_cmpstr(qdict_get_try_str(qdict_get_qdict(orig, "file"),
                                      "driver"), ==, "file");
    qobject_unref(copy);
    qobject_unref(orig);
}

static void test_keyval_nesting_and_escapes(void)
{
    QDict *d = keyval_parse("x.img,cache.direct=on,opt=a,,b", "file",
                            &error_abort);
    QDict *cache = qdict_get_qdict(d, "cache");

    g_assert_cmpstr(qdict_get_try_str(d, "file"), ==, "x.img");
    g_assert_nonnull(cache);
    g_assert_cmpstr(qdict_get_try_str(cache, "direct"), ==, "on");
    g_assert_cmpstr(qdict_get_try_str(d, "opt"), ==, "a,b");
    qobject_unref(d);
}

static void test_keyval_errors(void)
{
    Error *err = NULL;

    g_assert_null(keyval_parse("a=1,a=2", NULL, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'a' is specified more than once");
    error_free_or_abort(&err);

    g_assert_null(keyval_parse("novalue", NULL, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Expected '=' after parameter 'novalue'");
    error_free_or_abort(&err);

    g_assert_null(keyval_parse("a=1,a.b=2", NULL, &err));
    error_free_or_abort(&err);

    g_assert_null(keyval_parse("a..b=1", NULL, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Invalid parameter 'a..b'");
    error_free_or_abort(&err);
}

static void test_extract_subqdict(void)
{
    QDict *d = qdict_new();
    QDict *sub;

    qdict_put_str(d, "driver", "raw");
    qdict_put_str(d, "file.filename", "f.img");
    qdict_put_str(d, "file.cache.direct", "on");
    qdict_put_str(d, "filex", "keep");
    sub = qdict_extract_subqdict(d, "file");
    g_assert_cmpstr(qdict_get_try_str(sub, "filename"), ==, "f.img");
    g_assert_cmpstr(qdict_get_try_str(qdict_get_qdict(sub, "cache"),
                                      "direct"), ==, "on");
    g_assert_false(qdict_haskey(d, "file.filename"));
    g_assert_true(qdict_haskey(d, "filex"));
    g_assert_cmpuint(qdict_size(d), ==, 2);
    qobject_unref(sub);
    qobject_unref(d);
}

static void test_typed_getters(void)
{
    QDict *d = qdict_from_json("{\"a\": true, \"b\": \"off\", \"c\": 7,"
                               " \"s\": \"64k\", \"bad\": \"maybe\"}",
                               &error_abort);
    static const char *const names[] = { "x", "y", NULL };
    Error *err = NULL;
    bool bv;
    int64_t iv;
    uint64_t uv;
    int ev;

    g_assert_true(qdict_get_bool_opt(d, "a", false, &bv, &error_abort));
    g_assert_true(bv);
    g_assert_true(qdict_get_bool_opt(d, "b", true, &bv, &error_abort));
    g_assert_false(bv);
    g_assert_true(qdict_get_bool_opt(d, "missing", true, &bv, &error_abort));
    g_assert_true(bv);
    g_assert_false(qdict_get_bool_opt(d, "bad", true, &bv, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'bad' expects 'on' or 'off'");
    error_free_or_abort(&err);

    g_assert_true(qdict_get_int_opt(d, "c", 0, &iv, &error_abort));
    g_assert_cmpint(iv, ==, 7);
    g_assert_true(qdict_get_size_opt(d, "s", 0, &uv, &error_abort));
    g_assert_cmpuint(uv, ==, 65536);
    g_assert_false(qdict_get_size_opt(d, "bad", 0, &uv, &err));
    error_free_or_abort(&err);
    g_assert_false(qdict_get_enum_opt(d, "bad", names, 0, &ev, &err));
    error_free_or_abort(&err);
    qobject_unref(d);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qdict/clone-is-deep", test_clone_is_deep);
    g_test_add_func("/qdict/keyval/nesting-escapes",
                    test_keyval_nesting_and_escapes);
    g_test_add_func("/qdict/keyval/errors", test_keyval_errors);
    g_test_add_func("/qdict/extract-subqdict", test_extract_subqdict);
    g_test_add_func("/qdict/typed-getters", test_typed_getters);
    return g_test_run();
}
