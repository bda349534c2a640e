"""Against this machine (issue 11): the model, calibrated here in turns with the check's engine runs, beside the
engine over normal ratio 0 / 0.5 / 1, channels 1 / 2, packets 128 KiB / 512 KiB, for cpu-numba and cpu-native, on
a small guest.

The comparison is of host CPU only (model / engine median); total time is wall time, which a unit test does not
gate on: ``benchmarks/bench_model.py`` measures it, with every point against the issue's 15% on a 1 GiB guest.
The model predicts the machine's cores as the migration's own. Whether they are is measured around the runs
(:func:`dsalab.model.calibrate_check.cpu_share`: the share of the cores busy threads obtain):

- unshared (>= 90%): the typical point (median of |log ratio|) within 25% for each detector (a 128 MiB guest on
  2 cores varies from run to run by more than 15%: a sender at normal ratio 1 by +-20% over eight runs in a row),
  and no point off by more than a factor of 2 (a missing or doubled term shows as that);
- shared: other work takes CPU and cores that no hardware profile knows of, so the check is skipped, with the
  share and the table as the reason (a looser bound would pass whatever the model said).

The table is printed (``pytest -s``) and attached to a failure."""

from __future__ import annotations

import math
import statistics

import pytest

from dsalab.model import calibrate as cal
from dsalab.model import calibrate_check as check

pytestmark = pytest.mark.timeout(600)

#: guest of the calibration and of the engine runs: large enough that per-trial fixed costs stay small
GUEST = 128 << 20
REPEATS = 4
#: the typical host-CPU point's bound in this test: a 128 MiB guest on 2 cores varies run to run by more than the
#: issue's 15%, which ``benchmarks/bench_model.py`` measures on 1 GiB (its table, the README's figures)
TYPICAL_TOLERANCE = 0.25
#: no single point off by more than this factor
POINT_FACTOR = 2.0
#: the machine counts as unshared when busy threads obtain at least this share of its cores
UNSHARED = 0.9


@pytest.fixture(scope="module")
def side_by_side():
    """Calibration and the check's engine runs taken in turns, repeat by repeat (a shared machine's load drifts
    over a minute: in turns, both see the same), then the model with the combined profile beside the engine."""
    shares, measured, runs = [check.cpu_share()], [], {}
    for _ in range(REPEATS):
        measured.append(cal.measure(repeats=1, guest_bytes=GUEST))
        for point, results in check.run_engine(GUEST, 1).items():
            runs.setdefault(point, []).extend(results)
        shares.append(check.cpu_share())
    profile = cal.build_profile(cal.combine(measured), name="test-calibrated")
    rows = check.compare(profile, runs)
    share = statistics.fmean(shares)
    table = check.format_rows(rows)
    print(f"\n{table}\ncores obtained by busy threads: {share:.0%}")
    return rows, share, table


def _log_ratios(values):
    return [math.log(v) for v in values]


@pytest.mark.parametrize("detector", ["cpu-numba", "cpu-native"])
def test_host_cpu_against_the_engine(side_by_side, detector):
    rows, share, table = side_by_side
    if share < UNSHARED:
        pytest.skip(f"this machine is shared now: busy threads obtained {share:.0%} of its cores\n{table}")
    tolerance = TYPICAL_TOLERANCE
    ratios = [r.host_ratio for r in rows if r.detector == detector]
    typical = math.exp(statistics.median(abs(x) for x in _log_ratios(ratios)))
    assert typical - 1 <= tolerance, (
        f"host CPU: median point off by {typical - 1:.0%} (allowed {tolerance:.0%}, cores {share:.0%})\n{table}"
    )
    worst = max(ratios, key=lambda x: abs(math.log(x)))
    assert abs(math.log(worst)) <= math.log(POINT_FACTOR), f"host CPU: a point at {worst:.2f}\n{table}"


def test_the_grid_is_the_issues():
    assert len(check.GRID) == 24
    assert {p[1] for p in check.GRID} == {0.0, 0.5, 1.0}
    assert {p[2] for p in check.GRID} == {1, 2}
    assert {p[3] for p in check.GRID} == {128 << 10, 512 << 10}


def test_cpu_share_is_a_fraction():
    assert 0.0 < check.cpu_share(0.05) <= 1.0
