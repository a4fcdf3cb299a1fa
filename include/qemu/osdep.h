/*
 * Common includes and helpers; every .c file includes this first.
 */
#ifndef QEMU_OSDEP_H
#define QEMU_OSDEP_H

#include "config-host.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <fcntl.h>
#include <assert.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <glib.h>

#include "qemu/queue.h"

/* Marks a function that may only be called from coroutine context. */
#define coroutine_fn
/* Marks a function that may be called both in and outside coroutines. */
#define coroutine_mixed_fn

#define QEMU_PACKED __attribute__((packed))
#define QEMU_NORETURN __attribute__((noreturn))
#define QEMU_WARN_UNUSED_RESULT __attribute__((warn_unused_result))
#ifdef __clang__
#define QEMU_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define QEMU_PRINTF(a, b) __attribute__((format(gnu_printf, a, b)))
#endif
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#ifndef container_of
#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#define ARRAY_SIZE(x) (sizeof(x) / sizeof((x)[0]))

/* Alignment helpers; 'a' need not be a power of two unless stated. */
#define QEMU_ALIGN_DOWN(n, m)   ((n) / (m) * (m))
#define QEMU_ALIGN_UP(n, m)     QEMU_ALIGN_DOWN((n) + (m) - 1, (m))
#define QEMU_IS_ALIGNED(n, m)   (((n) % (m)) == 0)
#define DIV_ROUND_UP(n, d)      (((n) + (d) - 1) / (d))
#define ROUND_UP(n, d)          QEMU_ALIGN_UP(n, d)
#define QEMU_PTR_IS_ALIGNED(p, n) QEMU_IS_ALIGNED((uintptr_t)(p), (n))

#define KiB  (INT64_C(1) << 10)
#define MiB  (INT64_C(1) << 20)
#define GiB  (INT64_C(1) << 30)
#define TiB  (INT64_C(1) << 40)

#define BDRV_SECTOR_BITS 9
#define BDRV_SECTOR_SIZE (1ULL << BDRV_SECTOR_BITS)

/* Largest single request the block layer passes to a driver. */
#define BDRV_REQUEST_MAX_BYTES  (1 << 30)

static inline bool is_power_of_2(uint64_t v)
{
    return v && !(v & (v - 1));
}

static inline int ctz64(uint64_t v)
{
    return v ? __builtin_ctzll(v) : 64;
}

static inline int clz64(uint64_t v)
{
    return v ? __builtin_clzll(v) : 64;
}

static inline uint64_t pow2ceil(uint64_t v)
{
    if (v <= 1) {
        return 1;
    }
    return 1ULL << (64 - clz64(v - 1));
}

/* Aligned buffers for O_DIRECT I/O; free with qemu_vfree(). */
void *qemu_memalign(size_t alignment, size_t size);
void *qemu_try_memalign(size_t alignment, size_t size);
void qemu_vfree(void *ptr);

/* Monotonic clock in nanoseconds. */
int64_t qemu_clock_get_ns(void);

#define NANOSECONDS_PER_SECOND 1000000000LL

#endif
