"""CE: plain softmax cross-entropy with instance-balanced sampling (METHODS.md §1)."""

from __future__ import annotations

import torch.nn.functional as F

from ltbench.method import Method, Stage
from ltbench.registry import METHODS
from ltbench.train.recipes import LDAM_CIFAR, ldam_cifar_stage


@METHODS.register("ce")
class CE(Method):
    """Cross-entropy baseline, instance-balanced sampling (the LDAM-DRW CIFAR recipe)."""

    name = "ce"
    paper = "Cross-entropy baseline; recipe of Cao et al., NeurIPS 2019 (LDAM-DRW)"
    hparams = dict(LDAM_CIFAR)

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp)]

    def training_step(self, model, batch, stage, epoch) -> dict:
        return {"loss": F.cross_entropy(model(batch["x"]), batch["y"])}
