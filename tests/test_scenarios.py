"""The seed's scenarios: our runs beside the published figures."""

from __future__ import annotations

import pathlib

import pytest

from dsalab import reference, scenarios


def test_reference_tables_load():
    cpu = reference.cpu_runtime()
    stats = reference.migration_stats()
    assert set(cpu["mode"]) == {"cpu", "dsa"} and "dsa_completion" in set(cpu["thread"])
    assert len(stats) == 4 and stats["total_ram_kb"].iloc[0] == 102400520
    for (scenario, mode), total in reference.STATED_TOTALS_MS.items():
        rows = cpu[(cpu.scenario == scenario) & (cpu["mode"] == mode)]
        assert abs(rows.runtime_ms.sum() - total) < 10  # the cover letter's rounding


def test_scenario_trials():
    trials = scenarios.scenario_trials("64MiB", channels=4)
    # the seed's guest was all zero; scenario 1's "50% normal" were zero pages forced normal
    for mode in ("cpu", "dsa"):
        assert trials[(1, mode)].normal_ratio == 0.0 and trials[(1, mode)].force_normal_ratio == 0.5
        assert trials[(2, mode)].normal_ratio == 0.0 and trials[(2, mode)].force_normal_ratio == 0.0
    assert trials[(1, "dsa")].detector == "dsa-emulated" and trials[(1, "cpu")].channels == 4


@pytest.mark.timeout(300)
def test_compare_runs_the_dsa_mode_on_the_emulated_device():
    """The "dsa" mode runs dsa-emulated (it ran cpu-native before, so a broken DSA path still passed)."""
    table, results = scenarios.compare_seed_scenarios(
        "8MiB", channels=2, cpu_detector="cpu-numba", dsa_detector="dsa-emulated", warmup=False
    )
    assert set(table.source) == {"seed", "dsalab"} and len(table) == 8
    seed1 = table[(table.source == "seed") & (table.scenario == 1) & (table["mode"] == "dsa")]
    assert seed1.cpu_saved_pct.iloc[0] == pytest.approx(100 * (41922 - 32568) / 41922)
    assert all(r.verified for r in results.values())
    for scenario in scenarios.SCENARIOS:
        dsa, cpu = results[(scenario, "dsa")], results[(scenario, "cpu")]
        assert dsa.backend == "dsa-emulated" and cpu.backend == "cpu-numba"
        assert dsa.pages_offloaded > 0 and "dsa_completion" in dsa.thread_cpu_ms  # the device did the work
        assert cpu.pages_offloaded == 0
        assert dsa.normal_pages == 0 and cpu.normal_pages == 0  # an all-zero guest, as in the seed
    half = results[(1, "cpu")].trial.guest_bytes // results[(1, "cpu")].trial.page_size // 2
    assert results[(1, "cpu")].forced_normal_pages == pytest.approx(half, rel=0.1)
    assert results[(2, "cpu")].forced_normal_pages == 0
    ours = table[table.source == "dsalab"]
    assert set(ours[ours["mode"] == "dsa"].backend) == {"dsa-emulated"}
    assert "host_cpu_ms_per_gb" in scenarios.format_comparison(table)
    assert set(table.force_normal_ratio) == {0.5, 0.0} and set(table.normal_ratio) == {0.0}


def test_seed_scenarios_sweep_forces_normal_pages():
    from dsalab import sweepfile

    spec = sweepfile.load(pathlib.Path(__file__).resolve().parents[1] / "data/sweeps/seed-scenarios.toml")
    assert spec.base["normal_ratio"] == 0.0 and "normal_ratio" not in spec.params
    assert sorted(spec.params["force_normal_ratio"]) == [0.0, 0.5]
