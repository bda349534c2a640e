"""The result dataset schema: what every variable is called, its unit and its long name (views of the one metric
table, :mod:`dsalab.metrics`), how trials become an ``xarray.Dataset``, and how a dataset is checked. Files (write,
read, open, combine) are :mod:`dsalab.results`, which re-exports every name here.

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
- combined datasets (:func:`open_files` of several files) gain a ``run`` dimension (one per file); provenance that
  differs between files becomes ``run_<attribute>`` variables over ``run``.

``TrialResult.to_dataset`` (one trial) and the sweep layer (many trials) both build datasets from here;
:func:`validate` checks the layout on :func:`write` and on :func:`read`. Files are netCDF-4 written with the
h5netcdf engine (int64 kept) under ``data/results/<hostname>/<date>-<sweep>-<commit8>.nc`` (:func:`default_path`).
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dsalab import metrics as _metrics
from dsalab.errors import DsalabError
from dsalab.threads import thread_order

#: version of the dataset layout; changes:
#: 1 - first version: scalar metrics of one trial, thread_cpu_ms over the "thread" dimension
#: 2 - datasets of many trials: one dimension per swept parameter + repeat; status/error/backend/worker
#: 3 - sweep provenance attributes (sweep_file, sweep_name, seed, ...); validate() on write and read; the ``run``
#:     dimension and run_<attribute> variables of combined datasets
#: 4 - busy_threads and cores per trial (how many threads shared how many cores); older files are read with
#:     both 0, "not recorded" (:func:`upgrade`)
SCHEMA_VERSION = 4
#: versions :func:`read` accepts (2 has the same variables, without sweep provenance; 2 and 3 lack the metrics
#: of :data:`dsalab.metrics.ADDED_LATER`, which :func:`upgrade` adds)
READABLE_VERSIONS = (2, 3, 4)

#: metric name -> (units, long name); every variable of a result dataset is listed here (a view of the one table
#: :data:`dsalab.metrics.TABLE`)
METRICS: dict[str, tuple[str, str]] = {m.name: (m.units, m.long_name) for m in _metrics.TABLE}


def units(name: str) -> str:
    """Units of a metric."""
    return _metrics.BY_NAME[name].units


def long_name(name: str) -> str:
    """Long name of a metric."""
    return _metrics.BY_NAME[name].long_name


#: metrics stored as int64 (-1 where a trial failed)
INT_METRICS = _metrics.INT_NAMES
#: metrics stored as int8 flags (1/0, -1 where a trial failed)
FLAG_METRICS = _metrics.FLAG_NAMES
#: per-trial string variables
STRING_VARS: dict[str, str] = {
    "status": "ok, or failed (then see error)",
    "error": "why the trial failed (empty when ok)",
    "backend": "what found the zero pages: cpu-numba, cpu-native, dsa-emulated, dsa-hardware, qemu, model",
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
        strings["backend"][pos] = str(r.backend)
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


class SchemaError(DsalabError, ValueError):
    """A dataset does not follow the result schema; the message lists what is wrong."""


#: dimensions that are not swept parameters
RESERVED_DIMS = ("run", "repeat", "thread")
#: what each string variable of a failed, never-run point holds (also the fill of combined datasets)
_STRING_FILL = {"status": "failed", "error": "not run", "backend": "", "worker": ""}


def param_dims(ds) -> list[str]:
    """Swept parameter dimensions of a result dataset, in order (``run``, ``repeat``, ``thread`` left out)."""
    return [d for d in ds["status"].dims if d not in RESERVED_DIMS]


def upgrade(ds):
    """``ds`` with every metric of :data:`dsalab.metrics.ADDED_LATER` it lacks (a file written before the metric
    existed) added over the trial dimensions: the "not recorded" value where a trial ran, -1 where it failed;
    a dataset that has them all is returned as it is. Run before :func:`validate` on what is read."""
    missing = [name for name in _metrics.ADDED_LATER if name not in ds]
    if not missing or "status" not in ds:
        return ds
    ds = ds.copy()
    ok = np.asarray(ds["status"].values == "ok")
    for name in missing:
        values = np.where(ok, _metrics.ADDED_LATER[name], -1).astype(np.int64)
        ds[name] = (ds["status"].dims, values, {"units": units(name), "long_name": long_name(name)})
    return ds


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
