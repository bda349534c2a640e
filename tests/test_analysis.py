"""dsalab.analysis statistics on small hand-made datasets: one rule for every figure and summary (failed trials
left out, sample standard deviation with ddof=1, DSA against CPU paired by repeat); expected values computed by
hand or with an obvious NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from dsalab import analysis, plots
from dsalab.errors import DsalabError

pytestmark = pytest.mark.timeout(60)

NAN = np.nan


def dataset(values: dict[str, list[list[float]]], failed: set[tuple[str, float, int]] = frozenset()) -> xr.Dataset:
    """host_cpu_ms_per_gb over (detector, normal_ratio, repeat): detector -> one list of repeats per normal ratio;
    ``failed`` holds (detector, normal_ratio, repeat) whose status is "failed" (their value stays, to be masked)."""
    detectors = list(values)
    ratios = [0.0, 1.0]
    repeats = len(values[detectors[0]][0])
    data = np.array([values[d] for d in detectors], dtype=float)
    status = np.full(data.shape, "ok", dtype=object)
    for det, ratio, rep in failed:
        status[detectors.index(det), ratios.index(ratio), rep] = "failed"
    dims = ("detector", "normal_ratio", "repeat")
    zero_pages = np.where(status == "ok", 7, -1).astype(np.int64)  # an integer metric stores -1 when failed
    return xr.Dataset(
        {
            "host_cpu_ms_per_gb": (dims, data, {"units": "ms/GB", "long_name": "host CPU per GB"}),
            "zero_pages": (dims, zero_pages),
            "status": (dims, status),
        },
        coords={"detector": detectors, "normal_ratio": ratios, "repeat": np.arange(repeats)},
    )


# offload (dsa) against baseline (cpu); at normal_ratio 1 the offload's repeat 2 failed (its 999 must not count)
KNOWN = dataset(
    {"cpu-native": [[20, 21, 25], [20, 22, 24]], "dsa-emulated": [[10, 12, 17], [30, 31, 999]]},
    failed={("dsa-emulated", 1.0, 2)},
)


def test_mean_std_is_the_sample_std_of_successful_trials():
    mean, std, n = analysis.mean_std(KNOWN, "host_cpu_ms_per_gb")
    assert mean.dims == std.dims == n.dims == ("detector", "normal_ratio")
    at = {"detector": "dsa-emulated", "normal_ratio": 0.0}
    assert float(mean.sel(at)) == pytest.approx(13.0)
    assert float(std.sel(at)) == pytest.approx(np.std([10, 12, 17], ddof=1))  # sqrt(13), not sqrt(26/3)
    assert int(n.sel(at)) == 3
    at = {"detector": "dsa-emulated", "normal_ratio": 1.0}  # the failed repeat is left out
    assert (float(mean.sel(at)), float(std.sel(at)), int(n.sel(at))) == (30.5, pytest.approx(0.5**0.5), 2)


def test_mean_std_with_one_or_no_successful_trial():
    ds = dataset(
        {"cpu-native": [[5, 6], [8, 9]]}, failed={("cpu-native", 0.0, 1), *(("cpu-native", 1.0, r) for r in (0, 1))}
    )
    mean, std, n = analysis.mean_std(ds, "host_cpu_ms_per_gb")
    assert list(n.values.ravel()) == [1, 0]
    assert float(mean.sel(detector="cpu-native", normal_ratio=0.0)) == 5.0
    assert float(std.sel(detector="cpu-native", normal_ratio=0.0)) == 0.0  # one trial: no spread, as summarize says
    assert np.isnan(mean.sel(detector="cpu-native", normal_ratio=1.0)) and np.isnan(std.sel(normal_ratio=1.0)).all()


def test_mean_std_of_an_integer_metric_leaves_failed_out():
    mean, std, n = analysis.mean_std(KNOWN, "zero_pages")
    assert float(mean.sel(detector="dsa-emulated", normal_ratio=1.0)) == 7.0  # the -1 of the failed trial is NaN
    assert float(std.max()) == 0.0 and int(n.sum()) == 11


def test_mean_std_against_numpy_over_any_dims():
    rng = np.random.default_rng(3)
    values = rng.normal(100, 10, (2, 2, 5))
    ds = dataset({"cpu-native": values[0].tolist(), "cpu-numba": values[1].tolist()})
    mean, std, n = analysis.mean_std(ds, "host_cpu_ms_per_gb", dims=("repeat", "normal_ratio", "not-a-dim"))
    flat = values.reshape(2, -1)
    np.testing.assert_allclose(mean.values, flat.mean(axis=1))
    np.testing.assert_allclose(std.values, flat.std(axis=1, ddof=1))
    assert list(n.values) == [10, 10]


def test_crossings():
    assert analysis.crossings(np.array([0, 0.5, 1.0]), np.array([-2.0, -1.0, 1.0])) == [0.75]
    assert analysis.crossings(np.array([0, 1.0]), np.array([-1.0, -1.0])) == []
    assert analysis.crossings(np.array([0, 0.5, 1.0]), np.array([1.0, np.nan, -1.0])) == [0.5]  # NaN skipped
    assert analysis.crossings(np.array([0, 0.5, 1.0]), np.array([1.0, 0.0, -1.0])) == [0.5]  # a zero counts once
    assert analysis.crossings(np.array([0, 1, 2.0]), np.array([-1.0, 3.0, -1.0])) == [0.25, 1.75]


def test_break_even_points_pair_by_repeat():
    (curve,) = analysis.break_even_points(KNOWN)  # defaults: dsa-* minus cpu-*
    assert (curve["offload"], curve["baseline"]) == ("dsa-emulated", "cpu-native")
    assert curve["point"] == {}
    np.testing.assert_array_equal(curve["normal_ratio"], [0.0, 1.0])
    np.testing.assert_allclose(curve["offload_mean"], [13.0, 30.5])  # each detector: its successful repeats
    np.testing.assert_allclose(curve["baseline_mean"], [22.0, 22.0])
    # ratio 0: pairs -10, -9, -8; ratio 1: pairs 10, 9 (repeat 2 has no successful offload trial)
    np.testing.assert_allclose(curve["difference"], [-9.0, 9.5])
    np.testing.assert_allclose(curve["error"], [1 / 3**0.5, 0.5])  # sample std of the pairs / sqrt(pairs)
    np.testing.assert_array_equal(curve["pairs"], [3, 2])
    assert curve["crossings"] == [pytest.approx(9 / 18.5)]


def test_break_even_points_one_curve_per_other_parameter_and_single_pairs():
    a = KNOWN.expand_dims(batch_size=[32, 64]).copy(deep=True)
    a["host_cpu_ms_per_gb"].loc[{"batch_size": 64, "detector": "cpu-native"}] = 0.0  # offload always dearer
    a["status"].loc[{"batch_size": 64, "repeat": [1, 2]}] = "failed"  # one pair left per ratio
    curves = analysis.break_even_points(a, offload="dsa-emulated", baseline="cpu-native")
    assert [c["point"] for c in curves] == [{"batch_size": 32}, {"batch_size": 64}]
    np.testing.assert_allclose(curves[0]["difference"], [-9.0, 9.5])
    np.testing.assert_allclose(curves[1]["difference"], [10.0, 30.0])
    np.testing.assert_allclose(curves[1]["error"], [0.0, 0.0])  # one pair: no spread
    assert curves[1]["crossings"] == []


def test_break_even_points_bad_input():
    with pytest.raises(DsalabError, match="detector 'cpu-numba' is not in the dataset"):
        analysis.break_even_points(KNOWN, baseline="cpu-numba")
    with pytest.raises(ValueError, match=r"needs normal_ratio swept over more than one value.*normal_ratio \(1\)"):
        analysis.break_even_points(KNOWN.isel(normal_ratio=[0]))
    assert analysis.pick_detectors(KNOWN) == ("dsa-emulated", "cpu-native")
    assert analysis.pick_detectors(KNOWN, offload="cpu-native") == ("cpu-native", "dsa-emulated")


def test_summarize_and_figures_use_the_same_rule():
    ds = KNOWN.copy(deep=True)
    for name in ("total_time_ms", "backend"):
        ds[name] = ds["host_cpu_ms_per_gb"] if name != "backend" else ds["status"]
    best = analysis.summarize(ds).best.set_index(["detector", "metric"])
    _, std, _ = analysis.mean_std(ds, "host_cpu_ms_per_gb")
    row = best.loc[("dsa-emulated", "host_cpu_ms_per_gb")]
    assert row.point == {"normal_ratio": 0.0}
    assert row["std"] == pytest.approx(float(std.sel(detector="dsa-emulated", normal_ratio=0.0)))
    summary = analysis.summarize(ds)
    saved0 = 100 * (np.array([20, 21, 25]) - [10, 12, 17]) / [20, 21, 25]  # per repeat, paired
    saved1 = 100 * (np.array([20, 22]) - [30, 31]) / [20, 22]  # repeat 2 failed for dsa: no pair
    point = summary.savings.set_index(summary.savings.point.map(str)).loc[str({"normal_ratio": 0.0})]
    assert (point.saved_pct, point.saved_pct_std, point.n) == (
        pytest.approx(saved0.mean()),
        pytest.approx(saved0.std(ddof=1)),
        3,
    )
    everything = np.concatenate([saved0, saved1])
    (overall,) = summary.overall.itertuples()
    assert (overall.saved_pct, overall.saved_pct_std, overall.n) == (
        pytest.approx(everything.mean()),
        pytest.approx(everything.std(ddof=1)),
        5,
    )


def test_plots_reexports_the_statistics():
    for name in ("mean_std", "crossings", "break_even_points", "swept_dims"):
        assert getattr(plots, name) is getattr(analysis, name)
