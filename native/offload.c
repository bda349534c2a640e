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
#include "offload_int.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

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
        off_give_back_credits(o, t);
    return released;
}

/* ---------------------------------------------------------------- the request */

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
    if (!o || (!av && npages) || (!out && npages) || ps < DSL_MIN_PAGE_SIZE || (ps & (ps - 1)) || ps > UINT32_MAX ||
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
            struct task *t = off_task_get(o);
            if (!t) { /* out of memory for tasks: the CPU does the rest */
                cpu_pages(op, a, b, next, ndev, ps, out);
                count_cpu(o, R_ERROR, ndev - next);
                next = ndev;
                break;
            }
            int n = (int)(ndev - next < (size_t)bs ? ndev - next : (size_t)bs);
            if (hint >= 0)
                t->dev = hint % o->ndev;
            else /* round-robin */
                t->dev = (int)(__atomic_fetch_add(&o->rr, 1, __ATOMIC_RELAXED) % (uint64_t)o->ndev);
            t->call = &c;
            off_task_submit(o, t, op, a, b, next, n, ps);
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
        off_wait_one(o, t, &c, ps, consumed + (k ? k : 1));
        if (o->cfg.completion == DSL_COMPLETION_THREAD && t->accepted)
            consumed++;
        off_task_put(o, t, !task_results(o, t, op, a, b, ps, out));
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
    if (!devs || ndev < 1 || cfg->batch_size < 1 || cfg->batch_size > DSL_MAX_BATCH_SIZE || cfg->max_retries < 0 ||
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
        if (pthread_create(&o->cthread, NULL, off_completion_main, o) != 0) {
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
        dsl_deadline_in(&ts, CLOSE_SLICE_NS); /* re-read the monotonic clock this often */
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
    off_free_list(o->free_list);
    /* the graveyard: tasks that timed out. Free one only once its device has written it or is gone; give a slow
     * device a second; a task still pending after that is leaked, never freed under a device's feet. */
    uint64_t until = dsl_now_ns() + GRAVEYARD_WAIT_NS;
    for (struct task *t = o->graveyard, *n; t; t = n) {
        n = t->next;
        while (!off_task_complete(t) && !device_gone(o->devs[t->dev]) && dsl_now_ns() < until)
            off_nap(GRAVEYARD_NAP_NS);
        if (off_task_complete(t) || device_gone(o->devs[t->dev])) {
            if (off_task_complete(t))
                off_give_back_credits(o, t); /* its descriptors left the queue */
            t->next = NULL;
            off_free_list(t);
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
