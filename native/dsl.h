/* Internal header of the dsalab C sources: constants and prototypes shared between the .c files.
 * The public declarations are in dsalab.h (fed to cffi); their values live here. */
#ifndef DSL_H
#define DSL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdint.h>

#define DSL_ABI_VERSION 2

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

#define DSL_COMPLETION_THREAD 1
#define DSL_COMPLETION_POLL 2
#define DSL_COMPLETION_UMWAIT 3
struct dsa_hw_desc;
struct dsa_completion_record;
/* ---- DSA devices: emulated (native/emu.c) and hardware work queues (native/hwq.c) ---- */
typedef struct dsl_device dsl_device;
typedef struct {
    int engines;             /* engine threads */
    int wq_size;             /* work queue depth, descriptors */
    int shared;              /* 1 shared queue (refuses when full), 0 dedicated */
    double gbps;             /* timing model bandwidth, GB/s (0: no timing model) */
    double latency_us;       /* timing model latency per submitted descriptor, us */
    double fault_rate;       /* probability of a page fault per descriptor (or batch list) */
    double queue_full_rate;  /* probability that a submission is refused as if the queue were full */
    uint64_t seed;
    uint64_t vanish_after;   /* the device disappears after this many descriptors (0: never) */
    int device_id;           /* names the engine threads dsa_engine_<device_id>_<i> */
    int max_batch;           /* descriptors per batch */
} dsl_emu_config;
typedef struct {
    int backend;             /* 1 emulated, 2 hardware */
    int submit_path;         /* 1 portal, 2 write(), 3 emulated ring */
    int id;
    int shared;
    int wq_size;
    int max_batch;           /* 0: no batch descriptors on this path */
    uint64_t submitted;
    uint64_t refused_full;
    uint64_t refused_gone;
    uint64_t busy_ns;        /* modelled busy time, ns (emulated device) */
    uint64_t executed;       /* descriptors executed (emulated device) */
    uint64_t page_faults;    /* injected page faults (emulated device) */
    uint64_t bad_descriptors;
    uint64_t dropped;        /* descriptors sent to a full dedicated queue (lost, as with MOVDIR64B) */
    int gone;
} dsl_device_info;
int dsl_emu_open(const dsl_emu_config *cfg, dsl_device **out);
int dsl_emu_serve_fd(dsl_device *emu, int fd);   /* be the far end of a write() path: read descriptors from fd */
int dsl_hw_open(const char *path, const char *sysfs_root, int force_write, dsl_device **out);
int dsl_hw_open_fd(int fd, int shared, int wq_size, const char *name, dsl_device **out); /* write() path on fd */
void dsl_device_close(dsl_device *dev);
int dsl_device_get_info(dsl_device *dev, dsl_device_info *out);
int dsl_device_submit(dsl_device *dev, const void *desc64);   /* one raw descriptor (tests) */
size_t dsl_desc_size(void);
size_t dsl_cr_size(void);
long dsl_layout(const char *field);         /* offset of "desc.src_addr", "cr.status", ...; -1 if unknown */
uint32_t dsl_desc_word1(const void *desc);  /* the 32-bit word at byte 4: flags (23:0) and opcode (31:24) */
void dsl_desc_compval(struct dsa_hw_desc *d, const void *src, uint32_t len, uint64_t pattern,
                      struct dsa_completion_record *cr);
void dsl_desc_compare(struct dsa_hw_desc *d, const void *a, const void *b, uint32_t len,
                      struct dsa_completion_record *cr);
void dsl_desc_batch(struct dsa_hw_desc *d, const struct dsa_hw_desc *list, uint32_t count,
                    struct dsa_completion_record *cr);
int dsl_umwait_supported(void);

/* ---- the offload layer (native/offload.c) ---- */
typedef struct dsl_offload dsl_offload;
typedef struct {
    int batch_size;          /* pages (descriptors) per batch */
    int completion;          /* DSL_COMPLETION_* */
    int max_retries;         /* retries of a full queue before the CPU takes over */
    double cpu_fraction;     /* fraction of each request done on the CPU */
    uint64_t timeout_ns;     /* a task not complete by then is done on the CPU */
    uint64_t spin_ns;        /* how long a waiter spins before it naps */
} dsl_offload_config;
typedef struct {
    uint64_t requests;
    uint64_t pages;
    uint64_t pages_offloaded;       /* answered by a device */
    uint64_t pages_cpu_fraction;    /* on the CPU by cpu_fraction */
    uint64_t pages_cpu_page_fault;  /* the device faulted: the CPU finished the page */
    uint64_t pages_cpu_queue_full;  /* the queue stayed full through every retry */
    uint64_t pages_cpu_device_gone;
    uint64_t pages_cpu_timeout;
    uint64_t pages_cpu_error;
    uint64_t batches;
    uint64_t descriptors;
    uint64_t retries;               /* submissions refused by a full queue and retried */
    uint64_t page_faults;
    uint64_t partial_bytes_on_cpu;  /* bytes the CPU checked after partial completions */
    uint64_t timeouts;
    uint64_t device_busy_ns;        /* the devices' busy time, ns */
} dsl_offload_stats;
int dsl_offload_create(dsl_device **devs, int ndev, const dsl_offload_config *cfg, dsl_offload **out);
void dsl_offload_destroy(dsl_offload *o);
int dsl_offload_zero_pages(dsl_offload *o, const void *buf, size_t npages, size_t page_size, uint8_t *out_zero,
                           int device_hint);
int dsl_offload_compare_pages(dsl_offload *o, const void *a, const void *b, size_t npages, size_t page_size,
                              uint8_t *out_equal, int device_hint);
int dsl_offload_device_count(dsl_offload *o);
void dsl_offload_get_stats(dsl_offload *o, dsl_offload_stats *out);
dsl_detect_fn dsl_offload_detect_fn(void);  /* dsl_offload_zero_pages as a dsl_detect_fn (the multifd engine) */

/* Run fn(i, arg) for i in [0, n) on n threads (the caller runs i = 0); always completes, returns DSL_OK. */
int dsl_run_parallel(int n, void (*fn)(int i, void *arg), void *arg);

#endif
