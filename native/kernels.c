/* Native zero-page kernels: the C reference beside the numba baselines.
 * Three code paths (AVX-512, AVX2, scalar) chosen once at run time; each scans a page in 256-byte blocks and
 * stops checking at the first non-zero block.
 *
 * How pages are walked matters more than the vector width. A single thread leaving a page early (a non-zero
 * page of random data exits after its first block) breaks the hardware prefetcher's sequential stream, and the
 * next page then starts cold: measured here, such a walk reaches ~0.62x the bandwidth of a plain read of the
 * whole buffer. Software prefetch a page or two ahead recovers only part of it (0.80-0.90x) and slows the
 * all-zero case. What works (~1.0x on every case, benchmarks/bench_kernels.py): on an early exit, load one byte
 * of every remaining cache line of the page in a small out-of-line loop, so the stream goes on as if the page
 * had been read; the loop is skipped when the exit is in the last block. */
#include "dsl.h"

#include <immintrin.h>
#include <string.h>

#define BLOCK 256
#define LINE 64

enum isa { ISA_UNSET, ISA_SCALAR, ISA_AVX2, ISA_AVX512 };
static int g_isa = ISA_UNSET;

static int detect_isa(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        return ISA_AVX512;
    if (__builtin_cpu_supports("avx2"))
        return ISA_AVX2;
    return ISA_SCALAR;
}

static int isa(void)
{
    int v = __atomic_load_n(&g_isa, __ATOMIC_RELAXED);
    if (v == ISA_UNSET) {
        v = detect_isa();
        __atomic_store_n(&g_isa, v, __ATOMIC_RELAXED);
    }
    return v;
}

const char *dsl_kernel_isa(void)
{
    switch (isa()) {
    case ISA_AVX512: return "avx512";
    case ISA_AVX2: return "avx2";
    default: return "scalar";
    }
}

int dsl_set_kernel_isa(const char *name)
{
    int best = detect_isa(), want;
    if (strcmp(name, "auto") == 0)
        want = best;
    else if (strcmp(name, "scalar") == 0)
        want = ISA_SCALAR;
    else if (strcmp(name, "avx2") == 0)
        want = ISA_AVX2;
    else if (strcmp(name, "avx512") == 0)
        want = ISA_AVX512;
    else
        return DSL_EINVAL;
    if (want > best)
        return DSL_EUNSUPPORTED;
    __atomic_store_n(&g_isa, want, __ATOMIC_RELAXED);
    return DSL_OK;
}

/* ---------------- scalar ---------------- */

static inline int zero_scalar(const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        uint64_t acc = 0;
        for (size_t j = 0; j < BLOCK; j += 8) {
            uint64_t w;
            memcpy(&w, p + i + j, 8);
            acc |= w;
        }
        if (acc)
            return 0;
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w)
            return 0;
    }
    for (; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static uint64_t or_scalar(const uint8_t *p, size_t n)
{
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        a0 |= w[0];
        a1 |= w[1];
        a2 |= w[2];
        a3 |= w[3];
    }
    for (; i < n; i++)
        a0 |= p[i];
    return a0 | a1 | a2 | a3;
}

/* ---------------- AVX2 ---------------- */

__attribute__((target("avx2"))) static inline int zero_avx2(const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        __m256i v = _mm256_or_si256(
            _mm256_or_si256(_mm256_loadu_si256((const __m256i *)(p + i)),
                            _mm256_loadu_si256((const __m256i *)(p + i + 32))),
            _mm256_or_si256(_mm256_loadu_si256((const __m256i *)(p + i + 64)),
                            _mm256_loadu_si256((const __m256i *)(p + i + 96))));
        if (!_mm256_testz_si256(v, v))
            return 0;
    }
    return zero_scalar(p + i, n - i);
}

__attribute__((target("avx2"))) static uint64_t or_avx2(const uint8_t *p, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        a0 = _mm256_or_si256(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
        a1 = _mm256_or_si256(a1, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_or_si256(a2, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_or_si256(a3, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    __m256i a = _mm256_or_si256(_mm256_or_si256(a0, a1), _mm256_or_si256(a2, a3));
    uint64_t w[4];
    _mm256_storeu_si256((__m256i *)w, a);
    return w[0] | w[1] | w[2] | w[3] | or_scalar(p + i, n - i);
}

/* ---------------- AVX-512 ---------------- */

__attribute__((target("avx512f,avx512bw"))) static inline int zero_avx512(const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 512 <= n; i += 512) {
        __m512i v = _mm512_or_si512(
            _mm512_or_si512(_mm512_or_si512(_mm512_loadu_si512(p + i), _mm512_loadu_si512(p + i + 64)),
                            _mm512_or_si512(_mm512_loadu_si512(p + i + 128), _mm512_loadu_si512(p + i + 192))),
            _mm512_or_si512(_mm512_or_si512(_mm512_loadu_si512(p + i + 256), _mm512_loadu_si512(p + i + 320)),
                            _mm512_or_si512(_mm512_loadu_si512(p + i + 384), _mm512_loadu_si512(p + i + 448))));
        if (_mm512_test_epi64_mask(v, v))
            return 0;
    }
    for (; i + BLOCK <= n; i += BLOCK) {
        __m512i v = _mm512_or_si512(
            _mm512_or_si512(_mm512_loadu_si512(p + i), _mm512_loadu_si512(p + i + 64)),
            _mm512_or_si512(_mm512_loadu_si512(p + i + 128), _mm512_loadu_si512(p + i + 192)));
        if (_mm512_test_epi64_mask(v, v))
            return 0;
    }
    for (; i + 64 <= n; i += 64) {
        __m512i v = _mm512_loadu_si512(p + i);
        if (_mm512_test_epi64_mask(v, v))
            return 0;
    }
    if (i < n) {
        __mmask64 m = (__mmask64)((1ull << (n - i)) - 1); /* n - i < 64 here */
        __m512i v = _mm512_maskz_loadu_epi8(m, p + i);
        if (_mm512_test_epi64_mask(v, v))
            return 0;
    }
    return 1;
}

__attribute__((target("avx512f,avx512bw"))) static uint64_t or_avx512(const uint8_t *p, size_t n)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 256 <= n; i += 256) {
        a0 = _mm512_or_si512(a0, _mm512_loadu_si512(p + i));
        a1 = _mm512_or_si512(a1, _mm512_loadu_si512(p + i + 64));
        a2 = _mm512_or_si512(a2, _mm512_loadu_si512(p + i + 128));
        a3 = _mm512_or_si512(a3, _mm512_loadu_si512(p + i + 192));
    }
    __m512i a = _mm512_or_si512(_mm512_or_si512(a0, a1), _mm512_or_si512(a2, a3));
    return (uint64_t)_mm512_reduce_or_epi64(a) | or_scalar(p + i, n - i);
}

/* ---------------- page walks ---------------- */

/* Load one byte of each cache line of p[from:n]: keeps the hardware prefetcher's stream going after an early
 * exit. Out of line and only called when there is something left, which keeps the hot loop tight. */
__attribute__((noinline)) static void touch_rest(const uint8_t *p, size_t from, size_t n)
{
    volatile uint8_t sink = 0;
    for (size_t j = from; j < n; j += LINE)
        sink |= ((const volatile uint8_t *)p)[j];
}

/* One page: 1 if zero. Inlined with a constant page size where possible, so the block loop unrolls. */
#define PAGE_ZERO(NAME, VEC, BLK, ATTR)                                                                \
    ATTR static inline __attribute__((always_inline)) int NAME(const uint8_t *pg, size_t ps)           \
    {                                                                                                  \
        size_t off = 0;                                                                                \
        for (; off + BLK <= ps; off += BLK)                                                            \
            if (__builtin_expect(!VEC(pg + off, BLK), 0)) {                                            \
                if (off + BLK < ps)                                                                    \
                    touch_rest(pg, off + BLK, ps);                                                     \
                return 0;                                                                              \
            }                                                                                          \
        return off < ps ? VEC(pg + off, ps - off) : 1; /* pages smaller than one block */              \
    }

#define PAGE_WALK(NAME, PAGE, ATTR)                                                                    \
    ATTR static void NAME(const uint8_t *buf, size_t first, size_t last, size_t ps, uint8_t *out)      \
    {                                                                                                  \
        if (ps == 4096)                                                                                \
            for (size_t i = first; i < last; i++)                                                      \
                out[i] = (uint8_t)PAGE(buf + i * 4096, 4096);                                          \
        else                                                                                           \
            for (size_t i = first; i < last; i++)                                                      \
                out[i] = (uint8_t)PAGE(buf + i * ps, ps);                                              \
    }

PAGE_ZERO(page_scalar, zero_scalar, BLOCK, )
PAGE_ZERO(page_avx2, zero_avx2, BLOCK, __attribute__((target("avx2"))))
PAGE_ZERO(page_avx512, zero_avx512, BLOCK, __attribute__((target("avx512f,avx512bw"))))
PAGE_WALK(walk_scalar, page_scalar, )
PAGE_WALK(walk_avx2, page_avx2, __attribute__((target("avx2"))))
PAGE_WALK(walk_avx512, page_avx512, __attribute__((target("avx512f,avx512bw"))))

static void walk(const uint8_t *buf, size_t first, size_t last, size_t ps, uint8_t *out)
{
    switch (isa()) {
    case ISA_AVX512: walk_avx512(buf, first, last, ps, out); break;
    case ISA_AVX2: walk_avx2(buf, first, last, ps, out); break;
    default: walk_scalar(buf, first, last, ps, out); break;
    }
}

int dsl_is_zero(const void *buf, size_t len)
{
    switch (isa()) {
    case ISA_AVX512: return zero_avx512(buf, len);
    case ISA_AVX2: return zero_avx2(buf, len);
    default: return zero_scalar(buf, len);
    }
}

dsl_zero_fn dsl_native_zero_fn(void) { return dsl_is_zero; }

static int valid_pages(size_t page_size, int threads)
{
    return page_size >= DSL_MIN_PAGE_SIZE && (page_size & (page_size - 1)) == 0 && threads >= 1 &&
           threads <= DSL_MAX_THREADS;
}

/* A page-wise job over shares of [0, npages): zero pages of a (b unused), or equal pages of a and b. */
struct pages_job {
    const uint8_t *a, *b;
    size_t npages, ps;
    uint8_t *out;
    int parts;
};

static void zp_part(int i, void *arg)
{
    struct pages_job *j = arg;
    size_t first, last;
    dsl_share(j->npages, j->parts, i, &first, &last);
    walk(j->a, first, last, j->ps, j->out);
}

static void cmp_part(int i, void *arg)
{
    struct pages_job *j = arg;
    size_t first, last;
    dsl_share(j->npages, j->parts, i, &first, &last);
    for (size_t k = first; k < last; k++)
        j->out[k] = memcmp(j->a + k * j->ps, j->b + k * j->ps, j->ps) == 0;
}

static int run_pages(void (*part)(int, void *), const void *a, const void *b, size_t npages, size_t page_size,
                     uint8_t *out, int threads)
{
    if (!valid_pages(page_size, threads))
        return DSL_EINVAL;
    struct pages_job j = {a, b, npages, page_size, out, dsl_parts(threads, npages)};
    return dsl_run_parallel(j.parts, part, &j);
}

int dsl_find_zero_pages(const void *buf, size_t npages, size_t page_size, uint8_t *out, int threads)
{
    return run_pages(zp_part, buf, NULL, npages, page_size, out, threads);
}

int dsl_find_zero_pages_fn(dsl_zero_fn fn, const void *buf, size_t npages, size_t page_size, uint8_t *out)
{
    if (!fn || !valid_pages(page_size, 1))
        return DSL_EINVAL;
    const uint8_t *p = buf;
    for (size_t i = 0; i < npages; i++)
        out[i] = (uint8_t)(fn(p + i * page_size, page_size) != 0);
    return DSL_OK;
}

int dsl_compare_pages(const void *a, const void *b, size_t npages, size_t page_size, uint8_t *out, int threads)
{
    return run_pages(cmp_part, a, b, npages, page_size, out, threads);
}

#define OR_MAX_PARTS 64 /* most threads dsl_or_reduce uses */
#define OR_UNIT 4096     /* dsl_or_reduce's shares are whole units this long, so every thread streams aligned memory */

struct or_job {
    const uint8_t *buf;
    size_t len;
    int parts;
    uint64_t acc[OR_MAX_PARTS];
};

static void or_part(int i, void *arg)
{
    struct or_job *j = arg;
    size_t first, last;
    size_t units = (j->len + OR_UNIT - 1) / OR_UNIT;
    dsl_share(units, j->parts, i, &first, &last);
    first *= OR_UNIT;
    last = last * OR_UNIT > j->len ? j->len : last * OR_UNIT;
    const uint8_t *p = j->buf + first;
    size_t n = last > first ? last - first : 0;
    switch (isa()) {
    case ISA_AVX512: j->acc[i] = or_avx512(p, n); break;
    case ISA_AVX2: j->acc[i] = or_avx2(p, n); break;
    default: j->acc[i] = or_scalar(p, n); break;
    }
}

uint64_t dsl_or_reduce(const void *buf, size_t len, int threads)
{
    struct or_job j = {.buf = buf, .len = len};
    j.parts = dsl_parts(threads > OR_MAX_PARTS ? OR_MAX_PARTS : threads, (len + OR_UNIT - 1) / OR_UNIT);
    dsl_run_parallel(j.parts, or_part, &j);
    uint64_t acc = 0;
    for (int i = 0; i < j.parts; i++)
        acc |= j.acc[i];
    return acc;
}
