"""SSP: a rotation-prediction self-supervised stage 0 that can precede any method (``--ssp``).

Gidaris et al. 2018 rotation prediction, as used by Yang & Xu 2020 and the seed paper (docs/methods.md §13):
the backbone with a 4-way head learns to predict the rotation (0/90/180/270°) of each LT training image,
labels unused; the method's own stages then start from those weights (CE+SSP, CE+SSP+DRW, ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.method import HP, Method, Stage

SSP_HP = {
    # PROPOSAL: the length and optimiser of the CIFAR supervised recipe (§1), with a cosine schedule
    "ssp_epochs": HP(200, "PROPOSAL: as long as the supervised CIFAR recipe (§13)", epoch=True),
    "ssp_lr": HP(0.1, "PROPOSAL: the CIFAR recipe's lr (§1)", range=("log", 0.01, 0.5)),
    "ssp_weight_decay": HP(5e-4, "PROPOSAL: common rotation-pretraining weight decay"),
}


def rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch rotated by 0/90/180/270 degrees (4B images) and the rotation labels."""
    xs = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    ys = torch.arange(4, device=x.device).repeat_interleave(len(x))
    return xs.contiguous(memory_format=torch.channels_last), ys


def with_ssp(base: type[Method]) -> type[Method]:
    """``base`` with the rotation stage prepended; its hparams gain ``ssp_*``."""

    class WithSSP(base):
        name = f"{base.name}+ssp"
        hparams = {**base.hparams, **SSP_HP}
        __doc__ = f"{base.__doc__} Preceded by rotation SSP."

        def stages(self) -> list[Stage]:
            first = Stage(
                name="ssp",
                epochs=self.hp["ssp_epochs"],
                lr=self.hp["ssp_lr"],
                batch_size=self.hp["batch_size"],
                optimizer="sgd",
                momentum=0.9,
                weight_decay=self.hp["ssp_weight_decay"],
                schedule="cosine",
                evaluate=False,
            )
            return [first, *super().stages()]

        def build_model(self, backbone, num_classes, class_counts):
            model = super().build_model(backbone, num_classes, class_counts)
            model.rot_head = nn.Linear(backbone.feature_dim, 4)
            return model

        def training_step(self, model, batch, stage, epoch) -> dict:
            if stage.name != "ssp":
                return super().training_step(model, batch, stage, epoch)
            xs, ys = rotations(batch["x"])
            return {"loss": F.cross_entropy(model.rot_head(model.backbone(xs)), ys)}

    WithSSP.__name__ = WithSSP.__qualname__ = f"{base.__name__}WithSSP"
    return WithSSP
