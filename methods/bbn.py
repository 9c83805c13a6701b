"""BBN (Zhou, Cui, Wei, Chen, CVPR 2020): bilateral-branch network with cumulative learning (docs/methods.md §16;
official code: megvii-research/BBN, lib/backbone/resnet_cifar.py, lib/core/combiner.py, configs/cifar*.yaml).

Two branches share the network up to the last residual block; the conventional branch (its own last block)
sees instance-sampled images, the re-balancing branch (a second last block) sees images from the reversed
sampler (P_c ∝ n_max / n_c), drawn in lock-step. One linear layer on the concatenated pooled features
[f_c; f_r] gives z = FC(2·[α f_c; (1 − α) f_r]); the loss is α·CE(z, y_c) + (1 − α)·CE(z, y_r), with
α = 1 − ((e − 1)/D)² for 1-based epoch e moving the emphasis from the first branch to the second. At test time
both branches see the same image and z = FC([f_c; f_r]), the training formula at α = 0.5. Implemented as the
release computes it: the factor 2, D = E except D = 100·(⌊E/100⌋ + 1) for E in {90, 180}, SGD with Nesterov
momentum, warm-up from 1/3 over 5 epochs, lr x0.01 at epochs 120 and 160 (1-based).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltbench.errors import ConfigError
from ltbench.method import HP, Method, Stage
from ltbench.models.cifar_resnet import BasicBlock, CifarResNet, _kaiming_init
from ltbench.registry import METHODS
from ltbench.train.context import Context

SUPPORTED_BACKBONES = ("resnet32", "resnet32_w2", "resnet18_cifar", "resnet34_cifar")
SRC = "BBN configs/cifar10.yaml, cifar100.yaml (docs/methods.md §16.4)"


def cumulative_alpha(epoch: int, epochs: int) -> float:
    """α for 0-based ``epoch`` of ``epochs``: 1 − (epoch/D)², D = epochs except 90 → 100 and 180 → 200
    (lib/core/combiner.py L14-19, L48; §16.3). Constant within an epoch."""
    div = 100 * (epochs // 100 + 1) if epochs in (90, 180) else epochs
    return 1.0 - (epoch / div) ** 2


class BilateralBackbone(nn.Module):
    """A CIFAR ResNet whose last block is doubled: ``trunk`` (everything before it), ``cb_block`` (the original
    last block, conventional branch) and ``rb_block`` (a freshly initialised copy, re-balancing branch).
    ``forward`` = inference: both branches on the same images, pooled features concatenated (2d)."""

    def __init__(self, resnet: CifarResNet) -> None:
        super().__init__()
        last_stage = resnet.stages[-1]
        if len(last_stage) < 2:
            raise ConfigError("bbn: the backbone's last stage needs at least two blocks to share all but the last")
        self.cb_block = last_stage[-1]
        resnet.stages[-1] = last_stage[:-1]
        self.trunk = resnet
        self.rb_block = fresh_block_like(self.cb_block)
        self.branch_dim = resnet.feature_dim
        self.feature_dim = 2 * resnet.feature_dim

    def branch(self, x: Tensor, which: str) -> Tensor:
        """Pooled features of one branch ("cb" or "rb")."""
        block = self.cb_block if which == "cb" else self.rb_block
        return block(self.trunk.forward_stages(x)).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        shared = self.trunk.forward_stages(x)
        return torch.cat([self.cb_block(shared).mean(dim=(2, 3)), self.rb_block(shared).mean(dim=(2, 3))], dim=1)


def fresh_block_like(block: BasicBlock) -> BasicBlock:
    """A new, Kaiming-initialised block of the same shape (the release builds cb_block and rb_block separately)."""
    width = block.conv2.out_channels
    fresh = BasicBlock(width, width, stride=1)
    _kaiming_init(fresh)
    return fresh


@METHODS.register("bbn")
class BBN(Method):
    """Bilateral branches (instance / reversed sampler) with cumulative learning α = 1 − (T/T_max)²."""

    display_name = "BBN"
    paper = "Zhou, Cui, Wei, Chen — BBN: Bilateral-Branch Network with Cumulative Learning, CVPR 2020"
    hparams = {
        "epochs": HP(200, SRC, help="epochs of the one stage", epoch=True),
        "lr": HP(0.1, SRC, range=("log", 0.01, 0.5)),
        "batch_size": HP(128, SRC),
        "momentum": HP(0.9, SRC),
        "weight_decay": HP(2e-4, SRC, range=("log", 5e-5, 1e-3)),
        "warmup_epochs": HP(5, "WarmupMultiStepLR: 5 warm-up epochs (lib/utils; §16.4)", epoch=True),
        "warmup_factor": HP(1 / 3, "WarmupMultiStepLR warm-up factor 1/3 (lib/utils; §16.4)"),
        "lr_drop_1": HP(119, "BBN: lr x0.01 from 1-based epoch 120 (milestone 120, stepped at epoch start; §16.4)",
                        epoch=True),
        "lr_drop_2": HP(159, "BBN: lr x1e-4 from 1-based epoch 160 (§16.4)", epoch=True),
    }  # fmt: skip

    def build_model(self, backbone: nn.Module, num_classes: int, class_counts: list[int]) -> nn.Module:
        from ltbench.models.cifar_resnet import Classifier

        if not isinstance(backbone, CifarResNet):
            raise ConfigError(
                f"bbn: the two branches are built from a CIFAR ResNet's last block, got {type(backbone).__name__}; "
                f"supported backbones: {', '.join(SUPPORTED_BACKBONES)} (timm backbones: not yet)"
            )
        bilateral = BilateralBackbone(backbone)
        return Classifier(bilateral, nn.Linear(bilateral.feature_dim, num_classes))  # one FC, with bias

    def stages(self) -> list[Stage]:
        hp = self.hp
        return [
            Stage(
                name="train",
                epochs=hp["epochs"],
                lr=hp["lr"],
                batch_size=hp["batch_size"],
                momentum=hp["momentum"],
                nesterov=True,
                weight_decay=hp["weight_decay"],
                warmup_epochs=hp["warmup_epochs"],
                warmup_start=hp["warmup_factor"],
                milestones=((hp["lr_drop_1"], 0.01), (hp["lr_drop_2"], 1e-4)),
                pair_sampler="reversed",
                drop_last=True,  # main/train.py L97
            )
        ]

    def on_epoch_start(self, stage: Stage, epoch: int, model: nn.Module, ctx: Context) -> None:
        ctx.log(alpha=cumulative_alpha(epoch, self.hp["epochs"]))

    def training_step(self, model: nn.Module, batch: dict, stage: Stage, epoch: int) -> dict[str, Tensor]:
        alpha = cumulative_alpha(epoch, self.hp["epochs"])
        rev = batch["pair"]
        f_c = model.backbone.branch(batch["x"], "cb")
        f_r = model.backbone.branch(rev["x"], "rb")
        logits = model.head(2 * torch.cat([alpha * f_c, (1 - alpha) * f_r], dim=1))
        loss = alpha * F.cross_entropy(logits, batch["y"]) + (1 - alpha) * F.cross_entropy(logits, rev["y"])
        return {"loss": loss}
