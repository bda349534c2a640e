/* The write() path's far end: dsl_emu_serve_fd makes an emulated device read 64-byte descriptors from a pipe or
 * socket, as the kernel's idxd driver receives them from write(), and queue them; like the kernel it refuses
 * batch descriptors, and retries a full shared queue a while before it drops a descriptor with an error record. */
#include "emu_int.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READER_POLL_MS 50         /* the reader checks for close at least this often */
#define FULL_QUEUE_TRIES 100000   /* submissions of one descriptor to a full shared queue before it is dropped */
#define FULL_QUEUE_PAUSE_NS 1000  /* pause between those tries */

static int stopping(struct emu *e) { return __atomic_load_n(&e->stop, __ATOMIC_ACQUIRE); }

static void *reader_main(void *arg)
{
    struct emu *e = arg;
    dsl_set_thread_name("dsa_wq_reader");
    uint8_t buf[DSL_DESC_BYTES];
    size_t have = 0;
    for (;;) {
        struct pollfd p = {e->serve_fd, POLLIN, 0};
        int pr = poll(&p, 1, READER_POLL_MS);
        if (stopping(e))
            break;
        if (pr == 0 || (pr < 0 && errno == EINTR))
            continue;
        ssize_t n = read(e->serve_fd, buf + have, sizeof buf - have);
        if (n == 0)
            break; /* the submitter closed its end */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (stopping(e))
                    break;
                continue; /* SO_RCVTIMEO / non-blocking: check for shutdown */
            }
            break;
        }
        have += (size_t)n;
        if (have < sizeof buf)
            continue;
        have = 0;
        struct dsa_hw_desc d;
        memcpy(&d, buf, sizeof d);
        if (d.opcode == DSA_OPCODE_BATCH) { /* the kernel refuses batches on the write() path */
            __atomic_add_fetch(&e->bad_descriptors, 1, __ATOMIC_RELAXED);
            struct dsa_completion_record *cr = (struct dsa_completion_record *)(uintptr_t)d.completion_addr;
            if (cr)
                emu_publish(cr, DSA_COMP_BAD_OPCODE);
            continue;
        }
        /* like the kernel's enqcmds loop: retry a full shared queue a while, then drop with an error record */
        int rc = DSL_EQUEUE_FULL;
        for (int tries = 0; tries < FULL_QUEUE_TRIES && rc == DSL_EQUEUE_FULL && !stopping(e); tries++) {
            /* closing ends the retries */
            rc = emu_submit(&e->base, &d);
            if (rc == DSL_EQUEUE_FULL) {
                struct timespec ts = {0, FULL_QUEUE_PAUSE_NS};
                nanosleep(&ts, NULL);
            }
        }
        if (rc != DSL_OK) {
            struct dsa_completion_record *cr = (struct dsa_completion_record *)(uintptr_t)d.completion_addr;
            if (cr && rc == DSL_EQUEUE_FULL)
                emu_publish(cr, DSA_COMP_HW_ERR1);
        }
        if (stopping(e))
            break;
    }
    return NULL;
}

int dsl_emu_serve_fd(dsl_device *dev, int fd)
{
    if (!dev || dev->backend != DSL_BACKEND_EMU || fd < 0)
        return DSL_EINVAL;
    struct emu *e = (struct emu *)dev;
    if (e->reader_started)
        return DSL_EINVAL;
    e->serve_fd = fd;
    if (pthread_create(&e->reader, NULL, reader_main, e) != 0)
        return DSL_ENOMEM;
    e->reader_started = 1;
    return DSL_OK;
}
