"""LDAM, LDAM-DRW and CE-DRW (Cao et al., NeurIPS 2019; docs/methods.md §3).

LDAM: margins Δ_c ∝ n_c^-1/4 subtracted from the target cosine of a normalised head, logits scaled by s = 30.
Deferred re-weighting (DRW): class-balanced "effective number" weights (β = 0.9999) switched on at the first
learning-rate drop (epoch 160 of 200), so the early representation learning is unweighted.
"""

from __future__ import annotations

import torch
from torch import nn

from ltbench.losses import LDAMLoss
from ltbench.method import HP
from ltbench.methods.one_stage import DRW_HP, DeferredReweighting, OneStageLoss
from ltbench.models.heads import cosine_classifier
from ltbench.registry import METHODS
from ltbench.train.recipes import LDAM_CIFAR

LDAM_HP = {
    "max_margin": HP(0.5, "LDAM-DRW: Δ_max = 0.5 (§3)", range=("uniform", 0.1, 1.0)),
    "scale": HP(30.0, "LDAM-DRW: s = 30 (§3)"),
}


@METHODS.register("ldam")
class LDAM(OneStageLoss):
    """LDAM loss (margins Δ_c ∝ n_c^-1/4, cosine head, s = 30) without deferred re-weighting."""

    display_name = "LDAM"
    paper = "Cao et al., Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss, NeurIPS 2019"
    hparams = {**LDAM_CIFAR, **LDAM_HP}

    def make_criterion(self) -> nn.Module:
        return LDAMLoss(self.counts, max_margin=self.hp["max_margin"], s=self.hp["scale"])

    def build_model(self, backbone: nn.Module, num_classes: int, class_counts: list[int]) -> nn.Module:
        return cosine_classifier(backbone, num_classes)

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.criterion.logits(model(x))  # s·cos: the softmax the loss trains (not the raw cosines)


@METHODS.register("ldam_drw")
class LDAMDRW(DeferredReweighting, LDAM):
    """LDAM loss + deferred re-weighting (β = 0.9999 from epoch 160 of 200), the CIFAR-LT reference."""

    display_name = "LDAM-DRW"
    hparams = {**LDAM_CIFAR, **LDAM_HP, **DRW_HP}


@METHODS.register("ce_drw")
class CEDRW(DeferredReweighting):
    """Cross-entropy + deferred re-weighting (the LDAM paper's CE-DRW ablation)."""

    display_name = "CE-DRW"
    paper = "Cao et al., NeurIPS 2019 (CE-DRW ablation)"
