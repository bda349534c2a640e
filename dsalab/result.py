"""The outcome of one trial, for every backend: query-migrate-like statistics, per-thread CPU, device counters,
verification, and the :class:`~dsalab.backends.Backend` that produced it (a leaf module: nothing heavy)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from dsalab import metrics as _metrics
from dsalab.backends import Backend
from dsalab.errors import InvalidArgument, InvalidType
from dsalab.threads import SOURCE_THREADS, cpu_sums, split_threads, thread_order  # noqa: F401 (split_threads)
from dsalab.trial import Trial
from dsalab.units import format_bytes


@dataclasses.dataclass
class TrialResult:
    """Statistics of one migration (names follow QEMU's ``query-migrate`` where it has one; units in names).

    ``backend`` is a :class:`~dsalab.backends.Backend` (a plain string naming one is converted; anything else is
    refused). ``thread_cpu_ms`` maps thread names (``live_migration``, ``multifdsend_<i>``, ``dsa_completion``,
    ``multifdrecv_<i>``, ``dsa_engine_<d>_<e>``, ``guest_dirty``) to CPU ms. ``host_cpu_ms`` sums the source side as
    the seed does; destination and emulated-device time are reported apart from it.
    """

    trial: Trial
    backend: Backend
    total_time_ms: float
    setup_time_ms: float
    downtime_ms: float
    throughput_mbps: float
    transferred_bytes: int
    total_bytes: int
    zero_pages: int
    normal_pages: int
    forced_normal_pages: int
    pages_sent: int
    iterations: int
    dirty_sync_count: int
    dirtied_pages: int
    converged: bool
    thread_cpu_ms: dict[str, float]
    host_cpu_ms: float
    destination_cpu_ms: float
    device_cpu_ms: float
    device_busy_ms: float
    guest_cpu_ms: float
    detect_cpu_ms: float
    send_cpu_ms: float
    sender_cpu_ms: float
    packets: int
    pages_offloaded: int
    fallback_pages: int
    fallback_pages_by_reason: dict[str, int]
    queue_full_retries: int
    page_faults: int
    verified: bool
    mismatched_pages: int
    channel_stats: list[dict[str, int]] = dataclasses.field(default_factory=list)
    #: migration and device threads busy for >= 1% of the total time (0: not recorded, e.g. an older record)
    busy_threads: int = 0
    #: CPUs the migrating process could run on (``os.sched_getaffinity``; 0: not recorded)
    cores: int = 0

    def __post_init__(self) -> None:
        try:
            self.backend = Backend(self.backend)
        except ValueError:
            allowed = ", ".join(b.value for b in Backend)
            raise InvalidArgument(
                f"TrialResult field backend={self.backend!r:.100} is not allowed: allowed is {allowed}"
            ) from None

    @property
    def oversubscribed(self) -> bool:
        """True when more threads were busy than the process had cores (both recorded): the threads then shared
        cores, so an emulated device's engines took time from the host's threads."""
        return self.cores > 0 and self.busy_threads > self.cores

    @property
    def host_cpu_ms_per_gb(self) -> float:
        """Host CPU per GB (1e9 bytes) of guest RAM migrated, ms/GB."""
        return self.host_cpu_ms / (self.total_bytes / 1e9)

    @property
    def packet_overhead_fraction(self) -> float:
        """Sender CPU outside zero-page detection and sendmsg, as a fraction of sender CPU (NaN where a backend
        does not split its sender CPU)."""
        if math.isnan(self.detect_cpu_ms) or math.isnan(self.send_cpu_ms):
            return math.nan
        if self.sender_cpu_ms <= 0:
            return 0.0
        return max(0.0, self.sender_cpu_ms - self.detect_cpu_ms - self.send_cpu_ms) / self.sender_cpu_ms

    @property
    def _verified_text(self) -> str:
        if self.backend == Backend.MODEL:
            return "n/a (predicted by the model: nothing was migrated)"
        return "yes" if self.verified else "NO"

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-ready values (the trial as :meth:`Trial.to_dict`); :meth:`from_dict` inverts."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["trial"] = self.trial.to_dict()
        out["backend"] = str(self.backend)
        out["thread_cpu_ms"] = dict(self.thread_cpu_ms)
        out["fallback_pages_by_reason"] = dict(self.fallback_pages_by_reason)
        out["channel_stats"] = [dict(c) for c in self.channel_stats]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        """A TrialResult from :meth:`to_dict`'s output (e.g. read back from JSON). Anything else (a foreign or
        corrupt record: not a mapping, missing or unknown fields, values of the wrong type, a trial a
        :class:`Trial` refuses) raises :class:`~dsalab.errors.InvalidArgument` / ``InvalidType`` naming it."""
        if not isinstance(data, Mapping):
            raise InvalidType(f"TrialResult.from_dict: data must be a mapping of fields, got {type(data).__name__}")
        fields_ = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(repr(k) for k in data if k not in fields_)
        if unknown:
            raise InvalidArgument(
                f"TrialResult.from_dict: unknown fields {', '.join(unknown)[:300]}; allowed: {sorted(fields_)}"
            )
        missing = sorted(
            n
            for n, f in fields_.items()
            if n not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        if missing:
            raise InvalidArgument(f"TrialResult.from_dict: missing fields {missing}")
        values = dict(data)
        trial = values["trial"]
        if not isinstance(trial, Mapping) or not all(isinstance(k, str) for k in trial):
            raise InvalidType(f"TrialResult.from_dict: trial must be a mapping of Trial fields, got {trial!r:.200}")
        unknown = sorted(set(trial) - set(Trial.fields()))
        if unknown:
            raise InvalidArgument(f"TrialResult.from_dict: trial has unknown fields {unknown}")
        values["trial"] = Trial(**trial)
        for name, value in values.items():
            if name != "trial" and not _FIELD_CHECKS[str(fields_[name].type)](value):
                raise InvalidType(
                    f"TrialResult.from_dict: field {name}={value!r:.200} is not allowed: allowed is "
                    f"{fields_[name].type}"
                )
        return cls(**values)

    def metrics(self) -> dict[str, float | int | bool]:
        """Every scalar metric of the metric table :data:`dsalab.metrics.TABLE`."""
        return {name: getattr(self, name) for name in _metrics.SCALAR_NAMES}

    def to_dataset(self):
        """An ``xarray.Dataset`` in the layout of :mod:`dsalab.results` (no swept parameter, one repeat): every
        metric with ``units`` and ``long_name``, ``thread_cpu_ms`` over ``thread``; the trial, backend and
        CPU-fallback reasons as attributes."""
        from dsalab.results import TrialRecord, build_dataset  # deferred: the dataset layer sits above this one

        attrs = {
            "backend": str(self.backend),
            "trial": self.trial.to_json(),
            "fallback_pages_by_reason": json.dumps(self.fallback_pages_by_reason, sort_keys=True),
        }
        return build_dataset([TrialRecord({}, 0, self)], {}, 1, attrs)

    def table(self) -> str:
        """A text report laid out like the seed's tables: per-thread runtime with the total, then total time,
        downtime, throughput, transferred and total RAM."""
        src = sorted((n for n in self.thread_cpu_ms if SOURCE_THREADS.match(n)), key=thread_order)
        other = sorted((n for n in self.thread_cpu_ms if not SOURCE_THREADS.match(n)), key=thread_order)
        w = 18
        rule = "|" + "|".join(["-" * w] * 3) + "|"
        lines = [
            f"{self.backend}: {format_bytes(self.trial.guest_bytes, whole=True)} guest, normal_ratio "
            f"{self.trial.normal_ratio}, {self.trial.channels} channels, packet "
            f"{format_bytes(self.trial.packet_bytes, whole=True)}",
            "CPU usage",
            rule,
            f"|{'comm':<{w}}|{'runtime(msec)':<{w}}|{'totaltime(msec)':<{w}}|",
            rule,
        ]
        for i, n in enumerate(src):
            total = f"{self.host_cpu_ms:.0f}" if i == len(src) - 1 else ""
            lines.append(f"|{n:<{w}}|{self.thread_cpu_ms[n]:<{w}.3f}|{total:<{w}}|")
        lines.append(rule)
        if other:
            lines.append("not in the total: destination, device engines (device time), guest")
            for n in other:
                lines.append(f"|{n:<{w}}|{self.thread_cpu_ms[n]:<{w}.3f}|{'':<{w}}|")
            lines.append(rule)
        heads = ["total time", "down time", "throughput", "transferred-ram", "total-ram"]
        vals = [
            f"{self.total_time_ms:.0f} ms",
            f"{self.downtime_ms:.0f} ms",
            f"{self.throughput_mbps:.2f} mbps",
            f"{self.transferred_bytes // 1024} kb",
            f"{self.total_bytes // 1024} kb",
        ]
        lines += [
            "Latency",
            "|" + "|".join(f"{h:<{w}}" for h in heads) + "|",
            "|" + "|".join(f"{v:<{w}}" for v in vals) + "|",
        ]
        extra = (
            f"zero pages {self.zero_pages}, normal pages {self.normal_pages}, forced normal "
            f"{self.forced_normal_pages}, iterations {self.iterations}, dirty syncs {self.dirty_sync_count}, "
            f"destination CPU {self.destination_cpu_ms:.0f} ms, verified {self._verified_text}"
        )
        lines.append(extra)
        if self.backend.is_dsa:
            lines.append(
                f"device: {self.pages_offloaded} pages offloaded, {self.fallback_pages} on the CPU "
                f"{self.fallback_pages_by_reason}, busy {self.device_busy_ms:.0f} ms, engine CPU "
                f"{self.device_cpu_ms:.0f} ms (device time)"
            )
        return "\n".join(lines)


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str_map(v: object, value_ok: Callable[[object], bool]) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and value_ok(x) for k, x in v.items())


#: what from_dict takes for each annotation of TrialResult
_FIELD_CHECKS: dict[str, Callable[[object], bool]] = {
    "str": lambda v: isinstance(v, str),
    "Backend": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": _is_num,
    "bool": lambda v: isinstance(v, bool),
    "dict[str, float]": lambda v: _is_str_map(v, _is_num),
    "dict[str, int]": lambda v: _is_str_map(v, _is_num),
    "dict": lambda v: isinstance(v, dict),
    "list[dict[str, int]]": lambda v: isinstance(v, list) and all(_is_str_map(c, _is_num) for c in v),
}
