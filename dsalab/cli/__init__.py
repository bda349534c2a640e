"""The ``dsalab`` command line (typer). Each command is thin: it parses, calls the package, prints.

One module per group of commands, each registering on the one :data:`app`: :mod:`~dsalab.cli.host` (info,
devices), :mod:`~dsalab.cli.trials` (run, scenarios), :mod:`~dsalab.cli.sweeps` (sweep, summary, tune),
:mod:`~dsalab.cli.plot` (plot), :mod:`~dsalab.cli.report` (report), :mod:`~dsalab.cli.tenants` (tenants),
:mod:`~dsalab.cli.calibrate` (calibrate).
"""

from __future__ import annotations

import typer

from dsalab.cli._app import app
from dsalab.errors import DsalabError

# the commands register in this order, the order `dsalab --help` lists them
# isort: off
from dsalab.cli import host, trials, sweeps, plot, report, model, tenants, calibrate
# isort: on

__all__ = ["app", "calibrate", "host", "main", "model", "plot", "report", "sweeps", "tenants", "trials"]


def main() -> None:
    """Entry point of the ``dsalab`` script: a :class:`~dsalab.errors.DsalabError` that a command did not turn into
    its own message ends as one ``error: ...`` line and exit status 2, never a traceback."""
    try:
        app()
    except DsalabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
