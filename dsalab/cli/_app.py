"""The ``dsalab`` typer application and what every command uses (the commands are in this package's modules)."""

from __future__ import annotations

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
