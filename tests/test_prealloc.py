"""Trial.prealloc: the destination is faulted in before the clock starts (like QEMU's prealloc=on)."""

from __future__ import annotations

import mmap
import resource

import numpy as np
import pytest

from dsalab.errors import InvalidArgument
from dsalab.migration import Trial, engine, guest, run_trial

PAGE = 4096
NPAGES = 1024


def _fresh_mapping() -> mmap.mmap:
    m = mmap.mmap(-1, NPAGES * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m.madvise(mmap.MADV_NOHUGEPAGE)  # one fault per 4 KiB page, whatever the machine's THP setting
    return m


def _faults_writing_every_page(m: mmap.mmap) -> int:
    view = np.frombuffer(m, dtype=np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    view[::PAGE] = 1
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del view
    return after - before


@pytest.mark.parametrize("advice", ["kernel", "touch"])
def test_prefault_takes_the_page_faults_and_keeps_the_contents(monkeypatch, advice):
    if advice == "touch":  # an advice the kernel refuses (EINVAL): the read-and-write path runs
        monkeypatch.setattr(guest, "MADV_POPULATE_WRITE", 0x7FFF)
    cold = _fresh_mapping()
    assert _faults_writing_every_page(cold) >= NPAGES // 2, "a fresh mapping faults on first write"
    cold.close()
    m = _fresh_mapping()
    pattern = np.random.default_rng(1).integers(1, 255, size=PAGE * 8, dtype=np.uint8)
    np.frombuffer(m, dtype=np.uint8)[: pattern.size] = pattern
    guest.prefault(m, NPAGES * PAGE, PAGE)
    assert np.array_equal(np.frombuffer(m, dtype=np.uint8)[: pattern.size], pattern)
    assert not np.frombuffer(m, dtype=np.uint8)[pattern.size :].any()
    assert _faults_writing_every_page(m) < NPAGES // 8
    m.close()


@pytest.mark.parametrize("prealloc", [True, False])
def test_engine_faults_in_the_destination_only_when_asked(monkeypatch, prealloc):
    seen = []
    real = engine.anonymous_mapping

    def recording(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "anonymous_mapping", recording)
    res = run_trial(Trial(guest_bytes="2MiB", channels=1, detector="cpu-native", prealloc=prealloc))
    assert res.verified and res.trial.prealloc is prealloc
    assert [k["populate"] for k in seen] == [prealloc]


def test_prealloc_is_on_by_default_and_checked():
    assert Trial().prealloc is True
    with pytest.raises(InvalidArgument, match=r"prealloc.*True or False"):
        Trial(prealloc="no")
