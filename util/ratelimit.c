/*
 * Slice-based rate limiting.
 *
 * Time is cut into slices of slice_ns, each allowing slice_quota units.
 * A request that does not fit in the rest of the current slice waits for
 * the slice to end.  A slice in which more than a quota was dispatched
 * (one request may be bigger than a quota and is never refused) is
 * stretched to dispatched / quota slices, so over time the rate converges
 * to the speed instead of being exceeded by large requests.
 */
#include "qemu/osdep.h"
#include "qemu/ratelimit.h"

#define RATELIMIT_DEFAULT_SLICE_NS (100 * 1000 * 1000)

void ratelimit_init(RateLimit *limit)
{
    memset(limit, 0, sizeof(*limit));
    limit->slice_ns = RATELIMIT_DEFAULT_SLICE_NS;
}

/*
 * The quota is rounded to whole units (at least one), and the slice
 * length is then recomputed from it so that quota / slice_ns stays as
 * close to @speed as the integer nanoseconds allow.
 */
void ratelimit_set_speed(RateLimit *limit, uint64_t speed, uint64_t slice_ns)
{
    unsigned __int128 quota;

    if (!slice_ns) {
        slice_ns = RATELIMIT_DEFAULT_SLICE_NS;
    }
    limit->slice_ns = slice_ns;
    if (!speed) {
        limit->slice_quota = 0;
        return;
    }
    quota = (unsigned __int128)speed * slice_ns / NANOSECONDS_PER_SECOND;
    if (quota < 1) {
        quota = 1;
    }
    if (quota > UINT64_MAX) {
        quota = UINT64_MAX;
    }
    limit->slice_quota = quota;
    limit->slice_ns = MAX(quota * NANOSECONDS_PER_SECOND / speed, 1);
}

bool ratelimit_enabled(const RateLimit *limit)
{
    return limit->slice_quota != 0;
}

/* Starts a fresh slice at @now if the current one is over. */
static void ratelimit_update_slice(RateLimit *limit, int64_t now)
{
    if (now >= limit->slice_end_time) {
        limit->slice_start_time = now;
        limit->slice_end_time = now + limit->slice_ns;
        limit->dispatched = 0;
    }
}

int64_t ratelimit_calculate_delay(RateLimit *limit, uint64_t n)
{
    int64_t now;

    if (!limit->slice_quota) {
        return 0;
    }
    now = qemu_clock_get_ns();
    ratelimit_update_slice(limit, now);
    /* Something must go in each slice, even a request above the quota. */
    if (!limit->dispatched) {
        return 0;
    }
    if (limit->dispatched < limit->slice_quota &&
        n <= limit->slice_quota - limit->dispatched) {
        return 0;
    }
    return limit->slice_end_time - now;
}

void ratelimit_account(RateLimit *limit, uint64_t n)
{
    unsigned __int128 span;

    if (!limit->slice_quota) {
        return;
    }
    ratelimit_update_slice(limit, qemu_clock_get_ns());
    limit->dispatched += n;
    if (limit->dispatched > limit->slice_quota) {
        span = (unsigned __int128)limit->dispatched * limit->slice_ns /
               limit->slice_quota;
        /* Capped so that the end time cannot overflow. */
        span = MIN(span, (unsigned __int128)(INT64_MAX - limit->slice_start_time));
        limit->slice_end_time = limit->slice_start_time + (int64_t)span;
    }
}
