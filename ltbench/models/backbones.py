"""Registered backbones. Each entry builds a feature extractor: ``forward(x) -> (B, feature_dim)``.

Builders take the input image size so that families which need it (ViT patch grids) can adapt; CIFAR
ResNets are size-agnostic thanks to global pooling.
"""

from __future__ import annotations

from torch import nn

from ltbench.models import cifar_resnet
from ltbench.registry import BACKBONES


@BACKBONES.register("resnet32")
def resnet32(image_size: int = 32) -> nn.Module:
    """CIFAR ResNet-32, option-A shortcuts, 64-d features, 0.46 M parameters (LDAM-DRW, METHODS.md §0.5)."""
    return cifar_resnet.resnet32_backbone()


@BACKBONES.register("resnet18_cifar")
def resnet18_cifar(image_size: int = 32) -> nn.Module:
    """ResNet-18 with a 3x3 stem and no max-pool, 512-d features (BNS+IP-DPP code, CIFAR-10; §9.2)."""
    return cifar_resnet.resnet18_cifar_backbone()


@BACKBONES.register("resnet34_cifar")
def resnet34_cifar(image_size: int = 32) -> nn.Module:
    """ResNet-34 with a 3x3 stem and no max-pool, 512-d features (BNS+IP-DPP code, CIFAR-100; §9.2)."""
    return cifar_resnet.resnet34_cifar_backbone()


def build_backbone(name: str, image_size: int) -> nn.Module:
    """Look up and build a backbone; the result always has an integer ``feature_dim``."""
    model = BACKBONES.get(name)(image_size=image_size)
    if not isinstance(getattr(model, "feature_dim", None), int):
        raise TypeError(f"backbone {name!r} does not expose an integer feature_dim")
    return model
