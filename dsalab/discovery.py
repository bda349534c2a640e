"""Discovery of DSA devices and work queues from sysfs (``/sys/bus/dsa``) and ``/dev/dsa``.

Reads only; opening a queue for submission is :mod:`dsalab.devices`. The roots are arguments so that tests can
point them at a fake tree.
"""

from __future__ import annotations

import dataclasses
import errno
import mmap
import os
import pathlib
import stat

from dsalab.errors import DeviceNotFound, DevicePermissionError, InvalidArgument

SYSFS_ROOT = pathlib.Path("/sys/bus/dsa/devices")
DEV_ROOT = pathlib.Path("/dev/dsa")
PORTAL_BYTES = 4096


def char_root(sysfs_root: pathlib.Path = SYSFS_ROOT) -> pathlib.Path:
    """The ``dev/char`` directory of the sysfs tree that holds ``sysfs_root`` (``/sys/bus/dsa/devices`` ->
    ``/sys/dev/char``): one entry ``MAJOR:MINOR`` per character device, whose ``uevent`` names its device node."""
    return pathlib.Path(sysfs_root).parent.parent.parent / "dev" / "char"


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a character device"


def _uevent(path: pathlib.Path) -> dict[str, str]:
    out = {}
    for line in _read(path).splitlines():
        key, eq, value = line.partition("=")
        if eq:
            out[key.strip()] = value.strip()
    return out


def check_queue_device(path: str, sysfs_root: pathlib.Path = SYSFS_ROOT) -> os.stat_result:
    """Check, opening nothing, that ``path`` is the character device of an idxd DSA work queue: its last part
    is ``wqX.Y``, it is (or links to) a character device, sysfs names that device ``dsa/wqX.Y``
    (``/sys/dev/char/MAJ:MIN/uevent``) and ``sysfs_root`` has the queue. Returns its ``stat``.

    Raises :class:`DeviceNotFound` (no such file or queue), :class:`DevicePermissionError` or
    :class:`InvalidArgument` naming the path, what it is and what is allowed: never a regular file, a directory,
    a link to one, or a character device of another driver."""
    allowed = "allowed: the character device of an idxd DSA work queue, /dev/dsa/wqX.Y (nothing was opened)"
    name = os.path.basename(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            found = [q.path for q in work_queues(sysfs_root)]
            raise DeviceNotFound(
                f"no DSA work queue at {path}; this machine has: {', '.join(found) or 'none'} "
                "(use 'emu' for the emulated device, see `dsalab devices`)"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise DevicePermissionError(f"device path {path} cannot be examined: {exc.strerror}; {allowed}") from None
        raise InvalidArgument(f"device path {path} cannot be examined: {exc.strerror}; {allowed}") from None
    link = " (through a symbolic link)" if os.path.islink(path) else ""
    if not stat.S_ISCHR(st.st_mode):
        raise InvalidArgument(f"device path {path} is {_kind(st.st_mode)}{link}, not a DSA work queue; {allowed}")
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    entry = char_root(sysfs_root) / f"{major}:{minor}"
    devname = _uevent(entry / "uevent").get("DEVNAME")
    if devname != f"dsa/{name}":
        said = f"DEVNAME={devname}" if devname else f"no {entry}/uevent"
        raise InvalidArgument(
            f"device path {path} is character device {major}:{minor}{link} ({said}), not the idxd driver's "
            f"dsa/{name}; {allowed}"
        )
    if not (pathlib.Path(sysfs_root) / name).is_dir():
        raise DeviceNotFound(f"device path {path}: sysfs has no work queue {name} in {sysfs_root}; {allowed}")
    return st


@dataclasses.dataclass(frozen=True)
class WorkQueue:
    """One DSA work queue as sysfs and /dev describe it."""

    name: str  #: "wq0.0"
    device: str  #: "dsa0"
    path: str  #: character device, "/dev/dsa/wq0.0"
    mode: str  #: "dedicated" or "shared"
    size: int  #: work queue depth, descriptors
    priority: int
    state: str  #: "enabled", "disabled", ...
    type: str  #: "user", "kernel", ...
    wq_name: str  #: the name accel-config gave it
    max_batch_size: int  #: descriptors per batch (0 where unknown)
    max_transfer_size: int  #: bytes per descriptor (0 where unknown)
    dev_exists: bool  #: the character device exists
    access: str  #: "portal" (may mmap: ENQCMD/MOVDIR64B), "write" (must use write()), or "none: <why>"

    @property
    def advice(self) -> str:
        """What to do about this queue's access, in one line."""
        if self.access == "portal":
            return "ready: descriptors go straight to the portal (ENQCMD/MOVDIR64B)"
        if self.access == "write":
            return (
                "usable through write() (the kernel forbids mapping the portal without CAP_SYS_RAWIO since "
                "Linux 6.10): batches are split into single descriptors; run with CAP_SYS_RAWIO to map it"
            )
        return f"not usable: {self.access}; check the queue is enabled, of type user, and readable by you"


def _read(p: pathlib.Path, default: str = "") -> str:
    try:
        return p.read_text().strip()
    except OSError:
        return default


def _read_int(p: pathlib.Path) -> int:
    try:
        return int(_read(p, "0"), 0)
    except ValueError:
        return 0


def portal_access(path: pathlib.Path) -> str:
    """Whether this process may map the queue's 4 KiB portal ("portal"), only write() to it ("write"), or
    neither ("none: reason"). Only a character device is opened (never created); anything else is "none"."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"none: cannot open {path}: {exc.strerror}"
    if not stat.S_ISCHR(st.st_mode):
        return f"none: {path} is {_kind(st.st_mode)}, not a character device"
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)  # never created
    except OSError as exc:
        return f"none: cannot open {path}: {exc.strerror}"
    try:
        m = mmap.mmap(fd, PORTAL_BYTES, flags=mmap.MAP_SHARED, prot=mmap.PROT_WRITE)
    except (OSError, ValueError):  # EPERM without CAP_SYS_RAWIO (Linux >= 6.10); ValueError: nothing to map
        return "write"
    else:
        m.close()
        return "portal"
    finally:
        os.close(fd)


def work_queues(sysfs_root: pathlib.Path = SYSFS_ROOT, dev_root: pathlib.Path = DEV_ROOT) -> list[WorkQueue]:
    """Every work queue the kernel's idxd driver shows, sorted by name."""
    if not sysfs_root.is_dir():
        return []
    queues = []
    for wq in sorted(sysfs_root.glob("wq*.*")):
        device = "dsa" + wq.name[2:].split(".")[0]
        dev = dev_root / wq.name
        queues.append(
            WorkQueue(
                name=wq.name,
                device=device,
                path=str(dev),
                mode=_read(wq / "mode", "unknown"),
                size=_read_int(wq / "size"),
                priority=_read_int(wq / "priority"),
                state=_read(wq / "state", "unknown"),
                type=_read(wq / "type", "unknown"),
                wq_name=_read(wq / "name"),
                max_batch_size=_read_int(wq / "max_batch_size"),
                max_transfer_size=_read_int(wq / "max_transfer_size"),
                dev_exists=dev.exists(),
                access=portal_access(dev) if dev.exists() else f"none: {dev} does not exist",
            )
        )
    return queues


def devices(sysfs_root: pathlib.Path = SYSFS_ROOT) -> list[dict[str, str | int]]:
    """Every DSA device (``dsaN``): state, max batch size, engines and groups counts."""
    if not sysfs_root.is_dir():
        return []
    out = []
    for d in sorted(sysfs_root.glob("dsa[0-9]*")):
        out.append(
            {
                "name": d.name,
                "state": _read(d / "state", "unknown"),
                "max_batch_size": _read_int(d / "max_batch_size"),
                "max_work_queues": _read_int(d / "max_work_queues"),
                "max_engines": _read_int(d / "max_engines"),
                "numa_node": _read_int(d / "numa_node"),
            }
        )
    return out
