"""Honest figures: busy threads and cores recorded per trial, and the one-line caveats the summary, the figures'
subtitles and ``dsalab run`` show (the emulated device sharing the host's cores; the model migrating nothing)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from dsalab import analysis, caveats, plots, results
from dsalab.errors import DsalabError
from dsalab.migration.accounting import ThreadSample
from dsalab.migration.counters import BUSY_SHARE, RawCounters, build_result, busy_threads
from dsalab.plots.style import figure_title
from dsalab.result import TrialResult
from dsalab.schema import TrialRecord, build_dataset
from dsalab.trial import Trial

TRIAL = Trial(guest_bytes="1MiB", channels=2, detector="dsa-emulated")
#: 100 ms of trial: eight threads ran >= 1 ms, one (live_migration) 0.5 ms, one not accounted
AFTER = {
    1: ThreadSample(1, "python3", 900_000_000),
    10: ThreadSample(10, "live_migration", 500_000),
    11: ThreadSample(11, "multifdsend_0", 40_000_000),
    12: ThreadSample(12, "multifdsend_1", 30_000_000),
    13: ThreadSample(13, "dsa_completion", 5_000_000),
    14: ThreadSample(14, "multifdrecv_0", 11_000_000),
    15: ThreadSample(15, "multifdrecv_1", 9_000_000),
    16: ThreadSample(16, "dsa_engine_0_0", 25_000_000),
    17: ThreadSample(17, "dsa_engine_0_1", 15_000_000),
    18: ThreadSample(18, "dsa_engine_0_2", 1_000_000),
}
CHANNEL = dict.fromkeys(
    ("bytes_sent", "zero_pages", "normal_pages", "forced_normal_pages", "pages", "packets"), 1
) | dict.fromkeys(("detect_cpu_ns", "send_cpu_ns", "sender_cpu_ns"), 0)
OFFLOAD = {
    "pages_offloaded": 1,
    "fallback_pages": 0,
    "fallback_pages_by_reason": {},
    "queue_full_retries": 0,
    "page_faults": 0,
    "device_busy_ms": 1.0,
}
RAW = RawCounters(
    backend="dsa-emulated",
    start_s=10.0,
    setup_s=10.01,
    end_s=10.1,
    downtime_s=0.001,
    iterations=1,
    syncs=1,
    converged=True,
    dirtied_pages=0,
    threads_before={},
    threads_after=AFTER,
    guest_cpu_ms=0.0,
    channel_stats=[CHANNEL, CHANNEL],
    offload=OFFLOAD,
    mismatched_pages=0,
    cores=2,
)


def _result(backend: str = "dsa-emulated", cores: int = 2, trial: Trial = TRIAL) -> TrialResult:
    return build_result(trial, dataclasses.replace(RAW, backend=backend, cores=cores))


def test_build_result_counts_busy_threads_and_records_cores():
    r = _result()
    assert BUSY_SHARE == 0.01
    assert r.busy_threads == 8  # live_migration (0.5 ms of 100 ms) and python3 (not accounted) left out
    assert r.cores == 2 and r.oversubscribed
    assert not _result(cores=8).oversubscribed
    assert not dataclasses.replace(r, cores=0).oversubscribed  # not recorded: nothing claimed
    assert busy_threads({"a": 1.0, "b": 0.0}, 0.0) == 1 and busy_threads({}, 100.0) == 0


def test_result_round_trips_and_an_older_record_loads_as_not_recorded():
    r = _result()
    back = TrialResult.from_dict(r.to_dict())
    assert (back.busy_threads, back.cores) == (8, 2)
    old = r.to_dict()
    del old["busy_threads"], old["cores"]
    back = TrialResult.from_dict(old)
    assert (back.busy_threads, back.cores) == (0, 0) and not back.oversubscribed
    with pytest.raises(DsalabError, match="busy_threads"):
        TrialResult.from_dict(r.to_dict() | {"busy_threads": "many"})


def test_the_emulated_sentence_for_one_result():
    (sentence,) = caveats.caveats(_result())
    assert "8 busy threads on 2 cores" in sentence and "upper bound" in sentence
    assert 'runner = "model"' in sentence and "dsalab.model.predict" in sentence
    assert caveats.caveats(_result(cores=8)) == []  # every busy thread had a core
    assert caveats.caveats(_result("cpu-numba", trial=TRIAL.replace(detector="cpu-numba"))) == []
    assert "not recorded" in caveats.caveats(dataclasses.replace(_result(), cores=0))[0]
    assert caveats.format_caveats(_result()).startswith("note: The emulated DSA shares the host's cores")


def test_the_model_sentence_names_the_profile():
    sentence = caveats.model_sentence("data/hardware/spr-8457c-dsa.toml")
    assert sentence == (
        "These numbers are predicted by dsalab.model from hardware profile spr-8457c-dsa; nothing was migrated."
    )
    assert caveats.UNKNOWN_PROFILE in caveats.model_sentence(None)
    (only,) = caveats.caveats(dataclasses.replace(_result(), backend="model"))
    assert "predicted by dsalab.model" in only and "nothing was migrated" in only
    named = caveats.format_caveats(dataclasses.replace(_result(), backend="model"), hardware_profile="my-host")
    assert named == "note: " + caveats.model_sentence("my-host")
    ds = dataclasses.replace(_result(), backend="model").to_dataset()
    ds.attrs["hardware_profile"] = "spr-8457c-dsa"
    assert caveats.caveats(ds) == [caveats.model_sentence("spr-8457c-dsa")]


def test_caveats_refuses_anything_else():
    with pytest.raises(DsalabError, match="caveats"):
        caveats.caveats(42)
    with pytest.raises(DsalabError, match="hardware_profile=3"):
        caveats.caveats(_result(), hardware_profile=3)


def _dataset(cores_per_trial: list[int]):
    """A sweep over detector (cpu-numba, dsa-emulated) x repeats, dsa-emulated trials with these core counts."""
    recs = []
    for rep, cores in enumerate(cores_per_trial):
        cpu = dataclasses.replace(_result("cpu-numba", cores, TRIAL.replace(detector="cpu-numba")))
        recs.append(TrialRecord({"detector": "cpu-numba"}, rep, cpu))
        recs.append(TrialRecord({"detector": "dsa-emulated"}, rep, _result("dsa-emulated", cores)))
    return build_dataset(recs, {"detector": ["cpu-numba", "dsa-emulated"]}, len(cores_per_trial))


def test_dataset_caveats_say_where_it_applies():
    ds = _dataset([2, 16])
    assert ds.busy_threads.dtype == np.int64 and int(ds.cores.sel(detector="dsa-emulated", repeat=0)) == 2
    (sentence,) = caveats.caveats(ds)
    assert "8 busy threads on 2 cores, in 1 of 2 dsa-emulated trials" in sentence
    assert caveats.caveats(_dataset([16, 16])) == []
    (everywhere,) = caveats.caveats(_dataset([2, 2]))
    assert "(8 busy threads on 2 cores)" in everywhere


def test_summary_and_figure_titles_carry_the_caveat():
    ds = _dataset([2, 2])
    summary = analysis.summarize(ds)
    assert summary.caveats == caveats.caveats(ds)
    text = analysis.format_summary(summary, ds)
    assert "note: The emulated DSA shares the host's cores (8 busy threads on 2 cores)" in text
    title = figure_title("Host CPU", ds, ["detector"])
    assert "emulated DSA shares" in title["text"]
    assert all(len(line) < 160 for line in title["text"].split("<br>"))  # wrapped, not one endless line
    clean = figure_title("Host CPU", _dataset([16, 16]), ["detector"])
    assert "shares the host" not in clean["text"] and "pad" not in clean
    for fig in (plots.thread_cpu(ds), plots.latency(ds)):
        assert "emulated DSA shares" in fig.layout.title.text
        lines = fig.layout.title.text.count("<br>") + 1
        assert fig.layout.margin.t >= fig.layout.title.pad.b >= 21 * (lines - 1)  # above the plot, not on it


def test_an_older_file_without_the_fields_reads_as_not_recorded(tmp_path):
    ds = _dataset([2, 2]).drop_vars(["busy_threads", "cores"])
    ds.attrs["schema_version"] = 3
    path = tmp_path / "old.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    back = results.read(path)
    ok = back.status == "ok"
    assert (back.busy_threads.where(ok) == 0).all() and (back.cores.where(ok) == 0).all()
    assert back.busy_threads.attrs["units"] == "threads"
    (sentence,) = caveats.caveats(back)
    assert "threads per core not recorded" in sentence
    both = results.combine([back, results.read(results.write(_dataset([2, 2]), tmp_path / "new.nc"))], ["a", "b"])
    assert set(np.unique(both.cores.values)) <= {0, 2}
    (combined,) = caveats.caveats(both)  # a run dimension: the recorded run is named, in its share of the trials
    assert "(8 busy threads on 2 cores, in 2 of 4 dsa-emulated trials)" in combined


@pytest.mark.timeout(300)
def test_dsalab_run_on_one_core_says_the_emulated_device_shared_it(tmp_path):
    """An engine trial on one core: the result records every busy thread and the core, and `dsalab run` prints
    the caveat under its table (a subprocess pinned to one CPU, so the test means the same on any machine)."""
    cpu = min(os.sched_getaffinity(0))
    out = str(tmp_path / "one.nc")
    script = (
        f"import os, sys; os.sched_setaffinity(0, {{{cpu}}}); from dsalab.cli import main; "
        "sys.argv = ['dsalab', 'run', '--guest', '16MiB', '--channels', '2', '--detector', 'dsa-emulated', "
        f"'--quiet', '--out', {out!r}]; main()"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "note: The emulated DSA shares the host's cores (" in r.stdout and "on 1 cores" in r.stdout
    ds = results.read(tmp_path / "one.nc")
    assert int(ds.cores.values.ravel()[0]) == 1 and int(ds.busy_threads.values.ravel()[0]) > 1
