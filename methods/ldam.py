"""LDAM, LDAM-DRW and CE-DRW (Cao et al., NeurIPS 2019; METHODS.md §3).

Deferred re-weighting: class-balanced "effective number" weights (β = 0.9999) switched on at the first
learning-rate drop (epoch 160 of 200), so the early representation learning is unweighted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ltbench.losses import LDAMLoss, class_balanced_weights
from ltbench.method import HP, Method, Stage
from ltbench.models.heads import cosine_classifier
from ltbench.registry import METHODS
from ltbench.train.recipes import LDAM_CIFAR, ldam_cifar_stage

DRW_HP = {
    "drw_epoch": HP(160, "LDAM-DRW: re-weighting from the first lr drop, epoch 160 of 200 (§3)", epoch=True),
    "beta": HP(0.9999, "LDAM-DRW: effective-number β (§3)", range=("choice", (0.99, 0.999, 0.9999))),
}
LDAM_HP = {
    "max_margin": HP(0.5, "LDAM-DRW: Δ_max = 0.5 (§3)", range=("uniform", 0.1, 1.0)),
    "scale": HP(30.0, "LDAM-DRW: s = 30 (§3)"),
}


class _DRW(Method):
    """Shared DRW switch: ``self.class_weight`` is None before ``drw_epoch`` and CB weights after."""

    use_drw = True

    def __init__(self, hp, info) -> None:
        super().__init__(hp, info)
        self.class_weight: torch.Tensor | None = None

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp)]

    def on_epoch_start(self, stage, epoch, model, ctx) -> None:
        if self.use_drw and epoch >= self.hp["drw_epoch"] and self.class_weight is None:
            self.class_weight = class_balanced_weights(self.counts, self.hp["beta"]).to(ctx.device)
            ctx.record("drw_weights", self.class_weight.tolist())
        ctx.log(drw=float(self.class_weight is not None))


@METHODS.register("ldam")
class LDAM(_DRW):
    """LDAM loss (margins Δ_c ∝ n_c^-1/4, cosine head, s = 30) without deferred re-weighting."""

    name = "ldam"
    paper = "Cao et al., Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss, NeurIPS 2019"
    hparams = {**LDAM_CIFAR, **LDAM_HP}
    use_drw = False

    def __init__(self, hp, info) -> None:
        super().__init__(hp, info)
        self.loss = LDAMLoss(self.counts, max_margin=hp["max_margin"], s=hp["scale"])

    def build_model(self, backbone, num_classes, class_counts):
        return cosine_classifier(backbone, num_classes)

    def training_step(self, model, batch, stage, epoch) -> dict:
        self.loss.weight = self.class_weight
        return {"loss": self.loss(model(batch["x"]), batch["y"])}

    def predict(self, model, x):
        return self.loss.logits(model(x))  # s·cos: the softmax the loss trains (not the raw cosines)


@METHODS.register("ldam_drw")
class LDAMDRW(LDAM):
    """LDAM loss + deferred re-weighting (β = 0.9999 from epoch 160 of 200), the CIFAR-LT reference."""

    name = "ldam_drw"
    hparams = {**LDAM_CIFAR, **LDAM_HP, **DRW_HP}
    use_drw = True


@METHODS.register("ce_drw")
class CEDRW(_DRW):
    """Cross-entropy + deferred re-weighting (the LDAM paper's CE-DRW ablation)."""

    name = "ce_drw"
    paper = "Cao et al., NeurIPS 2019 (CE-DRW ablation)"
    hparams = {**LDAM_CIFAR, **DRW_HP}

    def training_step(self, model, batch, stage, epoch) -> dict:
        return {"loss": F.cross_entropy(model(batch["x"]), batch["y"], weight=self.class_weight)}
