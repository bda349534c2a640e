"""The tenant contention model: conservation, one tenant = predict(), a saturated device runs at its profile's
throughput, no starvation under FIFO with bounded retries, invalid configurations refused, the dataset's layout."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import tenants_support
from hypothesis import given, settings
from hypothesis import strategies as st

from dsalab.errors import DsalabError
from dsalab.model import predict, tenants
from dsalab.model.tenants_config import BACKOFF_MAX_SHIFT

pytestmark = pytest.mark.timeout(120)

PROFILE = tenants_support.profile()
PAGE = 4096


def crowded(policy="fifo", **kw):
    """8 tenants on one device whose queue holds 4: the queue fills, retries run out, the CPU takes batches."""
    args = dict(profile=PROFILE, policy=policy, channels=2, batch_size=8, packet=64 << 10, wq_size=4, max_retries=2)
    args.update(kw)
    return tenants.scenario(kw.pop("count", 8), "8MiB", 1, **{k: v for k, v in args.items() if k != "count"})


def test_conservation_every_page_checked_once_by_a_device_or_the_cpu():
    out = tenants.simulate(crowded(), PROFILE)
    assert sum(t.fallback_pages for t in out.tenants) > 0, "the scenario must make the CPU take batches"
    for t in out.tenants:
        assert t.device_pages + t.fallback_pages == (8 << 20) // PAGE
        assert t.device_pages == len(t.queue_delays_ns) * 8  # every device batch started once, 8 pages each
    assert sum(out.device_pages) == sum(t.device_pages for t in out.tenants)


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(1, 6),
    devices=st.integers(1, 3),
    channels=st.integers(1, 3),
    batch=st.sampled_from([1, 4, 16, 32]),
    wq=st.integers(1, 8),
    retries=st.integers(0, 4),
    policy=st.sampled_from(tenants.POLICIES),
    ratio=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_conservation_property(count, devices, channels, batch, wq, retries, policy, ratio):
    try:
        sc = tenants.scenario(
            count, "1MiB", devices, profile=PROFILE, policy=policy, channels=channels, batch_size=batch,
            packet=128 << 10, wq_size=wq * 2, max_retries=retries, normal_ratio=ratio, priorities=(15, 3),
        )  # fmt: skip
    except DsalabError as e:  # more tenants on a device than it has dedicated queues (or entries) for
        assert policy == "dedicated" and "groups" in str(e)
        return
    out = tenants.simulate(sc, PROFILE)
    for t in out.tenants:
        assert t.device_pages + t.fallback_pages == (1 << 20) // PAGE
        assert t.time_ns > 0 and math.isfinite(t.host_cpu_ns)
        assert t.fallback_batches * retries <= t.retries <= t.batches * retries
    assert sum(out.device_pages) == sum(t.device_pages for t in out.tenants)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("channels", [1, 2])
def test_one_tenant_without_contention_equals_predict(ratio, channels):
    sc = tenants.scenario(1, "64MiB", channels, profile=PROFILE, channels=channels, normal_ratio=ratio)
    ds = tenants.run(sc, PROFILE, provenance=False)
    expected = predict(sc.tenants[0].trial(), PROFILE.replace(dsa__devices=channels))
    assert float(ds.migration_time_ms[0]) == pytest.approx(expected.total_time_ms, rel=1e-12)
    assert float(ds.host_cpu_ms[0]) == pytest.approx(expected.host_cpu_ms, rel=1e-12)
    assert int(ds.queue_full_retries[0]) == 0 and int(ds.fallback_pages[0]) == 0
    assert float(ds.queue_delay_us.sel(statistic="max")[0]) == pytest.approx(0.0, abs=1e-6)


def test_a_saturated_device_runs_at_its_profiles_throughput():
    sc = tenants.scenario(16, "16MiB", 1, profile=PROFILE, channels=2, max_retries=1000)
    out = tenants.simulate(sc, PROFILE)
    starts, busy = out.device_starts_ns[0], out.device_busy_ns[0]
    span = (starts + busy).max() - starts.min()
    rate = out.device_pages[0] * PAGE / span * 1e9
    assert rate == pytest.approx(PROFILE.throughput.at(PAGE), rel=1e-3)
    assert sum(t.fallback_pages for t in out.tenants) == 0
    ds = tenants.to_dataset(out, provenance=False)
    assert float(ds.device_utilisation.mean()) > 0.95


def test_a_saturated_one_engine_device_completes_a_batch_every_busy_plus_latency():
    """One engine holds each descriptor for its bytes and its completion latency: throughput = batch / (busy +
    latency), well below the profile's throughput for small batches (a closed form, not the profile's rate)."""
    sc = tenants.scenario(8, "4MiB", 1, profile=PROFILE, channels=2, batch_size=4, packet=16 << 10, engines=1,
                          max_retries=10_000)  # fmt: skip
    out = tenants.simulate(sc, PROFILE)
    starts = np.sort(out.device_starts_ns[0])
    page_ns = PAGE / PROFILE.throughput.at(PAGE) * 1e9
    period = 4 * page_ns + PROFILE["dsa.completion_latency"]
    steady = np.diff(starts[: len(starts) // 2])
    assert steady == pytest.approx(period, rel=1e-9)
    rate = 4 * PAGE / period * 1e9
    assert rate < 0.5 * PROFILE.throughput.at(PAGE)


def test_no_tenant_starves_under_fifo_with_bounded_retries():
    sc = crowded(count=32)
    out = tenants.simulate(sc, PROFILE)
    page_ns = PAGE / PROFILE.throughput.at(PAGE) * 1e9
    latency = PROFILE["dsa.completion_latency"]
    submit = PROFILE["dsa.submit_enqcmd"]
    backoff = sum(submit + sc.pause_ns * (1 << min(a, BACKOFF_MAX_SHIFT)) for a in range(sc.max_retries))
    q = sc.devices[0].work_queues[0]
    wait = (q.size + sc.devices[0].engines) * 8 * page_ns + latency  # ahead of a batch in FIFO, then its own
    cpu = 8 * PROFILE["host.zero_check.cpu-native.zero_page"]
    worst_batch = backoff + max(wait, cpu)
    for t in out.tenants:
        batches_per_channel = math.ceil(t.batches / t.tenant.channels)
        # every tenant finishes within its bound: a full queue costs a batch its retries and the CPU, never more
        assert t.time_ns <= t.predicted.total_time_ms * 1e6 + batches_per_channel * worst_batch
        if t.queue_delays_ns.size:
            assert t.queue_delays_ns.max() <= backoff + (q.size + sc.devices[0].engines) * 8 * page_ns + 1e-6
    slow = [t.time_ns / (t.predicted.total_time_ms * 1e6) for t in out.tenants]
    assert max(slow) / min(slow) < 1.5, "FIFO with bounded retries treats equal tenants alike"


def test_priority_queues_serve_high_priority_tenants_first():
    sc = tenants.scenario(8, "8MiB", 1, profile=PROFILE, policy="priority", channels=2, batch_size=8,
                          packet=64 << 10, priorities=(15, 1), max_retries=1000)  # fmt: skip
    ds = tenants.run(sc, PROFILE, provenance=False)
    high = ds.migration_time_ms.values[0::2].mean()
    low = ds.migration_time_ms.values[1::2].mean()
    assert high < low
    assert [q.priority for q in sc.devices[0].work_queues] == [15, 1]


def test_dedicated_queues_and_quota():
    sc = crowded("dedicated", count=4, wq_size=8)  # one dedicated queue per tenant, as idxd allows
    assert [(q.mode, q.group, q.size) for q in sc.devices[0].work_queues] == [("dedicated", g, 2) for g in range(4)]
    out = tenants.simulate(sc, PROFILE)
    assert all(t.device_pages + t.fallback_pages == (8 << 20) // PAGE for t in out.tenants)
    quota = tenants.simulate(crowded("quota", quota=1, wq_size=64), PROFILE)
    fifo = tenants.simulate(crowded("fifo", wq_size=64), PROFILE)
    assert sum(t.retries for t in quota.tenants) > sum(t.retries for t in fifo.tenants)


def test_dedicated_queue_shared_by_processes_is_refused():
    """idxd lets one client open a dedicated WQ: tenants (QEMU processes) sharing one are refused, naming it."""
    with pytest.raises(DsalabError, match=r"dedicated work queue 0 of device 0='4: vm0, vm2, vm4, vm6'.*1 tenant"):
        crowded("dedicated", groups=2)
    with pytest.raises(DsalabError, match=r"tenant groups on device 0=25 .*at most 8"):
        tenants.scenario(100, "1MiB", 8, profile=PROFILE, policy="dedicated", channels=2)
    dev = tenants.Device(4, (tenants.WorkQueue(8, "dedicated"),))
    with pytest.raises(DsalabError, match="dedicated work queue 0 of device 0"):
        tenants.Scenario((tenants.Tenant("a"), tenants.Tenant("b")), (dev,), "fifo")


def test_dedicated_queues_submit_with_movdir64b():
    from dsalab.model.tenants_sim import _Sim

    sc = crowded("dedicated", count=2, wq_size=2, max_retries=6)
    t = tenants.simulate(sc, PROFILE).tenants[0]
    move, enq = PROFILE["dsa.submit_movdir64b"], PROFILE["dsa.submit_enqcmd"]
    assert move != enq
    expected = predict(t.tenant.trial(), PROFILE.replace(dsa__submit_path="movdir64b"))
    assert t.predicted.host_cpu_ms == pytest.approx(expected.host_cpu_ms, rel=1e-12)
    sim = _Sim(sc, PROFILE)
    pauses = sum(sc.pause_ns * (1 << min(a, BACKOFF_MAX_SHIFT)) for a in range(sc.max_retries))
    assert sim.backoff_dwq[-1] == pytest.approx(6 * move + pauses)
    assert sim.backoff[-1] == pytest.approx(6 * enq + pauses)


def test_retry_cpu_is_the_backoff_budget_of_each_batch_given_up():
    """A batch that falls back spun the whole backoff (max_retries submissions and their PAUSEs) first."""
    sc = crowded(packet=32 << 10, max_retries=5)  # one batch per packet: alone, a tenant never finds its queue full
    out = tenants.simulate(sc, PROFILE)
    full = sum(PROFILE["dsa.submit_enqcmd"] + sc.pause_ns * (1 << min(a, BACKOFF_MAX_SHIFT)) for a in range(5))
    assert sum(t.fallback_batches for t in out.tenants) > 0
    for t in out.tenants:
        assert t.fallback_batches * full <= t.retry_cpu_ns <= t.batches * full * (1 + 1e-12)
        assert t.fallback_batches * 5 <= t.retries <= t.batches * 5
        assert t.fallback_cpu_ns == pytest.approx(t.fallback_pages * PROFILE["host.zero_check.cpu-native.zero_page"])


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: tenants.Scenario((tenants.Tenant(),), (tenants.Device(4, (tenants.WorkQueue(200),)),)).check(PROFILE),
         ["entries", "200", "128"]),
        (lambda: tenants.WorkQueue(16, priority=16), ["priority", "16", "1 to 15"]),
        (lambda: tenants.WorkQueue(16, priority=0), ["priority", "0", "1 to 15"]),
        (lambda: tenants.Device(0), ["engines", "0", ">= 1"]),
        (lambda: tenants.Tenant(channels=0), ["channels", "0", "1 to 64"]),
        (lambda: tenants.Tenant(priority=99), ["priority", "99", "1 to 15"]),
        (lambda: tenants.scenario(2, "1MiB", 1, profile=PROFILE, engines=5), ["engines", "5", "1 to 4"]),
        (lambda: tenants.scenario(2, "1MiB", 1, profile=PROFILE, policy="lottery"), ["policy", "lottery", "fifo"]),
        (lambda: tenants.WorkQueue(8, mode="shared", threshold=9), ["threshold", "9", "0 to"]),
        (lambda: tenants.WorkQueue(8, mode="bypass"), ["mode", "bypass", "shared, dedicated"]),
        (lambda: tenants.scenario(2, "1MiB", 1, profile=PROFILE, wq_size=129), ["entries", "129", "128"]),
    ],
)  # fmt: skip
def test_invalid_configurations_name_the_value_and_what_is_allowed(make, words):
    with pytest.raises(DsalabError) as info:
        make()
    message = str(info.value)
    assert "\n" not in message
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"


def test_dataset_layout_units_and_file_round_trip(tmp_path):
    import xarray as xr

    ds = tenants.run(crowded(), PROFILE)
    for name in ds.data_vars:
        assert ds[name].attrs.get("units") and ds[name].attrs.get("long_name"), name
    for key, value in ds.attrs.items():
        assert isinstance(value, str | int | float | np.integer | np.floating), key
    assert ds.attrs["backend"] == "model" and ds.attrs["policy"] == "fifo" and "git_commit" in ds.attrs
    assert ds.sizes["tenant"] == 8 and ds.sizes["statistic"] == 4
    assert 0 < float(ds.fairness_jain) <= 1
    path = tenants.write(ds, tmp_path / "t.nc")
    back = xr.load_dataset(path, engine="h5netcdf")
    xr.testing.assert_identical(back.drop_vars(list(back.coords)), ds.drop_vars(list(ds.coords)))
    rows = {r[0]: r for r in tenants.summary(ds)}
    assert rows["migration_time_ms"][3] == pytest.approx(float(ds.migration_time_ms.max()))
    assert rows["fallback_pages"][2] == pytest.approx(float(ds.fallback_pages.mean()))


def test_jain_index():
    assert tenants.jain(np.ones(5)) == pytest.approx(1.0)
    assert tenants.jain(np.array([1.0, 0, 0, 0])) == pytest.approx(0.25)
    assert tenants.jain(np.array([1.0, 2.0, 3.0])) == pytest.approx(36 / 42)


def test_gaps_are_jittered_by_default_so_equal_tenants_do_not_run_in_lockstep():
    lock = tenants.simulate(crowded(jitter=0.0, max_retries=1000, wq_size=64), PROFILE)
    free = tenants.simulate(crowded(max_retries=1000, wq_size=64), PROFILE)

    def steps(out):  # lockstep: equal tenants finish one after another, a constant step apart
        d = np.diff(np.sort([t.time_ns for t in out.tenants]))
        return np.ptp(d) / d.mean()

    assert steps(lock) < 1e-3 < 0.1 < steps(free)
    alone = tenants.simulate(tenants.scenario(1, "8MiB", 1, profile=PROFILE, packet=64 << 10), PROFILE).tenants[0]
    assert alone.time_ns / 1e6 == pytest.approx(alone.predicted.total_time_ms, rel=1e-12)  # still predict alone
    with pytest.raises(DsalabError, match=r"jitter=0\.9 is not allowed"):
        crowded(jitter=0.9)


def test_arrivals_staggered_and_poisson():
    st_ = tenants.scenario(4, "1MiB", 1, profile=PROFILE, arrival="staggered", interval_ms=2.0)
    assert [t.start_ms for t in st_.tenants] == [0.0, 2.0, 4.0, 6.0]
    po = tenants.scenario(4, "1MiB", 1, profile=PROFILE, arrival="poisson", interval_ms=2.0, seed=3)
    starts = [t.start_ms for t in po.tenants]
    assert starts[0] == 0.0 and starts == sorted(starts)
    out = tenants.simulate(st_, PROFILE)
    assert out.end_ns >= 6e6


def _outstanding_union(t, page_ns, latency):
    """The union of [accepted, completed] of a tenant's device batches (no retries: accepted when submitted), ns."""
    starts = t.submitted_ns + t.queue_delays_ns
    ends = starts + (t.device_pages / max(len(starts), 1)) * page_ns + latency
    order = np.argsort(t.submitted_ns)
    total, lo, hi = 0.0, None, None
    for a, b in zip(t.submitted_ns[order], ends[order], strict=True):
        if hi is None or a > hi:
            total += 0.0 if hi is None else hi - lo
            lo, hi = a, b
        else:
            hi = max(hi, b)
    return total + (hi - lo if hi is not None else 0.0)


def test_busy_poll_cpu_is_the_union_of_outstanding_batches_beyond_alone():
    """The dsa_completion thread spins while any batch of its tenant is outstanding, whatever the senders do."""
    prof = PROFILE.replace(dsa__busy_poll=True)
    page_ns = PAGE / prof.throughput.at(PAGE) * 1e9
    latency = prof["dsa.completion_latency"]
    sc = crowded(count=10, max_retries=0, wq_size=8, packet=32 << 10, jitter=0.0)  # every tenant's alone run alike
    out = tenants.simulate(sc, prof)
    alone = tenants.simulate(dataclasses.replace(sc, tenants=sc.tenants[:1]), prof).tenants[0]
    base = _outstanding_union(alone, page_ns, latency)
    assert sum(t.fallback_batches for t in out.tenants) > 0
    for t in out.tenants:
        assert t.wait_cpu_ns == pytest.approx(_outstanding_union(t, page_ns, latency) - base, rel=1e-9)
        assert t.wait_cpu_ns > 0


def test_poll_mode_charges_each_sender_its_own_waits():
    sc = crowded(count=10, max_retries=0, wq_size=8, packet=32 << 10)
    sc = dataclasses.replace(sc, tenants=tuple(dataclasses.replace(t, completion="poll") for t in sc.tenants))
    out = tenants.simulate(sc, PROFILE)
    alone = tenants.simulate(dataclasses.replace(sc, tenants=sc.tenants[:1]), PROFILE).tenants[0]
    for t in out.tenants:
        assert t.wait_cpu_ns > 0
        # a sender waits at most the whole of its run beyond alone
        assert t.wait_cpu_ns <= sum(np.maximum(t.channel_extra_ns, 0)) + alone.time_ns * t.tenant.channels


def test_stride_arbitration_a_returning_queue_does_not_monopolise_the_device():
    """Priority-1 tenants arriving late join at the global pass: they get ~1/16 of the device, not all of it."""
    high = tuple(tenants.Tenant(f"h{i}", 64 << 20, priority=15) for i in range(6))
    low = tuple(tenants.Tenant(f"l{i}", 8 << 20, priority=1, start_ms=5.0) for i in range(6))
    dev = tenants.Device(4, (tenants.WorkQueue(64, priority=15), tenants.WorkQueue(64, priority=1)))
    sc = tenants.Scenario(high + low, (dev,), "priority", max_retries=1000)
    out = tenants.simulate(sc, PROFILE)
    starts = []
    for t in out.tenants:
        starts += [(s, t.tenant.priority) for s in t.submitted_ns + t.queue_delays_ns]
    first = sorted(x for x in starts if x[0] >= 5e6)[:200]
    assert max(s for s, p in starts if p == 15) > first[-1][0], "priority 15 still has work in the window"
    share = sum(p == 1 for _, p in first) / len(first)
    assert share < 0.15, f"priority 1 got {share:.1%} of the device in the window"


@pytest.mark.parametrize(("channels", "devices"), [(2, 1), (4, 1), (8, 1), (8, 2), (3, 2)])
def test_one_tenant_alone_equals_predict_with_more_channels_than_devices(channels, devices):
    sc = tenants.scenario(1, "64MiB", devices, profile=PROFILE, channels=channels)
    t = tenants.simulate(sc, PROFILE).tenants[0]
    expected = predict(sc.tenants[0].trial(), PROFILE.replace(dsa__devices=devices))
    assert t.time_ns / 1e6 == pytest.approx(expected.total_time_ms, rel=1e-12)
    assert t.host_cpu_ns / 1e6 == pytest.approx(expected.host_cpu_ms, rel=1e-12)


def test_the_host_is_shared_cores_stretch_the_simulation():
    """Tenants needing more cores than the host has take longer, as predict() stretches one VM."""
    prof = PROFILE.replace(host__cores=2)
    sc = crowded(count=8)
    ds = tenants.run(sc, prof, provenance=False)
    raw = tenants.simulate(sc, prof)
    need = sum(t.host_cpu_ns for t in raw.tenants) / raw.end_ns
    assert float(ds.cores_needed) == pytest.approx(need)
    assert need > 2 and float(ds.host_stretch) == pytest.approx(need / 2) and ds.attrs["host_limit"] == "cores"
    assert ds.migration_time_ms.values == pytest.approx([t.time_ns / 1e6 * need / 2 for t in raw.tenants])
    assert float(ds.makespan_ms) == pytest.approx(raw.end_ns / 1e6 * need / 2)
    roomy = tenants.run(sc, PROFILE, provenance=False)
    assert float(roomy.host_stretch) == 1.0 and roomy.attrs["host_limit"] == "none"


def test_the_host_is_shared_all_cpu_needs_cores_and_memory_bandwidth():
    sc = tenants.scenario(200, "64MiB", 1, profile=PROFILE, channels=2)
    ds = tenants.cpu_only(sc, PROFILE)
    alone = predict(sc.tenants[0].trial().replace(detector="cpu-native"), PROFILE)
    cores = 200 * alone.host_cpu_ms / alone.total_time_ms
    read = 200 * (64 << 20) / (alone.total_time_ms * 1e6)  # GB/s: every page is zero, read whole
    assert float(ds.cores_needed) == pytest.approx(cores) and float(ds.memory_read_gbps) == pytest.approx(read)
    stretch = max(cores / PROFILE["host.cores"], read * 1e9 / PROFILE["host.memory_read_bandwidth"])
    assert stretch > 1 and float(ds.host_stretch) == pytest.approx(stretch)
    assert ds.migration_time_ms.values == pytest.approx(alone.total_time_ms * stretch)
    assert ds.attrs["detector"] == "cpu-native"
    with pytest.raises(DsalabError, match="detector='dsa-hardware' is not allowed; allowed: cpu-native"):
        tenants.cpu_only(sc, PROFILE, "dsa-hardware")
