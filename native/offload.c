/* The offload layer: zero checks and compares of many pages, batched onto DSA devices, with bounded retry and
 * CPU fallback for whatever a device does not do. Nothing here ever aborts or waits without a bound:
 *
 * - a request of N pages becomes tasks of batch_size descriptors (a BATCH descriptor, or single descriptors
 *   where batches are not possible: a batch of 1, or the write() path); tasks go to the hinted device or
 *   round-robin over the devices; cpu_fraction of the pages are checked on the CPU while the device works;
 * - submission retries a full queue max_retries times (with a growing pause), then the CPU does that task;
 * - completion is awaited by a dsa_completion thread (completion = THREAD), by the submitter polling its own
 *   records (POLL), or with UMONITOR/UMWAIT (UMWAIT, where the CPU has WAITPKG); every wait ends at a deadline,
 *   and a task that did not complete by then is done on the CPU (its memory is kept until the offloader is
 *   destroyed, since the device may still write to it);
 * - a page fault (partial completion) leaves only the rest of that page to the CPU;
 * - a task given up (timeout, close) is revoked where the device can (the emulated device dequeues it and lets go
 *   of it, so its queue credits come back and the caller's buffer is never read after the call returns); where it
 *   cannot, its memory goes to the graveyard, and its credits come back when the device completes it;
 * - dsl_offload_close stops new requests, makes the calls in flight finish on the CPU at once, and waits (bounded)
 *   until none is left inside; dsl_offload_destroy frees nothing while a call is still inside.
 * Every outcome is counted in dsl_offload_stats. */
#include "dsa.h"

#include <errno.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define MAX_NAP_NS 200000ull /* a waiter never sleeps longer than this before looking again */
#define MAX_SPIN_NS 1000000ull /* spin_ns above this is refused */
#define MAX_TIMEOUT_NS 3600000000000ull /* timeout_ns above this (one hour) is refused */
#define DESTROY_WAIT_NS 30000000000ull /* dsl_offload_destroy waits this long for calls in flight */

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

/* ---------------------------------------------------------------- tasks */

static int closing(dsl_offload *o) { return __atomic_load_n(&o->closing, __ATOMIC_ACQUIRE); }

/* The dedicated-queue credits a task holds: one per accepted single descriptor, one for an accepted batch. */
static void give_back_credits(dsl_offload *o, struct task *t)
{
    uint64_t n = (uint64_t)(t->mode_batch ? (t->accepted ? 1 : 0) : t->accepted);
    if (n)
        __atomic_sub_fetch(&o->devs[t->dev]->inflight, n, __ATOMIC_RELEASE);
}

static int task_complete(struct task *t);

/* Graveyard tasks the device has since completed hold no descriptor in its queue: credits back, memory reused.
 * Called with o->lock held. */
static void reap_graveyard(dsl_offload *o)
{
    for (struct task **pp = &o->graveyard; *pp;) {
        struct task *t = *pp;
        if (task_complete(t)) {
            *pp = t->next;
            give_back_credits(o, t);
            t->next = o->free_list;
            o->free_list = t;
        } else {
            pp = &t->next;
        }
    }
}

static struct task *task_get(dsl_offload *o)
{
    pthread_mutex_lock(&o->lock);
    if (o->graveyard)
        reap_graveyard(o);
    struct task *t = o->free_list;
    if (t)
        o->free_list = t->next;
    pthread_mutex_unlock(&o->lock);
    if (t)
        return t;
    t = aligned_alloc(64, sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    size_t cap = (size_t)o->cfg.batch_size;
    t->descs = aligned_alloc(64, cap * sizeof(struct dsa_hw_desc));
    t->crs = aligned_alloc(32, ((cap * sizeof(struct dsa_completion_record) + 31) / 32) * 32);
    if (!t->descs || !t->crs) {
        free(t->descs);
        free(t->crs);
        free(t);
        return NULL;
    }
    return t;
}

static void task_put(dsl_offload *o, struct task *t, int abandoned)
{
    pthread_mutex_lock(&o->lock);
    if (abandoned) { /* the device may still write its records: keep the memory until destroy */
        t->next = o->graveyard;
        o->graveyard = t;
    } else {
        t->next = o->free_list;
        o->free_list = t;
    }
    pthread_mutex_unlock(&o->lock);
}

static void free_list_of(struct task *t)
{
    while (t) {
        struct task *n = t->next;
        free(t->descs);
        free(t->crs);
        free(t);
        t = n;
    }
}

static int device_gone(dsl_device *d) { return __atomic_load_n(&d->gone, __ATOMIC_ACQUIRE); }

/* ---------------------------------------------------------------- submission */

static void backoff(int attempt)
{
    int spins = 1 << (attempt < 10 ? attempt : 10);
    for (int i = 0; i < spins; i++)
        _mm_pause();
}

/* Submit one descriptor with bounded retry: DSL_OK, DSL_EQUEUE_FULL (gave up: retries spent, the task's deadline
 * passed or the offloader is closing), DSL_EGONE, or an error. */
static int submit_one(dsl_offload *o, dsl_device *d, const struct dsa_hw_desc *desc, uint64_t deadline_ns)
{
    for (int attempt = 0;; attempt++) {
        int rc;
        if (!d->shared && __atomic_load_n(&d->inflight, __ATOMIC_ACQUIRE) >= (uint64_t)d->wq_size)
            rc = DSL_EQUEUE_FULL; /* a dedicated queue: no credit left, do not overfill */
        else
            rc = d->ops->submit(d, desc);
        if (rc == DSL_OK) {
            __atomic_add_fetch(&d->inflight, 1, __ATOMIC_RELEASE);
            return DSL_OK;
        }
        if (rc != DSL_EQUEUE_FULL)
            return rc;
        if (attempt >= o->cfg.max_retries || closing(o) || dsl_now_ns() >= deadline_ns)
            return DSL_EQUEUE_FULL;
        ADD(retries, 1);
        backoff(attempt);
    }
}

static int reason_of(int rc)
{
    return rc == DSL_EQUEUE_FULL ? R_QUEUE_FULL : rc == DSL_EGONE ? R_GONE : R_ERROR;
}

/* Build and submit a task of n pages starting at page `first`. */
static void task_submit(dsl_offload *o, struct task *t, int op, const uint8_t *a, const uint8_t *b, size_t first,
                        int n, size_t ps)
{
    dsl_device *d = o->devs[t->dev];
    t->n = n;
    t->first = first;
    t->done = t->timed_out = 0;
    t->accepted = 0;
    t->submit_reason = R_OK;
    for (int i = 0; i < n; i++) {
        const uint8_t *pa = a + (first + (size_t)i) * ps;
        memset(&t->crs[i], 0, sizeof t->crs[i]);
        if (op == OP_ZERO)
            dsl_desc_compval(&t->descs[i], pa, (uint32_t)ps, 0, &t->crs[i]);
        else
            dsl_desc_compare(&t->descs[i], pa, b + (first + (size_t)i) * ps, (uint32_t)ps, &t->crs[i]);
    }
    t->mode_batch = n >= 2 && d->max_batch >= n;
    uint64_t now = dsl_now_ns();
    t->submit_ns = now;
    t->expect_ns = now + __atomic_load_n(&o->ns_per_kib[t->dev], __ATOMIC_RELAXED) * ((uint64_t)n * ps / 1024);
    t->deadline_ns = now + o->cfg.timeout_ns;
    if (t->mode_batch) {
        memset(&t->bcr, 0, sizeof t->bcr);
        dsl_desc_batch(&t->batch, t->descs, (uint32_t)n, &t->bcr);
        int rc = submit_one(o, d, &t->batch, t->deadline_ns);
        if (rc == DSL_OK) {
            t->accepted = n;
            ADD(batches, 1);
            ADD(descriptors, n);
        } else {
            t->submit_reason = reason_of(rc);
        }
        return;
    }
    for (int i = 0; i < n; i++) { /* single descriptors: a batch of one, or no batches on this path */
        int rc = submit_one(o, d, &t->descs[i], t->deadline_ns);
        if (rc != DSL_OK) {
            t->submit_reason = reason_of(rc);
            break;
        }
        t->accepted++;
        ADD(descriptors, 1);
    }
}

/* ---------------------------------------------------------------- waiting */

/* The status byte that says a task is complete: the batch record, or the last accepted single record. */
static volatile uint8_t *task_status(struct task *t)
{
    if (!t->accepted)
        return NULL; /* refused (full queue, gone): nothing will ever complete, nothing to wait for */
    if (t->mode_batch)
        return &t->bcr.status;
    return t->accepted ? &t->crs[t->accepted - 1].status : NULL;
}

static int singles_done(struct task *t)
{
    for (int i = 0; i < t->accepted; i++)
        if (!__atomic_load_n(&t->crs[i].status, __ATOMIC_ACQUIRE))
            return 0;
    return 1;
}

static int task_complete(struct task *t)
{
    volatile uint8_t *st = task_status(t);
    if (!st)
        return 1; /* nothing was accepted: nothing to wait for */
    if (!__atomic_load_n(st, __ATOMIC_ACQUIRE))
        return 0;
    return t->mode_batch || singles_done(t);
}

static void nap(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

/* Learn a device's pace: EWMA of (completion - submission) per KiB, queueing included. */
static void learn(dsl_offload *o, struct task *t, size_t ps)
{
    uint64_t kib = (uint64_t)t->accepted * ps / 1024;
    if (!kib)
        return;
    uint64_t per = (dsl_now_ns() - t->submit_ns) / kib, old = __atomic_load_n(&o->ns_per_kib[t->dev], __ATOMIC_RELAXED);
    if (old && per > 4 * old)
        per = 4 * old; /* one preempted or faulted task must not teach everyone to sleep long */
    __atomic_store_n(&o->ns_per_kib[t->dev], old ? (old * 7 + per) / 8 : per, __ATOMIC_RELAXED);
}

/* Wait for one task in POLL or UMWAIT mode: sleep until shortly before it is expected, spin briefly, then nap in
 * growing steps; give up at the deadline or when the device is gone. */
static void wait_task(dsl_offload *o, struct task *t, size_t ps)
{
    if (task_complete(t))
        return;
    dsl_device *d = o->devs[t->dev];
    uint64_t now = dsl_now_ns();
    if (t->expect_ns > now + 20000) { /* sleep through most of the expected time, never more than MAX_NAP */
        uint64_t ns = t->expect_ns - now - 10000;
        nap(ns < MAX_NAP_NS ? ns : MAX_NAP_NS);
    }
    uint64_t step = 2000;
    for (;;) {
        uint64_t spin_until = dsl_now_ns() + o->cfg.spin_ns;
        if (spin_until > t->deadline_ns)
            spin_until = t->deadline_ns; /* the spin ends at the deadline too */
        do {
            if (task_complete(t))
                goto done;
            if (o->cfg.completion == DSL_COMPLETION_UMWAIT) {
                volatile uint8_t *st = task_status(t);
                if (st)
                    dsl_umwait_u8(st, dsl_rdtsc() + 20000);
            } else {
                for (int i = 0; i < 32; i++)
                    _mm_pause();
            }
        } while (dsl_now_ns() < spin_until);
        now = dsl_now_ns();
        if (now >= t->deadline_ns || device_gone(d) || closing(o)) {
            if (!task_complete(t)) {
                t->timed_out = 1;
                t->closed = now < t->deadline_ns && !device_gone(d);
                return;
            }
            goto done;
        }
        uint64_t left = t->deadline_ns - now;
        nap(step < left ? step : left);
        step = step < 200000 ? step * 2 : step;
    }
done:
    learn(o, t, ps);
}

static uint64_t kth_smallest(uint64_t *v, int n, int k)
{
    for (int i = 0; i < k; i++) /* partial selection sort: k and n are small */
        for (int j = i + 1; j < n; j++)
            if (v[j] < v[i]) {
                uint64_t x = v[i];
                v[i] = v[j];
                v[j] = x;
            }
    return v[k - 1];
}

/* The dsa_completion thread: polls every outstanding task's record and wakes the submitter's call. When a scan
 * finds nothing complete it spins briefly, then naps until the earliest expected completion (from the device's
 * observed pace), so that waiting costs little host CPU; a task past its deadline, or whose device is gone, is
 * handed back to its submitter to finish on the CPU. */
static void *completion_main(void *arg)
{
    dsl_offload *o = arg;
    dsl_set_thread_name("dsa_completion");
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    uint64_t step = 1000;
    pthread_mutex_lock(&o->lock);
    while (!o->stop) {
        if (!o->outstanding) {
            struct timespec ts;
            dsl_deadline_in(&ts, 50000000ull);
            pthread_cond_timedwait(&o->cwork, &o->lock, &ts);
            step = 1000;
            continue;
        }
        int progressed = 0, stopping = closing(o);
        uint64_t now = dsl_now_ns(), earliest = UINT64_MAX, need = UINT64_MAX, soonest_deadline = UINT64_MAX;
        uint64_t expects[64];
        int nexp = 0;
        struct task **pp = &o->outstanding;
        while (*pp) {
            struct task *t = *pp;
            int complete = task_complete(t);
            if (!complete && (now >= t->deadline_ns || device_gone(o->devs[t->dev]))) {
                t->timed_out = 1;
            } else if (!complete && stopping) { /* closing: hand it back now, the CPU finishes it */
                t->timed_out = 1;
                t->closed = 1;
            }
            if (complete || t->timed_out) {
                *pp = t->next;
                if (complete)
                    learn(o, t, t->call->page_size);
                struct call *c = t->call;
                pthread_mutex_lock(&c->lock);
                t->done = 1;
                c->pending--;
                if (++c->done >= c->wake_at)
                    pthread_cond_signal(&c->cond);
                pthread_mutex_unlock(&c->lock);
                progressed = 1;
            } else {
                if (t->expect_ns < earliest)
                    earliest = t->expect_ns;
                if (t->deadline_ns < soonest_deadline)
                    soonest_deadline = t->deadline_ns;
                if (nexp < 64)
                    expects[nexp++] = t->expect_ns;
                uint64_t n = t->call->wake_at > t->call->done ? t->call->wake_at - t->call->done : 1;
                if (n < need)
                    need = n;
                pp = &t->next;
            }
        }
        /* the submitters wake only after `need` more completions: sleep until the need-th is expected */
        if (need > 1 && need != UINT64_MAX && (int)need <= nexp)
            earliest = kth_smallest(expects, nexp, (int)need);
        pthread_mutex_unlock(&o->lock);
        if (progressed) {
            step = 1000;
        } else {
            now = dsl_now_ns();
            if (earliest != UINT64_MAX && earliest > now + o->cfg.spin_ns) {
                /* nothing is due yet: sleep until the earliest expected completion, no spinning */
                uint64_t wait = earliest - now;
                nap(wait < MAX_NAP_NS ? wait : MAX_NAP_NS);
            } else { /* something is due (or late): spin briefly (never past a deadline, nor once closing), then
                      * nap in growing steps */
                uint64_t until = now + o->cfg.spin_ns;
                if (until > soonest_deadline)
                    until = soonest_deadline;
                while (dsl_now_ns() < until && !closing(o))
                    for (int i = 0; i < 32; i++)
                        _mm_pause();
                nap(step);
                step = step < 100000 ? step * 2 : step;
            }
        }
        pthread_mutex_lock(&o->lock);
    }
    pthread_mutex_unlock(&o->lock);
    return NULL;
}

/* Wait for one task, by the configured mode. With the completion thread, the submitter asks to be woken only
 * when the completion thread's count of handed-back tasks reaches wake_at (half its window, or all that is left
 * at the end), not at every task: each wake-up costs a context switch, and the device stays busy meanwhile. */
static void wait_one(dsl_offload *o, struct task *t, struct call *c, size_t ps, uint64_t wake_at)
{
    if (o->cfg.completion != DSL_COMPLETION_THREAD || !t->accepted) {
        wait_task(o, t, ps);
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->wake_at = wake_at;
    while (!t->done) {
        struct timespec ts;
        dsl_deadline_in(&ts, 1000000000ull); /* the completion thread times tasks out; this only guards its absence */
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT) {
            ADD(stalls, 1); /* a wake-up the completion thread should have sent: counted, never silent */
            if (__atomic_load_n(&o->stop, __ATOMIC_ACQUIRE))
                break;
        }
        if (!t->done)
            c->wake_at = c->done + 1; /* woken, but this one is late: wait for it alone */
    }
    pthread_mutex_unlock(&c->lock);
}

/* ---------------------------------------------------------------- results */

static int page_on_cpu(int op, const uint8_t *a, const uint8_t *b, size_t from, size_t ps)
{
    if (op == OP_ZERO)
        return dsl_is_zero(a + from, ps - from);
    return memcmp(a + from, b + from, ps - from) == 0;
}

static void count_cpu(dsl_offload *o, int reason, uint64_t pages)
{
    switch (reason) {
    case R_FRACTION: ADD(pages_cpu_fraction, pages); break;
    case R_PAGE_FAULT: ADD(pages_cpu_page_fault, pages); break;
    case R_QUEUE_FULL: ADD(pages_cpu_queue_full, pages); break;
    case R_GONE: ADD(pages_cpu_device_gone, pages); break;
    case R_TIMEOUT: ADD(pages_cpu_timeout, pages); break;
    case R_CLOSED: ADD(pages_cpu_closed, pages); break;
    default: ADD(pages_cpu_error, pages); break;
    }
}

/* A task given up on: ask the device to let go of it. 1 if it did (the device will never again read the
 * caller's buffer or write the task's records, and its queue no longer holds the task's descriptors). */
static int task_revoke(dsl_offload *o, struct task *t)
{
    dsl_device *d = o->devs[t->dev];
    if (!t->accepted)
        return 1;
    if (!d->ops->revoke)
        return 0;
    if (t->mode_batch)
        return d->ops->revoke(d, (uintptr_t)&t->bcr, (uintptr_t)(&t->bcr + 1));
    return d->ops->revoke(d, (uintptr_t)t->crs, (uintptr_t)(t->crs + t->accepted));
}

/* Turn a finished (or timed-out) task into answers; the CPU does whatever the device did not. Returns 1 if the
 * task's memory may be reused, 0 if the device may still write to it (the graveyard keeps it). */
static int task_results(dsl_offload *o, struct task *t, int op, const uint8_t *a, const uint8_t *b, size_t ps,
                        uint8_t *out)
{
    dsl_device *d = o->devs[t->dev];
    /* a task given up on is revoked before its records are read: what the device wrote until then counts */
    int released = !t->timed_out || task_revoke(o, t);
    int gone = t->timed_out && device_gone(d);
    uint8_t bst = t->mode_batch ? (uint8_t)(t->bcr.status & DSA_COMP_STATUS_MASK) : DSA_COMP_SUCCESS;
    for (int i = 0; i < t->n; i++) {
        size_t page = t->first + (size_t)i;
        const uint8_t *pa = a + page * ps, *pb = b ? b + page * ps : NULL;
        int reason;
        size_t from = 0;
        uint8_t st = (uint8_t)(__atomic_load_n(&t->crs[i].status, __ATOMIC_ACQUIRE) & DSA_COMP_STATUS_MASK);
        if (i >= t->accepted)
            reason = t->submit_reason;
        else if (st == DSA_COMP_SUCCESS) {
            out[page] = t->crs[i].result == 0;
            ADD(pages_offloaded, 1);
            continue;
        } else if (st == DSA_COMP_PAGE_FAULT_NOBOF || st == DSA_COMP_PAGE_FAULT_IR) {
            ADD(page_faults, 1);
            from = t->crs[i].bytes_completed < ps ? t->crs[i].bytes_completed : 0;
            ADD(partial_bytes_on_cpu, ps - from);
            reason = R_PAGE_FAULT;
        } else if (st == DSA_COMP_NONE && bst == DSA_COMP_BATCH_PAGE_FAULT) {
            reason = R_PAGE_FAULT;
        } else if (st == DSA_COMP_NONE && t->timed_out) {
            reason = gone ? R_GONE : t->closed ? R_CLOSED : R_TIMEOUT;
        } else {
            reason = R_ERROR;
        }
        out[page] = (uint8_t)page_on_cpu(op, pa, pb, from, ps);
        count_cpu(o, reason, 1);
    }
    if (t->mode_batch && bst == DSA_COMP_BATCH_PAGE_FAULT)
        ADD(page_faults, 1);
    if (t->timed_out && !t->closed)
        ADD(timeouts, 1);
    /* the descriptors are no longer in the queue (complete, or revoked): give back the dedicated-queue credits;
     * an unrevoked task gives them back when the graveyard sees it complete */
    if (released)
        give_back_credits(o, t);
    return released;
}

/* ---------------------------------------------------------------- the request */

#define WINDOW 32 /* tasks in flight per request */

static int run_request(dsl_offload *o, int op, const void *av, const void *bv, size_t npages, size_t ps, uint8_t *out,
                       int hint);

/* A call enters the offloader (refused once it is closing) and leaves it; close waits for active == 0. */
static int call_enter(dsl_offload *o)
{
    pthread_mutex_lock(&o->lock);
    int ok = !o->closing;
    if (ok)
        o->active++;
    pthread_mutex_unlock(&o->lock);
    return ok;
}

static void call_leave(dsl_offload *o)
{
    pthread_mutex_lock(&o->lock);
    if (--o->active == 0)
        pthread_cond_broadcast(&o->idle);
    pthread_mutex_unlock(&o->lock);
}

static int request(dsl_offload *o, int op, const void *av, const void *bv, size_t npages, size_t ps, uint8_t *out,
                   int hint)
{
    if (!o || (!av && npages) || (!out && npages) || ps < 64 || (ps & (ps - 1)) || ps > UINT32_MAX ||
        (op == OP_COMPARE && !bv && npages) || npages > SIZE_MAX / ps)
        return DSL_EINVAL;
    if (!call_enter(o))
        return DSL_EGONE; /* closed: no call may start */
    int rc = run_request(o, op, av, bv, npages, ps, out, hint);
    call_leave(o);
    return rc;
}

static void cpu_pages(int op, const uint8_t *a, const uint8_t *b, size_t from, size_t to, size_t ps, uint8_t *out)
{
    for (size_t p = from; p < to; p++)
        out[p] = (uint8_t)page_on_cpu(op, a + p * ps, b ? b + p * ps : NULL, 0, ps);
}

static int run_request(dsl_offload *o, int op, const void *av, const void *bv, size_t npages, size_t ps, uint8_t *out,
                       int hint)
{
    const uint8_t *a = av, *b = bv;
    ADD(requests, 1);
    ADD(pages, npages);
    size_t ncpu = (size_t)((double)npages * o->cfg.cpu_fraction);
    size_t ndev = npages - ncpu;
    struct call c = {.pending = 0, .done = 0, .wake_at = 1, .page_size = ps};
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    int cpu_done = ncpu == 0;
    size_t next = 0;
    int bs = o->cfg.batch_size;
    struct task *ring[WINDOW];
    int head = 0, inflight = 0;
    uint64_t given = 0, consumed = 0; /* tasks handed to the completion thread, and processed since */
    while (next < ndev || inflight || !cpu_done) {
        /* keep the window full: submit until WINDOW tasks are out */
        while (next < ndev && inflight < WINDOW) {
            if (closing(o)) { /* closing: nothing more goes to a device, the CPU does the rest now */
                cpu_pages(op, a, b, next, ndev, ps, out);
                count_cpu(o, R_CLOSED, ndev - next);
                next = ndev;
                break;
            }
            struct task *t = task_get(o);
            if (!t) { /* out of memory for tasks: the CPU does the rest */
                cpu_pages(op, a, b, next, ndev, ps, out);
                count_cpu(o, R_ERROR, ndev - next);
                next = ndev;
                break;
            }
            int n = (int)(ndev - next < (size_t)bs ? ndev - next : (size_t)bs);
            t->dev = hint >= 0 ? hint % o->ndev : (int)(__atomic_fetch_add(&o->rr, 1, __ATOMIC_RELAXED) % (uint64_t)o->ndev);
            t->call = &c;
            task_submit(o, t, op, a, b, next, n, ps);
            next += (size_t)n;
            ring[(head + inflight++) % WINDOW] = t;
            if (o->cfg.completion == DSL_COMPLETION_THREAD && t->accepted) {
                given++;
                pthread_mutex_lock(&o->lock);
                c.pending++;
                t->next = o->outstanding;
                o->outstanding = t;
                pthread_cond_signal(&o->cwork);
                pthread_mutex_unlock(&o->lock);
            }
        }
        if (!cpu_done) { /* the CPU's share, while the device works (as Intel DTO splits a request) */
            for (size_t p = ndev; p < npages; p++)
                out[p] = (uint8_t)page_on_cpu(op, a + p * ps, b ? b + p * ps : NULL, 0, ps);
            count_cpu(o, R_FRACTION, ncpu);
            cpu_done = 1;
        }
        if (!inflight)
            continue;
        /* finish the oldest task: results in order, then its slot takes the next task */
        struct task *t = ring[head];
        uint64_t with_thread = given - consumed; /* tasks with the completion thread, done or not, not processed */
        uint64_t k = next < ndev && with_thread > WINDOW / 2 ? WINDOW / 2 : with_thread;
        wait_one(o, t, &c, ps, consumed + (k ? k : 1));
        if (o->cfg.completion == DSL_COMPLETION_THREAD && t->accepted)
            consumed++;
        task_put(o, t, !task_results(o, t, op, a, b, ps, out));
        head = (head + 1) % WINDOW;
        inflight--;
    }
    pthread_cond_destroy(&c.cond);
    pthread_mutex_destroy(&c.lock);
    return DSL_OK;
}

int dsl_offload_zero_pages(dsl_offload *o, const void *buf, size_t npages, size_t page_size, uint8_t *out_zero,
                           int device_hint)
{
    return request(o, OP_ZERO, buf, NULL, npages, page_size, out_zero, device_hint);
}

int dsl_offload_compare_pages(dsl_offload *o, const void *a, const void *b, size_t npages, size_t page_size,
                              uint8_t *out_equal, int device_hint)
{
    return request(o, OP_COMPARE, a, b, npages, page_size, out_equal, device_hint);
}

static int detect_adapter(void *ctx, const void *buf, size_t npages, size_t page_size, uint8_t *out_zero, int hint)
{
    return dsl_offload_zero_pages(ctx, buf, npages, page_size, out_zero, hint);
}

dsl_detect_fn dsl_offload_detect_fn(void) { return detect_adapter; }

/* ---------------------------------------------------------------- life cycle */

int dsl_offload_create(dsl_device **devs, int ndev, const dsl_offload_config *cfg, dsl_offload **out)
{
    if (!out || !cfg)
        return DSL_EINVAL;
    *out = NULL;
    if (!devs || ndev < 1 || cfg->batch_size < 1 || cfg->batch_size > DSL_MAX_BATCH || cfg->max_retries < 0 ||
        !(cfg->cpu_fraction >= 0 && cfg->cpu_fraction <= 1) || cfg->timeout_ns == 0 ||
        cfg->timeout_ns > MAX_TIMEOUT_NS || cfg->spin_ns > MAX_SPIN_NS ||
        (cfg->completion != DSL_COMPLETION_THREAD && cfg->completion != DSL_COMPLETION_POLL &&
         cfg->completion != DSL_COMPLETION_UMWAIT))
        return DSL_EINVAL;
    for (int i = 0; i < ndev; i++)
        if (!devs[i])
            return DSL_EINVAL;
    if (cfg->completion == DSL_COMPLETION_UMWAIT && !dsl_umwait_supported())
        return DSL_EUNSUPPORTED;
    dsl_offload *o = calloc(1, sizeof *o);
    if (!o)
        return DSL_ENOMEM;
    o->devs = malloc((size_t)ndev * sizeof *o->devs);
    o->ns_per_kib = calloc((size_t)ndev, sizeof *o->ns_per_kib);
    if (!o->devs || !o->ns_per_kib) {
        free(o->devs);
        free(o->ns_per_kib);
        free(o);
        return DSL_ENOMEM;
    }
    memcpy(o->devs, devs, (size_t)ndev * sizeof *devs);
    o->ndev = ndev;
    o->cfg = *cfg;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->cwork, NULL);
    pthread_cond_init(&o->idle, NULL);
    if (cfg->completion == DSL_COMPLETION_THREAD) {
        if (pthread_create(&o->cthread, NULL, completion_main, o) != 0) {
            dsl_offload_destroy(o);
            return DSL_ENOMEM;
        }
        o->cthread_started = 1;
    }
    *out = o;
    return DSL_OK;
}

int dsl_offload_close(dsl_offload *o, uint64_t timeout_ns)
{
    if (!o)
        return DSL_EINVAL;
    pthread_mutex_lock(&o->lock);
    __atomic_store_n(&o->closing, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&o->cwork); /* the completion thread hands every outstanding task back */
    uint64_t until = dsl_now_ns() + (timeout_ns < MAX_TIMEOUT_NS ? timeout_ns : MAX_TIMEOUT_NS);
    while (o->active && dsl_now_ns() < until) {
        struct timespec ts;
        dsl_deadline_in(&ts, 10000000ull); /* re-read the monotonic clock at least every 10 ms */
        pthread_cond_timedwait(&o->idle, &o->lock, &ts);
    }
    int rc = o->active ? DSL_ETIMEDOUT : DSL_OK;
    pthread_mutex_unlock(&o->lock);
    return rc;
}

int dsl_offload_destroy(dsl_offload *o)
{
    if (!o)
        return DSL_OK;
    if (dsl_offload_close(o, DESTROY_WAIT_NS) != DSL_OK)
        return DSL_ETIMEDOUT; /* a call is still inside: free nothing (the caller may try again) */
    pthread_mutex_lock(&o->lock);
    o->stop = 1;
    pthread_cond_broadcast(&o->cwork);
    pthread_mutex_unlock(&o->lock);
    if (o->cthread_started)
        pthread_join(o->cthread, NULL);
    free_list_of(o->free_list);
    /* the graveyard: tasks that timed out. Free one only once its device has written it or is gone; give a slow
     * device a second; a task still pending after that is leaked, never freed under a device's feet. */
    uint64_t until = dsl_now_ns() + 1000000000ull;
    for (struct task *t = o->graveyard, *n; t; t = n) {
        n = t->next;
        while (!task_complete(t) && !device_gone(o->devs[t->dev]) && dsl_now_ns() < until)
            nap(100000);
        if (task_complete(t) || device_gone(o->devs[t->dev])) {
            if (task_complete(t))
                give_back_credits(o, t); /* its descriptors left the queue */
            t->next = NULL;
            free_list_of(t);
        }
    }
    pthread_cond_destroy(&o->cwork);
    pthread_cond_destroy(&o->idle);
    pthread_mutex_destroy(&o->lock);
    free(o->devs);
    free(o->ns_per_kib);
    free(o);
    return DSL_OK;
}

void dsl_offload_get_stats(dsl_offload *o, dsl_offload_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!o)
        return;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    *out = o->st;
    uint64_t busy = 0;
    for (int i = 0; i < o->ndev; i++)
        busy += __atomic_load_n(&o->devs[i]->busy_ns, __ATOMIC_RELAXED);
    out->device_busy_ns = busy;
}
