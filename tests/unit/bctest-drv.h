/*
 * "bctest": an in-memory protocol driver for the block-copy and
 * copy-before-write tests.
 *
 * Every request completes a few main-loop iterations after it was issued
 * (more for larger requests), and data moves at completion time (reads copy out, writes copy in
 * after the delay), so a read racing with a write to the same bytes is
 * torn exactly when the code under test fails to order them.  The driver
 * counts the bytes read of each 64 KiB unit, can park the next read that
 * touches a given offset until the test resumes it, and can fail reads
 * or writes.  Ranges that were never written (or were zeroed) are
 * reported as zero by block status, or as unallocated holes with
 * "holes=on".
 */
#ifndef BCTEST_DRV_H
#define BCTEST_DRV_H

#include "block/block_int.h"

#define BCTEST_UNIT (64 * KiB)

typedef struct BCTestState {
    uint8_t *data;
    int64_t size;
    uint8_t *alloc;             /* per unit: written with data */
    int64_t *read_bytes;        /* per unit: bytes of it read */
    unsigned requests;          /* all requests (drives the delays) */
    unsigned read_calls;        /* read calls */
    /* Reads of at least one unit in flight, and the most at once. */
    int unit_reads_in_flight;
    int max_unit_reads_in_flight;
    unsigned zero_writes;       /* write-zeroes calls */
    unsigned data_writes;       /* write calls */
    unsigned dontcache_writes;  /* write calls with BDRV_REQ_DONTCACHE */
    bool holes;                 /* unallocated = hole, not zero */
    int64_t park_offset;        /* -1: nothing to park */
    Coroutine *parked;
    int fail_read;              /* errno for every read, 0: none */
    int fail_write;             /* errno for every write, 0: none */
} BCTestState;

void bctest_register(void);
BCTestState *bctest(BlockDriverState *bs);
/* Opens a bctest node "@name" of @size bytes (holes=on if @holes). */
BlockDriverState *bctest_open(const char *name, int64_t size, bool holes);
/* A node without holes, opened with cache.direct=on like an O_DIRECT file. */
BlockDriverState *bctest_open_direct(const char *name, int64_t size);
/* Fills unit i with a pattern derived from (i, @seed); skips units in @skip. */
void bctest_fill(BlockDriverState *bs, uint8_t seed, bool (*skip)(int64_t));
/* Arms parking of the next read touching @offset. */
void bctest_park_read(BlockDriverState *bs, int64_t offset);
/* Polls until a read is parked; then resumes it with bctest_resume(). */
void bctest_wait_parked(BlockDriverState *bs);
void bctest_resume(BlockDriverState *bs);

#endif
