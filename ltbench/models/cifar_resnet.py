"""CIFAR ResNets: ResNet-32 with option-A shortcuts (docs/protocol.md §0.5) and ResNet-18/34 with a CIFAR stem.

Every backbone returns pooled features and exposes ``stem``, ``stages`` and ``feature_dim`` so wrappers
(RIDE's experts) can split it at a stage boundary without copying its code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad channels symmetrically (parameter-free, §0.5)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad_lo = (out_ch - in_ch) // 2
        self.pad_hi = out_ch - in_ch - self.pad_lo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_lo, self.pad_hi))


class BasicBlock(nn.Module):
    """3x3 conv-BN-ReLU-3x3 conv-BN + shortcut, ReLU. ``shortcut="A"`` pads, ``"B"`` projects (1x1 conv)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, shortcut: str = "A") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        if stride == 1 and in_ch == out_ch:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "A":
            self.shortcut = PadShortcut(in_ch, out_ch, stride)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """3x3 stem (no max-pool) + stages of BasicBlocks + global average pooling -> ``feature_dim`` features."""

    def __init__(
        self,
        blocks: Sequence[int],
        widths: Sequence[int],
        stem_width: int,
        shortcut: str = "A",
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, stem_width, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_width), nn.ReLU()
        )
        stages, in_ch = [], stem_width
        for i, (n, w) in enumerate(zip(blocks, widths)):
            layers = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock(in_ch, w, stride, shortcut))
                in_ch = w
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.feature_dim = in_ch
        self.widths = tuple(widths)
        _kaiming_init(self)

    def forward_stages(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run stages ``start:stop`` (``start == 0`` includes the stem): the split point for experts."""
        if start == 0:
            x = self.stem(x)
        for stage in self.stages[start:stop]:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x).mean(dim=(2, 3))


def _kaiming_init(module: nn.Module) -> None:
    """Kaiming-normal conv/linear weights, BN weight 1 / bias 0 (LDAM-DRW ``_weights_init``, §0.5)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet32_backbone(widths: Sequence[int] = (16, 32, 64), in_chans: int = 3) -> CifarResNet:
    """ResNet-32 feature extractor: 5 BasicBlocks per stage, option-A shortcuts (§0.5)."""
    return CifarResNet((5, 5, 5), widths, stem_width=widths[0], shortcut="A", in_chans=in_chans)


def resnet18_cifar_backbone(in_chans: int = 3) -> CifarResNet:
    """ResNet-18 with a 3x3 stem and no max-pool, as in the BNS+IP-DPP code for CIFAR-10 (§9.2)."""
    return CifarResNet((2, 2, 2, 2), (64, 128, 256, 512), stem_width=64, shortcut="B", in_chans=in_chans)


def resnet34_cifar_backbone(in_chans: int = 3) -> CifarResNet:
    """ResNet-34 with a 3x3 stem and no max-pool, as in the BNS+IP-DPP code for CIFAR-100 (§9.2)."""
    return CifarResNet((3, 4, 6, 3), (64, 128, 256, 512), stem_width=64, shortcut="B", in_chans=in_chans)


class Classifier(nn.Module):
    """Backbone + linear head; the plain classifier of docs/architecture.md §3 (``resnet32(num_classes)``)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def resnet32(num_classes: int) -> Classifier:
    """CIFAR ResNet-32 (≈0.46 M parameters) with a 64 -> ``num_classes`` linear head."""
    backbone = resnet32_backbone()
    head = nn.Linear(backbone.feature_dim, num_classes)
    nn.init.kaiming_normal_(head.weight)
    return Classifier(backbone, head)
