/* The offload layer's tasks: their memory (a free list, and the graveyard for tasks a device may still write to)
 * and their submission: a BATCH descriptor or single descriptors, with bounded retry of a full queue and the
 * dedicated-queue credits that keep a dedicated queue from being overfilled. */
#include "offload_int.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MAX_SHIFT 10 /* a retry of a full queue pauses at most 2^this PAUSE instructions */

/* ---------------------------------------------------------------- tasks */

/* The dedicated-queue credits a task holds: one per accepted single descriptor, one for an accepted batch. */
void off_give_back_credits(dsl_offload *o, struct task *t)
{
    uint64_t n = (uint64_t)(t->mode_batch ? (t->accepted ? 1 : 0) : t->accepted);
    if (n)
        __atomic_sub_fetch(&o->devs[t->dev]->inflight, n, __ATOMIC_RELEASE);
}

/* Graveyard tasks the device has since completed hold no descriptor in its queue: credits back, memory reused.
 * Called with o->lock held. */
static void reap_graveyard(dsl_offload *o)
{
    for (struct task **pp = &o->graveyard; *pp;) {
        struct task *t = *pp;
        if (off_task_complete(t)) {
            *pp = t->next;
            off_give_back_credits(o, t);
            t->next = o->free_list;
            o->free_list = t;
        } else {
            pp = &t->next;
        }
    }
}

struct task *off_task_get(dsl_offload *o)
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

void off_task_put(dsl_offload *o, struct task *t, int abandoned)
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

void off_free_list(struct task *t)
{
    while (t) {
        struct task *n = t->next;
        free(t->descs);
        free(t->crs);
        free(t);
        t = n;
    }
}

/* ---------------------------------------------------------------- submission */

static void backoff(int attempt)
{
    int spins = 1 << (attempt < BACKOFF_MAX_SHIFT ? attempt : BACKOFF_MAX_SHIFT);
    for (int i = 0; i < spins; i++)
        _mm_pause();
}

/* Reserve one of a dedicated queue's credits: 1 if one was free (inflight was below wq_size and is now one more). */
static int take_credit(dsl_device *d)
{
    uint64_t cur = __atomic_load_n(&d->inflight, __ATOMIC_ACQUIRE);
    while (cur < (uint64_t)d->wq_size)
        if (__atomic_compare_exchange_n(&d->inflight, &cur, cur + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 1;
    return 0;
}

/* Submit one descriptor with bounded retry: DSL_OK, DSL_EQUEUE_FULL (gave up: retries spent, the task's deadline
 * passed or the offloader is closing), DSL_EGONE, or an error. */
static int submit_one(dsl_offload *o, dsl_device *d, const struct dsa_hw_desc *desc, uint64_t deadline_ns)
{
    for (int attempt = 0;; attempt++) {
        int rc;
        if (d->shared) {
            rc = d->ops->submit(d, desc);
            if (rc == DSL_OK)
                __atomic_add_fetch(&d->inflight, 1, __ATOMIC_RELEASE);
        } else if (take_credit(d)) {
            /* a dedicated queue: the credit is reserved before submitting, so two submitters cannot both take
             * the last one and overfill the queue (MOVDIR64B would silently drop the second descriptor) */
            rc = d->ops->submit(d, desc);
            if (rc != DSL_OK)
                __atomic_sub_fetch(&d->inflight, 1, __ATOMIC_RELEASE);
        } else {
            rc = DSL_EQUEUE_FULL; /* no credit left: do not overfill */
        }
        if (rc == DSL_OK)
            return DSL_OK;
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
void off_task_submit(dsl_offload *o, struct task *t, int op, const uint8_t *a, const uint8_t *b, size_t first,
                        int n, size_t ps)
{
    dsl_device *d = o->devs[t->dev];
    t->n = n;
    t->first = first;
    t->done = t->timed_out = t->closed = 0;
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
    t->expect_ns = now + __atomic_load_n(&o->ns_per_kib[t->dev], __ATOMIC_RELAXED) * ((uint64_t)n * ps / KIB);
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
