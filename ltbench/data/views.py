"""Heavier augmentation pipelines (contrastive views, rotations), batched per sample with kornia.

Registered into ``augment.TRANSFORMS`` by name. kornia draws per-sample parameters for a whole batch and
applies them with batched tensor ops (no Python loop over images); it uses torch's global RNG, which the
trainer re-seeds every epoch, so runs stay reproducible. Composed with ``nn.Sequential`` rather than
``AugmentationSequential``, which is ~15x slower here for 32x32 batches.
"""

from __future__ import annotations

from functools import cache

import kornia.augmentation as K
import torch
from torch import nn

from ltbench.data.augment import normalise, random_crop, random_hflip, register_transform
from ltbench.data.base import LTData


@cache
def supcon_pipeline(size: int) -> nn.Module:
    """SupCon/KCL/TSC/SBCL stage-1 views: RRC(scale 0.2-1), flip, jitter (0.4,0.4,0.4,0.1) p0.8, grey p0.2 (§6)."""
    return nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(0.2, 1.0)),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
    )


@cache
def simclr_bns_pipeline(size: int, strength: float) -> nn.Module:
    """The BNS code's SimCLR views (§9.2): RRC(0.08-1), flip, jitter 0.8s/0.8s/0.8s/0.2s p0.8, grey p0.2,
    3x3 Gaussian blur with σ ~ U(0.1, 2) always applied."""
    s = strength
    return nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(0.08, 1.0)),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((3, 3), (0.1, 2.0), p=1.0),
    )


def _kornia(pipeline: nn.Module, x: torch.Tensor, data: LTData) -> torch.Tensor:
    out = pipeline(x.float() * (1.0 / 255.0)).clamp_(0, 1)
    # normalise expects uint8 scale; [PROPOSAL §9.3 item 2] contrastive views use the shared normalisation
    return normalise(out * 255.0, data)


def supcon(x: torch.Tensor, data: LTData, gen: torch.Generator | None) -> torch.Tensor:
    return _kornia(supcon_pipeline(x.shape[-1]), x, data)


def simclr_bns1(x: torch.Tensor, data: LTData, gen: torch.Generator | None) -> torch.Tensor:
    """Strength s = 1: the BNS code's stage-2 (fine-tuning) augmentation."""
    return _kornia(simclr_bns_pipeline(x.shape[-1], 1.0), x, data)


def simclr_bns2(x: torch.Tensor, data: LTData, gen: torch.Generator | None) -> torch.Tensor:
    """Strength s = 2: the BNS code's stage-1 (pre-training) augmentation."""
    return _kornia(simclr_bns_pipeline(x.shape[-1], 2.0), x, data)


@cache
def _rotation() -> nn.Module:
    return K.RandomRotation(15.0, p=1.0)


def ride(x: torch.Tensor, data: LTData, gen: torch.Generator | None) -> torch.Tensor:
    """RIDE's CIFAR augmentation: pad-crop + flip + RandomRotation(15) (METHODS.md §5)."""
    x = random_crop(x, data.crop_padding, gen)
    if data.hflip:
        x = random_hflip(x, gen)
    return normalise(_rotation()(x.float()).clamp_(0, 255), data)


for _name, _fn in {"supcon": supcon, "simclr_bns1": simclr_bns1, "simclr_bns2": simclr_bns2, "ride": ride}.items():
    register_transform(_name, _fn)
