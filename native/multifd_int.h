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
 *   - live_migration's waits for a queue slot, a sync or the receivers: 2 * io_timeout_ms without progress
 *     (a job a sender finished is progress, however long the rate limiter made it take);
 *   - the rate limiter and the guest_dirty thread sleep at most 50 ms / 1 ms at a time and leave on failure or
 *     stop (the dirtier checks its stop flag after every page it writes);
 *   - the detector (a CPU kernel or the DSA offload layer, with its own timeout) is the one call that can take
 *     longer: dsl_mig_abort fails the migration from outside (the trial's overall deadline) and every join
 *     (dsl_mig_dirtier_stop, dsl_mig_stop) has a bound. A thread still running at that bound is named
 *     (dsl_mig_stuck) and the engine is then left allocated, never freed under a running thread. */
#ifndef DSL_MULTIFD_INT_H
#define DSL_MULTIFD_INT_H
/* Private header of the multifd engine, shared by its sources: multifd.c (life cycle and rounds), multifd_io.c
 * (socket I/O with bounded waits), multifd_send.c (the senders), multifd_recv.c (the receivers) and
 * multifd_dirty.c (the guest's dirtying thread). */
#include "dsl.h"

#include <pthread.h>
#include <sys/uio.h>

#define MIG_MAGIC 0x44534c4du /* "DSLM" */
#define MIG_VERSION 1u
#define FLAG_SYNC 1u
#define FLAG_END 2u
#define ACK_MAGIC 0x41434b21u
#define SLICE_MS 100
#define SLICE_NS (SLICE_MS * 1000000ull)
#define NS_PER_MS 1000000ull
#define JOIN_SLICE_NS 50000000ull   /* a timed join re-reads the monotonic clock this often */
#define RATE_SLICE_NS 50000000ull   /* the bandwidth limit sleeps at most this long at a time */
#define DIRTIER_NAP_NS 1000000ull   /* the guest_dirty thread sleeps at most this long between bursts */
#define MAX_IOV 1024
/* Jobs queued per channel: with several, a sender finds its next packet waiting when it finishes one and does not
 * sleep between packets (sleeping and waking cost more CPU than the packet's bookkeeping on a busy VM). */
#define QDEPTH 4

/* A packet header with QEMU's multifd layout (MultiFDPacket_t of QEMU >= 9.0: magic, version, flags, then the page
 * counts, the packet number, reserved words and the RAM block's name; 320 bytes), so that the bytes the engine
 * sends per packet are the bytes QEMU sends; the page offsets follow it, normal pages first, then zero pages. */
#define RAMBLOCK_NAME_BYTES 256
struct pkt_hdr {
    uint32_t magic, version, flags;
    uint32_t pages_alloc, normal, next_packet_size;
    uint64_t packet_num;
    uint32_t zero, unused32;
    uint64_t unused64[3];
    char ramblock[RAMBLOCK_NAME_BYTES];
} __attribute__((packed));
_Static_assert(sizeof(struct pkt_hdr) == 320, "QEMU's MultiFDPacket_t is 320 bytes before its offsets");
/* the name written in every packet's ramblock field (QEMU's main RAM block on x86 is "pc.ram") */
#define RAMBLOCK_NAME "pc.ram"

enum job { JOB_NONE, JOB_PAGES, JOB_SYNC, JOB_END };

/* What a sender is doing, for the message that names a thread which did not finish. */
enum phase { PH_IDLE, PH_DETECT, PH_RATE, PH_SEND, PH_ACK };

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
    int sender_done; /* set with st.sender_cpu_ns, under m->lock, when the sender thread ends */
    dsl_chan_stats st; /* sender fields written by the sender, receiver fields by the receiver */
};

struct dsl_mig {
    dsl_mig_config cfg;
    struct chan *ch;
    pthread_mutex_t lock;
    pthread_cond_t ready; /* a channel became idle, a receiver finished, or something failed */
    uint64_t jobs_done;   /* jobs the senders finished (under lock): progress, for live_migration's waits */
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

static inline int mig_failed(dsl_mig *m) { return __atomic_load_n(&m->failed, __ATOMIC_ACQUIRE); }
static inline int mig_destroying(dsl_mig *m) { return __atomic_load_n(&m->destroy, __ATOMIC_ACQUIRE); }
static inline void mig_set_phase(struct chan *ch, int phase)
{
    __atomic_store_n(&ch->phase, phase, __ATOMIC_RELAXED);
}

/* multifd.c */
/* Fail the migration with a message (the first failure's message stands) and wake every waiter. */
void mig_fail(dsl_mig *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Name the calling thread <role>_<channel> (multifdsend_0, ...); its tid. */
int mig_name_thread(const char *role, int channel);
/* Park: record the thread's CPU time into *cpu_slot, then wait for destroy. */
void mig_park(dsl_mig *m, uint64_t *cpu_slot, int *done_flag);
/* Wait, in slices, until dsl_mig_stop/dsl_mig_destroy sets destroy. */
void mig_wait_destroy(dsl_mig *m);
/* Join `t`, waiting until the CLOCK_MONOTONIC time deadline_ns at most; 0 once joined, ETIMEDOUT if it is still
 * running then. */
int mig_join_until(pthread_t t, uint64_t deadline_ns);
uint64_t mig_deadline_after_ms(uint64_t ms); /* CLOCK_MONOTONIC ns, ms from now (saturating) */

/* multifd_io.c: every byte of iov[0:cnt] out or in; 0, or a negative errno with *what set */
int mig_send_all(dsl_mig *m, int fd, struct iovec *iov, int cnt, const char **what);
int mig_recv_all(dsl_mig *m, int fd, struct iovec *iov, int cnt, const char **what, int idle_ok);

/* multifd_send.c, multifd_recv.c: the channel threads (arg: struct chan *) */
void *mig_sender_main(void *arg);
void *mig_receiver_main(void *arg);

/* multifd_dirty.c: ask the guest_dirty thread to stop and wake it */
void mig_dirtier_signal_stop(dsl_mig *m);

#endif
