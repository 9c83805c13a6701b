"""Registered backbones. Each entry builds a feature extractor: ``forward(x) -> (B, feature_dim)``.

Builders take the input image size so that families which need it (ViT patch grids) can adapt; CIFAR
ResNets are size-agnostic thanks to global pooling. ``timm:<name>`` builds any timm model
(ltbench/models/timm_backbones.py); the curated timm entries below adapt to 32x32 inputs.
"""

from __future__ import annotations

from torch import nn

from ltbench.errors import ConfigError
from ltbench.models import cifar_resnet, timm_backbones
from ltbench.registry import BACKBONES

TIMM_PREFIX = "timm:"


@BACKBONES.register("resnet32")
def resnet32(image_size: int = 32) -> nn.Module:
    """CIFAR ResNet-32, option-A shortcuts, 64-d features, 0.46 M parameters (LDAM-DRW, docs/protocol.md §0.5)."""
    return cifar_resnet.resnet32_backbone()


@BACKBONES.register("resnet32_w2")
def resnet32_w2(image_size: int = 32) -> nn.Module:
    """CIFAR ResNet-32 at base width 32 (32/64/128 channels), 128-d features, 1.86 M parameters: DisA's CIFAR-100
    backbone (its ETF needs feature dimension >= classes; docs/methods.md §15.2)."""
    return cifar_resnet.resnet32_backbone(widths=(32, 64, 128))


@BACKBONES.register("resnet18_cifar")
def resnet18_cifar(image_size: int = 32) -> nn.Module:
    """ResNet-18 with a 3x3 stem and no max-pool, 512-d features (BNS+IP-DPP code, CIFAR-10; §9.2)."""
    return cifar_resnet.resnet18_cifar_backbone()


@BACKBONES.register("resnet34_cifar")
def resnet34_cifar(image_size: int = 32) -> nn.Module:
    """ResNet-34 with a 3x3 stem and no max-pool, 512-d features (BNS+IP-DPP code, CIFAR-100; §9.2)."""
    return cifar_resnet.resnet34_cifar_backbone()


TIMM_CURATED = ("resnet50", "vit_tiny", "vit_small", "deit_tiny", "deit_small", "swin_tiny")


@BACKBONES.register("resnet50")
def resnet50(image_size: int = 224, **kw) -> nn.Module:
    """timm ResNet-50, 2048-d features; CIFAR stem (3x3, no max-pool) at <= 64 px (ImageNet-LT/iNat at 224)."""
    return timm_backbones.resnet50(image_size, **kw)


@BACKBONES.register("vit_tiny")
def vit_tiny(image_size: int = 224, **kw) -> nn.Module:
    """timm ViT-Ti (192-d, 12 layers): patch 4 at <= 64 px, patch 16 at 224; AdamW/cosine recipe."""
    return timm_backbones.vit("vit_tiny_patch16_224", image_size, **kw)


@BACKBONES.register("vit_small")
def vit_small(image_size: int = 224, **kw) -> nn.Module:
    """timm ViT-S (384-d, 12 layers): patch 4 at <= 64 px, patch 16 at 224; AdamW/cosine recipe."""
    return timm_backbones.vit("vit_small_patch16_224", image_size, **kw)


@BACKBONES.register("deit_tiny")
def deit_tiny(image_size: int = 224, **kw) -> nn.Module:
    """timm DeiT-Ti (192-d): patch 4 at <= 64 px, patch 16 at 224; AdamW/cosine recipe."""
    return timm_backbones.vit("deit_tiny_patch16_224", image_size, **kw)


@BACKBONES.register("deit_small")
def deit_small(image_size: int = 224, **kw) -> nn.Module:
    """timm DeiT-S (384-d): patch 4 at <= 64 px, patch 16 at 224; AdamW/cosine recipe."""
    return timm_backbones.vit("deit_small_patch16_224", image_size, **kw)


@BACKBONES.register("swin_tiny")
def swin_tiny(image_size: int = 224, **kw) -> nn.Module:
    """timm Swin-T (768-d): patch 2 / window 4 at <= 64 px, patch 4 / window 7 at 224; AdamW/cosine recipe."""
    return timm_backbones.swin("swin_tiny_patch4_window7_224", image_size, **kw)


def check_backbone(name: str) -> None:
    """Fail fast (before data is read) on an unknown registered or timm name."""
    if name.startswith(TIMM_PREFIX):
        import timm

        if not timm.is_model(name[len(TIMM_PREFIX) :]):
            raise timm_backbones._unknown(name[len(TIMM_PREFIX) :])
    else:
        BACKBONES.get(name)


def build_backbone(name: str, image_size: int, pretrained: bool = False) -> nn.Module:
    """Look up and build a backbone; the result always has an integer ``feature_dim``."""
    if name.startswith(TIMM_PREFIX):
        timm_name = name[len(TIMM_PREFIX) :]
        recipe = timm_backbones.family_recipe(timm_name)
        model = timm_backbones.create(timm_name, pretrained, recipe=recipe)
    elif pretrained and name not in TIMM_CURATED:
        raise ConfigError(f"--pretrained: backbone {name!r} has no pretrained weights; timm backbones do")
    else:
        kw = {"pretrained": True} if pretrained else {}
        model = BACKBONES.get(name)(image_size=image_size, **kw)
    if not isinstance(getattr(model, "feature_dim", None), int):
        raise TypeError(f"backbone {name!r} does not expose an integer feature_dim")
    return model
