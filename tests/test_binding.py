"""The native boundary: stale-build detection, status codes as typed exceptions, build facts."""

from __future__ import annotations

import pathlib

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
