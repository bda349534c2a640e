/* The multifd migration engine's data path, built like QEMU's multifd:
 *
 *   live_migration (the caller of dsl_mig_send_pages) walks the pages to send, fills a packet of up to
 *   packet_pages page indices and hands it to the next idle channel;
 *   multifdsend_<i> finds the packet's zero pages (a CPU kernel through a function pointer, or the DSA offload
 *   layer), then sends a header (page indices: normal first, then zero) and the normal pages with sendmsg over
 *   its own TCP connection;
 *   multifdrecv_<i> reads the header, reads the normal pages straight into destination memory, and clears a
 *   zero page only if it received that page before (destination memory starts zero; QEMU's receiver keeps the
 *   same "received" bitmap, and touching never-received pages would only fault them in).
 *
 * At the end of each round every channel sends a SYNC packet and waits for its receiver's acknowledgement, so a
 * round is over only when the destination holds everything. Every wait is bounded by io_timeout_ms without
 * progress: a dead receiver, a reset connection or a stalled peer ends in an error naming the channel, never in
 * a hang. Threads park after END (or a failure) until dsl_mig_stop/dsl_mig_destroy, so that their CPU time can
 * still be read from /proc/self/task/<tid>/schedstat.
 *
 * Every wait here is bounded or woken by stop:
 *   - socket I/O: slices of SLICE_MS; io_timeout_ms without progress fails the channel; a receiver idle between
 *     packets and a parked thread wake every slice and leave on stop;
 *   - live_migration's waits for a queue slot, a sync or the receivers: 2 * io_timeout_ms without progress;
 *   - the rate limiter and the guest_dirty thread sleep at most 50 ms / 1 ms at a time and leave on failure or
 *     stop (the dirtier checks its stop flag after every page it writes);
 *   - the detector (a CPU kernel or the DSA offload layer, with its own timeout) is the one call that can take
 *     longer: dsl_mig_abort fails the migration from outside (the trial's overall deadline) and every join
 *     (dsl_mig_dirtier_stop, dsl_mig_stop) has a bound. A thread still running at that bound is named
 *     (dsl_mig_stuck) and the engine is then left allocated, never freed under a running thread. */
#include "dsl.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MIG_MAGIC 0x44534c4du /* "DSLM" */
#define MIG_VERSION 1u
#define FLAG_SYNC 1u
#define FLAG_END 2u
#define ACK_MAGIC 0x41434b21u
#define SLICE_MS 100
#define MAX_IOV 1024
/* Jobs queued per channel: with several, a sender finds its next packet waiting when it finishes one and does not
 * sleep between packets (sleeping and waking cost more CPU than the packet's bookkeeping on a busy VM). */
#define QDEPTH 4

struct pkt_hdr {
    uint32_t magic, version, flags, normal, zero, reserved;
    uint64_t packet_num;
};

enum job { JOB_NONE, JOB_PAGES, JOB_SYNC, JOB_END };

/* What a sender is doing, for the message that names a thread which did not finish. */
enum phase { PH_IDLE, PH_DETECT, PH_RATE, PH_SEND, PH_ACK };
static const char *const PHASE_NAMES[] = {"idle", "zero-page detection", "the bandwidth limit", "sendmsg",
                                          "waiting for a sync acknowledgement"};

struct chan {
    dsl_mig *m;
    int id;
    int fd_send, fd_recv;
    pthread_t send_thread, recv_thread;
    int send_started, recv_started;
    int send_joined, recv_joined;
    int phase; /* enum phase of the sender (atomic) */
    /* the job queue (QDEPTH slots), protected by m->lock */
    pthread_cond_t cond;
    int jobs[QDEPTH];
    uint64_t *job_idx[QDEPTH];
    size_t job_n[QDEPTH];
    int head, count;
    /* sender scratch */
    uint8_t *zero;
    uint64_t *offsets;
    struct iovec *iov;
    uint64_t packet_num;
    /* receiver scratch */
    uint64_t *roffsets;
    struct iovec *riov;
    uint64_t recv_packets;
    int receiver_done;
    dsl_chan_stats st; /* sender fields written by the sender, receiver fields by the receiver */
};

struct dsl_mig {
    dsl_mig_config cfg;
    struct chan *ch;
    pthread_mutex_t lock;
    pthread_cond_t ready; /* a channel became idle, a receiver finished, or something failed */
    pthread_cond_t park;
    int destroy;
    int failed;
    char err[512];
    int next_chan;
    uint64_t bytes_sent; /* atomic */
    uint64_t pages_sent; /* atomic */
    uint64_t bytes_reserved; /* atomic: the rate limiter's bucket */
    uint64_t start_ns;
    uint8_t *received; /* destination: 1 once a page has arrived (a page is in one packet per round) */
    /* dirty tracking */
    uint64_t *dirty; /* atomic words */
    size_t words;
    pthread_t dirtier;
    int dirtier_running, dirtier_stop;
    uint64_t dirty_rate, dirty_seed, dirtied, dirtier_cpu_ns; /* dirtied: atomic */
    pthread_mutex_t dirtier_lock; /* with dirtier_wake: the dirtier's sleeps end at once on stop */
    pthread_cond_t dirtier_wake;
    char stuck[256]; /* the threads dsl_mig_stop could not join in time */
};

/* The longest io_timeout_ms dsl_mig_create takes (doubled and added to times in ns without overflow). */
#define MAX_IO_TIMEOUT_MS (1ull << 40)

static int gettid_(void) { return (int)syscall(SYS_gettid); }

static void fail(dsl_mig *m, const char *fmt, ...)
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

static int is_failed(dsl_mig *m) { return __atomic_load_n(&m->failed, __ATOMIC_ACQUIRE); }
static int is_destroying(dsl_mig *m) { return __atomic_load_n(&m->destroy, __ATOMIC_ACQUIRE); }
static void set_phase(struct chan *ch, int phase) { __atomic_store_n(&ch->phase, phase, __ATOMIC_RELAXED); }

/* Park: record CPU time, wait for destroy. */
static void park(dsl_mig *m, uint64_t *cpu_slot)
{
    *cpu_slot = dsl_thread_cpu_ns();
    pthread_mutex_lock(&m->lock);
    while (!m->destroy) {
        struct timespec ts;
        dsl_deadline_in(&ts, SLICE_MS * 1000000ull);
        pthread_cond_timedwait(&m->park, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
}

/* ---------------------------------------------------------------- socket I/O with bounded waits */

/* The sockets are blocking with SO_SNDTIMEO/SO_RCVTIMEO of SLICE_MS (set in dsl_mig_create): a call sleeps in
 * the kernel until it can make progress (few wake-ups; MSG_WAITALL wakes the receiver only when the whole
 * request is there), and returns EAGAIN after a slice without progress, when we check for shutdown and count
 * towards io_timeout_ms. */
static int slice_expired(dsl_mig *m, uint64_t *waited_ms, const char **what, const char *stalled)
{
    if (is_destroying(m)) {
        *what = "shutting down";
        return -ECANCELED;
    }
    *waited_ms += SLICE_MS;
    if (*waited_ms >= m->cfg.io_timeout_ms) {
        *what = stalled;
        return -ETIMEDOUT;
    }
    return 0;
}

static void advance(struct iovec **iov, int *cnt, size_t n)
{
    while (*cnt > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        (*cnt)--;
    }
    if (*cnt > 0) {
        (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
}

/* Move every byte of iov[0:cnt] (modified in place) out (sendmsg) or in (recvmsg with MSG_WAITALL). 0, or a
 * negative errno with *what set; end of file is -EPIPE. With idle_ok, waiting before the first byte arrives is
 * not a stall: a receiver waiting for its next packet is idle while the source works on other channels (the
 * source side bounds that wait, and destroy ends it). */
static int io_all(dsl_mig *m, int fd, struct iovec *iov, int cnt, int sending, int idle_ok, const char **what)
{
    uint64_t waited = 0;
    int started = 0;
    while (cnt > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)(cnt > MAX_IOV ? MAX_IOV : cnt)};
        ssize_t n = sending ? sendmsg(fd, &msg, MSG_NOSIGNAL) : recvmsg(fd, &msg, MSG_WAITALL);
        if (n == 0 && !sending) {
            *what = "connection closed by the peer";
            return -EPIPE;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                *what = strerror(errno);
                return -errno;
            }
            if (idle_ok && !started) {
                if (is_destroying(m)) {
                    *what = "shutting down";
                    return -ECANCELED;
                }
                continue;
            }
            int r = slice_expired(m, &waited, what,
                                  sending ? "no progress within the I/O timeout (receiver stalled?)"
                                          : "no data within the I/O timeout (sender stalled?)");
            if (r)
                return r;
            continue;
        }
        waited = 0;
        started = 1;
        advance(&iov, &cnt, (size_t)n);
    }
    return 0;
}

static int send_all(dsl_mig *m, int fd, struct iovec *iov, int cnt, const char **what)
{
    return io_all(m, fd, iov, cnt, 1, 0, what);
}

static int recv_all(dsl_mig *m, int fd, struct iovec *iov, int cnt, const char **what, int idle_ok)
{
    return io_all(m, fd, iov, cnt, 0, idle_ok, what);
}

/* ---------------------------------------------------------------- sender */

static int forced_normal(const dsl_mig_config *c, uint64_t page)
{
    if (c->force_normal_ratio <= 0.0)
        return 0;
    if (c->force_normal_ratio >= 1.0)
        return 1;
    uint64_t st = c->seed ^ (page * 0xA24BAED4963EE407ull);
    return (double)(dsl_splitmix64(&st) >> 11) * 0x1.0p-53 < c->force_normal_ratio;
}

/* Zero-page detection of the packet's pages into ch->zero. Contiguous runs go to the detector in one call. */
static void detect(struct chan *ch, const uint64_t *idx, size_t n)
{
    const dsl_mig_config *c = &ch->m->cfg;
    size_t i = 0;
    while (i < n) {
        if (is_failed(ch->m) || is_destroying(ch->m))
            return; /* the packet will not be sent: do not start another (maybe slow) detector call */
        size_t run = 1;
        while (i + run < n && idx[i + run] == idx[i] + run)
            run++;
        const uint8_t *base = c->src + idx[i] * c->page_size;
        if (c->detect_fn) {
            int hint = c->detect_devices > 0 ? ch->id % c->detect_devices : -1;
            if (c->detect_fn(c->detect_ctx, base, run, c->page_size, ch->zero + i, hint) != DSL_OK)
                /* the detector could not run at all: the CPU does it (never lose a page) */
                dsl_find_zero_pages(base, run, c->page_size, ch->zero + i, 1);
        } else {
            for (size_t k = 0; k < run; k++)
                ch->zero[i + k] = (uint8_t)(c->zero_fn(base + k * c->page_size, c->page_size) != 0);
        }
        i += run;
    }
}

/* max_bandwidth: a token bucket shared by the channels. A sender reserves its packet's bytes and sleeps until
 * the moment the bucket allows them (start + reserved / bandwidth). */
static void rate_limit(dsl_mig *m, uint64_t bytes)
{
    uint64_t bw = m->cfg.max_bandwidth;
    if (!bw)
        return;
    uint64_t before = __atomic_fetch_add(&m->bytes_reserved, bytes, __ATOMIC_RELAXED);
    double offset_ns = (double)(before + bytes) / (double)bw * 1e9;
    /* clamped: a tiny bandwidth must not overflow the conversion (the wait is still left on failure or stop) */
    uint64_t when = m->start_ns + (offset_ns < 0x1p62 ? (uint64_t)offset_ns : (1ull << 62));
    for (;;) {
        uint64_t now = dsl_now_ns();
        if (now >= when || is_failed(m) || is_destroying(m))
            return;
        uint64_t wait_ns = when - now < 50000000ull ? when - now : 50000000ull;
        struct timespec ts = {(time_t)(wait_ns / 1000000000ull), (long)(wait_ns % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

static int send_header_only(struct chan *ch, uint32_t flags, const char **what)
{
    struct pkt_hdr h = {MIG_MAGIC, MIG_VERSION, flags, 0, 0, 0, ch->packet_num++};
    struct iovec iov = {&h, sizeof h};
    int r = send_all(ch->m, ch->fd_send, &iov, 1, what);
    if (!r) {
        ch->st.bytes_sent += sizeof h;
        __atomic_add_fetch(&ch->m->bytes_sent, sizeof h, __ATOMIC_RELAXED);
    }
    return r;
}

static int send_packet(struct chan *ch, const uint64_t *idx, size_t n, const char **what)
{
    dsl_mig *m = ch->m;
    const dsl_mig_config *c = &m->cfg;
    uint64_t t0 = dsl_thread_cpu_ns();
    set_phase(ch, PH_DETECT);
    detect(ch, idx, n);
    uint64_t t1 = dsl_thread_cpu_ns();
    ch->st.detect_cpu_ns += t1 - t0;
    if (is_failed(m) || is_destroying(m)) {
        *what = "the migration failed elsewhere";
        return -ECANCELED;
    }

    size_t nn = 0, nz = 0;
    for (size_t i = 0; i < n; i++) {
        if (ch->zero[i]) {
            ch->st.zero_pages++;
            if (forced_normal(c, idx[i])) {
                ch->st.forced_normal_pages++;
                ch->zero[i] = 0; /* sent with its payload */
            }
        } else {
            ch->st.normal_pages++;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!ch->zero[i])
            ch->offsets[nn++] = idx[i];
    for (size_t i = 0; i < n; i++)
        if (ch->zero[i])
            ch->offsets[nn + nz++] = idx[i];

    struct pkt_hdr h = {MIG_MAGIC, MIG_VERSION, 0, (uint32_t)nn, (uint32_t)nz, 0, ch->packet_num++};
    int cnt = 0;
    ch->iov[cnt++] = (struct iovec){&h, sizeof h};
    ch->iov[cnt++] = (struct iovec){ch->offsets, (nn + nz) * sizeof(uint64_t)};
    for (size_t i = 0; i < nn; i++) {
        uint8_t *p = c->src + ch->offsets[i] * c->page_size;
        struct iovec *last = &ch->iov[cnt - 1];
        if (i > 0 && (uint8_t *)last->iov_base + last->iov_len == p)
            last->iov_len += c->page_size; /* coalesce neighbouring pages */
        else
            ch->iov[cnt++] = (struct iovec){p, c->page_size};
    }
    size_t bytes = sizeof h + (nn + nz) * sizeof(uint64_t) + nn * c->page_size;
    set_phase(ch, PH_RATE);
    rate_limit(m, bytes);
    if (is_failed(m) || is_destroying(m)) {
        ch->st.send_cpu_ns += dsl_thread_cpu_ns() - t1;
        *what = "the migration failed elsewhere";
        return -ECANCELED;
    }
    set_phase(ch, PH_SEND);
    int r = send_all(m, ch->fd_send, ch->iov, cnt, what);
    ch->st.send_cpu_ns += dsl_thread_cpu_ns() - t1;
    if (r)
        return r;
    ch->st.packets++;
    ch->st.pages += n;
    __atomic_add_fetch(&m->pages_sent, n, __ATOMIC_RELAXED);
    ch->st.bytes_sent += bytes;
    ch->st.payload_bytes += nn * c->page_size;
    __atomic_add_fetch(&m->bytes_sent, bytes, __ATOMIC_RELAXED);
    return 0;
}

static int wait_ack(struct chan *ch, const char **what)
{
    uint32_t ack = 0;
    struct iovec iov = {&ack, sizeof ack};
    int r = recv_all(ch->m, ch->fd_send, &iov, 1, what, 0);
    if (!r && ack != ACK_MAGIC) {
        *what = "bad acknowledgement from the receiver";
        return -EPROTO;
    }
    return r;
}

static void *sender_main(void *arg)
{
    struct chan *ch = arg;
    dsl_mig *m = ch->m;
    char name[16];
    snprintf(name, sizeof name, "multifdsend_%d", ch->id);
    dsl_set_thread_name(name);
    ch->st.sender_tid = gettid_();
    for (;;) {
        pthread_mutex_lock(&m->lock);
        while (ch->count == 0 && !m->destroy && !m->failed) {
            struct timespec ts;
            dsl_deadline_in(&ts, SLICE_MS * 1000000ull);
            pthread_cond_timedwait(&ch->cond, &m->lock, &ts);
        }
        int job = ch->count ? ch->jobs[ch->head] : JOB_NONE;
        const uint64_t *idx = ch->job_idx[ch->head];
        size_t n = ch->job_n[ch->head];
        int stop = m->destroy || m->failed;
        pthread_mutex_unlock(&m->lock);
        if (stop && job != JOB_END)
            break;
        const char *what = "";
        int r = 0;
        if (job == JOB_PAGES)
            r = send_packet(ch, idx, n, &what);
        else if (job == JOB_SYNC) {
            set_phase(ch, PH_SEND);
            r = send_header_only(ch, FLAG_SYNC, &what);
            set_phase(ch, PH_ACK);
            if (!r)
                r = wait_ack(ch, &what);
            if (!r)
                ch->st.syncs++;
        } else if (job == JOB_END) {
            set_phase(ch, PH_SEND);
            r = send_header_only(ch, FLAG_END, &what);
        }
        set_phase(ch, PH_IDLE);
        if (r == -ECANCELED)
            break; /* another thread failed first, or stop: its message stands */
        if (r) {
            const char *doing = job == JOB_PAGES ? "sending packet"
                                : job == JOB_SYNC ? "syncing (sync acknowledgement) after packet"
                                                  : "ending after packet";
            fail(m, "channel %d: multifdsend_%d failed %s %llu: %s", ch->id, ch->id, doing,
                 (unsigned long long)ch->packet_num, what);
            break;
        }
        pthread_mutex_lock(&m->lock);
        ch->head = (ch->head + 1) % QDEPTH;
        ch->count--;
        pthread_cond_broadcast(&m->ready);
        pthread_mutex_unlock(&m->lock);
        if (job == JOB_END)
            break;
    }
    park(m, &ch->st.sender_cpu_ns);
    return NULL;
}

/* ---------------------------------------------------------------- receiver */

static int receive_packet(struct chan *ch, const struct pkt_hdr *h, const char **what)
{
    const dsl_mig_config *c = &ch->m->cfg;
    size_t n = (size_t)h->normal + h->zero;
    if (n > c->packet_pages) {
        *what = "packet holds more pages than the packet size";
        return -EPROTO;
    }
    struct iovec iov = {ch->roffsets, n * sizeof(uint64_t)};
    int r = recv_all(ch->m, ch->fd_recv, &iov, 1, what, 0);
    if (r)
        return r;
    for (size_t i = 0; i < n; i++)
        if (ch->roffsets[i] >= c->npages) {
            *what = "page index beyond guest memory";
            return -EPROTO;
        }
    int cnt = 0;
    for (size_t i = 0; i < h->normal; i++) {
        uint8_t *p = c->dst + ch->roffsets[i] * c->page_size;
        struct iovec *last = &ch->riov[cnt > 0 ? cnt - 1 : 0];
        if (cnt > 0 && (uint8_t *)last->iov_base + last->iov_len == p)
            last->iov_len += c->page_size;
        else
            ch->riov[cnt++] = (struct iovec){p, c->page_size};
    }
    if (cnt && (r = recv_all(ch->m, ch->fd_recv, ch->riov, cnt, what, 0)))
        return r;
    ch->st.recv_pages_written += h->normal;
    uint8_t *received = ch->m->received;
    for (size_t i = 0; i < h->normal; i++)
        received[ch->roffsets[i]] = 1;
    for (size_t i = h->normal; i < n; i++) {
        uint64_t page = ch->roffsets[i];
        if (received[page]) {
            memset(c->dst + page * c->page_size, 0, c->page_size);
            ch->st.recv_zero_pages_cleared++;
        }
        received[page] = 1;
    }
    return 0;
}

static void injected_fault(struct chan *ch)
{
    dsl_mig *m = ch->m;
    if (m->cfg.fail_mode == DSL_FAULT_RECEIVER_RESET) { /* reset: close with SO_LINGER 0, the peer sees ECONNRESET */
        struct linger lg = {1, 0};
        setsockopt(ch->fd_recv, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        shutdown(ch->fd_recv, SHUT_RDWR);
    } else if (m->cfg.fail_mode == DSL_FAULT_RECEIVER_EXIT) { /* the receiver goes away */
        shutdown(ch->fd_recv, SHUT_RDWR);
    } else if (m->cfg.fail_mode == DSL_FAULT_RECEIVER_STALL) { /* the receiver stalls: stops reading, stays connected */
        pthread_mutex_lock(&m->lock);
        while (!m->destroy) {
            struct timespec ts;
            dsl_deadline_in(&ts, SLICE_MS * 1000000ull);
            pthread_cond_timedwait(&m->park, &m->lock, &ts);
        }
        pthread_mutex_unlock(&m->lock);
    }
}

static void *receiver_main(void *arg)
{
    struct chan *ch = arg;
    dsl_mig *m = ch->m;
    char name[16];
    snprintf(name, sizeof name, "multifdrecv_%d", ch->id);
    dsl_set_thread_name(name);
    ch->st.receiver_tid = gettid_();
    for (;;) {
        if (m->cfg.fail_channel == ch->id && ch->recv_packets >= m->cfg.fail_after_packets &&
            m->cfg.fail_mode != DSL_FAULT_NONE) {
            injected_fault(ch);
            break;
        }
        struct pkt_hdr h;
        struct iovec iov = {&h, sizeof h};
        const char *what = "";
        int r = recv_all(m, ch->fd_recv, &iov, 1, &what, 1);
        if (!r && (h.magic != MIG_MAGIC || h.version != MIG_VERSION)) {
            what = "bad packet header (magic or version)";
            r = -EPROTO;
        } else if (!r && (h.flags & ~(FLAG_SYNC | FLAG_END))) {
            what = "protocol error: unknown packet flags";
            r = -EPROTO;
        } else if (!r && !(h.flags & (FLAG_SYNC | FLAG_END)) && (uint64_t)h.normal + h.zero == 0) {
            what = "protocol error: a data packet with 0 pages";
            r = -EPROTO;
        }
        if (!r && (h.flags & FLAG_END))
            break;
        if (!r && (h.flags & FLAG_SYNC)) {
            uint32_t ack = ACK_MAGIC;
            struct iovec a = {&ack, sizeof ack};
            r = send_all(m, ch->fd_recv, &a, 1, &what);
        } else if (!r) {
            r = receive_packet(ch, &h, &what);
            ch->recv_packets++;
        }
        if (r) {
            if (r != -ECANCELED)
                fail(m, "channel %d: multifdrecv_%d failed after %llu packets: %s", ch->id, ch->id,
                     (unsigned long long)ch->recv_packets, what);
            break;
        }
    }
    pthread_mutex_lock(&m->lock);
    ch->receiver_done = 1;
    pthread_cond_broadcast(&m->ready);
    pthread_mutex_unlock(&m->lock);
    park(m, &ch->st.receiver_cpu_ns);
    return NULL;
}

/* ---------------------------------------------------------------- the guest's dirtying thread */

/* Join `t`, waiting until the CLOCK_MONOTONIC time deadline_ns at most; 0 once joined, ETIMEDOUT if the thread
 * is still running then. Slices of at most 50 ms, so a jump of the realtime clock cannot stretch the wait. */
static int join_until(pthread_t t, uint64_t deadline_ns)
{
    for (;;) {
        if (pthread_tryjoin_np(t, NULL) == 0)
            return 0;
        uint64_t now = dsl_now_ns();
        if (now >= deadline_ns)
            return ETIMEDOUT;
        uint64_t left = deadline_ns - now;
        struct timespec ts;
        dsl_deadline_in(&ts, left < 50000000ull ? left : 50000000ull);
        if (pthread_timedjoin_np(t, NULL, &ts) == 0)
            return 0;
    }
}

static uint64_t deadline_after_ms(uint64_t ms)
{
    uint64_t now = dsl_now_ns();
    return ms >= (UINT64_MAX - now) / 1000000ull ? UINT64_MAX : now + ms * 1000000ull;
}

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
            dsl_deadline_in(&ts, 1000000ull);
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
static void dirtier_signal_stop(dsl_mig *m)
{
    pthread_mutex_lock(&m->dirtier_lock);
    __atomic_store_n(&m->dirtier_stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&m->dirtier_wake);
    pthread_mutex_unlock(&m->dirtier_lock);
}

uint64_t dsl_mig_dirtier_stop(dsl_mig *m)
{
    if (m->dirtier_running) {
        dirtier_signal_stop(m);
        if (join_until(m->dirtier, deadline_after_ms(m->cfg.io_timeout_ms)) == 0)
            m->dirtier_running = 0;
        else /* cannot happen short of a stopped process; dsl_mig_stop names it and the engine is not freed */
            fail(m, "guest_dirty did not stop within %llu ms", (unsigned long long)m->cfg.io_timeout_ms);
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

/* ---------------------------------------------------------------- life cycle and rounds */

int dsl_mig_create(const dsl_mig_config *cfg, dsl_mig **out)
{
    *out = NULL;
    if (!cfg->src || !cfg->dst || cfg->channels < 1 || cfg->packet_pages < 1 || cfg->page_size < 64 ||
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
        if (pthread_create(&ch->recv_thread, NULL, receiver_main, ch) != 0) {
            rc = DSL_ENOMEM;
            break;
        }
        ch->recv_started = 1;
        if (pthread_create(&ch->send_thread, NULL, sender_main, ch) != 0) {
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
        uint64_t _waited = 0;                                                                                  \
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
            dsl_deadline_in(&_ts, SLICE_MS * 1000000ull);                                                                       \
            if (pthread_cond_timedwait(&(m)->ready, &(m)->lock, &_ts) == ETIMEDOUT)                            \
                _waited += SLICE_MS;                                                                           \
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
            done &= m->ch[i].receiver_done;
        if (done || m->failed || waited >= m->cfg.io_timeout_ms)
            break;
        struct timespec ts;
        dsl_deadline_in(&ts, SLICE_MS * 1000000ull);
        if (pthread_cond_timedwait(&m->ready, &m->lock, &ts) == ETIMEDOUT)
            waited += SLICE_MS;
    }
    rc = m->failed ? DSL_EIO : done ? DSL_OK : timeout_error(m, DSL_ETIMEDOUT, "receiver finished");
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
    fail(m, "%s%s%s", why, len ? "; busy: " : "", busy);
}

int dsl_mig_stop(dsl_mig *m, uint64_t timeout_ms)
{
    uint64_t deadline = deadline_after_ms(timeout_ms);
    dirtier_signal_stop(m);
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
            if (join_until(thread, deadline) == 0)                                                             \
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
