"""The result dataset schema: one place that says what every metric is called, its unit and its long name,
and how trials become an ``xarray.Dataset``.

Layout of a result dataset (:func:`build_dataset`):

- dimensions: one per swept parameter, named as the :class:`~dsalab.migration.Trial` field (``normal_ratio``,
  ``packet_bytes``, ``batch_size``, ``devices``, ``channels``, ``detector``, ...), then ``repeat``, and
  ``thread`` for ``thread_cpu_ms``;
- variables: every metric of :data:`METRICS` over (parameters..., repeat), with ``units`` and ``long_name``;
  floats are NaN and integers -1 where a trial failed; ``verified`` and ``converged`` are int8 (1/0, -1 failed);
  ``status`` ("ok"/"failed"), ``error``, ``backend`` and ``worker`` (host that ran the trial) are strings;
- attributes: ``schema_version`` and flat provenance (str/int/float only, nested values as JSON strings):
  machine, versions, git commit and dirty flag, date (:func:`provenance`), and for sweeps the sweep file's
  content, name, seed, repeats, warm-ups, runner and scheduler (:func:`dsalab.sweep.sweep_attrs`);
- combined datasets (:func:`open` of several files) gain a ``run`` dimension (one per file); provenance that
  differs between files becomes ``run_<attribute>`` variables over ``run``.

``TrialResult.to_dataset`` (one trial) and the sweep layer (many trials) both build datasets from here;
:func:`validate` checks the layout on :func:`write` and on :func:`read`. Files are netCDF-4 written with the
h5netcdf engine (int64 kept) under ``data/results/<hostname>/<date>-<sweep>-<commit8>.nc`` (:func:`default_path`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dsalab.errors import DsalabError

#: version of the dataset layout; changes:
#: 1 - first version: scalar metrics of one trial, thread_cpu_ms over the "thread" dimension
#: 2 - datasets of many trials: one dimension per swept parameter + repeat; status/error/backend/worker
#: 3 - sweep provenance attributes (sweep_file, sweep_name, seed, ...); validate() on write and read; the ``run``
#:     dimension and run_<attribute> variables of combined datasets
SCHEMA_VERSION = 3
#: versions :func:`read` accepts (2 has the same variables, without sweep provenance)
READABLE_VERSIONS = (2, 3)

#: metric name -> (units, long name); every variable of a result dataset is listed here
METRICS: dict[str, tuple[str, str]] = {
    "total_time_ms": ("ms", "total migration time (setup included)"),
    "setup_time_ms": ("ms", "setup time"),
    "downtime_ms": ("ms", "downtime (final phase with the guest stopped)"),
    "throughput_mbps": ("Mbit/s", "throughput (bytes on the wire over total time)"),
    "transferred_bytes": ("bytes", "bytes transferred (headers and payload)"),
    "total_bytes": ("bytes", "guest RAM"),
    "zero_pages": ("pages", "pages found zero"),
    "normal_pages": ("pages", "pages found normal (non-zero)"),
    "forced_normal_pages": ("pages", "zero pages sent as normal (force_normal_ratio)"),
    "pages_sent": ("pages", "pages sent, every round"),
    "iterations": ("rounds", "pre-copy rounds (final phase included)"),
    "dirty_sync_count": ("syncs", "dirty bitmap syncs"),
    "dirtied_pages": ("pages", "pages the guest dirtied during migration"),
    "converged": ("1", "pre-copy converged within the downtime limit"),
    "host_cpu_ms": ("ms", "host CPU, source side (live_migration + multifdsend_* + dsa_completion)"),
    "destination_cpu_ms": ("ms", "destination CPU (multifdrecv_*)"),
    "device_cpu_ms": ("ms", "emulated device engines' CPU (device time, run on the host)"),
    "device_busy_ms": ("ms", "device busy time (timing model or hardware)"),
    "guest_cpu_ms": ("ms", "guest dirtying thread CPU"),
    "host_cpu_ms_per_gb": ("ms/GB", "host CPU per GB of guest RAM migrated"),
    "detect_cpu_ms": ("ms", "sender CPU in zero-page detection"),
    "send_cpu_ms": ("ms", "sender CPU in sendmsg"),
    "sender_cpu_ms": ("ms", "sender threads' CPU"),
    "packet_overhead_fraction": ("1", "sender CPU outside detection and sending, fraction"),
    "packets": ("packets", "multifd packets"),
    "pages_offloaded": ("pages", "pages checked by the DSA device"),
    "fallback_pages": ("pages", "pages the CPU checked instead of the device (all reasons)"),
    "queue_full_retries": ("retries", "submissions refused because the work queue was full"),
    "page_faults": ("faults", "device page faults (partial completions)"),
    "verified": ("1", "destination equals source, byte for byte"),
    "mismatched_pages": ("pages", "destination pages that differ from the source"),
    "thread_cpu_ms": ("ms", "CPU time per thread"),
}


def units(name: str) -> str:
    """Units of a metric."""
    return METRICS[name][0]


def long_name(name: str) -> str:
    """Long name of a metric."""
    return METRICS[name][1]


#: metrics stored as int64 (-1 where a trial failed)
INT_METRICS = frozenset(
    {
        "transferred_bytes",
        "total_bytes",
        "zero_pages",
        "normal_pages",
        "forced_normal_pages",
        "pages_sent",
        "iterations",
        "dirty_sync_count",
        "dirtied_pages",
        "packets",
        "pages_offloaded",
        "fallback_pages",
        "queue_full_retries",
        "page_faults",
        "mismatched_pages",
    }
)
#: metrics stored as int8 flags (1/0, -1 where a trial failed)
FLAG_METRICS = frozenset({"verified", "converged"})
#: per-trial string variables
STRING_VARS: dict[str, str] = {
    "status": "ok, or failed (then see error)",
    "error": "why the trial failed (empty when ok)",
    "backend": "what found the zero pages: cpu-numba, cpu-native, dsa-emulated, dsa-hardware, qemu",
    "worker": "host that ran the trial",
}


@dataclasses.dataclass
class TrialRecord:
    """One trial of a sweep: its swept parameter values, repeat index, and result or error."""

    params: dict[str, Any]
    repeat: int
    result: Any = None  # a TrialResult when the trial succeeded
    error: str = ""
    worker: str = dataclasses.field(default_factory=socket.gethostname)


def _coord_values(values: Sequence[Any]) -> np.ndarray:
    """A coordinate array: strings as object arrays (what netCDF round trips), numbers as int64/float64."""
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    if all(isinstance(v, bool | np.bool_) for v in values):
        return np.array(values, dtype=np.int8)
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=np.float64)


def coord_value(value: Any) -> Any:
    """A parameter value as it appears in a coordinate (tuples of device specs become ";"-joined strings)."""
    if isinstance(value, tuple | list):
        return ";".join(str(v) for v in value)
    return value


def build_dataset(
    records: Sequence[TrialRecord],
    coords: Mapping[str, Sequence[Any]],
    repeats: int,
    attrs: Mapping[str, str | int | float] | None = None,
):
    """The dataset of many trials (layout in the module docstring).

    Parameters
    ----------
    records : one per (parameter point, repeat) that ran; points missing from ``records`` stay failed/NaN
    coords : swept parameter -> its values, in the order the dimensions should have
    repeats : number of repeats (the ``repeat`` dimension is 0..repeats-1)
    attrs : provenance attributes to add
    """
    import xarray as xr

    from dsalab.migration.accounting import thread_order

    dims = [*coords, "repeat"]
    coord_arrays = {k: _coord_values([coord_value(v) for v in vals]) for k, vals in coords.items()}
    coord_arrays["repeat"] = np.arange(repeats, dtype=np.int64)
    shape = tuple(len(coord_arrays[d]) for d in dims)
    index = {k: {coord_value(v): i for i, v in enumerate(vals)} for k, vals in coords.items()}
    threads = sorted({n for r in records if r.result is not None for n in r.result.thread_cpu_ms}, key=thread_order)
    data: dict[str, np.ndarray] = {}
    for name in METRICS:
        if name == "thread_cpu_ms":
            continue
        if name in INT_METRICS:
            data[name] = np.full(shape, -1, dtype=np.int64)
        elif name in FLAG_METRICS:
            data[name] = np.full(shape, -1, dtype=np.int8)
        else:
            data[name] = np.full(shape, np.nan)
    strings = {name: np.full(shape, "", dtype=object) for name in STRING_VARS}
    strings["status"][...] = "failed"
    strings["error"][...] = "not run"
    thread_cpu = np.full((*shape, len(threads)), np.nan)
    for rec in records:
        pos = (*tuple(index[k][coord_value(rec.params[k])] for k in coords), rec.repeat)
        strings["worker"][pos] = rec.worker
        if rec.result is None:
            strings["error"][pos] = rec.error or "failed"
            continue
        r = rec.result
        strings["status"][pos] = "ok"
        strings["error"][pos] = ""
        strings["backend"][pos] = r.backend
        for name, value in r.metrics().items():
            data[name][pos] = value
        for t, name in enumerate(threads):
            if name in r.thread_cpu_ms:
                thread_cpu[(*pos, t)] = r.thread_cpu_ms[name]
    data_vars: dict[str, Any] = {name: (dims, arr) for name, arr in data.items()}
    data_vars.update({name: (dims, arr) for name, arr in strings.items()})
    data_vars["thread_cpu_ms"] = ([*dims, "thread"], thread_cpu)
    ds = xr.Dataset(data_vars, coords=coord_arrays | {"thread": np.array(threads, dtype=object)})
    for name in METRICS:
        ds[name].attrs.update(units=units(name), long_name=long_name(name))
    for name, text in STRING_VARS.items():
        ds[name].attrs.update(long_name=text)
    ds.attrs["schema_version"] = SCHEMA_VERSION
    if attrs:
        ds.attrs.update(attrs)
    return ds


def provenance() -> dict[str, str | int | float]:
    """Flat, netCDF-safe provenance of this machine and build (see :func:`dsalab.machine.flat_info`)."""
    from dsalab import machine

    return {f"machine_{k}" if not k.startswith(("git_", "dsalab_")) else k: v for k, v in machine.flat_info().items()}


def write_trial(result, path):
    """Write one TrialResult as netCDF (h5netcdf) with provenance attributes; returns the path."""
    ds = result.to_dataset()
    ds.attrs.update(provenance())
    return write(ds, path)


class SchemaError(DsalabError, ValueError):
    """A dataset does not follow the result schema; the message lists what is wrong."""


#: dimensions that are not swept parameters
RESERVED_DIMS = ("run", "repeat", "thread")
#: what each string variable of a failed, never-run point holds (also the fill of combined datasets)
_STRING_FILL = {"status": "failed", "error": "not run", "backend": "", "worker": ""}


def param_dims(ds) -> list[str]:
    """Swept parameter dimensions of a result dataset, in order (``run``, ``repeat``, ``thread`` left out)."""
    return [d for d in ds["status"].dims if d not in RESERVED_DIMS]


def validate(ds) -> None:
    """Check that ``ds`` follows the result schema; raise :class:`SchemaError` listing every problem.

    Checked: the schema version; every metric of :data:`METRICS` and every string variable is present over the
    same dimensions (``repeat`` among them, plus ``thread`` for ``thread_cpu_ms``) with its ``units`` and
    ``long_name``; integer metrics are int64 and flags int8; every dimension has a coordinate; ``status`` holds
    only "ok"/"failed"; attributes are str, int or float (what netCDF stores).
    """
    problems: list[str] = []
    version = ds.attrs.get("schema_version")
    if not isinstance(version, int | np.integer) or int(version) not in READABLE_VERSIONS:
        problems.append(f"schema_version is {version!r}; this dsalab reads {', '.join(map(str, READABLE_VERSIONS))}")
    if "status" not in ds:
        raise SchemaError("not a dsalab result dataset: no 'status' variable")
    dims = tuple(ds["status"].dims)
    if "repeat" not in dims:
        problems.append(f"status has dimensions {dims}; 'repeat' is missing")
    for name in [*METRICS, *STRING_VARS]:
        if name not in ds:
            problems.append(f"variable {name} is missing")
            continue
        var = ds[name]
        want = (*dims, "thread") if name == "thread_cpu_ms" else dims
        if set(var.dims) != set(want):
            problems.append(f"{name} has dimensions {var.dims}; expected {want}")
        if name in METRICS:
            for key, value in (("units", units(name)), ("long_name", long_name(name))):
                if var.attrs.get(key) != value:
                    problems.append(f"{name}.attrs[{key!r}] is {var.attrs.get(key)!r}; expected {value!r}")
            if name in INT_METRICS and var.dtype != np.int64:
                problems.append(f"{name} is {var.dtype}; expected int64")
            elif name in FLAG_METRICS and var.dtype != np.int8:
                problems.append(f"{name} is {var.dtype}; expected int8")
            elif name not in INT_METRICS | FLAG_METRICS and var.dtype.kind != "f":
                problems.append(f"{name} is {var.dtype}; expected a float")
    for d in ds.dims:
        if d not in ds.coords:
            problems.append(f"dimension {d} has no coordinate")
    if "status" in ds:
        bad = {str(v) for v in np.unique(ds["status"].values.astype(str))} - {"ok", "failed"}
        if bad:
            problems.append(f"status holds {sorted(bad)}; allowed: ok, failed")
    for key, value in ds.attrs.items():
        if not isinstance(value, str | int | float | np.integer | np.floating) or isinstance(value, bool):
            problems.append(f"attribute {key} is a {type(value).__name__}; netCDF attributes are str, int or float")
    if problems:
        raise SchemaError("result dataset does not follow the schema: " + "; ".join(problems))


def write(ds, path: str | pathlib.Path) -> pathlib.Path:
    """Validate ``ds`` and write it as netCDF-4 (h5netcdf engine, int64 kept); returns the path.

    Durable and atomic: the data go to a uniquely named temporary file in the same directory (so concurrent writers
    never share one), which is fsynced, renamed over ``path``, and then the directory is fsynced. When this
    returns the result survives a power cut; until then ``path`` holds its old content (or nothing). A failed write
    leaves no temporary file behind.
    """
    import tempfile

    path = pathlib.Path(path)
    validate(ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = pathlib.Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result file gets the usual permissions
        ds.to_netcdf(tmp, engine="h5netcdf")
        _fsync_path(tmp)
        os.replace(tmp, path)  # never leave a half-written result under the final name
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_path(path.parent, directory=True)
    return path


def _fsync_path(path: pathlib.Path, *, directory: bool = False) -> None:
    """fsync a file's data, or a directory's entries (``directory=True``)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    """This process's umask, read without changing it (Linux ``/proc/self/status``; 0o022 where unknown)."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def read(path: str | pathlib.Path):
    """Load one result file into memory (the file is closed) and validate it.

    A file that is not netCDF-4/HDF5, is truncated, or is netCDF without dsalab's layout raises
    :class:`SchemaError` naming the file and what is wrong (whatever the bytes in it).
    """
    import xarray as xr

    try:
        import h5py

        with h5py.File(path, "r") as f:  # not HDF5, or a root that cannot be read: fail here, before h5netcdf
            dict(f.attrs)  # half-builds a File whose __del__ then raises
        ds = xr.load_dataset(path, engine="h5netcdf")
    except MemoryError:
        raise
    except Exception as exc:  # a foreign or damaged file: h5py/h5netcdf/xarray raise many types, all mean "unreadable"
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise SchemaError(f"{path}: cannot be read as a netCDF-4 result file written by dsalab ({reason})") from None
    try:
        validate(ds)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from None
    return ds


def open(path_or_glob: str | pathlib.Path | Sequence[str | pathlib.Path]):
    """Open result files: one path, a glob (``"data/results/*/*-quick-*.nc"``) or a list of paths.

    One file gives its dataset as written. Several give one dataset with a ``run`` dimension (coordinate: the
    file names without ``.nc``), parameter coordinates joined (points a file lacks are "not run"), attributes
    equal in every file kept, and attributes that differ (host, date, commit, ...) as ``run_<name>``
    variables over ``run``. Files must sweep the same parameters.
    """
    import glob as globmod

    if isinstance(path_or_glob, str | pathlib.Path):
        text = str(path_or_glob)
        paths = sorted(globmod.glob(text)) if any(c in text for c in "*?[") else [text]
    else:
        paths = [str(p) for p in path_or_glob]
    if not paths:
        raise SchemaError(f"no result files match {path_or_glob!s}")
    missing = [p for p in paths if not pathlib.Path(p).is_file()]
    if missing:
        raise SchemaError(f"no result file {missing[0]}: give a netCDF file written by dsalab, or a glob of them")
    datasets = [read(p) for p in paths]
    if len(datasets) == 1:
        return datasets[0]
    return combine(datasets, [pathlib.Path(p).name.removesuffix(".nc") for p in paths])


def combine(datasets: Sequence[Any], names: Sequence[str]):
    """Several result datasets as one over a new ``run`` dimension (see :func:`open`)."""
    import pandas as pd
    import xarray as xr

    if len(set(names)) != len(names):
        raise SchemaError(f"run names must differ, got {list(names)}")
    dims0 = param_dims(datasets[0])
    for name, ds in zip(names, datasets, strict=True):
        if "run" in ds.dims:
            raise SchemaError(f"{name} is already a combined dataset (it has a run dimension)")
        if set(param_dims(ds)) != set(dims0):
            raise SchemaError(
                f"{name} sweeps {param_dims(ds)} but {names[0]} sweeps {dims0}; only files sweeping the same "
                "parameters combine"
            )
    keys = {k for ds in datasets for k in ds.attrs}
    common, differing = {}, []
    for k in sorted(keys):
        values = [ds.attrs.get(k) for ds in datasets]
        if all(v is not None and type(v) is type(values[0]) and v == values[0] for v in values):
            common[k] = values[0]
        else:
            differing.append(k)
    fill: dict[str, Any] = dict(_STRING_FILL)
    for name in METRICS:
        fill[name] = -1 if name in INT_METRICS | FLAG_METRICS else np.nan
    stripped = [ds.drop_attrs(deep=False) for ds in datasets]
    out = xr.concat(
        stripped,
        dim=pd.Index(list(names), name="run"),
        join="outer",
        fill_value=fill,
        data_vars="all",
        coords="different",
        compat="equals",
        combine_attrs="override",
    )
    for name in METRICS:
        if name in INT_METRICS:
            out[name] = out[name].astype(np.int64)
        elif name in FLAG_METRICS:
            out[name] = out[name].astype(np.int8)
    for k in differing:
        values = [ds.attrs.get(k, "") for ds in datasets]
        if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            arr = np.array(values, dtype=np.int64)
        elif all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values):
            arr = np.array(values, dtype=np.float64)
        else:
            arr = np.array([str(v) for v in values], dtype=object)
        out[f"run_{k}"] = ("run", arr)
    out["run"] = ("run", np.array(list(names), dtype=object))
    out.attrs = dict(common)
    out.attrs["schema_version"] = SCHEMA_VERSION
    validate(out)
    return out


def default_path(
    sweep_name: str, *, root: str | pathlib.Path = "data/results", when=None, commit: str = ""
) -> pathlib.Path:
    """Where a sweep's result goes: ``<root>/<hostname>/<date>-<sweep>-<commit8>.nc``.

    ``date`` is UTC ``YYYY-MM-DDTHHMMSS`` (sortable, one file per run); ``commit`` defaults to this checkout's git
    commit ("unknown" outside a checkout).
    """
    import datetime

    when = when or datetime.datetime.now(datetime.UTC)
    if not commit:
        from dsalab import machine

        commit = str(machine.git()["git_commit"])
    return pathlib.Path(root) / socket.gethostname() / f"{when:%Y-%m-%dT%H%M%S}-{sweep_name}-{commit[:8]}.nc"
