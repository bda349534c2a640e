"""``make run``'s steps after the sweep, with a stand-in ``dsalab`` (a shell script that records its calls and
fails where told): the report is written whatever the PNG export does, every step runs, the report's path is
printed last, and the run fails at the end naming each failed step, each step's own error left above it."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not shutil.which("make"), reason="no make on PATH"),
]

#: the stand-in: each subcommand exits with $RC_<subcommand> (default 0); sweep prints $WROTE as its wrote line
FAKE = """#!/bin/sh
echo "$*" >> "$CALLS"
cmd=$1; shift
case $cmd in
  info) echo "machine info" ;;
  sweep) echo "summary of the sweep"; [ -n "$WROTE" ] && echo "wrote $WROTE"; exit ${RC_sweep:-0} ;;
  report) while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out=$2; shift; done
          [ "${RC_report:-0}" = 0 ] || { echo "error: report broke" >&2; exit $RC_report; }
          mkdir -p "$(dirname "$out")" && echo "<html>report</html>" > "$out"; echo "$out" ;;
  plot) [ "${RC_plot:-0}" = 0 ] || { echo "error: PNG export needs Chromium (kaleido found none)" >&2; exit $RC_plot; }
        echo "data/figures/x.png" ;;
esac
exit 0
"""


def make_run(tmp_path: pathlib.Path, wrote: str = "data/results/h/2026-quick-abc.nc", **rc: int):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "dsalab"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    profile = tmp_path / "profile.toml"
    profile.write_text("# a profile exists: no calibration\n")
    env = dict(os.environ, CALLS=str(tmp_path / "calls"), WROTE=wrote, **{f"RC_{k}": str(v) for k, v in rc.items()})
    # -o setup: the venv and native build are not this test's business; BIN points at the stand-in
    done = subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "-o", "setup", "run", f"BIN={bin_dir}", f"PROFILE={profile}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    calls = (tmp_path / "calls").read_text().splitlines()
    return done, calls


REPORT = "data/reports/2026-quick-abc.html"


def test_all_steps_succeed(tmp_path):
    done, calls = make_run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"report: {REPORT}"
    assert [c.split()[0] for c in calls] == ["info", "sweep", "report", "plot"]
    assert (tmp_path / REPORT).is_file()


def test_a_failed_png_export_still_writes_the_report_and_fails_at_the_end(tmp_path):
    done, _ = make_run(tmp_path, plot=2)
    assert (tmp_path / REPORT).read_text() == "<html>report</html>\n"
    assert done.returncode != 0
    assert "PNG export needs Chromium" in done.stderr  # the real error
    assert "make run: failed steps: plot(rc 2)" in done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"report: {REPORT}"


def test_a_sweep_that_wrote_its_file_and_then_failed_is_said_so(tmp_path):
    done, calls = make_run(tmp_path, sweep=3)
    assert "make run: sweep failed (rc 3) after writing data/results/h/2026-quick-abc.nc" in done.stderr
    assert "wrote no result file" not in done.stderr
    assert [c.split()[0] for c in calls] == ["info", "sweep", "report", "plot"]  # its file is still reported
    assert (tmp_path / REPORT).is_file()
    assert done.returncode != 0 and "failed steps: sweep(rc 3)" in done.stderr


def test_no_wrote_line_is_said_with_the_sweeps_status(tmp_path):
    done, calls = make_run(tmp_path, wrote="", sweep=4)
    assert done.returncode != 0
    assert "the sweep wrote no result file (no 'wrote' line; sweep rc 4)" in done.stderr
    assert [c.split()[0] for c in calls] == ["info", "sweep"]


def test_a_failed_report_fails_the_run_and_prints_no_path(tmp_path):
    done, calls = make_run(tmp_path, report=2)
    assert done.returncode != 0
    assert "error: report broke" in done.stderr and "failed steps: report(rc 2)" in done.stderr
    assert "report:" not in done.stdout
    assert [c.split()[0] for c in calls] == ["info", "sweep", "report", "plot"]
