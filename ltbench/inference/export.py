"""``ltbench export``: one self-contained file per finished run — weights, the resolved configuration, class
names, preprocessing, backbone name and the ltbench version — that plain ``torch.load(path, weights_only=True)``
reads (only tensors, numbers, strings, lists and dicts: loading it runs no code), and that ltbench's builders
turn back into the same model (``load_export``) without the run directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ltbench.errors import ConfigError, storage_error
from ltbench.inference.load import LoadedRun
from ltbench.inference.preprocess import Preprocess
from ltbench.method import DataInfo

FORMAT, FORMAT_VERSION = "ltbench-export", 1


def export_blob(run_dir: str | Path) -> dict[str, Any]:
    """The exported content of a finished run (weights on the CPU)."""
    from ltbench import __version__
    from ltbench.inference.load import load_run
    from ltbench.records import read_json
    from ltbench.train.trainer import load_checkpoint

    run = load_run(run_dir, device="cpu")
    result = read_json(run.run_dir / "result.json")
    ckpt = load_checkpoint(run.run_dir / "ckpt.pt")
    info = run.info
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ltbench_version": __version__,
        "run_id": result["run_id"],
        "method": run.config["method"],
        "variant": run.variant,
        "backbone": run.resolved["backbone"],
        "config": run.config,
        "resolved": run.resolved,
        "data": {
            "dataset": info.dataset,
            "num_classes": info.num_classes,
            "class_counts": list(info.class_counts),
            "image_size": info.image_size,
        },
        "class_names": run.class_names,
        "preprocess": run.transform.as_dict(),
        "metrics": {k: result["metrics"][k] for k in ("overall", "many", "medium", "few")},
        "state_dict": {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()},
        "method_state": ckpt.get("method"),
    }


def export_run(run_dir: str | Path, to: str | Path) -> Path:
    """Write ``run_dir``'s export to ``to`` (via a temporary file and a rename); the run is only read."""
    run_dir, to = Path(run_dir).expanduser().resolve(), Path(to).expanduser()
    if to.resolve().is_relative_to(run_dir):
        raise ConfigError(f"--to {to} is inside the run directory {run_dir}; export writes elsewhere, never into a run")
    blob = export_blob(run_dir)
    tmp = to.with_name(f".{to.name}.{os.getpid()}.tmp")
    try:
        torch.save(blob, tmp)
        os.replace(tmp, to)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(exc, to) from exc
    return to


def load_export(path: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """An exported file as a LoadedRun (``run_dir`` None), rebuilt with ltbench's builders."""
    from ltbench.restore import rebuild
    from ltbench.train.runtime import resolve_device

    try:
        blob = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{path} cannot be loaded as an ltbench export: {type(exc).__name__}: {exc}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ConfigError(f"{path} is not an ltbench export (written by `ltbench export RUN_DIR --to FILE`)")
    data = blob["data"]
    counts = data["class_counts"]
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    info = DataInfo(data["num_classes"], counts, data["image_size"], data["dataset"], labels)
    device = resolve_device(device) if isinstance(device, str) else device
    config = {"config": blob["config"], "resolved": blob["resolved"]}
    method, model = rebuild(config, info, blob["state_dict"], device, blob.get("method_state"))
    p = blob["preprocess"]
    return LoadedRun(
        model=model,
        method=method,
        info=info,
        transform=Preprocess.from_dict(p),
        class_names=list(blob["class_names"]),
        config=blob["config"],
        resolved=blob["resolved"],
        variant=blob["variant"],
    )
