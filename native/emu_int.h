/* Private header of the emulated DSA device: emu.c (queue, engines, timing model, faults) and emu_serve.c (the
 * write() path's far end) share the device's state. */
#ifndef DSL_EMU_INT_H
#define DSL_EMU_INT_H
#include "dsa.h"

#include <pthread.h>

/* What one engine is working on, under the device lock: a revoke waits until no engine holds a revoked
 * descriptor, so that after it returns the device neither reads the descriptor's buffers nor writes its records. */
struct engine_slot {
    uintptr_t cr;    /* completion address of the top-level descriptor being run */
    int busy;        /* 1 from taking the descriptor off the ring until its last access to memory */
    int revoked;     /* atomic: the submitter gave up on it; stop at the next check, write nothing more */
};

struct emu {
    struct dsl_device base; /* first: a struct emu * is a dsl_device * */
    dsl_emu_config cfg;
    struct dsa_hw_desc *ring;
    int head, count;
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    pthread_t *engines;
    struct engine_slot *slots; /* per engine, under lock */
    pthread_cond_t idle;       /* an engine let go of a descriptor */
    int next_engine, nengines_started;
    int prio_refused;          /* engines whose priority could not be set (under lock) */
    int stop, gone;
    uint64_t device_free_ns; /* the timing model's clock, under lock */
    uint64_t rng;            /* under lock: queue-full injection */
    uint64_t executed, page_faults, bad_descriptors, dropped; /* atomic */
    /* the write() path */
    int serve_fd;
    pthread_t reader;
    int reader_started;
};

/* Submit one descriptor to the emulated queue (the write() path's reader uses it like the kernel's driver). */
int emu_submit(dsl_device *dev, const struct dsa_hw_desc *desc);

/* Write a completion record's status last (release): a reader that sees it also sees the rest of the record. */
static inline void emu_publish(struct dsa_completion_record *cr, uint8_t status)
{
    __atomic_store_n(&cr->status, status, __ATOMIC_RELEASE);
}
#endif
