"""What a figure cannot tell by itself, one sentence per caveat, for a result dataset or one result (a leaf module:
imports nothing heavy, so the summary, the plots and the CLI share it without the compiled module).

- **The emulated device shares the host's cores.** Where a ``dsa-emulated`` trial ran with more busy threads
  (emulated engines, ``dsa_completion``, senders, receivers, ``live_migration``, ``guest_dirty``) than the cores
  the process could use, the engines took core time from the host's threads and the completion thread polled
  over a longer wall time than a real device would cause: its host-CPU and time figures are an upper bound. The
  model (``runner = "model"``, :func:`dsalab.model.predict`) carries measured costs to real DSA hardware.
- **The model migrates nothing.** Results of backend ``model`` are predictions from a hardware profile.
- **QEMU under TCG.** Where QEMU ran with the TCG accelerator (no usable ``/dev/kvm``; attribute
  ``qemu_accel_ran`` of a sweep, ``qemu_accel`` of one trial), its dirty-page tracking is TCG's, not KVM's as on
  the seed's hosts.
- **QEMU found zero pages elsewhere.** Where QEMU's zero-page detection (``qemu_zero_page_detection_ran``) is not
  what the detector asked for, e.g. ``legacy`` (QEMU < 9.0: the main migration thread, not the multifd senders)
  for ``cpu-native``, its per-thread host CPU does not compare with the seed's multifd runs.

:func:`caveats` gives the sentences; :func:`format_caveats` gives them as lines to print under a table.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

from dsalab.backends import Backend
from dsalab.errors import InvalidType

#: what the "model" sentence names when a dataset or result does not say which profile it used
UNKNOWN_PROFILE = "(profile not recorded)"


def emulated_sentence(busy_threads: int, cores: int, trials: str = "") -> str:
    """The emulated-device caveat: ``busy_threads`` threads (> 0; 0: not recorded) on ``cores`` cores (0: not
    recorded); ``trials`` (e.g. ``"in 3 of 6 dsa-emulated trials"``) says where it applies."""
    if busy_threads > 0 and cores > 0:
        load = f" ({busy_threads} busy threads on {cores} cores{', ' + trials if trials else ''})"
    else:
        load = f" (threads per core not recorded{', ' + trials if trials else ''})"
    return (
        f"The emulated DSA shares the host's cores{load}, so its host-CPU and time figures are an upper bound; "
        'for real DSA hardware see the model (runner = "model", dsalab.model.predict).'
    )


def model_sentence(profile: str | None) -> str:
    """The model caveat for hardware profile ``profile`` (a name or the path of its TOML file; None: unknown)."""
    name = _profile_name(profile)
    return f"These numbers are predicted by dsalab.model from hardware profile {name}; nothing was migrated."


#: the zero-page detection QEMU should use for each detector (:func:`dsalab.qemu.mapping.plan`'s modes)
QEMU_DETECTION = {
    Backend.CPU_NATIVE: ("multifd",),
    Backend.DSA_HARDWARE: ("multifd-dsa-accel", "dsa-accel"),
    Backend.DSA_EMULATED: ("multifd-dsa-accel", "dsa-accel"),
}


def _tokens(value: Any) -> list[str]:
    """The comma-separated words of an attribute, only those that are plain names or versions (no markup)."""
    words = [w.strip() for w in str(value or "").split(",")]
    return [w for w in words if w and re.fullmatch(r"[A-Za-z0-9._+-]{1,40}", w)]


def qemu_sentences(accel: Any, detection: Any, version: Any, detectors: list[str]) -> list[str]:
    """The QEMU caveats for accelerators ``accel`` and zero-page detection modes ``detection`` (comma-separated, as
    the sweep's ``*_ran`` attributes say), QEMU ``version`` and the ``detectors`` that ran."""
    out = []
    which = f"QEMU {', '.join(_tokens(version))}" if _tokens(version) else "QEMU"
    if "tcg" in _tokens(accel):
        out.append(
            f"{which} ran with TCG (software emulation), not KVM (/dev/kvm not usable): the paused guest migrates "
            "through the same multifd code, but dirty-page tracking is TCG's, not KVM's as on the seed's hosts, so "
            "live_migration's host CPU may differ from a KVM host's."
        )
    modes = _tokens(detection)
    wanted = {m for d in detectors for m in QEMU_DETECTION.get(d, ())}
    if "legacy" in modes:
        out.append(
            f"{which} found zero pages in its main migration thread (zero-page-detection legacy, before QEMU 9.0), "
            "not in the multifd sender threads: that host CPU shows under live_migration, and it does not compare "
            "with the seed's multifd zero-page detection."
        )
    odd = [m for m in modes if m != "legacy" and wanted and m not in wanted]
    if odd:
        out.append(
            f"{which} found zero pages with {', '.join(odd)}, not what the detectors asked for "
            f"({', '.join(sorted(wanted))}): the detector named in the figures is not what ran."
        )
    return out


def _profile_name(profile: Any) -> str:
    if not isinstance(profile, str) or not profile.strip():
        return UNKNOWN_PROFILE
    text = profile.strip()
    return pathlib.PurePath(text).stem if text.endswith(".toml") else text


def _trial_profile(trial: Any) -> str | None:
    for key in ("hardware_profile", "hardware"):
        value = trial.get(key) if isinstance(trial, dict) else getattr(trial, key, None)
        if isinstance(value, str) and value:
            return value
    return None


def _dataset_profile(ds: Any) -> str | None:
    for key in ("hardware_profile", "hardware"):
        value = ds.attrs.get(key)
        if isinstance(value, str) and value:
            return value
    for key in ("base_trial", "trial"):
        text = ds.attrs.get(key)
        if isinstance(text, str):
            try:
                found = _trial_profile(json.loads(text))
            except (ValueError, TypeError):
                continue
            if found:
                return found
    return None


def _result_caveats(result: Any, profile: str | None) -> list[str]:
    out = []
    backend = str(result.backend)
    if backend == Backend.DSA_EMULATED:
        busy, cores = int(getattr(result, "busy_threads", 0)), int(getattr(result, "cores", 0))
        if busy <= 0 or cores <= 0 or busy > cores:
            out.append(emulated_sentence(busy, cores))
    if backend == Backend.MODEL:
        out.append(model_sentence(profile or _trial_profile(result.trial)))
    if backend == Backend.QEMU:
        detector = str(getattr(result.trial, "detector", ""))
        out += qemu_sentences(
            getattr(result, "accel", ""),
            getattr(result, "zero_page_detection", ""),
            getattr(result, "qemu_version", ""),
            [detector],
        )
    return out


def _dataset_caveats(ds: Any, profile: str | None) -> list[str]:
    import numpy as np  # only datasets come here; numpy is already loaded with xarray

    out = []
    if "backend" not in ds or "status" not in ds:
        return out
    dims = ds["status"].dims
    backend = np.asarray(ds["backend"].transpose(*dims).values).astype(str)
    ok = np.asarray(ds["status"].values).astype(str) == "ok"
    emulated = ok & (backend == str(Backend.DSA_EMULATED))
    if emulated.any():
        n = int(emulated.sum())
        busy = _values(ds, "busy_threads", emulated)
        cores = _values(ds, "cores", emulated)
        recorded = (busy > 0) & (cores > 0)
        over = recorded & (busy > cores)
        if over.any():
            where = "" if over.all() else f"in {int(over.sum())} of {n} {Backend.DSA_EMULATED} trials"
            out.append(emulated_sentence(int(busy[over].max()), int(cores[over].min()), where))
        elif not recorded.all():
            out.append(emulated_sentence(0, 0))
    if (ok & (backend == str(Backend.MODEL))).any():
        out.append(model_sentence(profile or _dataset_profile(ds)))
    if (ok & (backend == str(Backend.QEMU))).any():
        attrs = ds.attrs
        out += qemu_sentences(
            attrs.get("qemu_accel_ran") or attrs.get("qemu_accel"),
            attrs.get("qemu_zero_page_detection_ran") or attrs.get("qemu_zero_page_detection"),
            attrs.get("qemu_version_ran") or attrs.get("qemu_version"),
            _detectors(ds),
        )
    return out


def _detectors(ds: Any) -> list[str]:
    """The detectors of a dataset: its ``detector`` coordinate, else its base trial's."""
    if "detector" in ds.coords:
        return [str(d) for d in ds["detector"].values.ravel()]
    for key in ("base_trial", "trial"):
        try:
            found = json.loads(ds.attrs.get(key) or "").get("detector")
        except (ValueError, TypeError, AttributeError):
            continue
        if found:
            return [str(found)]
    return []


def _values(ds: Any, name: str, where: Any) -> Any:
    """The values of int metric ``name`` at the trials ``where`` (0, "not recorded", when the dataset lacks it)."""
    import numpy as np

    if name not in ds:
        return np.zeros(int(where.sum()), dtype=np.int64)
    return np.asarray(ds[name].transpose(*ds["status"].dims).values)[where].astype(np.int64)


def caveats(ds_or_result: Any, hardware_profile: str | None = None) -> list[str]:
    """The caveats of a result dataset (the layout of :mod:`dsalab.results`) or of one
    :class:`~dsalab.result.TrialResult`: a list of sentences, empty when there is nothing to say.

    ``hardware_profile`` names the profile model results came from (a name or a TOML path) when the caller knows
    it; otherwise it is looked up in the dataset's attributes (``hardware_profile``, ``hardware``, or the
    ``hardware`` field of its ``base_trial``) or the result's trial."""
    if hardware_profile is not None and not isinstance(hardware_profile, str):
        raise InvalidType(
            f"caveats(hardware_profile={hardware_profile!r:.80}) is not allowed: a profile name or path (str) or None"
        )
    if hasattr(ds_or_result, "data_vars"):
        return _dataset_caveats(ds_or_result, hardware_profile)
    if hasattr(ds_or_result, "backend") and hasattr(ds_or_result, "trial"):
        return _result_caveats(ds_or_result, hardware_profile)
    raise InvalidType(
        f"caveats(ds_or_result={type(ds_or_result).__name__}) is not allowed: a result dataset or a TrialResult"
    )


def format_caveats(ds_or_result: Any, prefix: str = "note: ", hardware_profile: str | None = None) -> str:
    """The caveats of ``ds_or_result`` (see :func:`caveats`) as lines to print under a table, each starting with
    ``prefix``; "" when there are none. ``dsalab run`` prints it under the result's table; ``dsalab sweep`` and
    ``dsalab summary`` get the same lines through :func:`dsalab.analysis.format_summary`."""
    return "\n".join(prefix + c for c in caveats(ds_or_result, hardware_profile))
