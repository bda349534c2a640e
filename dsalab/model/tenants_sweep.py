"""Grids of tenant scenarios (``runner = "model"``): tenants, devices, queue size, queue mode, policy (and any other
argument of :func:`dsalab.model.tenants_config.scenario`) as sweep parameters; independent points run serially or
on a Dask cluster (a ``dask.distributed.Client``: local, or a scheduler's address), one point per task.

A tenants sweep file (``data/sweeps/tenants/*.toml``; kept apart from the engine's sweep files)::

    [sweep]
    name = "tenants-devices"
    runner = "model"                                # the tenant model is a model: no other runner
    kind = "tenants"
    hardware = "data/hardware/spr-8457c-dsa.toml"   # relative to the current directory, else to this file

    [base]                                          # scenario() arguments every point shares
    guest = "1GiB"
    tenants = 100

    [params]                                        # one dimension each, in this order
    devices = [1, 2, 4, 8]
    policy = ["fifo", "quota"]

The dataset (:func:`grid`) has one dimension per parameter; for each per-tenant metric of
:data:`dsalab.model.tenants_data.SUMMARY` its average over tenants (``<metric>_mean``) and its worst tenant
(``<metric>_worst``); the pooled queueing delay (``queue_delay_mean_us``, ``_p99_us``, ``_max_us``);
``fallback_share``, ``fairness_jain``, ``makespan_ms``, ``device_utilisation_mean``, ``cores_needed``,
``host_stretch``; ``status``/``error`` per point
(a refused point is recorded, not raised); attributes as a single run's, plus the sweep file.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import tomllib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dsalab.errors import DsalabError, SweepFileError
from dsalab.model.profile import HardwareProfile, load
from dsalab.model.tenants_config import scenario
from dsalab.model.tenants_data import SUMMARY, TENANT_VARS, summary, to_dataset

#: arguments of scenario() a point may set (``profile`` is the sweep's)
PARAMS = (
    "tenants", "guest", "devices", "policy", "normal_ratio", "channels", "packet", "batch_size", "arrival",
    "interval_ms", "priorities", "groups", "wq_size", "wq_mode", "engines", "max_retries", "pause_ns", "quota",
    "time_bins", "seed",
)  # fmt: skip
#: scalar outputs of a point beside the per-tenant metrics -> (units, long name)
POINT_VARS = {
    "queue_delay_mean_us": ("us", "queueing delay of a batch, mean over every batch"),
    "queue_delay_p99_us": ("us", "queueing delay of a batch, 99th percentile over every batch"),
    "queue_delay_max_us": ("us", "queueing delay of a batch, worst batch"),
    "fallback_share": ("1", "share of pages checked on the CPU"),
    "fairness_jain": ("1", "Jain's fairness index of tenant speed"),
    "makespan_ms": ("ms", "time until the last migration ends"),
    "device_utilisation_mean": ("1", "device utilisation, mean over devices and time"),
    "cores_needed": ("1", "host cores the tenants' CPU needs over the makespan (before stretching)"),
    "host_stretch": ("1", "factor the host's cores or memory bandwidth stretch every migration by"),
}


def point(profile: HardwareProfile, params: Mapping[str, Any]) -> dict[str, Any]:
    """Simulate one point; returns {"values": {name: number}, "error": ""} or the error (never raises for a bad
    point, so one refused configuration does not stop a sweep). This is what Dask workers run."""
    from dsalab.model.tenants_sim import simulate

    try:
        sc = scenario(profile=profile, **params)
        ds = to_dataset(simulate(sc, profile), provenance=False)
    except DsalabError as exc:
        return {"values": {}, "error": f"{type(exc).__name__}: {exc}"}
    values: dict[str, float] = {}
    for name in SUMMARY:
        v = ds[name].values.astype(float)
        values[f"{name}_mean"], values[f"{name}_worst"] = float(v.mean()), float(v.max())
    q = ds["queue_delay_all_us"]
    for s in ("mean", "p99", "max"):
        values[f"queue_delay_{s}_us"] = float(q.sel(statistic=s))
    for name in ("fallback_share", "fairness_jain", "makespan_ms", "cores_needed", "host_stretch"):
        values[name] = float(ds[name])
    values["device_utilisation_mean"] = float(ds["device_utilisation"].mean())
    return {"values": values, "error": ""}


def grid(
    profile: HardwareProfile | str | os.PathLike[str],
    params: Mapping[str, Sequence[Any]],
    *,
    base: Mapping[str, Any] | None = None,
    client: Any = None,
    progress: Callable[[int, int], None] | None = None,
    attrs: Mapping[str, str | int | float] | None = None,
):
    """Every combination of ``params`` (name -> values, one dimension each) on top of ``base``, simulated on
    ``profile``; serially, or on ``client``'s Dask workers. ``progress(done, total)`` after each point."""
    import xarray as xr

    prof = load(profile)
    unknown = sorted((set(params) | set(base or {})) - set(PARAMS))
    if unknown:
        raise SweepFileError(f"tenants sweep: unknown parameters {unknown}; allowed: {', '.join(PARAMS)}")
    names = list(params)
    points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(params[n] for n in names))]
    todo = [{**(base or {}), **p} for p in points]
    if client is None:
        outcomes = []
        for i, p in enumerate(todo):
            outcomes.append(point(prof, p))
            if progress:
                progress(i + 1, len(todo))
    else:
        from distributed import as_completed

        futures = client.map(point, [prof] * len(todo), todo, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        got: dict[int, dict] = {}
        for fut in as_completed(futures):
            try:
                got[index[fut.key]] = fut.result()
            except Exception as exc:  # a worker died: record the point as failed, go on
                got[index[fut.key]] = {"values": {}, "error": f"dask: {type(exc).__name__}: {exc}"}
            if progress:
                progress(len(got), len(todo))
        outcomes = [got[i] for i in range(len(todo))]
    shape = tuple(len(params[n]) for n in names)
    keys = [f"{m}_{s}" for m in SUMMARY for s in ("mean", "worst")] + list(POINT_VARS)
    data = {k: np.full(len(todo), np.nan) for k in keys}
    status = np.array(["ok" if not o["error"] else "failed" for o in outcomes], dtype=object)
    error = np.array([o["error"] for o in outcomes], dtype=object)
    for i, o in enumerate(outcomes):
        for k, v in o["values"].items():
            data[k][i] = v
    coords = {n: _coord(params[n]) for n in names}
    ds = xr.Dataset({k: (names, v.reshape(shape)) for k, v in data.items()}, coords=coords)
    ds["status"] = (names, status.reshape(shape))
    ds["error"] = (names, error.reshape(shape))
    for m in SUMMARY:
        u, ln = TENANT_VARS[m]
        ds[f"{m}_mean"].attrs.update(units=u, long_name=f"{ln}, average over tenants")
        ds[f"{m}_worst"].attrs.update(units=u, long_name=f"{ln}, worst tenant")
    for k, (u, ln) in POINT_VARS.items():
        ds[k].attrs.update(units=u, long_name=ln)
    ds["status"].attrs["long_name"] = "ok, or failed (then see error)"
    ds["error"].attrs["long_name"] = "why the point failed (empty when ok)"
    ds.attrs.update(
        backend="model", runner="model", kind="tenants", profile_name=prof.name, profile_path=str(prof.path),
        profile_toml=prof.to_toml(), base=repr(dict(base or {})), swept=",".join(names),
        scheduler="serial" if client is None else "dask", points_failed=int((status == "failed").sum()),
    )  # fmt: skip
    ds.attrs.update(attrs or {})
    return ds


def _coord(values: Sequence[Any]) -> np.ndarray:
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.float64)
    return np.array([repr(v) for v in values], dtype=object)


def read_file(path: str | os.PathLike[str]) -> tuple[HardwareProfile, dict[str, list], dict[str, Any], dict]:
    """(profile, params, base, attrs) of a tenants sweep file (layout in the module docstring); errors name the
    file, the key and what is allowed."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except FileNotFoundError:
        raise SweepFileError(f"tenants sweep file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepFileError(f"tenants sweep file {path}: not valid TOML: {exc}") from None
    head = doc.get("sweep", {})
    extra = sorted(set(doc) - {"sweep", "base", "params"})
    if extra:
        raise SweepFileError(f"tenants sweep file {path}: unknown tables {extra}; allowed: sweep, base, params")
    if head.get("runner", "model") != "model":
        raise SweepFileError(f"{path}: sweep.runner={head.get('runner')!r} is not allowed; allowed: model")
    if head.get("kind", "tenants") != "tenants":
        raise SweepFileError(f"{path}: sweep.kind={head.get('kind')!r} is not allowed; allowed: tenants")
    hw = head.get("hardware")
    if not isinstance(hw, str) or not hw:
        raise SweepFileError(f'{path}: sweep.hardware is missing; give the profile: hardware = "data/hardware/..."')
    hw_path = pathlib.Path(hw) if pathlib.Path(hw).exists() else path.parent / hw
    params = doc.get("params", {})
    if not params or not all(isinstance(v, list) and v for v in params.values()):
        raise SweepFileError(f"{path}: [params] needs one or more parameters, each a non-empty list of values")
    base = doc.get("base", {})
    for key in sorted(set(params) | set(base)):
        if key not in PARAMS:
            raise SweepFileError(f"{path}: parameter {key!r} is not allowed; allowed: {', '.join(PARAMS)}")
    attrs = {"sweep_name": str(head.get("name", path.stem)), "sweep_path": str(path), "sweep_file": text}
    return HardwareProfile.load(hw_path), params, base, attrs


def run_file(path: str | os.PathLike[str], *, client: Any = None, progress=None):
    """Run a tenants sweep file and return its dataset (:func:`grid`)."""
    profile, params, base, attrs = read_file(path)
    return grid(profile, params, base=base, client=client, progress=progress, attrs=attrs)


def is_tenants_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a tenants sweep file (``kind = "tenants"`` in its [sweep] table): the hook by which a
    general sweep command can hand it here."""
    try:
        return tomllib.loads(pathlib.Path(path).read_text(encoding="utf-8")).get("sweep", {}).get("kind") == "tenants"
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return False


__all__ = ["PARAMS", "POINT_VARS", "grid", "is_tenants_file", "point", "read_file", "run_file", "summary"]
