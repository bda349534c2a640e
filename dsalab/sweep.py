"""Running a sweep: every (grid point, repeat) of a :class:`~dsalab.sweepfile.SweepSpec`, serially or on Dask.

- Serial by default: on a shared machine, timings are only honest one trial at a time.
- Warm-ups (``warmups`` passes over the grid, with their own seeds) run first and are thrown away.
- Measured trials run repeat by repeat (the whole grid for repeat 0, then repeat 1, ...), so slow drift of the
  machine spreads over every point instead of biasing one.
- Every finished trial is appended to a partial file (JSON lines, flushed and fsynced), so a crash loses at most
  the trial in flight and :func:`run_sweep` with ``resume=True`` continues where it stopped.
- A trial that raises is recorded as failed with its error; the sweep goes on.
- With a Dask ``client`` each worker runs one trial at a time and the host it ran on is recorded per trial.
- Runner ``model``: each trial is :func:`dsalab.model.predict` on the sweep's hardware profile (checked up front by
  :func:`model_profile`); the model is deterministic, so the sweep has one repeat and no warm-up, and the partial
  file is fsynced once per :data:`MODEL_BATCH` trials instead of once per trial (a crash loses at most one batch of
  predictions, which take milliseconds to make again).
- Runner ``qemu``: each trial is :func:`dsalab.qemu.run_trial` on the sweep's QEMU binary (checked up front by
  :func:`qemu_capabilities`); a point that QEMU cannot honour is a failed point carrying the message naming the
  field and the QEMU version. QEMU's version, accelerator and zero-page detection go into the dataset's
  attributes (each trial's own, with its QEMU's page-count corrections, into the partial file).

The result is the dataset of :func:`dsalab.results.build_dataset`, with :func:`sweep_attrs` provenance.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import socket
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from dsalab import results
from dsalab.backends import Runner
from dsalab.errors import SweepFileError
from dsalab.partial import (  # noqa: F401 (re-exported: the partial file's names were sweep's)
    PARTIAL_VERSION,
    OutputInUse,
    PartialFile,
    PartialFileWarning,
    default_partial_path,
    exclusive,
    lock_path,
    partial_path_for,
)
from dsalab.results import TrialRecord
from dsalab.sweepfile import SweepSpec
from dsalab.trial import Trial

#: runner ``model``: the partial file is fsynced once per this many predictions (each takes well under 1 ms; an
#: fsync takes milliseconds, so one per trial would make the sweep's time mostly disk waits)
MODEL_BATCH = 200


@dataclasses.dataclass(frozen=True)
class Task:
    """One trial to run: its grid point, repeat, whether it is a warm-up, and the Trial."""

    point: dict[str, Any]
    repeat: int
    warmup: bool
    trial: Trial

    @property
    def key(self) -> str:
        """Identity in the partial file: warm-up flag, repeat and point (JSON, sorted keys)."""
        return json.dumps([self.warmup, self.repeat, _plain(self.point)], sort_keys=True)


def tasks(spec: SweepSpec) -> Iterator[Task]:
    """Warm-up passes first, then the measured repeats, each a pass over the whole grid."""
    points = list(spec.points())
    for w in range(spec.warmups):
        for p in points:
            yield Task(p, w, True, spec.trial(p, w, warmup=True))
    for r in range(spec.repeats):
        for p in points:
            yield Task(p, r, False, spec.trial(p, r))


def execute(trial: Trial, runner: str = Runner.ENGINE, profile: Any = None, qemu: str = "") -> dict[str, Any]:
    """Run one trial and return {"result": TrialResult.to_dict() or None, "error": str, "worker": hostname} (and,
    for runner ``qemu``, "qemu": :meth:`dsalab.qemu.QemuResult.qemu_attrs`).

    ``runner``: ``engine`` runs the trial; ``model`` predicts it on ``profile`` (a
    :class:`~dsalab.model.HardwareProfile`, required for the model); ``qemu`` runs it on two QEMU processes of
    binary ``qemu`` ("" = ``qemu-system-x86_64`` on PATH). Never raises for a failing trial: the error
    (type and message) is returned, so one bad point does not stop a sweep. This is also the function Dask
    workers run.
    """
    worker = socket.gethostname()
    try:
        if runner == Runner.MODEL:
            if profile is None:
                raise SweepFileError("runner 'model' needs a hardware profile (sweep file key hardware)")
            from dsalab.model import predict

            result = predict(trial, profile)
        elif runner == Runner.ENGINE:
            from dsalab.migration import run_trial

            result = run_trial(trial)
        elif runner == Runner.QEMU:
            from dsalab.qemu import run_trial as run_on_qemu

            result = run_on_qemu(trial, qemu=qemu or None)
            return {"result": result.base_dict(), "error": "", "worker": worker, "qemu": result.qemu_attrs()}
        else:
            allowed = ", ".join(Runner)
            raise SweepFileError(f"runner {runner!r} is not available; allowed: {allowed}")
    except Exception as exc:  # a failed trial is data, not the end of the sweep
        message = f"{type(exc).__name__}: {exc}".strip()
        if not str(exc):
            message += " " + traceback.format_exc(limit=1).strip().splitlines()[-1]
        return {"result": None, "error": message, "worker": worker}
    return {"result": result.to_dict(), "error": "", "worker": worker}


def model_profile(spec: SweepSpec):
    """The :class:`~dsalab.model.HardwareProfile` of a ``model`` sweep (None for another runner), checked: it
    parses and has costs for every detector of the grid. Raises :class:`SweepFileError` naming the sweep file,
    the key (``hardware``) and what is wrong."""
    if spec.runner != Runner.MODEL:
        return None
    import tomllib

    from dsalab.backends import is_cpu, is_dsa
    from dsalab.errors import InvalidArgument
    from dsalab.model import HardwareProfile

    where = f"sweep file {spec.path}: hardware: {spec.hardware}"
    try:
        profile = HardwareProfile.from_dict(tomllib.loads(spec.hardware_text), spec.hardware)
    except tomllib.TOMLDecodeError as exc:
        raise SweepFileError(f"{where}: not valid TOML: {exc}") from None
    except InvalidArgument as exc:
        raise SweepFileError(f"sweep file {spec.path}: hardware: {exc}") from None
    detectors = spec.params.get("detector", (Trial(**spec.base).detector,))
    for d in detectors:
        if is_cpu(d) and d not in profile.detectors:
            raise SweepFileError(
                f"{where}: profile {profile.name} has no CPU costs for detector {d}; "
                f"it has {', '.join(profile.detectors)}"
            )
        if is_dsa(d) and profile["dsa.devices"] < 1:
            raise SweepFileError(f"{where}: profile {profile.name} has no DSA device (dsa.devices = 0) for {d}")
    return profile


def qemu_capabilities(spec: SweepSpec):
    """The :class:`~dsalab.qemu.Capabilities` of a ``qemu`` sweep's binary (None for another runner); a missing
    binary or one that does not answer raises :class:`SweepFileError` naming the sweep file and the binary."""
    if spec.runner != Runner.QEMU:
        return None
    from dsalab.errors import DsalabError
    from dsalab.qemu import probe

    try:
        return probe(spec.qemu or None)
    except DsalabError as exc:
        raise SweepFileError(f"sweep file {spec.path}: qemu: {exc}") from None


def sweep_attrs(spec: SweepSpec, scheduler: str = "serial") -> dict[str, str | int | float]:
    """Flat, netCDF-safe provenance of a sweep: :func:`dsalab.results.provenance` plus the sweep file's content,
    name, path, SHA-256, seed, repeats, warm-ups, runner, base trial (JSON), swept parameters and scheduler; for
    the model, the hardware profile's name, path, SHA-256 and TOML text and the file's repeats and warm-ups."""
    attrs = results.provenance()
    attrs.update(
        {
            "sweep_name": spec.name,
            "sweep_description": spec.description,
            "sweep_path": spec.path,
            "sweep_file": spec.text,
            "sweep_sha256": spec.sha256,
            "seed": spec.seed,
            "repeats": spec.repeats,
            "warmups": spec.warmups,
            "runner": spec.runner,
            "base_trial": json.dumps(Trial(**spec.base).to_dict(), sort_keys=True),
            "swept": ",".join(spec.dims),
            "scheduler": scheduler,
            "runner_from": spec.runner_from,
        }
    )
    if spec.runner == Runner.MODEL:
        attrs.update(
            {
                "hardware_profile": model_profile(spec).name,
                "hardware_path": spec.hardware,
                "hardware_sha256": spec.hardware_sha256,
                "hardware_toml": spec.hardware_text,
                "repeats_in_file": spec.file_repeats,
                "warmups_in_file": spec.file_warmups,
                "model_note": (
                    "predicted by dsalab.model, not measured: the model is deterministic, so one repeat ran "
                    f"(the file asks for {spec.file_repeats}) and no warm-up"
                ),
            }
        )
    caps = qemu_capabilities(spec)
    if caps is not None:
        from dsalab.qemu.process import accelerator, find_binary

        attrs.update(
            {
                "qemu_binary": find_binary(spec.qemu or None),
                "qemu_version": ".".join(map(str, caps.version)),
                "qemu_package": caps.package,
                "qemu_accel": accelerator(),
            }
        )
    return attrs


#: called after each finished trial with (task, outcome dict, trials done, trials total)
OnTrial = Callable[[Task, dict[str, Any], int, int], None]


def run_sweep(
    spec: SweepSpec,
    *,
    partial: str | pathlib.Path | None = None,
    resume: bool = False,
    client: Any = None,
    progress: bool = True,
    on_trial: OnTrial | None = None,
    scheduler: str = "serial",
):
    """Run every trial of ``spec`` and return the result dataset (not yet written; see :func:`dsalab.results.write`).

    Parameters
    ----------
    spec : the validated sweep file
    partial : JSON-lines file every finished trial is appended to (default :func:`default_partial_path`)
    resume : continue the trials of an existing partial file (otherwise an existing one is an error)
    client : a ``dask.distributed.Client``: run trials on its workers, one per worker at a time
    progress : show a tqdm bar with the estimated time left
    on_trial : called after each finished trial (and after it is in the partial file)
    scheduler : how trials ran, for the ``scheduler`` attribute ("serial", "local:4", "tcp://...")

    The partial file is left on disk; delete it once the dataset is written (the CLI does). While this runs the
    partial file is locked (:func:`exclusive`): a second sweep on the same file fails with :class:`OutputInUse`.
    """
    partial = pathlib.Path(partial or default_partial_path(spec))
    with exclusive(partial):
        return _run_sweep(spec, partial, resume, client, progress, on_trial, scheduler)


def _run_sweep(spec, partial, resume, client, progress, on_trial, scheduler):
    from tqdm import tqdm

    profile = model_profile(spec)  # before anything runs: a bad profile fails the sweep, not every trial
    qemu_capabilities(spec)  # likewise a missing QEMU binary
    sync_every = MODEL_BATCH if spec.runner == Runner.MODEL else 1
    partial_file = PartialFile(partial, spec, resume=resume, sync_every=sync_every)
    all_tasks = list(tasks(spec))
    todo = [t for t in all_tasks if t.key not in partial_file.done]
    bar = tqdm(
        total=len(all_tasks),
        initial=len(all_tasks) - len(todo),
        unit="trial",
        desc=spec.name,
        disable=not progress,
        dynamic_ncols=True,
    )
    count = len(all_tasks) - len(todo)

    def finished(task: Task, outcome: dict[str, Any]) -> None:
        nonlocal count
        partial_file.append(task, outcome)
        count += 1
        bar.update(1)
        status = "failed" if outcome["result"] is None else "ok"
        bar.set_postfix_str(f"{'warm-up' if task.warmup else f'repeat {task.repeat}'} {status}")
        if on_trial is not None:
            on_trial(task, outcome, count, len(all_tasks))

    try:
        if client is None:
            for task in todo:
                finished(task, execute(task.trial, spec.runner, profile, spec.qemu))
        else:
            _run_on_dask(client, todo, spec.runner, finished, profile, spec.qemu)
    finally:
        bar.close()
        partial_file.close()
    records = []
    for task in all_tasks:
        if task.warmup:
            continue
        result, error, worker = partial_file.records[task.key]
        records.append(TrialRecord(task.point, task.repeat, result, error, worker))
    ds = results.build_dataset(records, spec.params, spec.repeats, sweep_attrs(spec, scheduler))
    backends = sorted({r.result.backend for r in records if r.result is not None})
    ds.attrs["backend"] = ",".join(backends)
    ds.attrs["trials_failed"] = sum(r.result is None for r in records)
    if spec.runner == Runner.QEMU:  # what the trials' QEMUs did (each value once)
        ran = [partial_file.done[t.key].get("qemu") or {} for t in all_tasks if not t.warmup]
        for name in ("qemu_version", "qemu_accel", "qemu_zero_page_detection"):
            ds.attrs[f"{name}_ran"] = ",".join(sorted({str(q[name]) for q in ran if name in q}))
    return ds


def _run_on_dask(
    client: Any,
    todo: list[Task],
    runner: str,
    finished: Callable[[Task, dict], None],
    profile: Any = None,
    qemu: str = "",
) -> None:
    """Keep one trial in flight per worker (whatever its thread count) until ``todo`` is done. Restrictions are
    loose, so a trial whose worker dies runs elsewhere instead of waiting forever."""
    from distributed import as_completed

    queue = list(reversed(todo))
    workers = list(client.scheduler_info(n_workers=-1)["workers"]) if queue else []
    if queue and not workers:
        raise SweepFileError(f"the Dask scheduler {client.scheduler.address} has no workers")
    in_flight = {}

    def submit(worker: str) -> None:
        task = queue.pop()
        fut = client.submit(
            execute, task.trial, runner, profile, qemu, workers=[worker], allow_other_workers=True, pure=False
        )
        in_flight[fut] = (task, worker)

    for w in workers:
        if queue:
            submit(w)
    pending = as_completed(list(in_flight))
    for fut in pending:
        task, worker = in_flight.pop(fut)
        try:
            outcome = fut.result()
        except Exception as exc:  # the worker died or the task could not run: record, go on
            outcome = {"result": None, "error": f"dask: {type(exc).__name__}: {exc}", "worker": worker}
        finished(task, outcome)
        if queue:
            alive = set(client.scheduler_info(n_workers=-1)["workers"])
            target = worker if worker in alive else next(iter(alive), None)
            if target is None:
                raise SweepFileError("every Dask worker is gone; resume the sweep with --resume")
            submit(target)
            new = next(reversed(in_flight))
            pending.add(new)


def _plain(value: Any) -> Any:
    """JSON-ready copy (tuples of device specs become lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
