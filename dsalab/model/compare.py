"""The model beside the engine on this machine: the same trials run by the engine (alternating, repeat by
repeat) and predicted by :func:`dsalab.model.predict`, with the ratio of each metric."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence

import pandas as pd

from dsalab.model.predict import predict
from dsalab.model.profile import HardwareProfile, load
from dsalab.trial import Trial

#: metrics compared by default
METRICS = ("host_cpu_ms", "total_time_ms")


def engine_vs_model(
    trials: Sequence[Trial],
    profile: HardwareProfile | str | os.PathLike[str],
    *,
    repeats: int = 3,
    metrics: Sequence[str] = METRICS,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Run every trial ``repeats`` times on the engine (round robin: trial 1, 2, ..., 1, 2, ... so that load
    drifts hit all alike) and predict it once. One row per trial and metric: the trial's fields that differ
    between trials, ``metric``, ``engine`` (median over repeats), ``engine_min`` / ``engine_max``, ``model``,
    ``ratio`` (model / engine median). ``progress(done, total)`` is called after each run."""
    from dsalab.migration import run_trial  # deferred: the engine needs the compiled module

    prof = load(profile)
    if repeats < 1:
        from dsalab.errors import InvalidArgument

        raise InvalidArgument(f"repeats={repeats!r} is not allowed: allowed is an int >= 1")
    runs: list[list[dict[str, float]]] = [[] for _ in trials]
    total = repeats * len(trials)
    for r in range(repeats):
        for i, trial in enumerate(trials):
            res = run_trial(trial)
            runs[i].append({m: float(getattr(res, m)) for m in metrics})
            if progress is not None:
                progress(r * len(trials) + i + 1, total)
    varied = [f for f in Trial.fields() if len({getattr(t, f) for t in trials}) > 1]
    rows = []
    for trial, got in zip(trials, runs, strict=True):
        model = predict(trial, prof)
        for m in metrics:
            values = [g[m] for g in got]
            median = statistics.median(values)
            pred = float(getattr(model, m))
            rows.append(
                {
                    **{f: getattr(trial, f) for f in varied},
                    "metric": m,
                    "engine": median,
                    "engine_min": min(values),
                    "engine_max": max(values),
                    "model": pred,
                    "ratio": pred / median if median else float("nan"),
                }
            )
    return pd.DataFrame(rows)
