"""Rebuild a trained model from a finished run directory (distillation teachers, e.g. RIDE ``--set teacher=DIR``;
linear probes).

A teacher is only as trustworthy as its provenance, so this refuses anything but a ``done`` run on the same
classes: the model is rebuilt from the run's own config.json (method, resolved hparams, backbone), its
stage-specific structure is re-applied, and the final weights are loaded from ckpt.pt.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ltbench.errors import ConfigError
from ltbench.method import DataInfo, Method
from ltbench.records import read_json, run_state
from ltbench.train.trainer import load_checkpoint


def load_finished(run_dir: str | Path, info: DataInfo, device: torch.device) -> tuple[Method, nn.Module]:
    """The finished run's method and model (eval mode, no gradients) for the student's data ``info``."""
    from ltbench.models.backbones import build_backbone
    from ltbench.registry import METHODS

    run_dir = Path(run_dir).expanduser()
    state = run_state(run_dir) if run_dir.is_dir() else "missing"
    if state != "done":
        raise ConfigError(
            f"teacher {run_dir} is not a finished run (state: {state}); give the directory of a run that "
            "has result.json and done, e.g. <out>/<sweep>/<run_id>"
        )
    config, result = read_json(run_dir / "config.json"), read_json(run_dir / "result.json")
    if not config or not result:
        raise ConfigError(f"teacher {run_dir}: config.json or result.json is unreadable")
    counts = result["data"]["class_counts"]
    if result["data"]["name"] != info.dataset or list(counts) != list(info.class_counts):
        raise ConfigError(
            f"teacher {run_dir} was trained on {result['data']['name']} with class counts {counts}; the student "
            f"trains on {info.dataset} with {list(info.class_counts)}: a teacher must see the same training set"
        )
    method_name, resolved = config["config"]["method"], config["resolved"]
    method = METHODS.get(method_name)(dict(resolved["hp"]), info)
    model = method.build_model(build_backbone(resolved["backbone"], info.image_size), info.num_classes, counts)
    for stage in method.stages():
        method.adapt_model(model, stage)
    blob = load_checkpoint(run_dir / "ckpt.pt")  # weights_only: a shared run directory cannot run code here
    model.load_state_dict(blob["model"])
    model = model.to(device).eval().requires_grad_(False)
    return method, model
