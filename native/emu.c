/* The emulated DSA device: a work queue ring, engine threads executing the real descriptors of <linux/idxd.h>
 * and writing the real completion records, a timing model, and fault injection.
 *
 * - Work queue: a ring of wq_size 64-byte descriptors, copied at submission as the hardware does. A shared queue
 *   refuses a submission when full (ENQCMD's "retry"); a dedicated one silently drops it (MOVDIR64B has no
 *   answer: keeping within the queue size is the submitter's job, and a dropped descriptor never completes).
 * - Engines: `engines` threads named dsa_engine_<dev>_<i>, asleep on a condition variable while the ring is
 *   empty. A batch descriptor is fetched and its descriptors executed by the engine that took it.
 * - Timing model: the device is busy for bytes / (gbps GB/s) per descriptor, one after another on a virtual
 *   clock, plus latency_us per submitted descriptor; a completion record is never written before that time
 *   (engines sleep until it, in slices of SLEEP_SLICE_NS, so that closing the device or revoking the descriptor
 *   wakes them at once). gbps = 0 turns the model off. Modelled busy time is device time.
 * - Revoke: the offload layer takes back descriptors it gave up on (emu_revoke): dequeued, or dropped by the
 *   engine running them, after which the device never touches their buffers or records again.
 * - Faults: fault_rate is the probability that a descriptor (or a batch's descriptor list) meets a page fault:
 *   partial completion (DSA_COMP_PAGE_FAULT_NOBOF with bytes_completed and fault_addr) unless a difference was
 *   found before the fault, as the hardware would; queue_full_rate refuses submissions as if the queue were full;
 *   vanish_after makes the device disappear after that many descriptors (submissions fail, nothing in flight
 *   completes).
 * - Priority: on a machine with fewer cores than busy threads the engines compete with the host's threads.
 *   priority 1 runs them at SCHED_IDLE (nice 19 where that is refused): the host's threads first, the engines
 *   take what is left; priority 2 at nice -10 (CAP_SYS_NICE, else the open fails with DSL_EPERM): the device's
 *   work first, so completions are not late because a sender held the core. benchmarks/bench_emulation.py
 *   measures both against the default.
 * - The write() path: dsl_emu_serve_fd (emu_serve.c) reads 64-byte descriptors from a pipe or socket, as the
 *   kernel's idxd driver receives them from write(), and queues them; like the kernel it refuses batches. */
#include "emu_int.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define SLICE_NS 50000000ull /* engines re-check for shutdown at least this often */
#define SLEEP_SLICE_NS 1000000ull /* the timing model sleeps in slices this long, checking close and revoke */
#define REVOKE_WAIT_NS 1000000000ull /* the longest a revoke waits for an engine to let go of a descriptor */
#define SCAN_BLOCK 256          /* a comparison scans blocks this long before it locates the first difference */
#define FAULT_GRANULE 4096      /* an injected page fault falls on a boundary of this many bytes (a 4 KiB page) */
#define MAX_BUSY_NS 1000000000000000ull /* one descriptor keeps the modelled device busy at most this long (11.6 d) */
#define TIMER_SLACK_NS 1000UL   /* the timing model sleeps in microseconds: a tight timer slack */
#define NAME_WAIT_NS 50000000ull /* dsl_emu_open waits for its engines to be named in slices this long, */
#define NAME_WAIT_SLICES 100     /* this many at most */

/* ---------------------------------------------------------------- execution */

#define PRIO_IDLE 1
#define PRIO_HIGH 2
#define HIGH_NICE (-10)

/* Set the calling engine thread's priority; 0 when done. Idle: SCHED_IDLE, else nice 19 (lowering one's own
 * priority needs no privilege). High: nice -10, which needs CAP_SYS_NICE: -1 when refused. */
static int set_priority(int priority)
{
    if (priority == PRIO_IDLE) {
        struct sched_param sp = {0};
        if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
            return setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
        return 0;
    }
    if (priority == PRIO_HIGH)
        return setpriority(PRIO_PROCESS, (id_t)gettid(), HIGH_NICE);
    return 0;
}

static uint64_t next_rand(uint64_t *s) { return dsl_splitmix64(s); }
static double rand01(uint64_t *s) { return (double)(next_rand(s) >> 11) * 0x1.0p-53; }

/* First offset in [0, n) where src differs from the 8-byte pattern, or n. */
static size_t first_mismatch_pattern(const uint8_t *src, size_t n, uint64_t pattern)
{
    if (pattern == 0) {
        /* the fast path of the zero check: whole blocks with the native kernel, then locate */
        size_t off = 0;
        for (; off + SCAN_BLOCK <= n; off += SCAN_BLOCK)
            if (!dsl_is_zero(src + off, SCAN_BLOCK))
                break;
        for (; off < n; off++)
            if (src[off])
                return off;
        return n;
    }
    for (size_t off = 0; off < n; off++)
        if (src[off] != (uint8_t)(pattern >> (8 * (off % 8))))
            return off;
    return n;
}

static size_t first_mismatch_pair(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t off = 0;
    for (; off + SCAN_BLOCK <= n; off += SCAN_BLOCK)
        if (memcmp(a + off, b + off, SCAN_BLOCK))
            break;
    for (; off < n; off++)
        if (a[off] != b[off])
            return off;
    return n;
}

/* Execute one non-batch descriptor: fill cr (status last, by the caller's publish). Returns the status. */
static uint8_t execute(struct emu *e, const struct dsa_hw_desc *d, struct dsa_completion_record *cr, uint64_t *rng)
{
    uint32_t n = d->xfer_size;
    cr->result = 0;
    cr->bytes_completed = 0;
    cr->fault_addr = 0;
    if (d->opcode != DSA_OPCODE_COMPVAL && d->opcode != DSA_OPCODE_COMPARE && d->opcode != DSA_OPCODE_NOOP) {
        __atomic_add_fetch(&e->bad_descriptors, 1, __ATOMIC_RELAXED);
        return DSA_COMP_BAD_OPCODE;
    }
    if (d->opcode == DSA_OPCODE_NOOP)
        return DSA_COMP_SUCCESS;
    /* a page fault somewhere in the source: at a 4 KiB boundary, as translation works in pages */
    size_t limit = n;
    int fault = e->cfg.fault_rate > 0 && !(d->flags & IDXD_OP_FLAG_BOF) && rand01(rng) < e->cfg.fault_rate;
    if (fault)
        limit = (n > FAULT_GRANULE ? (size_t)(next_rand(rng) % (n / FAULT_GRANULE)) * FAULT_GRANULE : 0);
    const uint8_t *src = (const uint8_t *)(uintptr_t)d->src_addr, *src2 = (const uint8_t *)(uintptr_t)d->src2_addr;
    size_t at = d->opcode == DSA_OPCODE_COMPVAL ? first_mismatch_pattern(src, limit, d->comp_pattern)
                                               : first_mismatch_pair(src, src2, limit);
    if (at < limit) { /* a difference before any fault: the operation completes */
        cr->result = 1;
        cr->bytes_completed = (uint32_t)at;
        return DSA_COMP_SUCCESS;
    }
    if (fault) {
        __atomic_add_fetch(&e->page_faults, 1, __ATOMIC_RELAXED);
        cr->bytes_completed = (uint32_t)limit;
        cr->fault_addr = d->src_addr + limit;
        return DSA_COMP_PAGE_FAULT_NOBOF;
    }
    cr->bytes_completed = n;
    return DSA_COMP_SUCCESS;
}


/* The timing model: reserve bytes on the device clock; returns when the completion may be written. */
static uint64_t model_done(struct emu *e, uint64_t bytes)
{
    if (e->cfg.gbps <= 0)
        return 0;
    double busy_d = (double)bytes / e->cfg.gbps; /* GB/s = bytes/ns */
    uint64_t now = dsl_now_ns(), busy = busy_d < (double)MAX_BUSY_NS ? (uint64_t)busy_d : MAX_BUSY_NS;
    pthread_mutex_lock(&e->lock);
    uint64_t start = e->device_free_ns > now ? e->device_free_ns : now;
    e->device_free_ns = start + busy;
    pthread_mutex_unlock(&e->lock);
    __atomic_add_fetch(&e->base.busy_ns, busy, __ATOMIC_RELAXED);
    return start + busy + (uint64_t)(e->cfg.latency_us * 1000.0);
}

/* Whether the engine must drop what it is running: the device is closing, or the submitter revoked it. */
static int abandoned(struct emu *e, struct engine_slot *slot)
{
    return __atomic_load_n(&e->stop, __ATOMIC_ACQUIRE) || __atomic_load_n(&slot->revoked, __ATOMIC_ACQUIRE);
}

/* Sleep until the modelled completion time t_ns, in slices, so that close and revoke wake the engine within
 * SLEEP_SLICE_NS. Returns 0 if woken that way (the descriptor is dropped), 1 at t_ns. */
static int sleep_until(struct emu *e, struct engine_slot *slot, uint64_t t_ns)
{
    for (;;) {
        if (abandoned(e, slot))
            return 0;
        uint64_t now = dsl_now_ns();
        if (!t_ns || now >= t_ns)
            return 1;
        uint64_t until = t_ns - now > SLEEP_SLICE_NS ? now + SLEEP_SLICE_NS : t_ns;
        struct timespec ts = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL); /* EINTR: looked at again above */
    }
}

static void run_descriptor(struct emu *e, struct engine_slot *slot, const struct dsa_hw_desc *d, uint64_t *rng)
{
    struct dsa_completion_record *cr = (struct dsa_completion_record *)(uintptr_t)d->completion_addr;
    if (d->opcode != DSA_OPCODE_BATCH) {
        struct dsa_completion_record tmp;
        uint8_t st = execute(e, d, &tmp, rng);
        if (!sleep_until(e, slot, model_done(e, d->xfer_size)))
            return; /* closed or revoked: no record */
        __atomic_add_fetch(&e->executed, 1, __ATOMIC_RELAXED);
        if (cr && (d->flags & IDXD_OP_FLAG_RCR)) {
            cr->result = tmp.result;
            cr->bytes_completed = tmp.bytes_completed;
            cr->fault_addr = tmp.fault_addr;
            emu_publish(cr, st);
        }
        return;
    }
    uint32_t count = d->desc_count;
    const struct dsa_hw_desc *list = (const struct dsa_hw_desc *)(uintptr_t)d->desc_list_addr;
    uint8_t bst = DSA_COMP_SUCCESS;
    uint32_t done = 0;
    if (count < 2 || count > (uint32_t)e->base.max_batch) {
        bst = DSA_COMP_DESC_CNT_ERANGE;
    } else if (e->cfg.fault_rate > 0 && rand01(rng) < e->cfg.fault_rate) {
        __atomic_add_fetch(&e->page_faults, 1, __ATOMIC_RELAXED);
        bst = DSA_COMP_BATCH_PAGE_FAULT; /* the descriptor list itself faulted: nothing ran */
        if (cr)
            cr->fault_addr = d->desc_list_addr;
    } else {
        /* execute every descriptor; write their records when the model says the batch is done */
        enum { CHUNK = 64 };
        struct dsa_completion_record tmp[CHUNK];
        uint8_t st[CHUNK];
        uint64_t bytes = 0;
        for (uint32_t i = 0; i < count; i++)
            bytes += list[i].opcode == DSA_OPCODE_BATCH ? 0 : list[i].xfer_size;
        uint64_t t_done = 0;
        for (uint32_t base = 0; base < count; base += CHUNK) {
            if (abandoned(e, slot))
                return; /* closed or revoked: nothing more is read or written */
            uint32_t m = count - base < CHUNK ? count - base : CHUNK;
            for (uint32_t i = 0; i < m; i++) {
                const struct dsa_hw_desc *s = &list[base + i];
                st[i] = s->opcode == DSA_OPCODE_BATCH ? DSA_COMP_BAD_OPCODE : execute(e, s, &tmp[i], rng);
            }
            if (base == 0)
                t_done = model_done(e, bytes);
            if (base + m >= count && !sleep_until(e, slot, t_done))
                return;
            for (uint32_t i = 0; i < m; i++) {
                const struct dsa_hw_desc *s = &list[base + i];
                struct dsa_completion_record *scr = (struct dsa_completion_record *)(uintptr_t)s->completion_addr;
                if (st[i] != DSA_COMP_SUCCESS)
                    bst = DSA_COMP_BATCH_FAIL;
                else
                    done++;
                if (scr && (s->flags & IDXD_OP_FLAG_RCR)) {
                    scr->result = tmp[i].result;
                    scr->bytes_completed = tmp[i].bytes_completed;
                    scr->fault_addr = tmp[i].fault_addr;
                    emu_publish(scr, st[i]);
                }
            }
        }
        __atomic_add_fetch(&e->executed, count, __ATOMIC_RELAXED);
    }
    if (cr) {
        cr->bytes_completed = done; /* descriptors completed successfully */
        emu_publish(cr, bst);
    }
}

static void *engine_main(void *arg)
{
    struct emu *e = arg;
    pthread_mutex_lock(&e->lock);
    int idx = e->next_engine++;
    pthread_mutex_unlock(&e->lock);
    char name[16];
    snprintf(name, sizeof name, "dsa_engine_%d_%d", e->base.id, idx);
    dsl_set_thread_name(name);
    int prio_refused = set_priority(e->cfg.priority) != 0;
    pthread_mutex_lock(&e->lock);
    e->prio_refused += prio_refused;
    e->nengines_started++; /* named: dsl_emu_open may return */
    pthread_cond_broadcast(&e->nonempty);
    pthread_mutex_unlock(&e->lock);
    prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0);
    uint64_t rng = e->cfg.seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(idx + 1));
    for (;;) {
        pthread_mutex_lock(&e->lock);
        while (!e->count && !e->stop) {
            struct timespec ts;
            dsl_deadline_in(&ts, SLICE_NS);
            pthread_cond_timedwait(&e->nonempty, &e->lock, &ts);
        }
        if (e->stop) {
            pthread_mutex_unlock(&e->lock);
            break;
        }
        struct dsa_hw_desc d = e->ring[e->head];
        e->head = (e->head + 1) % e->base.wq_size;
        e->count--;
        int gone = e->gone;
        struct engine_slot *slot = &e->slots[idx];
        slot->cr = (uintptr_t)d.completion_addr;
        slot->busy = !gone;
        __atomic_store_n(&slot->revoked, 0, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&e->lock);
        if (gone)
            continue; /* a vanished device completes nothing */
        run_descriptor(e, slot, &d, &rng);
        pthread_mutex_lock(&e->lock);
        slot->busy = 0;
        pthread_cond_broadcast(&e->idle);
        pthread_mutex_unlock(&e->lock);
    }
    return NULL;
}

/* ---------------------------------------------------------------- submission */

int emu_submit(dsl_device *dev, const struct dsa_hw_desc *desc)
{
    struct emu *e = (struct emu *)dev;
    pthread_mutex_lock(&e->lock);
    int rc = DSL_OK;
    if (e->gone) {
        rc = DSL_EGONE;
    } else if (e->cfg.vanish_after && dev->submitted >= e->cfg.vanish_after) {
        e->gone = 1; /* the device disappears now: what is queued will never complete */
        __atomic_store_n(&dev->gone, 1, __ATOMIC_RELEASE);
        rc = DSL_EGONE;
    } else if (e->cfg.queue_full_rate > 0 && rand01(&e->rng) < e->cfg.queue_full_rate) {
        rc = DSL_EQUEUE_FULL; /* injected: as if other tenants had filled the queue */
    } else if (e->count == dev->wq_size) {
        if (dev->shared)
            rc = DSL_EQUEUE_FULL;
        else
            __atomic_add_fetch(&e->dropped, 1, __ATOMIC_RELAXED); /* MOVDIR64B into a full queue: lost */
    } else {
        e->ring[(e->head + e->count) % dev->wq_size] = *desc;
        e->count++;
        pthread_cond_signal(&e->nonempty);
    }
    if (rc == DSL_OK)
        dev->submitted++;
    else if (rc == DSL_EQUEUE_FULL)
        dev->refused_full++;
    else
        dev->refused_gone++;
    pthread_mutex_unlock(&e->lock);
    return rc;
}

/* Revoke the descriptors whose completion address lies in [lo, hi): those still queued are removed, an engine
 * running one drops it at its next check (its sleep is sliced), and this returns once no engine holds one, so
 * the device will not read their buffers or write their records again. Returns 1 when that holds, 0 if an engine
 * did not let go within REVOKE_WAIT_NS (the caller must then keep the memory). */
static int emu_revoke(dsl_device *dev, uintptr_t lo, uintptr_t hi)
{
    struct emu *e = (struct emu *)dev;
    pthread_mutex_lock(&e->lock);
    int kept = 0, size = e->base.wq_size;
    for (int i = 0; i < e->count; i++) { /* compact the ring, in order, without the revoked descriptors */
        struct dsa_hw_desc *d = &e->ring[(e->head + i) % size];
        uintptr_t cr = (uintptr_t)d->completion_addr;
        if (cr >= lo && cr < hi)
            continue;
        if (kept != i)
            e->ring[(e->head + kept) % size] = *d;
        kept++;
    }
    e->count = kept;
    uint64_t until = dsl_now_ns() + REVOKE_WAIT_NS;
    int ok = 1;
    for (int k = 0; k < e->cfg.engines && ok; k++) {
        struct engine_slot *slot = &e->slots[k];
        while (slot->busy && slot->cr >= lo && slot->cr < hi) {
            __atomic_store_n(&slot->revoked, 1, __ATOMIC_RELEASE);
            if (dsl_now_ns() >= until) {
                ok = 0;
                break;
            }
            struct timespec ts;
            dsl_deadline_in(&ts, 2 * SLEEP_SLICE_NS);
            pthread_cond_timedwait(&e->idle, &e->lock, &ts);
        }
    }
    pthread_mutex_unlock(&e->lock);
    return ok;
}

static void emu_close(dsl_device *dev)
{
    struct emu *e = (struct emu *)dev;
    pthread_mutex_lock(&e->lock);
    e->stop = 1;
    pthread_cond_broadcast(&e->nonempty);
    pthread_mutex_unlock(&e->lock);
    if (e->reader_started) {
        pthread_join(e->reader, NULL);
    }
    for (int i = 0; i < e->cfg.engines; i++)
        if (e->engines[i])
            pthread_join(e->engines[i], NULL);
    pthread_cond_destroy(&e->nonempty);
    pthread_cond_destroy(&e->idle);
    pthread_mutex_destroy(&e->lock);
    free(e->engines);
    free(e->slots);
    free(e->ring);
    free(e);
}

static void emu_info(dsl_device *dev, dsl_device_info *out)
{
    struct emu *e = (struct emu *)dev;
    out->executed = __atomic_load_n(&e->executed, __ATOMIC_RELAXED);
    out->page_faults = __atomic_load_n(&e->page_faults, __ATOMIC_RELAXED);
    out->bad_descriptors = __atomic_load_n(&e->bad_descriptors, __ATOMIC_RELAXED);
    out->dropped = __atomic_load_n(&e->dropped, __ATOMIC_RELAXED);
}

static const struct dsl_device_ops emu_ops = {emu_submit, emu_close, emu_revoke, emu_info};

int dsl_emu_open(const dsl_emu_config *cfg, dsl_device **out)
{
    *out = NULL;
    /* doubles compared so that NaN fails every check */
    if (cfg->engines < 1 || cfg->engines > DSL_EMU_MAX_ENGINES || cfg->wq_size < 1 ||
        cfg->wq_size > DSL_MAX_WQ_SIZE ||
        !(cfg->gbps >= 0 && cfg->gbps <= 1e6) || !(cfg->latency_us >= 0 && cfg->latency_us <= 1e9) ||
        !(cfg->fault_rate >= 0 && cfg->fault_rate <= 1) || !(cfg->queue_full_rate >= 0 && cfg->queue_full_rate <= 1) ||
        cfg->max_batch < 2 || cfg->max_batch > DSL_EMU_MAX_BATCH || cfg->priority < 0 || cfg->priority > PRIO_HIGH)
        return DSL_EINVAL;
    struct emu *e = calloc(1, sizeof *e);
    if (!e)
        return DSL_ENOMEM;
    e->cfg = *cfg;
    e->base.ops = &emu_ops;
    e->base.backend = DSL_BACKEND_EMU;
    e->base.submit_path = DSL_SUBMIT_RING;
    e->base.id = cfg->device_id;
    e->base.shared = cfg->shared;
    e->base.wq_size = cfg->wq_size;
    e->base.max_batch = cfg->max_batch;
    snprintf(e->base.name, sizeof e->base.name, "emu%d", cfg->device_id);
    e->rng = cfg->seed ^ 0xD1B54A32D192ED03ull;
    e->serve_fd = -1;
    e->ring = aligned_alloc(64, (size_t)cfg->wq_size * sizeof(struct dsa_hw_desc));
    e->engines = calloc((size_t)cfg->engines, sizeof(pthread_t));
    e->slots = calloc((size_t)cfg->engines, sizeof *e->slots);
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->nonempty, NULL);
    pthread_cond_init(&e->idle, NULL);
    if (!e->ring || !e->engines || !e->slots) {
        free(e->ring);
        free(e->engines);
        free(e->slots);
        free(e);
        return DSL_ENOMEM;
    }
    for (int i = 0; i < cfg->engines; i++)
        if (pthread_create(&e->engines[i], NULL, engine_main, e) != 0) {
            e->engines[i] = 0;
            emu_close(&e->base);
            return DSL_ENOMEM;
        }
    /* return once every engine has its name, so per-thread accounting sees them from the start */
    pthread_mutex_lock(&e->lock);
    for (int waited = 0; e->nengines_started < cfg->engines && waited < NAME_WAIT_SLICES; waited++) {
        struct timespec ts;
        dsl_deadline_in(&ts, NAME_WAIT_NS);
        pthread_cond_timedwait(&e->nonempty, &e->lock, &ts);
    }
    int refused = e->prio_refused;
    pthread_mutex_unlock(&e->lock);
    if (refused) { /* a high priority the system would not give: say so rather than run unlike the spec */
        emu_close(&e->base);
        return DSL_EPERM;
    }
    *out = &e->base;
    return DSL_OK;
}

