"""The native boundary: stale-build detection, status codes as typed exceptions, build facts."""

from __future__ import annotations

import pathlib
import re

import pytest

from dsalab import _binding, errors


def test_abi_mismatch_says_rebuild_and_restart():
    with pytest.raises(errors.StaleBuildError, match=r"rebuild.*restart the Python kernel"):
        _binding.check_build(_binding._ABI_VERSION + 1, _binding.build_id())
    assert issubclass(errors.StaleBuildError, ImportError)


def test_stale_sources_detected(tmp_path, monkeypatch):
    monkeypatch.delenv("DSALAB_ALLOW_STALE", raising=False)
    with pytest.raises(errors.StaleBuildError, match="built from other native sources"):
        _binding.check_build(_binding._ABI_VERSION, "0123456789abcdef", source_id="fedcba9876543210")
    monkeypatch.setenv("DSALAB_ALLOW_STALE", "1")
    _binding.check_build(_binding._ABI_VERSION, "0123456789abcdef", source_id="fedcba9876543210")


def test_loaded_module_matches_checkout():
    native = pathlib.Path(_binding.__file__).resolve().parents[2] / "native"
    assert _binding.source_build_id(native) == _binding.build_id()
    assert _binding.source_build_id(pathlib.Path("/nonexistent")) is None


def test_build_id_changes_with_sources(tmp_path):
    (tmp_path / "a.c").write_text("int a;")
    first = _binding.source_build_id(tmp_path)
    (tmp_path / "a.c").write_text("int b;")
    assert _binding.source_build_id(tmp_path) != first


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (_binding.Status.EINVAL, ValueError),
        (_binding.Status.ENOMEM, MemoryError),
        (_binding.Status.ENODEV, FileNotFoundError),
        (_binding.Status.EQUEUE_FULL, errors.QueueFull),
        (_binding.Status.EGONE, errors.DeviceGone),
        (_binding.Status.ETIMEDOUT, TimeoutError),
        (_binding.Status.EIO, OSError),
        (_binding.Status.EUNSUPPORTED, errors.Unsupported),
        (_binding.Status.EPERM, PermissionError),
    ],
)
def test_status_to_exception(status, exc):
    with pytest.raises(exc, match=f"doing it: {status.name}") as info:
        _binding.check(status, "doing it")
    assert isinstance(info.value, errors.DsalabError)
    assert info.value.status == status


def test_ok_and_unknown_status():
    _binding.check(0, "fine")
    with pytest.raises(errors.NativeError, match="unknown native status 999"):
        _binding.check(999, "odd")


def test_native_call_error_is_typed():
    """A status returned by a real native call becomes the typed exception."""
    import numpy as np

    with pytest.raises(errors.NativeInvalidArgument, match="find_zero_pages"):
        _binding.find_zero_pages(np.zeros(4096, dtype=np.uint8), 100, 1)


def test_build_facts():
    facts = _binding.build_facts()
    assert facts["native_abi"] == _binding._ABI_VERSION
    assert facts["kernel_isa"] in ("avx512", "avx2", "scalar")
    assert isinstance(facts["built_with_portal_isa"], bool)
    with pytest.raises(ValueError, match="unknown CPU feature 'sse9'"):
        _binding.cpu_has("sse9")
    with pytest.raises(ValueError, match="unknown kernel ISA"):
        _binding.set_kernel_isa("mmx")


# ---------------------------------------------------------------- enumerations from the C header (issue 10)

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _header_defines(prefix: str) -> dict[str, int]:
    """The ``#define DSL_<prefix>_* <int>`` lines of native/dsl.h."""
    text = (ROOT / "native" / "dsl.h").read_text()
    return {m[1]: int(m[2]) for m in re.finditer(rf"^#define (DSL_{prefix}_[A-Z0-9_]+) (\d+)", text, flags=re.M)}


@pytest.mark.parametrize(
    ("enum_name", "prefix"),
    [("CompletionMode", "COMPLETION"), ("DeviceBackend", "BACKEND"), ("SubmitPath", "SUBMIT"), ("FaultMode", "FAULT")],
)
def test_enumerations_come_from_the_header(enum_name, prefix):
    """Each C enumeration the Python side uses is an IntEnum with one member per DSL_<prefix>_* define, valued by
    the compiler through the cdef (no hand-written copy of the numbers)."""
    enum = getattr(_binding, enum_name)
    defines = _header_defines(prefix)
    assert defines, f"no DSL_{prefix}_* in native/dsl.h"
    assert sorted(m.value for m in enum) == sorted(defines.values())
    for name, value in defines.items():
        assert getattr(_binding.lib, name) == value
        assert enum(value).value == value


def test_name_tables_are_derived_from_the_enumerations():
    assert _binding.COMPLETION_MODES == {"thread": 1, "poll": 2, "umwait": 3}
    assert all(isinstance(v, _binding.CompletionMode) for v in _binding.COMPLETION_MODES.values())
    assert _binding.SUBMIT_PATHS == {
        _binding.lib.DSL_SUBMIT_PORTAL: "portal",
        _binding.lib.DSL_SUBMIT_WRITE: "write",
        _binding.lib.DSL_SUBMIT_RING: "emulated",
    }
    assert _binding.FAULT_MODES == {
        "receiver-exit": _binding.lib.DSL_FAULT_RECEIVER_EXIT,
        "receiver-reset": _binding.lib.DSL_FAULT_RECEIVER_RESET,
        "receiver-stall": _binding.lib.DSL_FAULT_RECEIVER_STALL,
    }


#: a dict literal that maps one of the native enumerations' names to a number, or a number to one (a hand mirror)
_MIRROR = re.compile(
    r"""["'](?:thread|poll|umwait|portal|write|emulated|receiver-(?:exit|reset|stall))["']\s*:\s*\d"""
    r"""|\b\d\s*:\s*["'](?:portal|write|emulated)["']"""
)


def test_no_hand_written_mirror_of_the_native_numbers():
    found = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in sorted((ROOT / "dsalab").rglob("*.py"))
        for m in _MIRROR.finditer(p.read_text())
    ]
    assert not found, found


def test_unused_native_exports_are_gone():
    for name in ("dsl_mig_dirtier_tid", "dsl_offload_device_count"):
        assert not hasattr(_binding.lib, name), name


def test_bad_fault_mode_is_refused_by_the_engine():
    """dsl_mig_create refuses a fail_mode outside DSL_FAULT_* (it used to be ignored)."""
    import socket

    import numpy as np

    pairs = [socket.socketpair() for _ in range(1)]
    try:
        mem = np.zeros(4 * 4096, dtype=np.uint8)
        kw = dict(zero_fn_address=_binding.native_zero_fn_address(), io_timeout_ms=1000, fail_channel=0)
        send = [a.fileno() for a, _ in pairs]
        recv = [b.fileno() for _, b in pairs]
        for bad in (-1, 4, 99):  # DSL_FAULT_* are 0..3
            try:
                engine = _binding.MigrationEngine(mem, mem.copy(), 4096, send, recv, 2, fail_mode=bad, **kw)
            except errors.NativeInvalidArgument:
                continue
            engine.destroy()
            pytest.fail(f"fail_mode={bad} was accepted")
    finally:
        for a, b in pairs:
            a.close()
            b.close()


# ---------------------------------------------------------------- sizes (issue 10: files that mix jobs)


def test_native_sources_and_binding_modules_are_small():
    big = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for pattern, limit in (("native/*.[ch]", 500), ("dsalab/_binding/*.py", 400))
        for p in sorted(ROOT.glob(pattern))
        if (n := len(p.read_text().splitlines())) > limit
    ]
    assert not big, big
    assert not (ROOT / "dsalab" / "_binding.py").exists()


def test_only_the_native_module_imports_ffi_and_lib():
    importers = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "dsalab").rglob("*.py"))
        if re.search(r"^\s*from dsalab\._native import|^\s*import dsalab\._native", p.read_text(), flags=re.M)
    ]
    assert importers == ["dsalab/_binding/native.py"]


def test_native_limits_are_the_python_limits():
    """One limit per quantity: the C checks use the limits dsalab.validate and dsalab.device_spec state."""
    from dsalab import device_spec, validate

    lib = _binding.lib
    assert validate.MAX_BATCH_SIZE == lib.DSL_MAX_BATCH_SIZE
    assert device_spec.EMU_KEYS["engines"][2] == lib.DSL_EMU_MAX_ENGINES
    assert device_spec.EMU_KEYS["wq_size"][2] == lib.DSL_MAX_WQ_SIZE
    assert device_spec.EMU_KEYS["max_batch"][2] == lib.DSL_EMU_MAX_BATCH


def test_native_offload_refuses_a_batch_beyond_the_spec():
    dev = _binding.emu_open(engines=1, wq_size=16, shared=1, max_batch=32)
    try:
        cfg = dict(completion=_binding.CompletionMode.POLL, timeout_ns=10**9, max_retries=1)
        for bad in (0, _binding.lib.DSL_MAX_BATCH_SIZE + 1, 4096):
            with pytest.raises(errors.NativeInvalidArgument):
                _binding.offload_create([dev], batch_size=bad, **cfg)
        _binding.offload_destroy(_binding.offload_create([dev], batch_size=_binding.lib.DSL_MAX_BATCH_SIZE, **cfg))
    finally:
        _binding.device_close(dev)
