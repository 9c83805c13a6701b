"""Focal loss (Lin et al., ICCV 2017) on the CE recipe (docs/methods.md §2)."""

from __future__ import annotations

from torch import nn

from ltbench.losses import FocalLoss
from ltbench.method import HP
from ltbench.methods.one_stage import OneStageLoss
from ltbench.registry import METHODS
from ltbench.train.recipes import LDAM_CIFAR


@METHODS.register("focal")
class Focal(OneStageLoss):
    """Focal loss (1 - p_y)^γ · CE, γ = 1, instance-balanced sampling (LDAM-DRW's CIFAR setting)."""

    display_name = "Focal"
    paper = "Lin et al., Focal Loss for Dense Object Detection, ICCV 2017"
    hparams = {
        **LDAM_CIFAR,
        # γ = 1: kaidic/LDAM-DRW's CIFAR focal setting (§2); the detection paper's γ = 2 is not used
        "gamma": HP(1.0, "LDAM-DRW repo CIFAR setting (§2)", range=("uniform", 0.5, 3.0)),
    }

    def make_criterion(self) -> nn.Module:
        return FocalLoss(gamma=self.hp["gamma"])
