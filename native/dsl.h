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

#define DSL_ABI_VERSION 6

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

/* The enumerations below reach Python through the cdef (dsalab._binding mirrors each as an IntEnum). */

/* how the offload layer waits for completions (dsl_offload_config.completion) */
#define DSL_COMPLETION_THREAD 1
#define DSL_COMPLETION_POLL 2
#define DSL_COMPLETION_UMWAIT 3

/* what a device is (dsl_device_info.backend) */
#define DSL_BACKEND_EMU 1
#define DSL_BACKEND_HW 2

/* how descriptors reach a device (dsl_device_info.submit_path) */
#define DSL_SUBMIT_PORTAL 1
#define DSL_SUBMIT_WRITE 2
#define DSL_SUBMIT_RING 3

/* the multifd engine's injected receiver faults (dsl_mig_config.fail_mode) */
#define DSL_FAULT_NONE 0
#define DSL_FAULT_RECEIVER_EXIT 1
#define DSL_FAULT_RECEIVER_RESET 2
#define DSL_FAULT_RECEIVER_STALL 3

/* limits the native side enforces (dsl_emu_open, dsl_offload_create, the kernels, the multifd engine) */
#define DSL_MIN_PAGE_SIZE 64
#define DSL_EMU_MAX_ENGINES 64 /* engine threads of an emulated device (dsalab.device_spec) */
#define DSL_MAX_WQ_SIZE 4096   /* an emulated device's queue depth (dsalab.device_spec) */
#define DSL_EMU_MAX_BATCH 4096 /* an emulated device's max_batch (dsalab.device_spec) */
#define DSL_MAX_BATCH_SIZE 1024 /* the offload layer's batch_size: the DSA spec's (dsalab.validate.MAX_BATCH_SIZE) */

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
/* Share i of n units split into `parts` contiguous shares as even as can be: [*first, *last). */
void dsl_share(size_t n, int parts, int i, size_t *first, size_t *last);
/* How many shares `threads` threads make of n units: threads, but never more than n (and at least 1). */
int dsl_parts(int threads, size_t n);

#endif
