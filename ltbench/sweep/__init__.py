"""Sweeps: expand a spec into run configurations (:mod:`.spec`), read their states (:mod:`.state`) and
submit what is missing with submitit (:mod:`.launch`, imported on use: submitit is not needed to read states).
Cluster presets ship as ``presets.toml`` beside this file."""

from ltbench.sweep.spec import SweepSpec, draw, expand, load_spec, random_hparams
from ltbench.sweep.state import failure_reason, states, sweep_status, to_launch

__all__ = [
    "SweepSpec",
    "draw",
    "expand",
    "failure_reason",
    "load_spec",
    "random_hparams",
    "states",
    "sweep_status",
    "to_launch",
]
