/* Guest memory content: reproducible pseudo-random pages from (seed, page index), filled on several threads. */
#include "dsl.h"

#include <string.h>

uint64_t dsl_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* xoshiro256** keyed by (seed, page): fast, incompressible output */
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static void fill_random(uint8_t *page, size_t n, uint64_t seed, uint64_t index)
{
    uint64_t sm = seed ^ (index * 0xD1B54A32D192ED03ull), s[4];
    for (int i = 0; i < 4; i++)
        s[i] = dsl_splitmix64(&sm);
    uint64_t any = 0;
    for (size_t off = 0; off + 8 <= n; off += 8) {
        uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        memcpy(page + off, &r, 8);
        any |= r;
    }
    if (!any)
        page[0] = 1; /* a normal page is never all zero */
}

struct fill_job {
    uint8_t *buf;
    size_t npages, ps;
    const uint8_t *normal;
    uint64_t seed;
    int touch_zero, parts;
};

static void fill_part(int part, void *arg)
{
    struct fill_job *j = arg;
    size_t first, last;
    dsl_share(j->npages, j->parts, part, &first, &last);
    for (size_t i = first; i < last; i++) {
        uint8_t *page = j->buf + i * j->ps;
        if (j->normal[i])
            fill_random(page, j->ps, j->seed, i);
        else if (j->touch_zero)
            memset(page, 0, j->ps);
    }
}

int dsl_fill_pages(uint8_t *buf, size_t npages, size_t page_size, const uint8_t *normal, uint64_t seed,
                   int touch_zero, int threads)
{
    if (page_size < DSL_MIN_PAGE_SIZE || (page_size & (page_size - 1)) || threads < 1)
        return DSL_EINVAL;
    struct fill_job j = {buf, npages, page_size, normal, seed, touch_zero, dsl_parts(threads, npages)};
    return dsl_run_parallel(j.parts, fill_part, &j);
}
