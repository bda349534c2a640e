"""What this machine is and what dsalab was built with: the provenance every result carries.

One function per concern, merged into one flat dict (pyperf's ``_collect_metadata`` idea).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys

from dsalab import _binding, discovery

#: CPU flags that matter here: vector widths of the kernels, the DSA submission instructions, UMWAIT
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512bw", "enqcmd", "movdir64b", "waitpkg")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries whose behaviour shapes results."""
    out = {"python_version": platform.python_version()}
    for dist in ("dsalab", "numpy", "numba", "llvmlite", "cffi", "xarray", "dask"):
        out[f"{dist}_version"] = _version(dist)
    return out


def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu() -> dict[str, str | int | bool]:
    """CPU model, core counts and the relevant flags (from CPUID, which /proc/cpuinfo may hide)."""
    ci = _cpuinfo()
    proc_flags = set(ci.get("flags", "").split())
    out: dict[str, str | int | bool] = {
        "cpu_model": ci.get("model name", platform.processor() or "unknown"),
        "cpu_count": os.cpu_count() or 1,
        "cpu_affinity": len(os.sched_getaffinity(0)),
    }
    present = []
    for flag in RELEVANT_FLAGS:
        has = _binding.cpu_has(flag) or flag in proc_flags
        out[f"cpu_has_{flag}"] = has
        if has:
            present.append(flag)
    out["cpu_flags"] = ",".join(present)
    return out


def memory() -> dict[str, int]:
    """Total memory, bytes."""
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return {"memory_bytes": int(line.split()[1]) * 1024}
    except OSError:
        pass
    return {"memory_bytes": 0}


def system() -> dict[str, str]:
    """Kernel, OS and host name."""
    return {
        "kernel": platform.release(),
        "os": platform.platform(),
        "hostname": socket.gethostname(),
        "python_executable": sys.executable,
    }


def git() -> dict[str, str | bool]:
    """Commit of the dsalab checkout and whether it has uncommitted changes ("unknown" outside a checkout)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {"git_commit": "unknown", "git_dirty": False}
    if commit.returncode != 0:
        return {"git_commit": "unknown", "git_dirty": False}
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


def dsa() -> dict[str, object]:
    """DSA devices and work queues found in sysfs and /dev/dsa."""
    queues = discovery.work_queues()
    return {
        "dsa_devices": discovery.devices(),
        "dsa_work_queues": [dataclasses.asdict(q) for q in queues],
    }


def info() -> dict[str, object]:
    """Everything above in one dict: versions, CPU, memory, system, native build, git, DSA, date."""
    out: dict[str, object] = {}
    for part in (versions(), cpu(), memory(), system(), _binding.build_facts(), git(), dsa()):
        out.update(part)
    out["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return out


def flat_info() -> dict[str, str | int | float]:
    """:func:`info` with only str/int/float values (netCDF-safe): bools as 0/1, lists as JSON strings."""
    out: dict[str, str | int | float] = {}
    for key, value in info().items():
        if isinstance(value, bool):
            out[key] = int(value)
        elif isinstance(value, str | int | float):
            out[key] = value
        else:
            out[key] = json.dumps(value, sort_keys=True)
    return out
