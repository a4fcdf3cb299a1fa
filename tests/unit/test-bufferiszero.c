/*
 * buffer_is_zero(): every small length at every alignment, and one
 * non-zero byte at every position of larger buffers (vector paths).
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"

#define SMALL_MAX 300
#define ALIGN_MAX 64

/* Zero buffers of each length 0..SMALL_MAX at each alignment 0..63. */
static void test_small_zero(void)
{
    g_autofree uint8_t *buf = g_malloc0(SMALL_MAX + ALIGN_MAX + 64);

    for (size_t off = 0; off < ALIGN_MAX; off++) {
        for (size_t len = 0; len <= SMALL_MAX; len++) {
            g_assert_true(buffer_is_zero(buf + off, len));
        }
    }
}

/*
 * Each length/alignment with one non-zero byte at each position; the
 * bytes just outside the range are non-zero too, so reading past either
 * end would be caught as a false "not zero".
 */
static void test_small_nonzero(void)
{
    g_autofree uint8_t *buf = g_malloc(SMALL_MAX + ALIGN_MAX + 64);

    for (size_t off = 1; off < ALIGN_MAX + 1; off++) {
        for (size_t len = 1; len <= SMALL_MAX; len++) {
            memset(buf, 0xa5, SMALL_MAX + ALIGN_MAX + 64);
            memset(buf + off, 0, len);
            g_assert_true(buffer_is_zero(buf + off, len));
            for (size_t pos = 0; pos < len; pos++) {
                for (int v = 1; v < 256; v <<= 7) {
                    buf[off + pos] = v;
                    g_assert_false(buffer_is_zero(buf + off, len));
                }
                buf[off + pos] = 0;
            }
        }
    }
}

/* Buffers over a few pages; 4 KiB + odd tails at several alignments. */
static void test_large(void)
{
    static const size_t lens[] = {
        4096, 4097, 4096 + 63, 8192 + 31, 65536 + 1, 1 << 20,
    };
    size_t max = (1 << 20) + 128;
    uint8_t *buf = g_malloc(max);

    for (int i = 0; i < ARRAY_SIZE(lens); i++) {
        size_t len = lens[i];
        /* Every position up to 8 KiB, prime strides beyond. */
        size_t step = len > 65537 ? 4093 : len > 8223 ? 61 : 1;

        for (size_t off = 0; off < 64; off += (len > 8192 + 31 ? 13 : 1)) {
            memset(buf, 0xff, max);
            memset(buf + off, 0, len);
            g_assert_true(buffer_is_zero(buf + off, len));
            for (size_t pos = 0; pos < len; pos += step) {
                buf[off + pos] = 0x80;
                g_assert_false(buffer_is_zero(buf + off, len));
                buf[off + pos] = 0;
            }
            /* The last byte, which a stride may skip. */
            buf[off + len - 1] = 1;
            g_assert_false(buffer_is_zero(buf + off, len));
        }
    }
    g_free(buf);
}

static void test_page_aligned(void)
{
    size_t len = 16 * 4096;
    uint8_t *buf = qemu_memalign(4096, len);

    memset(buf, 0, len);
    g_assert_true(buffer_is_zero(buf, len));
    for (size_t pos = 0; pos < len; pos++) {
        buf[pos] = 1;
        g_assert_false(buffer_is_zero(buf, len));
        buf[pos] = 0;
    }
    qemu_vfree(buf);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/bufferiszero/small-zero", test_small_zero);
    g_test_add_func("/bufferiszero/small-nonzero", test_small_nonzero);
    g_test_add_func("/bufferiszero/large", test_large);
    g_test_add_func("/bufferiszero/page-aligned", test_page_aligned);
    return g_test_run();
}
