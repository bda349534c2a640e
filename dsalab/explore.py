"""Small grids of trials for notebooks and widgets, and loading result files for plots.

:func:`run_grid` runs every point of a small parameter grid a few times and returns the dataset in the layout of
:func:`dsalab.results.build_dataset`, the same layout the sweep layer writes; it is meant for notebook-sized grids
(seconds), not for long sweeps (``dsalab sweep`` does those, with resume and Dask).

>>> from dsalab.migration import Trial
>>> ds = run_grid(Trial(guest_bytes="4MiB", detector="cpu-native"), {"batch_size": [32, 128]}, repeats=2)
>>> dict(ds.sizes)["batch_size"], dict(ds.sizes)["repeat"]
(2, 2)
"""

from __future__ import annotations

import glob
import itertools
import json
import pathlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dsalab.errors import InvalidArgument
from dsalab.result import TrialResult
from dsalab.results import TrialRecord, build_dataset, coord_value
from dsalab.trial import Trial


class TrialsFailedWarning(UserWarning):
    """Some trials of a grid failed: they are in the dataset with status "failed" and their error."""


#: called before each trial with (index, count, trial)
GridProgress = Callable[[int, int, Trial], None]


def _params_of(trial: Trial, names: Sequence[str]) -> dict[str, Any]:
    return {n: getattr(trial, n) for n in names}


def run_one(trial: Trial) -> tuple[TrialResult | None, str]:
    """Run one trial; return (result, "") or (None, the error as text). A failed trial is a result too: grids
    and panels record it instead of stopping (a missing DSA device, a channel that broke)."""
    from dsalab.migration import run_trial  # the engine (and the compiled module) load when a trial runs

    try:
        return run_trial(trial), ""
    except Exception as exc:  # every failure is recorded with its message, as the sweep layer does
        return None, f"{type(exc).__name__}: {exc}"


def grid_trials(base: Trial, grid: Mapping[str, Sequence[Any]]) -> list[Trial]:
    """Every point of ``grid`` (field -> values, the last field varying fastest) applied to ``base``."""
    unknown = [k for k in grid if k not in Trial.fields()]
    if unknown:
        raise InvalidArgument(f"grid fields {unknown} are not Trial fields; allowed: {', '.join(Trial.fields())}")
    names = list(grid)
    return [base.replace(**dict(zip(names, combo, strict=True))) for combo in itertools.product(*grid.values())]


def warm_up(trials: Sequence[Trial]) -> None:
    """Run the first trial of each detector once on a tiny guest and throw the result away: the first call of a
    numba kernel compiles, the first device open is slow, and neither belongs in a measurement."""
    for detector in dict.fromkeys(t.detector for t in trials):
        first = next(t for t in trials if t.detector == detector)
        run_one(first.replace(guest_bytes=max(first.packet_bytes, 1 << 20) // first.page_size * first.page_size))


def run_grid(
    base: Trial,
    grid: Mapping[str, Sequence[Any]],
    repeats: int = 1,
    *,
    attrs: Mapping[str, str | int | float] | None = None,
    progress: GridProgress | None = None,
    warmup: bool = True,
):
    """Run each point of ``grid`` ``repeats`` times (repeat r uses seed ``base.seed + r``) and return the dataset.

    Parameters
    ----------
    base : the trial every point starts from
    grid : Trial field -> values; each field becomes a dimension, in this order
    repeats : runs per point (the ``repeat`` dimension)
    attrs : extra attributes; the base trial (JSON) and the grid (JSON) are always added
    progress : called before each trial
    warmup : first run each detector of the grid once on a tiny guest and throw the result away (the first
        numba call compiles, the first device open is slow)

    Returns
    -------
    xarray.Dataset in the layout of :func:`dsalab.results.build_dataset`; failed trials have status "failed"
    and their error, and NaN metrics, and a :class:`TrialsFailedWarning` says how many failed and why the first did.
    """
    if repeats < 1:
        raise InvalidArgument(f"repeats={repeats!r} is not allowed: allowed is an int >= 1")
    trials = grid_trials(base, grid)
    if warmup:
        warm_up(trials)
    records, runs = [], []
    count = len(trials) * repeats
    for i, (trial, r) in enumerate(itertools.product(trials, range(repeats))):
        run = trial.replace(seed=base.seed + r)
        if progress is not None:
            progress(i, count, run)
        result, error = run_one(run)
        runs.append(run)
        records.append(TrialRecord(_params_of(trial, list(grid)), r, result, error))
    failed = [(rec, run) for rec, run in zip(records, runs, strict=True) if rec.error]
    if failed:
        first, run = failed[0]
        warnings.warn(
            f"{len(failed)} of {count} trials failed (recorded with status 'failed'); the first, {run.detector} "
            f"at {first.params} repeat {first.repeat}: {first.error}",
            TrialsFailedWarning,
            stacklevel=2,
        )
    info: dict[str, str | int | float] = {
        "trial": base.to_json(),
        "grid": json.dumps({k: [coord_value(v) for v in vals] for k, vals in grid.items()}),
        "source": "dsalab.explore.run_grid",
    }
    info.update(attrs or {})
    return build_dataset(records, {k: list(v) for k, v in grid.items()}, repeats, info)


def history_dataset(history: Sequence[tuple[Trial, TrialResult | None, str]], fields: Sequence[str], attrs=None):
    """The dataset of trials run one by one (a tuning panel's history), on the grid of the values they used.

    Each field of ``fields`` whose value changed along the history becomes a dimension (its values sorted);
    a point run more than once gets more repeats; grid points never run stay "failed"/"not run", as in a sweep
    that was stopped early.
    """
    varying = [f for f in fields if len({coord_value(getattr(t, f)) for t, _, _ in history}) > 1]
    if not varying and fields:
        varying = [fields[0]]  # one point: keep its first parameter as a size-1 dimension, so plots can name it
    coords = {f: sorted({getattr(t, f) for t, _, _ in history}, key=lambda v: (str(type(v)), v)) for f in varying}
    seen: dict[tuple, int] = {}
    records = []
    for trial, result, error in history:
        key = tuple(coord_value(getattr(trial, f)) for f in varying)
        rep = seen.get(key, 0)
        seen[key] = rep + 1
        records.append(TrialRecord(_params_of(trial, varying), rep, result, error))
    repeats = max(seen.values(), default=1)
    info: dict[str, str | int | float] = {"source": "dsalab.widgets.TuningPanel"}
    if history:
        info["trial"] = history[0][0].to_json()
    info.update(attrs or {})
    return build_dataset(records, coords, repeats, info)


def dataset_trial(ds) -> Trial:
    """The trial a dataset's points share outside their swept parameters: the sweep file's base trial
    (attribute ``base_trial``) or the trial a grid or panel started from (``trial``); a default ``Trial()`` only
    when the dataset records neither (or records one this version cannot read)."""
    fields = set(Trial.fields())
    for key in ("base_trial", "trial"):
        text = ds.attrs.get(key)
        if not text:
            continue
        try:
            doc = json.loads(text)
            return Trial(**{k: v for k, v in doc.items() if k in fields})
        except (ValueError, TypeError):
            continue
    return Trial()


def find_results(pattern: str | pathlib.Path) -> list[pathlib.Path]:
    """The netCDF files a path or glob names (a directory means every ``*.nc`` below it), sorted. An empty path is
    refused (``Path("")`` would mean the current directory, and every ``*.nc`` below it)."""
    if not str(pattern).strip():
        raise InvalidArgument("results path is empty; allowed: a netCDF file, a directory of them, or a glob")
    p = pathlib.Path(pattern)
    if p.is_dir():
        return sorted(p.rglob("*.nc"))
    if p.is_file():
        return [p]
    return sorted(pathlib.Path(m) for m in glob.glob(str(pattern), recursive=True) if pathlib.Path(m).is_file())


def latest_result(root: str | pathlib.Path = "data/results") -> pathlib.Path | None:
    """The newest ``*.nc`` file under ``root`` (by modification time), or None."""
    files = find_results(root) if pathlib.Path(root).is_dir() else []
    return max(files, key=lambda f: f.stat().st_mtime) if files else None


def load(path: str | pathlib.Path):
    """One result dataset from a netCDF file (loaded in memory, the file closed, validated: see
    :func:`dsalab.results.read`)."""
    from dsalab import results

    return results.read(pathlib.Path(path))


def load_or_run_grid(
    stored: str | pathlib.Path,
    base: Trial,
    grid: Mapping[str, Sequence[Any]],
    repeats: int = 1,
    **options: Any,
):
    """The dataset of a stored sweep when ``stored`` names one (a netCDF file, see :func:`load`), else the dataset
    :func:`run_grid` measures for ``base``, ``grid`` and ``repeats`` (``options`` go to it): the notebooks'
    "plot this file, or run a small grid here"."""
    if stored:
        return load(stored)
    return run_grid(base, grid, repeats, **options)


def results_dataset(results: Mapping[Any, TrialResult], params: Sequence[str], attrs=None):
    """A dataset of trials already run (any mapping of key -> TrialResult), on the grid of ``params`` (Trial field
    names) they cover: e.g. :func:`dsalab.scenarios.compare_seed_scenarios`' results over normal_ratio and
    detector. A point run twice gets two repeats."""
    return history_dataset([(r.trial, r, "") for r in results.values()], params, attrs)


def kernel_benchmark(
    size_mib: int = 64,
    repeats: int = 5,
    threads: Sequence[int] = (1, 2),
    seed: int = 1,
    *,
    stored: str | pathlib.Path = "",
):
    """The kernel benchmark's rows as a pandas DataFrame (case, kernel, threads, gbps, ratio_ref, ratio_numpy,
    seconds, ...): measured now by :func:`dsalab.kernel_bench.run` (every zero-page kernel beside the memory-read
    bandwidth reference, on ``size_mib`` MiB buffers, ``repeats`` timed repeats, at each count of ``threads``), or
    read from ``stored``, a JSON file ``benchmarks/bench_kernels.py`` wrote (e.g. ``data/bench/kernels.json``;
    :func:`dsalab.benchmarking.read_json` checks it)."""
    import pandas as pd

    from dsalab import benchmarking

    if stored:
        return pd.DataFrame(benchmarking.read_json(stored, "kernels")["results"])
    from dsalab import kernel_bench

    if isinstance(size_mib, bool) or not isinstance(size_mib, int) or size_mib < 1:
        raise InvalidArgument(f"size_mib={size_mib!r} is not allowed: allowed is an int of MiB >= 1")
    return pd.DataFrame(kernel_bench.run(size_mib << 20, repeats, list(threads), seed))


def format_break_even(
    ds, metric: str = "host_cpu_ms_per_gb", *, offload: str | None = None, baseline: str | None = None
) -> str:
    """Where offload stops paying, one line per combination of the other swept parameters: the normal ratios at
    which ``metric`` of ``offload`` minus that of ``baseline`` crosses zero (see
    :func:`dsalab.analysis.break_even_points`, which picks the detectors when they are None), or "nowhere in range".
    """
    from dsalab.analysis import break_even_points

    lines = []
    for c in break_even_points(ds, metric, offload=offload, baseline=baseline):
        where = ", ".join(f"{x:.3g}" for x in c["crossings"]) or "nowhere in range"
        at = "".join(f", {k}={v}" for k, v in c["point"].items())
        lines.append(f"{c['offload']} - {c['baseline']}{at}: {metric} crosses zero at normal ratio: {where}")
    return "\n".join(lines)
