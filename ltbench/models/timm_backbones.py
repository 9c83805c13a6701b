"""timm backbones: any timm model as ``--backbone timm:<name>``, and curated entries that work on 32x32.

Everything goes through ``timm.create_model(name, num_classes=0)`` so the model returns pooled features
and ``feature_dim`` is read from ``model.num_features``, never hard-coded. The curated entries adapt the
standard 224-pixel configurations to small images the way the LT literature does for CIFAR:

- ``resnet50``: 3x3 stride-1 stem, no max-pool (the CIFAR stem of the BNS/KCL code), 224 px unchanged;
- ``vit_tiny``/``vit_small``/``deit_tiny``/``deit_small``: patch 4 at <= 64 px (8x8 tokens at 32 px);
- ``swin_tiny``: patch 2 and window 4 at <= 64 px (token grids 16/8/4/2 at 32 px; timm clips the window
  of the last stage), patch 4 / window 7 at 224 px.

Transformer families come with the training recipe users expect (AdamW, cosine, warm-up, no weight decay
on biases and norms, no label smoothing); it lives here, next to the backbone, and the trainer applies it
to the full-training stages of any method (``ltbench.train.recipes``).
"""

from __future__ import annotations

import difflib

from torch import nn

from ltbench.errors import ConfigError

SMALL_IMAGE = 64  # inputs up to this size get the small-image variants (CIFAR 32, digits 8, synthetic 16)

# ViT-family recipe: DeiT (Touvron et al. 2021, Table 9): AdamW lr 5e-4 x batch/512, wd 0.05, cosine,
# 5 warm-up epochs of 300; label smoothing is part of DeiT but off here, as in LT benchmarks (docs/protocol.md §0).
TRANSFORMER_RECIPE = {
    "optimizer": "adamw",
    "lr_per_512": 5e-4,
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup_fraction": 5 / 300,
    "no_decay_1d": True,
    "label_smoothing": 0.0,
}


class TimmBackbone(nn.Module):
    """A timm model without classifier: ``forward(x) -> (B, feature_dim)`` pooled features."""

    def __init__(self, model: nn.Module, name: str, recipe: dict | None = None) -> None:
        super().__init__()
        self.model = model
        self.timm_name = name
        self.feature_dim = int(model.num_features)
        self.recipe = recipe

    def forward(self, x):
        return self.model(x)


def _unknown(name: str) -> ConfigError:
    import timm

    close = difflib.get_close_matches(name, timm.list_models(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"timm has no model {name!r}.{hint} See timm.list_models() for the names")


def create(name: str, pretrained: bool = False, recipe: dict | None = None, **kwargs) -> TimmBackbone:
    """``timm.create_model(name, num_classes=0, **kwargs)``; pretrained weights or a clear error, never
    silently random weights."""
    import timm

    if not timm.is_model(name):
        raise _unknown(name)
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any loading failure becomes one actionable message
        if not pretrained:
            raise ConfigError(f"timm could not build {name!r} with {kwargs}: {exc}") from exc
        raise ConfigError(
            f"--pretrained: the weights of timm model {name!r} could not be loaded "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}). timm fetches them from the Hugging "
            "Face hub: run once online (or copy them into $HF_HOME) and retry, or drop --pretrained"
        ) from exc
    backbone = TimmBackbone(model, name, recipe)
    backbone.create_kwargs = dict(kwargs)  # how it was built: a method can build more of the same (RIDE's experts)
    return backbone


def resnet50(image_size: int, pretrained: bool = False, **kwargs) -> TimmBackbone:
    """timm ResNet-50; at <= 64 px the CIFAR stem (3x3 stride 1, no max-pool): 32x32 keeps a 4x4 final map.

    Initialised as the LT papers' own ResNet-50s (classifier-balancing models/ResNetFeature.py, f162ade, which
    RIDE's fb_resnets copy; torchvision's default): every BatchNorm at weight 1, bias 0. timm zero-initialises
    the last BatchNorm of each residual block by default (``zero_init_last``, the "bag of tricks" init); that is
    kept for ``timm:resnet50`` only. Conv weights are He-normal (fan_out) in both, so only that BN differs.
    """
    kwargs.setdefault("zero_init_last", False)
    backbone = create("resnet50", pretrained, **kwargs)
    if image_size <= SMALL_IMAGE:
        backbone.model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(backbone.model.conv1.weight, mode="fan_out", nonlinearity="relu")
        backbone.model.maxpool = nn.Identity()
    return backbone


def vit(name: str, image_size: int, pretrained: bool = False, **kwargs) -> TimmBackbone:
    """A timm ViT/DeiT at ``image_size``: patch 4 for small images (patch 16 at 224 px)."""
    if image_size <= SMALL_IMAGE:
        if image_size % 4:
            raise ConfigError(f"{name}: small-image ViTs use 4x4 patches; {image_size} px is not a multiple of 4")
        kwargs.setdefault("patch_size", 4)
    return create(name, pretrained, recipe=TRANSFORMER_RECIPE, img_size=image_size, **kwargs)


def swin(name: str, image_size: int, pretrained: bool = False, **kwargs) -> TimmBackbone:
    """A timm Swin at ``image_size``: patch 2 / window 4 for small images, the 224-px layout otherwise."""
    if image_size <= SMALL_IMAGE:
        kwargs.setdefault("patch_size", 2)
        kwargs.setdefault("window_size", 4)
    patch, window = kwargs.get("patch_size", 4), kwargs.get("window_size", 7)
    grid = image_size // patch
    while grid > window:  # every stage's token grid must tile into windows (timm clips grids <= window)
        if grid % window:
            raise ConfigError(
                f"{name} at {image_size} px: a {grid}x{grid} token grid does not tile into {window}x{window} "
                "windows; use 32 or 224 px, or --backbone timm:<name> with a matching model"
            )
        grid //= 2
    return create(name, pretrained, recipe=TRANSFORMER_RECIPE, img_size=image_size, **kwargs)


def family_recipe(name: str) -> dict | None:
    """The recipe of an arbitrary ``timm:<name>`` model: transformer families get the ViT recipe."""
    lowered = name.lower()
    families = ("vit", "deit", "swin", "beit", "eva", "cait", "xcit", "pit", "mvit", "levit")
    return TRANSFORMER_RECIPE if lowered.startswith(families) else None
