/*
 * buffer_is_zero(): is a buffer all zero bytes?
 *
 * Small buffers use overlapping 8-byte loads.  Larger ones are checked
 * with vector loads: one unaligned vector at each end, aligned vectors in
 * between, four at a time OR-ed together so a zero page costs one test
 * per 64 (SSE2) or 128 (AVX2) bytes.  AVX2 is chosen at start-up when the
 * CPU has it; SSE2 is part of the x86-64 baseline.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"

/* Loads that may be unaligned and may alias anything. */
static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint32_t load32(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

/* Any length; used directly below the vector thresholds. */
static bool buffer_is_zero_scalar(const unsigned char *p, size_t len)
{
    uint64_t acc = 0;

    if (len < 4) {
        for (size_t i = 0; i < len; i++) {
            acc |= p[i];
        }
        return !acc;
    }
    if (len < 8) {
        /* The two loads overlap, together they cover 4..8 bytes. */
        return !(load32(p) | load32(p + len - 4));
    }
    for (size_t i = 0; i + 8 <= len; i += 8) {
        acc |= load64(p + i);
        if (acc) {
            return false;
        }
    }
    return !(acc | load64(p + len - 8));
}

#if defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__))
#include <immintrin.h>

#define SSE2_MIN_LEN 64
#define AVX2_MIN_LEN 128

/* @len >= SSE2_MIN_LEN. */
static bool buffer_is_zero_sse2(const unsigned char *buf, size_t len)
{
    const __m128i *p = (const __m128i *)QEMU_ALIGN_UP((uintptr_t)buf, 16);
    const __m128i *e = (const __m128i *)QEMU_ALIGN_DOWN((uintptr_t)buf + len,
                                                        16);
    const __m128i zero = _mm_setzero_si128();
    __m128i acc;

    /* The unaligned ends overlap the aligned middle; that is harmless. */
    acc = _mm_or_si128(_mm_loadu_si128((const __m128i *)buf),
                       _mm_loadu_si128((const __m128i *)(buf + len - 16)));
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(acc, zero)) != 0xffff) {
        return false;
    }
    for (; p + 4 <= e; p += 4) {
        acc = _mm_or_si128(_mm_or_si128(p[0], p[1]),
                           _mm_or_si128(p[2], p[3]));
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(acc, zero)) != 0xffff) {
            return false;
        }
    }
    for (; p < e; p++) {
        acc = _mm_or_si128(acc, *p);
    }
    return _mm_movemask_epi8(_mm_cmpeq_epi8(acc, zero)) == 0xffff;
}

/* @len >= AVX2_MIN_LEN. */
static bool __attribute__((target("avx2")))
buffer_is_zero_avx2(const unsigned char *buf, size_t len)
{
    const __m256i *p = (const __m256i *)QEMU_ALIGN_UP((uintptr_t)buf, 32);
    const __m256i *e = (const __m256i *)QEMU_ALIGN_DOWN((uintptr_t)buf + len,
                                                        32);
    __m256i acc;

    acc = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)buf),
                          _mm256_loadu_si256((const __m256i *)(buf + len - 32)));
    if (!_mm256_testz_si256(acc, acc)) {
        return false;
    }
    for (; p + 4 <= e; p += 4) {
        acc = _mm256_or_si256(_mm256_or_si256(p[0], p[1]),
                              _mm256_or_si256(p[2], p[3]));
        if (!_mm256_testz_si256(acc, acc)) {
            return false;
        }
    }
    for (; p < e; p++) {
        acc = _mm256_or_si256(acc, *p);
    }
    return _mm256_testz_si256(acc, acc);
}

typedef bool BufferIsZeroFunc(const unsigned char *buf, size_t len);

static BufferIsZeroFunc *buffer_is_zero_vector = buffer_is_zero_sse2;
static size_t buffer_is_zero_min_len = SSE2_MIN_LEN;

/* Runs before main(), so the choice never changes while threads run. */
static void __attribute__((constructor)) buffer_is_zero_select(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        buffer_is_zero_vector = buffer_is_zero_avx2;
        buffer_is_zero_min_len = AVX2_MIN_LEN;
    }
}

bool buffer_is_zero(const void *buf, size_t len)
{
    if (len < buffer_is_zero_min_len) {
        return buffer_is_zero_scalar(buf, len);
    }
    return buffer_is_zero_vector(buf, len);
}

#else

bool buffer_is_zero(const void *buf, size_t len)
{
    return buffer_is_zero_scalar(buf, len);
}

#endif
