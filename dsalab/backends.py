"""Names of what produces a result (a leaf module: imports nothing of dsalab).

A :class:`Backend` is what a result's ``backend`` variable holds: the engine's zero-page detector
(``cpu-numba``, ``cpu-native``, ``dsa-emulated``, ``dsa-hardware``) or another backend (``qemu``, ``model``).
A :class:`Runner` is what a sweep file's ``runner`` names: the program that turns a Trial into a result.
Both are :class:`enum.StrEnum`: members compare equal to their strings, so datasets, sweep files and callers that
use plain strings are unchanged.
"""

from __future__ import annotations

import enum


class Backend(enum.StrEnum):
    """What produced a result (the dataset's ``backend`` variable)."""

    CPU_NUMBA = "cpu-numba"
    CPU_NATIVE = "cpu-native"
    DSA_EMULATED = "dsa-emulated"
    DSA_HARDWARE = "dsa-hardware"
    QEMU = "qemu"
    MODEL = "model"

    @property
    def is_dsa(self) -> bool:
        """True for the DSA offload detectors (emulated or hardware)."""
        return self in (Backend.DSA_EMULATED, Backend.DSA_HARDWARE)

    @property
    def is_cpu(self) -> bool:
        """True for the CPU detectors."""
        return self in (Backend.CPU_NUMBA, Backend.CPU_NATIVE)


#: the engine's zero-page detectors, in the order sweeps and tables show them (a Trial's ``detector``)
DETECTORS: tuple[Backend, ...] = (Backend.CPU_NUMBA, Backend.CPU_NATIVE, Backend.DSA_EMULATED, Backend.DSA_HARDWARE)


class Runner(enum.StrEnum):
    """What turns a Trial into a result (a sweep file's ``runner``)."""

    ENGINE = "engine"
    MODEL = "model"
    QEMU = "qemu"


def is_dsa(name: str) -> bool:
    """True when backend/detector ``name`` (str or :class:`Backend`) is a DSA offload one."""
    return name in (Backend.DSA_EMULATED, Backend.DSA_HARDWARE)


def is_cpu(name: str) -> bool:
    """True when backend/detector ``name`` (str or :class:`Backend`) is a CPU detector."""
    return name in (Backend.CPU_NUMBA, Backend.CPU_NATIVE)
