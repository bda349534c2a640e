/* Private header of the offload layer, shared by offload.c (results, requests, life cycle), offload_submit.c (tasks
 * and their submission) and offload_wait.c (waiting for completions: polling, UMWAIT, the dsa_completion thread). */
#ifndef DSL_OFFLOAD_INT_H
#define DSL_OFFLOAD_INT_H
#include "dsa.h"

#include <pthread.h>

#define MAX_NAP_NS 200000ull /* a waiter never sleeps longer than this before looking again */
#define MAX_SPIN_NS 1000000ull /* spin_ns above this is refused */
#define MAX_TIMEOUT_NS 3600000000000ull /* timeout_ns above this (one hour) is refused */
#define DESTROY_WAIT_NS 30000000000ull /* dsl_offload_destroy waits this long for calls in flight */
#define CLOSE_SLICE_NS 10000000ull /* dsl_offload_close re-reads the monotonic clock at least this often */
#define GRAVEYARD_WAIT_NS 1000000000ull /* destroy gives a slow device this long to complete given-up tasks */
#define GRAVEYARD_NAP_NS 100000ull /* and looks again this often */
#define WINDOW 32 /* tasks in flight per request */
#define KIB 1024

enum reason { R_OK, R_FRACTION, R_PAGE_FAULT, R_QUEUE_FULL, R_GONE, R_TIMEOUT, R_ERROR, R_CLOSED };
enum op { OP_ZERO, OP_COMPARE };

struct call;

struct task {
    struct dsa_hw_desc batch __attribute__((aligned(64)));
    struct dsa_completion_record bcr __attribute__((aligned(32)));
    struct dsa_hw_desc *descs;          /* capacity batch_size, 64-byte aligned */
    struct dsa_completion_record *crs;  /* capacity batch_size, 32-byte aligned */
    int n, dev, mode_batch, accepted, submit_reason;
    size_t first; /* index of the task's first page in the request */
    uint64_t submit_ns, expect_ns, deadline_ns; /* when it went out, when it should be done, when we give up */
    int done, timed_out; /* set by whoever observed completion (under o->lock in THREAD mode) */
    int closed;          /* given up because the offloader is closing (with timed_out) */
    struct call *call;
    struct task *next; /* the completion thread's list; the free list; the graveyard */
};

struct call {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int pending;     /* tasks of this request with the completion thread */
    uint64_t done;   /* tasks the completion thread has handed back so far */
    uint64_t wake_at; /* signal the submitter when `done` reaches this */
    size_t page_size;
};

struct dsl_offload {
    dsl_device **devs;
    int ndev;
    dsl_offload_config cfg;
    uint64_t rr;                   /* atomic round-robin counter */
    uint64_t *ns_per_kib;          /* per device: observed completion time per KiB (EWMA), to sleep wisely */
    pthread_mutex_t lock;          /* the lists below */
    struct task *free_list, *graveyard;
    /* the completion thread */
    pthread_t cthread;
    int cthread_started, stop;
    pthread_cond_t cwork;
    struct task *outstanding;
    /* the calls inside (under lock): close waits for active to reach 0 */
    int closing; /* atomic reads outside the lock */
    int active;
    pthread_cond_t idle;
    /* stats (atomic) */
    dsl_offload_stats st;
};

#define ADD(field, v) __atomic_add_fetch(&o->st.field, (uint64_t)(v), __ATOMIC_RELAXED)

static inline int closing(dsl_offload *o) { return __atomic_load_n(&o->closing, __ATOMIC_ACQUIRE); }
static inline int device_gone(dsl_device *d) { return __atomic_load_n(&d->gone, __ATOMIC_ACQUIRE); }

/* offload_submit.c */
void off_give_back_credits(dsl_offload *o, struct task *t); /* its dedicated-queue credits, once it left the queue */
struct task *off_task_get(dsl_offload *o);                  /* a task from the free list (or new); NULL: no memory */
void off_task_put(dsl_offload *o, struct task *t, int abandoned); /* to the free list, or the graveyard */
void off_free_list(struct task *t);                         /* free a list of tasks */
/* Build and submit a task of n pages starting at page `first` (t->dev chosen by the caller). */
void off_task_submit(dsl_offload *o, struct task *t, int op, const uint8_t *a, const uint8_t *b, size_t first, int n,
                     size_t ps);

/* offload_wait.c */
int off_task_complete(struct task *t); /* 1 once the device wrote every record the task waits for */
void off_nap(uint64_t ns);             /* sleep ns (nanosleep) */
/* Wait for one task, by the configured mode (with the completion thread: woken when its count of handed-back
 * tasks reaches wake_at); on return the task is complete, or timed out (t->timed_out). */
void off_wait_one(dsl_offload *o, struct task *t, struct call *c, size_t ps, uint64_t wake_at);
void *off_completion_main(void *arg); /* the dsa_completion thread (arg: dsl_offload *) */
#endif
