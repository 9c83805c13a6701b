"""The ``ltbench`` command line (argparse): :func:`main` and one module per group of subcommands."""

from ltbench.cli.main import main

__all__ = ["main"]
