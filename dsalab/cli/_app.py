"""The ``dsalab`` typer application and what every command uses (the commands are in this package's modules)."""

from __future__ import annotations

from typing import Any

import typer

app = typer.Typer(
    name="dsalab",
    help="Study Intel DSA zero-page offload in QEMU-style multifd live migration.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """dsalab: DSA zero-page offload, CPU baselines, multifd migration engine, sweeps and plots."""


def fail(message: str) -> None:
    """Print ``message`` as an error and exit with status 2 (a usage error)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def open_dask(scheduler: str | None, local_workers: int | None) -> tuple[Any, Any, str]:
    """(client, cluster, label) for ``--scheduler`` / ``--local-workers`` (a local cluster of single-thread worker
    processes on 127.0.0.1), or (None, None, "serial"); :func:`close_dask` closes them."""
    if scheduler and local_workers:
        fail("--scheduler and --local-workers exclude each other: give one (or neither for a serial run)")
    if scheduler is not None:
        import re

        if not re.fullmatch(r"tcp://[^\s:/]+:\d{1,5}", scheduler):
            fail(f"--scheduler {scheduler!r} is not allowed: give a Dask scheduler address tcp://HOST:PORT")
        from distributed import Client

        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            fail(f"--scheduler {scheduler}: cannot connect ({exc})")
        return client, None, scheduler
    if local_workers is not None:
        if local_workers < 1:
            fail(f"--local-workers {local_workers} is not allowed: an int >= 1")
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=local_workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
        return Client(cluster), cluster, f"local:{local_workers}"
    return None, None, "serial"


def close_dask(client: Any, cluster: Any) -> None:
    """Close what :func:`open_dask` opened (either may be None)."""
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()
