"""The one package that touches the compiled ``dsalab._native`` (``ffi`` and ``lib``); only its
:mod:`~dsalab._binding.native` module imports them.

Every other module calls the small typed wrappers here. A non-zero native status becomes an exception from
:mod:`dsalab.errors`; the C status codes are mirrored by :class:`Status`, and the other C enumerations (completion
modes, device backends, submit paths, injected faults) by ``IntEnum``s whose values come from native/dsl.h through
the cdef. At import, the ABI version and the source hash the module was built from are checked, so that a stale
build (for example in a Jupyter kernel started before ``make``) fails loudly instead of misbehaving.

Modules: :mod:`~dsalab._binding.native` (the import, the build check, enumerations, :func:`check`),
:mod:`~dsalab._binding.facts` (build and CPU facts), :mod:`~dsalab._binding.kernels` (CPU kernels, guest fill),
:mod:`~dsalab._binding.multifd` (the migration engine), :mod:`~dsalab._binding.dsa` (devices, descriptors,
the offload layer).
"""

from __future__ import annotations

from dsalab._binding.dsa import (
    DEVICE_INFO_FIELDS,
    OFFLOAD_STAT_FIELDS,
    RawRequest,
    device_close,
    device_info,
    emu_open,
    emu_serve_fd,
    hw_open,
    hw_open_fd,
    layout,
    offload_close,
    offload_compare_pages,
    offload_create,
    offload_destroy,
    offload_detect_fn_address,
    offload_stats,
    offload_zero_pages,
    umwait_supported,
)
from dsalab._binding.facts import build_facts, cpu_has, kernel_isa, set_kernel_isa, set_thread_name
from dsalab._binding.kernels import (
    compare_pages,
    fill_pages,
    find_zero_pages,
    find_zero_pages_with,
    is_zero,
    native_zero_fn_address,
    or_reduce,
)
from dsalab._binding.multifd import CHANNEL_STAT_FIELDS, MigrationEngine
from dsalab._binding.native import (
    _ABI_VERSION,
    COMPLETION_MODES,
    FAULT_MODES,
    SUBMIT_PATHS,
    CompletionMode,
    DeviceBackend,
    FaultMode,
    Status,
    SubmitPath,
    build_id,
    check,
    check_build,
    ffi,
    lib,
    source_build_id,
)

__all__ = [
    "CHANNEL_STAT_FIELDS",
    "COMPLETION_MODES",
    "DEVICE_INFO_FIELDS",
    "FAULT_MODES",
    "OFFLOAD_STAT_FIELDS",
    "SUBMIT_PATHS",
    "_ABI_VERSION",
    "CompletionMode",
    "DeviceBackend",
    "FaultMode",
    "MigrationEngine",
    "RawRequest",
    "Status",
    "SubmitPath",
    "build_facts",
    "build_id",
    "check",
    "check_build",
    "compare_pages",
    "cpu_has",
    "device_close",
    "device_info",
    "emu_open",
    "emu_serve_fd",
    "ffi",
    "fill_pages",
    "find_zero_pages",
    "find_zero_pages_with",
    "hw_open",
    "hw_open_fd",
    "is_zero",
    "kernel_isa",
    "layout",
    "lib",
    "native_zero_fn_address",
    "offload_close",
    "offload_compare_pages",
    "offload_create",
    "offload_destroy",
    "offload_detect_fn_address",
    "offload_stats",
    "offload_zero_pages",
    "or_reduce",
    "set_kernel_isa",
    "set_thread_name",
    "source_build_id",
    "umwait_supported",
]
