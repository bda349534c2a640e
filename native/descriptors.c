/* Descriptor builders and the layout of <linux/idxd.h>'s descriptor and completion record, shared by every
 * device (emulated or hardware) and by the tests, which check the layout against the DSA specification. */
#include "dsa.h"

#include <string.h>

static void desc_common(struct dsa_hw_desc *d, int opcode, struct dsa_completion_record *cr)
{
    memset(d, 0, sizeof *d);
    d->opcode = (uint32_t)opcode;
    d->flags = IDXD_OP_FLAG_CRAV | IDXD_OP_FLAG_RCR; /* completion record requested; no block-on-fault */
    d->completion_addr = (uint64_t)(uintptr_t)cr;
}

void dsl_desc_compval(struct dsa_hw_desc *d, const void *src, uint32_t len, uint64_t pattern,
                      struct dsa_completion_record *cr)
{
    desc_common(d, DSA_OPCODE_COMPVAL, cr);
    d->src_addr = (uint64_t)(uintptr_t)src;
    d->comp_pattern = pattern;
    d->xfer_size = len;
}

void dsl_desc_compare(struct dsa_hw_desc *d, const void *a, const void *b, uint32_t len,
                      struct dsa_completion_record *cr)
{
    desc_common(d, DSA_OPCODE_COMPARE, cr);
    d->src_addr = (uint64_t)(uintptr_t)a;
    d->src2_addr = (uint64_t)(uintptr_t)b;
    d->xfer_size = len;
}

void dsl_desc_batch(struct dsa_hw_desc *d, const struct dsa_hw_desc *list, uint32_t count,
                    struct dsa_completion_record *cr)
{
    desc_common(d, DSA_OPCODE_BATCH, cr);
    d->desc_list_addr = (uint64_t)(uintptr_t)list;
    d->desc_count = count;
}

size_t dsl_desc_size(void) { return sizeof(struct dsa_hw_desc); }
size_t dsl_cr_size(void) { return sizeof(struct dsa_completion_record); }

/* Offsets of the fields the spec fixes (checked against the specification by the tests). */
long dsl_layout(const char *field)
{
    static struct dsa_hw_desc d;
    static struct dsa_completion_record c;
    const char *base_d = (const char *)&d, *base_c = (const char *)&c;
    if (!strcmp(field, "desc.completion_addr"))
        return (const char *)&d.completion_addr - base_d;
    if (!strcmp(field, "desc.src_addr"))
        return (const char *)&d.src_addr - base_d;
    if (!strcmp(field, "desc.desc_list_addr"))
        return (const char *)&d.desc_list_addr - base_d;
    if (!strcmp(field, "desc.dst_addr"))
        return (const char *)&d.dst_addr - base_d;
    if (!strcmp(field, "desc.src2_addr"))
        return (const char *)&d.src2_addr - base_d;
    if (!strcmp(field, "desc.comp_pattern"))
        return (const char *)&d.comp_pattern - base_d;
    if (!strcmp(field, "desc.xfer_size"))
        return (const char *)&d.xfer_size - base_d;
    if (!strcmp(field, "desc.desc_count"))
        return (const char *)&d.desc_count - base_d;
    if (!strcmp(field, "desc.int_handle"))
        return (const char *)&d.int_handle - base_d;
    if (!strcmp(field, "cr.status"))
        return (const char *)&c.status - base_c;
    if (!strcmp(field, "cr.result"))
        return (const char *)&c.result - base_c;
    if (!strcmp(field, "cr.bytes_completed"))
        return (const char *)&c.bytes_completed - base_c;
    if (!strcmp(field, "cr.fault_addr"))
        return (const char *)&c.fault_addr - base_c;
    return -1;
}

/* The word holding opcode (bits 31:24) and flags (bits 23:0), at byte 4 of a descriptor. */
uint32_t dsl_desc_word1(const void *desc)
{
    uint32_t w;
    memcpy(&w, (const uint8_t *)desc + 4, 4);
    return w;
}
