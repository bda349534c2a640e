"""Auto-tuning: the batch size x packet size x channels point with the lowest host CPU per GB whose throughput is
no worse than ``slack_pct`` % below the best throughput seen, found with far fewer trials than the full grid.

Method: coordinate descent on the grid of a sweep file. Start at the middle value of each axis; for each axis in
turn, try every value of that axis with the others fixed and move to the best point on that line; repeat rounds
until a round moves nothing (or ``max_rounds``). "Best" is: among points whose mean throughput is at least
``(1 - slack_pct/100)`` x the highest mean throughput measured so far, the lowest mean host CPU per GB; if none on
the line qualifies, the highest throughput. Each point is measured once (``repeats`` trials, cached). One round
costs at most sum(len(axis)) points against prod(len(axis)) for the grid, e.g. 5 + 5 + 4 = 14 versus 100.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dsalab.errors import InvalidArgument, InvalidType, SweepFileError
from dsalab.sweepfile import SweepSpec

#: parameters the tuner searches
TUNABLE = ("batch_size", "packet_bytes", "channels")

#: (mean host CPU per GB in ms/GB, mean throughput in Mbit/s) of a point, or None when every trial failed
Score = tuple[float, float] | None
Point = tuple[tuple[str, Any], ...]


@dataclasses.dataclass
class TuneResult:
    """What the search did.

    Attributes
    ----------
    best : the chosen point {parameter: value}
    scores : every evaluated point (as sorted (name, value) tuples) -> Score, in evaluation order
    rounds : rounds of coordinate descent run
    grid_points : size of the full grid, for comparison with ``len(scores)``
    slack_pct : the throughput slack used
    """

    best: dict[str, Any]
    scores: dict[Point, Score]
    rounds: int
    grid_points: int
    slack_pct: float

    @property
    def evaluated(self) -> int:
        """Points measured."""
        return len(self.scores)


def point_key(point: Mapping[str, Any]) -> Point:
    """A point as sorted (name, value) pairs: the key of :attr:`TuneResult.scores`."""
    return tuple(sorted(point.items()))


def choose(candidates: Sequence[Point], scores: Mapping[Point, Score], slack_pct: float) -> Point:
    """The best candidate under the rule in the module docstring (ties: the first)."""
    measured = [s[1] for s in scores.values() if s is not None and not math.isnan(s[1])]
    floor = (1.0 - slack_pct / 100.0) * max(measured) if measured else math.inf
    ok = [c for c in candidates if scores[c] is not None and not math.isnan(scores[c][0])]
    feasible = [c for c in ok if scores[c][1] >= floor]
    if feasible:
        return min(feasible, key=lambda c: scores[c][0])
    if ok:
        return max(ok, key=lambda c: scores[c][1])
    return candidates[0]


def coordinate_descent(
    space: Mapping[str, Sequence[Any]],
    evaluate: Callable[[dict[str, Any]], Score],
    *,
    slack_pct: float = 10.0,
    max_rounds: int = 4,
    start: Mapping[str, Any] | None = None,
) -> TuneResult:
    """Search ``space`` (parameter -> values) with ``evaluate(point) -> (cpu_ms_per_gb, throughput_mbps) | None``."""
    _check_limits(slack_pct, max_rounds)
    names = list(space)
    current = dict(start) if start else {n: space[n][len(space[n]) // 2] for n in names}
    scores: dict[Point, Score] = {}

    def measure(point: dict[str, Any]) -> Point:
        k = point_key(point)
        if k not in scores:
            scores[k] = evaluate(dict(point))
        return k

    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - rounds is reported
        moved = False
        for name in names:
            line = [measure({**current, name: v}) for v in space[name]]
            best = dict(choose(line, scores, slack_pct))
            if best != current:
                moved = True
                current = best
        if not moved:
            break
    overall = dict(choose(list(scores), scores, slack_pct))
    return TuneResult(overall, scores, rounds, math.prod(len(v) for v in space.values()), slack_pct)


def _check_limits(slack_pct: object, max_rounds: object) -> None:
    """``slack_pct`` a real percentage in [0, 100), ``max_rounds`` an int >= 1 (else InvalidArgument/InvalidType)."""
    if isinstance(slack_pct, bool) or not isinstance(slack_pct, int | float):
        raise InvalidType(f"slack_pct={slack_pct!r} is not allowed: a percentage from 0 to below 100 (a number)")
    if not 0 <= slack_pct < 100:  # NaN fails this too
        raise InvalidArgument(f"slack_pct={slack_pct!r} is not allowed: a percentage from 0 to below 100")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise InvalidArgument(f"max_rounds={max_rounds!r} is not allowed: an int >= 1")


def check_spec(spec: SweepSpec) -> None:
    """A tune file sweeps only batch_size, packet_bytes and/or channels."""
    other = [d for d in spec.dims if d not in TUNABLE]
    if other:
        raise SweepFileError(
            f"sweep file {spec.path}: sweep.{other[0]}: the tuner searches only {', '.join(TUNABLE)}; "
            "fix the others in [base]"
        )


def tune(
    spec: SweepSpec,
    *,
    slack_pct: float = 10.0,
    max_rounds: int = 4,
    progress: Callable[[str], None] | None = None,
):
    """Tune on the engine: returns (TuneResult, dataset of every trial run, laid out on the sweep's grid; points
    not visited are "not run"). Each visited point runs the sweep's ``repeats`` trials (seeds as in a sweep);
    ``warmups`` trials of the start point run first and are discarded."""
    from dsalab import results
    from dsalab.results import TrialRecord
    from dsalab.sweep import execute, model_profile, sweep_attrs

    check_spec(spec)
    profile = model_profile(spec)  # None unless the runner is the model
    _check_limits(slack_pct, max_rounds)
    records: list[TrialRecord] = []
    start = {n: v[len(v) // 2] for n, v in spec.params.items()}
    for w in range(spec.warmups):
        execute(spec.trial(start, w, warmup=True), spec.runner, profile)

    def evaluate(point: dict[str, Any]) -> Score:
        cpu, tput = [], []
        for r in range(spec.repeats):
            out = execute(spec.trial(point, r), spec.runner, profile)
            result = None
            if out["result"] is not None:
                from dsalab.result import TrialResult

                result = TrialResult.from_dict(out["result"])
                cpu.append(result.host_cpu_ms_per_gb)
                tput.append(result.throughput_mbps)
            records.append(TrialRecord(point, r, result, out["error"], out["worker"]))
        score = (sum(cpu) / len(cpu), sum(tput) / len(tput)) if cpu else None
        if progress is not None:
            shown = f"{score[0]:.1f} ms/GB, {score[1]:.0f} Mbit/s" if score else "failed"
            progress(f"point {len({point_key(r.params) for r in records})}: {point} -> {shown}")
        return score

    found = coordinate_descent(spec.params, evaluate, slack_pct=slack_pct, max_rounds=max_rounds, start=start)
    attrs = sweep_attrs(spec, "serial")
    attrs.update(
        tune_method="coordinate descent",
        tune_slack_pct=float(slack_pct),
        tune_best=json.dumps(found.best, sort_keys=True),
        tune_points_evaluated=found.evaluated,
        tune_grid_points=found.grid_points,
        tune_rounds=found.rounds,
        tune_trials=len(records),
    )
    ds = results.build_dataset(records, spec.params, spec.repeats, attrs)
    ds.attrs["backend"] = ",".join(sorted({r.result.backend for r in records if r.result is not None}))
    return found, ds
