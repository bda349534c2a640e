"""Fuzzing ``open_device`` spec strings (issue 9): emulated specs with any keys and values, queue paths of every
shape pointing at regular files, directories, FIFOs, links and character devices, and non-strings. Every input
ends in an open device (closed again) or a DsalabError, never a crash or another exception type; nothing but
the fake queue (a link to /dev/zero that a fake sysfs names dsa/wq0.0) is ever opened as a hardware queue, and
no file is changed. The light spec check of Trial agrees with open_device."""

from __future__ import annotations

import os

import pytest
from fuzzing import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsalab import device_spec, devices
from dsalab.errors import DsalabError, InvalidArgument
from dsalab.migration.trial import Trial

FUZZ = settings(
    max_examples=examples(120),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PRECIOUS = b"results that must survive\n" * 100


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A fake sysfs (1:5 is dsa/wq0.0) and a directory of things named like queues: a regular file, a link to
    one, a directory, a FIFO, a link to /dev/null (another driver), the fake queue (a link to /dev/zero)."""
    root = tmp_path_factory.mktemp("fuzzdev")
    sysfs = root / "sys" / "bus" / "dsa" / "devices"
    (sysfs / "wq0.0").mkdir(parents=True)
    (sysfs / "wq0.0" / "mode").write_text("shared\n")
    (sysfs / "wq0.0" / "size").write_text("32\n")
    char = root / "sys" / "dev" / "char" / "1:5"
    char.mkdir(parents=True)
    (char / "uevent").write_text("MAJOR=1\nMINOR=5\nDEVNAME=dsa/wq0.0\n")
    kinds = {}
    for kind in ("file", "link-file", "dir", "fifo", "null", "queue"):
        d = root / kind
        d.mkdir()
        kinds[kind] = d / "wq0.0"
    kinds["file"].write_bytes(PRECIOUS)
    kinds["link-file"].symlink_to(kinds["file"])
    kinds["dir"].mkdir()
    os.mkfifo(kinds["fifo"])
    kinds["null"].symlink_to("/dev/null")
    kinds["queue"].symlink_to("/dev/zero")
    return sysfs, root, kinds


def _value(key: str):
    typ = device_spec.EMU_KEYS[key][0]
    if typ is str:
        return st.sampled_from(["shared", "dedicated", "SHARED", "", "round", " dedicated "])
    return st.one_of(
        st.integers(-5, 70).map(str),
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "1_0", " 2 ", "", "٣", "1e3", "0.5", "9" * 5000]),
    )


@st.composite
def emu_specs(draw):
    keys = draw(st.lists(st.sampled_from([*device_spec.EMU_KEYS, "turbo", "", " engines"]), max_size=4))
    items = []
    for key in keys:
        if key in device_spec.EMU_KEYS and draw(st.booleans()):
            items.append(f"{key}={draw(_value(key))}")
        else:
            items.append(draw(st.sampled_from([key, f"{key}=", f"{key}=1", f"{key}==2", f"{key}=1=2"])))
    sep = draw(st.sampled_from([",", ", ", ",,", ";"]))
    head = draw(st.sampled_from(["emu", "emu:", "EMU:", "emu :", "emulated:"]))
    return head + (sep.join(items) if head.endswith(":") else "")


@st.composite
def path_specs(draw, root):
    kind = draw(st.sampled_from(["file", "link-file", "dir", "fifo", "null", "queue", "missing"]))
    base = str(root / kind) if kind != "missing" else draw(st.sampled_from(["/dev/dsa", "/nonexistent/dir", "/"]))
    name = draw(
        st.one_of(
            st.just("wq0.0"),
            st.sampled_from(["wq0.1", "wq", "wq0.", "wq.0", "wq00.00", "wq0.0x", "wq-1.0", "wq99999.0", ""]),
            st.text(max_size=12),
        )
    )
    path = f"{base}/{name}"
    if draw(st.booleans()):
        path = path.replace("/", "//")
    option = draw(st.sampled_from(["", "?write", "?", "?read", "?write?write", "?WRITE"]))
    return path + option


specs = st.one_of(
    st.sampled_from(["emu", "", "gpu0", "/", "?write", "emu:mode=dedicated,gbps=0"]),
    st.text(max_size=40),
    st.binary(max_size=10),
    st.sampled_from([None, 0, 1.5, ["emu"], b"emu", object()]),
)


def _open_and_close(spec, sysfs, kinds) -> None:
    try:
        dev = devices.open_device(spec, sysfs_root=sysfs)
    except DsalabError:
        return
    try:
        if dev.backend == "dsa-hardware":  # only the fake queue may ever be opened as hardware
            assert os.path.realpath(spec.partition("?")[0]) == "/dev/zero", spec
            assert os.path.basename(spec.partition("?")[0]) == "wq0.0"
        else:
            assert spec == "emu" or spec.startswith("emu:")
    finally:
        dev.close()


def _check_untouched(kinds) -> None:
    assert kinds["file"].read_bytes() == PRECIOUS
    assert kinds["dir"].is_dir() and not any(kinds["dir"].iterdir())


@FUZZ
@given(spec=st.one_of(emu_specs(), specs))
def test_open_device_fuzz_emulated_and_junk(tree, spec):
    sysfs, _, kinds = tree
    _open_and_close(spec, sysfs, kinds)


@FUZZ
@given(data=st.data())
def test_open_device_fuzz_paths(tree, data):
    sysfs, root, kinds = tree
    spec = data.draw(path_specs(root))
    _open_and_close(spec, sysfs, kinds)
    _check_untouched(kinds)


@FUZZ
@given(spec=st.one_of(emu_specs(), specs, st.just("/dev/dsa/wq0.0")))
def test_trial_spec_check_agrees_with_open_device(tree, spec):
    """Trial refuses at build time exactly the specs whose shape open_device refuses (a well-shaped emu spec
    always opens; a well-shaped path may still be missing here)."""
    sysfs = tree[0]
    try:
        Trial(devices=(spec,))
        built = True
    except InvalidArgument:
        built = False
    try:
        devices.open_device(spec, sysfs_root=sysfs).close()
        opened = True
    except DsalabError:
        opened = False
    if isinstance(spec, str) and (spec == "emu" or spec.startswith("emu:")):
        assert built == opened, spec
    elif opened:
        assert built, spec
