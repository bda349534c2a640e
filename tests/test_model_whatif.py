"""dsalab.model.whatif: savings against the CPU twin, break-even, best batch/packet, sensitivity."""

from __future__ import annotations

import pytest
from model_fixtures import test_profile

from dsalab.errors import InvalidArgument
from dsalab.model import predict, whatif
from dsalab.trial import Trial

PROFILE = test_profile()
BASE = Trial(guest_bytes=1 << 30, channels=4, detector="dsa-hardware")


def test_saving_is_the_dsa_point_against_its_cpu_twin():
    s = whatif.saving(BASE, PROFILE, baseline="cpu-numba")
    dsa = predict(BASE, PROFILE)
    cpu = predict(BASE.replace(detector="cpu-numba"), PROFILE)
    assert s["host_cpu_saved_pct"] == pytest.approx(100 * (1 - dsa.host_cpu_ms / cpu.host_cpu_ms))
    assert s["time_saved_pct"] == pytest.approx(100 * (1 - dsa.total_time_ms / cpu.total_time_ms))


def test_break_even_is_where_the_saving_changes_sign():
    curve = whatif.break_even(BASE, PROFILE)
    saved = curve["host_cpu_saved_pct"].to_numpy()
    for x in curve.attrs["break_even"]:
        below = curve[curve["normal_ratio"] < x]["host_cpu_saved_pct"]
        above = curve[curve["normal_ratio"] > x]["host_cpu_saved_pct"]
        assert below.iloc[-1] * above.iloc[0] <= 0
    # the zero check is what DSA takes away: it saves most on an all-zero guest
    assert saved[0] == saved.max()


def test_best_batch_packet_is_sorted_and_skips_batches_larger_than_a_packet():
    best = whatif.best_batch_packet(BASE, PROFILE, [16, 128, 1024], [64 << 10, 512 << 10])
    assert list(best["dsa_host_cpu_ms"]) == sorted(best["dsa_host_cpu_ms"])
    assert not ((best["packet_bytes"] == 64 << 10) & (best["batch_size"] > 16)).any()
    assert len(best) == 1 + 2


def test_sensitivity_covers_every_combination_and_faster_devices_save_more():
    moves = whatif.sensitivity(BASE.replace(normal_ratio=0.0), PROFILE, cores=[2, 8])
    assert len(moves) == 5 * 2 * 2
    thread = moves[(moves["completion"] == "thread") & (moves["cores"] == 8)]
    assert list(thread["host_cpu_saved_pct"]) == sorted(thread["host_cpu_saved_pct"])


def test_the_baseline_must_be_a_cpu_detector():
    with pytest.raises(InvalidArgument, match=r"baseline='dsa-emulated' is not allowed.*cpu-numba"):
        whatif.saving(BASE, PROFILE, baseline="dsa-emulated")
