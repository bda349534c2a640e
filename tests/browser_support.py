"""Helpers of tests/test_browser.py: a JupyterLab server of the test's own, the system Chromium, and checks of
pages drawn by plotly.

Everything here is bounded: the server start waits at most ``START_S``, its stop ``STOP_S`` before the process
group is killed by its id, and kernels (each in a session of its own) still running after it are killed by pid;
every page wait has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: failure screenshots and, when a test fails with a server running, the server's log go here (gitignored)
OUTPUT = ROOT / "test-output"
#: bounded waits, s
START_S = 60.0
STOP_S = 10.0
#: loading a page (a self-contained report is ~5 MB of plotly.js), ms: not the short bound of a drawing check
LOAD_MS = 60_000


def find_chromium() -> str | None:
    """The system Chromium (``chromium`` or ``chromium-browser`` on PATH), or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """``jupyter lab`` on 127.0.0.1, a random free port and a random token, with its own runtime, config, data,
    settings and workspace folders under ``home``; serves ``root``. Use as a context manager."""

    def __init__(self, root: pathlib.Path, home: pathlib.Path) -> None:
        self.root, self.home = root, home
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.log_path = home / "jupyter-lab.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def page_url(self, path: str) -> str:
        """The URL that opens ``path`` (relative to the root) in JupyterLab, token included."""
        return f"{self.url}/lab/tree/{path}?token={self.token}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        dirs = {
            "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_DATA_DIR": "data",
            "JUPYTERLAB_SETTINGS_DIR": "settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
            "IPYTHONDIR": "ipython",
        }
        for var, sub in dirs.items():
            (self.home / sub).mkdir(parents=True, exist_ok=True)
            env[var] = str(self.home / sub)
        # no "get official Jupyter news?" popup over the page
        news = self.home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True, exist_ok=True)
        news.write_text('{"fetchNews": "false"}')
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        # the kernel is this interpreter's (a kernel.json naming "python" finds this one first)
        env["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def start(self) -> LabServer:
        self.home.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "jupyter-lab.log").unlink(missing_ok=True)  # an earlier run's, not this one's
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            # nothing from outside: no news, no update check, no extension index
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]  # fmt: skip
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed by the process's end
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"jupyter lab did not answer within {START_S:.0f} s: {self.log_tail()}")

    def children(self) -> dict[int, str]:
        """The server's child processes now (its kernels): pid -> start time (``/proc/<pid>/stat``), so that a
        pid reused later is not taken for one of them."""
        if self.proc is None:
            return {}
        out = {}
        for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid:  # ppid
                    out[int(stat.parent.name)] = fields[19]  # starttime
        return out

    def stop(self) -> None:
        """SIGTERM to the server's process group, a bounded wait, then SIGKILL by id; then SIGKILL to each of its
        kernels still running. jupyter_client starts kernels with ``start_new_session``, so they are not in the
        server's group: the server's own shutdown stops them, and a kernel it left (server killed) is killed here
        by the pid it had as the server's child."""
        if self.proc is None:
            return
        kernels = self.children()
        pgid = self.proc.pid  # start_new_session: the group's id is the server's pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_S)
        for pid, started in kernels.items():
            with contextlib.suppress(OSError, IndexError):
                stat = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                if stat[19] == started:  # the same process, not a reused pid
                    os.kill(pid, signal.SIGKILL)
        self.proc = None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is not None:  # the server's log beside the failure's screenshot
                OUTPUT.mkdir(exist_ok=True)
                with contextlib.suppress(OSError):
                    shutil.copyfile(self.log_path, OUTPUT / "jupyter-lab.log")
        finally:
            self.stop()


def small_notebook(src: pathlib.Path, dst: pathlib.Path, params: dict[str, object]) -> pathlib.Path:
    """A copy of notebook ``src`` at ``dst`` with its parameters cell's values replaced by ``params`` (each line
    ``name: type = value  # help`` keeps its type and help)."""
    nb = json.loads(src.read_text())
    cell = nb["cells"][0]
    assert "parameters" in cell.get("metadata", {}).get("tags", []), f"{src.name}: no parameters cell first"
    lines = "".join(cell["source"]).splitlines()
    out = []
    for line in lines:
        name, _, rest = line.partition(":")
        if name in params:
            typ = rest.split("=", 1)[0].strip()
            note = line.split("  #", 1)[1] if "  #" in line else ""
            line = f"{name}: {typ} = {params[name]!r}" + (f"  #{note}" if note else "")
        out.append(line)
    cell["source"] = "\n".join(out)
    dst.write_text(json.dumps(nb, indent=1))
    return dst


def forget_output(name: str) -> None:
    """Remove test-output/<name>.png left by an earlier run, so that a screenshot there is this run's."""
    (OUTPUT / f"{name}.png").unlink(missing_ok=True)


def screenshot_on_failure(page, name: str) -> pathlib.Path | None:
    """Save a full-page screenshot of ``page`` as test-output/<name>.png (None when the page is gone)."""
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / f"{name}.png"
    try:
        page.screenshot(path=str(path), full_page=True, timeout=10_000)
    except Exception:  # a closed page has nothing to show; the test's own error is the one reported
        return None
    return path


#: the JavaScript that counts what plotly drew in the graph divs under a root element: per plot, its traces and
#: the marks (bars, points, line paths) in them
COUNT_MARKS = """(root) => Array.from((root || document).querySelectorAll('.js-plotly-plot')).map((p) => ({
    traces: p.querySelectorAll('.main-svg .trace').length,
    marks: p.querySelectorAll('.main-svg .trace .point, .main-svg .trace path.js-line').length,
    width: Math.round(p.getBoundingClientRect().width),
    xticks: Array.from(p.querySelectorAll('.xtick text')).map((t) => t.textContent),
}))"""


def open_html_and_check(page, path: pathlib.Path, *, timeout_ms: int = 30_000) -> list[dict]:
    """Open the HTML file ``path`` in ``page`` (its load bounded by :data:`LOAD_MS`) and check that every plotly
    figure in it is drawn within ``timeout_ms`` (at least one trace with marks) and that the console logged no
    error and the page raised none; returns the plots' counts (:data:`COUNT_MARKS`). Raises AssertionError saying
    what is wrong."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.goto(pathlib.Path(path).resolve().as_uri(), wait_until="load", timeout=LOAD_MS)
    # plotly draws each figure's svg asynchronously: wait until every graph div has one
    page.wait_for_function(
        "() => { const p = document.querySelectorAll('.js-plotly-plot');"
        " return p.length > 0 && Array.from(p).every((d) => d.querySelector('.main-svg')); }",
        timeout=timeout_ms,
    )
    plots = page.evaluate(COUNT_MARKS, None)
    assert plots, f"{path}: no plotly figure"
    empty = [i for i, p in enumerate(plots) if p["traces"] == 0 or p["marks"] == 0]
    assert not empty, f"{path}: figure(s) {empty} drew nothing: {plots}"
    assert not errors, f"{path}: {errors}"
    return plots
