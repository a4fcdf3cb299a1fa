/*
 * HBitmap: a hierarchical bitmap over a range of "items" (for block
 * layer users: bytes) where each bit covers 2^granularity items.
 *
 * Upper levels keep one bit per word of the level below, set when that
 * word is non-zero, so finding the next set or clear bit costs O(log n)
 * even in a huge, sparse bitmap.  Set and reset are O(count / word).
 */
#ifndef QEMU_HBITMAP_H
#define QEMU_HBITMAP_H

#include "qemu/osdep.h"

typedef struct HBitmap HBitmap;

#define HBITMAP_LEVELS 7

typedef struct HBitmapIter {
    const HBitmap *hb;
    int granularity;
    size_t pos;                         /* word index in the last level */
    unsigned long cur[HBITMAP_LEVELS];  /* bits still to visit per level */
} HBitmapIter;

/* @size items, each bit covering 2^@granularity items (0 <= g < 64). */
HBitmap *hbitmap_alloc(uint64_t size, int granularity);
void hbitmap_free(HBitmap *hb);
HBitmap *hbitmap_copy(const HBitmap *hb);

uint64_t hbitmap_size(const HBitmap *hb);
int hbitmap_granularity(const HBitmap *hb);
/* Changes the granularity of an empty bitmap. */
void hbitmap_set_granularity(HBitmap *hb, int granularity);

/* Sets/clears every bit touching items [start, start + count). */
void hbitmap_set(HBitmap *hb, uint64_t start, uint64_t count);
void hbitmap_reset(HBitmap *hb, uint64_t start, uint64_t count);
void hbitmap_reset_all(HBitmap *hb);
bool hbitmap_get(const HBitmap *hb, uint64_t item);
bool hbitmap_is_empty(const HBitmap *hb);

/* Number of items covered by set bits (bits * 2^granularity, capped). */
uint64_t hbitmap_count(const HBitmap *hb);

/*
 * First dirty (set) / clean item in [start, start + count), or -1.
 * @count may be -1 for "up to the end".
 */
int64_t hbitmap_next_dirty(const HBitmap *hb, int64_t start, int64_t count);
int64_t hbitmap_next_zero(const HBitmap *hb, int64_t start, int64_t count);

/*
 * Finds the first dirty area in [start, end), at most @max_dirty_count
 * items long; returns false if none.
 */
bool hbitmap_next_dirty_area(const HBitmap *hb, int64_t start, int64_t end,
                             int64_t max_dirty_count,
                             int64_t *dirty_start, int64_t *dirty_count);

/*
 * Returns whether item @start is dirty; *pnum is the length of the run of
 * items from @start (at most @count) that share that state.
 */
bool hbitmap_status(const HBitmap *hb, int64_t start, int64_t count,
                    int64_t *pnum);

/* Grows or shrinks to @size items; new items are clean. */
void hbitmap_truncate(HBitmap *hb, uint64_t size);

/* result = a | b; all three must have the same size and granularity. */
bool hbitmap_can_merge(const HBitmap *a, const HBitmap *b);
void hbitmap_merge(const HBitmap *a, const HBitmap *b, HBitmap *result);

void hbitmap_iter_init(HBitmapIter *hbi, const HBitmap *hb, uint64_t first);
/* Next dirty item (start of a set bit's range) or -1 at the end. */
int64_t hbitmap_iter_next(HBitmapIter *hbi);

/*
 * Serialization in the little-endian bit order of qcow2's bitmap
 * extension (bit i of byte j covers items (8j + i) << granularity).
 * Ranges passed in must be aligned to hbitmap_serialization_align().
 */
uint64_t hbitmap_serialization_align(const HBitmap *hb);
uint64_t hbitmap_serialization_size(const HBitmap *hb,
                                    uint64_t start, uint64_t count);
void hbitmap_serialize_part(const HBitmap *hb, uint8_t *buf,
                            uint64_t start, uint64_t count);
void hbitmap_deserialize_part(HBitmap *hb, const uint8_t *buf,
                              uint64_t start, uint64_t count, bool finish);
void hbitmap_deserialize_finish(HBitmap *hb);

#endif
