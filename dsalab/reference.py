"""The figures published in the seed series' cover letter (``data/reference/*.csv``), as pandas tables."""

from __future__ import annotations

import pathlib

import pandas as pd

REFERENCE_DIR = pathlib.Path(__file__).resolve().parent.parent / "data" / "reference"
#: where shipped hardware profiles live (``data/hardware/<name>.toml``; sweep files and the model find them by name)
HARDWARE_DIR = REFERENCE_DIR.parent / "hardware"


def cpu_runtime() -> pd.DataFrame:
    """Per-thread CPU runtime, ms: columns scenario, normal_ratio, mode (cpu/dsa), thread, runtime_ms."""
    return pd.read_csv(REFERENCE_DIR / "seed_cpu_runtime.csv", comment="#")


def migration_stats() -> pd.DataFrame:
    """Total time, downtime, throughput, transferred and total RAM per scenario and mode."""
    return pd.read_csv(REFERENCE_DIR / "seed_migration_stats.csv", comment="#")


#: CPU totals as the cover letter states them (its rows add up to a few ms more: rounding in the source)
STATED_TOTALS_MS = {(1, "cpu"): 41922, (1, "dsa"): 32568, (2, "cpu"): 11154, (2, "dsa"): 8700}
#: the seed's scenarios as Trial fields, read right: the guest was all zero pages; scenario 1's "50% normal pages"
#: were zero pages forced normal by the series' multifd-normal-page-ratio (see data/reference/README.md)
SCENARIOS: dict[int, dict[str, float]] = {
    1: {"normal_ratio": 0.0, "force_normal_ratio": 0.5},
    2: {"normal_ratio": 0.0, "force_normal_ratio": 0.0},
}
#: the setup of the published runs
SEED_SETUP = {
    "guest_bytes": 100 * 10**9,
    "channels": 8,
    "packet_bytes": 512 << 10,
    "devices": 1,
    "cpu": "2 x Intel Xeon Platinum 8457C (Sapphire Rapids), 192 CPUs",
}
