"""The partial file of a running sweep and the lock that keeps one writer per output (split from
:mod:`dsalab.sweep`, which re-exports every public name here).

Every finished trial is appended to a partial file (JSON lines, flushed and fsynced: every trial, or every
``sync_every`` trials for cheap ones such as the model's), so a crash loses at most the trial (or batch) in flight
and a resumed sweep continues where it stopped. A torn last line is dropped with a :class:`PartialFileWarning`;
any other damage is an error naming the file and the line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import socket
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dsalab import metrics as _metrics
from dsalab.errors import DsalabError, SweepFileError
from dsalab.sweepfile import SweepSpec

if TYPE_CHECKING:
    from dsalab.sweep import Task

#: version of the partial-file layout (a header line, then one JSON object per finished trial)
PARTIAL_VERSION = 1


def default_partial_path(spec: SweepSpec, root: str | pathlib.Path = "data/partial") -> pathlib.Path:
    """Partial file of a sweep run without ``--out``: ``<root>/<hostname>/<name>-<sha12>.jsonl``."""
    return pathlib.Path(root) / socket.gethostname() / f"{spec.name}-{spec.sha256[:12]}.jsonl"


def partial_path_for(out: str | pathlib.Path) -> pathlib.Path:
    """Partial file beside an explicit output path: ``<out>.partial.jsonl``."""
    out = pathlib.Path(out)
    return out.with_name(out.name + ".partial.jsonl")


class PartialFileWarning(UserWarning):
    """A torn last line of a partial file (a crash mid-write) was dropped; its trial runs again."""


class OutputInUse(DsalabError):
    """Another sweep (another process, or another thread of this one) is writing the same output or partial file."""


class _Corrupt(Exception):
    """What is wrong with one line of a partial file (PartialFile turns it into an error naming file and line)."""


#: how many times a lock is retried when the lock file is replaced under us (a finishing holder unlinks it)
_LOCK_ATTEMPTS = 20
_held: dict[str, list[Any]] = {}  # lock path -> [fd, owning thread id, depth]
_held_guard = threading.Lock()


def lock_path(target: str | pathlib.Path) -> pathlib.Path:
    """The advisory lock file of an output or partial file: ``<target>.lock``."""
    target = pathlib.Path(target)
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def exclusive(target: str | pathlib.Path) -> Iterator[pathlib.Path]:
    """Hold the advisory lock (``fcntl.flock`` on ``<target>.lock``, which records the holder's pid) for the body.

    Another process, or another thread of this process, that asks for the same target meanwhile gets
    :class:`OutputInUse` naming the holder at once (nothing waits). The same thread may nest the lock. The lock file
    is removed when the outermost holder leaves; a lock left by a killed process is released by the kernel.
    """
    lock = lock_path(target)
    key = os.path.abspath(lock)
    me = threading.get_ident()
    with _held_guard:
        entry = _held.get(key)
        if entry is not None and entry[1] != me:
            raise OutputInUse(
                f"{target} is being written by another sweep in this process (pid {os.getpid()}); "
                "wait for it to finish, or write elsewhere"
            )
        if entry is None:
            entry = _held[key] = [_acquire(lock, pathlib.Path(target)), me, 0]
        entry[2] += 1
    try:
        yield lock
    finally:
        with _held_guard:
            entry[2] -= 1
            if entry[2] == 0:
                del _held[key]
                fd = entry[0]
                try:
                    if _same_file(lock, fd):
                        lock.unlink()
                except OSError:
                    pass
                finally:
                    os.close(fd)


def _same_file(path: pathlib.Path, fd: int) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _acquire(lock: pathlib.Path, target: pathlib.Path) -> int:
    """Lock ``lock`` without waiting; returns its descriptor (pid written in it) or raises OutputInUse."""
    for _ in range(_LOCK_ATTEMPTS):
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise SweepFileError(f"cannot create the lock file {lock} ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "pid not recorded yet"
            os.close(fd)
            raise OutputInUse(
                f"{target} is being written by another sweep ({holder}; lock {lock}): wait for it to finish, "
                "or write elsewhere (--out)"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise OutputInUse(
                f"cannot lock {lock} ({exc.strerror or exc}); the file system must support flock"
            ) from None
        try:
            if _same_file(lock, fd):  # else the previous holder removed it between our open and flock: lock anew
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
                return fd
        except OSError as exc:  # e.g. a full disk: give the lock back rather than hold it until the process ends
            os.close(fd)
            raise OutputInUse(f"cannot record the writer in {lock} ({exc.strerror or exc})") from None
        os.close(fd)
    raise OutputInUse(f"cannot lock {lock}: it was replaced {_LOCK_ATTEMPTS} times while locking")


class PartialFile:
    """Append-only JSON lines: a header naming the sweep (its SHA-256), then one line per finished trial.

    Reading an existing file (``resume=True``): a last line that is not JSON (a crash mid-write, or a power cut that
    left garbage) is dropped with a :class:`PartialFileWarning` and its trial runs again; any other line that is
    not a valid header or trial record is a :class:`~dsalab.errors.SweepFileError` naming the file and the line.
    """

    def __init__(self, path: str | pathlib.Path, spec: SweepSpec, *, resume: bool, sync_every: int = 1) -> None:
        self.path = pathlib.Path(path)
        #: fsync after this many appended trials (1: every trial; more for cheap trials, e.g. the model's)
        self.sync_every = max(1, int(sync_every))
        self._unsynced = 0
        self.done: dict[str, dict[str, Any]] = {}
        #: task key -> (TrialResult or None, error, worker) of every finished trial
        self.records: dict[str, tuple[Any, str, str]] = {}
        if self.path.exists() and not resume:
            raise SweepFileError(
                f"partial file {self.path} of an earlier run exists: pass --resume to continue it, or delete it"
            )
        try:
            if self.path.exists():
                self._load(spec)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            self._fh = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise SweepFileError(f"partial file {self.path}: cannot be used ({exc.strerror or exc})") from None
        if fresh:
            header = {"kind": "header", "version": PARTIAL_VERSION, "sweep": spec.name, "sha256": spec.sha256}
            try:
                self._write(header)
                _fsync_dir(self.path.parent)  # the new file's name survives a power cut too
            except OSError as exc:  # e.g. a full disk
                self._fh.close()
                raise SweepFileError(f"partial file {self.path}: cannot be written ({exc.strerror or exc})") from None

    def _load(self, spec: SweepSpec) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # the file ends with a newline (the normal case)
        good = 0
        for i, raw in enumerate(lines):
            number = i + 1
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (ValueError, RecursionError):  # not UTF-8, not JSON, or past the int-digit limit
                if i == len(lines) - 1:  # the line being written when the process died
                    warnings.warn(
                        PartialFileWarning(
                            f"partial file {self.path}: line {number}, the last, is incomplete (a crash while "
                            "writing it); dropped, its trial runs again"
                        ),
                        stacklevel=4,
                    )
                    break
                raise SweepFileError(
                    f"partial file {self.path}: line {number} is not JSON; only the last line may be cut short by "
                    "a crash: repair or delete that line (or delete the file and run again)"
                ) from None
            try:
                if i == 0:
                    self._check_header(obj, spec)
                else:
                    key, record = _parse_record(obj)
                    self.done[key] = obj
                    self.records[key] = record
            except _Corrupt as exc:
                raise SweepFileError(f"partial file {self.path}: line {number}: {exc}") from None
            good += len(raw) + 1
        if good > len(data):  # a complete last record whose newline was lost
            with self.path.open("ab") as fh:
                fh.write(b"\n")
        elif good < len(data):
            with self.path.open("r+b") as fh:  # drop a torn last line so appends stay valid JSON lines
                fh.truncate(good)
                os.fsync(fh.fileno())

    def _check_header(self, obj: Any, spec: SweepSpec) -> None:
        if not isinstance(obj, dict) or obj.get("kind") != "header":
            raise _Corrupt(
                f"{_cut(obj)} is not a partial-file header; expected "
                '{"kind": "header", "version": 1, "sweep": ..., "sha256": ...}'
            )
        if obj.get("version") != PARTIAL_VERSION:
            raise _Corrupt(
                f"header version {_cut(obj.get('version'))} is not allowed; this dsalab reads {PARTIAL_VERSION}"
            )
        if obj.get("sha256") != spec.sha256:
            raise _Corrupt(
                "the file belongs to another sweep file (or another version of it): "
                "delete it or run without --resume elsewhere"
            )

    def _write(self, obj: dict[str, Any], *, sync: bool = True) -> None:
        self._fh.write(json.dumps(obj, sort_keys=True) + "\n")
        self._fh.flush()
        self._unsynced += 1
        if sync:
            os.fsync(self._fh.fileno())
            self._unsynced = 0

    def append(self, task: Task, outcome: dict[str, Any]) -> None:
        """Record a finished trial (the line is flushed before this returns, and fsynced with every
        ``sync_every``-th trial)."""
        obj = {"kind": "trial", "key": task.key, **outcome}
        try:
            key, record = _parse_record(obj)
        except _Corrupt as exc:  # a worker's result that could not be stored: the trial failed, the sweep goes on
            obj = {"kind": "trial", "key": task.key, "result": None, "error": f"invalid result: {exc}", "worker": ""}
            obj["worker"] = str(outcome.get("worker", ""))
            key, record = _parse_record(obj)
        self._write(obj, sync=self._unsynced + 1 >= self.sync_every)
        self.done[key] = obj
        self.records[key] = record

    def close(self) -> None:
        """fsync what is not yet and close the file (it stays on disk until the sweep's result is written)."""
        try:
            if self._unsynced and not self._fh.closed:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._unsynced = 0
        finally:
            self._fh.close()


def _cut(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_record(obj: Any) -> tuple[str, tuple[Any, str, str]]:
    """(key, (TrialResult or None, error, worker)) of a trial line; raises _Corrupt saying what is wrong."""
    from dsalab.result import TrialResult

    allowed = '{"kind": "trial", "key": str, "result": object or null, "error": str, "worker": str}'
    if not isinstance(obj, dict) or obj.get("kind") != "trial":
        raise _Corrupt(f"{_cut(obj)} is not a trial record; expected {allowed}")
    for name, kinds in (("key", str), ("error", str), ("worker", str), ("result", dict | None)):
        if name not in obj:
            raise _Corrupt(f"trial record without {name!r}; expected {allowed}")
        if not isinstance(obj[name], kinds):
            raise _Corrupt(f"trial record {name}={_cut(obj[name])} is not allowed; expected {allowed}")
    data = obj["result"]
    if data is None:
        return obj["key"], (None, obj["error"], obj["worker"])
    try:
        result = TrialResult.from_dict(data)
        metrics = result.metrics()
    except (DsalabError, ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
        raise _Corrupt(f"result is not a trial result ({type(exc).__name__}: {_cut(str(exc), 200)})") from None
    for name, value in metrics.items():
        if name in _metrics.INT_NAMES | _metrics.FLAG_NAMES:
            ok = isinstance(value, int) and -(2**63) <= value < 2**63
        else:
            ok = _real(value)
        if not ok:
            raise _Corrupt(f"result {name}={_cut(value)} is not allowed; expected a number")
    threads = result.thread_cpu_ms
    if not isinstance(result.backend, str) or not isinstance(threads, dict):
        raise _Corrupt("result backend must be a string and thread_cpu_ms an object of thread -> ms")
    if not all(isinstance(k, str) and _real(v) for k, v in threads.items()):
        raise _Corrupt(f"result thread_cpu_ms={_cut(threads)} is not allowed; expected thread name -> ms")
    return obj["key"], (result, obj["error"], obj["worker"])


def _real(value: Any) -> bool:
    """A JSON number that fits a float64 variable (an int beyond 2**63 or a bool is not one)."""
    return isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63)


def _fsync_dir(path: pathlib.Path) -> None:
    """fsync a directory, so names created, renamed or removed in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
