"""ltbench: a benchmark harness for long-tailed recognition.

Importing the package is cheap on purpose (no torch): the CLI's ``--help`` and ``list`` must start in
well under a second. Heavy modules are imported where they are used.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"
__all__ = ["__version__", "load_run"]


def __getattr__(name: str):
    """``ltbench.load_run`` without importing torch at ``import ltbench`` (PEP 562: looked up on first use)."""
    if name == "load_run":
        from ltbench.inference import load_run

        return load_run
    raise AttributeError(f"module 'ltbench' has no attribute {name!r}")


# The repository's methods/ folder is installed as the subpackage ltbench.methods (pyproject package-dir). In a
# source checkout that is not installed (PYTHONPATH=the checkout), let the package find it there as well.
_checkout = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).parent / "methods").is_dir() and (_checkout / "methods" / "__init__.py").is_file():
    __path__.append(str(_checkout))  # noqa: F821  (the package's own search path)
