"""ltbench: a benchmark harness for long-tailed recognition.

Importing the package is cheap on purpose (no torch): the CLI's ``--help`` and ``list`` must start in
well under a second. Heavy modules are imported where they are used.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

# The repository's methods/ folder is installed as the subpackage ltbench.methods (pyproject package-dir). In a
# source checkout that is not installed (PYTHONPATH=the checkout), let the package find it there as well.
_checkout = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).parent / "methods").is_dir() and (_checkout / "methods" / "__init__.py").is_file():
    __path__.append(str(_checkout))  # noqa: F821  (the package's own search path)
