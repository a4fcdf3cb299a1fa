/*
 * Buffers in transparent huge pages; see include/qemu/huge-arena.h.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qemu/huge-arena.h"

#include <sys/mman.h>

struct HugeArena {
    uint8_t *base;              /* HUGE_ARENA_PAGE_SIZE aligned */
    size_t size;
    size_t slot_size;
    size_t nslots;
    size_t slots_per_page;
    size_t idle_max;
    bool *slot_used;
    size_t first_free;          /* every slot below it is handed out */
    /* Per huge page: slots handed out, and whether it holds memory. */
    unsigned *page_used;
    bool *page_resident;
    size_t idle_resident;       /* resident pages with no slot out */
    size_t resident;
};

/*
 * Reserves @size bytes aligned to a huge page: maps one page more and
 * cuts off what lies before and after the aligned range.
 */
static uint8_t *huge_arena_reserve(size_t size)
{
    size_t len = size + HUGE_ARENA_PAGE_SIZE;
    uint8_t *raw = mmap(NULL, len, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    uint8_t *base;
    size_t head;

    if (raw == MAP_FAILED) {
        return NULL;
    }
    base = (uint8_t *)QEMU_ALIGN_UP((uintptr_t)raw, HUGE_ARENA_PAGE_SIZE);
    head = base - raw;
    if (head) {
        munmap(raw, head);
    }
    munmap(base + size, len - head - size);
    return base;
}

HugeArena *huge_arena_new(size_t slot_size, size_t size, size_t idle_max)
{
    HugeArena *a;
    uint8_t *base;
    size_t npages;

    if (!slot_size || (slot_size & (slot_size - 1)) ||
        slot_size > HUGE_ARENA_PAGE_SIZE || !size) {
        return NULL;
    }
    size = QEMU_ALIGN_UP(size, HUGE_ARENA_PAGE_SIZE);
    base = huge_arena_reserve(size);
    if (!base) {
        return NULL;
    }
    /* EINVAL without CONFIG_TRANSPARENT_HUGEPAGE: no point then. */
    if (madvise(base, size, MADV_HUGEPAGE) < 0) {
        munmap(base, size);
        return NULL;
    }
    npages = size / HUGE_ARENA_PAGE_SIZE;
    a = g_new0(HugeArena, 1);
    a->base = base;
    a->size = size;
    a->slot_size = slot_size;
    a->nslots = size / slot_size;
    a->slots_per_page = HUGE_ARENA_PAGE_SIZE / slot_size;
    a->idle_max = idle_max;
    a->slot_used = g_new0(bool, a->nslots);
    a->page_used = g_new0(unsigned, npages);
    a->page_resident = g_new0(bool, npages);
    return a;
}

void huge_arena_free(HugeArena *a)
{
    if (!a) {
        return;
    }
    for (size_t i = 0; i < a->nslots; i++) {
        assert(!a->slot_used[i]);
    }
    munmap(a->base, a->size);
    g_free(a->slot_used);
    g_free(a->page_used);
    g_free(a->page_resident);
    g_free(a);
}

void *huge_arena_get(HugeArena *a)
{
    for (size_t i = a->first_free; i < a->nslots; i++) {
        size_t page = i / a->slots_per_page;

        if (a->slot_used[i]) {
            continue;
        }
        a->slot_used[i] = true;
        a->first_free = i + 1;
        if (a->page_used[page]++ == 0) {
            if (a->page_resident[page]) {
                a->idle_resident--;
            } else {
                /* The caller is about to touch it. */
                a->page_resident[page] = true;
                a->resident += HUGE_ARENA_PAGE_SIZE;
            }
        }
        return a->base + i * a->slot_size;
    }
    return NULL;
}

bool huge_arena_put(HugeArena *a, void *buf)
{
    uint8_t *p = buf;
    size_t i, page;

    if (!a || p < a->base || p >= a->base + a->size) {
        return false;
    }
    i = (p - a->base) / a->slot_size;
    assert(p == a->base + i * a->slot_size && a->slot_used[i]);
    a->slot_used[i] = false;
    a->first_free = MIN(a->first_free, i);
    page = i / a->slots_per_page;
    if (--a->page_used[page] > 0) {
        return true;
    }
    a->idle_resident++;
    if (a->idle_resident * HUGE_ARENA_PAGE_SIZE > a->idle_max) {
        /* Failure only leaves the memory in place. */
        madvise(a->base + page * HUGE_ARENA_PAGE_SIZE, HUGE_ARENA_PAGE_SIZE,
                MADV_DONTNEED);
        a->page_resident[page] = false;
        a->idle_resident--;
        a->resident -= HUGE_ARENA_PAGE_SIZE;
    }
    return true;
}

size_t huge_arena_resident(HugeArena *a)
{
    return a ? a->resident : 0;
}
