"""The tuner: coordinate descent finds the constrained optimum of a known function with far fewer evaluations than
the grid, and `dsalab tune` runs real trials and writes them as a dataset."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from typer.testing import CliRunner

from dsalab import results
from dsalab.cli import app
from dsalab.tune import choose, coordinate_descent, point_key

pytestmark = pytest.mark.timeout(180)
runner = CliRunner()

SPACE = {
    "batch_size": [16, 32, 64, 128, 256],
    "packet_bytes": [65536, 131072, 262144, 524288, 1048576],
    "channels": [1, 2, 4, 8],
}


def known(point):
    """CPU is lowest at batch 32, packet 256 KiB and few channels; throughput grows with channels and falls away
    from packet 256 KiB."""
    b = math.log2(point["batch_size"]) - 5
    p = math.log2(point["packet_bytes"]) - 18
    c = point["channels"]
    return (b * b + p * p + c, 1000.0 * c / (1 + 0.1 * p * p))


def brute_force(slack):
    scores = {}
    for combo in itertools.product(*SPACE.values()):
        point = dict(zip(SPACE, combo, strict=True))
        scores[point_key(point)] = known(point)
    return dict(choose(list(scores), scores, slack))


@pytest.mark.parametrize(
    ("slack", "expected"),
    [
        (10.0, {"batch_size": 32, "packet_bytes": 262144, "channels": 8}),
        (60.0, {"batch_size": 32, "packet_bytes": 262144, "channels": 4}),
        (0.0, {"batch_size": 32, "packet_bytes": 262144, "channels": 8}),
    ],
)
def test_coordinate_descent_finds_the_grid_optimum_with_fewer_evaluations(slack, expected):
    calls = []

    def evaluate(point):
        calls.append(point)
        return known(point)

    found = coordinate_descent(SPACE, evaluate, slack_pct=slack)
    assert found.best == expected == brute_force(slack)
    assert found.evaluated == len(calls) == len({point_key(c) for c in calls})  # each point measured once
    assert found.evaluated <= sum(len(v) for v in SPACE.values()) * found.rounds
    assert found.evaluated < found.grid_points == 100


def test_failed_points_are_never_chosen():
    def evaluate(point):
        return None if point["channels"] == 8 else known(point)

    found = coordinate_descent(SPACE, evaluate, slack_pct=10.0)
    assert found.best["channels"] == 4


def test_slack_must_be_a_percentage():
    with pytest.raises(ValueError, match="slack_pct=100"):
        coordinate_descent(SPACE, known, slack_pct=100)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"slack_pct": math.nan}, "slack_pct=nan is not allowed: a percentage from 0 to below 100"),
        ({"slack_pct": "5"}, "slack_pct='5' is not allowed"),
        ({"max_rounds": 0}, "max_rounds=0 is not allowed: an int >= 1"),  # was an IndexError
        ({"max_rounds": 1.5}, "max_rounds=1.5 is not allowed: an int >= 1"),
    ],
)
def test_bad_tuner_arguments_are_dsalab_errors(kwargs, expected):
    from dsalab.errors import DsalabError

    with pytest.raises(DsalabError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        coordinate_descent(SPACE, known, **kwargs)


TUNE = """
name = "tiny-tune"
repeats = 1
warmups = 1
seed = 9
[base]
guest_bytes = "4MiB"
detector = "cpu-native"
[sweep]
batch_size = [32, 64, 128]
packet_bytes = ["64KiB", "128KiB", "256KiB"]
channels = [1, 2]
"""


def test_cli_tune_runs_fewer_trials_than_the_grid_and_writes_them(tmp_path):
    path = tmp_path / "tune.toml"
    path.write_text(TUNE)
    out = tmp_path / "tune.nc"
    r = runner.invoke(app, ["tune", str(path), "--slack", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    ds = results.read(out)
    assert set(results.param_dims(ds)) == {"batch_size", "packet_bytes", "channels"}
    ran = int((ds["status"] == "ok").sum())
    assert ran == ds.attrs["tune_trials"] == ds.attrs["tune_points_evaluated"] < ds.attrs["tune_grid_points"] == 18
    assert f"of 18 grid points measured ({ran} trials)" in r.output
    not_run = ds["error"].values[ds["status"].values == "failed"]
    assert set(not_run) == {"not run"}
    best = json.loads(ds.attrs["tune_best"])
    assert ds["status"].sel(best).values.tolist() == ["ok"]


@pytest.mark.parametrize(
    ("args", "text", "expected"),
    [
        (["--slack", "150"], TUNE, "--slack 150.0 is not allowed: a percentage from 0 to below 100"),
        (
            [],
            TUNE.replace("channels = [1, 2]", 'detector = ["cpu-numba"]').replace('detector = "cpu-native"\n', ""),
            "sweep.detector: the tuner searches only batch_size, packet_bytes, channels",
        ),
    ],
)
def test_cli_tune_rejects_bad_input(tmp_path, args, text, expected):
    path = tmp_path / "tune.toml"
    path.write_text(text)
    r = runner.invoke(app, ["tune", str(path), *args])
    assert r.exit_code == 2 and expected in r.output
