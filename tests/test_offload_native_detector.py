"""Offloader.native_detector(): the public entry point the multifd engine uses (it called two private methods)."""

from __future__ import annotations

import numpy as np
import pytest

from dsalab import _binding
from dsalab.errors import InvalidArgument
from dsalab.offload import NativeDetector, Offloader

pytestmark = pytest.mark.timeout(60)


def test_native_detector_is_callable_from_native_code_and_ends_with_close():
    from dsalab._binding import ffi

    buf = np.zeros(16 * 4096, dtype=np.uint8)
    buf[3 * 4096 + 100] = 1
    buf[9 * 4096 + 4095] = 7
    off = Offloader(["emu:engines=1"], batch_size=4)
    try:
        native = off.native_detector()
        assert isinstance(native, NativeDetector) and native.fn_address != 0 and native.ctx is not None
        fn = ffi.cast("dsl_detect_fn", native.fn_address)
        out = np.zeros(16, dtype=np.uint8)
        st = fn(native.ctx, ffi.from_buffer(buf), 16, 4096, ffi.cast("uint8_t *", ffi.from_buffer(out)), -1)
        assert st == _binding.Status.OK
        assert np.array_equal(out.astype(bool), off.find_zero_pages(buf))
        assert sorted(np.flatnonzero(out == 0)) == [3, 9]
    finally:
        off.close()
    with pytest.raises(InvalidArgument, match="closed"):
        off.native_detector()
