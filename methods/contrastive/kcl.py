"""KCL — K-positive contrastive learning (Kang et al., ICLR 2021, "Exploring Balanced Feature Spaces for
Representation Learning"; docs/methods.md §6).

Supervised contrastive learning where every anchor gets the same number k of same-class positives (its
other view plus k sampled class-mates) instead of all of them, so head classes do not dominate the feature
space; then a balanced classifier on the frozen features (LDAM + class re-weighting on CIFAR, CE + class-
balanced sampling on ImageNet-LT). CIFAR runs contrast in-batch (TSC's re-implementation, the source of
all CIFAR KCL numbers); ``queue_size``/``momentum`` switch on the official MoCo-style labelled queue.
"""

from __future__ import annotations

from ltbench.losses.contrastive import contrastive_loss
from ltbench.method import HP
from ltbench.methods.contrastive.common import QUEUE_HP, ContrastiveTwoStage
from ltbench.registry import METHODS

KCL_HP = {
    # k = 6 is KCL's ImageNet-LT value; the CIFAR k is unstated (docs/methods.md §6, §12 item 3)
    "k": HP(6, "KCL paper/code (ImageNet-LT); PROPOSAL for CIFAR (§6)", range=("int", 1, 16)),
}


@METHODS.register("kcl")
class KCL(ContrastiveTwoStage):
    """K-positive supervised contrastive pre-training (k = 6, τ = 0.07), then a classifier on frozen features."""

    display_name = "KCL"

    paper = "Kang et al., Exploring Balanced Feature Spaces for Representation Learning, ICLR 2021"
    hparams = {**ContrastiveTwoStage.hparams, **KCL_HP, **QUEUE_HP}

    def contrastive_step(self, model, batch, epoch) -> dict:
        anchors, _, contrast, pos, den = self.kcl_contrast(model, batch)
        return {"loss": contrastive_loss(anchors, contrast, pos, den, self.hp["temperature"])}
