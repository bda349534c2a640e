/* The parts of <linux/idxd.h> that dsalab uses, laid out identically (DSA specification, rev. 2.0), for builds
 * where the header is missing. tests/test_dsa_layout.py checks sizes and offsets against the specification. */
#ifndef DSL_IDXD_COMPAT_H
#define DSL_IDXD_COMPAT_H
#include <stdint.h>

#define IDXD_OP_FLAG_FENCE 0x0001
#define IDXD_OP_FLAG_BOF 0x0002
#define IDXD_OP_FLAG_CRAV 0x0004
#define IDXD_OP_FLAG_RCR 0x0008

enum dsa_opcode {
    DSA_OPCODE_NOOP = 0,
    DSA_OPCODE_BATCH,
    DSA_OPCODE_DRAIN,
    DSA_OPCODE_MEMMOVE,
    DSA_OPCODE_MEMFILL,
    DSA_OPCODE_COMPARE,
    DSA_OPCODE_COMPVAL,
};

enum dsa_completion_status {
    DSA_COMP_NONE = 0,
    DSA_COMP_SUCCESS,
    DSA_COMP_SUCCESS_PRED,
    DSA_COMP_PAGE_FAULT_NOBOF,
    DSA_COMP_PAGE_FAULT_IR,
    DSA_COMP_BATCH_FAIL,
    DSA_COMP_BATCH_PAGE_FAULT,
    DSA_COMP_DR_OFFSET_NOINC,
    DSA_COMP_DR_OFFSET_ERANGE,
    DSA_COMP_DIF_ERR,
    DSA_COMP_BAD_OPCODE = 0x10,
    DSA_COMP_INVALID_FLAGS,
    DSA_COMP_NOZERO_RESERVE,
    DSA_COMP_XFER_ERANGE,
    DSA_COMP_DESC_CNT_ERANGE,
    DSA_COMP_DR_ERANGE,
    DSA_COMP_OVERLAP_BUFFERS,
    DSA_COMP_DCAST_ERR,
    DSA_COMP_DESCLIST_ALIGN,
    DSA_COMP_INT_HANDLE_INVAL,
    DSA_COMP_CRA_XLAT,
    DSA_COMP_CRA_ALIGN,
    DSA_COMP_ADDR_ALIGN,
    DSA_COMP_PRIV_BAD,
    DSA_COMP_TRAFFIC_CLASS_CONF,
    DSA_COMP_PFAULT_RDBA,
    DSA_COMP_HW_ERR1,
    DSA_COMP_HW_ERR_DRB,
    DSA_COMP_TRANSLATION_FAIL,
};

#define DSA_COMP_STATUS_MASK 0x7f

struct dsa_hw_desc {
    uint32_t pasid : 20;
    uint32_t rsvd : 11;
    uint32_t priv : 1;
    uint32_t flags : 24;
    uint32_t opcode : 8;
    uint64_t completion_addr;
    union {
        uint64_t src_addr;
        uint64_t desc_list_addr;
    };
    union {
        uint64_t dst_addr;
        uint64_t src2_addr;
        uint64_t comp_pattern;
    };
    union {
        uint32_t xfer_size;
        uint32_t desc_count;
    };
    uint16_t int_handle;
    uint16_t rsvd1;
    uint8_t op_specific[24];
} __attribute__((packed));

struct dsa_completion_record {
    volatile uint8_t status;
    uint8_t result;
    uint16_t rsvd;
    uint32_t bytes_completed;
    uint64_t fault_addr;
    uint8_t op_specific[16];
} __attribute__((packed));
#endif
