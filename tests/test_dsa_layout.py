"""Descriptors and completion records are <linux/idxd.h>'s, laid out as the DSA specification says."""

from __future__ import annotations

from dsalab import _binding

#: DSA specification (rev 2.0), section 8: field offsets in bytes
SPEC = {
    "desc.size": 64,
    "desc.completion_addr": 8,
    "desc.src_addr": 16,
    "desc.desc_list_addr": 16,
    "desc.dst_addr": 24,
    "desc.src2_addr": 24,
    "desc.comp_pattern": 24,
    "desc.xfer_size": 32,
    "desc.desc_count": 32,
    "desc.int_handle": 36,
    "cr.size": 32,
    "cr.status": 0,
    "cr.result": 1,
    "cr.bytes_completed": 4,
    "cr.fault_addr": 8,
}
DSA_OPCODE_BATCH, DSA_OPCODE_COMPARE, DSA_OPCODE_COMPVAL = 1, 5, 6
CRAV, RCR, BOF = 0x4, 0x8, 0x2


def test_layout_matches_the_specification():
    assert _binding.layout() == SPEC


def test_cffi_sees_the_same_sizes():
    assert _binding.ffi.sizeof("struct dsa_hw_desc") == 64
    assert _binding.ffi.sizeof("struct dsa_completion_record") == 32
    assert _binding.ffi.offsetof("struct dsa_completion_record", "bytes_completed") == 4


def test_descriptor_opcode_and_flags():
    import numpy as np

    page = np.zeros(4096, dtype=np.uint8)
    zero = _binding.RawRequest("compval", [page, page])
    w = zero.word1()
    assert w >> 24 == DSA_OPCODE_COMPVAL
    flags = w & 0xFFFFFF
    assert flags & CRAV and flags & RCR and not flags & BOF  # completion record requested, no block-on-fault
    assert zero.word1(batch=True) >> 24 == DSA_OPCODE_BATCH
    assert _binding.RawRequest("compare", [page], [page]).word1() >> 24 == DSA_OPCODE_COMPARE


def test_build_facts_say_whether_the_hardware_path_is_compiled():
    facts = _binding.build_facts()
    assert isinstance(facts["built_with_portal_isa"], bool) and isinstance(facts["built_with_idxd_h"], bool)
