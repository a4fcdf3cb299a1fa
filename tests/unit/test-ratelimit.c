/*
 * RateLimit tests: quota arithmetic, delays within and across slices,
 * and the achieved rate of a real sleep loop.
 */
#include "qemu/osdep.h"
#include "qemu/ratelimit.h"

#define MS (INT64_C(1000) * 1000)

static void test_disabled(void)
{
    RateLimit rl;

    ratelimit_init(&rl);
    g_assert_false(ratelimit_enabled(&rl));
    ratelimit_account(&rl, UINT64_MAX / 2);
    g_assert_cmpint(ratelimit_calculate_delay(&rl, UINT64_MAX / 2), ==, 0);

    ratelimit_set_speed(&rl, 1000, 100 * MS);
    g_assert_true(ratelimit_enabled(&rl));
    ratelimit_set_speed(&rl, 0, 100 * MS);
    g_assert_false(ratelimit_enabled(&rl));
    g_assert_cmpint(ratelimit_calculate_delay(&rl, 1 << 30), ==, 0);
}

static void test_quota(void)
{
    RateLimit rl;

    ratelimit_init(&rl);
    ratelimit_set_speed(&rl, 1000, 100 * MS);
    g_assert_cmpuint(rl.slice_quota, ==, 100);
    g_assert_cmpuint(rl.slice_ns, ==, 100 * MS);

    /* Below one unit per slice: the slice grows instead. */
    ratelimit_set_speed(&rl, 3, 100 * MS);
    g_assert_cmpuint(rl.slice_quota, ==, 1);
    g_assert_cmpuint(rl.slice_ns, ==, 333333333);

    /* Huge speeds must not overflow. */
    ratelimit_set_speed(&rl, UINT64_MAX, 100 * MS);
    g_assert_cmpuint(rl.slice_quota, >, 0);
    g_assert_cmpuint(rl.slice_ns, >=, 1);
}

static void test_slice(void)
{
    RateLimit rl;
    int64_t d;

    ratelimit_init(&rl);
    ratelimit_set_speed(&rl, 1000, 100 * MS);  /* 100 per slice */
    g_assert_cmpint(ratelimit_calculate_delay(&rl, 60), ==, 0);
    ratelimit_account(&rl, 60);
    g_assert_cmpint(ratelimit_calculate_delay(&rl, 40), ==, 0);
    ratelimit_account(&rl, 40);
    d = ratelimit_calculate_delay(&rl, 1);
    g_assert_cmpint(d, >, 0);
    g_assert_cmpint(d, <=, 100 * MS);
    /* Asking again does not consume anything. */
    g_assert_cmpint(ratelimit_calculate_delay(&rl, 1), <=, d);
}

static void test_big_request(void)
{
    RateLimit rl;
    int64_t d;

    ratelimit_init(&rl);
    ratelimit_set_speed(&rl, 1000, 100 * MS);
    /* Ten slices' worth: allowed at once, then paid for by waiting. */
    g_assert_cmpint(ratelimit_calculate_delay(&rl, 1000), ==, 0);
    ratelimit_account(&rl, 1000);
    d = ratelimit_calculate_delay(&rl, 1);
    g_assert_cmpint(d, >, 900 * MS);
    g_assert_cmpint(d, <=, 1000 * MS);
}

/* Sleeps as told for @duration_ns and returns the achieved rate. */
static double run_loop(uint64_t speed, uint64_t slice_ns, uint64_t chunk,
                       int64_t duration_ns)
{
    RateLimit rl;
    int64_t start = qemu_clock_get_ns();
    int64_t now = start;
    uint64_t total = 0;

    ratelimit_init(&rl);
    ratelimit_set_speed(&rl, speed, slice_ns);
    while (now - start < duration_ns) {
        int64_t d = ratelimit_calculate_delay(&rl, chunk);

        if (d > 0) {
            g_usleep(DIV_ROUND_UP(d, 1000));
        } else {
            ratelimit_account(&rl, chunk);
            total += chunk;
        }
        now = qemu_clock_get_ns();
    }
    return total / ((double)(now - start) / NANOSECONDS_PER_SECOND);
}

static void test_rate_converges(void)
{
    uint64_t speed = 10 * 1000 * 1000;
    /* Chunks below, equal to and above the 100000-unit quota. */
    uint64_t chunks[] = { 4096, 100000, 250000 };

    for (int i = 0; i < ARRAY_SIZE(chunks); i++) {
        double rate = run_loop(speed, 10 * MS, chunks[i], 400 * MS);

        g_test_message("chunk %" PRIu64 ": %.0f units/s", chunks[i], rate);
        /*
         * The first chunk of a slice goes without waiting, so the rate
         * can exceed the speed by at most one chunk over the run.
         */
        g_assert_cmpfloat(rate, <=, speed * 1.02 + chunks[i] / 0.4);
        g_assert_cmpfloat(rate, >=, speed * 0.75);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ratelimit/disabled", test_disabled);
    g_test_add_func("/ratelimit/quota", test_quota);
    g_test_add_func("/ratelimit/slice", test_slice);
    g_test_add_func("/ratelimit/big-request", test_big_request);
    g_test_add_func("/ratelimit/rate-converges", test_rate_converges);
    return g_test_run();
}
