/*
 * String helper tests: size and integer parsers, size_to_str() against
 * what qemu-img prints, and the path helpers.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"

typedef struct SizeCase {
    const char *str;
    int ret;
    uint64_t val;           /* when ret == 0 */
} SizeCase;

static const SizeCase strtosz_cases[] = {
    { "0", 0, 0 },
    { "12345", 0, 12345 },
    { "1b", 0, 1 },
    { "1B", 0, 1 },
    { "1k", 0, KiB },
    { "1K", 0, KiB },
    { "1m", 0, MiB },
    { "1M", 0, MiB },
    { "1g", 0, GiB },
    { "1G", 0, GiB },
    { "1t", 0, TiB },
    { "1T", 0, TiB },
    { "1p", 0, 1024 * TiB },
    { "1P", 0, 1024 * TiB },
    { "1e", 0, 1024 * 1024 * TiB },
    { "1E", 0, 1024 * 1024 * TiB },
    { "15E", 0, 15ULL << 60 },
    { "010", 0, 10 },                       /* decimal, not octal */
    { " 1K", 0, KiB },                      /* leading blanks skipped */
    { "0x10", 0, 16 },
    { "0X1f", 0, 31 },
    { "0x10K", 0, 16 * KiB },
    { "1.5K", 0, 1536 },
    { "1.5k", 0, 1536 },
    { "0.5K", 0, 512 },
    { "1.5G", 0, 1536 * MiB },
    { "1.5T", 0, 1649267441664ULL },
    { "1.25M", 0, 1310720 },
    { "1.", 0, 1 },
    { "1.K", 0, KiB },
    { "1.0", 0, 1 },
    { "1.000K", 0, KiB },
    { "0.0009765625K", 0, 1 },              /* 2^-10 K is one byte */
    { "0.00048828125K", 0, 0 },             /* half a byte, rounded down */
    { "0.1k", 0, 102 },                     /* 102.4 bytes, as qemu-io */
    { "18446744073709551615", 0, UINT64_MAX },
    { "18446744073709551615B", 0, UINT64_MAX },
    { "18446744073709551616", -ERANGE, 0 },
    { "16E", -ERANGE, 0 },
    { "16384P", -ERANGE, 0 },
    /* Exact arithmetic: 16E minus 0.1 byte rounds down to 2^64 - 1. */
    { "15.9999999999999999999E", 0, UINT64_MAX },
    { "17179869184G", -ERANGE, 0 },
    /* (2^34 - 1) GiB + (1 - 2^-30) GiB */
    { "17179869183.99999999906867742538452148437500G", 0, UINT64_MAX },
    { "1.5", -EINVAL, 0 },                  /* half bytes... */
    { "1.5B", -EINVAL, 0 },
    { "1.0001K", 0, 1024 },                 /* 1024.1024 bytes */
    { "", -EINVAL, 0 },
    { " ", -EINVAL, 0 },
    { "K", -EINVAL, 0 },
    { "-1", -EINVAL, 0 },
    { "-0", -EINVAL, 0 },
    { "+1", 0, 1 },
    { ".5K", -EINVAL, 0 },
    { "1e3", -EINVAL, 0 },                  /* 'e' is exbi, then junk */
    { "inf", -EINVAL, 0 },
    { "nan", -EINVAL, 0 },
    { "0x", -EINVAL, 0 },
    { "0x1.8K", -EINVAL, 0 },
    { "0x1p1", -EINVAL, 0 },
    { "1KB", -EINVAL, 0 },
    { "1KiB", -EINVAL, 0 },
    { "1K ", -EINVAL, 0 },
    { "1,5K", -EINVAL, 0 },
    { "12x", -EINVAL, 0 },
};

static void test_strtosz_table(void)
{
    for (int i = 0; i < ARRAY_SIZE(strtosz_cases); i++) {
        const SizeCase *c = &strtosz_cases[i];
        uint64_t val = 0xdeadbeef;
        int ret = qemu_strtosz(c->str, NULL, &val);

        if (ret != c->ret) {
            g_test_message("qemu_strtosz(\"%s\") = %d, expected %d",
                           c->str, ret, c->ret);
        }
        g_assert_cmpint(ret, ==, c->ret);
        if (ret == 0) {
            g_assert_cmpuint(val, ==, c->val);
        } else {
            g_assert_cmpuint(val, ==, 0xdeadbeef);
        }
    }
}

static void test_strtosz_end(void)
{
    const char *end = NULL;
    const char *s;
    uint64_t val;

    s = "1K,rest";
    g_assert_cmpint(qemu_strtosz(s, &end, &val), ==, 0);
    g_assert_cmpuint(val, ==, KiB);
    g_assert_true(end == s + 2);

    s = "12x";
    g_assert_cmpint(qemu_strtosz(s, &end, &val), ==, 0);
    g_assert_cmpuint(val, ==, 12);
    g_assert_true(end == s + 2);

    s = "1.5M tail";
    g_assert_cmpint(qemu_strtosz(s, &end, &val), ==, 0);
    g_assert_cmpuint(val, ==, 3 * MiB / 2);
    g_assert_cmpstr(end, ==, " tail");

    s = "abc";
    end = NULL;
    g_assert_cmpint(qemu_strtosz(s, &end, &val), ==, -EINVAL);
    g_assert_true(end == s);

    s = "99999999999999999999K";
    g_assert_cmpint(qemu_strtosz(s, &end, &val), ==, -ERANGE);
    g_assert_true(end == s + strlen(s));
}

static void test_strtosz_mib(void)
{
    uint64_t val;

    g_assert_cmpint(qemu_strtosz_MiB("8", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 8 * MiB);
    g_assert_cmpint(qemu_strtosz_MiB("1.5", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 3 * MiB / 2);
    g_assert_cmpint(qemu_strtosz_MiB("512B", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 512);
    g_assert_cmpint(qemu_strtosz_MiB("4k", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, 4 * KiB);
    g_assert_cmpint(qemu_strtosz_MiB("1G", NULL, &val), ==, 0);
    g_assert_cmpuint(val, ==, GiB);
    g_assert_cmpint(qemu_strtosz_MiB("17592186044416", NULL, &val), ==,
                    -ERANGE);
    g_assert_cmpint(qemu_strtosz_MiB("x", NULL, &val), ==, -EINVAL);
}

static void test_strtoi64(void)
{
    const char *end;
    int64_t v;

    g_assert_cmpint(qemu_strtoi64("0", NULL, 0, &v), ==, 0);
    g_assert_cmpint(v, ==, 0);
    g_assert_cmpint(qemu_strtoi64("-42", NULL, 10, &v), ==, 0);
    g_assert_cmpint(v, ==, -42);
    g_assert_cmpint(qemu_strtoi64(" 42", NULL, 10, &v), ==, 0);
    g_assert_cmpint(v, ==, 42);
    g_assert_cmpint(qemu_strtoi64("0x1F", NULL, 0, &v), ==, 0);
    g_assert_cmpint(v, ==, 31);
    g_assert_cmpint(qemu_strtoi64("0x1F", NULL, 16, &v), ==, 0);
    g_assert_cmpint(v, ==, 31);
    g_assert_cmpint(qemu_strtoi64("1f", NULL, 16, &v), ==, 0);
    g_assert_cmpint(v, ==, 31);
    g_assert_cmpint(qemu_strtoi64("010", NULL, 0, &v), ==, 0);
    g_assert_cmpint(v, ==, 8);
    g_assert_cmpint(qemu_strtoi64("010", NULL, 10, &v), ==, 0);
    g_assert_cmpint(v, ==, 10);
    g_assert_cmpint(qemu_strtoi64("9223372036854775807", NULL, 0, &v), ==, 0);
    g_assert_cmpint(v, ==, INT64_MAX);
    g_assert_cmpint(qemu_strtoi64("-9223372036854775808", NULL, 0, &v), ==, 0);
    g_assert_cmpint(v, ==, INT64_MIN);
    g_assert_cmpint(qemu_strtoi64("9223372036854775808", NULL, 0, &v), ==,
                    -ERANGE);
    g_assert_cmpint(v, ==, INT64_MAX);
    g_assert_cmpint(qemu_strtoi64("-9223372036854775809", NULL, 0, &v), ==,
                    -ERANGE);
    g_assert_cmpint(v, ==, INT64_MIN);

    g_assert_cmpint(qemu_strtoi64("", NULL, 0, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtoi64("  ", NULL, 0, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtoi64("-", NULL, 0, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtoi64("abc", NULL, 10, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtoi64("12 ", NULL, 10, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtoi64("12a", NULL, 10, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtoi64("1f", NULL, 10, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtoi64("08", NULL, 0, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtoi64(NULL, NULL, 0, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtoi64("1", NULL, 1, &v), ==, -EINVAL);

    end = NULL;
    g_assert_cmpint(qemu_strtoi64("12a", &end, 10, &v), ==, 0);
    g_assert_cmpint(v, ==, 12);
    g_assert_cmpstr(end, ==, "a");
    end = NULL;
    g_assert_cmpint(qemu_strtoi64("xyz", &end, 10, &v), ==, -EINVAL);
    g_assert_cmpstr(end, ==, "xyz");
    g_assert_cmpint(qemu_strtoi64("99999999999999999999,", &end, 10, &v), ==,
                    -ERANGE);
    g_assert_cmpstr(end, ==, ",");
}

static void test_strtou64(void)
{
    const char *end;
    uint64_t v;

    g_assert_cmpint(qemu_strtou64("18446744073709551615", NULL, 0, &v), ==, 0);
    g_assert_cmpuint(v, ==, UINT64_MAX);
    g_assert_cmpint(qemu_strtou64("0xffffffffffffffff", NULL, 16, &v), ==, 0);
    g_assert_cmpuint(v, ==, UINT64_MAX);
    g_assert_cmpint(qemu_strtou64("18446744073709551616", NULL, 0, &v), ==,
                    -ERANGE);
    g_assert_cmpuint(v, ==, UINT64_MAX);
    g_assert_cmpint(qemu_strtou64("42", NULL, 10, &v), ==, 0);
    g_assert_cmpuint(v, ==, 42);
    g_assert_cmpint(qemu_strtou64("-0", NULL, 10, &v), ==, 0);
    g_assert_cmpuint(v, ==, 0);
    /* No wrap-around of negative numbers. */
    g_assert_cmpint(qemu_strtou64("-1", NULL, 10, &v), ==, -ERANGE);
    g_assert_cmpint(qemu_strtou64(" -5", NULL, 10, &v), ==, -ERANGE);
    g_assert_cmpint(qemu_strtou64("-", NULL, 10, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtou64("", NULL, 10, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtou64("1 ", NULL, 10, &v), ==, -EINVAL);
    g_assert_cmpint(qemu_strtou64("0x", NULL, 16, &v), ==, -EINVAL);

    g_assert_cmpint(qemu_strtou64("7:rest", &end, 10, &v), ==, 0);
    g_assert_cmpuint(v, ==, 7);
    g_assert_cmpstr(end, ==, ":rest");
}

static void test_strtoi(void)
{
    int v;

    g_assert_cmpint(qemu_strtoi("2147483647", NULL, 10, &v), ==, 0);
    g_assert_cmpint(v, ==, INT_MAX);
    g_assert_cmpint(qemu_strtoi("-2147483648", NULL, 10, &v), ==, 0);
    g_assert_cmpint(v, ==, INT_MIN);
    g_assert_cmpint(qemu_strtoi("2147483648", NULL, 10, &v), ==, -ERANGE);
    g_assert_cmpint(v, ==, INT_MAX);
    g_assert_cmpint(qemu_strtoi("-2147483649", NULL, 10, &v), ==, -ERANGE);
    g_assert_cmpint(v, ==, INT_MIN);
    g_assert_cmpint(qemu_strtoi("99999999999999999999", NULL, 10, &v), ==,
                    -ERANGE);
    g_assert_cmpint(v, ==, INT_MAX);
    g_assert_cmpint(qemu_strtoi("0x10", NULL, 0, &v), ==, 0);
    g_assert_cmpint(v, ==, 16);
    g_assert_cmpint(qemu_strtoi("10x", NULL, 0, &v), ==, -EINVAL);
}

/* Expected strings were taken from qemu-img 7.2's "virtual size:". */
static void test_size_to_str(void)
{
    static const struct {
        uint64_t val;
        const char *str;
    } cases[] = {
        { 0, "0 B" },
        { 512, "512 B" },
        { 999, "999 B" },
        { 1000, "0.977 KiB" },
        { 1024, "1 KiB" },
        { 1536, "1.5 KiB" },
        { 10240, "10 KiB" },
        { 65536, "64 KiB" },
        { 511488, "500 KiB" },
        { 513024, "501 KiB" },
        { 1000448, "977 KiB" },
        { 1022976, "999 KiB" },
        { 1023488, "1e+03 KiB" },
        { 1024000, "0.977 MiB" },
        { 1047552, "0.999 MiB" },
        { 1048064, "1 MiB" },
        { 1049088, "1 MiB" },
        { 1572864, "1.5 MiB" },
        { 104857600, "100 MiB" },
        { 1000000000, "954 MiB" },
        { 1073741824, "1 GiB" },
        { 1610612736, "1.5 GiB" },
        { 5000000000ULL, "4.66 GiB" },
        { 123456789504ULL, "115 GiB" },
        { 10995116277760ULL, "10 TiB" },
        { 1024 * 1024 * TiB, "1 EiB" },
        { UINT64_MAX, "16 EiB" },
    };

    for (int i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *s = size_to_str(cases[i].val);

        g_assert_cmpstr(s, ==, cases[i].str);
    }
}

static void test_pstrcpy(void)
{
    char buf[8];

    memset(buf, 'x', sizeof(buf));
    pstrcpy(buf, sizeof(buf), "abc");
    g_assert_cmpstr(buf, ==, "abc");
    pstrcpy(buf, sizeof(buf), "0123456789");
    g_assert_cmpstr(buf, ==, "0123456");
    pstrcpy(buf, 1, "abc");
    g_assert_cmpstr(buf, ==, "");
    buf[0] = 'q';
    pstrcpy(buf, 0, "abc");
    g_assert_cmpint(buf[0], ==, 'q');
}

static void test_strstart(void)
{
    const char *rest = NULL;

    g_assert_true(strstart("file:foo", "file:", &rest));
    g_assert_cmpstr(rest, ==, "foo");
    g_assert_true(strstart("abc", "", &rest));
    g_assert_cmpstr(rest, ==, "abc");
    g_assert_true(strstart("abc", "abc", NULL));
    rest = NULL;
    g_assert_false(strstart("ab", "abc", &rest));
    g_assert_null(rest);
    g_assert_false(strstart("xabc", "abc", &rest));
}

static void test_path_has_protocol(void)
{
    g_assert_true(path_has_protocol("nbd:localhost:10809"));
    g_assert_true(path_has_protocol("file:/tmp/x"));
    g_assert_true(path_has_protocol("json:{}"));
    g_assert_false(path_has_protocol("/tmp/x:y"));
    g_assert_false(path_has_protocol("dir/a:b"));
    g_assert_false(path_has_protocol("plain.qcow2"));
    g_assert_false(path_has_protocol(""));
    g_assert_false(path_has_protocol(":x"));
}

static void test_path_combine(void)
{
    static const struct {
        const char *base, *file, *result;
    } cases[] = {
        { "/a/b/top.qcow2", "base.qcow2", "/a/b/base.qcow2" },
        { "/a/b/top.qcow2", "../c/base.qcow2", "/a/b/../c/base.qcow2" },
        { "/a/b/top.qcow2", "/abs/base.qcow2", "/abs/base.qcow2" },
        { "top.qcow2", "base.qcow2", "base.qcow2" },
        { "dir/top.qcow2", "base.qcow2", "dir/base.qcow2" },
        { "/top.qcow2", "base.qcow2", "/base.qcow2" },
        { "/a/b/", "base.qcow2", "/a/b/base.qcow2" },
        { "/a/b/top.qcow2", "nbd:host:1234", "nbd:host:1234" },
        { "file:/a/top.qcow2", "base.qcow2", "file:/a/base.qcow2" },
        { "file:top.qcow2", "base.qcow2", "file:base.qcow2" },
        { "/a/b:c/top", "base", "/a/b:c/base" },
    };

    for (int i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *r = path_combine(cases[i].base, cases[i].file);

        g_assert_cmpstr(r, ==, cases[i].result);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cutils/strtosz/table", test_strtosz_table);
    g_test_add_func("/cutils/strtosz/end", test_strtosz_end);
    g_test_add_func("/cutils/strtosz/MiB", test_strtosz_mib);
    g_test_add_func("/cutils/strtoi64", test_strtoi64);
    g_test_add_func("/cutils/strtou64", test_strtou64);
    g_test_add_func("/cutils/strtoi", test_strtoi);
    g_test_add_func("/cutils/size_to_str", test_size_to_str);
    g_test_add_func("/cutils/pstrcpy", test_pstrcpy);
    g_test_add_func("/cutils/strstart", test_strstart);
    g_test_add_func("/cutils/path_has_protocol", test_path_has_protocol);
    g_test_add_func("/cutils/path_combine", test_path_combine);
    return g_test_run();
}
