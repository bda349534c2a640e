/* Hardware DSA work queues (/dev/dsa/wqX.Y): the portal (MOVDIR64B for dedicated queues, ENQCMD for shared ones)
 * where this process may map it, write() of 64-byte descriptors where it may not (since Linux 6.10 and its
 * stable backports, mapping the portal needs CAP_SYS_RAWIO). On the write() path the kernel refuses batch
 * descriptors: such a device has max_batch 0 and the offload layer sends single descriptors. */
#include "dsa.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define PORTAL_BYTES 4096
#define SYSFS_MAX_COUNT 65536   /* a sysfs size or max_batch_size above this is not believed */
#define DEFAULT_WQ_SIZE 128     /* the queue size assumed where sysfs does not say (or says nonsense) */

struct hwq {
    struct dsl_device base;
    int fd;
    int own_fd;
    void *portal;
};

static int hw_submit(dsl_device *dev, const struct dsa_hw_desc *desc)
{
    struct hwq *q = (struct hwq *)dev;
    int rc;
    if (q->portal) {
        _mm_sfence(); /* the descriptor and its completion record are in memory before the device reads them */
        if (dev->shared)
            rc = dsl_portal_enqcmd(q->portal, desc) ? DSL_EQUEUE_FULL : DSL_OK;
        else {
            dsl_portal_movdir64b(q->portal, desc);
            rc = DSL_OK;
        }
    } else if (desc->opcode == DSA_OPCODE_BATCH) {
        rc = DSL_EINVAL; /* the kernel's write() path refuses batch descriptors */
    } else {
        ssize_t n;
        do
            n = write(q->fd, desc, DSL_DESC_BYTES);
        while (n < 0 && errno == EINTR);
        if (n == DSL_DESC_BYTES)
            rc = DSL_OK;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EBUSY))
            rc = DSL_EQUEUE_FULL;
        else if (n < 0 && (errno == ENODEV || errno == ENXIO || errno == EPIPE || errno == EBADF))
            rc = DSL_EGONE;
        else
            rc = DSL_EIO;
    }
    if (rc == DSL_OK)
        __atomic_add_fetch(&dev->submitted, 1, __ATOMIC_RELAXED);
    else if (rc == DSL_EQUEUE_FULL)
        __atomic_add_fetch(&dev->refused_full, 1, __ATOMIC_RELAXED);
    else if (rc == DSL_EGONE) {
        __atomic_add_fetch(&dev->refused_gone, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&dev->gone, 1, __ATOMIC_RELEASE);
    }
    return rc;
}

static void hw_close(dsl_device *dev)
{
    struct hwq *q = (struct hwq *)dev;
    if (q->portal)
        munmap(q->portal, PORTAL_BYTES);
    if (q->own_fd && q->fd >= 0)
        close(q->fd);
    free(q);
}

static const struct dsl_device_ops hw_ops = {hw_submit, hw_close};

/* "dir/name" into buf; -1 if it does not fit */
static int join(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int read_attr(const char *dir, const char *name, char *buf, size_t len)
{
    char path[4096];
    if (join(path, sizeof path, dir, name) != 0)
        return -1;
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* 1 if name is a work queue's name, wq<digits>.<digits> */
static int queue_name_ok(const char *name)
{
    const char *p = name;
    if (strncmp(p, "wq", 2) != 0)
        return 0;
    p += 2;
    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p++ != '.' || !isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p))
        p++;
    return *p == '\0';
}

/* 1 if the open file fd is the character device that sysfs (char_root/MAJ:MIN/uevent) names dsa/<name> */
static int is_idxd_queue(int fd, const char *char_root, const char *name)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode))
        return 0;
    char entry[64], dir[4096], uevent[1024], want[256];
    snprintf(entry, sizeof entry, "%u:%u", major(st.st_rdev), minor(st.st_rdev));
    char path[4096];
    if (join(dir, sizeof dir, char_root, entry) != 0 || join(path, sizeof path, dir, "uevent") != 0)
        return 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(uevent, 1, sizeof uevent - 1, f);
    fclose(f);
    uevent[n] = '\0';
    int wn = snprintf(want, sizeof want, "DEVNAME=dsa/%s", name);
    if (wn < 0 || (size_t)wn >= sizeof want)
        return 0;
    size_t wl = (size_t)wn;
    for (const char *line = uevent; line && *line;) {
        if (strncmp(line, want, wl) == 0 && (line[wl] == '\n' || line[wl] == '\0'))
            return 1;
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return 0;
}

static struct hwq *new_hwq(const char *name, int fd, int own_fd, int shared, int wq_size)
{
    struct hwq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->base.ops = &hw_ops;
    q->base.backend = DSL_BACKEND_HW;
    q->base.shared = shared;
    q->base.wq_size = wq_size;
    q->fd = fd;
    q->own_fd = own_fd;
    snprintf(q->base.name, sizeof q->base.name, "%s", name);
    return q;
}

int dsl_hw_open(const char *path, const char *sysfs_root, const char *char_root, int force_write, dsl_device **out)
{
    *out = NULL;
    if (!path || !sysfs_root || !char_root)
        return DSL_EINVAL;
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    if (!queue_name_ok(name))
        return DSL_EINVAL;
    char dir[4096], buf[64];
    if (join(dir, sizeof dir, sysfs_root, name) != 0)
        return DSL_EINVAL;
    /* never created, truncated or made our terminal; O_NONBLOCK so that opening whatever is there cannot block.
     * Nothing is written or mapped before fstat and sysfs say it is the idxd driver's dsa/<name>. */
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT || errno == ENODEV || errno == ENXIO || errno == ENOTDIR ? DSL_ENODEV
               : errno == EACCES || errno == EPERM                                      ? DSL_EPERM
                                                                                        : DSL_EIO;
    if (!is_idxd_queue(fd, char_root, name)) {
        close(fd);
        return DSL_EINVAL;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        close(fd);
        return DSL_EIO;
    }
    int shared = 1, wq_size = 0, max_batch = 0;
    if (read_attr(dir, "mode", buf, sizeof buf) == 0)
        shared = strcmp(buf, "dedicated") != 0;
    if (read_attr(dir, "size", buf, sizeof buf) == 0)
        wq_size = atoi(buf);
    if (read_attr(dir, "max_batch_size", buf, sizeof buf) == 0)
        max_batch = atoi(buf);
    if (wq_size < 1 || wq_size > SYSFS_MAX_COUNT)
        wq_size = DEFAULT_WQ_SIZE;
    if (max_batch < 0 || max_batch > SYSFS_MAX_COUNT)
        max_batch = 0;
    struct hwq *q = new_hwq(name, fd, 1, shared, wq_size);
    if (!q) {
        close(fd);
        return DSL_ENOMEM;
    }
    int isa = dsl_built_with_portal_isa() && dsl_cpu_has(shared ? "enqcmd" : "movdir64b") == 1;
    if (!force_write && isa) {
        void *p = mmap(NULL, PORTAL_BYTES, PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (p != MAP_FAILED)
            q->portal = p;
    }
    q->base.submit_path = q->portal ? DSL_SUBMIT_PORTAL : DSL_SUBMIT_WRITE;
    q->base.max_batch = q->portal ? (max_batch >= 2 ? max_batch : 32) : 0;
    *out = &q->base;
    return DSL_OK;
}

int dsl_hw_open_fd(int fd, int shared, int wq_size, const char *name, dsl_device **out)
{
    *out = NULL;
    if (fd < 0 || wq_size < 1)
        return DSL_EINVAL;
    struct hwq *q = new_hwq(name ? name : "fd", fd, 0, shared, wq_size);
    if (!q)
        return DSL_ENOMEM;
    q->base.submit_path = DSL_SUBMIT_WRITE;
    q->base.max_batch = 0;
    *out = &q->base;
    return DSL_OK;
}
