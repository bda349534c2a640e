"""tests/browser_support.py without a browser: its page check's bounds, the lab server's cleanup of kernels."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time

import browser_support as bs
import pytest

pytestmark = pytest.mark.timeout(60)


class RecordingPage:
    """The few Page methods open_html_and_check calls, recording each timeout; the page draws one figure."""

    def __init__(self) -> None:
        self.timeouts: dict[str, int] = {}

    def on(self, *a) -> None: ...

    def goto(self, url, *, wait_until, timeout) -> None:
        self.timeouts["goto"] = timeout

    def wait_for_function(self, js, *, timeout) -> None:
        self.timeouts["draw"] = timeout

    def evaluate(self, js, arg):
        return [{"traces": 1, "marks": 3, "width": 800, "xticks": []}]


def test_a_short_drawing_bound_does_not_bound_the_page_load(tmp_path):
    page = RecordingPage()
    bs.open_html_and_check(page, tmp_path / "report.html", timeout_ms=5_000)
    assert page.timeouts == {"goto": bs.LOAD_MS, "draw": 5_000} and bs.LOAD_MS >= 60_000


def test_stop_kills_a_kernel_in_its_own_session(tmp_path):
    """A child started in a session of its own (as jupyter_client starts kernels) is not in the server's process
    group; stop() still ends it, by pid."""
    server = bs.LabServer(tmp_path, tmp_path / "home")
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True); "
        "time.sleep(120)"
    )
    server.proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 20
    while not server.children() and time.monotonic() < deadline:
        time.sleep(0.05)
    (kernel,) = server.children()
    server.stop()
    deadline = time.monotonic() + 10
    while _running(kernel) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(kernel), "the kernel still runs"


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (killed, not yet reaped)."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_failure_output_is_this_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(bs, "OUTPUT", tmp_path)
    (tmp_path / "notebook-06.png").write_bytes(b"an earlier run's")
    bs.forget_output("notebook-06")
    assert not (tmp_path / "notebook-06.png").exists()
    server = bs.LabServer(tmp_path, tmp_path / "home")
    server.log_path.parent.mkdir(parents=True)
    server.log_path.write_text("the server said why")
    server.__exit__(RuntimeError, RuntimeError("a failed step"), None)  # no server started: only the exit
    assert (tmp_path / "jupyter-lab.log").read_text() == "the server said why"
