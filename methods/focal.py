"""Focal loss (Lin et al., ICCV 2017) on the CE recipe (METHODS.md §2)."""

from __future__ import annotations

from ltbench.losses import FocalLoss
from ltbench.method import HP, Method, Stage
from ltbench.registry import METHODS
from ltbench.train.recipes import LDAM_CIFAR, ldam_cifar_stage


@METHODS.register("focal")
class Focal(Method):
    """Focal loss (1 - p_y)^γ · CE, γ = 1, instance-balanced sampling (LDAM-DRW's CIFAR setting)."""

    name = "focal"
    paper = "Lin et al., Focal Loss for Dense Object Detection, ICCV 2017"
    hparams = {
        **LDAM_CIFAR,
        # γ = 1: kaidic/LDAM-DRW's CIFAR focal setting (METHODS.md §2); the detection paper's γ = 2 is not used
        "gamma": HP(1.0, "LDAM-DRW repo CIFAR setting (§2)", range=("uniform", 0.5, 3.0)),
    }

    def __init__(self, hp, info) -> None:
        super().__init__(hp, info)
        self.loss = FocalLoss(gamma=hp["gamma"])

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp)]

    def training_step(self, model, batch, stage, epoch) -> dict:
        return {"loss": self.loss(model(batch["x"]), batch["y"])}
