"""Sweep files: ranges expand, seeds derive reproducibly, and every kind of mistake fails before anything runs
with a message naming the file, the key and what is allowed."""

from __future__ import annotations

import pathlib

import pytest

from dsalab import sweepfile
from dsalab.errors import SweepFileError

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOOD = """
name = "t"
repeats = 2
warmups = 1
seed = 7
[base]
guest_bytes = "4MiB"
[sweep]
detector = ["cpu-numba", "cpu-native"]
packet_bytes = ["64KiB", "256KiB"]
"""


def write(tmp_path, text: str) -> pathlib.Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def test_good_file_gives_grid_in_file_order(tmp_path):
    spec = sweepfile.load(write(tmp_path, GOOD))
    assert spec.dims == ("detector", "packet_bytes")
    assert spec.params["packet_bytes"] == (65536, 262144)  # sizes normalized to bytes
    assert spec.n_points == 4 and len(list(spec.points())) == 4
    assert spec.repeats == 2 and spec.warmups == 1 and spec.seed == 7 and spec.runner == "engine"
    assert spec.text == write(tmp_path, GOOD).read_text()


def test_ranges_expand_with_stop_included():
    spec = sweepfile.loads(
        'name = "r"\n[sweep]\nbatch_size = { start = 16, stop = 256, factor = 2 }\n'
        'packet_bytes = { start = "64KiB", stop = "256KiB", factor = 2 }\n'
        "normal_ratio = { start = 0.0, stop = 1.0, step = 0.25 }\n"
    )
    assert spec.params["batch_size"] == (16, 32, 64, 128, 256)
    assert spec.params["packet_bytes"] == (65536, 131072, 262144)
    assert spec.params["normal_ratio"] == (0.0, 0.25, 0.5, 0.75, 1.0)


def test_trial_seeds_are_reproducible_and_shared_by_the_points_of_a_repeat():
    a, b = sweepfile.loads(GOOD), sweepfile.loads(GOOD)
    p0, p1 = list(a.points())[:2]
    assert a.trial(p0, 0).seed == b.trial(p0, 0).seed == a.trial(p1, 0).seed
    assert a.trial(p0, 0).seed != a.trial(p0, 1).seed
    assert a.trial(p0, 0, warmup=True).seed != a.trial(p0, 0).seed
    other = sweepfile.loads(GOOD.replace("seed = 7", "seed = 8"))
    assert other.trial(p0, 0).seed != a.trial(p0, 0).seed


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("seed = 7", "seed = 7\ncolour = 'red'"), "colour: unknown key; allowed keys are name, description"),
        (("repeats = 2", 'repeats = "2"'), "repeats: '2' is not allowed; it must be an int from 1 to 1000"),
        (("warmups = 1", "warmups = true"), "warmups: True is not allowed"),
        (('[base]\nguest_bytes = "4MiB"', '[base]\nguest_bytes = "4MiB"\nwarp = 9'), "base.warp: unknown Trial field"),
        (('detector = ["', 'packet_size = [1]\ndetector = ["'), "sweep.packet_size: unknown Trial field; allowed:"),
        (('"cpu-native"]', '"abacus"]'), "sweep.detector: value 'abacus'"),
        (('"256KiB"]', '"3 bananas"]'), "sweep.packet_bytes: value '3 bananas'"),
        (('"256KiB"]', "5000]"), "sweep.packet_bytes: value 5000: Trial field packet_bytes=5000 is not allowed"),
        (('"256KiB"]', '"64KiB"]'), "sweep.packet_bytes: values ['64KiB', '64KiB'] repeat a value"),
        (('packet_bytes = ["64KiB", "256KiB"]', "packet_bytes = 65536"), "sweep.packet_bytes: 65536 is not allowed"),
        (('packet_bytes = ["64KiB", "256KiB"]', "packet_bytes = []"), "sweep.packet_bytes: the list of values is"),
        (('packet_bytes = ["64KiB", "256KiB"]', "seed = [1, 2]"), "sweep.seed: the guest seed is derived"),
        (('packet_bytes = ["64KiB", "256KiB"]', "channels = { start = 1, stop = 4 }"), "exactly one of step"),
        (('name = "t"', 'name = "a b"'), "name: 'a b' is not allowed"),
        (('name = "t"', 'name = "t"\nqemu = "/usr/bin/qemu-system-x86_64"'), "qemu: is only for runner 'qemu'"),
        (('name = "t"', 'name = "t"\nrunner = "qemu"\nqemu = ""'), "qemu: '' is not allowed; it must be the QEMU"),
        (('name = "t"', 'name = "t"\nrunner = "magic"'), "runner: 'magic' is not allowed; allowed: engine"),
        (('guest_bytes = "4MiB"', 'guest_bytes = "4MiB"\ndetector = "cpu-numba"'), "sweep.detector: is also set"),
        (('[base]\nguest_bytes = "4MiB"', "base = 3"), "base: must be a table of Trial fields, got int"),
        (('name = "t"', "name = "), "not valid TOML"),
    ],
)
def test_invalid_files_fail_naming_file_key_and_allowed(tmp_path, change, expected):
    path = write(tmp_path, GOOD.replace(*change, 1))
    with pytest.raises(SweepFileError) as err:
        sweepfile.load(path)
    message = str(err.value)
    assert message.startswith(f"sweep file {path}: ")
    assert expected in message


def test_combination_of_valid_values_fails_up_front():
    text = 'name = "c"\n[sweep]\npage_size = [4096, 16384]\npacket_bytes = ["8KiB", "64KiB"]\n'
    with pytest.raises(SweepFileError, match=r"sweep: grid point \{'page_size': 16384, 'packet_bytes': 8192\}: "):
        sweepfile.loads(text)


def test_missing_file_is_a_sweep_file_error(tmp_path):
    with pytest.raises(SweepFileError, match="cannot be read"):
        sweepfile.load(tmp_path / "nope.toml")


@pytest.mark.parametrize("path", sorted((ROOT / "data" / "sweeps").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_sweep_files_are_valid(path):
    spec = sweepfile.load(path)
    assert spec.name == path.stem and spec.repeats >= 2


def test_quick_compares_cpu_with_dsa():
    spec = sweepfile.load(ROOT / "data" / "sweeps" / "quick.toml")
    assert set(spec.params["detector"]) == {"cpu-numba", "dsa-emulated"}


def range_file(table: str, key: str = "batch_size") -> str:
    return f'name = "r"\n[sweep]\n{key} = {table}\n'


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("{ start = 1, stop = 8, step = nan }", "range step=nan is not allowed; it must be a finite number"),
        ("{ start = 1, stop = 8, step = inf }", "range step=inf is not allowed; it must be a finite number"),
        ("{ start = 1, stop = inf, step = 1 }", "range stop=inf is not allowed; it must be a finite number"),
        ("{ start = nan, stop = 8, step = 1 }", "range start=nan is not allowed; it must be a finite number"),
        ("{ start = -inf, stop = 8, step = 1 }", "range start=-inf is not allowed; it must be a finite number"),
        ("{ start = nan, stop = 8, factor = 2 }", "range start=nan is not allowed"),  # was a silent 0-point sweep
        ("{ start = 1, stop = nan, factor = 2 }", "range stop=nan is not allowed"),
        ("{ start = 1, stop = 8, factor = nan }", "range factor=nan is not allowed"),  # was the single value 1
        ("{ start = 1, stop = 8, factor = inf }", "range factor=inf is not allowed"),
        ("{ start = 8, stop = 1, step = 1 }", "range start=8, stop=1 is empty; it needs stop >= start"),
        ("{ start = 8, stop = 1, factor = 2 }", "range start=8, stop=1 is empty; it needs stop >= start"),
        ("{ start = 1, stop = 8, step = 0 }", "range step=0 is not allowed; it must be > 0"),
        ("{ start = 1, stop = 8, factor = 1 }", "range factor=1 is not allowed; it must be > 1"),
        ("{ start = 0, stop = 8, factor = 2 }", "range start=0 is not allowed with a factor; it must be > 0"),
        ("{ start = 1, stop = 20000, step = 1 }", "has more than 10000 values; at most 10000 are allowed"),
        ("{ start = 1, stop = 9223372036854775807, step = 1 }", "has more than 10000 values"),
        ("{ start = 0.0, stop = 1e300, step = 1e-300 }", "has more than 10000 values"),  # was OverflowError
        ("{ start = 1, stop = 2, factor = 1.0000000000000002 }", "has more than 10000 values"),
        ("{ start = 1, stop = 8, step = true }", "range step=True is not allowed; it must be a number or a size"),
        ('{ start = "1KiB", stop = "9e999KiB", step = 1 }', "range stop='9e999KiB' is not"),
        (f"[{', '.join(['1'] * 10001)}]", "the list has 10001 values; at most 10000 are allowed"),
    ],
)
def test_bad_ranges_fail_naming_the_value_and_what_is_allowed(table, expected):
    with pytest.raises(SweepFileError) as err:
        sweepfile.loads(range_file(table), "r.toml")
    message = str(err.value)
    assert message.startswith("sweep file r.toml: sweep.batch_size: ") and "\n" not in message
    assert expected in message


def test_a_range_at_the_documented_maximum_is_accepted():
    spec = sweepfile.loads(range_file("{ start = 1, stop = 10000, step = 1 }", "max_iterations"))
    assert len(spec.params["max_iterations"]) == sweepfile.MAX_VALUES


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("seed = 7", "seed = 9223372036854775808"), "seed: 9223372036854775808 is not allowed; it must be an int"),
        (('name = "t"', f'name = "{"n" * 101}"'), "is not allowed; it must be a string of 1 to 100 ASCII letters"),
        (('name = "t"', 'name = ".."'), "name: '..' is not allowed"),
        (("repeats = 2\nwarmups = 1", "repeats = 1000\nwarmups = 100"), "(1000 repeats + 100 warm-ups) = 4400"),
        (('"cpu-native"]', '"cpu-native"]\n"a\\nb" = 1'), "sweep.'a\\nb': unknown Trial field"),
    ],
)
def test_limits_of_top_level_values(tmp_path, change, expected, monkeypatch):
    monkeypatch.setattr(sweepfile, "MAX_TRIALS", 1000)
    path = write(tmp_path, GOOD.replace(*change, 1))
    with pytest.raises(SweepFileError) as err:
        sweepfile.load(path)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_cli_reports_a_nan_range_as_an_error_not_a_traceback(tmp_path):
    from typer.testing import CliRunner

    from dsalab.cli import app

    path = write(tmp_path, range_file("{ start = 1, stop = 8, step = nan }"))
    r = CliRunner().invoke(app, ["sweep", str(path), "--quiet", "--out", str(tmp_path / "o.nc")])
    assert r.exit_code == 2, r.exception
    assert f"error: sweep file {path}: sweep.batch_size: range step=nan is not allowed" in r.output
    assert "Traceback" not in r.output
