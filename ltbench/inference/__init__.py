"""Using finished runs: ``load_run`` (model + the method's prediction + preprocessing), image preprocessing for
``ltbench predict``, and the self-contained ``ltbench export`` file."""

from ltbench.inference.export import export_run, load_export
from ltbench.inference.load import LoadedRun, load_run
from ltbench.inference.preprocess import Preprocess

__all__ = ["LoadedRun", "Preprocess", "export_run", "load_export", "load_run"]
