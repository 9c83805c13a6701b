"""Re-balancing baselines of the seed papers (METHODS.md §13): re-sampling, re-weighting, class-balanced
loss, logit adjustment / Balanced Softmax and KPS. All use the CE recipe of §1 (one SGD stage).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ltbench.losses import (
    FocalLoss,
    KPSLoss,
    class_balanced_weights,
    inverse_frequency_weights,
    log_prior,
    logit_adjusted_cross_entropy,
)
from ltbench.method import HP, Method, Stage
from ltbench.models.heads import cosine_classifier
from ltbench.registry import METHODS
from ltbench.train.recipes import LDAM_CIFAR, ldam_cifar_stage

CB_BETA = HP(0.9999, "Cui et al. 2019, CIFAR-LT best β (§13)", range=("choice", (0.9, 0.99, 0.999, 0.9999)))


class _OneStage(Method):
    hparams = dict(LDAM_CIFAR)
    sampler = "instance"

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp, sampler=self.sampler)]

    def _weight(self, device) -> torch.Tensor | None:
        return None

    def training_step(self, model, batch, stage, epoch) -> dict:
        return {"loss": F.cross_entropy(model(batch["x"]), batch["y"], weight=self._weight(batch["y"].device))}


@METHODS.register("ce_rs")
class CERS(_OneStage):
    """CE with class-balanced re-sampling (RS): a uniform class, then a uniform image of it."""

    name = "ce_rs"
    paper = "Re-sampling baseline (seed paper, Liu & Liu; METHODS.md §13)"
    sampler = "class_balanced"


@METHODS.register("ce_rw")
class CERW(_OneStage):
    """CE re-weighted by inverse class frequency (RW), weights normalised to sum to C."""

    name = "ce_rw"
    paper = "Re-weighting baseline (seed paper, Liu & Liu; METHODS.md §13)"

    def _weight(self, device):
        return inverse_frequency_weights(self.counts).to(device)


@METHODS.register("cb_ce")
class CBCE(_OneStage):
    """Class-balanced CE (Cui et al. 2019): effective-number weights with β = 0.9999 for the whole run."""

    name = "cb_ce"
    paper = "Cui et al., Class-Balanced Loss Based on Effective Number of Samples, CVPR 2019"
    hparams = {**LDAM_CIFAR, "beta": CB_BETA}

    def _weight(self, device):
        return class_balanced_weights(self.counts, self.hp["beta"]).to(device)


@METHODS.register("cb_focal")
class CBFocal(_OneStage):
    """Class-balanced focal loss (softmax focal, γ = 1, β = 0.9999) for the whole run."""

    name = "cb_focal"
    paper = CBCE.paper
    # γ = 1 as the focal method (§2); Cui et al. tune γ in {0.5, 1, 2} with a sigmoid focal loss
    hparams = {
        **LDAM_CIFAR,
        "beta": CB_BETA,
        "gamma": HP(1.0, "§2 (LDAM-DRW CIFAR focal)", range=("uniform", 0.5, 2.0)),
    }

    def __init__(self, hp, info) -> None:
        super().__init__(hp, info)
        self.loss = FocalLoss(gamma=hp["gamma"], weight=class_balanced_weights(self.counts, hp["beta"]))

    def training_step(self, model, batch, stage, epoch) -> dict:
        self.loss.to(batch["y"].device)
        return {"loss": self.loss(model(batch["x"]), batch["y"])}


@METHODS.register("la")
class LogitAdjustment(_OneStage):
    """Logit adjustment (Menon et al. 2021): loss form z + τ·log π, or post-hoc z − τ·log π at test."""

    name = "la"
    paper = "Menon et al., Long-Tail Learning via Logit Adjustment, ICLR 2021"
    hparams = {
        **LDAM_CIFAR,
        "tau": HP(1.0, "Menon et al. 2021: τ = 1 (§13)", range=("uniform", 0.5, 2.0)),
        "form": HP("loss", "Menon et al. 2021: loss and post-hoc forms (§13)", choices=("loss", "posthoc")),
    }

    def training_step(self, model, batch, stage, epoch) -> dict:
        logits = model(batch["x"])
        if self.hp["form"] == "loss":
            loss = logit_adjusted_cross_entropy(logits, batch["y"], self.counts, tau=self.hp["tau"])
        else:
            loss = F.cross_entropy(logits, batch["y"])
        return {"loss": loss}

    def predict(self, model, x):
        logits = model(x)
        if self.hp["form"] == "posthoc":
            logits = logits.float() - self.hp["tau"] * log_prior(self.counts).to(logits.device)
        return logits


@METHODS.register("balanced_softmax")
class BalancedSoftmax(LogitAdjustment):
    """Balanced Softmax (Ren et al. 2020): the logit-adjusted loss with τ = 1."""

    name = "balanced_softmax"
    paper = "Ren et al., Balanced Meta-Softmax for Long-Tailed Visual Recognition, NeurIPS 2020"
    hparams = dict(
        LDAM_CIFAR, tau=HP(1.0, "Ren et al. 2020: τ = 1"), form=HP("loss", "Ren et al. 2020", choices=("loss",))
    )


@METHODS.register("kps")
class KPS(_OneStage):
    """KPS loss, "no GA" variant: cosine logits with radius log n_c + C_r and margin C_m − log n_c."""

    name = "kps"
    paper = "Li, Cheung, Hu, Key Point Sensitive Loss for Long-Tailed Visual Recognition, TPAMI 2022"
    hparams = {**LDAM_CIFAR, "scale": HP(30.0, "PROPOSAL §13: constant s = 30 (no gradient adjustment)")}

    def __init__(self, hp, info) -> None:
        super().__init__(hp, info)
        self.loss = KPSLoss(self.counts, s=hp["scale"])

    def build_model(self, backbone, num_classes, class_counts):
        return cosine_classifier(backbone, num_classes)

    def training_step(self, model, batch, stage, epoch) -> dict:
        self.loss.to(batch["y"].device)
        return {"loss": self.loss(model(batch["x"]), batch["y"])}

    def predict(self, model, x):
        return self.loss.logits(model(x))  # s·r_c·cos: the softmax the loss trains (not the raw cosines)
