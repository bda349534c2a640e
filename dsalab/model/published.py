"""Published figures of one Sapphire Rapids DSA device, each with where it is published: the device section of
every hardware profile that describes real DSA (``dsalab calibrate`` copies it into this machine's profile, since
no DSA device is here to measure). Numbers that nobody publishes are marked as estimates and say from what.

Abbreviations in sources: LightDSA = github.com/izumihanako/LightDSA (EuroSys '26 artifact; its "MB/s" are MiB/s);
idxd-config#40 = github.com/intel/idxd-config/issues/40 (``accel-config list`` of a Xeon Platinum 8455C, a
Sapphire Rapids cloud part like the seed's 8457C); linux = torvalds/linux.
"""

from __future__ import annotations

from dsalab.model.profile import Curve, Entry, Setting
from dsalab.model.quantities import Quantity

_Q = Quantity.of

#: the device: resources, throughput curve, latency (published, with sources)
DEVICE: dict[str, Entry] = {
    "dsa.engines_per_device": _Q(
        "count", 4, "engines", "idxd-config#40: max_engines 4; sysfs max_engines (linux Documentation/ABI/stable)"
    ),
    "dsa.work_queues": _Q("count", 8, "count", "idxd-config#40: max_work_queues 8; seed thread, Liu Yuan1 (Intel)"),
    "dsa.wq_entries": _Q("count", 128, "entries", "idxd-config#40: work_queue_size 128 (all WQs of a device together)"),
    "dsa.max_batch": _Q("count", 1024, "descriptors", "idxd-config#40: max_batch_size 1024 (GENCAP bits 21-24)"),
    "dsa.descriptor_bytes": _Q("size", 64, "B", "linux include/uapi/linux/idxd.h: struct dsa_raw_desc (8 x u64)"),
    "dsa.completion_record_bytes": _Q(
        "size", 32, "B", "linux include/uapi/linux/idxd.h: struct dsa_raw_completion_record (4 x u64)"
    ),
    "dsa.throughput": Curve(
        (256.0, 1024.0, 4096.0, 65536.0),
        tuple(v * (1 << 20) for v in (5974.0, 28083.0, 29742.0, 30191.0)),
        "MiB/s",
        (5974.0, 28083.0, 29742.0, 30191.0),
        "LightDSA AE/figure3/compval_sequential.txt (compare-value, batches of 32, 4 engines) for 256 B-4 KiB; "
        "expr/paper/chapter3_4_ALIGN/data/batch_compval.data (1 engine) for 64 KiB",
    ),
    "dsa.completion_latency": _Q(
        "time",
        0.70,
        "us",
        "LightDSA expr/paper/chapter3_4_ALIGN/data/single_compval.data: a synchronous 64 B compare-value takes "
        "0.67-0.73 us (4 KiB: 1.00-1.02 us)",
    ),
    "dsa.submit_path": Setting("enqcmd", "the seed's design, step 4: descriptors are queued with _enqcmd"),
    "dsa.busy_poll": Setting(
        True, "the seed's design, item 4: a dedicated dsa_completion thread busy-polls (with _mm_pause)"
    ),
}

#: CPU costs of submitting and polling that no one publishes: estimates, each saying from what
ESTIMATES: dict[str, Entry] = {
    "dsa.submit_enqcmd": _Q(
        "time/submission",
        0.5,
        "us/submission",
        "estimate, not published: ENQCMD is a non-posted write that waits for the device's answer; "
        "intel/dsa-perf-micros doc/sample_command_lines.rst says one is in flight per core and 4 cores are needed "
        "to keep a shared WQ busy with 4 KiB descriptors, i.e. ~4 x 4 KiB / 30 GB/s = 0.55 us each",
    ),
    "dsa.submit_movdir64b": _Q(
        "time/submission",
        0.1,
        "us/submission",
        "estimate, not published: MOVDIR64B is a posted 64 B write and several can be in flight "
        "(intel/dsa-perf-micros doc/sample_command_lines.rst)",
    ),
    "dsa.prepare_descriptor": _Q(
        "time/descriptor",
        0.03,
        "us/descriptor",
        "upper bound, published: inside a batch of small (<= 1 KiB) compare-values one core submits a descriptor "
        "every 0.03-0.06 us, its preparation included (LightDSA expr/paper/chapter3_4_ALIGN/data/batch_compval.data)",
    ),
    "dsa.poll": _Q(
        "time/poll",
        0.1,
        "us/poll",
        "estimate, not published: one read of a completion record the device wrote (a cache-line miss to memory)",
    ),
}
