"""The one-stage loss family: one SGD stage of the LDAM-DRW CIFAR recipe (docs/methods.md §1) and a loss on the
model's logits. CE, Focal, LDAM(-DRW), CE-DRW and the re-balancing baselines differ only in their loss
(``criterion``), their hparams, and sometimes the sampler, the head or the test-time logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ltbench.losses import class_balanced_weights
from ltbench.losses.classic import CrossEntropy
from ltbench.method import HP, DataInfo, Method, Stage
from ltbench.train.context import Context
from ltbench.train.recipes import LDAM_CIFAR, ldam_cifar_stage

DRW_HP = {
    "drw_epoch": HP(160, "LDAM-DRW: re-weighting from the first lr drop, epoch 160 of 200 (§3)", epoch=True),
    "beta": HP(0.9999, "LDAM-DRW: effective-number β (§3)", range=("choice", (0.99, 0.999, 0.9999))),
}


def ce_stage_key(hp: dict[str, Any]) -> dict[str, Any]:
    """What defines a plain cross-entropy stage of the CIFAR recipe beyond its Stage fields: shared by ``ce`` and
    stage 1 of the decoupling methods, so one finished CE run serves cRT, LWS and τ-norm (``--from``)."""
    return {"loss": "cross_entropy", "head": "linear", "hp": {k: hp.get(k, LDAM_CIFAR[k].default) for k in LDAM_CIFAR}}


class OneStageLoss(Method):
    """One stage of the CIFAR recipe; the loss is ``self.criterion(logits, labels)`` (default: cross-entropy).

    A criterion is an ``nn.Module`` whose per-class tensors (weights, margins, log-priors) are buffers: they
    are moved to the training device once, when the stage starts, never copied per step.
    """

    hparams = dict(LDAM_CIFAR)
    sampler = "instance"  # the stage's sampler (class_balanced for CE-RS)

    def __init__(self, hp: dict[str, Any], info: DataInfo) -> None:
        super().__init__(hp, info)
        self.criterion: nn.Module = self.make_criterion()

    def make_criterion(self) -> nn.Module:
        """The loss module on (logits, labels); plain cross-entropy unless a method says otherwise (``CrossEntropy``:
        a ``weight`` set later, as DRW does, means the global batch's weighted mean on several processes)."""
        return CrossEntropy()

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp, sampler=self.sampler)]

    def on_stage_start(self, stage: Stage, model: nn.Module, ctx: Context) -> None:
        self.criterion.to(ctx.device)

    def training_step(self, model: nn.Module, batch: dict, stage: Stage, epoch: int) -> dict[str, Tensor]:
        return {"loss": self.criterion(model(batch["x"]), batch["y"])}


class DeferredReweighting(OneStageLoss):
    """DRW (Cao et al. 2019): the criterion's ``weight`` buffer is None until ``drw_epoch``, then the
    class-balanced effective-number weights (β = 0.9999), so early representation learning is unweighted."""

    hparams = {**LDAM_CIFAR, **DRW_HP}

    def on_epoch_start(self, stage: Stage, epoch: int, model: nn.Module, ctx: Context) -> None:
        if epoch >= self.hp["drw_epoch"] and self.criterion.weight is None:
            weight = class_balanced_weights(self.counts, self.hp["beta"])
            self.criterion.weight = weight.to(ctx.device)
            ctx.record("drw_weights", weight.tolist())
        ctx.log(drw=float(self.criterion.weight is not None))  # a function of the epoch: nothing to checkpoint


def weighted_ce(weight: torch.Tensor) -> nn.Module:
    """Cross-entropy with fixed per-class weights (PyTorch's weighted-mean convention, docs/methods.md §3)."""
    return CrossEntropy(weight=weight.float())
