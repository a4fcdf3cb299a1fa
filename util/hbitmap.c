/*
 * Hierarchical bitmap.
 *
 * The bitmap proper is the last level, levels[HBITMAP_LEVELS - 1], with one
 * bit per 2^granularity items.  Every level above it has one bit per word
 * of the level below, and that bit is set exactly when the word is
 * non-zero.  Searching for a set bit therefore climbs until it finds a
 * non-zero word and then descends, touching at most two words per level.
 *
 * Invariants kept by every operation:
 *  - bits past the end of a level (in its last word) are zero;
 *  - an upper bit is set iff the word it stands for is non-zero;
 *  - count is the number of set bits in the last level.
 * Deserialization is the one exception: between hbitmap_deserialize_part()
 * without @finish and hbitmap_deserialize_finish() only the last level is
 * valid.
 */
#include "qemu/osdep.h"
#include "qemu/hbitmap.h"

/* The word arithmetic below (and HBitmapIter) assumes 64-bit longs. */
G_STATIC_ASSERT(sizeof(unsigned long) == 8);

#define BITS_PER_WORD       64
#define BITS_PER_WORD_SHIFT 6
#define LAST_LEVEL          (HBITMAP_LEVELS - 1)

/* Largest number of bits the hierarchy can index with a one-word top. */
#define HBITMAP_MAX_BITS    (UINT64_C(1) << (BITS_PER_WORD_SHIFT * HBITMAP_LEVELS))

struct HBitmap {
    uint64_t size;              /* items */
    int granularity;
    uint64_t nbits;             /* bits in the last level */
    uint64_t count;             /* set bits in the last level */
    unsigned long *levels[HBITMAP_LEVELS];
    uint64_t words[HBITMAP_LEVELS];     /* allocated words per level */
};

static inline unsigned long word_mask_from(unsigned bit)
{
    return ~0UL << bit;
}

static inline unsigned long word_mask_upto(unsigned bit)
{
    return ~0UL >> (BITS_PER_WORD - 1 - bit);
}

/*
 * Sets bits [first, last] of @words and returns how many of them were
 * clear before.
 */
static uint64_t bits_set_range(unsigned long *words, uint64_t first,
                               uint64_t last)
{
    uint64_t w = first >> BITS_PER_WORD_SHIFT;
    uint64_t wl = last >> BITS_PER_WORD_SHIFT;
    unsigned long mask = word_mask_from(first % BITS_PER_WORD);
    uint64_t changed = 0;

    for (; w <= wl; w++) {
        if (w == wl) {
            mask &= word_mask_upto(last % BITS_PER_WORD);
        }
        changed += __builtin_popcountl(mask & ~words[w]);
        words[w] |= mask;
        mask = ~0UL;
    }
    return changed;
}

/*
 * Clears bits [first, last] of @words and returns how many of them were
 * set before.
 */
static uint64_t bits_clear_range(unsigned long *words, uint64_t first,
                                 uint64_t last)
{
    uint64_t w = first >> BITS_PER_WORD_SHIFT;
    uint64_t wl = last >> BITS_PER_WORD_SHIFT;
    unsigned long mask = word_mask_from(first % BITS_PER_WORD);
    uint64_t changed = 0;

    for (; w <= wl; w++) {
        if (w == wl) {
            mask &= word_mask_upto(last % BITS_PER_WORD);
        }
        changed += __builtin_popcountl(mask & words[w]);
        words[w] &= ~mask;
        mask = ~0UL;
    }
    return changed;
}

/* Words needed at each level for @nbits bits in the last level. */
static void hbitmap_level_words(uint64_t nbits, uint64_t *words)
{
    uint64_t bits = nbits;

    for (int i = LAST_LEVEL; i >= 0; i--) {
        words[i] = MAX(DIV_ROUND_UP(bits, BITS_PER_WORD), 1);
        bits = words[i];
    }
    assert(words[0] == 1);
}

static uint64_t hbitmap_bits_for(uint64_t size, int granularity)
{
    /* Written so that size close to UINT64_MAX does not overflow. */
    uint64_t nbits = size >> granularity;

    if (size & ((UINT64_C(1) << granularity) - 1)) {
        nbits++;
    }
    return nbits;
}

/*
 * Resizes every level for @nbits bits.  New words are zero; shrinking
 * callers must clear the bits being dropped first.
 */
static void hbitmap_resize_levels(HBitmap *hb, uint64_t nbits)
{
    uint64_t words[HBITMAP_LEVELS];

    assert(nbits <= HBITMAP_MAX_BITS);
    hbitmap_level_words(nbits, words);
    for (int i = 0; i < HBITMAP_LEVELS; i++) {
        if (words[i] == hb->words[i] && hb->levels[i]) {
            continue;
        }
        hb->levels[i] = g_renew(unsigned long, hb->levels[i], words[i]);
        if (words[i] > hb->words[i]) {
            memset(hb->levels[i] + hb->words[i], 0,
                   (words[i] - hb->words[i]) * sizeof(unsigned long));
        }
        hb->words[i] = words[i];
    }
    hb->nbits = nbits;
}

HBitmap *hbitmap_alloc(uint64_t size, int granularity)
{
    HBitmap *hb = g_new0(HBitmap, 1);

    assert(granularity >= 0 && granularity < 64);
    hb->size = size;
    hb->granularity = granularity;
    hbitmap_resize_levels(hb, hbitmap_bits_for(size, granularity));
    return hb;
}

void hbitmap_free(HBitmap *hb)
{
    if (!hb) {
        return;
    }
    for (int i = 0; i < HBITMAP_LEVELS; i++) {
        g_free(hb->levels[i]);
    }
    g_free(hb);
}

HBitmap *hbitmap_copy(const HBitmap *hb)
{
    HBitmap *copy = g_memdup2(hb, sizeof(*hb));

    for (int i = 0; i < HBITMAP_LEVELS; i++) {
        copy->levels[i] = g_memdup2(hb->levels[i],
                                    hb->words[i] * sizeof(unsigned long));
    }
    return copy;
}

uint64_t hbitmap_size(const HBitmap *hb)
{
    return hb->size;
}

int hbitmap_granularity(const HBitmap *hb)
{
    return hb->granularity;
}

void hbitmap_set_granularity(HBitmap *hb, int granularity)
{
    assert(granularity >= 0 && granularity < 64);
    assert(hb->count == 0);
    hb->granularity = granularity;
    hbitmap_resize_levels(hb, hbitmap_bits_for(hb->size, granularity));
}

/* Sets bits [first, last] of the last level and the summary bits above. */
static void hbitmap_set_bits(HBitmap *hb, uint64_t first, uint64_t last)
{
    hb->count += bits_set_range(hb->levels[LAST_LEVEL], first, last);
    for (int i = LAST_LEVEL - 1; i >= 0; i--) {
        first >>= BITS_PER_WORD_SHIFT;
        last >>= BITS_PER_WORD_SHIFT;
        /* Nothing new to record once the upper bits were all set. */
        if (!bits_set_range(hb->levels[i], first, last)) {
            break;
        }
    }
}

/*
 * Clears bits [first, last] of the last level, then the summary bits of
 * the words that became zero.  Only the two boundary words of a range can
 * stay non-zero, so each level up clears a range again.
 */
static void hbitmap_clear_bits(HBitmap *hb, uint64_t first, uint64_t last)
{
    hb->count -= bits_clear_range(hb->levels[LAST_LEVEL], first, last);
    for (int i = LAST_LEVEL; i > 0; i--) {
        const unsigned long *words = hb->levels[i];
        uint64_t wf = first >> BITS_PER_WORD_SHIFT;
        uint64_t wl = last >> BITS_PER_WORD_SHIFT;

        if (words[wf]) {
            wf++;
        }
        if (wl >= wf && words[wl]) {
            wl--;
        }
        if (wf > wl) {
            break;
        }
        bits_clear_range(hb->levels[i - 1], wf, wl);
        first = wf;
        last = wl;
    }
}

void hbitmap_set(HBitmap *hb, uint64_t start, uint64_t count)
{
    if (!count) {
        return;
    }
    assert(start < hb->size && count <= hb->size - start);
    hbitmap_set_bits(hb, start >> hb->granularity,
                     (start + count - 1) >> hb->granularity);
}

void hbitmap_reset(HBitmap *hb, uint64_t start, uint64_t count)
{
    if (!count) {
        return;
    }
    assert(start < hb->size && count <= hb->size - start);
    hbitmap_clear_bits(hb, start >> hb->granularity,
                       (start + count - 1) >> hb->granularity);
}

void hbitmap_reset_all(HBitmap *hb)
{
    for (int i = 0; i < HBITMAP_LEVELS; i++) {
        memset(hb->levels[i], 0, hb->words[i] * sizeof(unsigned long));
    }
    hb->count = 0;
}

bool hbitmap_get(const HBitmap *hb, uint64_t item)
{
    uint64_t bit = item >> hb->granularity;

    assert(item < hb->size);
    return hb->levels[LAST_LEVEL][bit >> BITS_PER_WORD_SHIFT] &
           (1UL << (bit % BITS_PER_WORD));
}

bool hbitmap_is_empty(const HBitmap *hb)
{
    return hb->count == 0;
}

uint64_t hbitmap_count(const HBitmap *hb)
{
    uint64_t items;
    uint64_t last_bit;

    if (!hb->count) {
        return 0;
    }
    items = hb->count << hb->granularity;
    /* The last bit may cover items past the end; do not count those. */
    last_bit = hb->nbits - 1;
    if (hb->levels[LAST_LEVEL][last_bit >> BITS_PER_WORD_SHIFT] &
        (1UL << (last_bit % BITS_PER_WORD))) {
        items -= (hb->nbits << hb->granularity) - hb->size;
    }
    return items;
}

/*
 * Index of the first set bit >= @bit in the last level, or -1.  Climbs
 * while the current word has nothing left, then descends along the lowest
 * set bits, which by the invariant lead to a non-zero last-level word.
 */
static int64_t hbitmap_find_set_bit(const HBitmap *hb, uint64_t bit)
{
    int level = LAST_LEVEL;
    unsigned long word;

    if (bit >= hb->nbits) {
        return -1;
    }
    for (;;) {
        uint64_t w = bit >> BITS_PER_WORD_SHIFT;

        word = hb->levels[level][w] & word_mask_from(bit % BITS_PER_WORD);
        if (word) {
            bit = (w << BITS_PER_WORD_SHIFT) + __builtin_ctzl(word);
            break;
        }
        if (level == 0) {
            return -1;
        }
        /* Continue with the next word of this level, found one level up. */
        bit = w + 1;
        level--;
        if ((bit >> BITS_PER_WORD_SHIFT) >= hb->words[level]) {
            return -1;
        }
    }
    for (; level < LAST_LEVEL; level++) {
        word = hb->levels[level + 1][bit];
        assert(word);
        bit = (bit << BITS_PER_WORD_SHIFT) + __builtin_ctzl(word);
    }
    return bit;
}

/* Index of the first clear bit >= @bit in the last level, or -1. */
static int64_t hbitmap_find_clear_bit(const HBitmap *hb, uint64_t bit)
{
    const unsigned long *words = hb->levels[LAST_LEVEL];
    uint64_t w = bit >> BITS_PER_WORD_SHIFT;
    unsigned long word;

    if (bit >= hb->nbits) {
        return -1;
    }
    word = ~words[w] & word_mask_from(bit % BITS_PER_WORD);
    while (!word) {
        if (++w >= hb->words[LAST_LEVEL]) {
            return -1;
        }
        word = ~words[w];
    }
    bit = (w << BITS_PER_WORD_SHIFT) + __builtin_ctzl(word);
    /* The padding after the last bit reads as clear but is not a bit. */
    return bit < hb->nbits ? (int64_t)bit : -1;
}

/* End (exclusive) of [start, start + count) clipped to the bitmap. */
static uint64_t hbitmap_range_end(const HBitmap *hb, int64_t start,
                                  int64_t count)
{
    if (count < 0 || (uint64_t)count >= hb->size - start) {
        return hb->size;
    }
    return start + count;
}

int64_t hbitmap_next_dirty(const HBitmap *hb, int64_t start, int64_t count)
{
    uint64_t end;
    int64_t bit;
    uint64_t item;

    assert(start >= 0);
    if ((uint64_t)start >= hb->size || count == 0) {
        return -1;
    }
    end = hbitmap_range_end(hb, start, count);
    bit = hbitmap_find_set_bit(hb, (uint64_t)start >> hb->granularity);
    if (bit < 0) {
        return -1;
    }
    item = MAX((uint64_t)bit << hb->granularity, (uint64_t)start);
    return item < end ? (int64_t)item : -1;
}

int64_t hbitmap_next_zero(const HBitmap *hb, int64_t start, int64_t count)
{
    uint64_t end;
    int64_t bit;
    uint64_t item;

    assert(start >= 0);
    if ((uint64_t)start >= hb->size || count == 0) {
        return -1;
    }
    end = hbitmap_range_end(hb, start, count);
    bit = hbitmap_find_clear_bit(hb, (uint64_t)start >> hb->granularity);
    if (bit < 0) {
        return -1;
    }
    item = MAX((uint64_t)bit << hb->granularity, (uint64_t)start);
    return item < end ? (int64_t)item : -1;
}

bool hbitmap_next_dirty_area(const HBitmap *hb, int64_t start, int64_t end,
                             int64_t max_dirty_count,
                             int64_t *dirty_start, int64_t *dirty_count)
{
    int64_t first, area_end, zero;

    assert(start >= 0 && max_dirty_count > 0);
    end = MIN((uint64_t)end, hb->size);
    if (start >= end) {
        return false;
    }
    first = hbitmap_next_dirty(hb, start, end - start);
    if (first < 0) {
        return false;
    }
    area_end = first + MIN(max_dirty_count, end - first);
    zero = hbitmap_next_zero(hb, first, area_end - first);
    if (zero >= 0) {
        area_end = zero;
    }
    *dirty_start = first;
    *dirty_count = area_end - first;
    return true;
}

/*
 * Returns whether item @start is dirty; *pnum is set to the length of the
 * run of items with that same state, at most @count.  So the whole range
 * is dirty iff this returns true with *pnum == count.
 */
bool hbitmap_status(const HBitmap *hb, int64_t start, int64_t count,
                    int64_t *pnum)
{
    int64_t next;
    bool dirty;

    assert(start >= 0 && count > 0 && (uint64_t)start < hb->size);
    count = hbitmap_range_end(hb, start, count) - start;
    dirty = hbitmap_get(hb, start);
    if (dirty) {
        next = hbitmap_next_zero(hb, start, count);
    } else {
        next = hbitmap_next_dirty(hb, start, count);
    }
    if (pnum) {
        *pnum = next < 0 ? count : next - start;
    }
    return dirty;
}

void hbitmap_truncate(HBitmap *hb, uint64_t size)
{
    uint64_t nbits = hbitmap_bits_for(size, hb->granularity);

    if (nbits < hb->nbits) {
        hbitmap_clear_bits(hb, nbits, hb->nbits - 1);
    }
    /*
     * A partial last bit keeps its state whether it now covers fewer
     * items or, after growing, more: clearing it would lose the state of
     * the old items it covers, so a set one also marks the new ones it
     * reaches (a dirty bitmap may over-report, never under-report).
     */
    hbitmap_resize_levels(hb, nbits);
    hb->size = size;
}

bool hbitmap_can_merge(const HBitmap *a, const HBitmap *b)
{
    return a->size == b->size && a->granularity == b->granularity;
}

void hbitmap_merge(const HBitmap *a, const HBitmap *b, HBitmap *result)
{
    uint64_t count = 0;

    assert(hbitmap_can_merge(a, b));
    assert(hbitmap_can_merge(a, result));
    /*
     * OR-ing every level keeps the summary invariant: a word of the result
     * is non-zero iff it is non-zero in a or b.  @result may alias a or b.
     */
    for (int i = 0; i < HBITMAP_LEVELS; i++) {
        for (uint64_t w = 0; w < a->words[i]; w++) {
            result->levels[i][w] = a->levels[i][w] | b->levels[i][w];
        }
    }
    for (uint64_t w = 0; w < result->words[LAST_LEVEL]; w++) {
        count += __builtin_popcountl(result->levels[LAST_LEVEL][w]);
    }
    result->count = count;
}

/*
 * Iteration keeps, per level, the bits of one word not yet visited.  The
 * word index at level i is hbi->pos >> (6 * (LAST_LEVEL - i)).
 */
void hbitmap_iter_init(HBitmapIter *hbi, const HBitmap *hb, uint64_t first)
{
    uint64_t bit = first >> hb->granularity;

    hbi->hb = hb;
    hbi->granularity = hb->granularity;
    if (bit >= hb->nbits) {
        memset(hbi->cur, 0, sizeof(hbi->cur));
        hbi->pos = 0;
        return;
    }
    hbi->pos = bit >> BITS_PER_WORD_SHIFT;
    hbi->cur[LAST_LEVEL] = hb->levels[LAST_LEVEL][hbi->pos] &
                           word_mask_from(bit % BITS_PER_WORD);
    /* Upper levels: only the words after the one already loaded below. */
    for (int i = LAST_LEVEL - 1; i >= 0; i--) {
        bit >>= BITS_PER_WORD_SHIFT;
        hbi->cur[i] = hb->levels[i][bit >> BITS_PER_WORD_SHIFT];
        if (bit % BITS_PER_WORD == BITS_PER_WORD - 1) {
            hbi->cur[i] = 0;
        } else {
            hbi->cur[i] &= word_mask_from(bit % BITS_PER_WORD + 1);
        }
    }
}

/*
 * Loads the next non-zero last-level word into the iterator; false at end.
 * Summary bits were snapshotted earlier, so a word met on the way down may
 * have been cleared since; the search then climbs again from there (every
 * level below it is exhausted already).
 */
static bool hbitmap_iter_advance(HBitmapIter *hbi)
{
    const HBitmap *hb = hbi->hb;

    for (;;) {
        int level = LAST_LEVEL;
        uint64_t w;

        while (!hbi->cur[level]) {
            if (level == 0) {
                return false;
            }
            level--;
        }
        /* First bit index, at @level, of the word cur[level] came from. */
        w = (hbi->pos >> (BITS_PER_WORD_SHIFT * (LAST_LEVEL - level)))
            << BITS_PER_WORD_SHIFT;
        /* Descend through the lowest unvisited bits. */
        do {
            unsigned long word = hbi->cur[level];

            hbi->cur[level] = word & (word - 1);
            w += __builtin_ctzl(word);      /* a word index at level + 1 */
            level++;
            hbi->cur[level] = hb->levels[level][w];
            hbi->pos = w << (BITS_PER_WORD_SHIFT * (LAST_LEVEL - level));
            w <<= BITS_PER_WORD_SHIFT;
        } while (level < LAST_LEVEL && hbi->cur[level]);
        if (level == LAST_LEVEL && hbi->cur[level]) {
            return true;
        }
    }
}

int64_t hbitmap_iter_next(HBitmapIter *hbi)
{
    unsigned long word = hbi->cur[LAST_LEVEL];
    uint64_t bit;

    if (!word) {
        if (!hbitmap_iter_advance(hbi)) {
            return -1;
        }
        word = hbi->cur[LAST_LEVEL];
    }
    hbi->cur[LAST_LEVEL] = word & (word - 1);
    bit = (hbi->pos << BITS_PER_WORD_SHIFT) + __builtin_ctzl(word);
    return bit << hbi->granularity;
}

/*
 * Serialized chunks are whole 64-bit words of the last level.  With
 * granularity >= 58 one word spans more than 2^64 items, so only the
 * whole bitmap can be a chunk.
 */
uint64_t hbitmap_serialization_align(const HBitmap *hb)
{
    if (hb->granularity >= 64 - BITS_PER_WORD_SHIFT) {
        return UINT64_MAX;
    }
    return (uint64_t)BITS_PER_WORD << hb->granularity;
}

/* Checks a serialization range and returns its words [*first, *end). */
static void hbitmap_serialization_words(const HBitmap *hb, uint64_t start,
                                        uint64_t count, uint64_t *first,
                                        uint64_t *end)
{
    uint64_t align = hbitmap_serialization_align(hb);
    uint64_t last_bit;

    assert(start % align == 0);
    assert(count <= hb->size - start);
    assert(count % align == 0 || start + count == hb->size);
    *first = (start >> hb->granularity) >> BITS_PER_WORD_SHIFT;
    if (!count) {
        *end = *first;
        return;
    }
    last_bit = (start + count - 1) >> hb->granularity;
    *end = (last_bit >> BITS_PER_WORD_SHIFT) + 1;
}

uint64_t hbitmap_serialization_size(const HBitmap *hb,
                                    uint64_t start, uint64_t count)
{
    uint64_t first, end;

    hbitmap_serialization_words(hb, start, count, &first, &end);
    return (end - first) * sizeof(uint64_t);
}

void hbitmap_serialize_part(const HBitmap *hb, uint8_t *buf,
                            uint64_t start, uint64_t count)
{
    uint64_t first, end;

    hbitmap_serialization_words(hb, start, count, &first, &end);
    for (uint64_t w = first; w < end; w++) {
        uint64_t le = GUINT64_TO_LE(hb->levels[LAST_LEVEL][w]);

        memcpy(buf, &le, sizeof(le));
        buf += sizeof(le);
    }
}

void hbitmap_deserialize_part(HBitmap *hb, const uint8_t *buf,
                              uint64_t start, uint64_t count, bool finish)
{
    uint64_t first, end;
    unsigned tail = hb->nbits % BITS_PER_WORD;

    hbitmap_serialization_words(hb, start, count, &first, &end);
    for (uint64_t w = first; w < end; w++) {
        uint64_t le;

        memcpy(&le, buf, sizeof(le));
        buf += sizeof(le);
        hb->levels[LAST_LEVEL][w] = GUINT64_FROM_LE(le);
    }
    /* Input may carry garbage past the last bit; keep the padding clear. */
    if (end == hb->words[LAST_LEVEL] && tail) {
        hb->levels[LAST_LEVEL][end - 1] &= word_mask_upto(tail - 1);
    }
    if (finish) {
        hbitmap_deserialize_finish(hb);
    }
}

/* Rebuilds the summary levels and the count from the last level. */
void hbitmap_deserialize_finish(HBitmap *hb)
{
    uint64_t count = 0;

    for (uint64_t w = 0; w < hb->words[LAST_LEVEL]; w++) {
        count += __builtin_popcountl(hb->levels[LAST_LEVEL][w]);
    }
    hb->count = count;
    for (int i = LAST_LEVEL - 1; i >= 0; i--) {
        const unsigned long *below = hb->levels[i + 1];

        memset(hb->levels[i], 0, hb->words[i] * sizeof(unsigned long));
        for (uint64_t w = 0; w < hb->words[i + 1]; w++) {
            if (below[w]) {
                hb->levels[i][w >> BITS_PER_WORD_SHIFT] |=
                    1UL << (w % BITS_PER_WORD);
            }
        }
    }
}
