/*
 * Tests of the huge-page buffer arena (util/huge-arena.c): slot layout,
 * lowest-first hand-out, exhaustion, foreign buffers, and giving idle
 * huge pages back beyond the idle limit.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qemu/osdep.h"
#include "qemu/huge-arena.h"


#define PAGE HUGE_ARENA_PAGE_SIZE

static HugeArena *arena_or_skip(size_t slot, size_t size, size_t idle_max)
{
    HugeArena *a = huge_arena_new(slot, size, idle_max);

    if (!a) {
        g_test_skip("no transparent huge pages here");
    }
    return a;
}

static void test_bad_slot_sizes(void)
{
    g_assert_null(huge_arena_new(0, 8 * MiB, 0));
    g_assert_null(huge_arena_new(3 * KiB, 8 * MiB, 0));
    g_assert_null(huge_arena_new(4 * MiB, 8 * MiB, 0));
    g_assert_null(huge_arena_new(1 * MiB, 0, 0));
    /* Not an arena's slot: left to the caller. */
    g_assert_false(huge_arena_put(NULL, &test_bad_slot_sizes));
}

/* 1 MiB slots of 5 MiB (rounded up to 6): two per huge page, aligned. */
static void test_slots(void)
{
    HugeArena *a = arena_or_skip(1 * MiB, 5 * MiB, 0);
    uint8_t *slot[6];
    int foreign;

    if (!a) {
        return;
    }
    for (int i = 0; i < 6; i++) {
        slot[i] = huge_arena_get(a);
        g_assert_nonnull(slot[i]);
        g_assert_cmpuint((uintptr_t)slot[i] % (1 * MiB), ==, 0);
        /* Lowest first: consecutive slots, pairs share a huge page. */
        if (i) {
            g_assert_true(slot[i] == slot[i - 1] + 1 * MiB);
        } else {
            g_assert_cmpuint((uintptr_t)slot[0] % PAGE, ==, 0);
        }
        memset(slot[i], i + 1, 1 * MiB);
    }
    g_assert_null(huge_arena_get(a));
    g_assert_cmpuint(huge_arena_resident(a), ==, 6 * MiB);
    for (int i = 0; i < 6; i++) {
        g_assert_cmpint(slot[i][0], ==, i + 1);
        g_assert_cmpint(slot[i][1 * MiB - 1], ==, i + 1);
    }

    g_assert_false(huge_arena_put(a, &foreign));
    /* A slot given back is the next one handed out. */
    g_assert_true(huge_arena_put(a, slot[3]));
    g_assert_true(huge_arena_get(a) == slot[3]);

    for (int i = 0; i < 6; i++) {
        g_assert_true(huge_arena_put(a, slot[i]));
    }
    /* idle_max 0: every idle huge page went back. */
    g_assert_cmpuint(huge_arena_resident(a), ==, 0);
    huge_arena_free(a);
}

/* Idle huge pages are kept up to idle_max, and reused without faults. */
static void test_idle_limit(void)
{
    HugeArena *a = arena_or_skip(64 * KiB, 8 * MiB, 2 * PAGE);
    const size_t per_page = PAGE / (64 * KiB);
    g_autofree void **slot = g_new(void *, 4 * per_page);

    if (!a) {
        return;
    }
    for (size_t i = 0; i < 4 * per_page; i++) {
        slot[i] = huge_arena_get(a);
        g_assert_nonnull(slot[i]);
    }
    g_assert_cmpuint(huge_arena_resident(a), ==, 4 * PAGE);
    /* Half of the first page back: nothing idle yet. */
    for (size_t i = 0; i < per_page / 2; i++) {
        huge_arena_put(a, slot[i]);
    }
    g_assert_cmpuint(huge_arena_resident(a), ==, 4 * PAGE);
    for (size_t i = per_page / 2; i < 4 * per_page; i++) {
        huge_arena_put(a, slot[i]);
    }
    g_assert_cmpuint(huge_arena_resident(a), ==, 2 * PAGE);
    /* The kept pages serve the next gets first. */
    slot[0] = huge_arena_get(a);
    g_assert_cmpuint(huge_arena_resident(a), ==, 2 * PAGE);
    huge_arena_put(a, slot[0]);
    huge_arena_free(a);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/huge-arena/bad-slot-sizes", test_bad_slot_sizes);
    g_test_add_func("/huge-arena/slots", test_slots);
    g_test_add_func("/huge-arena/idle-limit", test_idle_limit);
    return g_test_run();
}
