/* The multifd engine's socket I/O: every wait bounded by io_timeout_ms without progress, woken by stop. */
#include "multifd_int.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* The sockets are blocking with SO_SNDTIMEO/SO_RCVTIMEO of SLICE_MS (set in dsl_mig_create): a call sleeps in
 * the kernel until it can make progress (few wake-ups; MSG_WAITALL wakes the receiver only when the whole
 * request is there), and returns EAGAIN after a slice without progress, when we check for shutdown and count
 * towards io_timeout_ms. */
static int slice_expired(dsl_mig *m, uint64_t *waited_ms, const char **what, const char *stalled)
{
    if (mig_destroying(m)) {
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
                if (mig_destroying(m)) {
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

int mig_send_all(dsl_mig *m, int fd, struct iovec *iov, int cnt, const char **what)
{
    return io_all(m, fd, iov, cnt, 1, 0, what);
}

int mig_recv_all(dsl_mig *m, int fd, struct iovec *iov, int cnt, const char **what, int idle_ok)
{
    return io_all(m, fd, iov, cnt, 0, idle_ok, what);
}
