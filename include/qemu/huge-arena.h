/*
 * Buffers in transparent huge pages.
 *
 * An O_DIRECT request goes to the device as one segment per physically
 * contiguous piece of its buffer, and virtio queues take a limited number
 * of segments per request (254 on the reference machine): a 1 MiB buffer
 * of 4 KiB pages is 256 segments, so the kernel splits it, and adjacent
 * requests merge only up to that limit.  A buffer inside a huge page is
 * one segment.
 *
 * An arena reserves address space for a number of equal slots (a power
 * of two, at most a huge page) and asks for huge pages with
 * madvise(MADV_HUGEPAGE).  Memory is only used once a slot is touched.
 * Slots are handed out lowest first, which keeps the touched part small.
 * A huge page whose slots are all back is kept for reuse (faulting a
 * huge page in costs a 2 MiB clear) until more than @idle_max bytes of
 * such pages are kept; then it is given back with MADV_DONTNEED.
 *
 * Not thread-safe: one arena belongs to one thread (the main loop).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef QEMU_HUGE_ARENA_H
#define QEMU_HUGE_ARENA_H

#include "qemu/osdep.h"

#define HUGE_ARENA_PAGE_SIZE (2 * MiB)

typedef struct HugeArena HugeArena;

/*
 * An arena of @size bytes (rounded up to huge pages) of @slot_size slots.
 * NULL when @slot_size does not fit, or the kernel has no transparent
 * huge pages for us (the caller then allocates as usual).
 */
HugeArena *huge_arena_new(size_t slot_size, size_t size, size_t idle_max);
/* All slots must be back. */
void huge_arena_free(HugeArena *a);

/* A slot, or NULL when all are handed out. */
void *huge_arena_get(HugeArena *a);
/* Takes @buf back if it is a slot of @a (NULL @a: never). */
bool huge_arena_put(HugeArena *a, void *buf);

/* Bytes of huge pages touched and not given back. */
size_t huge_arena_resident(HugeArena *a);

#endif
