/* dsalab native API: declarations only, written once. native/dsl.h includes this file for the C sources, and
 * native/build_native.py feeds it to cffi's cdef(), after declaring the DSL_* constants of dsl.h with "..." (the
 * compiler fills them in) and the two DSA structs of <linux/idxd.h> as partial structs.
 * Bump DSL_ABI_VERSION (native/dsl.h) and _ABI_VERSION (dsalab/_binding/native.py) whenever a declaration changes. */
#ifndef DSALAB_H
#define DSALAB_H

struct dsa_hw_desc;
struct dsa_completion_record;

/* ---- status codes: 0 is success, every other value becomes a dsalab.errors exception ---- */

/* ---- build and CPU facts ---- */
int dsl_abi_version(void);
const char *dsl_build_id(void);          /* hash of the native sources this module was built from */
int dsl_built_with_idxd_h(void);         /* 1 if <linux/idxd.h> was found at build time */
int dsl_built_with_portal_isa(void);     /* 1 if the ENQCMD/MOVDIR64B submission code was compiled */
int dsl_built_with_waitpkg(void);        /* 1 if the UMWAIT completion wait was compiled */
int dsl_cpu_has(const char *feature);    /* run time: "avx2", "avx512f", "avx512bw", "enqcmd", "movdir64b", "waitpkg" */
const char *dsl_kernel_isa(void);        /* which zero-check code path the kernels use: "avx512", "avx2", "scalar" */
int dsl_set_kernel_isa(const char *isa); /* force a code path (tests); "auto" restores the default */
int dsl_set_thread_name(const char *name); /* name the calling thread (15 characters at most) */
uint64_t dsl_thread_cpu_ns(void);        /* CPU time of the calling thread, ns */
uint64_t dsl_now_ns(void);               /* CLOCK_MONOTONIC, ns */

/* ---- CPU zero-page kernels (native reference) ---- */
typedef int (*dsl_zero_fn)(const void *buf, size_t len);          /* 1 if buf[0:len] is all zero */
int dsl_is_zero(const void *buf, size_t len);
int dsl_find_zero_pages(const void *buf, size_t npages, size_t page_size, uint8_t *out, int threads);
int dsl_find_zero_pages_fn(dsl_zero_fn fn, const void *buf, size_t npages, size_t page_size, uint8_t *out);
int dsl_compare_pages(const void *a, const void *b, size_t npages, size_t page_size, uint8_t *out, int threads);
uint64_t dsl_or_reduce(const void *buf, size_t len, int threads);  /* bandwidth reference: ORs every byte */
dsl_zero_fn dsl_native_zero_fn(void);

/* ---- calibration micro-measurements (native/calibrate.c, for `dsalab calibrate`) ---- */
/* rounds of a mutex + condition-variable hand-off between two threads: CPU of both, wall time */
int dsl_cal_wakeup(uint64_t rounds, uint64_t *cpu_ns, uint64_t *wall_ns);
/* count write() calls of bytes (1..4096) to fd: the caller's CPU */
int dsl_cal_write(int fd, size_t bytes, uint64_t count, uint64_t *cpu_ns);
/* count messages of bytes written to fd_out while another thread reads fd_in (both made non-blocking) */
int dsl_cal_stream(int fd_out, int fd_in, size_t bytes, uint64_t count, uint64_t *wall_ns, uint64_t *send_cpu_ns,
                   uint64_t *recv_cpu_ns);

/* ---- guest memory ---- */
/* Fill pages: where normal[i] is 1, page i gets pseudo-random bytes (reproducible from seed and i, never all
 * zero); where it is 0 and touch_zero is 1, the page is written with zeros (so it is backed by real memory). */
int dsl_fill_pages(uint8_t *buf, size_t npages, size_t page_size, const uint8_t *normal, uint64_t seed,
                   int touch_zero, int threads);

/* ---- multifd migration engine (native/multifd.c) ---- */
typedef int (*dsl_detect_fn)(void *ctx, const void *buf, size_t npages, size_t page_size, uint8_t *out_zero,
                             int device_hint);

typedef struct dsl_mig dsl_mig;

typedef struct {
    uint8_t *src;               /* source guest memory */
    uint8_t *dst;               /* destination guest memory, same size */
    size_t npages;
    size_t page_size;           /* bytes */
    int channels;
    const int *send_fds;        /* connected TCP sockets, source side, one per channel */
    const int *recv_fds;        /* the accepted ends, destination side */
    size_t packet_pages;        /* pages per multifd packet */
    dsl_zero_fn zero_fn;        /* CPU detection, called per page; or NULL */
    dsl_detect_fn detect_fn;    /* batch detection (the DSA offload layer); or NULL */
    void *detect_ctx;
    int detect_devices;         /* devices behind detect_fn: channel i uses device i % detect_devices */
    double force_normal_ratio;  /* fraction of zero pages sent as normal pages anyway */
    uint64_t seed;
    uint64_t max_bandwidth;     /* bytes/s on the wire, 0 = unlimited */
    uint64_t io_timeout_ms;     /* longest wait without progress before a channel is declared failed */
    int fail_channel;           /* fault injection (tests): -1 none */
    uint64_t fail_after_packets;
    int fail_mode;              /* DSL_FAULT_*: the receiver exits, resets the connection, or stalls */
} dsl_mig_config;

typedef struct {
    uint64_t packets;
    uint64_t pages;
    uint64_t zero_pages;         /* found zero by the detector */
    uint64_t normal_pages;       /* found non-zero */
    uint64_t forced_normal_pages;/* found zero, sent with payload (force_normal_ratio) */
    uint64_t bytes_sent;         /* headers and payload */
    uint64_t payload_bytes;
    uint64_t syncs;
    uint64_t detect_cpu_ns;      /* sender thread CPU in zero-page detection */
    uint64_t send_cpu_ns;        /* sender thread CPU in sendmsg */
    uint64_t sender_cpu_ns;      /* sender thread CPU in total (at park) */
    uint64_t receiver_cpu_ns;
    uint64_t recv_pages_written;
    uint64_t recv_zero_pages_cleared; /* zero pages cleared because they had been received before */
    int sender_tid;
    int receiver_tid;
} dsl_chan_stats;

int dsl_mig_create(const dsl_mig_config *cfg, dsl_mig **out);
/* Send the pages whose bit is set in bitmap (NULL: every page), then sync every channel (each receiver has
 * written everything it got). Called by the live_migration thread; blocks without the GIL. */
int dsl_mig_send_pages(dsl_mig *m, const uint64_t *bitmap, uint64_t *pages_queued);
int dsl_mig_finish(dsl_mig *m);         /* END on every channel; threads park until destroy */
/* Fail the migration now with `why` (the busy senders are appended): every wait gives up within a slice. */
void dsl_mig_abort(dsl_mig *m, const char *why);
/* Wake every thread and join it, waiting timeout_ms in all at most: DSL_OK once all have ended, else
 * DSL_ETIMEDOUT with dsl_mig_stuck naming those still running (call again later; never free the engine then). */
int dsl_mig_stop(dsl_mig *m, uint64_t timeout_ms);
const char *dsl_mig_stuck(dsl_mig *m);
/* dsl_mig_stop bounded by io_timeout_ms + 1 s, then free: DSL_OK; DSL_ETIMEDOUT leaves the engine allocated. */
int dsl_mig_destroy(dsl_mig *m);
const char *dsl_mig_error(dsl_mig *m);  /* the first failure, naming the channel; "" if none */
int dsl_mig_channel_stats(dsl_mig *m, int channel, dsl_chan_stats *out);
uint64_t dsl_mig_bytes_sent(dsl_mig *m);
uint64_t dsl_mig_pages_sent(dsl_mig *m);
/* dirty tracking: a guest_dirty thread writes one word into a random page at rate bytes/s of pages */
int dsl_mig_dirtier_start(dsl_mig *m, uint64_t rate_bytes_per_s, uint64_t seed);
uint64_t dsl_mig_dirtier_stop(dsl_mig *m);             /* returns pages dirtied */
uint64_t dsl_mig_dirty_sync(dsl_mig *m, uint64_t *out_bitmap);  /* take and clear the dirty bitmap; count */
uint64_t dsl_mig_dirtier_cpu_ns(dsl_mig *m);  /* CPU time of the stopped guest_dirty thread, ns */

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
    int priority;            /* engine threads: 0 normal, 1 idle (SCHED_IDLE, else nice 19: after the host's
                                threads), 2 high (nice -10, before them; needs CAP_SYS_NICE, else DSL_EPERM) */
} dsl_emu_config;
typedef struct {
    int backend;             /* DSL_BACKEND_* */
    int submit_path;         /* DSL_SUBMIT_*: portal, write(), emulated ring */
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
/* open the work queue at path (wqX.Y): refused (DSL_EINVAL) unless, after open (never O_CREAT), fstat says it is a
 * character device that char_root/MAJ:MIN/uevent names DEVNAME=dsa/wqX.Y (char_root: /sys/dev/char) */
int dsl_hw_open(const char *path, const char *sysfs_root, const char *char_root, int force_write, dsl_device **out);
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
    int batch_size;          /* pages (descriptors) per batch, 1..DSL_MAX_BATCH_SIZE */
    int completion;          /* DSL_COMPLETION_* */
    int max_retries;         /* retries of a full queue before the CPU takes over */
    double cpu_fraction;     /* fraction of each request done on the CPU */
    uint64_t timeout_ns;     /* a task not complete by then is done on the CPU; 1 ns to 1 hour */
    uint64_t spin_ns;        /* how long a waiter spins before it naps (never past a deadline); at most 1 ms */
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
    uint64_t pages_cpu_closed;      /* the offloader was closing: the CPU finished the call */
    uint64_t batches;
    uint64_t descriptors;
    uint64_t retries;               /* submissions refused by a full queue and retried */
    uint64_t page_faults;
    uint64_t partial_bytes_on_cpu;  /* bytes the CPU checked after partial completions */
    uint64_t timeouts;
    uint64_t stalls;                /* a waiting submitter's 1 s guard expired (a missed wake-up: a bug) */
    uint64_t device_busy_ns;        /* the devices' busy time, ns */
} dsl_offload_stats;
int dsl_offload_create(dsl_device **devs, int ndev, const dsl_offload_config *cfg, dsl_offload **out);
/* Stop taking requests (new calls return DSL_EGONE), make the calls in flight finish on the CPU now, and wait
 * up to timeout_ns for them to return: DSL_OK when none is left inside, DSL_ETIMEDOUT otherwise. Idempotent. */
int dsl_offload_close(dsl_offload *o, uint64_t timeout_ns);
/* Close (waiting up to 30 s for calls in flight), then free: DSL_OK; DSL_ETIMEDOUT frees nothing (a call is
 * still inside; try again). */
int dsl_offload_destroy(dsl_offload *o);
int dsl_offload_zero_pages(dsl_offload *o, const void *buf, size_t npages, size_t page_size, uint8_t *out_zero,
                           int device_hint);
int dsl_offload_compare_pages(dsl_offload *o, const void *a, const void *b, size_t npages, size_t page_size,
                              uint8_t *out_equal, int device_hint);
void dsl_offload_get_stats(dsl_offload *o, dsl_offload_stats *out);
dsl_detect_fn dsl_offload_detect_fn(void);  /* dsl_offload_zero_pages as a dsl_detect_fn (the multifd engine) */

#endif
