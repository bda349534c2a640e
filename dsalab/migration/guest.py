"""Guest memory: a page-aligned anonymous mapping filled reproducibly from a seed."""

from __future__ import annotations

import contextlib
import mmap
import numbers
import os

import numpy as np

from dsalab import _binding
from dsalab.buffers import check_page_size
from dsalab.config import PAGE_SIZE, default_threads
from dsalab.errors import InvalidArgument, MigrationError
from dsalab.units import format_bytes, parse_bytes

MEMINFO = "/proc/meminfo"


def _check_ratio(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise InvalidArgument(f"{name}={value!r} is not allowed: it must be a number from 0.0 to 1.0")
    return float(value)


def mem_available_bytes(path: str = MEMINFO) -> int | None:
    """Memory this machine can give a new allocation without swapping: ``MemAvailable`` of ``/proc/meminfo``,
    bytes; None where the file or the line is missing (then nothing is checked)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key == "MemAvailable":
                    fields = rest.split()
                    if fields and fields[0].isdigit():
                        return int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    except OSError:
        return None
    return None


def memory_shortfall(needed: int) -> str:
    """An empty string if ``needed`` bytes fit in :func:`mem_available_bytes`, else a phrase saying how much is
    needed and how much is available (for an error message)."""
    available = mem_available_bytes()
    if available is None or needed <= available:
        return ""
    return (
        f"needs {format_bytes(needed)} ({needed} bytes) but {format_bytes(available)} ({available} bytes) is "
        f"available (MemAvailable in {MEMINFO})"
    )


#: Linux's MADV_POPULATE_WRITE (5.14+; Python's mmap module names it from 3.13 on)
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)


def prefault(m: mmap.mmap, nbytes: int, page_size: int = PAGE_SIZE) -> None:
    """Fault in the first ``nbytes`` of mapping ``m`` for writing, keeping its contents (what QEMU's
    ``prealloc=on`` does), so that a later write does not pay the page fault. ``madvise(MADV_POPULATE_WRITE)``
    where the kernel has it, else a read-and-write of one byte per page (``page_size`` bytes apart)."""
    if nbytes <= 0:
        return
    try:
        m.madvise(MADV_POPULATE_WRITE, 0, nbytes)
    except OSError:  # an older kernel: touch every page, writing back what is there
        view = np.frombuffer(m, dtype=np.uint8)[:nbytes]
        view[::page_size] |= 0
        del view


def anonymous_mapping(
    nbytes: int, *, huge_pages: bool = False, populate: bool = False, page_size: int = PAGE_SIZE
) -> mmap.mmap:
    """A private anonymous mapping (page-aligned, zero-filled); with ``huge_pages`` it is advised for
    transparent huge pages; with ``populate`` every page (``page_size`` bytes) is faulted in now, after that
    advice, so that writes to it later pay no page fault."""
    m = mmap.mmap(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if huge_pages:
        m.madvise(mmap.MADV_HUGEPAGE)
    if populate:
        prefault(m, nbytes, page_size)
    return m


def memfd_mapping(nbytes: int, name: str) -> tuple[int, mmap.mmap]:
    """A shared mapping of a new memfd of ``nbytes`` (zero-filled): another process (QEMU) can map the same
    memory through ``/proc/<pid>/fd/<fd>``. Returns (fd, mapping); close both when done."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, max(nbytes, 1))
        return fd, mmap.mmap(fd, max(nbytes, 1), flags=mmap.MAP_SHARED)
    except OSError:
        os.close(fd)
        raise


class GuestMemory:
    """Guest RAM for a migration trial.

    A fraction ``normal_ratio`` of the pages, at positions drawn from ``seed``, holds pseudo-random
    (incompressible) bytes; every other page is zero. The same arguments always give the same bytes.
    Every page is written, so zero pages are backed by real memory (as in a guest that has used its RAM),
    not by the kernel's shared zero page.

    Parameters
    ----------
    guest_bytes : size in bytes, or a string such as ``"4GiB"``; a whole number of pages
    normal_ratio : fraction of pages that are normal (non-zero), 0.0 to 1.0
    seed : seed of the page positions and contents
    page_size : bytes per page, a power of two >= 64
    huge_pages : advise transparent huge pages for the mapping
    shared : back the memory with a memfd that another process (a real QEMU) can map: see :attr:`memfd_path`
    """

    def __init__(
        self,
        guest_bytes: int | str,
        *,
        normal_ratio: float,
        seed: int,
        page_size: int = PAGE_SIZE,
        huge_pages: bool = False,
        shared: bool = False,
    ) -> None:
        self.page_size = check_page_size(page_size)
        self.guest_bytes = parse_bytes(guest_bytes, "guest_bytes")
        if self.guest_bytes <= 0 or self.guest_bytes % self.page_size:
            raise InvalidArgument(
                f"guest_bytes={self.guest_bytes} is not allowed: it must be a positive whole number of "
                f"{self.page_size}-byte pages"
            )
        self.normal_ratio = _check_ratio("normal_ratio", normal_ratio)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**63:
            raise InvalidArgument(f"seed={seed!r} is not allowed: it must be an int from 0 to 2**63-1")
        self.seed = int(seed)
        self.npages = self.guest_bytes // self.page_size
        # the mapping, plus the positions drawn below (a permutation of int64 and the normal map)
        short = memory_shortfall(self.guest_bytes + 9 * self.npages)
        if short:
            raise InvalidArgument(
                f"guest_bytes={self.guest_bytes} ({format_bytes(self.guest_bytes)}) is too large for this "
                f"machine: the guest {short}"
            )
        rng = np.random.default_rng(self.seed)
        n_normal = round(self.normal_ratio * self.npages)
        normal = np.zeros(self.npages, dtype=np.uint8)
        normal[rng.permutation(self.npages)[:n_normal]] = 1
        self.memfd: int | None = None
        try:
            if shared:
                self.memfd, self._map = memfd_mapping(self.guest_bytes, f"dsalab-guest-{self.seed}")
            else:
                self._map = anonymous_mapping(self.guest_bytes, huge_pages=huge_pages)
        except OSError as exc:
            raise MigrationError(
                f"could not map {format_bytes(self.guest_bytes)} of guest memory: {exc.strerror or exc}"
            ) from None
        self.array = np.frombuffer(self._map, dtype=np.uint8)[: self.guest_bytes]
        _binding.fill_pages(self.array, self.page_size, normal, self.seed, True, default_threads())
        #: truth: True where the page is zero
        self.truth = normal == 0
        self.zero_pages = int(self.truth.sum())
        self.normal_pages = self.npages - self.zero_pages

    @property
    def memfd_path(self) -> str:
        """A path another process can open to map this memory (``shared=True`` only)."""
        if self.memfd is None:
            raise InvalidArgument("this GuestMemory was made with shared=False: it has no memfd")
        return f"/proc/{os.getpid()}/fd/{self.memfd}"

    @property
    def buffer(self) -> memoryview:
        """A writable view of the guest's memory."""
        return memoryview(self._map)[: self.guest_bytes]

    def __len__(self) -> int:
        return self.guest_bytes

    def __repr__(self) -> str:
        return (
            f"GuestMemory({self.guest_bytes} bytes, {self.npages} pages of {self.page_size}, "
            f"{self.normal_pages} normal, {self.zero_pages} zero, seed={self.seed})"
        )

    def close(self) -> None:
        """Unmap the memory now if no view of it is alive (otherwise when the last view goes)."""
        self.array = np.zeros(0, dtype=np.uint8)
        with contextlib.suppress(BufferError):  # a caller still holds a view: the mapping goes with it
            self._map.close()
        if self.memfd is not None:
            os.close(self.memfd)
            self.memfd = None
