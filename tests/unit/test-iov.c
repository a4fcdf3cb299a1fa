/*
 * I/O vector tests: copies at every offset/length across element
 * boundaries, slices, concatenation, zero detection and comparison.
 */
#include "qemu/osdep.h"
#include "qemu/iov.h"

#define TOTAL 100

/* Splits a TOTAL-byte buffer into elements of these sizes (with a 0). */
static const size_t piece_sizes[] = { 1, 7, 0, 16, 3, 40, 33 };

static void build_qiov(QEMUIOVector *qiov, uint8_t *mem)
{
    size_t off = 0;

    qemu_iovec_init(qiov, 2);
    for (int i = 0; i < ARRAY_SIZE(piece_sizes); i++) {
        /* Leave a hole after each piece so elements never merge. */
        qemu_iovec_add(qiov, mem + off + i, piece_sizes[i]);
        off += piece_sizes[i];
    }
    g_assert_cmpuint(off, ==, TOTAL);
}

/* The byte at logical offset @i of the vector built over @mem. */
static uint8_t *qiov_byte(uint8_t *mem, size_t i)
{
    size_t off = 0;

    for (int p = 0; p < ARRAY_SIZE(piece_sizes); p++) {
        if (i < off + piece_sizes[p]) {
            return mem + i + p;
        }
        off += piece_sizes[p];
    }
    g_assert_not_reached();
}

static void test_size_and_add(void)
{
    uint8_t mem[TOTAL + 16];
    QEMUIOVector qiov;

    build_qiov(&qiov, mem);
    g_assert_cmpuint(qiov.size, ==, TOTAL);
    /* The zero-length piece is not stored. */
    g_assert_cmpint(qiov.niov, ==, ARRAY_SIZE(piece_sizes) - 1);
    g_assert_cmpuint(iov_size(qiov.iov, qiov.niov), ==, TOTAL);

    /* Contiguous additions merge into one element. */
    qemu_iovec_reset(&qiov);
    qemu_iovec_add(&qiov, mem, 10);
    qemu_iovec_add(&qiov, mem + 10, 10);
    g_assert_cmpint(qiov.niov, ==, 1);
    g_assert_cmpuint(qiov.size, ==, 20);
    qemu_iovec_destroy(&qiov);
}

static void test_copy_every_range(void)
{
    uint8_t mem[TOTAL + 16];
    uint8_t src[TOTAL], dst[TOTAL];
    QEMUIOVector qiov;

    for (int i = 0; i < TOTAL; i++) {
        src[i] = i + 1;
    }
    build_qiov(&qiov, mem);
    for (size_t off = 0; off <= TOTAL; off++) {
        for (size_t len = 0; off + len <= TOTAL + 3; len++) {
            size_t expect = MIN(len, TOTAL - off);

            memset(mem, 0, sizeof(mem));
            g_assert_cmpuint(qemu_iovec_from_buf(&qiov, off, src, len), ==,
                             expect);
            for (size_t i = 0; i < TOTAL; i++) {
                uint8_t want = i >= off && i < off + expect ? src[i - off] : 0;

                g_assert_cmpuint(*qiov_byte(mem, i), ==, want);
            }
            memset(dst, 0xee, sizeof(dst));
            g_assert_cmpuint(qemu_iovec_to_buf(&qiov, off, dst, len), ==,
                             expect);
            g_assert_cmpmem(dst, expect, src, expect);
            if (expect < TOTAL) {
                g_assert_cmpuint(dst[expect], ==, 0xee);
            }
        }
    }
    qemu_iovec_destroy(&qiov);
}

static void test_memset_and_is_zero(void)
{
    uint8_t mem[TOTAL + 16];
    QEMUIOVector qiov;

    build_qiov(&qiov, mem);
    for (size_t off = 0; off < TOTAL; off += 3) {
        for (size_t len = 0; off + len <= TOTAL; len += 5) {
            memset(mem, 0x11, sizeof(mem));
            g_assert_cmpuint(qemu_iovec_memset(&qiov, off, 0, len), ==, len);
            g_assert_true(qemu_iovec_is_zero(&qiov, off, len));
            if (off > 0) {
                g_assert_false(qemu_iovec_is_zero(&qiov, off - 1, len + 1));
            }
            if (off + len < TOTAL) {
                g_assert_false(qemu_iovec_is_zero(&qiov, off, len + 1));
                g_assert_cmpuint(*qiov_byte(mem, off + len), ==, 0x11);
            }
        }
    }
    qemu_iovec_destroy(&qiov);
}

static void test_slice_concat(void)
{
    uint8_t mem[TOTAL + 16];
    uint8_t out[TOTAL];
    QEMUIOVector qiov, slice, cat;

    build_qiov(&qiov, mem);
    for (int i = 0; i < TOTAL; i++) {
        *qiov_byte(mem, i) = i;
    }
    for (size_t off = 0; off < TOTAL; off += 7) {
        for (size_t len = 0; off + len <= TOTAL; len += 11) {
            qemu_iovec_init_slice(&slice, &qiov, off, len);
            g_assert_cmpuint(slice.size, ==, len);
            g_assert_cmpuint(qemu_iovec_to_buf(&slice, 0, out, len), ==, len);
            for (size_t i = 0; i < len; i++) {
                g_assert_cmpuint(out[i], ==, off + i);
            }
            qemu_iovec_destroy(&slice);
        }
    }

    qemu_iovec_init(&cat, 0);
    qemu_iovec_concat(&cat, &qiov, 90, 10);
    qemu_iovec_concat(&cat, &qiov, 0, 5);
    g_assert_cmpuint(cat.size, ==, 15);
    qemu_iovec_to_buf(&cat, 0, out, 15);
    for (int i = 0; i < 10; i++) {
        g_assert_cmpuint(out[i], ==, 90 + i);
    }
    for (int i = 0; i < 5; i++) {
        g_assert_cmpuint(out[10 + i], ==, i);
    }
    qemu_iovec_destroy(&cat);
    qemu_iovec_destroy(&qiov);
}

static void test_init_buf_external(void)
{
    uint8_t buf[64] = { 0 };
    struct iovec iov[2] = {
        { .iov_base = buf, .iov_len = 10 },
        { .iov_base = buf + 20, .iov_len = 30 },
    };
    QEMUIOVector a = QEMU_IOVEC_INIT_BUF(a, buf, sizeof(buf));
    QEMUIOVector b, c;

    g_assert_cmpint(a.niov, ==, 1);
    g_assert_true(a.iov == &a.local_iov);
    g_assert_cmpuint(a.size, ==, 64);

    qemu_iovec_init_buf(&b, buf, 32);
    g_assert_true(b.iov == &b.local_iov);
    g_assert_cmpuint(b.size, ==, 32);
    g_assert_true(b.iov[0].iov_base == buf);

    qemu_iovec_init_external(&c, iov, 2);
    g_assert_cmpuint(c.size, ==, 40);
    g_assert_true(c.iov == iov);
    qemu_iovec_destroy(&c);
    /* Destroying a non-owning vector must leave the array alone. */
    g_assert_cmpuint(iov[1].iov_len, ==, 30);
}

static void test_compare(void)
{
    uint8_t x[10000], y[10000];
    QEMUIOVector a, b;

    for (int i = 0; i < sizeof(x); i++) {
        x[i] = y[i] = i * 7;
    }
    qemu_iovec_init(&a, 0);
    qemu_iovec_add(&a, x, 5000);
    qemu_iovec_add(&a, x + 5001, 4999);
    qemu_iovec_init(&b, 0);
    qemu_iovec_add(&b, y, 1);
    qemu_iovec_add(&b, y + 2, 9998);
    /* a = x without byte 5000, b = y without byte 1: differ at 1. */
    g_assert_cmpint(qemu_iovec_compare(&a, &b), ==, 1);
    qemu_iovec_reset(&b);
    qemu_iovec_add(&b, x, 9999);
    /* b = x[0..9999): first difference is at logical offset 5000. */
    g_assert_cmpint(qemu_iovec_compare(&a, &b), ==, 5000);
    qemu_iovec_reset(&b);
    qemu_iovec_add(&b, x, 5000);
    qemu_iovec_add(&b, x + 5001, 4999);
    g_assert_cmpint(qemu_iovec_compare(&a, &b), ==, -1);
    qemu_iovec_destroy(&a);
    qemu_iovec_destroy(&b);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/iov/size-add", test_size_and_add);
    g_test_add_func("/iov/copy-every-range", test_copy_every_range);
    g_test_add_func("/iov/memset-is-zero", test_memset_and_is_zero);
    g_test_add_func("/iov/slice-concat", test_slice_concat);
    g_test_add_func("/iov/init-buf-external", test_init_buf_external);
    g_test_add_func("/iov/compare", test_compare);
    return g_test_run();
}
