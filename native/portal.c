/* The submission and waiting instructions, compiled only where the compiler has them (build_native.py probes)
 * and called only where the CPU has them (CPUID, dsl_cpu_has): the rest of the library never needs them. */
#include "dsa.h"

#include <immintrin.h>
#include <x86intrin.h>

uint64_t dsl_rdtsc(void) { return __rdtsc(); }

#ifdef DSL_HAVE_PORTAL_ISA
__attribute__((target("enqcmd"))) int dsl_portal_enqcmd(void *portal, const void *desc)
{
    return _enqcmd(portal, desc); /* ZF: 1 = the shared queue refused it, retry */
}

__attribute__((target("movdir64b"))) void dsl_portal_movdir64b(void *portal, const void *desc)
{
    _movdir64b(portal, desc);
}
#else
int dsl_portal_enqcmd(void *portal, const void *desc)
{
    (void)portal;
    (void)desc;
    return 1; /* never reached: a portal is only mapped where the instructions were compiled */
}

void dsl_portal_movdir64b(void *portal, const void *desc)
{
    (void)portal;
    (void)desc;
}
#endif

#ifdef DSL_HAVE_WAITPKG
__attribute__((target("waitpkg"))) uint8_t dsl_umwait_u8(volatile uint8_t *addr, uint64_t tsc_deadline)
{
    _umonitor((void *)addr);
    uint8_t v = *addr;
    if (!v)
        _umwait(0 /* C0.2: deeper, slower wake-up */, tsc_deadline);
    return *addr;
}

int dsl_umwait_supported(void) { return dsl_cpu_has("waitpkg") == 1; }
#else
uint8_t dsl_umwait_u8(volatile uint8_t *addr, uint64_t tsc_deadline)
{
    (void)tsc_deadline;
    return *addr;
}

int dsl_umwait_supported(void) { return 0; }
#endif
