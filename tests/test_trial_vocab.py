"""The vocabulary modules: one size formatter, backend names, thread roles, Trial's table of field rules."""

from __future__ import annotations

import numpy as np
import pytest

from dsalab.backends import DETECTORS, Backend, Runner, is_cpu, is_dsa
from dsalab.errors import InvalidArgument
from dsalab.trial import FIELD_RULES, Trial
from dsalab.units import format_bytes


@pytest.mark.parametrize(
    ("n", "text", "whole"),
    [
        (4 << 30, "4.0 GiB", "4 GiB"),
        (3 << 29, "1.5 GiB", "1.5 GiB"),
        (512 << 10, "512.0 KiB", "512 KiB"),
        (100, "100 B", "100 B"),
        (0, "0 B", "0 B"),
        (1 << 40, "1.0 TiB", "1 TiB"),
    ],
)
def test_format_bytes(n, text, whole):
    assert format_bytes(n) == text
    assert format_bytes(n, whole=True) == whole


def test_result_table_formats_sizes_with_the_one_formatter():
    from dsalab.result import TrialResult

    fields = {f: 0 for f in TrialResult.__dataclass_fields__}
    fields.update(
        trial=Trial(guest_bytes=3 << 29, packet_bytes="256KiB"),
        backend="cpu-native",
        thread_cpu_ms={"live_migration": 1.0},
        fallback_pages_by_reason={},
        channel_stats=[],
        converged=True,
        verified=True,
    )
    r = TrialResult(**fields)
    head = r.table().splitlines()[0]
    assert head.startswith("cpu-native: 1.5 GiB guest, normal_ratio 0.5, 2 channels, packet 256 KiB")


def test_backend_names():
    assert Backend("dsa-emulated") is Backend.DSA_EMULATED and Backend.QEMU == "qemu" and Runner.ENGINE == "engine"
    assert [is_dsa(d) for d in DETECTORS] == [False, False, True, True]
    assert [is_cpu(d) for d in DETECTORS] == [True, True, False, False]
    assert Backend.DSA_HARDWARE.is_dsa and Backend.CPU_NUMBA.is_cpu and not Backend.QEMU.is_cpu
    assert Trial(detector=Backend.CPU_NATIVE).detector == "cpu-native"
    assert type(Trial(detector=Backend.CPU_NATIVE).detector) is str  # stored plain, as in datasets


def test_trial_rules_run_in_a_fixed_order_page_size_first():
    assert list(FIELD_RULES)[:2] == ["guest_bytes", "page_size"]
    t = Trial(page_size=8192, guest_bytes="1MiB", packet_bytes="64KiB", devices=["emu", "emu:gbps=5"])
    assert (t.guest_bytes, t.packet_bytes, t.devices) == (1 << 20, 64 << 10, ("emu", "emu:gbps=5"))
    with pytest.raises(InvalidArgument, match=r"packet_bytes=4096 is not allowed: allowed is a multiple of page_size"):
        Trial(page_size=8192, packet_bytes=4096)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("channels", np.int64(8)),
        ("seed", np.uint64(5)),
        ("huge_pages", np.bool_(True)),
        ("normal_ratio", np.float32(1)),
    ],
)
def test_numpy_scalars_are_taken_and_stored_as_python_values(field, value):
    stored = getattr(Trial(**{field: value}), field)
    assert stored == value and type(stored) in (int, float, bool)
