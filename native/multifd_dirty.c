/* The guest's dirtying thread (guest_dirty) and the dirty bitmap of the multifd engine. */
#include "multifd_int.h"



static int dirtier_stopping(dsl_mig *m) { return __atomic_load_n(&m->dirtier_stop, __ATOMIC_ACQUIRE); }

static void *dirtier_main(void *arg)
{
    dsl_mig *m = arg;
    dsl_set_thread_name("guest_dirty");
    const dsl_mig_config *c = &m->cfg;
    uint64_t st = m->dirty_seed, t0 = dsl_now_ns(), dirtied = 0;
    double pages_per_ns = (double)m->dirty_rate / (double)c->page_size * 1e-9;
    while (!dirtier_stopping(m)) {
        double due_f = pages_per_ns * (double)(dsl_now_ns() - t0);
        uint64_t due = due_f < 0x1p63 ? (uint64_t)due_f : (1ull << 63); /* a huge rate must not overflow */
        /* At a rate the thread cannot keep up with, `due` runs ahead for ever: the stop flag is checked after
         * every page, so dsl_mig_dirtier_stop returns after one more page write, whatever the rate. */
        while (dirtied < due && !dirtier_stopping(m)) {
            uint64_t r = dsl_splitmix64(&st);
            uint64_t page = r % c->npages;
            uint64_t word = (dsl_splitmix64(&st) % (c->page_size / 8)) * 8;
            uint64_t value = dsl_splitmix64(&st) | 1; /* a guest store */
            __atomic_store_n((uint64_t *)(c->src + page * c->page_size + word), value, __ATOMIC_RELAXED);
            /* mark after the write (release): a sync that sees the bit also sees the new content */
            __atomic_fetch_or(&m->dirty[page / 64], 1ull << (page % 64), __ATOMIC_RELEASE);
            __atomic_store_n(&m->dirtied, ++dirtied, __ATOMIC_RELAXED);
        }
        /* sleep 1 ms, or less: dsl_mig_dirtier_stop signals dirtier_wake */
        pthread_mutex_lock(&m->dirtier_lock);
        if (!dirtier_stopping(m)) {
            struct timespec ts;
            dsl_deadline_in(&ts, DIRTIER_NAP_NS);
            pthread_cond_timedwait(&m->dirtier_wake, &m->dirtier_lock, &ts);
        }
        pthread_mutex_unlock(&m->dirtier_lock);
    }
    m->dirtier_cpu_ns = dsl_thread_cpu_ns(); /* read by the joiner: the thread is gone by then */
    return NULL;
}

int dsl_mig_dirtier_start(dsl_mig *m, uint64_t rate, uint64_t seed)
{
    if (m->dirtier_running || !rate || !m->cfg.npages)
        return DSL_EINVAL;
    m->dirty_rate = rate;
    m->dirty_seed = seed;
    m->dirtier_stop = 0;
    if (pthread_create(&m->dirtier, NULL, dirtier_main, m) != 0)
        return DSL_ENOMEM;
    m->dirtier_running = 1;
    return DSL_OK;
}

/* Ask the dirtier to stop and wake it (it then ends after at most one more page write). */
void mig_dirtier_signal_stop(dsl_mig *m)
{
    pthread_mutex_lock(&m->dirtier_lock);
    __atomic_store_n(&m->dirtier_stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&m->dirtier_wake);
    pthread_mutex_unlock(&m->dirtier_lock);
}

uint64_t dsl_mig_dirtier_stop(dsl_mig *m)
{
    if (m->dirtier_running) {
        mig_dirtier_signal_stop(m);
        if (mig_join_until(m->dirtier, mig_deadline_after_ms(m->cfg.io_timeout_ms)) == 0)
            m->dirtier_running = 0;
        else /* cannot happen short of a stopped process; dsl_mig_stop names it and the engine is not freed */
            mig_fail(m, "guest_dirty did not stop within %llu ms", (unsigned long long)m->cfg.io_timeout_ms);
    }
    return __atomic_load_n(&m->dirtied, __ATOMIC_RELAXED);
}

uint64_t dsl_mig_dirtier_cpu_ns(dsl_mig *m) { return m->dirtier_running ? 0 : m->dirtier_cpu_ns; }

uint64_t dsl_mig_dirty_sync(dsl_mig *m, uint64_t *out)
{
    uint64_t count = 0;
    for (size_t w = 0; w < m->words; w++) {
        out[w] = __atomic_exchange_n(&m->dirty[w], 0, __ATOMIC_ACQ_REL);
        count += (uint64_t)__builtin_popcountll(out[w]);
    }
    return count;
}
