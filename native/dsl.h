/* Internal header of the dsalab C sources: constants and prototypes shared between the .c files.
 * The public declarations are in dsalab.h (fed to cffi); their values live here. */
#ifndef DSL_H
#define DSL_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>

#define DSL_ABI_VERSION 1

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

#ifndef DSL_BUILD_ID
#define DSL_BUILD_ID "unknown"
#endif

typedef int (*dsl_zero_fn)(const void *buf, size_t len);

/* platform.c */
int dsl_abi_version(void);
const char *dsl_build_id(void);
int dsl_built_with_idxd_h(void);
int dsl_built_with_portal_isa(void);
int dsl_built_with_waitpkg(void);
int dsl_cpu_has(const char *feature);
int dsl_set_thread_name(const char *name);
uint64_t dsl_thread_cpu_ns(void);
uint64_t dsl_now_ns(void);

/* kernels.c */
const char *dsl_kernel_isa(void);
int dsl_set_kernel_isa(const char *isa);
int dsl_is_zero(const void *buf, size_t len);
int dsl_find_zero_pages(const void *buf, size_t npages, size_t page_size, uint8_t *out, int threads);
int dsl_find_zero_pages_fn(dsl_zero_fn fn, const void *buf, size_t npages, size_t page_size, uint8_t *out);
int dsl_compare_pages(const void *a, const void *b, size_t npages, size_t page_size, uint8_t *out, int threads);
uint64_t dsl_or_reduce(const void *buf, size_t len, int threads);
dsl_zero_fn dsl_native_zero_fn(void);

/* guest.c */
int dsl_fill_pages(uint8_t *buf, size_t npages, size_t page_size, const uint8_t *normal, uint64_t seed,
                   int touch_zero, int threads);
uint64_t dsl_splitmix64(uint64_t *state);

/* multifd.c: the types are repeated in dsalab.h for cffi, which checks every field's offset at build time */
typedef int (*dsl_detect_fn)(void *ctx, const void *buf, size_t npages, size_t page_size, uint8_t *out_zero,
                             int device_hint);
typedef struct dsl_mig dsl_mig;
typedef struct {
    uint8_t *src;
    uint8_t *dst;
    size_t npages;
    size_t page_size;
    int channels;
    const int *send_fds;
    const int *recv_fds;
    size_t packet_pages;
    dsl_zero_fn zero_fn;
    dsl_detect_fn detect_fn;
    void *detect_ctx;
    int detect_devices;
    double force_normal_ratio;
    uint64_t seed;
    uint64_t max_bandwidth;
    uint64_t io_timeout_ms;
    int fail_channel;
    uint64_t fail_after_packets;
    int fail_mode;
} dsl_mig_config;
typedef struct {
    uint64_t packets;
    uint64_t pages;
    uint64_t zero_pages;
    uint64_t normal_pages;
    uint64_t forced_normal_pages;
    uint64_t bytes_sent;
    uint64_t payload_bytes;
    uint64_t syncs;
    uint64_t detect_cpu_ns;
    uint64_t send_cpu_ns;
    uint64_t sender_cpu_ns;
    uint64_t receiver_cpu_ns;
    uint64_t recv_pages_written;
    uint64_t recv_zero_pages_cleared;
    int sender_tid;
    int receiver_tid;
} dsl_chan_stats;
int dsl_mig_create(const dsl_mig_config *cfg, dsl_mig **out);
int dsl_mig_send_pages(dsl_mig *m, const uint64_t *bitmap, uint64_t *pages_queued);
int dsl_mig_finish(dsl_mig *m);
void dsl_mig_destroy(dsl_mig *m);
const char *dsl_mig_error(dsl_mig *m);
int dsl_mig_channel_stats(dsl_mig *m, int channel, dsl_chan_stats *out);
uint64_t dsl_mig_bytes_sent(dsl_mig *m);
uint64_t dsl_mig_pages_sent(dsl_mig *m);
int dsl_mig_dirtier_start(dsl_mig *m, uint64_t rate_bytes_per_s, uint64_t seed);
uint64_t dsl_mig_dirtier_stop(dsl_mig *m);
uint64_t dsl_mig_dirty_sync(dsl_mig *m, uint64_t *out_bitmap);
int dsl_mig_dirtier_tid(dsl_mig *m);
uint64_t dsl_mig_dirtier_cpu_ns(dsl_mig *m);  /* CPU time of the stopped guest_dirty thread, ns */

/* Run fn(i, arg) for i in [0, n) on n threads (the caller runs i = 0); always completes, returns DSL_OK. */
int dsl_run_parallel(int n, void (*fn)(int i, void *arg), void *arg);

#endif
