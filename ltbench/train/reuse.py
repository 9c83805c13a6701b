"""``--from RUN``: take the first stages of a run from a finished run instead of training them again.

cRT, LWS and τ-norm share CE's 200-epoch representation, a contrastive stage 1 serves several stage-2
variants: retraining it costs hours per run. A finished run's stages stand in for this run's first k stages
only when they are provably the same computation: every ``Stage`` field but its name, the method's
``stage_key`` (its loss and the hparams it reads), the training data (dataset, selected images, class
counts, validation rule), backbone, seed, precision and determinism. These form a cumulative signature per
stage; the source must have exactly k stages, all matching, so its final checkpoint is the state after them.
The run then starts as if resumed at that stage boundary (a checkpoint and the source's log lines are
written into its directory) and its record names the source (``reused_from``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ltbench.errors import ConfigError
from ltbench.method import DataInfo, Method
from ltbench.records import is_run_dir, log_entries, read_json, run_state

# Stage fields added after runs were recorded, with the value that means the old behaviour
LATER = {"restarts": (), "backbone_lr_factor": 1.0}


def stage_signatures(method: Method, common: dict[str, Any]) -> list[str]:
    """Cumulative digests: signature i covers stages 0..i of ``method`` and the run-level ``common`` fields."""
    h = hashlib.sha256(json.dumps(common, sort_keys=True, default=str).encode())
    out = []
    for i, stage in enumerate(method.stages()):
        # a field added later enters only when set, so runs recorded before it still serve ``--from``
        fields = {
            k: v for k, v in dataclasses.asdict(stage).items() if k != "name" and not (k in LATER and v == LATER[k])
        }
        h.update(json.dumps({"stage": fields, "key": method.stage_key(i)}, sort_keys=True, default=str).encode())
        out.append(h.hexdigest()[:20])
    return out


def common_identity(data: dict, backbone: str, config: dict, precision: str, pretrained: bool) -> dict[str, Any]:
    """The run-level part of a stage signature, from a data record (``run.data_record``) and a config dict."""
    prov = data.get("provenance") or {}
    return {
        "dataset": data.get("name"),
        "class_counts": list(data.get("class_counts") or []),
        "images": prov.get("index_hash"),
        "val": config.get("val"),
        "backbone": backbone,
        "pretrained": bool(pretrained),
        "image_size": config.get("image_size"),
        "seed": config.get("seed"),
        "precision": precision,
        "deterministic": bool(config.get("deterministic")),
    }


def _source_signatures(run_dir: Path) -> tuple[list[str], dict, dict]:
    """A finished run's stage signatures, rebuilt from its own config.json and result.json."""
    from ltbench.registry import METHODS

    config, result = read_json(run_dir / "config.json"), read_json(run_dir / "result.json")
    cfg, resolved, data = config["config"], config["resolved"], result["data"]
    info = DataInfo(data["num_classes"], data["class_counts"], data["image_size"], data["name"])
    method = METHODS.get(cfg["method"])(dict(resolved["hp"]), info)
    precision = (result.get("env") or {}).get("precision") or cfg.get("precision")
    pretrained = bool(cfg.get("pretrained") or resolved.get("pretrained"))  # --pretrained, or its preset's
    common = common_identity(data, resolved["backbone"], cfg, precision, pretrained)
    return stage_signatures(method, common), config, result


def find_source(path: str, target: list[str]) -> tuple[Path, int, dict, dict]:
    """The finished run under ``path`` (a run directory or a folder of runs) whose stages are exactly this
    run's first k, k as large as possible: ``(run_dir, k, its config.json, its result.json)``."""
    root = Path(path).expanduser()
    if not root.exists():
        raise ConfigError(f"--from {path}: no such run directory or folder of runs")
    candidates = [root] if is_run_dir(root) else sorted(p for p in root.rglob("*") if is_run_dir(p))
    best, seen = None, []
    for run_dir in candidates:
        if run_state(run_dir) != "done" or not (run_dir / "ckpt.pt").exists():
            continue
        sigs, config, result = _source_signatures(run_dir)
        k = len(sigs)
        seen.append(f"{run_dir.name} ({config['config']['method']}, {k} stage(s))")
        if k <= len(target) and sigs[-1] == target[k - 1] and (best is None or k > best[1]):
            best = (run_dir, k, config, result)
    if best is None:
        tried = "; ".join(seen[:6]) or "no finished run with a checkpoint"
        raise ConfigError(
            f"--from {path}: no finished run there has exactly this run's first stages (same stage settings, loss, "
            f"data, backbone, seed and precision); looked at: {tried}"
        )
    return best


def adopt(source: Path, k: int, source_config: dict, source_result: dict, run_dir: Path, method: Method) -> dict:
    """Write into ``run_dir`` a checkpoint at the end of stage k-1 holding the source's final weights (and its
    method state when it is the same method), plus the source's log lines of those stages; the trainer then
    resumes from it. Returns what the record says about the source."""
    import torch

    from ltbench.train.trainer import load_checkpoint

    blob = load_checkpoint(source / "ckpt.pt")
    stages = method.stages()
    same_method = source_config["config"]["method"] == method.name
    timing = source_result.get("timing", {}).get("stages", {})
    reused = {
        "run_dir": str(source),
        "run_id": source_result.get("run_id"),
        "method": source_config["config"]["method"],
        "stages": [s.name for s in stages[:k]],
        "commit": (source_result.get("env") or {}).get("commit"),
    }
    state = {
        "stage": k - 1,
        "epoch": stages[k - 1].epochs,
        "step": 0,
        "timing": {s.name: {**t, "reused_from": reused["run_id"]} for s, t in zip(stages[:k], timing.values())},
        "backbone_hash": None,
    }
    ckpt = {
        "mid_epoch": None,
        "state": state,
        "model": blob["model"],
        "optimizer": None,
        "method": blob["method"] if same_method else {},
        "ctx": {"subset": None, "records": {"reused_from": reused}},
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".ckpt.{os.getpid()}.tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, run_dir / "ckpt.pt")
    lines = [{**e, "reused_from": reused["run_id"]} for e in log_entries(source) if e.get("stage", 0) < k]
    (run_dir / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return reused
