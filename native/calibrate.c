/* Micro-measurements for `dsalab calibrate` (dsalab/model/calibrate*.py): costs a hardware profile needs that
 * no engine counter gives, measured in C so that no interpreter overhead is counted.
 *
 *   dsl_cal_wakeup: two threads hand a token back and forth through a mutex and a condition variable, each
 *     sleeping until the other wakes it (the engine's own primitive: pthread_cond_timedwait); the CPU of both
 *     threads over the hand-offs is what one blocking wait and its wake-up cost (profile key host.wakeup).
 *   dsl_cal_write: write() of `bytes` to a descriptor, `count` times; the calling thread's CPU (the proxy for
 *     a 64-byte descriptor written to an idxd work queue: dsa.submit_write).
 *   dsl_cal_stream: one thread writes `count` messages of `bytes` to a connected socket, another reads them;
 *     wall time and each side's CPU (network.bandwidth with large messages, network.message with small ones).
 *
 * Every wait is bounded: a hand-off or a socket read that makes no progress for DSL_CAL_TIMEOUT_MS fails with
 * DSL_ETIMEDOUT, and the partner thread is told to leave and joined. */
#include "dsl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAL_TIMEOUT_NS (2000ull * 1000000ull)
#define CAL_MAX_BYTES (64ull << 20)

struct pingpong {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t token; /* even: the caller's turn, odd: the partner's */
    uint64_t rounds;
    int stop, failed;
    uint64_t partner_cpu_ns;
};

/* Wait (lock held) until token has parity `want` or stop; 0, or -1 after CAL_TIMEOUT_NS without a hand-off. */
static int wait_turn(struct pingpong *p, uint64_t want)
{
    uint64_t deadline = dsl_now_ns() + CAL_TIMEOUT_NS;
    while ((p->token & 1) != want && !p->stop) {
        if (dsl_now_ns() >= deadline)
            return -1;
        struct timespec ts;
        dsl_deadline_in(&ts, 100000000ull);
        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    }
    return 0;
}

static void *partner(void *arg)
{
    struct pingpong *p = arg;
    uint64_t t0 = dsl_thread_cpu_ns();
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        if (wait_turn(p, 1)) {
            p->failed = 1;
            break;
        }
        if (p->stop)
            break;
        p->token++;
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    p->partner_cpu_ns = dsl_thread_cpu_ns() - t0;
    return NULL;
}

int dsl_cal_wakeup(uint64_t rounds, uint64_t *cpu_ns, uint64_t *wall_ns)
{
    if (!rounds || rounds > (1ull << 32) || !cpu_ns || !wall_ns)
        return DSL_EINVAL;
    struct pingpong p;
    memset(&p, 0, sizeof p);
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, partner, &p)) {
        pthread_cond_destroy(&p.cond);
        pthread_mutex_destroy(&p.lock);
        return DSL_ENOMEM;
    }
    uint64_t w0 = dsl_now_ns(), c0 = dsl_thread_cpu_ns();
    int rc = DSL_OK;
    pthread_mutex_lock(&p.lock);
    for (uint64_t i = 0; i < rounds; i++) {
        p.token++; /* the partner's turn */
        pthread_cond_signal(&p.cond);
        if (wait_turn(&p, 0) || p.failed) {
            rc = DSL_ETIMEDOUT;
            break;
        }
    }
    p.stop = 1;
    pthread_cond_broadcast(&p.cond);
    pthread_mutex_unlock(&p.lock);
    uint64_t mine = dsl_thread_cpu_ns() - c0;
    pthread_join(t, NULL); /* the partner leaves within one 100 ms slice of stop */
    *wall_ns = dsl_now_ns() - w0;
    *cpu_ns = mine + p.partner_cpu_ns;
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    return rc;
}

int dsl_cal_write(int fd, size_t bytes, uint64_t count, uint64_t *cpu_ns)
{
    if (fd < 0 || !bytes || bytes > 4096 || !count || count > (1ull << 32) || !cpu_ns)
        return DSL_EINVAL;
    uint8_t buf[4096];
    memset(buf, 0, bytes);
    uint64_t c0 = dsl_thread_cpu_ns();
    for (uint64_t i = 0; i < count; i++)
        if (write(fd, buf, bytes) != (ssize_t)bytes)
            return DSL_EIO;
    *cpu_ns = dsl_thread_cpu_ns() - c0;
    return DSL_OK;
}

struct reader {
    int fd;
    uint64_t total;
    size_t bytes;
    int failed;
    uint64_t cpu_ns;
};

static void *read_all(void *arg)
{
    struct reader *r = arg;
    uint64_t c0 = dsl_thread_cpu_ns();
    uint8_t *buf = malloc(r->bytes);
    uint64_t got = 0, last = dsl_now_ns();
    while (buf && got < r->total) {
        struct pollfd pfd = {r->fd, POLLIN, 0};
        int pr = poll(&pfd, 1, 100);
        if (pr == 0 && dsl_now_ns() - last > CAL_TIMEOUT_NS)
            break;
        if (pr <= 0)
            continue;
        uint64_t want = r->total - got < r->bytes ? r->total - got : r->bytes;
        ssize_t n = read(r->fd, buf, want);
        if (n <= 0) {
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            break;
        }
        got += (uint64_t)n;
        last = dsl_now_ns();
    }
    r->failed = got < r->total;
    free(buf);
    r->cpu_ns = dsl_thread_cpu_ns() - c0;
    return NULL;
}

int dsl_cal_stream(int fd_out, int fd_in, size_t bytes, uint64_t count, uint64_t *wall_ns, uint64_t *send_cpu_ns,
                   uint64_t *recv_cpu_ns)
{
    if (fd_out < 0 || fd_in < 0 || !bytes || bytes > CAL_MAX_BYTES || !count || count > (1ull << 32) || !wall_ns ||
        !send_cpu_ns || !recv_cpu_ns)
        return DSL_EINVAL;
    /* non-blocking both ends: every wait is a bounded poll() */
    if (fcntl(fd_out, F_SETFL, fcntl(fd_out, F_GETFL) | O_NONBLOCK) || fcntl(fd_in, F_SETFL, fcntl(fd_in, F_GETFL) | O_NONBLOCK))
        return DSL_EIO;
    uint8_t *buf = malloc(bytes);
    if (!buf)
        return DSL_ENOMEM;
    memset(buf, 0x5a, bytes);
    struct reader r = {fd_in, (uint64_t)bytes * count, bytes, 0, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, read_all, &r)) {
        free(buf);
        return DSL_ENOMEM;
    }
    uint64_t w0 = dsl_now_ns(), c0 = dsl_thread_cpu_ns();
    int rc = DSL_OK;
    for (uint64_t i = 0; i < count && rc == DSL_OK; i++) {
        size_t off = 0;
        uint64_t last = dsl_now_ns();
        while (off < bytes) {
            struct pollfd pfd = {fd_out, POLLOUT, 0};
            int pr = poll(&pfd, 1, 100);
            if (pr == 0 && dsl_now_ns() - last > CAL_TIMEOUT_NS) {
                rc = DSL_ETIMEDOUT;
                break;
            }
            if (pr <= 0)
                continue;
            ssize_t n = write(fd_out, buf + off, bytes - off);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) {
                rc = DSL_EIO;
                break;
            }
            off += (size_t)n;
            last = dsl_now_ns();
        }
    }
    *send_cpu_ns = dsl_thread_cpu_ns() - c0;
    pthread_join(t, NULL); /* the reader leaves once all arrived, or after CAL_TIMEOUT_NS without a byte */
    *wall_ns = dsl_now_ns() - w0;
    *recv_cpu_ns = r.cpu_ns;
    free(buf);
    if (rc == DSL_OK && r.failed)
        rc = DSL_ETIMEDOUT;
    return rc;
}
