"""Descriptors and completion records are <linux/idxd.h>'s, laid out as the DSA specification says."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sysconfig

import pytest

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


# ---------------------------------------------------------------- builds without <linux/idxd.h>

NATIVE = pathlib.Path(__file__).resolve().parent.parent / "native"
#: every name of <linux/idxd.h> the native sources use, so idxd_compat.h must define each, with the same value
_IDXD_NAME = re.compile(r"\b(?:DSA_COMP|DSA_OPCODE|IDXD_OP_FLAG)_[A-Z0-9_]+\b")


def _cc() -> str:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    if not shutil.which(cc.split()[0]):
        pytest.skip(f"no C compiler ({cc})")
    return cc


@pytest.mark.timeout(120)
def test_every_source_compiles_with_the_compat_header(tmp_path):
    """Without <linux/idxd.h> (DSL_HAVE_IDXD_H unset) the sources build against native/idxd_compat.h."""
    cc = _cc().split()
    for src in sorted(NATIVE.glob("*.c")):
        r = subprocess.run(
            [*cc, "-std=gnu11", "-fsyntax-only", "-I", str(NATIVE), str(src)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, f"{src.name}: {r.stderr}"


@pytest.mark.timeout(120)
def test_compat_header_values_match_the_kernel_header(tmp_path):
    if not pathlib.Path("/usr/include/linux/idxd.h").exists():
        pytest.skip("no <linux/idxd.h> to compare with")
    names = sorted({m for p in NATIVE.glob("*.c") for m in _IDXD_NAME.findall(p.read_text())})
    assert "DSA_COMP_HW_ERR1" in names and "DSA_OPCODE_COMPVAL" in names
    cc = _cc().split()
    values = []
    for header in ("<linux/idxd.h>", f'"{NATIVE / "idxd_compat.h"}"'):
        prog = tmp_path / "probe.c"
        prints = "".join(f'    printf("%s %ld\\n", "{n}", (long)({n}));\n' for n in names)
        prog.write_text(f"#include <stdio.h>\n#include {header}\nint main(void)\n{{\n{prints}    return 0;\n}}\n")
        exe = tmp_path / "probe"
        subprocess.run([*cc, str(prog), "-o", str(exe)], check=True, capture_output=True, timeout=60)
        values.append(subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=30).stdout)
    assert values[0] == values[1]
