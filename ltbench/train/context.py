"""What method hooks may use during training: data on the device, seeded randomness, recording.

Hooks get a ``Context`` instead of the trainer so that they cannot build optimizers or write files;
everything they want in the result goes through ``record`` and is checkpointed with the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ltbench.data.base import LTData
from ltbench.data.loader import eval_batches


class Context:
    def __init__(
        self,
        data: LTData,
        device: torch.device,
        precision: str,
        channels_last: bool,
        eval_batch_size: int = 512,
        compiled: bool = False,
    ) -> None:
        self.data = data
        self.compiled = compiled  # --compile: training batches keep one shape (the last partial batch is dropped)
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        self.eval_batch_size = eval_batch_size
        self.train_x = data.train_x.to(device)
        self.train_y = data.train_y.to(device)
        self.subset: torch.Tensor | None = None
        self.records: dict[str, Any] = {}
        self.generator: torch.Generator = torch.Generator(device=device)
        self.epoch_log: dict[str, float] = {}

    # ------------------------------------------------------------------ training-set subset (IP-DPP)
    def set_subset(self, indices: torch.Tensor) -> None:
        """Indices of the training images the ``subset`` sampler visits from now on."""
        self.subset = indices.to(self.device).long()

    # ------------------------------------------------------------------ recording
    def record(self, key: str, value: Any, append: bool = False) -> None:
        """Put ``value`` into the result's ``extras`` (``append`` collects a list, e.g. one per refresh)."""
        if append:
            self.records.setdefault(key, []).append(value)
        else:
            self.records[key] = value

    def log(self, **values: float) -> None:
        """Extra values for this epoch's log.jsonl line."""
        self.epoch_log.update(values)

    # ------------------------------------------------------------------ inference utility
    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    @torch.no_grad()
    def infer(
        self,
        model: nn.Module,
        fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
        images: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``fn(model, x)`` over all (un-augmented) training images in eval mode, concatenated.

        Used mid-training by SBCL (embeddings to re-cluster) and IP-DPP (true-class probabilities); the
        model's train/eval mode is restored afterwards.
        """
        images = self.train_x if images is None else images
        was_training = model.training
        model.eval()
        outs = []
        try:
            for x in self.eval_batches(images):
                with self.autocast():
                    outs.append(fn(model, x).float())
        finally:
            model.train(was_training)
        return torch.cat(outs)[: len(images)] if outs else torch.empty(0, device=self.device)

    def eval_batches(self, images: torch.Tensor):
        """Un-augmented batches of ``images`` on the device; padded to one shape when the model is compiled
        (outputs past ``len(images)`` are padding)."""
        return eval_batches(
            self.data, images.to(self.device), self.eval_batch_size, self.channels_last, self.device, self.compiled
        )

    def state_dict(self) -> dict[str, Any]:
        return {"subset": None if self.subset is None else self.subset.cpu(), "records": self.records}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.subset = None if state.get("subset") is None else state["subset"].to(self.device)
        self.records = state.get("records", {})
