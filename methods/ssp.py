"""SSP: a rotation-prediction self-supervised stage 0 that can precede any method (``--ssp``).

Gidaris et al. 2018 rotation prediction, as used by Yang & Xu 2020 and the seed paper (docs/methods.md §13):
the backbone with a 4-way head learns to predict the rotation (0/90/180/270°) of each LT training image,
labels unused; the method's own stages then start from those weights (CE+SSP, CE+SSP+DRW, ...). Defaults follow
Yang & Xu's released pre-training script; ``ssp_rotations=all`` / ``ssp_schedule=cosine`` give the earlier
ltbench proposal (all four rotations of every image, cosine schedule).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.method import HP, Method, Stage

# The released rotation pre-training (YyzHarry/imbalanced-semi-self pretrain_rot.py, utils.py; the SSP code the
# seed paper uses): 200 epochs, batch 128, SGD lr 0.1, momentum 0.9, wd 2e-4, crop + flip, ONE rotation per image
# (a balanced random permutation of 0/90/180/270° over the batch), lr·e/5 for e <= 5 then x0.01 after epoch 160
# (its `elif epoch > 180` branch is unreachable, so there is no second drop).
SSP_HP = {
    "ssp_epochs": HP(200, "pretrain_rot.py --epochs 200 (§13)", epoch=True),
    "ssp_lr": HP(0.1, "pretrain_rot.py --lr 0.1 (§13)", range=("log", 0.01, 0.5)),
    "ssp_weight_decay": HP(2e-4, "pretrain_rot.py --wd 2e-4 (§13)"),
    "ssp_warmup_epochs": HP(5, "utils.adjust_learning_rate: lr·e/5 for e <= 5", epoch="ssp_epochs"),
    "ssp_lr_drop": HP(160, "utils.adjust_learning_rate: lr x0.01 after epoch 160 (the only drop)", epoch="ssp_epochs"),
    "ssp_rotations": HP(
        "one",
        "one = the release (a balanced random rotation per image); all = all 4 rotations of every image (Gidaris)",
        choices=("one", "all"),
    ),
    "ssp_schedule": HP(
        "released",
        "released = warm-up + x0.01 at ssp_lr_drop; cosine = ltbench's earlier proposal",
        choices=("released", "cosine"),
    ),
}


def rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch rotated by 0/90/180/270 degrees (4B images) and the rotation labels."""
    xs = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    ys = torch.arange(4, device=x.device).repeat_interleave(len(x))
    return xs.contiguous(memory_format=torch.channels_last), ys


def one_rotation_each(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image rotated once, by a label from a random permutation of [0, 1, 2, 3] * (B/4 + 1) cut to B (the
    release's ``utils.rotation``: balanced labels). Gathered from the four rotated batches: no host sync."""
    b = len(x)
    pool = torch.arange(4, device=x.device).repeat(b // 4 + 1)
    ys = pool[torch.randperm(len(pool), device=x.device)][:b]
    stacked = torch.stack([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    xs = stacked[ys, torch.arange(b, device=x.device)]
    return xs.contiguous(memory_format=torch.channels_last), ys


def with_ssp(base: type[Method]) -> type[Method]:
    """``base`` with the rotation stage prepended; its hparams gain ``ssp_*``."""

    class WithSSP(base):
        name = f"{base.name}+ssp"
        hparams = {**base.hparams, **SSP_HP}
        __doc__ = f"{base.__doc__} Preceded by rotation SSP."

        def stages(self) -> list[Stage]:
            hp = self.hp
            released = hp["ssp_schedule"] == "released"
            first = Stage(
                name="ssp",
                epochs=hp["ssp_epochs"],
                lr=hp["ssp_lr"],
                batch_size=hp["batch_size"],
                optimizer="sgd",
                momentum=0.9,
                weight_decay=hp["ssp_weight_decay"],
                schedule="step" if released else "cosine",
                warmup_epochs=hp["ssp_warmup_epochs"] if released else 0,
                milestones=((hp["ssp_lr_drop"], 0.01),) if released else (),
                evaluate=False,
            )
            return [first, *super().stages()]

        def build_model(self, backbone: nn.Module, num_classes: int, class_counts: list[int]) -> nn.Module:
            model = super().build_model(backbone, num_classes, class_counts)
            model.rot_head = nn.Linear(backbone.feature_dim, 4)
            return model

        def training_step(self, model: nn.Module, batch: dict, stage: Stage, epoch: int) -> dict:
            if stage.name != "ssp":
                return super().training_step(model, batch, stage, epoch)
            xs, ys = (one_rotation_each if self.hp["ssp_rotations"] == "one" else rotations)(batch["x"])
            return {"loss": F.cross_entropy(model.rot_head(model.backbone(xs)), ys)}

    WithSSP.__name__ = WithSSP.__qualname__ = f"{base.__name__}WithSSP"
    return WithSSP
