"""The model benchmark runs end to end on a few predictions and a 50-point sweep and writes its JSON (no timing
asserted)."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest
from model_fixtures import test_profile

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)


def test_bench_predict_small(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_predict", ROOT / "benchmarks" / "bench_predict.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    hardware = tmp_path / "hw.toml"
    hardware.write_text(test_profile("bench").to_toml())
    out = tmp_path / "predict.json"
    args = ["--hardware", str(hardware), "--predictions", "40", "--points", "50", "--repeats", "1", "--out", str(out)]
    assert bench.main(args) == 0
    text = capsys.readouterr().out
    assert "predict() on hardware profile bench" in text and "a 50-point sweep on the model" in text
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "predict" and doc["parameters"]["profile"] == "bench"
    res = doc["results"]
    assert {r["case"] for r in res["predict"]} == {"no dirty rate", "dirty rate 1 GiB/s"}
    assert all(r["predictions"] == 40 and r["per_s"] > 0 for r in res["predict"])
    assert res["hot_spots"] and all(0 <= r["share_pct"] <= 100 for r in res["hot_spots"])
    assert [r["points"] for r in res["sweep"]] == [50] * 5 and res["sweep"][1]["failed"] == 0
