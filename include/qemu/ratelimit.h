/*
 * Rate limiting in time slices: callers account the units they dispatch
 * and are told how long to sleep once a slice's quota is used up.
 */
#ifndef QEMU_RATELIMIT_H
#define QEMU_RATELIMIT_H

#include "qemu/osdep.h"

typedef struct RateLimit {
    int64_t slice_start_time;   /* ns */
    int64_t slice_end_time;     /* ns */
    uint64_t slice_quota;       /* units per slice, 0 = unlimited */
    uint64_t slice_ns;
    uint64_t dispatched;        /* units dispatched in this slice */
} RateLimit;

void ratelimit_init(RateLimit *limit);
/* @speed in units per second; 0 disables limiting. */
void ratelimit_set_speed(RateLimit *limit, uint64_t speed, uint64_t slice_ns);
bool ratelimit_enabled(const RateLimit *limit);
/*
 * Returns how many ns the caller should wait before dispatching more, 0 if
 * it may go ahead now.  Call before dispatching.
 */
int64_t ratelimit_calculate_delay(RateLimit *limit, uint64_t n);
/* Accounts @n units as dispatched. */
void ratelimit_account(RateLimit *limit, uint64_t n);

#endif
