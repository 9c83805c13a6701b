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

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltbench.errors import ConfigError
from ltbench.method import HP, Method, Stage
from ltbench.models.cifar_resnet import BasicBlock, CifarResNet, _kaiming_init
from ltbench.registry import METHODS
from ltbench.train.context import Context
from ltbench.train.recipes import sgd_hparams, sgd_stage

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


# Where the last block and the final norm of a timm model live: (the container whose last element is the last
# block, the final norm applied after it or None). ResNet: layer4's last bottleneck; ViT/DeiT: the last
# transformer block + norm; Swin: the last block of the last stage + norm (docs/methods.md §16.7).
TIMM_LAST_BLOCK = {
    "ResNet": (lambda m: m.layer4, None),
    "VisionTransformer": (lambda m: m.blocks, "norm"),
    "SwinTransformer": (lambda m: m.layers[-1].blocks, "norm"),
}


class TimmBilateral(nn.Module):
    """BBN's split of a timm model: the model with its last block (and final norm) taken out is the shared
    trunk; ``cb_block``/``cb_norm`` (the originals) and ``rb_block``/``rb_norm`` (fresh copies) are the branches;
    each branch's output is pooled by the model's own head (``forward_head(pre_logits=True)``)."""

    def __init__(self, timm_backbone: nn.Module) -> None:
        super().__init__()
        model = timm_backbone.model
        kind = type(model).__name__
        if kind not in TIMM_LAST_BLOCK:
            raise ConfigError(
                f"bbn: no branch split for timm {kind}; supported: CIFAR ResNets ({', '.join(SUPPORTED_BACKBONES)}) "
                f"and timm {', '.join(TIMM_LAST_BLOCK)}"
            )
        container_of, norm_name = TIMM_LAST_BLOCK[kind]
        container = container_of(model)
        self.cb_block, self.rb_block = container[-1], reinitialised(copy.deepcopy(container[-1]))
        container[-1] = nn.Identity()
        self.cb_norm, self.rb_norm = nn.Identity(), nn.Identity()
        if norm_name is not None:
            norm = getattr(model, norm_name)
            self.cb_norm, self.rb_norm = norm, reinitialised(copy.deepcopy(norm))
            setattr(model, norm_name, nn.Identity())
        self.model = model
        self.branch_dim = int(model.num_features)
        self.feature_dim = 2 * self.branch_dim

    def _pool(self, x: Tensor, which: str) -> Tensor:
        block, norm = (self.cb_block, self.cb_norm) if which == "cb" else (self.rb_block, self.rb_norm)
        return self.model.forward_head(norm(block(x)), pre_logits=True)

    def branch(self, x: Tensor, which: str) -> Tensor:
        return self._pool(self.model.forward_features(x), which)

    def forward(self, x: Tensor) -> Tensor:
        shared = self.model.forward_features(x)
        return torch.cat([self._pool(shared, "cb"), self._pool(shared, "rb")], dim=1)


def reinitialised(module: nn.Module) -> nn.Module:
    """timm's default initialisation, afresh: convolutions Kaiming-normal (fan-out), linear layers truncated-normal
    (std 0.02) with zero bias, norms 1/0, and a ResNet block's last BatchNorm zeroed (timm's zero_init_last)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    if hasattr(module, "zero_init_last"):
        module.zero_init_last()
    return module


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
        **sgd_hparams(SRC, 200),
        "warmup_epochs": HP(5, "WarmupMultiStepLR: 5 warm-up epochs (lib/utils; §16.4)", epoch=True),
        "warmup_factor": HP(1 / 3, "WarmupMultiStepLR warm-up factor 1/3 (lib/utils; §16.4)"),
        "lr_drop_1": HP(119, "BBN: lr x0.01 from 1-based epoch 120 (milestone 120, stepped at epoch start; §16.4)",
                        epoch=True),
        "lr_drop_2": HP(159, "BBN: lr x1e-4 from 1-based epoch 160 (§16.4)", epoch=True),
        "lr_factor": HP(0.01, "BBN: each milestone multiplies the lr by 0.01 on CIFAR, 0.1 on iNat (§16.4)"),
    }  # fmt: skip
    # configs/iNaturalist2018.yaml (§16.4): ResNet-50 from scratch, 180 epochs (α's D = 200), batch 128, lr 0.05,
    # x0.1 at 120 and 160, wd 1e-4, no warm-up. ImageNet-LT has no BBN config: PROPOSAL §16.7 (90 epochs, D = 100,
    # batch 256, lr 0.1, wd 5e-4, 5 warm-up epochs, x0.1 at 60 and 80). Milestones stepped at the epoch's start.
    presets = {
        "inat2018": {"backbone": "resnet50", "epochs": 180, "batch_size": 128, "lr": 0.05, "weight_decay": 1e-4,
                     "warmup_epochs": 0, "lr_drop_1": 119, "lr_drop_2": 159, "lr_factor": 0.1},
        "imagenet_lt": {"backbone": "resnet50", "epochs": 90, "batch_size": 256, "lr": 0.1, "weight_decay": 5e-4,
                        "warmup_epochs": 5, "lr_drop_1": 59, "lr_drop_2": 79, "lr_factor": 0.1},
    }  # fmt: skip

    def build_model(self, backbone: nn.Module, num_classes: int, class_counts: list[int]) -> nn.Module:
        from ltbench.models.cifar_resnet import Classifier

        if isinstance(backbone, CifarResNet):
            bilateral: nn.Module = BilateralBackbone(backbone)
        elif hasattr(backbone, "timm_name"):
            bilateral = TimmBilateral(backbone)
        else:
            raise ConfigError(
                f"bbn: the two branches are built from a backbone's last block, got {type(backbone).__name__}; "
                f"supported: {', '.join(SUPPORTED_BACKBONES)} and timm ResNet / ViT / DeiT / Swin"
            )
        return Classifier(bilateral, nn.Linear(bilateral.feature_dim, num_classes))  # one FC, with bias

    def stages(self) -> list[Stage]:
        hp = self.hp
        return [
            sgd_stage(
                hp,
                nesterov=True,
                warmup_epochs=hp["warmup_epochs"],
                warmup_start=hp["warmup_factor"],
                milestones=((hp["lr_drop_1"], hp["lr_factor"]), (hp["lr_drop_2"], round(hp["lr_factor"] ** 2, 15))),
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
