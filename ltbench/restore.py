"""Rebuild a trained model from a finished run directory (distillation teachers, e.g. RIDE ``--set teacher=DIR``;
linear probes; ``ltbench.load_run``, ``predict`` and ``export``).

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
from ltbench.train.trainer import load_checkpoint, to_device


def finished_records(run_dir: str | Path, role: str = "run") -> tuple[dict, dict]:
    """config.json and result.json of a ``done`` run; anything else is refused, naming the run's state."""
    run_dir = Path(run_dir).expanduser()
    state = run_state(run_dir) if run_dir.is_dir() else "missing"
    if state != "done":
        raise ConfigError(
            f"{role} {run_dir} is not a finished run (state: {state}); give the directory of a run that "
            "has result.json and done, e.g. <out>/<sweep>/<run_id>"
        )
    config, result = read_json(run_dir / "config.json"), read_json(run_dir / "result.json")
    if not config or not result:
        raise ConfigError(f"{role} {run_dir}: config.json or result.json is unreadable")
    return config, result


def recorded_info(result: dict) -> DataInfo:
    """The DataInfo a finished run's method was built with, from its result.json. The training labels are
    rebuilt from the class counts (class membership, not the training order: only training hooks use it)."""
    data = result["data"]
    counts = list(data["class_counts"])
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return DataInfo(data["num_classes"], counts, data["image_size"], data["name"], labels)


def method_class(config: dict) -> type[Method]:
    """The run's method class as it trained (with the ``--ssp`` stage 0 where the run had it)."""
    from ltbench.registry import METHODS

    cls = METHODS.get(config["config"]["method"])
    if config["config"].get("ssp"):
        from ltbench.methods.ssp import with_ssp

        cls = with_ssp(cls)
    return cls


def rebuild(
    config: dict, info: DataInfo, state: dict, device: torch.device, method_state: dict | None = None
) -> tuple[Method, nn.Module]:
    """Method and model (eval mode, no gradients) from a run's config.json content and final weights ``state``:
    the resolved hparams and backbone build it, each stage's structural changes are re-applied, then the weights
    and the method's own state (what its predictions may depend on) are loaded."""
    from ltbench.models.backbones import build_backbone

    resolved = config["resolved"]
    method = method_class(config)(dict(resolved["hp"]), info)
    model = method.build_model(
        build_backbone(resolved["backbone"], info.image_size), info.num_classes, info.class_counts
    )
    for stage in method.stages():
        method.adapt_model(model, stage)
    model.load_state_dict(state)
    if method_state is not None:
        method.load_state_dict(to_device(method_state, device))
    model = model.to(device).eval().requires_grad_(False)
    return method, model


def load_finished(run_dir: str | Path, info: DataInfo, device: torch.device) -> tuple[Method, nn.Module]:
    """The finished run's method and model (eval mode, no gradients) for the student's data ``info``."""
    run_dir = Path(run_dir).expanduser()
    config, result = finished_records(run_dir, "teacher")
    counts = result["data"]["class_counts"]
    if result["data"]["name"] != info.dataset or list(counts) != list(info.class_counts):
        raise ConfigError(
            f"teacher {run_dir} was trained on {result['data']['name']} with class counts {counts}; the student "
            f"trains on {info.dataset} with {list(info.class_counts)}: a teacher must see the same training set"
        )
    blob = load_checkpoint(run_dir / "ckpt.pt")  # weights_only: a shared run directory cannot run code here
    return rebuild(config, info, blob["model"], device)
