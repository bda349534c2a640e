/* The multifd engine's senders (multifdsend_<i>): zero-page detection, the bandwidth limit, packets, syncs. */
#include "multifd_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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
        if (mig_failed(ch->m) || mig_destroying(ch->m))
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
        if (now >= when || mig_failed(m) || mig_destroying(m))
            return;
        uint64_t wait_ns = when - now < RATE_SLICE_NS ? when - now : RATE_SLICE_NS;
        struct timespec ts = {(time_t)(wait_ns / 1000000000ull), (long)(wait_ns % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

static int send_header_only(struct chan *ch, uint32_t flags, const char **what)
{
    struct pkt_hdr h = {.magic = MIG_MAGIC, .version = MIG_VERSION, .flags = flags, .packet_num = ch->packet_num++};
    struct iovec iov = {&h, sizeof h};
    int r = mig_send_all(ch->m, ch->fd_send, &iov, 1, what);
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
    mig_set_phase(ch, PH_DETECT);
    detect(ch, idx, n);
    uint64_t t1 = dsl_thread_cpu_ns();
    ch->st.detect_cpu_ns += t1 - t0;
    if (mig_failed(m) || mig_destroying(m)) {
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

    struct pkt_hdr h = {.magic = MIG_MAGIC,
                        .version = MIG_VERSION,
                        .pages_alloc = (uint32_t)ch->m->cfg.packet_pages,
                        .normal = (uint32_t)nn,
                        .packet_num = ch->packet_num++,
                        .zero = (uint32_t)nz,
                        .ramblock = RAMBLOCK_NAME};
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
    mig_set_phase(ch, PH_RATE);
    rate_limit(m, bytes);
    if (mig_failed(m) || mig_destroying(m)) {
        ch->st.send_cpu_ns += dsl_thread_cpu_ns() - t1;
        *what = "the migration failed elsewhere";
        return -ECANCELED;
    }
    mig_set_phase(ch, PH_SEND);
    int r = mig_send_all(m, ch->fd_send, ch->iov, cnt, what);
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
    int r = mig_recv_all(ch->m, ch->fd_send, &iov, 1, what, 0);
    if (!r && ack != ACK_MAGIC) {
        *what = "bad acknowledgement from the receiver";
        return -EPROTO;
    }
    return r;
}

void *mig_sender_main(void *arg)
{
    struct chan *ch = arg;
    dsl_mig *m = ch->m;
    ch->st.sender_tid = mig_name_thread("multifdsend", ch->id);
    for (;;) {
        pthread_mutex_lock(&m->lock);
        while (ch->count == 0 && !m->destroy && !m->failed) {
            struct timespec ts;
            dsl_deadline_in(&ts, SLICE_NS);
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
            mig_set_phase(ch, PH_SEND);
            r = send_header_only(ch, FLAG_SYNC, &what);
            mig_set_phase(ch, PH_ACK);
            if (!r)
                r = wait_ack(ch, &what);
            if (!r)
                ch->st.syncs++;
        } else if (job == JOB_END) {
            mig_set_phase(ch, PH_SEND);
            r = send_header_only(ch, FLAG_END, &what);
        }
        mig_set_phase(ch, PH_IDLE);
        if (r == -ECANCELED)
            break; /* another thread failed first, or stop: its message stands */
        if (r) {
            const char *doing = job == JOB_PAGES ? "sending packet"
                                : job == JOB_SYNC ? "syncing (sync acknowledgement) after packet"
                                                  : "ending after packet";
            mig_fail(m, "channel %d: multifdsend_%d failed %s %llu: %s", ch->id, ch->id, doing,
                 (unsigned long long)ch->packet_num, what);
            break;
        }
        pthread_mutex_lock(&m->lock);
        ch->head = (ch->head + 1) % QDEPTH;
        ch->count--;
        m->jobs_done++;
        pthread_cond_broadcast(&m->ready);
        pthread_mutex_unlock(&m->lock);
        if (job == JOB_END)
            break;
    }
    mig_park(m, &ch->st.sender_cpu_ns, &ch->sender_done);
    return NULL;
}
