"""Re-balancing baselines of the seed papers (docs/methods.md §13): re-sampling, re-weighting, class-balanced
loss, logit adjustment / Balanced Softmax and KPS. All use the CE recipe of §1 (one SGD stage).
"""

from __future__ import annotations

import torch
from torch import nn

from ltbench.losses import (
    FocalLoss,
    KPSLoss,
    LogitAdjustedLoss,
    class_balanced_weights,
    inverse_frequency_weights,
)
from ltbench.method import HP, Stage
from ltbench.methods.one_stage import OneStageLoss, weighted_ce
from ltbench.models.heads import cosine_classifier
from ltbench.registry import METHODS
from ltbench.train.recipes import LDAM_CIFAR, ldam_cifar_stage

CB_BETA = HP(0.9999, "Cui et al. 2019, CIFAR-LT best β (§13)", range=("choice", (0.9, 0.99, 0.999, 0.9999)))


# The two forms of RS and RW (docs/methods.md §13): what the words name (a uniform class; 1/n_c) and what the
# releases behind Liu & Liu's Table 1 run (YyzHarry/imbalanced-semi-self and Haishen-ll/the-Essence-of-LT-Rocognition:
# ImbalancedDatasetSampler and the "Reweight" rule, both effective numbers with β = 0.9999). Which one produced the
# table cannot be read from the incomplete release, so the defaults stay the forms the text names.
RS_SAMPLING = HP(
    "class_balanced",
    "Liu & Liu's text (a uniform class, then one of its images); effective_number = the releases' sampler",
    choices=("class_balanced", "effective_number"),
)
RW_WEIGHTING = HP(
    "inverse_frequency",
    "Liu & Liu's text (w_c ∝ 1/n_c); effective_number = the releases' Reweight rule (β = 0.9999, as cb_ce)",
    choices=("inverse_frequency", "effective_number"),
)


@METHODS.register("ce_rs")
class CERS(OneStageLoss):
    """CE with class-balanced re-sampling (RS): a uniform class, then a uniform image of it; ``sampling=
    effective_number`` draws each image ∝ (1 − β)/(1 − β^{n_c}) instead, as the releases do."""

    display_name = "CE-RS"
    paper = "Re-sampling baseline (seed paper, Liu & Liu; docs/methods.md §13)"
    hparams = {**LDAM_CIFAR, "sampling": RS_SAMPLING}

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp, sampler=self.hp["sampling"])]


@METHODS.register("ce_rw")
class CERW(OneStageLoss):
    """CE re-weighted by inverse class frequency (RW), weights normalised to sum to C; ``weighting=
    effective_number`` uses Cui et al.'s weights (β = 0.9999) instead, as the releases' "Reweight" rule."""

    display_name = "CE-RW"
    paper = "Re-weighting baseline (seed paper, Liu & Liu; docs/methods.md §13)"
    hparams = {**LDAM_CIFAR, "weighting": RW_WEIGHTING}

    def make_criterion(self) -> nn.Module:
        if self.hp["weighting"] == "effective_number":
            return weighted_ce(class_balanced_weights(self.counts, CB_BETA.default))
        return weighted_ce(inverse_frequency_weights(self.counts))


@METHODS.register("cb_ce")
class CBCE(OneStageLoss):
    """Class-balanced CE (Cui et al. 2019): effective-number weights with β = 0.9999 for the whole run."""

    display_name = "CB-CE"
    paper = "Cui et al., Class-Balanced Loss Based on Effective Number of Samples, CVPR 2019"
    hparams = {**LDAM_CIFAR, "beta": CB_BETA}

    def make_criterion(self) -> nn.Module:
        return weighted_ce(class_balanced_weights(self.counts, self.hp["beta"]))


@METHODS.register("cb_focal")
class CBFocal(OneStageLoss):
    """Class-balanced focal loss (softmax focal, γ = 1, β = 0.9999) for the whole run."""

    display_name = "CB-Focal"
    paper = CBCE.paper
    # γ = 1 as the focal method (§2); Cui et al. tune γ in {0.5, 1, 2} with a sigmoid focal loss
    hparams = {
        **LDAM_CIFAR,
        "beta": CB_BETA,
        "gamma": HP(1.0, "§2 (LDAM-DRW CIFAR focal)", range=("uniform", 0.5, 2.0)),
    }

    def make_criterion(self) -> nn.Module:
        return FocalLoss(gamma=self.hp["gamma"], weight=class_balanced_weights(self.counts, self.hp["beta"]))


@METHODS.register("la")
class LogitAdjustment(OneStageLoss):
    """Logit adjustment (Menon et al. 2021): loss form z + τ·log π, or post-hoc z − τ·log π at test."""

    display_name = "LA"
    paper = "Menon et al., Long-Tail Learning via Logit Adjustment, ICLR 2021"
    hparams = {
        **LDAM_CIFAR,
        "tau": HP(1.0, "Menon et al. 2021: τ = 1 (§13)", range=("uniform", 0.5, 2.0)),
        "form": HP("loss", "Menon et al. 2021: loss and post-hoc forms (§13)", choices=("loss", "posthoc")),
    }

    def make_criterion(self) -> nn.Module:  # the post-hoc form trains plain CE (τ = 0 in the loss)
        return LogitAdjustedLoss(self.counts, tau=self.hp["tau"] if self.hp["form"] == "loss" else 0.0)

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        if self.hp["form"] == "posthoc":
            logits = logits.float() - self.hp["tau"] * self.criterion.log_pi
        return logits


@METHODS.register("balanced_softmax")
class BalancedSoftmax(LogitAdjustment):
    """Balanced Softmax (Ren et al. 2020): the logit-adjusted loss with τ = 1."""

    display_name = "Balanced Softmax"
    paper = "Ren et al., Balanced Meta-Softmax for Long-Tailed Visual Recognition, NeurIPS 2020"
    hparams = dict(
        LDAM_CIFAR, tau=HP(1.0, "Ren et al. 2020: τ = 1"), form=HP("loss", "Ren et al. 2020", choices=("loss",))
    )


@METHODS.register("kps")
class KPS(OneStageLoss):
    """KPS loss, "no GA" variant: cosine logits with radius log n_c + C_r and margin C_m − log n_c."""

    display_name = "KPS"
    paper = "Li, Cheung, Hu, Key Point Sensitive Loss for Long-Tailed Visual Recognition, TPAMI 2022"
    hparams = {**LDAM_CIFAR, "scale": HP(30.0, "PROPOSAL §13: constant s = 30 (no gradient adjustment)")}

    def make_criterion(self) -> nn.Module:
        return KPSLoss(self.counts, s=self.hp["scale"])

    def build_model(self, backbone: nn.Module, num_classes: int, class_counts: list[int]) -> nn.Module:
        return cosine_classifier(backbone, num_classes)

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.criterion.logits(model(x))  # s·r_c·cos: the softmax the loss trains (not the raw cosines)
