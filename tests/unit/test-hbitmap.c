/*
 * HBitmap tests: fixed cases for each operation plus a randomized
 * differential test against a plain array of bits.
 */
#include "qemu/osdep.h"
#include "qemu/hbitmap.h"

/* The reference: one bool per bit, item i lives in bit i >> g. */
typedef struct Model {
    HBitmap *hb;
    uint64_t size;
    int g;
    uint64_t nbits;
    bool *bits;
} Model;

static uint64_t bits_for(uint64_t size, int g)
{
    return (size + (UINT64_C(1) << g) - 1) >> g;
}

static void model_init(Model *m, uint64_t size, int g)
{
    m->hb = hbitmap_alloc(size, g);
    m->size = size;
    m->g = g;
    m->nbits = bits_for(size, g);
    m->bits = g_new0(bool, m->nbits + 1);
}

static void model_free(Model *m)
{
    hbitmap_free(m->hb);
    g_free(m->bits);
}

static void model_fill(Model *m, uint64_t start, uint64_t count, bool val)
{
    if (!count) {
        return;
    }
    for (uint64_t b = start >> m->g; b <= (start + count - 1) >> m->g; b++) {
        m->bits[b] = val;
    }
}

static void model_set(Model *m, uint64_t start, uint64_t count)
{
    hbitmap_set(m->hb, start, count);
    model_fill(m, start, count, true);
}

static void model_reset(Model *m, uint64_t start, uint64_t count)
{
    hbitmap_reset(m->hb, start, count);
    model_fill(m, start, count, false);
}

static bool model_get(const Model *m, uint64_t item)
{
    return m->bits[item >> m->g];
}

static uint64_t model_count(const Model *m)
{
    uint64_t n = 0;

    for (uint64_t b = 0; b < m->nbits; b++) {
        if (m->bits[b]) {
            n += MIN((b + 1) << m->g, m->size) - (b << m->g);
        }
    }
    return n;
}

/* First item in [start, start + count) whose state is @dirty, or -1. */
static int64_t model_next(const Model *m, uint64_t start, int64_t count,
                          bool dirty)
{
    uint64_t end = count < 0 ? m->size : MIN(m->size, start + count);

    if (start >= m->size) {
        return -1;
    }
    for (uint64_t b = start >> m->g; b < m->nbits; b++) {
        uint64_t item = MAX(b << m->g, start);

        if (item >= end) {
            return -1;
        }
        if (m->bits[b] == dirty) {
            return item;
        }
    }
    return -1;
}

static void check_next(const Model *m, uint64_t start, int64_t count)
{
    g_assert_cmpint(hbitmap_next_dirty(m->hb, start, count), ==,
                    model_next(m, start, count, true));
    g_assert_cmpint(hbitmap_next_zero(m->hb, start, count), ==,
                    model_next(m, start, count, false));
}

static void check_dirty_area(const Model *m, uint64_t start, uint64_t end,
                             int64_t max)
{
    int64_t ds = -7, dc = -7;
    bool found = hbitmap_next_dirty_area(m->hb, start, end, max, &ds, &dc);
    uint64_t clipped_end = MIN(end, m->size);
    int64_t first = start < clipped_end ?
                    model_next(m, start, clipped_end - start, true) : -1;
    uint64_t limit, item;
    int64_t len;

    g_assert_cmpint(found, ==, first >= 0);
    if (!found) {
        return;
    }
    /* Walk whole granules up to the first clean one or the limit. */
    limit = MIN(clipped_end, first + MIN((uint64_t)max, m->size));
    item = first;
    while (item < limit && model_get(m, item)) {
        item = ((item >> m->g) + 1) << m->g;
    }
    len = MIN(item, limit) - first;
    g_assert_cmpint(ds, ==, first);
    g_assert_cmpint(dc, ==, len);
}

static void check_iter(const Model *m, uint64_t first)
{
    HBitmapIter hbi;
    int64_t item;
    uint64_t b = first >> m->g;

    hbitmap_iter_init(&hbi, m->hb, first);
    while ((item = hbitmap_iter_next(&hbi)) >= 0) {
        while (b < m->nbits && !m->bits[b]) {
            b++;
        }
        g_assert_cmpuint(b, <, m->nbits);
        g_assert_cmpint(item, ==, b << m->g);
        b++;
    }
    while (b < m->nbits) {
        g_assert_false(m->bits[b]);
        b++;
    }
}

/* Compares everything observable; cheap enough for a few 100k bits. */
static void model_check_all(const Model *m)
{
    g_assert_cmpuint(hbitmap_size(m->hb), ==, m->size);
    g_assert_cmpint(hbitmap_granularity(m->hb), ==, m->g);
    g_assert_cmpuint(hbitmap_count(m->hb), ==, model_count(m));
    g_assert_cmpint(hbitmap_is_empty(m->hb), ==, model_count(m) == 0);
    for (uint64_t b = 0; b < m->nbits; b++) {
        g_assert_cmpint(hbitmap_get(m->hb, b << m->g), ==, m->bits[b]);
    }
    if (m->size) {
        g_assert_cmpint(hbitmap_get(m->hb, m->size - 1), ==,
                        model_get(m, m->size - 1));
    }
    check_iter(m, 0);
    for (int i = 0; i < 20 && m->size; i++) {
        uint64_t start = g_test_rand_int_range(0, MIN(m->size, INT32_MAX));

        check_next(m, start, -1);
        check_next(m, start, g_test_rand_int_range(1, 1 << (m->g + 8)));
        check_iter(m, start);
    }
}

static uint64_t rand_u64(uint64_t below)
{
    uint64_t r = ((uint64_t)g_test_rand_int() << 32) | g_test_rand_int();

    return below ? r % below : 0;
}

/* A random range inside the bitmap, short or long. */
static void rand_range(const Model *m, uint64_t *start, uint64_t *count)
{
    uint64_t max_len;

    *start = rand_u64(m->size);
    max_len = m->size - *start;
    if (g_test_rand_bit()) {
        max_len = MIN(max_len, UINT64_C(4) << m->g);
    }
    *count = 1 + rand_u64(max_len);
}

static void test_basic(void)
{
    HBitmap *hb = hbitmap_alloc(1000, 0);

    g_assert_true(hbitmap_is_empty(hb));
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, -1), ==, -1);
    g_assert_cmpint(hbitmap_next_zero(hb, 0, -1), ==, 0);
    hbitmap_set(hb, 10, 5);
    g_assert_false(hbitmap_get(hb, 9));
    g_assert_true(hbitmap_get(hb, 10));
    g_assert_true(hbitmap_get(hb, 14));
    g_assert_false(hbitmap_get(hb, 15));
    g_assert_cmpuint(hbitmap_count(hb), ==, 5);
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, -1), ==, 10);
    g_assert_cmpint(hbitmap_next_dirty(hb, 12, -1), ==, 12);
    g_assert_cmpint(hbitmap_next_dirty(hb, 15, -1), ==, -1);
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, 10), ==, -1);
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, 11), ==, 10);
    g_assert_cmpint(hbitmap_next_zero(hb, 10, -1), ==, 15);
    g_assert_cmpint(hbitmap_next_zero(hb, 10, 5), ==, -1);
    hbitmap_set(hb, 999, 1);
    g_assert_cmpint(hbitmap_next_dirty(hb, 15, -1), ==, 999);
    hbitmap_reset(hb, 11, 2);
    g_assert_cmpuint(hbitmap_count(hb), ==, 4);
    g_assert_cmpint(hbitmap_next_zero(hb, 10, -1), ==, 11);
    g_assert_cmpint(hbitmap_next_dirty(hb, 11, -1), ==, 13);
    hbitmap_reset_all(hb);
    g_assert_true(hbitmap_is_empty(hb));
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, -1), ==, -1);
    hbitmap_free(hb);
}

/* Bits covering the end of the last, partial granule count only to size. */
static void test_granularity_count(void)
{
    HBitmap *hb = hbitmap_alloc(1000, 4);   /* 63 bits, last covers 8 */

    hbitmap_set(hb, 17, 1);
    g_assert_cmpuint(hbitmap_count(hb), ==, 16);
    g_assert_true(hbitmap_get(hb, 16));
    g_assert_true(hbitmap_get(hb, 31));
    g_assert_false(hbitmap_get(hb, 32));
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, -1), ==, 16);
    g_assert_cmpint(hbitmap_next_dirty(hb, 20, -1), ==, 20);
    g_assert_cmpint(hbitmap_next_zero(hb, 20, -1), ==, 32);
    hbitmap_set(hb, 999, 1);
    g_assert_cmpuint(hbitmap_count(hb), ==, 16 + 8);
    /* Reset clears every bit it touches, even partially. */
    hbitmap_reset(hb, 31, 2);
    g_assert_false(hbitmap_get(hb, 16));
    g_assert_cmpuint(hbitmap_count(hb), ==, 8);
    hbitmap_free(hb);

    hb = hbitmap_alloc(1000, 9);
    hbitmap_set_granularity(hb, 2);
    g_assert_cmpint(hbitmap_granularity(hb), ==, 2);
    hbitmap_set(hb, 5, 1);
    g_assert_cmpuint(hbitmap_count(hb), ==, 4);
    hbitmap_free(hb);
}

static void test_next_dirty_area(void)
{
    HBitmap *hb = hbitmap_alloc(1000, 0);
    int64_t s, c;

    g_assert_false(hbitmap_next_dirty_area(hb, 0, 1000, INT64_MAX, &s, &c));
    hbitmap_set(hb, 100, 50);
    hbitmap_set(hb, 900, 100);
    g_assert_true(hbitmap_next_dirty_area(hb, 0, 1000, INT64_MAX, &s, &c));
    g_assert_cmpint(s, ==, 100);
    g_assert_cmpint(c, ==, 50);
    g_assert_true(hbitmap_next_dirty_area(hb, 120, 1000, 10, &s, &c));
    g_assert_cmpint(s, ==, 120);
    g_assert_cmpint(c, ==, 10);
    g_assert_true(hbitmap_next_dirty_area(hb, 0, 130, INT64_MAX, &s, &c));
    g_assert_cmpint(s, ==, 100);
    g_assert_cmpint(c, ==, 30);
    g_assert_true(hbitmap_next_dirty_area(hb, 150, 1000, INT64_MAX, &s, &c));
    g_assert_cmpint(s, ==, 900);
    g_assert_cmpint(c, ==, 100);
    g_assert_false(hbitmap_next_dirty_area(hb, 150, 900, INT64_MAX, &s, &c));
    hbitmap_free(hb);
}

static void test_status(void)
{
    HBitmap *hb = hbitmap_alloc(1000, 0);
    int64_t pnum;

    hbitmap_set(hb, 100, 50);
    g_assert_false(hbitmap_status(hb, 0, 1000, &pnum));
    g_assert_cmpint(pnum, ==, 100);
    g_assert_true(hbitmap_status(hb, 100, 1000 - 100, &pnum));
    g_assert_cmpint(pnum, ==, 50);
    g_assert_true(hbitmap_status(hb, 110, 20, &pnum));
    g_assert_cmpint(pnum, ==, 20);
    g_assert_false(hbitmap_status(hb, 150, 850, &pnum));
    g_assert_cmpint(pnum, ==, 850);
    hbitmap_free(hb);
}

static void test_iter_basic(void)
{
    HBitmap *hb = hbitmap_alloc(UINT64_C(1) << 30, 9);
    uint64_t items[] = { 0, 512, 64 * 512, 4096 * 512 * 3 + 1024,
                         (UINT64_C(1) << 30) - 512 };
    HBitmapIter hbi;

    for (int i = 0; i < ARRAY_SIZE(items); i++) {
        hbitmap_set(hb, items[i], 1);
    }
    hbitmap_iter_init(&hbi, hb, 0);
    for (int i = 0; i < ARRAY_SIZE(items); i++) {
        g_assert_cmpint(hbitmap_iter_next(&hbi), ==, items[i]);
    }
    g_assert_cmpint(hbitmap_iter_next(&hbi), ==, -1);
    g_assert_cmpint(hbitmap_iter_next(&hbi), ==, -1);

    /* Starting inside a set bit's range reports that bit's start. */
    hbitmap_iter_init(&hbi, hb, 513);
    g_assert_cmpint(hbitmap_iter_next(&hbi), ==, 512);
    g_assert_cmpint(hbitmap_iter_next(&hbi), ==, 64 * 512);

    /* Bits cleared after the iterator passed their summary are skipped. */
    hbitmap_iter_init(&hbi, hb, 1024);
    hbitmap_reset(hb, 4096 * 512 * 3, 4096);
    g_assert_cmpint(hbitmap_iter_next(&hbi), ==, 64 * 512);
    g_assert_cmpint(hbitmap_iter_next(&hbi), ==, (UINT64_C(1) << 30) - 512);
    g_assert_cmpint(hbitmap_iter_next(&hbi), ==, -1);
    hbitmap_free(hb);
}

/*
 * Resetting ranges while iterating: items come out in increasing order,
 * each was set when iteration started, and every item that stayed set
 * throughout is reported.
 */
static void test_iter_with_resets(void)
{
    for (int round = 0; round < 50; round++) {
        Model m;
        bool *at_start, *ever_reset;
        HBitmapIter hbi;
        int64_t item, prev = -1;
        uint64_t b = 0;

        model_init(&m, 64 * 64 * 64 * 3 + 17, 0);
        for (int i = 0; i < 40; i++) {
            uint64_t s, c;

            rand_range(&m, &s, &c);
            model_set(&m, s, c);
            rand_range(&m, &s, &c);
            model_reset(&m, s, c);
        }
        at_start = g_memdup2(m.bits, m.nbits);
        ever_reset = g_new0(bool, m.nbits);
        hbitmap_iter_init(&hbi, m.hb, 0);
        while ((item = hbitmap_iter_next(&hbi)) >= 0) {
            g_assert_cmpint(item, >, prev);
            g_assert_true(at_start[item]);
            for (; b < item; b++) {
                g_assert_true(!at_start[b] || ever_reset[b]);
            }
            b = item + 1;
            prev = item;
            if (g_test_rand_int_range(0, 4) == 0) {
                uint64_t s, c;

                rand_range(&m, &s, &c);
                model_reset(&m, s, c);
                for (uint64_t i = s; i < s + c; i++) {
                    ever_reset[i] = true;
                }
            }
        }
        for (; b < m.nbits; b++) {
            g_assert_true(!at_start[b] || ever_reset[b]);
        }
        g_free(at_start);
        g_free(ever_reset);
        model_free(&m);
    }
}

/* A huge sparse bitmap: searches must not scan the empty space. */
static void test_sparse_large(void)
{
    uint64_t size = UINT64_C(1) << 45;
    HBitmap *hb = hbitmap_alloc(size, 16);  /* 2^29 bits */
    uint64_t a = UINT64_C(123) << 30, b = size - (UINT64_C(1) << 16);
    int64_t t0 = g_get_monotonic_time();

    for (int i = 0; i < 10000; i++) {
        g_assert_cmpint(hbitmap_next_dirty(hb, 0, -1), ==, -1);
    }
    hbitmap_set(hb, a, 1);
    hbitmap_set(hb, b, 1);
    for (int i = 0; i < 10000; i++) {
        g_assert_cmpint(hbitmap_next_dirty(hb, 0, -1), ==, a);
        g_assert_cmpint(hbitmap_next_dirty(hb, a + 65536, -1), ==, b);
    }
    g_assert_cmpuint(hbitmap_count(hb), ==, 2 << 16);
    /* 30000 linear scans of 64 MiB would take minutes. */
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 5 * G_USEC_PER_SEC);
    hbitmap_reset(hb, a, 1);
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, -1), ==, b);
    hbitmap_truncate(hb, b);
    g_assert_true(hbitmap_is_empty(hb));
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, -1), ==, -1);
    hbitmap_free(hb);
}

static void test_truncate(void)
{
    HBitmap *hb = hbitmap_alloc(1000, 0);

    hbitmap_set(hb, 0, 1000);
    hbitmap_truncate(hb, 500);
    g_assert_cmpuint(hbitmap_size(hb), ==, 500);
    g_assert_cmpuint(hbitmap_count(hb), ==, 500);
    hbitmap_truncate(hb, 100000);
    g_assert_cmpuint(hbitmap_count(hb), ==, 500);
    g_assert_cmpint(hbitmap_next_zero(hb, 0, -1), ==, 500);
    g_assert_cmpint(hbitmap_next_dirty(hb, 500, -1), ==, -1);
    hbitmap_set(hb, 99999, 1);
    g_assert_cmpint(hbitmap_next_dirty(hb, 500, -1), ==, 99999);
    hbitmap_truncate(hb, 99999);
    g_assert_cmpint(hbitmap_next_dirty(hb, 500, -1), ==, -1);
    g_assert_cmpuint(hbitmap_count(hb), ==, 500);
    hbitmap_truncate(hb, 0);
    g_assert_true(hbitmap_is_empty(hb));
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, -1), ==, -1);
    hbitmap_truncate(hb, 64);
    g_assert_cmpint(hbitmap_next_zero(hb, 0, -1), ==, 0);
    hbitmap_free(hb);
}

static void test_merge_copy(void)
{
    HBitmap *a = hbitmap_alloc(10000, 2);
    HBitmap *b = hbitmap_alloc(10000, 2);
    HBitmap *r = hbitmap_alloc(10000, 2);
    HBitmap *other = hbitmap_alloc(10000, 3);
    HBitmap *c;

    g_assert_true(hbitmap_can_merge(a, b));
    g_assert_false(hbitmap_can_merge(a, other));
    hbitmap_set(a, 0, 100);
    hbitmap_set(b, 50, 100);
    hbitmap_set(b, 9000, 4);
    hbitmap_merge(a, b, r);
    g_assert_cmpuint(hbitmap_count(r), ==, 156);
    g_assert_cmpint(hbitmap_next_zero(r, 0, -1), ==, 152);
    g_assert_cmpint(hbitmap_next_dirty(r, 152, -1), ==, 9000);

    /* In place: a |= b. */
    hbitmap_merge(a, b, a);
    g_assert_cmpuint(hbitmap_count(a), ==, 156);

    c = hbitmap_copy(a);
    hbitmap_reset_all(a);
    g_assert_cmpuint(hbitmap_count(c), ==, 156);
    g_assert_cmpint(hbitmap_next_dirty(c, 152, -1), ==, 9000);
    g_assert_true(hbitmap_is_empty(a));

    hbitmap_free(a);
    hbitmap_free(b);
    hbitmap_free(r);
    hbitmap_free(other);
    hbitmap_free(c);
}

/* qcow2 bitmap byte order: bit i of byte j is bit 8j + i. */
static void test_serialize_order(void)
{
    HBitmap *hb = hbitmap_alloc(200 << 3, 3);   /* 200 bits */
    uint64_t align = hbitmap_serialization_align(hb);
    uint64_t len = hbitmap_serialization_size(hb, 0, 200 << 3);
    g_autofree uint8_t *buf = NULL;

    g_assert_cmpuint(align, ==, 64 << 3);
    g_assert_cmpuint(len, >=, 25);
    g_assert_cmpuint(len, <=, 32);
    buf = g_malloc0(len);
    hbitmap_set(hb, 0 << 3, 1);
    hbitmap_set(hb, 9 << 3, 1);
    hbitmap_set(hb, 63 << 3, 1);
    hbitmap_set(hb, 64 << 3, 1);
    hbitmap_set(hb, 199 << 3, 1);
    hbitmap_serialize_part(hb, buf, 0, 200 << 3);
    g_assert_cmphex(buf[0], ==, 0x01);
    g_assert_cmphex(buf[1], ==, 0x02);
    g_assert_cmphex(buf[7], ==, 0x80);
    g_assert_cmphex(buf[8], ==, 0x01);
    g_assert_cmphex(buf[24], ==, 0x80);
    for (uint64_t i = 0; i < len; i++) {
        if (i != 0 && i != 1 && i != 7 && i != 8 && i != 24) {
            g_assert_cmphex(buf[i], ==, 0);
        }
    }

    /* Garbage past the last bit must not become set bits. */
    memset(buf, 0xff, len);
    hbitmap_deserialize_part(hb, buf, 0, 200 << 3, true);
    g_assert_cmpuint(hbitmap_count(hb), ==, 200 << 3);
    g_assert_cmpint(hbitmap_next_zero(hb, 0, -1), ==, -1);
    hbitmap_free(hb);
}

static void test_serialize_roundtrip(void)
{
    for (int g = 0; g <= 12; g += 3) {
        Model m, n;
        uint64_t size = (UINT64_C(300000) << g) + 7;
        uint64_t align;

        model_init(&m, size, g);
        for (int i = 0; i < 200; i++) {
            uint64_t s, c;

            rand_range(&m, &s, &c);
            if (i % 2) {
                model_reset(&m, s, c);
            } else {
                model_set(&m, s, c);
            }
        }
        model_init(&n, size, g);
        align = hbitmap_serialization_align(m.hb);
        /* Several chunks, the last one short. */
        for (uint64_t start = 0; start < size; start += 3 * align) {
            uint64_t count = MIN(3 * align, size - start);
            uint64_t len = hbitmap_serialization_size(m.hb, start, count);
            g_autofree uint8_t *buf = g_malloc(len);

            hbitmap_serialize_part(m.hb, buf, start, count);
            for (uint64_t j = 0; j < len * 8; j++) {
                uint64_t bit = (start >> g) + j;
                bool want = bit < m.nbits && m.bits[bit];

                g_assert_cmpint(!!(buf[j / 8] & (1 << (j % 8))), ==, want);
            }
            hbitmap_deserialize_part(n.hb, buf, start, count,
                                     start + count == size);
        }
        memcpy(n.bits, m.bits, m.nbits);
        model_check_all(&n);
        model_free(&m);
        model_free(&n);
    }
}

/* Sizes in bits that put level and word boundaries at the end. */
static const uint64_t interesting_bits[] = {
    1, 2, 63, 64, 65, 127, 4095, 4096, 4097, 64 * 64 * 64 - 1,
    64 * 64 * 64, 64 * 64 * 64 + 1,
};

static void random_ops(Model *m, int ops)
{
    for (int i = 0; i < ops; i++) {
        uint64_t s, c;
        int op = g_test_rand_int_range(0, 100);

        if (!m->size) {
            op = 99;
        }
        rand_range(m, &s, &c);
        if (op < 40) {
            model_set(m, s, c);
        } else if (op < 75) {
            model_reset(m, s, c);
        } else if (op < 97) {
            check_next(m, s, g_test_rand_bit() ? -1 : (int64_t)c);
            check_dirty_area(m, s, s + c, 1 + rand_u64(c + 10));
            g_assert_cmpuint(hbitmap_count(m->hb), ==, model_count(m));
        } else if (op < 98) {
            hbitmap_reset_all(m->hb);
            memset(m->bits, 0, m->nbits);
        } else {
            uint64_t new_size = rand_u64(2 * m->size + 100);
            uint64_t new_nbits = bits_for(new_size, m->g);

            hbitmap_truncate(m->hb, new_size);
            m->bits = g_renew(bool, m->bits, new_nbits + 1);
            if (new_nbits > m->nbits) {
                memset(m->bits + m->nbits, 0, new_nbits - m->nbits);
            }
            m->size = new_size;
            m->nbits = new_nbits;
        }
    }
}

static void test_random_granularity(gconstpointer opaque)
{
    int g = GPOINTER_TO_INT(opaque);

    for (int i = 0; i < ARRAY_SIZE(interesting_bits) + 4; i++) {
        uint64_t nbits = i < ARRAY_SIZE(interesting_bits) ?
                         interesting_bits[i] : 1 + rand_u64(20000);
        /* Sometimes make the last granule partial. */
        uint64_t size = (nbits << g) - (g ? rand_u64(UINT64_C(1) << g) : 0);
        Model m;

        model_init(&m, size, g);
        random_ops(&m, nbits > 100000 ? 100 : 400);
        model_check_all(&m);
        model_free(&m);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/hbitmap/basic", test_basic);
    g_test_add_func("/hbitmap/granularity-count", test_granularity_count);
    g_test_add_func("/hbitmap/next-dirty-area", test_next_dirty_area);
    g_test_add_func("/hbitmap/status", test_status);
    g_test_add_func("/hbitmap/iter", test_iter_basic);
    g_test_add_func("/hbitmap/iter-with-resets", test_iter_with_resets);
    g_test_add_func("/hbitmap/sparse-large", test_sparse_large);
    g_test_add_func("/hbitmap/truncate", test_truncate);
    g_test_add_func("/hbitmap/merge-copy", test_merge_copy);
    g_test_add_func("/hbitmap/serialize/order", test_serialize_order);
    g_test_add_func("/hbitmap/serialize/roundtrip", test_serialize_roundtrip);
    for (int g = 0; g <= 16; g++) {
        g_autofree char *path = g_strdup_printf("/hbitmap/random/g%d", g);

        g_test_add_data_func(path, GINT_TO_POINTER(g),
                             test_random_granularity);
    }
    return g_test_run();
}
