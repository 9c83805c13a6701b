"""``ltbench.load_run``: a finished run as a model to predict with, from a notebook or a script.

The run is rebuilt from its own record (``ltbench.restore``): method, resolved hparams, backbone, each stage's
structural changes, final weights. ``predict`` is the method's reported prediction — ``Method.predict`` (τ-norm's
rescaled head, RIDE's expert ensemble, cosine logits without margin) or, where result.json says validation
chose a post-hoc variant, that variant — so the logits are those behind the run's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ltbench.inference.preprocess import Preprocess
from ltbench.method import DataInfo, Method


@dataclass
class LoadedRun:
    """A finished run, ready to predict: ``model`` is in eval mode with gradients off."""

    model: nn.Module
    method: Method
    info: DataInfo
    transform: Preprocess  # uint8 images -> normalised float batch; .mean, .std, .image_size, .load(path)
    class_names: list[str]
    config: dict[str, Any]  # config.json's "config": the RunConfig as given
    resolved: dict[str, Any]  # config.json's "resolved": hparams, backbone, scale, presets, shots
    variant: str = "default"  # the reported prediction (result.json's chosen_variant)
    run_dir: Path | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def normalisation(self) -> dict[str, Any]:
        return {"mean": list(self.transform.mean), "std": list(self.transform.std)}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Logits (N, classes), float32 on the CPU, of normalised images ``x`` (N, 3, S, S) — ``transform``'s
        output. A uint8 batch is normalised first."""
        if x.dtype == torch.uint8:
            x = self.transform(x)
        outs = []
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size].to(self.device)
            if self.variant == "default":
                logits = self.method.predict(self.model, batch)
            else:
                logits = self.method.predict_variants(self.model, batch)[self.variant]
            outs.append(logits.float().cpu())
        return torch.cat(outs) if outs else torch.empty(0, len(self.class_names))

    def predict_files(self, paths: list[str | Path]) -> torch.Tensor:
        """Logits of image files, each preprocessed as the dataset's evaluation does."""
        return self.predict(torch.stack([self.transform.load(p) for p in paths]))


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """A finished (``done``) run's model for prediction; any other run is refused with its state."""
    from ltbench.restore import finished_records, rebuild, recorded_info
    from ltbench.train.runtime import resolve_device
    from ltbench.train.trainer import load_checkpoint

    run_dir = Path(run_dir).expanduser()
    config, result = finished_records(run_dir)
    device = resolve_device(device) if isinstance(device, str) else device
    blob = load_checkpoint(run_dir / "ckpt.pt")  # weights_only: nothing in a shared run directory runs code
    info = recorded_info(result)
    method, model = rebuild(config, info, blob["model"], device, blob.get("method"))
    return LoadedRun(
        model=model,
        method=method,
        info=info,
        transform=Preprocess.of_run(config, result),
        class_names=list(result["data"]["classes"]),
        config=config["config"],
        resolved=config["resolved"],
        variant=result.get("chosen_variant") or "default",
        run_dir=run_dir,
    )
