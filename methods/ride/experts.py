"""Multi-expert models for RIDE (Wang et al., ICLR 2021; docs/methods.md §5), built from a registered backbone.

RIDE shares the early layers of a ResNet and gives every expert its own copy of the later stages, its own
pooling and its own cosine head. Rather than a second ResNet implementation, the wrapper takes a built
:class:`~ltbench.models.cifar_resnet.CifarResNet`, keeps its stem and first ``shared_stages`` stages, and
builds each expert's remaining stages with the same ``CifarResNet`` constructor at reduced widths, so the
blocks, shortcuts and initialisation are exactly the backbone's.

Layout (trainer conventions, docs/architecture.md §2): ``model.backbone`` is everything that produces features
(shared trunk + expert stages, ``forward -> E x B x d``), ``model.head`` the E cosine heads. ``model(x)``
returns the ensemble logits, so evaluation and FLOP counting need no special case.

Which stages are per-expert. RIDE splits before the last two stages in both of its backbones: ResNet-32
shares stem + stage 1 (per-expert stages 2-3, widths 24/48 with ``reduce_dimension``), ResNet-50 shares
stem + stages 1-2 (per-expert stages 3-4, 192/384 bottleneck widths). ``shared_stages=None`` applies that
rule to any CifarResNet (ResNet-18/34 with a CIFAR stem: per-expert stages 3-4, widths 192/384). timm ResNets
and ResNeXts (``resnet50``, ``timm:resnext50_32x4d``, the release's ImageNet-LT / iNat backbones) are split the
same way by :class:`TimmResNetExperts`, each expert's layers built by timm from the backbone's own name and
arguments at the reduced widths.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ltbench.errors import ConfigError
from ltbench.models.cifar_resnet import BasicBlock, CifarResNet, PadShortcut
from ltbench.models.heads import CosineHead

# Registered backbones that are CifarResNets (ltbench/models/backbones.py); listed in the error message.
SUPPORTED_BACKBONES = ("resnet32", "resnet18_cifar", "resnet34_cifar", "resnet50", "timm:<a timm ResNet/ResNeXt>")
# RIDE `reduce_dimension`: per-expert widths x 3/4 (ResNet-32 32/64 -> 24/48, ResNet-50 256/512 -> 192/384;
# frank-xwang/RIDE-LongTailRecognition model/ldam_drw_resnets/ride_resnet_cifar.py and fb_resnets/ResNet.py)
REDUCED_WIDTH_FACTOR = 0.75
RIDE_SCALE = 30.0  # s = 30 on the cosine logits (RIDE ResNet_s default `s=30`, docs/methods.md §5)


class ExpertOutput(NamedTuple):
    """What one multi-expert forward pass returns (all float32 logits)."""

    logits: torch.Tensor  # E x B x C, per-expert logits (s · cosine)
    ensemble: torch.Tensor  # B x C, mean over experts: the prediction
    features: torch.Tensor  # E x B x d, per-expert pooled features


def _shortcut_kind(backbone: CifarResNet) -> str:
    """ "A" (pad) or "B" (1x1 projection): what the backbone uses where a block changes shape.

    A backbone whose blocks never change shape has only identity shortcuts; "A" is then a free choice
    (parameter-free), and the experts' reduced widths use it.
    """
    for stage in backbone.stages:
        for block in stage:
            if isinstance(block.shortcut, PadShortcut):
                return "A"
            if isinstance(block.shortcut, nn.Sequential):
                return "B"
    return "A"


def _check_backbone(backbone: nn.Module) -> CifarResNet:
    """The wrapper splits at a stage boundary, so it needs CifarResNet's ``stem`` / ``stages`` / ``widths``."""
    if not isinstance(backbone, CifarResNet) or not all(isinstance(b, BasicBlock) for s in backbone.stages for b in s):
        raise ConfigError(
            f"RIDE's multi-expert model needs a CIFAR ResNet backbone, got {type(backbone).__name__}; "
            f"supported backbones: {', '.join(SUPPORTED_BACKBONES)}"
        )
    return backbone


def expert_widths(backbone: CifarResNet, shared_stages: int, reduce_dimension: bool = True) -> tuple[int, ...]:
    """Widths of the per-expert stages: the backbone's, x 3/4 with ``reduce_dimension`` (RIDE code)."""
    widths = backbone.widths[shared_stages:]
    if not reduce_dimension:
        return tuple(widths)
    return tuple(int(round(w * REDUCED_WIDTH_FACTOR)) for w in widths)


class ExpertBackbone(nn.Module):
    """Shared stem + first ``shared_stages`` stages, then E independent copies of the remaining stages.

    ``forward(x)`` returns the pooled features of every expert, E x B x ``feature_dim``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_experts: int = 3,
        shared_stages: int | None = None,
        reduce_dimension: bool = True,
    ) -> None:
        super().__init__()
        base = _check_backbone(backbone)
        n_stages = len(base.stages)
        if shared_stages is None:
            shared_stages = max(0, n_stages - 2)  # RIDE: per-expert copies of the last two stages
        if not 0 <= shared_stages < n_stages:
            raise ConfigError(f"shared_stages must be in [0, {n_stages - 1}] for this backbone, got {shared_stages}")
        if num_experts < 1:
            raise ConfigError(f"num_experts must be >= 1, got {num_experts}")
        self.num_experts, self.shared_stages = num_experts, shared_stages
        self.stem = base.stem
        self.shared = nn.ModuleList(base.stages[:shared_stages])
        widths = expert_widths(base, shared_stages, reduce_dimension)
        self.experts = nn.ModuleList(_expert_stages(base, shared_stages, widths) for _ in range(num_experts))
        self.feature_dim = widths[-1]
        self.widths = tuple(base.widths[:shared_stages]) + widths

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        """The shared trunk's feature map (computed once for all experts)."""
        x = self.stem(x)
        for stage in self.shared:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.forward_shared(x)
        return torch.stack([expert(h).mean(dim=(2, 3)) for expert in self.experts])


def _expert_stages(base: CifarResNet, shared_stages: int, widths: tuple[int, ...]) -> nn.Sequential:
    """One expert's stages, built by the CifarResNet constructor (same blocks, strides, shortcuts, init).

    A full network with the expert's widths is built and only its stages after ``shared_stages`` are kept:
    their input width is the shared trunk's output width by construction. The discarded stem and early
    stages are a few thousand parameters built once; copying the stage-building loop here would be worse.
    """
    stem_conv = base.stem[0]
    full = CifarResNet(
        blocks=[len(stage) for stage in base.stages],
        widths=tuple(base.widths[:shared_stages]) + widths,
        stem_width=stem_conv.out_channels,
        shortcut=_shortcut_kind(base),
        in_chans=stem_conv.in_channels,
    )
    return nn.Sequential(*full.stages[shared_stages:])


class TimmResNetExperts(nn.Module):
    """RIDE's split of a timm ResNet / ResNeXt (RIDE model/fb_resnets/ResNet.py, ResNeXt.py): the stem and the
    first ``shared_stages`` of layer1-4 are shared; every expert owns the remaining layers at ¾ width
    (``reduce_dimension``; ResNet-50: 192/384 bottleneck widths, 1,536-d features), built by timm from the
    backbone's model name and arguments, so block type, cardinality and initialisation are the backbone's.
    A pretrained backbone keeps its weights in the shared trunk; the experts start fresh, as RIDE trains them.
    Same interface as :class:`ExpertBackbone`."""

    def __init__(
        self, backbone: nn.Module, num_experts: int = 3, shared_stages: int | None = None, reduce_dimension: bool = True
    ) -> None:
        super().__init__()
        from ltbench.models.timm_backbones import create

        model = _check_timm_resnet(backbone)
        layers = [model.layer1, model.layer2, model.layer3, model.layer4]
        shared_stages = len(layers) - 2 if shared_stages is None else shared_stages
        if not 0 <= shared_stages < len(layers):
            raise ConfigError(f"shared_stages must be in [0, {len(layers) - 1}] for this backbone, got {shared_stages}")
        if num_experts < 1:
            raise ConfigError(f"num_experts must be >= 1, got {num_experts}")
        expansion = type(model.layer4[-1]).expansion
        planes = [info["num_chs"] // expansion for info in model.feature_info[1:]]  # layer1..4 (timm's record)
        factor = REDUCED_WIDTH_FACTOR if reduce_dimension else 1.0
        widths = tuple(planes[:shared_stages]) + tuple(int(round(w * factor)) for w in planes[shared_stages:])
        self.num_experts, self.shared_stages = num_experts, shared_stages
        self.stem = nn.Sequential(model.conv1, model.bn1, model.act1, model.maxpool)
        self.shared = nn.ModuleList(layers[:shared_stages])
        kwargs = {**getattr(backbone, "create_kwargs", {}), "channels": widths}
        nets = [create(backbone.timm_name, False, **kwargs).model for _ in range(num_experts)]
        names = ("layer1", "layer2", "layer3", "layer4")[shared_stages:]
        self.experts = nn.ModuleList(nn.Sequential(*(getattr(net, n) for n in names)) for net in nets)
        self.feature_dim = widths[-1] * expansion
        self.widths = widths

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.shared:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.forward_shared(x)
        return torch.stack([expert(h).mean(dim=(2, 3)) for expert in self.experts])


def _check_timm_resnet(backbone: nn.Module) -> nn.Module:
    model = getattr(backbone, "model", None)
    if type(model).__name__ != "ResNet" or not hasattr(model, "layer4"):
        raise ConfigError(
            f"RIDE's multi-expert model splits a ResNet at a stage boundary; timm model "
            f"{getattr(backbone, 'timm_name', type(backbone).__name__)!r} is not a timm ResNet/ResNeXt; "
            f"supported backbones: {', '.join(SUPPORTED_BACKBONES)}"
        )
    return model


def num_stages(backbone: nn.Module) -> int:
    """How many residual stages a backbone has (RIDE gives each expert the last ``expert_stages`` of them)."""
    if hasattr(backbone, "timm_name"):
        _check_timm_resnet(backbone)
        return 4
    return len(_check_backbone(backbone).stages)


class ExpertHeads(nn.Module):
    """One unscaled cosine head per expert (LDAM's NormedLinear; RIDE ``use_norm``): E x B x d -> E x B x C."""

    def __init__(self, num_experts: int, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(CosineHead(in_features, num_classes) for _ in range(num_experts))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(f) for head, f in zip(self.heads, features)])


class MultiExpertModel(nn.Module):
    """RIDE's model: shared trunk, E experts, cosine heads x s; ``forward`` returns the ensemble logits."""

    def __init__(self, backbone: ExpertBackbone, num_classes: int, scale: float = RIDE_SCALE) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = ExpertHeads(backbone.num_experts, backbone.feature_dim, num_classes)
        self.scale = float(scale)

    @property
    def num_experts(self) -> int:
        return self.backbone.num_experts

    def forward_experts(self, x: torch.Tensor) -> ExpertOutput:
        """Per-expert logits (E x B x C), their mean (B x C) and per-expert features (E x B x d)."""
        features = self.backbone(x)
        logits = self.head(features) * self.scale
        return ExpertOutput(logits, logits.mean(dim=0), features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_experts(x).ensemble


def multi_expert_model(
    backbone: nn.Module,
    num_classes: int,
    num_experts: int = 3,
    shared_stages: int | None = None,
    reduce_dimension: bool = True,
    scale: float = RIDE_SCALE,
) -> MultiExpertModel:
    """RIDE's multi-expert classifier from a CIFAR ResNet or a timm ResNet/ResNeXt (see the module docstring)."""
    split = TimmResNetExperts if hasattr(backbone, "timm_name") else ExpertBackbone
    experts = split(backbone, num_experts, shared_stages, reduce_dimension)
    return MultiExpertModel(experts, num_classes, scale)
