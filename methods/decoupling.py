"""Decoupling representation and classifier (Kang et al., ICLR 2020; docs/methods.md §4): cRT, LWS, τ-norm.

Stage 1 is the CE model of §1. cRT re-initialises and re-trains the linear head on frozen features with a
class-balanced sampler; LWS keeps W, b and learns one scale per class; τ-norm trains nothing and rescales
W_c by 1/||W_c||^τ. Stage 2 runs inside the same run on stage 1's weights; the trainer checks that a
head-only stage leaves the backbone bit-identical.
"""

from __future__ import annotations

import torch.nn.functional as F

from ltbench.method import HP, Method, Stage
from ltbench.models.heads import LWSHead, tau_normalised_weight
from ltbench.registry import METHODS
from ltbench.train.recipes import LDAM_CIFAR, ldam_cifar_stage

# Stage 2 of classifier-balancing (ImageNet-LT cRT config: 10 epochs, SGD lr 0.2 cosine, wd 5e-4, §4).
# CIFAR is not covered by the paper: PROPOSAL — the same schedule with the CIFAR batch size.
STAGE2_HP = {
    "stage2_epochs": HP(10, "classifier-balancing cRT config, 10 epochs (§4)", epoch=True),
    "stage2_lr": HP(0.2, "classifier-balancing cRT config (§4)", range=("log", 0.01, 1.0)),
    "stage2_weight_decay": HP(5e-4, "classifier-balancing cRT config (§4)"),
    "stage2_batch_size": HP(128, "PROPOSAL: the CIFAR recipe's batch size"),
}


class _TwoStage(Method):
    hparams = {**LDAM_CIFAR, **STAGE2_HP}

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
            schedule="cosine",
            sampler="class_balanced",
            trainable="head",
            **kw,
        )

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp, name="features"), self.head_stage()]

    def training_step(self, model, batch, stage, epoch) -> dict:
        return {"loss": F.cross_entropy(model(batch["x"]), batch["y"])}


@METHODS.register("crt")
class CRT(_TwoStage):
    """Classifier re-training: CE features, then a fresh linear head on frozen features, class-balanced."""

    display_name = "cRT"

    paper = "Kang et al., Decoupling Representation and Classifier for Long-Tailed Recognition, ICLR 2020"

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp, name="features"), self.head_stage(reinit_head=True)]


@METHODS.register("lws")
class LWS(_TwoStage):
    """Learnable weight scaling: CE features and head, then one learned scale per class (class-balanced)."""

    display_name = "LWS"

    paper = CRT.paper

    def adapt_model(self, model, stage) -> None:
        if stage.name == "classifier" and not isinstance(model.head, LWSHead):
            model.head = LWSHead(model.head)


@METHODS.register("tau_norm")
class TauNorm(Method):
    """τ-normalised classifier: CE model, then W_c/||W_c||^τ post hoc; the whole τ curve is recorded."""

    display_name = "τ-norm"

    paper = CRT.paper
    hparams = {
        **LDAM_CIFAR,
        # PROPOSAL (§4): without a validation split report τ = 1 fixed in advance, never pick τ on test
        "tau": HP(1.0, "PROPOSAL §4: τ fixed in advance when no validation split", range=("uniform", 0.0, 2.0)),
    }
    TAUS = [round(0.1 * i, 1) for i in range(21)]  # the official grid 0, 0.1, ..., 2.0 (§4)

    def stages(self) -> list[Stage]:
        return [ldam_cifar_stage(self.hp, name="features")]

    def training_step(self, model, batch, stage, epoch) -> dict:
        return {"loss": F.cross_entropy(model(batch["x"]), batch["y"])}

    @staticmethod
    def _logits(model, feats, tau: float):
        """Bias-free logits f(x)·W̃_c with W̃_c = W_c/||W_c||^τ (τ = 0: the raw weights without bias)."""
        return feats.float() @ tau_normalised_weight(model.head.weight.float(), tau).t()

    def predict(self, model, x):
        return self._logits(model, model.backbone(x), self.hp["tau"])

    def predict_variants(self, model, x):
        feats = model.backbone(x)
        return {f"tau={t}": self._logits(model, feats, t) for t in self.TAUS}

    def choose_variant(self, val_scores):
        """Best τ on the held-out validation split (rule B) if there is one, else the fixed τ (default)."""
        if not val_scores:
            return None
        taus = {k: v for k, v in val_scores.items() if k.startswith("tau=")}
        return max(taus, key=lambda k: (taus[k], -abs(float(k[4:]) - self.hp["tau"])))
