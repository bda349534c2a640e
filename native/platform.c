/* Build facts, CPU feature detection (CPUID), thread names and clocks. */
#include "dsl.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

int dsl_abi_version(void) { return DSL_ABI_VERSION; }
const char *dsl_build_id(void) { return DSL_BUILD_ID; }

int dsl_built_with_idxd_h(void)
{
#ifdef DSL_HAVE_IDXD_H
    return 1;
#else
    return 0;
#endif
}

int dsl_built_with_portal_isa(void)
{
#ifdef DSL_HAVE_PORTAL_ISA
    return 1;
#else
    return 0;
#endif
}

int dsl_built_with_waitpkg(void)
{
#ifdef DSL_HAVE_WAITPKG
    return 1;
#else
    return 0;
#endif
}

/* CPUID leaf 7 sub-leaf 0: ECX bit 5 WAITPKG, bit 28 MOVDIR64B, bit 29 ENQCMD. */
static int leaf7_ecx_bit(int bit)
{
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (c >> bit) & 1u;
}

int dsl_cpu_has(const char *feature)
{
    __builtin_cpu_init();
    if (strcmp(feature, "avx2") == 0)
        return __builtin_cpu_supports("avx2");
    if (strcmp(feature, "avx512f") == 0)
        return __builtin_cpu_supports("avx512f");
    if (strcmp(feature, "avx512bw") == 0)
        return __builtin_cpu_supports("avx512bw");
    if (strcmp(feature, "waitpkg") == 0)
        return leaf7_ecx_bit(5);
    if (strcmp(feature, "movdir64b") == 0)
        return leaf7_ecx_bit(28);
    if (strcmp(feature, "enqcmd") == 0)
        return leaf7_ecx_bit(29);
    return -1;
}

int dsl_set_thread_name(const char *name)
{
    char buf[16];
    strncpy(buf, name, sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    return prctl(PR_SET_NAME, buf, 0, 0, 0) == 0 ? DSL_OK : DSL_EINVAL;
}

uint64_t dsl_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t dsl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct par_slot {
    void (*fn)(int, void *);
    void *arg;
    int i;
};

static void *par_main(void *p)
{
    struct par_slot *s = p;
    s->fn(s->i, s->arg);
    return NULL;
}

int dsl_run_parallel(int n, void (*fn)(int i, void *arg), void *arg)
{
    if (n < 1 || n > DSL_MAX_THREADS || !fn)
        return DSL_EINVAL;
    if (n == 1) {
        fn(0, arg);
        return DSL_OK;
    }
    /* on the heap, never a VLA: the stack of the calling thread (a Python thread: 8 MiB or less) stays small */
    pthread_t *tids = malloc(sizeof *tids * (size_t)n);
    struct par_slot *slots = malloc(sizeof *slots * (size_t)n);
    int started = 1;
    if (tids && slots) {
        for (int i = 1; i < n; i++) {
            slots[i] = (struct par_slot){fn, arg, i};
            if (pthread_create(&tids[i], NULL, par_main, &slots[i]) != 0)
                break;
            started++;
        }
    }
    fn(0, arg);
    for (int i = 1; i < started; i++)
        pthread_join(tids[i], NULL);
    /* a share whose thread could not start is run here: the work is always complete */
    for (int i = started; i < n; i++)
        fn(i, arg);
    free(tids);
    free(slots);
    return DSL_OK;
}

void dsl_share(size_t n, int parts, int i, size_t *first, size_t *last)
{
    size_t q = n / (size_t)parts, r = n % (size_t)parts;
    *first = (size_t)i * q + ((size_t)i < r ? (size_t)i : r);
    *last = *first + q + ((size_t)i < r ? 1 : 0);
}

int dsl_parts(int threads, size_t n)
{
    if (threads < 1 || n == 0)
        return 1;
    return (size_t)threads > n ? (int)n : threads;
}

void dsl_deadline_in(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_REALTIME, ts);
    uint64_t nsec = (uint64_t)ts->tv_nsec + ns % 1000000000ull;
    ts->tv_sec += (time_t)(ns / 1000000000ull + nsec / 1000000000ull);
    ts->tv_nsec = (long)(nsec % 1000000000ull);
}
