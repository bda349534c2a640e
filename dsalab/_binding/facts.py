"""Build and CPU facts of the native module, the kernels' code path, thread names."""

from __future__ import annotations

from dsalab import errors
from dsalab._binding.native import Status, build_id, check, ffi, lib


def build_facts() -> dict[str, bool | int | str]:
    """What the native module was compiled with."""
    return {
        "native_abi": int(lib.dsl_abi_version()),
        "native_build_id": build_id(),
        "built_with_idxd_h": bool(lib.dsl_built_with_idxd_h()),
        "built_with_portal_isa": bool(lib.dsl_built_with_portal_isa()),
        "built_with_waitpkg": bool(lib.dsl_built_with_waitpkg()),
        "kernel_isa": ffi.string(lib.dsl_kernel_isa()).decode(),
    }


def cpu_has(feature: str) -> bool:
    """Run-time CPU feature test (CPUID): avx2, avx512f, avx512bw, enqcmd, movdir64b, waitpkg."""
    r = lib.dsl_cpu_has(feature.encode())
    if r < 0:
        raise errors.InvalidArgument(
            f"unknown CPU feature {feature!r}; allowed: avx2, avx512f, avx512bw, enqcmd, movdir64b, waitpkg"
        )
    return bool(r)


def set_kernel_isa(isa: str) -> None:
    """Force the native kernels' code path: "avx512", "avx2", "scalar" or "auto" (tests use this)."""
    st = lib.dsl_set_kernel_isa(isa.encode())
    if st == Status.EINVAL:
        raise errors.InvalidArgument(f"unknown kernel ISA {isa!r}; allowed: auto, avx512, avx2, scalar")
    check(st, f"set_kernel_isa({isa!r})")


def kernel_isa() -> str:
    """The native kernels' code path in use."""
    return ffi.string(lib.dsl_kernel_isa()).decode()


def set_thread_name(name: str) -> None:
    """Name the calling OS thread (what /proc/self/task/*/comm shows; 15 characters at most)."""
    check(lib.dsl_set_thread_name(name.encode()), f"set_thread_name({name!r})")
