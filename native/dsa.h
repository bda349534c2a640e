/* Internal header of the DSA submission layer: the device interface shared by the emulated device (emu.c,
 * emu_serve.c) and hardware work queues (hwq.c), reached through device.c, used by the offload layer (offload*.c);
 * descriptors are built by descriptors.c. */
#ifndef DSL_DSA_H
#define DSL_DSA_H
#include "dsl.h"

#ifdef DSL_HAVE_IDXD_H
#include <linux/idxd.h>
#else
#include "idxd_compat.h"
#endif

#define DSL_DESC_BYTES 64
#define DSL_CR_BYTES 32
#define DSL_CR_ALIGN 32


struct dsl_device_ops {
    /* Submit one 64-byte descriptor: DSL_OK (accepted), DSL_EQUEUE_FULL (retry), DSL_EGONE, DSL_EIO, ... */
    int (*submit)(dsl_device *dev, const struct dsa_hw_desc *desc);
    void (*close)(dsl_device *dev);
    /* Optional (NULL: cannot): make sure the device never again touches the descriptors whose completion address
     * lies in [lo, hi) (dequeue them, stop an engine running one). 1 done, 0 could not (keep their memory). */
    int (*revoke)(dsl_device *dev, uintptr_t lo, uintptr_t hi);
    /* Optional (NULL: none): fill the counters only this kind of device keeps (executed, page_faults, ...). */
    void (*info)(dsl_device *dev, dsl_device_info *out);
};

struct dsl_device {
    const struct dsl_device_ops *ops;
    int backend;     /* DSL_BACKEND_* */
    int submit_path; /* DSL_SUBMIT_* */
    int id;
    int shared;      /* 1 shared queue (ENQCMD semantics), 0 dedicated */
    int wq_size;     /* descriptors the queue holds */
    int max_batch;   /* descriptors per batch (0: no batches, e.g. the write() path) */
    char name[64];
    uint64_t inflight; /* atomic: descriptors submitted and not yet seen complete (dedicated queue credits) */
    uint64_t submitted, refused_full, refused_gone; /* atomic counters */
    uint64_t busy_ns;  /* atomic: modelled busy time (emulated device) */
    int gone;          /* atomic: the device went away (nothing in flight will complete) */
};

/* portal.c: the instructions, where compiled and present (the descriptor builders are in dsalab.h) */
int dsl_portal_enqcmd(void *portal, const void *desc);     /* 0 accepted, 1 retry (ZF=1) */
void dsl_portal_movdir64b(void *portal, const void *desc);
/* wait (UMONITOR/UMWAIT) while *addr == 0 or until the TSC passes tsc_deadline; returns *addr */
uint8_t dsl_umwait_u8(volatile uint8_t *addr, uint64_t tsc_deadline);
uint64_t dsl_rdtsc(void);
#endif
