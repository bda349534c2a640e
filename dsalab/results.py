"""Result datasets in and out of files: :func:`write` (validated, atomic, durable), :func:`read`,
:func:`open_files` (also ``results.open``: one file, a glob or a list, combined over ``run``), provenance and the
default path. The layout itself is :mod:`dsalab.schema`; every name of it is re-exported here, so
``results.METRICS``, ``results.build_dataset``, ``results.validate`` ... keep working.

Files are netCDF-4 written with the h5netcdf engine (int64 kept) under
``data/results/<hostname>/<date>-<sweep>-<commit8>.nc`` (:func:`default_path`).
"""

from __future__ import annotations

import os
import pathlib
import socket
from collections.abc import Sequence
from typing import Any

import numpy as np

from dsalab.schema import (  # noqa: F401 (re-exported: the schema's names were results')
    _STRING_FILL,
    FLAG_METRICS,
    INT_METRICS,
    METRICS,
    READABLE_VERSIONS,
    RESERVED_DIMS,
    SCHEMA_VERSION,
    STRING_VARS,
    SchemaError,
    TrialRecord,
    build_dataset,
    coord_value,
    long_name,
    param_dims,
    units,
    upgrade,
    validate,
)


def provenance() -> dict[str, str | int | float]:
    """Flat, netCDF-safe provenance of this machine and build (see :func:`dsalab.machine.flat_info`)."""
    from dsalab import machine

    return {f"machine_{k}" if not k.startswith(("git_", "dsalab_")) else k: v for k, v in machine.flat_info().items()}


def write_trial(result, path):
    """Write one TrialResult as netCDF (h5netcdf) with provenance attributes; returns the path."""
    ds = result.to_dataset()
    ds.attrs.update(provenance())
    return write(ds, path)


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
        ds = upgrade(ds)  # metrics added since the file was written: "not recorded"
        validate(ds)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from None
    return ds


def open_files(path_or_glob: str | pathlib.Path | Sequence[str | pathlib.Path]):
    """Open result files: one path, a glob (``"data/results/*/*-quick-*.nc"``) or a list of paths.

    One file gives its dataset as written. Several give one dataset with a ``run`` dimension (coordinate: the
    file names without ``.nc``), parameter coordinates joined (points a file lacks are "not run"), attributes
    equal in every file kept, and attributes that differ (host, date, commit, ...) as ``run_<name>``
    variables over ``run``. Files must sweep the same parameters. Also importable as ``dsalab.results.open``.
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
    """Several result datasets as one over a new ``run`` dimension (see :func:`open_files`)."""
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


def __getattr__(name: str):
    """``results.open``: the public name of :func:`open_files`, kept without shadowing the builtin in this module."""
    if name == "open":
        return open_files
    raise AttributeError(f"module 'dsalab.results' has no attribute {name!r}")
