"""OTmix (Gao, Zhao, Li, Guo, NeurIPS 2023): CMO-style minority mixing with pairs chosen by optimal transport
(docs/methods.md §14; official code: JintongGao/Enhancing-Minority-Classes-by-Mixing, cifar_train.py).

Every step takes an instance-sampled batch (backgrounds) and, in lock-step, a class-balanced batch
(foregrounds). With probability 0.5 the batch is mixed: one CutMix box, λ ~ Beta(4, 4), is pasted from each
foreground onto a background. In "random" epochs foreground k goes onto background k (CMO); in "OT" epochs onto
background j*(k) = argmax_j T[k, j] of the entropic OT plan (ε = 0.01) for the cost
M_kj = w·(1 − cos(φ(x′_k), φ(x_j))) + (1 − w)·(1 − cf[y′_k, y_j]), cf the previous epoch's row-normalised
confusion with a zero diagonal. An epoch is an OT epoch with probability (e/E)^u. The loss is
λ̃·ℓ(z, y_background) + (1 − λ̃)·ℓ(z, y_foreground), λ̃ the background's remaining share.

Variants (``variant``): ``ltbench`` (default) — φ the pooled penultimate feature under no_grad with BatchNorm in
eval mode, and the confusion matrix of the previous epoch's *un-mixed training batches* (``conf_source=train``)
or of a validation split (``val``, needs ``--val B``); ``code`` — the release: φ the flattened stage-3 map
without the stem ReLU, computed in train mode (BatchNorm statistics updated), and the confusion matrix of the
**test set** (a leak: labelled ``OTmix (code)`` in tables and recorded in the result).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltbench.errors import ConfigError
from ltbench.losses import LogitAdjustedLoss, class_balanced_weights
from ltbench.losses.classic import CrossEntropy
from ltbench.method import HP, DataInfo, Method, Stage
from ltbench.methods.mixing import StepDraws, epoch_rng, paste_box, rand_box, steps_bound
from ltbench.ot import sinkhorn_plan
from ltbench.registry import METHODS
from ltbench.train.context import Context
from ltbench.train.recipes import large_scale_presets, schedule_hp, scheduled, sgd_hparams, sgd_stage

SRC = "OTmix release opts.py / cifar_train.py (docs/methods.md §14.2-14.3)"


@METHODS.register("otmix")
class OTmix(Method):
    """CMO-style minority mixing, pairs chosen by an entropic OT plan over features and confusion (CE-DRW / BALMS)."""

    display_name = "OTmix"
    paper = "Gao, Zhao, Li, Guo — Enhancing Minority Classes by Mixing: An Adaptative OT Approach, NeurIPS 2023"
    step_syncs = {"sinkhorn_plan": "POT's stop test (marginal error < 1e-9) read every 10 Sinkhorn iterations"}
    hparams = {
        **sgd_hparams(SRC, 240),
        "lr_drop_1": HP(100, "OTmix: lr x0.1 from 1-based epoch 101 (§14.3)", epoch=True),
        "lr_drop_2": HP(160, "OTmix: lr x0.01 from 1-based epoch 161 (§14.3)", epoch=True),
        "lr_drop_3": HP(200, "OTmix: lr x1e-4 from 1-based epoch 201 (§14.3)", epoch=True),
        "schedule": schedule_hp("OTmix (§14.3)"),
        "base_loss": HP(
            {"cifar100_lt": "balanced_softmax", "*": "ce_drw"},
            "OTmix README: ERM-DRW + OTmix on CIFAR-10-LT, BALMS + OTmix on CIFAR-100-LT (§14.3)",
            type=str,
            choices=("ce", "ce_drw", "balanced_softmax"),
        ),
        "drw_epoch": HP(160, "OTmix cifar_train.py: DRW from 0-based epoch 160 (§14.3)", epoch=True),
        "beta": HP(0.9999, "class-balanced β of DRW (§14.3)"),
        "cost_weight": HP(0.05, "w: feature vs confusion cost (opts.py; §14.2)", range=("uniform", 0.0, 1.0)),
        "ot_power": HP(1.0, "u: an epoch is an OT epoch with probability (e/E)^u (§14.2)"),
        "mix_prob": HP(0.5, "p_mix: a batch is mixed with probability 0.5 (§14.2)", range=("uniform", 0.1, 1.0)),
        "mix_after": HP(3, "start_data_aug: mixing only for epochs e > 3 (§14.1 item 3)", epoch=True),
        "mix_before_end": HP(3, "end_data_aug: mixing only for epochs e < E - 3 (§14.1 item 3)", epoch=True),
        "beta_alpha": HP(4.0, "λ ~ Beta(4, 4) (opts.py; CMO's own default is 1; §14.2)"),
        "eps": HP(0.01, "entropic regularisation ε, hard-coded in cifar_train.py (§14.1 d)"),
        "conf_source": HP(
            "train",
            "PROPOSAL (§14.6): the release reads the test set's confusion; train = un-mixed training batches",
            choices=("train", "val", "test"),
        ),
        "variant": HP("ltbench", "ltbench (φ pooled, eval-mode BN) or code (the release, §14.1 a-b)",
                      choices=("ltbench", "code")),
    }  # fmt: skip

    # From scratch with classifier-balancing's large-scale recipe and OTmix's own window and p_mix (PROPOSAL
    # §14.6): the release fine-tunes torchvision's ImageNet-1k ResNet-50 (imagenet_train.py L66), whose full-ImageNet
    # labels leak into ImageNet-LT. Base losses as in the release's READMEs: ERM on ImageNet-LT, with its val
    # split's confusion (what imagenet_train.py reads); DRW on iNat, switched on where the release's 160 of 210
    # epochs falls in 90 (68); iNat has no val split, so the confusion comes from the training batches.
    presets = large_scale_presets(
        hparams,
        imagenet_lt={"base_loss": "ce", "conf_source": "val", "drw_epoch": 68},  # (DRW only if base_loss=ce_drw)
        inat2018={"base_loss": "ce_drw", "drw_epoch": 68},
    )

    def __init__(self, hp: dict[str, Any], info: DataInfo) -> None:
        super().__init__(hp, info)
        # the release's confusion matrix comes from the test set (§14.1 b): only in the labelled code variant
        self.conf_source = "test" if hp["variant"] == "code" else hp["conf_source"]
        if hp["variant"] != "code" and hp["conf_source"] == "test":
            raise ConfigError("otmix: conf_source=test is the release's test-set leak; only with --set variant=code")
        self.criterion = self._criterion()
        c = self.num_classes
        self.counts_cm = torch.zeros(c, c)  # this epoch's confusion counts (un-mixed training batches)
        self.cf = torch.zeros(c, c)  # the previous epoch's row-normalised confusion, zero diagonal
        self.ot_epoch = False
        self.draws = StepDraws()

    def _criterion(self) -> nn.Module:
        if self.hp["base_loss"] == "balanced_softmax":
            return LogitAdjustedLoss(self.counts, tau=1.0)  # Balanced Softmax: CE on logits + log π (§14.1 item 1)
        return CrossEntropy()  # DRW may set its weight (the global batch's weighted mean on several processes)

    def stages(self) -> list[Stage]:
        hp = self.hp
        milestones = ((hp["lr_drop_1"], 0.1), (hp["lr_drop_2"], 0.01), (hp["lr_drop_3"], 1e-4))
        # weighted_alpha = 1: every class equally likely (§14.1 item 4)
        return [sgd_stage(hp, **scheduled(hp, milestones), pair_sampler="class_balanced")]

    # ------------------------------------------------------------------ per-epoch decisions
    def mixing_epoch(self, epoch: int) -> bool:
        return self.hp["mix_after"] < epoch < self.hp["epochs"] - self.hp["mix_before_end"]

    def ot_probability(self, epoch: int) -> float:
        return (epoch / self.hp["epochs"]) ** self.hp["ot_power"]

    def on_stage_start(self, stage: Stage, model: nn.Module, ctx: Context) -> None:
        self.criterion.to(ctx.device)
        self.counts_cm, self.cf = self.counts_cm.to(ctx.device), self.cf.to(ctx.device)
        if self.conf_source == "val" and ctx.data.val_y is None:
            raise ConfigError("otmix: conf_source=val needs a validation split (--val B)")
        ctx.record("otmix_conf_source", self.conf_source)

    def on_epoch_start(self, stage: Stage, epoch: int, model: nn.Module, ctx: Context) -> None:
        hp = self.hp
        if hp["base_loss"] == "ce_drw" and epoch >= hp["drw_epoch"] and self.criterion.weight is None:
            self.criterion.weight = class_balanced_weights(self.counts, hp["beta"]).to(ctx.device)
        if epoch > 0:
            self.cf = self._confusion(model, ctx)
        self.counts_cm.zero_()
        rng = epoch_rng()
        self.ot_epoch = bool(rng.random() < self.ot_probability(epoch))  # one draw per epoch (L174)
        n = steps_bound(len(ctx.train_y), stage.batch_size)
        size = ctx.data.image_size
        self.draws.redraw(
            mix=rng.random(n) < hp["mix_prob"],
            lam=rng.beta(hp["beta_alpha"], hp["beta_alpha"], n),
            cy=rng.integers(0, size, n),
            cx=rng.integers(0, size, n),
        )
        mixing = self.mixing_epoch(epoch)
        ctx.log(ot_epoch=float(self.ot_epoch and mixing), mixing=float(mixing), drw=float(self._drw_on()))

    def _drw_on(self) -> bool:
        return getattr(self.criterion, "weight", None) is not None

    def _confusion(self, model: nn.Module, ctx: Context) -> Tensor:
        """cf[a, b]: share of class-a images predicted as b in the previous epoch, diagonal zeroed (§14.1 b)."""
        source = self.conf_source
        if source == "train":
            counts = self.counts_cm.clone()
        else:
            images, labels = (ctx.data.val_x, ctx.data.val_y) if source == "val" else (ctx.data.test_x, ctx.data.test_y)
            preds = ctx.infer(model, lambda m, x: self.predict(m, x).argmax(1).float(), images).long()
            counts = confusion_counts(labels.to(ctx.device), preds, self.num_classes)
        return row_normalised_confusion(counts)

    # ------------------------------------------------------------------ the step
    def training_step(self, model: nn.Module, batch: dict, stage: Stage, epoch: int) -> dict[str, Tensor]:
        x, y = batch["x"], batch["y"]
        draw = self.draws.next()
        if not (self.mixing_epoch(epoch) and draw["mix"]):
            logits = model(x)
            self.counts_cm.index_put_((y, logits.detach().argmax(1)), torch.ones_like(y, dtype=torch.float),
                                      accumulate=True)  # fmt: skip
            return {"loss": self.criterion(logits, y), "mixed": torch.zeros((), device=x.device)}
        fg_x, fg_y = batch["pair"]["x"][: len(y)], batch["pair"]["y"][: len(y)]
        if self.ot_epoch:
            j, duplicates = self.ot_pairing(model, x, fg_x, y, fg_y)
            x, y = x[j], y[j]
        else:
            duplicates = torch.zeros((), device=x.device)
        box = rand_box(x.shape[-2], x.shape[-1], draw["lam"], draw["cy"], draw["cx"])
        logits = model(paste_box(x, fg_x, box))
        kept = box[-1]
        loss = kept * self.criterion(logits, y) + (1 - kept) * self.criterion(logits, fg_y)
        return {"loss": loss, "mixed": torch.ones((), device=x.device), "ot_duplicates": duplicates}

    def ot_pairing(
        self, model: nn.Module, bg_x: Tensor, fg_x: Tensor, bg_y: Tensor, fg_y: Tensor
    ) -> tuple[Tensor, Tensor]:
        """For each foreground k the background j*(k) = argmax_j T[k, j], and how many foregrounds share a
        background with another one (the release does not force a permutation; §14.1 e)."""
        with torch.no_grad():
            fg_f, bg_f = self.features(model, fg_x), self.features(model, bg_x)
            cost = otmix_cost(fg_f, bg_f, self.cf[fg_y][:, bg_y], self.hp["cost_weight"])
            plan, _ = sinkhorn_plan(cost, eps=self.hp["eps"])
        j = plan.argmax(dim=1)
        hits = torch.zeros(len(j), device=j.device).index_add_(0, j, torch.ones(len(j), device=j.device))
        return j, (hits - 1).clamp(min=0).sum()

    def features(self, model: nn.Module, x: Tensor) -> Tensor:
        """φ: pooled backbone features in eval mode (ltbench), or the release's flattened stage-3 map without the
        stem ReLU, in train mode (code)."""
        if self.hp["variant"] == "code":
            return code_features(model.backbone, x)
        was_training = model.training
        model.eval()
        try:
            return model.backbone(x)
        finally:
            model.train(was_training)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"counts_cm": self.counts_cm, "cf": self.cf, "ot_epoch": self.ot_epoch, "draws": self.draws.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts_cm, self.cf, self.ot_epoch = state["counts_cm"], state["cf"], state["ot_epoch"]
        self.draws.load_state_dict(state["draws"])


def otmix_cost(fg_features: Tensor, bg_features: Tensor, cf_pairs: Tensor, weight: float) -> Tensor:
    """M_kj = w·(1 − cos(φ(x′_k), φ(x_j))) + (1 − w)·(1 − cf[y′_k, y_j]) (§14.1 c), rows = foregrounds."""
    cos = F.normalize(fg_features.float(), dim=1) @ F.normalize(bg_features.float(), dim=1).T
    return weight * (1 - cos) + (1 - weight) * (1 - cf_pairs)


def confusion_counts(labels: Tensor, preds: Tensor, num_classes: int) -> Tensor:
    counts = torch.zeros(num_classes, num_classes, device=labels.device)
    return counts.index_put_((labels, preds), torch.ones(len(labels), device=labels.device), accumulate=True)


def row_normalised_confusion(counts: Tensor) -> Tensor:
    """Rows divided by their sums (an empty row stays zero), then the diagonal set to 0 (§14.1 b, §14.7 item 2)."""
    cf = counts / counts.sum(dim=1, keepdim=True).clamp(min=1e-12)
    return cf.fill_diagonal_(0.0)


def code_features(backbone: nn.Module, x: Tensor) -> Tensor:
    """The release's CIFAR φ: ``Sequential(children[:-1])`` = conv1 → bn1 → layer1-3, no stem ReLU, flattened."""
    stem, stages = getattr(backbone, "stem", None), getattr(backbone, "stages", None)
    if stem is None or stages is None:
        raise ConfigError(
            "otmix variant=code reproduces the CIFAR ResNet feature of the release; use --backbone resnet32"
        )
    h = stem[1](stem[0](x))
    for stage in stages:
        h = stage(h)
    return h.flatten(1)
