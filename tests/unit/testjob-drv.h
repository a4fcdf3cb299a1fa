/*
 * A test job for the job layer's unit tests: it counts work units, one
 * per millisecond of (interruptible) sleep, and finishes with @ret after
 * @limit units, or runs until cancelled when @limit is 0.  The
 * commit/abort/clean callbacks record that they ran.
 */
#ifndef TESTJOB_DRV_H
#define TESTJOB_DRV_H

#include "qemu/job.h"

typedef struct TestJob {
    int iterations;             /* work units done */
    int limit;                  /* stop after this many; 0: until cancel */
    int ret;                    /* what run returns at the limit */
    bool committed;
    bool aborted;
    bool cleaned;
} TestJob;

/* Jobs of this driver take a TestJob as their opaque. */
extern const JobDriver test_job_driver;

#endif
