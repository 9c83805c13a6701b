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
# KCL only (TSC's release, moco/builder.py, samples its k queue positives uniformly without replacement).
POSITIVES_HP = {
    # With a queue only: BalFeat moco/kcl_builder.py takes gt_mask.topk(posk) — the same-class entries with the
    # lowest queue slots; 'random' draws k uniformly. In-batch (TSC's CIFAR re-implementation) always samples.
    "positives": HP(
        "topk",
        "official KCL moco/kcl_builder.py: top-k of the same-class queue mask (lowest slots); 'random' = uniform",
        choices=("topk", "random"),
    ),
}


@METHODS.register("kcl")
class KCL(ContrastiveTwoStage):
    """K-positive supervised contrastive pre-training (k = 6, τ = 0.07), then a classifier on frozen features."""

    display_name = "KCL"

    paper = "Kang et al., Exploring Balanced Feature Spaces for Representation Learning, ICLR 2021"
    hparams = {**ContrastiveTwoStage.hparams, **KCL_HP, **POSITIVES_HP, **QUEUE_HP}

    def on_stage_start(self, stage, model, ctx) -> None:
        super().on_stage_start(stage, model, ctx)
        if stage.name == "contrastive":  # what ran: the queue rule, or uniform sampling in-batch
            ctx.record("kcl_positives", self.hp["positives"] if model.queue is not None else "random (in-batch)")

    def contrastive_step(self, model, batch, epoch) -> dict:
        anchors, _, contrast, pos, den = self.kcl_contrast(model, batch)
        return {"loss": contrastive_loss(anchors, contrast, pos, den, self.hp["temperature"])}
