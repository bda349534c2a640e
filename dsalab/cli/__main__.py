"""``python -m dsalab.cli``: the ``dsalab`` command."""

from dsalab.cli import main

main()
