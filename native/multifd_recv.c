/* The multifd engine's receivers (multifdrecv_<i>): headers checked, pages written, fault injection. */
#include "multifd_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static int receive_packet(struct chan *ch, const struct pkt_hdr *h, const char **what)
{
    const dsl_mig_config *c = &ch->m->cfg;
    size_t n = (size_t)h->normal + h->zero;
    if (n > c->packet_pages) {
        *what = "packet holds more pages than the packet size";
        return -EPROTO;
    }
    struct iovec iov = {ch->roffsets, n * sizeof(uint64_t)};
    int r = mig_recv_all(ch->m, ch->fd_recv, &iov, 1, what, 0);
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
    if (cnt && (r = mig_recv_all(ch->m, ch->fd_recv, ch->riov, cnt, what, 0)))
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
        mig_wait_destroy(m);
    }
}

void *mig_receiver_main(void *arg)
{
    struct chan *ch = arg;
    dsl_mig *m = ch->m;
    ch->st.receiver_tid = mig_name_thread("multifdrecv", ch->id);
    for (;;) {
        if (m->cfg.fail_channel == ch->id && ch->recv_packets >= m->cfg.fail_after_packets &&
            m->cfg.fail_mode != DSL_FAULT_NONE) {
            injected_fault(ch);
            break;
        }
        struct pkt_hdr h;
        struct iovec iov = {&h, sizeof h};
        const char *what = "";
        int r = mig_recv_all(m, ch->fd_recv, &iov, 1, &what, 1);
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
            r = mig_send_all(m, ch->fd_recv, &a, 1, &what);
        } else if (!r) {
            r = receive_packet(ch, &h, &what);
            ch->recv_packets++;
        }
        if (r) {
            if (r != -ECANCELED)
                mig_fail(m, "channel %d: multifdrecv_%d failed after %llu packets: %s", ch->id, ch->id,
                     (unsigned long long)ch->recv_packets, what);
            break;
        }
    }
    mig_park(m, &ch->st.receiver_cpu_ns, &ch->receiver_done);
    return NULL;
}
