/* Internal header of the dsalab C sources: the constants (cffi learns their names from here), the public
 * declarations of dsalab.h, and the few prototypes only the C sources share. */
#ifndef DSL_H
#define DSL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define DSL_ABI_VERSION 4

#define DSL_OK 0
#define DSL_EINVAL 1
#define DSL_ENOMEM 2
#define DSL_ENODEV 3
#define DSL_EQUEUE_FULL 4
#define DSL_EGONE 5
#define DSL_ETIMEDOUT 6
#define DSL_EIO 7
#define DSL_EUNSUPPORTED 8
#define DSL_EPERM 9

/* most threads one parallel call may use (kernels, guest fill); more is DSL_EINVAL (dsalab.buffers.MAX_THREADS) */
#define DSL_MAX_THREADS 256

#define DSL_COMPLETION_THREAD 1
#define DSL_COMPLETION_POLL 2
#define DSL_COMPLETION_UMWAIT 3

#ifndef DSL_BUILD_ID
#define DSL_BUILD_ID "unknown"
#endif

#include "dsalab.h"

/* internal to the C sources */
uint64_t dsl_splitmix64(uint64_t *state);
void dsl_deadline_in(struct timespec *ts, uint64_t ns); /* CLOCK_REALTIME now + ns, for timed waits */

/* Run fn(i, arg) for i in [0, n) on n threads (the caller runs i = 0); always completes and returns DSL_OK for
 * 1 <= n <= DSL_MAX_THREADS (a share whose thread cannot start runs on the caller); DSL_EINVAL otherwise. */
int dsl_run_parallel(int n, void (*fn)(int i, void *arg), void *arg);

#endif
