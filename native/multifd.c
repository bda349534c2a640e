/* The multifd migration engine's life cycle and rounds (dsl_mig_*); the design is described in multifd_int.h. */
#include "multifd_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *const PHASE_NAMES[] = {"idle", "zero-page detection", "the bandwidth limit", "sendmsg",
                                          "waiting for a sync acknowledgement"};

void mig_fail(dsl_mig *m, const char *fmt, ...)
{
    pthread_mutex_lock(&m->lock);
    if (!m->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->err, sizeof m->err, fmt, ap);
        va_end(ap);
        m->failed = 1;
    }
    pthread_cond_broadcast(&m->ready);
    for (int i = 0; i < m->cfg.channels; i++)
        pthread_cond_broadcast(&m->ch[i].cond);
    pthread_mutex_unlock(&m->lock);
}

int mig_name_thread(const char *role, int channel)
{
    char name[16];
    snprintf(name, sizeof name, "%s_%d", role, channel);
    dsl_set_thread_name(name);
    return (int)syscall(SYS_gettid);
}

/* A channel thread ends: its CPU time and its done flag are written together under the lock (dsl_mig_finish
 * waits for the flags, so the statistics read after it see the final CPU time), then it waits for destroy. */
void mig_park(dsl_mig *m, uint64_t *cpu_slot, int *done_flag)
{
    uint64_t cpu = dsl_thread_cpu_ns();
    pthread_mutex_lock(&m->lock);
    *cpu_slot = cpu;
    *done_flag = 1;
    pthread_cond_broadcast(&m->ready);
    pthread_mutex_unlock(&m->lock);
    mig_wait_destroy(m);
}

void mig_wait_destroy(dsl_mig *m)
{
    pthread_mutex_lock(&m->lock);
    while (!m->destroy) {
        struct timespec ts;
        dsl_deadline_in(&ts, SLICE_NS);
        pthread_cond_timedwait(&m->park, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
}

/* Join `t`, waiting until the CLOCK_MONOTONIC time deadline_ns at most; 0 once joined, ETIMEDOUT if the thread
 * is still running then. Slices of at most 50 ms, so a jump of the realtime clock cannot stretch the wait. */
int mig_join_until(pthread_t t, uint64_t deadline_ns)
{
    for (;;) {
        if (pthread_tryjoin_np(t, NULL) == 0)
            return 0;
        uint64_t now = dsl_now_ns();
        if (now >= deadline_ns)
            return ETIMEDOUT;
        uint64_t left = deadline_ns - now;
        struct timespec ts;
        dsl_deadline_in(&ts, left < JOIN_SLICE_NS ? left : JOIN_SLICE_NS);
        if (pthread_timedjoin_np(t, NULL, &ts) == 0)
            return 0;
    }
}

uint64_t mig_deadline_after_ms(uint64_t ms)
{
    uint64_t now = dsl_now_ns();
    return ms >= (UINT64_MAX - now) / NS_PER_MS ? UINT64_MAX : now + ms * NS_PER_MS;
}

/* ---------------------------------------------------------------- life cycle and rounds */

int dsl_mig_create(const dsl_mig_config *cfg, dsl_mig **out)
{
    *out = NULL;
    if (!cfg->src || !cfg->dst || cfg->channels < 1 || cfg->packet_pages < 1 || cfg->page_size < DSL_MIN_PAGE_SIZE ||
        (cfg->page_size & (cfg->page_size - 1)) || (!cfg->zero_fn && !cfg->detect_fn) || !cfg->send_fds ||
        !cfg->recv_fds || cfg->io_timeout_ms < 1 || cfg->io_timeout_ms > MAX_IO_TIMEOUT_MS ||
        cfg->packet_pages > SIZE_MAX / (2 * sizeof(struct iovec)) - 2 || cfg->fail_mode < DSL_FAULT_NONE ||
        cfg->fail_mode > DSL_FAULT_RECEIVER_STALL)
        return DSL_EINVAL;
    dsl_mig *m = calloc(1, sizeof *m);
    if (!m)
        return DSL_ENOMEM;
    m->cfg = *cfg;
    m->words = (cfg->npages + 63) / 64;
    m->dirty = calloc(m->words ? m->words : 1, sizeof(uint64_t));
    m->received = calloc(cfg->npages ? cfg->npages : 1, 1);
    m->ch = calloc((size_t)cfg->channels, sizeof *m->ch);
    if (!m->dirty || !m->ch || !m->received) {
        free(m->received);
        free(m->dirty);
        free(m->ch);
        free(m);
        return DSL_ENOMEM;
    }
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->ready, NULL);
    pthread_cond_init(&m->park, NULL);
    pthread_mutex_init(&m->dirtier_lock, NULL);
    pthread_cond_init(&m->dirtier_wake, NULL);
    m->start_ns = dsl_now_ns();
    int rc = DSL_OK;
    struct timeval slice = {0, SLICE_MS * 1000};
    for (int i = 0; i < cfg->channels; i++)
        for (int k = 0; k < 2; k++) {
            int fd = k ? cfg->recv_fds[i] : cfg->send_fds[i];
            if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &slice, sizeof slice) ||
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof slice))
                rc = DSL_EINVAL; /* not a socket */
        }
    for (int i = 0; i < cfg->channels && rc == DSL_OK; i++) {
        struct chan *ch = &m->ch[i];
        ch->m = m;
        ch->id = i;
        ch->fd_send = cfg->send_fds[i];
        ch->fd_recv = cfg->recv_fds[i];
        pthread_cond_init(&ch->cond, NULL);
        size_t pp = cfg->packet_pages;
        for (int q = 0; q < QDEPTH; q++)
            if (!(ch->job_idx[q] = malloc(pp * sizeof(uint64_t))))
                rc = DSL_ENOMEM;
        ch->zero = malloc(pp);
        ch->offsets = malloc(pp * sizeof(uint64_t));
        ch->iov = malloc((pp + 2) * sizeof(struct iovec));
        ch->roffsets = malloc(pp * sizeof(uint64_t));
        ch->riov = malloc((pp + 1) * sizeof(struct iovec));
        if (rc != DSL_OK || !ch->zero || !ch->offsets || !ch->iov || !ch->roffsets || !ch->riov) {
            rc = DSL_ENOMEM;
            break;
        }
        if (pthread_create(&ch->recv_thread, NULL, mig_receiver_main, ch) != 0) {
            rc = DSL_ENOMEM;
            break;
        }
        ch->recv_started = 1;
        if (pthread_create(&ch->send_thread, NULL, mig_sender_main, ch) != 0) {
            rc = DSL_ENOMEM;
            break;
        }
        ch->send_started = 1;
    }
    *out = m;
    if (rc != DSL_OK) {
        dsl_mig_destroy(m);
        *out = NULL;
    }
    return rc;
}

/* Wait (m->lock held) for `cond_ok` with the failure and timeout rules; returns DSL_OK or an error status. */
#define WAIT_UNTIL(m, cond_ok)                                                                                 \
    ({                                                                                                         \
        int _rc = DSL_OK;                                                                                      \
        uint64_t _waited = 0, _seen = (m)->jobs_done;                                                          \
        while (!(cond_ok)) {                                                                                   \
            if ((m)->failed) {                                                                                 \
                _rc = DSL_EIO;                                                                                 \
                break;                                                                                         \
            }                                                                                                  \
            if (_waited >= 2 * (m)->cfg.io_timeout_ms) { /* channels time out first and name themselves */    \
                _rc = DSL_ETIMEDOUT;                                                                           \
                break;                                                                                         \
            }                                                                                                  \
            struct timespec _ts;                                                                               \
            dsl_deadline_in(&_ts, SLICE_NS);                                                                   \
            if (pthread_cond_timedwait(&(m)->ready, &(m)->lock, &_ts) == ETIMEDOUT)                            \
                _waited += SLICE_MS;                                                                           \
            if ((m)->jobs_done != _seen) { /* a sender finished a job: progress, the clock starts again */     \
                _seen = (m)->jobs_done;                                                                        \
                _waited = 0;                                                                                   \
            }                                                                                                  \
        }                                                                                                      \
        _rc;                                                                                                   \
    })

/* A channel with room in its queue: the next one in round-robin order, preferring an empty queue. */
static int any_room(dsl_mig *m, int *which)
{
    for (int want = 0; want < QDEPTH; want++)
        for (int k = 0; k < m->cfg.channels; k++) {
            int i = (m->next_chan + k) % m->cfg.channels;
            if (m->ch[i].count <= want) {
                *which = i;
                return 1;
            }
        }
    return 0;
}

static int all_idle(dsl_mig *m)
{
    for (int i = 0; i < m->cfg.channels; i++)
        if (m->ch[i].count)
            return 0;
    return 1;
}

static void enqueue(struct chan *ch, int job, const uint64_t *idx, size_t n)
{
    int slot = (ch->head + ch->count) % QDEPTH;
    if (n)
        memcpy(ch->job_idx[slot], idx, n * sizeof *idx);
    ch->job_n[slot] = n;
    ch->jobs[slot] = job;
    ch->count++;
    pthread_cond_signal(&ch->cond);
}

static int timeout_error(dsl_mig *m, int rc, const char *waiting_for)
{
    if (rc == DSL_ETIMEDOUT && !m->failed) {
        int stuck = 0;
        for (int i = 0; i < m->cfg.channels; i++)
            if (m->ch[i].count)
                stuck = i;
        snprintf(m->err, sizeof m->err, "channel %d: live_migration waited %llu ms and no channel %s", stuck,
                 (unsigned long long)(2 * m->cfg.io_timeout_ms), waiting_for);
        m->failed = 1;
        pthread_cond_broadcast(&m->ready);
        for (int i = 0; i < m->cfg.channels; i++)
            pthread_cond_broadcast(&m->ch[i].cond);
    }
    return rc == DSL_ETIMEDOUT ? DSL_EIO : rc;
}

/* Hand a job to an idle channel (the next one in round-robin order). */
static int dispatch(dsl_mig *m, int job, const uint64_t *idx, size_t n)
{
    pthread_mutex_lock(&m->lock);
    int which = 0;
    int rc = WAIT_UNTIL(m, any_room(m, &which));
    if (rc == DSL_OK) {
        enqueue(&m->ch[which], job, idx, n);
        m->next_chan = (which + 1) % m->cfg.channels;
    } else {
        rc = timeout_error(m, rc, "had room for a packet");
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* Give the same job to every channel and wait until all are done. */
static int broadcast_job(dsl_mig *m, int job)
{
    pthread_mutex_lock(&m->lock);
    int rc = WAIT_UNTIL(m, all_idle(m));
    if (rc == DSL_OK) {
        for (int i = 0; i < m->cfg.channels; i++)
            enqueue(&m->ch[i], job, NULL, 0);
        rc = WAIT_UNTIL(m, all_idle(m));
    }
    rc = timeout_error(m, rc, job == JOB_SYNC ? "finished its sync" : "finished");
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int dsl_mig_send_pages(dsl_mig *m, const uint64_t *bitmap, uint64_t *pages_queued)
{
    const dsl_mig_config *c = &m->cfg;
    uint64_t *batch = malloc(c->packet_pages * sizeof(uint64_t));
    if (!batch)
        return DSL_ENOMEM;
    size_t n = 0;
    uint64_t queued = 0;
    int rc = DSL_OK;
    for (uint64_t p = 0; p < c->npages && rc == DSL_OK; p++) {
        if (bitmap) {
            uint64_t w = bitmap[p / 64];
            if (!w) { /* skip empty words quickly */
                p |= 63;
                continue;
            }
            if (!(w >> (p % 64) & 1))
                continue;
        }
        batch[n++] = p;
        if (n == c->packet_pages) {
            rc = dispatch(m, JOB_PAGES, batch, n);
            queued += n;
            n = 0;
        }
    }
    if (rc == DSL_OK && n) {
        rc = dispatch(m, JOB_PAGES, batch, n);
        queued += n;
    }
    free(batch);
    if (rc == DSL_OK)
        rc = broadcast_job(m, JOB_SYNC);
    if (pages_queued)
        *pages_queued = queued;
    return rc;
}

int dsl_mig_finish(dsl_mig *m)
{
    int rc = broadcast_job(m, JOB_END);
    if (rc != DSL_OK)
        return rc;
    pthread_mutex_lock(&m->lock);
    int done;
    uint64_t waited = 0;
    for (;;) {
        done = 1;
        for (int i = 0; i < m->cfg.channels; i++)
            done &= m->ch[i].receiver_done & m->ch[i].sender_done;
        if (done || m->failed || waited >= m->cfg.io_timeout_ms)
            break;
        struct timespec ts;
        dsl_deadline_in(&ts, SLICE_NS);
        if (pthread_cond_timedwait(&m->ready, &m->lock, &ts) == ETIMEDOUT)
            waited += SLICE_MS;
    }
    rc = m->failed ? DSL_EIO : done ? DSL_OK : timeout_error(m, DSL_ETIMEDOUT, "sender and receiver finished");
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void dsl_mig_abort(dsl_mig *m, const char *why)
{
    char busy[256] = "";
    size_t len = 0;
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < m->cfg.channels && len + 1 < sizeof busy; i++) {
        struct chan *ch = &m->ch[i];
        int ph = __atomic_load_n(&ch->phase, __ATOMIC_RELAXED);
        if (!ch->count && ph == PH_IDLE)
            continue;
        int w = snprintf(busy + len, sizeof busy - len, "%smultifdsend_%d in %s with %d job(s) queued",
                         len ? ", " : "", i, PHASE_NAMES[ph], ch->count);
        len = w < 0 ? sizeof busy : len + (size_t)w;
    }
    pthread_mutex_unlock(&m->lock);
    mig_fail(m, "%s%s%s", why, len ? "; busy: " : "", busy);
}

int dsl_mig_stop(dsl_mig *m, uint64_t timeout_ms)
{
    uint64_t deadline = mig_deadline_after_ms(timeout_ms);
    mig_dirtier_signal_stop(m);
    pthread_mutex_lock(&m->lock);
    m->destroy = 1;
    pthread_cond_broadcast(&m->park);
    pthread_cond_broadcast(&m->ready);
    for (int i = 0; i < m->cfg.channels; i++)
        pthread_cond_broadcast(&m->ch[i].cond);
    pthread_mutex_unlock(&m->lock);
    m->stuck[0] = 0;
    size_t len = 0;
#define JOIN(started, joined, thread, ...)                                                                     \
    do {                                                                                                       \
        if ((started) && !(joined)) {                                                                          \
            if (mig_join_until(thread, deadline) == 0)                                                             \
                (joined) = 1;                                                                                  \
            else if (len + 1 < sizeof m->stuck) {                                                              \
                int _w = snprintf(m->stuck + len, sizeof m->stuck - len, __VA_ARGS__);                         \
                len = _w < 0 ? sizeof m->stuck : len + (size_t)_w;                                             \
            }                                                                                                  \
        }                                                                                                      \
    } while (0)
    int dirtier_joined = 0;
    JOIN(m->dirtier_running, dirtier_joined, m->dirtier, "%sguest_dirty", len ? ", " : "");
    if (dirtier_joined)
        m->dirtier_running = 0;
    for (int i = 0; i < m->cfg.channels; i++) {
        struct chan *ch = &m->ch[i];
        JOIN(ch->send_started, ch->send_joined, ch->send_thread, "%smultifdsend_%d (in %s)", len ? ", " : "", i,
             PHASE_NAMES[__atomic_load_n(&ch->phase, __ATOMIC_RELAXED)]);
        JOIN(ch->recv_started, ch->recv_joined, ch->recv_thread, "%smultifdrecv_%d", len ? ", " : "", i);
    }
#undef JOIN
    return m->stuck[0] ? DSL_ETIMEDOUT : DSL_OK;
}

const char *dsl_mig_stuck(dsl_mig *m) { return m->stuck; }

int dsl_mig_destroy(dsl_mig *m)
{
    if (!m)
        return DSL_OK;
    /* every thread leaves within a slice of the stop unless it is inside the detector: bounded all the same */
    if (dsl_mig_stop(m, m->cfg.io_timeout_ms + 1000) != DSL_OK)
        return DSL_ETIMEDOUT; /* left allocated: a thread still running must never see freed memory */
    for (int i = 0; i < m->cfg.channels; i++) {
        struct chan *ch = &m->ch[i];
        pthread_cond_destroy(&ch->cond);
        for (int q = 0; q < QDEPTH; q++)
            free(ch->job_idx[q]);
        free(ch->zero);
        free(ch->offsets);
        free(ch->iov);
        free(ch->roffsets);
        free(ch->riov);
    }
    pthread_cond_destroy(&m->ready);
    pthread_cond_destroy(&m->park);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->dirtier_wake);
    pthread_mutex_destroy(&m->dirtier_lock);
    free(m->ch);
    free(m->dirty);
    free(m->received);
    free(m);
    return DSL_OK;
}

const char *dsl_mig_error(dsl_mig *m) { return m->failed ? m->err : ""; }

int dsl_mig_channel_stats(dsl_mig *m, int channel, dsl_chan_stats *out)
{
    if (channel < 0 || channel >= m->cfg.channels)
        return DSL_EINVAL;
    *out = m->ch[channel].st;
    return DSL_OK;
}

uint64_t dsl_mig_bytes_sent(dsl_mig *m) { return __atomic_load_n(&m->bytes_sent, __ATOMIC_RELAXED); }

uint64_t dsl_mig_pages_sent(dsl_mig *m) { return __atomic_load_n(&m->pages_sent, __ATOMIC_RELAXED); }
