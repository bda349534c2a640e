"""Fuzzing of :class:`dsalab.migration.Trial` (issue 9): whatever a caller or a sweep file passes for any field,
building a Trial ends in a Trial or in a :class:`~dsalab.errors.DsalabError`, never another exception. A Trial
that is built holds plain Python values, survives a JSON round trip and has a finite deadline."""

from __future__ import annotations

import dataclasses
import decimal
import fractions
import json
import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsalab.errors import DsalabError
from dsalab.migration import Trial
from dsalab.migration.engine import trial_deadline_s
from dsalab.migration.trial import MAX_GUEST_BYTES, MAX_IO_TIMEOUT_MS, MAX_RATE_BYTES_PER_S, MAX_SEED

FIELDS = Trial.fields()

#: a value each field takes, so that draws mixing good and bad values reach the later checks
GOOD: dict[str, list[object]] = {
    "guest_bytes": [4096, "8MiB", 1 << 30, np.int64(1 << 20), MAX_GUEST_BYTES],
    "page_size": [4096, 64, 1 << 21, np.int32(8192)],
    "normal_ratio": [0.0, 0.5, 1, np.float32(0.25), fractions.Fraction(1, 3)],
    "force_normal_ratio": [0.0, 1.0, np.float64(0.5)],
    "channels": [1, 2, 64, np.uint8(8)],
    "packet_bytes": [4096, "512KiB", 64 << 10],
    "detector": ["cpu-numba", "cpu-native", "dsa-emulated", "dsa-hardware", np.str_("cpu-native")],
    "devices": [1, 2, ("emu",), ["emu:gbps=10", "emu"]],
    "batch_size": [1, 128, 1024, np.int16(32)],
    "completion": ["thread", "poll", "umwait"],
    "cpu_fraction": [0.0, 0.3],
    "max_bandwidth_bytes": [0, "1GiB", MAX_RATE_BYTES_PER_S],
    "dirty_rate_bytes_per_s": [0, "64MiB", MAX_RATE_BYTES_PER_S],
    "downtime_limit_ms": [300.0, 1, 1e-3, 1e12],
    "max_iterations": [1, 30, 10000],
    "seed": [0, 7, MAX_SEED, np.uint64(5)],
    "io_timeout_ms": [100, 30000, MAX_IO_TIMEOUT_MS],
    "huge_pages": [False, True, np.bool_(True)],
    "prealloc": [True, False, np.bool_(False)],
}
assert set(GOOD) == set(FIELDS), "every Trial field has good values here"

sizes = st.builds(
    lambda n, unit: f"{n}{unit}",
    st.one_of(st.integers(0, 10**30), st.floats(0, 1e30, allow_nan=False).map(lambda f: f"{f:.3f}")),
    st.sampled_from(["", "B", "KiB", "M", "GiB", "TiB", "kB", "GB", "parsecs", " MiB", "e9"]),
)
numpy_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 2**64 - 1).map(np.uint64),
    st.integers(-128, 127).map(np.int8),
    st.floats(width=32).map(np.float32),
    st.floats().map(np.float64),
    st.booleans().map(np.bool_),
    st.text(max_size=12).map(np.str_),
)
odd_objects = st.sampled_from(
    [
        None,
        object(),
        1 + 2j,
        decimal.Decimal("1.5"),
        decimal.Decimal("NaN"),
        fractions.Fraction(7, 3),
        np.array([1, 2]),
        np.zeros(0),
        np.array("cpu-native"),
        {"a": 1},
        set(),
        frozenset({1}),
        b"4GiB",
        bytearray(b"x"),
        range(3),
        math.nan,
        math.inf,
        -math.inf,
        -0.0,
        2**63,
        2**64,
        -(2**63),
        10**30,
        10**400,
        "",
        " ",
        "\x00",
        "nan",
        "inf",
        "-1",
        "1e5",
        "9" * 400 + "TiB",
    ]
)
fuzz_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**80), 2**80),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=8),
    sizes,
    numpy_scalars,
    odd_objects,
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=6), st.none()), max_size=3),
    st.tuples(st.text(max_size=8)),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _build(kwargs: dict[str, object]) -> Trial | None:
    """The Trial, or None when a DsalabError refused it; any other exception fails the test."""
    try:
        trial = Trial(**kwargs)
    except DsalabError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 1000, message
        return None
    _check_built(trial)
    return trial


def _check_built(trial: Trial) -> None:
    for f in dataclasses.fields(trial):
        value = getattr(trial, f.name)
        if f.name == "devices":
            assert type(value) is int or (type(value) is tuple and all(type(d) is str for d in value)), value
        else:
            assert type(value) in (int, float, str, bool), (f.name, type(value))
    for name in ("normal_ratio", "force_normal_ratio", "cpu_fraction", "downtime_limit_ms"):
        assert math.isfinite(getattr(trial, name))
    assert 0 <= trial.seed <= MAX_SEED and 100 <= trial.io_timeout_ms <= MAX_IO_TIMEOUT_MS
    again = Trial(**json.loads(trial.to_json()))
    assert again == trial
    deadline = trial_deadline_s(trial)
    assert 0 < deadline < math.inf
    assert all(isinstance(s, str) for s in trial.device_specs)


@given(field=st.sampled_from(FIELDS), value=fuzz_values)
def test_any_value_of_one_field_gives_a_trial_or_a_dsalab_error(field, value):
    _build({field: value})


@given(data=st.data())
def test_any_mix_of_fields_gives_a_trial_or_a_dsalab_error(data):
    kwargs = {}
    for field in data.draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=len(FIELDS))):
        kwargs[field] = data.draw(st.one_of(st.sampled_from(GOOD[field]), fuzz_values), label=field)
    _build(kwargs)


@given(data=st.data())
def test_good_values_always_give_a_trial(data):
    kwargs = {f: data.draw(st.sampled_from(GOOD[f]), label=f) for f in FIELDS}
    # fields that constrain each other: keep the sizes multiples of the page size
    ps = int(kwargs["page_size"])
    kwargs["guest_bytes"] = data.draw(st.integers(1, 1 << 20), label="guest_pages") * ps
    kwargs["packet_bytes"] = data.draw(st.integers(1, 65536), label="packet_pages") * ps
    assert _build(kwargs) is not None


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("seed", 2**63, "an int from 0 to 2**63-1"),
        ("seed", -1, "an int from 0 to 2**63-1"),
        ("seed", np.uint64(2**64 - 1), "an int from 0 to 2**63-1"),
        ("io_timeout_ms", 10**30, f"an int of ms from 100 to {MAX_IO_TIMEOUT_MS}"),
        ("io_timeout_ms", 1e4, f"an int of ms from 100 to {MAX_IO_TIMEOUT_MS}"),
        ("max_bandwidth_bytes", 2**70, "bytes/s >= 0 (0 = unlimited), at most 2**48"),
        ("dirty_rate_bytes_per_s", 2**70, "bytes/s >= 0 (0 = idle guest), at most 2**48"),
        ("guest_bytes", 2**70, f"a positive multiple of page_size (4096) up to {MAX_GUEST_BYTES} (1 EiB)"),
        ("page_size", 1 << 40, "1073741824"),  # the limit, whichever of buffers.py and trial.py says it
        ("normal_ratio", math.nan, "a number from 0.0 to 1.0"),
        ("normal_ratio", 10**400, "a number from 0.0 to 1.0"),
        ("cpu_fraction", math.inf, "a number from 0.0 to 1.0"),
        ("downtime_limit_ms", math.inf, "a finite number of ms > 0"),
        ("downtime_limit_ms", math.nan, "a finite number of ms > 0"),
        ("channels", 2.0, "an int from 1 to 64"),
        ("detector", ["cpu-numba"], "cpu-numba, cpu-native, dsa-emulated, dsa-hardware"),
        ("completion", np.array(["thread"]), "thread, poll, umwait"),
        ("huge_pages", 1, "True or False"),
        ("prealloc", "yes", "True or False"),
    ],
)
def test_out_of_range_values_name_field_value_and_allowed(field, value, allowed):
    with pytest.raises(DsalabError) as info:
        Trial(**{field: value})
    text = str(info.value)
    assert text.startswith(f"Trial field {field}="), text
    assert "is not allowed: " in text and allowed in text, text


def test_numpy_and_other_integer_types_are_stored_as_plain_values():
    t = Trial(
        channels=np.int64(4),
        batch_size=np.uint16(64),
        seed=np.uint64(2**63 - 1),
        io_timeout_ms=np.int32(5000),
        max_iterations=np.int8(3),
        normal_ratio=np.float32(0.5),
        downtime_limit_ms=fractions.Fraction(1, 2),
        detector=np.str_("cpu-native"),
        huge_pages=np.bool_(False),
        guest_bytes=np.int64(8 << 20),
    )
    assert (t.channels, t.batch_size, t.seed, t.io_timeout_ms, t.max_iterations) == (4, 64, 2**63 - 1, 5000, 3)
    assert type(t.channels) is int and type(t.seed) is int and type(t.guest_bytes) is int
    assert t.normal_ratio == 0.5 and type(t.normal_ratio) is float and t.downtime_limit_ms == 0.5
    assert type(t.detector) is str and t.huge_pages is False
    assert json.loads(t.to_json())["seed"] == 2**63 - 1


def test_largest_seed_still_gives_valid_device_seeds():
    t = Trial(seed=MAX_SEED, detector="dsa-emulated", devices=3)
    seeds = [int(re.fullmatch(r"emu:seed=(\d+)", s).group(1)) for s in t.device_specs]
    assert seeds == [MAX_SEED, 0, 1]


# ---------------------------------------------------------------- TrialResult records read back (partial files)


@pytest.fixture(scope="module")
def result_dict():
    from dsalab.migration import run_trial

    return run_trial(Trial(guest_bytes=1 << 20, channels=1, seed=3)).to_dict()


def test_result_round_trip(result_dict):
    from dsalab.migration import TrialResult

    back = TrialResult.from_dict(json.loads(json.dumps(result_dict)))
    assert back.to_dict() == result_dict


@given(data=st.data())
def test_corrupt_result_records_give_a_dsalab_error(result_dict, data):
    """A corrupt line of a partial file: a field dropped, added or replaced by anything, or no mapping at all."""
    from dsalab.migration import TrialResult

    record: object = json.loads(json.dumps(result_dict))
    kind = data.draw(st.sampled_from(["replace", "drop", "add", "trial", "whole"]), label="kind")
    if kind == "whole":
        record = data.draw(fuzz_values, label="record")
    elif kind == "trial":
        record["trial"] = data.draw(
            st.one_of(fuzz_values, st.dictionaries(st.sampled_from([*FIELDS, "x"]), fuzz_values, max_size=3)),
            label="trial",
        )
    else:
        name = data.draw(st.sampled_from(sorted(record)), label="field")
        if kind == "drop":
            del record[name]
        elif kind == "add":
            record[data.draw(st.one_of(st.text(max_size=5), st.integers()), label="key")] = 1
        else:
            record[name] = data.draw(fuzz_values, label="value")
    try:
        TrialResult.from_dict(record)
    except DsalabError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("zero_pages"), r"missing fields \['zero_pages'\]"),
        (lambda d: d.update(zero_pages="12"), r"field zero_pages='12' is not allowed: allowed is int"),
        (lambda d: d.update(thread_cpu_ms=[1]), r"field thread_cpu_ms=\[1\] is not allowed"),
        (lambda d: d.update(trial=None), "trial must be a mapping of Trial fields"),
        (lambda d: d["trial"].update(colour=1), r"trial has unknown fields \['colour'\]"),
        (lambda d: d["trial"].update(seed=-5), "Trial field seed=-5 is not allowed"),
        (lambda d: d.update({1: 2}), "unknown fields 1"),
    ],
)
def test_corrupt_result_record_messages(result_dict, mutate, message):
    from dsalab.migration import TrialResult

    record = json.loads(json.dumps(result_dict))
    mutate(record)
    with pytest.raises(DsalabError, match=message):
        TrialResult.from_dict(record)
