"""ltbench: a benchmark harness for long-tailed recognition.

Importing the package is cheap on purpose (no torch): the CLI's ``--help`` and ``list`` must start in
well under a second. Heavy modules are imported where they are used.
"""

__version__ = "0.1.0"
