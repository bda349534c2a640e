/* The offload layer's waiting: for one task by polling its records (POLL) or with UMONITOR/UMWAIT (UMWAIT), and
 * the dsa_completion thread that watches every outstanding task (THREAD). Every wait ends at the task's deadline,
 * when its device is gone, or when the offloader closes; the pace each device showed (learn) decides how long a
 * waiter sleeps before it looks, so that waiting costs little host CPU. */
#include "offload_int.h"

#include <errno.h>
#include <immintrin.h>
#include <sys/prctl.h>
#include <time.h>

/* a POLL/UMWAIT waiter: sleeps through the expected time when it is more than SLEEP_AHEAD_NS away (waking
 * WAKE_EARLY_NS before it), spins, then naps NAP_FIRST_NS, doubling up to MAX_NAP_NS */
#define SLEEP_AHEAD_NS 20000ull
#define WAKE_EARLY_NS 10000ull
#define NAP_FIRST_NS 2000ull
#define UMWAIT_TSC_TICKS 20000ull /* one UMWAIT lasts at most this many TSC ticks */
#define PAUSES_PER_SPIN 32        /* PAUSE instructions between two looks at a record */
/* learning a device's pace: an EWMA with weight 1/LEARN_WEIGHT, one sample at most LEARN_MAX_JUMP times the old */
#define LEARN_WEIGHT 8
#define LEARN_MAX_JUMP 4
/* the dsa_completion thread: idle wait, then naps from CT_NAP_FIRST_NS doubling up to CT_NAP_MAX_NS */
#define CT_IDLE_NS 50000000ull
#define CT_NAP_FIRST_NS 1000ull
#define CT_NAP_MAX_NS 100000ull
#define CT_TIMER_SLACK_NS 1000UL /* its naps are microseconds: a tight timer slack */
#define CT_EXPECTS 64            /* expected completion times it ranks per scan */
#define STALL_GUARD_NS 1000000000ull /* a THREAD-mode submitter's guard against a missed wake-up */

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

int off_task_complete(struct task *t)
{
    volatile uint8_t *st = task_status(t);
    if (!st)
        return 1; /* nothing was accepted: nothing to wait for */
    if (!__atomic_load_n(st, __ATOMIC_ACQUIRE))
        return 0;
    return t->mode_batch || singles_done(t);
}

void off_nap(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

/* Learn a device's pace: EWMA of (completion - submission) per KiB, queueing included. */
static void learn(dsl_offload *o, struct task *t, size_t ps)
{
    uint64_t kib = (uint64_t)t->accepted * ps / KIB;
    if (!kib)
        return;
    uint64_t per = (dsl_now_ns() - t->submit_ns) / kib, old = __atomic_load_n(&o->ns_per_kib[t->dev], __ATOMIC_RELAXED);
    if (old && per > LEARN_MAX_JUMP * old)
        per = LEARN_MAX_JUMP * old; /* one preempted or faulted task must not teach everyone to sleep long */
    uint64_t avg = old ? (old * (LEARN_WEIGHT - 1) + per) / LEARN_WEIGHT : per;
    __atomic_store_n(&o->ns_per_kib[t->dev], avg, __ATOMIC_RELAXED);
}

/* Wait for one task in POLL or UMWAIT mode: sleep until shortly before it is expected, spin briefly, then nap in
 * growing steps; give up at the deadline or when the device is gone. */
static void wait_task(dsl_offload *o, struct task *t, size_t ps)
{
    if (off_task_complete(t))
        return;
    dsl_device *d = o->devs[t->dev];
    uint64_t now = dsl_now_ns();
    if (t->expect_ns > now + SLEEP_AHEAD_NS) { /* sleep through most of the expected time, never more than MAX_NAP */
        uint64_t ns = t->expect_ns - now - WAKE_EARLY_NS;
        off_nap(ns < MAX_NAP_NS ? ns : MAX_NAP_NS);
    }
    uint64_t step = NAP_FIRST_NS;
    for (;;) {
        uint64_t spin_until = dsl_now_ns() + o->cfg.spin_ns;
        if (spin_until > t->deadline_ns)
            spin_until = t->deadline_ns; /* the spin ends at the deadline too */
        do {
            if (off_task_complete(t))
                goto done;
            if (o->cfg.completion == DSL_COMPLETION_UMWAIT) {
                volatile uint8_t *st = task_status(t);
                if (st)
                    dsl_umwait_u8(st, dsl_rdtsc() + UMWAIT_TSC_TICKS);
            } else {
                for (int i = 0; i < PAUSES_PER_SPIN; i++)
                    _mm_pause();
            }
        } while (dsl_now_ns() < spin_until);
        now = dsl_now_ns();
        if (now >= t->deadline_ns || device_gone(d) || closing(o)) {
            if (!off_task_complete(t)) {
                t->timed_out = 1;
                t->closed = now < t->deadline_ns && !device_gone(d);
                return;
            }
            goto done;
        }
        uint64_t left = t->deadline_ns - now;
        off_nap(step < left ? step : left);
        step = step < MAX_NAP_NS ? step * 2 : step;
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
void *off_completion_main(void *arg)
{
    dsl_offload *o = arg;
    dsl_set_thread_name("dsa_completion");
    prctl(PR_SET_TIMERSLACK, CT_TIMER_SLACK_NS, 0, 0, 0);
    uint64_t step = CT_NAP_FIRST_NS;
    pthread_mutex_lock(&o->lock);
    while (!o->stop) {
        if (!o->outstanding) {
            struct timespec ts;
            dsl_deadline_in(&ts, CT_IDLE_NS);
            pthread_cond_timedwait(&o->cwork, &o->lock, &ts);
            step = CT_NAP_FIRST_NS;
            continue;
        }
        int progressed = 0, stopping = closing(o);
        uint64_t now = dsl_now_ns(), earliest = UINT64_MAX, need = UINT64_MAX, soonest_deadline = UINT64_MAX;
        uint64_t expects[CT_EXPECTS];
        int nexp = 0;
        struct task **pp = &o->outstanding;
        while (*pp) {
            struct task *t = *pp;
            int complete = off_task_complete(t);
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
                if (nexp < CT_EXPECTS)
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
            step = CT_NAP_FIRST_NS;
        } else {
            now = dsl_now_ns();
            if (earliest != UINT64_MAX && earliest > now + o->cfg.spin_ns) {
                /* nothing is due yet: sleep until the earliest expected completion, no spinning */
                uint64_t wait = earliest - now;
                off_nap(wait < MAX_NAP_NS ? wait : MAX_NAP_NS);
            } else { /* something is due (or late): spin briefly (never past a deadline, nor once closing), then
                      * nap in growing steps */
                uint64_t until = now + o->cfg.spin_ns;
                if (until > soonest_deadline)
                    until = soonest_deadline;
                while (dsl_now_ns() < until && !closing(o))
                    for (int i = 0; i < PAUSES_PER_SPIN; i++)
                        _mm_pause();
                off_nap(step);
                step = step < CT_NAP_MAX_NS ? step * 2 : step;
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
void off_wait_one(dsl_offload *o, struct task *t, struct call *c, size_t ps, uint64_t wake_at)
{
    if (o->cfg.completion != DSL_COMPLETION_THREAD || !t->accepted) {
        wait_task(o, t, ps);
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->wake_at = wake_at;
    while (!t->done) {
        struct timespec ts;
        dsl_deadline_in(&ts, STALL_GUARD_NS); /* the completion thread times tasks out: only a guard */
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
