"""One rule and one limit per quantity: Trial, Offloader and sweep files accept and refuse the same values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsalab import sweepfile, validate
from dsalab.errors import DsalabError, InvalidArgument, SweepFileError
from dsalab.offload import Offloader
from dsalab.trial import Trial

SWEEP = """
name = "t"
repeats = {repeats}
[sweep]
batch_size = [{batch}]
"""


@pytest.mark.parametrize("value", [0, 1025, 4096, -1, True, 2.0, "64", None, np.float64(3)])
def test_a_batch_size_refused_by_one_is_refused_by_all(value):
    with pytest.raises(DsalabError, match="batch_size"):
        Trial(batch_size=value)
    with pytest.raises(DsalabError, match=r"batch_size=.* is not allowed; allowed: an int from 1 to 1024"):
        Offloader("emu:gbps=0", batch_size=value)  # refused before any device is opened
    if isinstance(value, int) and not isinstance(value, bool):
        with pytest.raises(SweepFileError, match="batch_size"):
            sweepfile.loads(SWEEP.format(repeats=1, batch=value))


@pytest.mark.parametrize("value", [1, 1024, np.int64(512), np.uint16(64), np.int8(7)])
def test_a_batch_size_allowed_by_one_is_allowed_by_all(value):
    assert Trial(batch_size=value).batch_size == int(value)
    assert type(Trial(batch_size=value).batch_size) is int
    with Offloader("emu:gbps=0", batch_size=value) as off:
        assert off.batch_size == int(value) and type(off.batch_size) is int
    spec = sweepfile.loads(SWEEP.format(repeats=1, batch=int(value)))
    assert spec.params["batch_size"] == (int(value),)


def test_the_limit_is_the_dsa_specs_maximum_batch():
    assert validate.MAX_BATCH_SIZE == 1024
    assert validate.LIMITS["batch_size"].high == validate.MAX_BATCH_SIZE


@pytest.mark.parametrize("value", [np.int64(3), np.int32(1000)])
def test_sweep_file_ints_follow_the_same_rule(value):
    assert validate.check("repeats", value) == int(value)
    with pytest.raises(SweepFileError, match="repeats: 1001 is not allowed; it must be an int from 1 to 1000"):
        sweepfile.loads(SWEEP.format(repeats=1001, batch=8))


def test_cpu_fraction_rule_is_shared():
    for bad in (math.nan, math.inf, -0.1, 1.5, True, "0.5"):
        with pytest.raises(InvalidArgument, match="cpu_fraction"):
            Trial(cpu_fraction=bad)
        with pytest.raises(InvalidArgument, match="cpu_fraction"):
            Offloader("emu:gbps=0", cpu_fraction=bad)
    assert Trial(cpu_fraction=np.float32(0.5)).cpu_fraction == 0.5


def test_check_normalizes_and_names_value_and_allowed():
    assert validate.check("channels", np.int16(4)) == 4
    assert validate.check("normal_ratio", 1) == 1.0 and isinstance(validate.check("normal_ratio", 1), float)
    with pytest.raises(InvalidArgument, match=r"^channels=65 is not allowed; allowed: an int from 1 to 64$"):
        validate.check("channels", 65)
    with pytest.raises(InvalidArgument, match=r"^x 'a' y an int from 1 to 64$"):
        validate.check("channels", "a", message="x {value} y {allowed}")
    assert validate.within(10**30, validate.LIMITS["seed"]) is None
    assert validate.within(0.0, validate.LIMITS["downtime_limit_ms"]) is None  # open at 0
    assert validate.is_real(10**400) is False and validate.is_int(True) is False


def test_trial_rules_cover_every_field():
    from dsalab.trial import FIELD_RULES

    assert set(FIELD_RULES) == set(Trial.fields())
