/* The generic device entry points: every device (emulated, emu.c; hardware work queue, hwq.c) is reached
 * through its struct dsl_device_ops. */
#include "dsa.h"

#include <string.h>

int dsl_device_submit(dsl_device *dev, const void *desc)
{
    if (!dev || !desc)
        return DSL_EINVAL;
    return dev->ops->submit(dev, (const struct dsa_hw_desc *)desc);
}

void dsl_device_close(dsl_device *dev)
{
    if (dev)
        dev->ops->close(dev);
}

int dsl_device_get_info(dsl_device *dev, dsl_device_info *out)
{
    if (!dev || !out)
        return DSL_EINVAL;
    memset(out, 0, sizeof *out);
    out->backend = dev->backend;
    out->submit_path = dev->submit_path;
    out->id = dev->id;
    out->shared = dev->shared;
    out->wq_size = dev->wq_size;
    out->max_batch = dev->max_batch;
    out->submitted = __atomic_load_n(&dev->submitted, __ATOMIC_RELAXED);
    out->refused_full = __atomic_load_n(&dev->refused_full, __ATOMIC_RELAXED);
    out->refused_gone = __atomic_load_n(&dev->refused_gone, __ATOMIC_RELAXED);
    out->busy_ns = __atomic_load_n(&dev->busy_ns, __ATOMIC_RELAXED);
    if (dev->ops->info)
        dev->ops->info(dev, out); /* the counters only this kind of device keeps */
    out->gone = __atomic_load_n(&dev->gone, __ATOMIC_RELAXED);
    return DSL_OK;
}
