"""Decoupling representation and classifier (Kang et al., ICLR 2020; docs/methods.md §4): cRT, LWS, τ-norm.

Stage 1 is the CE model of §1. cRT re-initialises and re-trains the linear head on frozen features with a
class-balanced sampler; LWS keeps W, b and learns one scale per class; τ-norm trains nothing and rescales
W_c by 1/||W_c||^τ. Stage 2 runs inside the same run on stage 1's weights; the trainer checks that a
head-only stage leaves the backbone bit-identical.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ltbench.method import HP, Method, Stage
from ltbench.methods.one_stage import ce_stage_key
from ltbench.models.heads import LWSHead, tau_normalised_weight
from ltbench.registry import METHODS
from ltbench.train.recipes import CB_LARGE_SCALE, FINETUNE_HP, LDAM_CIFAR, PLACES_LT, ldam_cifar_stage

# Stage 2 of classifier-balancing, its official configs (config/ImageNet_LT/cls_crt.yaml, cls_lws.yaml; the same
# for iNat18; Places-LT differs in batch 256 and lr 0.1): SGD lr 0.2, momentum 0.9, wd 5e-4, batch 512, cosine to
# 0 stepped per epoch, the ClassAwareSampler with 4 images per class visit, the frozen feature model left in train
# mode (its BatchNorm statistics are re-estimated on class-balanced batches); cRT 10 epochs, LWS 5. There is no
# CIFAR config: the same values are used there (docs/methods.md §4). ``stage2_sampler=class_balanced`` /
# ``stage2_bn=eval`` give ltbench's earlier protocol (i.i.d. class-balanced draws of N images, BatchNorm frozen
# in eval mode).
STAGE2_HP = {
    "stage2_epochs": HP(10, "classifier-balancing cls_crt.yaml: num_epochs 10 (§4)", epoch="stage2_epochs"),
    "stage2_lr": HP(0.2, "classifier-balancing cls_crt.yaml: lr 0.2 (§4)", range=("log", 0.01, 1.0)),
    "stage2_weight_decay": HP(5e-4, "classifier-balancing cls_crt.yaml: weight_decay 5e-4 (§4)"),
    "stage2_batch_size": HP(512, "classifier-balancing cls_crt.yaml: batch_size 512 (§4)"),
    "stage2_sampler": HP(
        "class_aware",
        "classifier-balancing ClassAwareSampler, num_samples_cls 4, epoch of max(n_c) x C (§4)",
        choices=("class_aware", "class_balanced"),
    ),
    "stage2_bn": HP(
        "train",
        "classifier-balancing run_networks.py: model.train() with the feature model frozen",
        choices=("train", "eval"),
    ),
}


# --preset places_lt: OLTR's stage 1 (recipes.PLACES_LT), then classifier-balancing's Places_LT cls_crt.yaml /
# cls_lws.yaml stage 2: batch 256, lr 0.1 (the other values as the default above)
PLACES_STAGE2 = {"stage2_batch_size": 256, "stage2_lr": 0.1}


class _TwoStage(Method):
    hparams = {**LDAM_CIFAR, **FINETUNE_HP, **STAGE2_HP}
    # --preset imagenet_lt | inat2018: classifier-balancing's stage 1 (its stage 2 is the default above)
    presets = {**CB_LARGE_SCALE, "places_lt": {**PLACES_LT, **PLACES_STAGE2}}

    def head_stage(self, **kw) -> Stage:
        hp = self.hp
        return Stage(
            name="classifier",
            epochs=hp["stage2_epochs"],
            lr=hp["stage2_lr"],
            batch_size=hp["stage2_batch_size"],
            optimizer="sgd",
            momentum=0.9,
            weight_decay=hp["stage2_weight_decay"],
            schedule="cosine_epoch",
            sampler=hp["stage2_sampler"],
            trainable="head",
            bn_train=hp["stage2_bn"] == "train",
            **kw,
        )

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp, name="features"), self.head_stage()]

    def training_step(self, model: nn.Module, batch: dict, stage: Stage, epoch: int) -> dict:
        return {"loss": F.cross_entropy(model(batch["x"]), batch["y"])}

    def stage_key(self, index: int) -> dict:
        """Stage 0 is CE's training stage exactly: a finished ``ce`` run can stand in for it (``--from``)."""
        return ce_stage_key(self.hp) if index == 0 else super().stage_key(index)


@METHODS.register("crt")
class CRT(_TwoStage):
    """Classifier re-training: CE features, then a fresh linear head on frozen features, class-aware sampling."""

    display_name = "cRT"

    paper = "Kang et al., Decoupling Representation and Classifier for Long-Tailed Recognition, ICLR 2020"

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp, name="features"), self.head_stage(reinit_head=True)]

    def new_head(self, model: nn.Module) -> nn.Module:
        # classifier-balancing DotProductClassifier (stage1_weights false): a fresh nn.Linear, PyTorch's default init
        return nn.Linear(model.backbone.feature_dim, self.num_classes)


@METHODS.register("lws")
class LWS(_TwoStage):
    """Learnable weight scaling: CE features and head, then one learned scale per class (class-aware sampling)."""

    display_name = "LWS"

    paper = CRT.paper
    hparams = {
        **_TwoStage.hparams,
        "stage2_epochs": HP(5, "classifier-balancing cls_lws.yaml: num_epochs 5 (§4)", epoch="stage2_epochs"),
    }

    def adapt_model(self, model: nn.Module, stage: Stage) -> None:
        if stage.name == "classifier" and not isinstance(model.head, LWSHead):
            model.head = LWSHead(model.head)


@METHODS.register("tau_norm")
class TauNorm(Method):
    """τ-normalised classifier: CE model, then W_c/||W_c||^τ post hoc; the whole τ curve is recorded."""

    display_name = "τ-norm"

    paper = CRT.paper
    hparams = {
        **LDAM_CIFAR,
        **FINETUNE_HP,
        # PROPOSAL (§4): without a validation split report τ = 1 fixed in advance, never pick τ on test
        "tau": HP(1.0, "PROPOSAL §4: τ fixed in advance when no validation split", range=("uniform", 0.0, 2.0)),
    }
    presets = {**CB_LARGE_SCALE, "places_lt": PLACES_LT}  # classifier-balancing's / OLTR's stage 1
    TAUS = [round(0.1 * i, 1) for i in range(21)]  # the official grid 0, 0.1, ..., 2.0 (§4)

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp, name="features")]

    def training_step(self, model: nn.Module, batch: dict, stage: Stage, epoch: int) -> dict:
        return {"loss": F.cross_entropy(model(batch["x"]), batch["y"])}

    def stage_key(self, index: int) -> dict:
        return ce_stage_key(self.hp)  # the CE model itself: `--from` a finished ce run trains nothing

    @staticmethod
    def _logits(model: nn.Module, feats: Tensor, tau: float) -> Tensor:
        """Bias-free logits f(x)·W̃_c with W̃_c = W_c/||W_c||^τ (τ = 0: the raw weights without bias)."""
        return feats.float() @ tau_normalised_weight(model.head.weight.float(), tau).t()

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        return self._logits(model, model.backbone(x), self.hp["tau"])

    def predict_variants(self, model: nn.Module, x: Tensor) -> dict[str, Tensor]:
        feats = model.backbone(x)
        return {f"tau={t}": self._logits(model, feats, t) for t in self.TAUS}

    def choose_variant(self, val_scores: dict[str, float] | None) -> str | None:
        """Best τ on the held-out validation split (rule B) if there is one, else the fixed τ (default)."""
        if not val_scores:
            return None
        taus = {k: v for k, v in val_scores.items() if k.startswith("tau=")}
        return max(taus, key=lambda k: (taus[k], -abs(float(k[4:]) - self.hp["tau"])))
