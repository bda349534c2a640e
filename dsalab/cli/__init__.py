"""The ``dsalab`` command line (typer). Each command is thin: it parses, calls the package, prints.

One module per group of commands, each registering on the one :data:`app`: :mod:`~dsalab.cli.host` (info,
devices), :mod:`~dsalab.cli.trials` (run, scenarios), :mod:`~dsalab.cli.sweeps` (sweep, summary, tune),
:mod:`~dsalab.cli.plot` (plot).
"""

from __future__ import annotations

from dsalab.cli._app import app

# the commands register in this order, the order `dsalab --help` lists them
# isort: off
from dsalab.cli import host, trials, sweeps, plot
# isort: on

__all__ = ["app", "host", "main", "plot", "sweeps", "trials"]


def main() -> None:
    """Entry point of the ``dsalab`` script."""
    app()


if __name__ == "__main__":
    main()
