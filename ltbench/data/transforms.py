"""Batched augmentation of uint8 image batches on the training device (docs/architecture.md §6), one registry.

No per-image Python work: random crops are one gather with per-sample offsets, flips one ``where``, and
the heavier pipelines (contrastive views, rotations, colour jitter) are kornia modules that draw
per-sample parameters for the whole batch. Every transform takes ``(x_uint8 (B,C,H,W), data, generator)``
and returns normalised float32 images. Crops and flips use the generator (on the images' device), kornia
uses torch's global RNG; the trainer re-seeds both every epoch, so a run is reproducible bit for bit.
kornia pipelines are composed with ``nn.Sequential`` rather than ``AugmentationSequential``, which is ~15x
slower here for 32x32 batches, and built once per size (``functools.cache``). kornia is imported lazily
(only runs that use these pipelines pay for it).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
from torch import nn

from ltbench.data.base import LTData
from ltbench.errors import ConfigError

Transform = Callable[[torch.Tensor, LTData, torch.Generator | None], torch.Tensor]

# kornia's random modules check and read their sampled parameters on the host (``.tolist()``, ``if mask.any()``):
# about 6 reads and 12 truth tests per 2-view batch, each a host sync on a GPU (found by ltbench.bench.syncs).
# Methods whose stages use these pipelines declare it in ``step_syncs``.
KORNIA_SYNCS = {
    "_kornia": "kornia's augmentation modules read their random parameters on the host (~18 per 2-view batch)"
}


@cache
def _stats(device: torch.device, mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean/std as (1, C, 1, 1) tensors on ``device``, made once: no host-to-device copy per batch."""
    return (
        torch.tensor(mean, device=device).view(1, -1, 1, 1),
        torch.tensor(std, device=device).view(1, -1, 1, 1),
    )


def normalise(x: torch.Tensor, data: LTData) -> torch.Tensor:
    """uint8 -> float32 with the dataset's mean/std, in one fused multiply-add."""
    mean, std = _stats(x.device, tuple(data.mean), tuple(data.std))
    return (x.float() * (1.0 / 255.0) - mean) / std


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator | None) -> torch.Tensor:
    """Zero-pad by ``pad`` and take one random HxW crop per image (torchvision RandomCrop(padding=pad))."""
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]  # B,1,H,1
    cols = (ox[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]  # B,1,1,W
    bidx = torch.arange(b, device=x.device)[:, None, None, None]
    cidx = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[bidx, cidx, rows, cols]


def random_hflip(x: torch.Tensor, gen: torch.Generator | None, p: float = 0.5) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def standard(x: torch.Tensor, data: LTData, gen: torch.Generator | None) -> torch.Tensor:
    """The dataset's standard training augmentation: pad-crop (+ flip where valid), docs/protocol.md §0.1; plus
    colour jitter where the dataset's recipe has it (ImageNet-LT & co., after the workers' random crop)."""
    x = random_crop(x, data.crop_padding, gen)
    if data.hflip:
        x = random_hflip(x, gen)
    if data.color_jitter:
        x = colour_jitter(x, data.color_jitter)
    return normalise(x, data)


@cache
def _jitter(strength: float) -> nn.Module:
    import kornia.augmentation as K

    return K.ColorJitter(strength, strength, strength, 0.0, p=1.0)


def colour_jitter(x: torch.Tensor, strength: float) -> torch.Tensor:
    """ColorJitter(brightness=contrast=saturation=strength, hue=0) per sample (kornia, torch's global RNG,
    re-seeded by the trainer each epoch); uint8 range in and out (float)."""
    return _jitter(strength)(x.float() / 255.0).clamp(0, 1) * 255.0


def plain(x: torch.Tensor, data: LTData, gen: torch.Generator | None) -> torch.Tensor:
    """No augmentation (evaluation, feature extraction)."""
    return normalise(x, data)


@cache
def supcon_pipeline(size: int) -> nn.Module:
    """SupCon/KCL/TSC/SBCL stage-1 views: RRC(scale 0.2-1), flip, jitter (0.4,0.4,0.4,0.1) p0.8, grey p0.2 (§6)."""
    import kornia.augmentation as K

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
    import kornia.augmentation as K

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
    import kornia.augmentation as K

    # torchvision RandomRotation(15) as RIDE's CIFAR loaders use it: nearest-neighbour, corners filled with 0
    return K.RandomRotation(15.0, resample="nearest", p=1.0)


def ride(x: torch.Tensor, data: LTData, gen: torch.Generator | None) -> torch.Tensor:
    """RIDE's CIFAR augmentation: pad-crop + flip + RandomRotation(15) (docs/methods.md §5)."""
    x = random_crop(x, data.crop_padding, gen)
    if data.hflip:
        x = random_hflip(x, gen)
    return normalise(_rotation()(x.float()).clamp_(0, 255), data)


TRANSFORMS: dict[str, Transform] = {
    "standard": standard,
    "none": plain,
    "supcon": supcon,
    "simclr_bns1": simclr_bns1,
    "simclr_bns2": simclr_bns2,
    "ride": ride,
}


def register_transform(name: str, fn: Transform) -> None:
    """Add a pipeline (e.g. a method's own) to the registry."""
    TRANSFORMS[name] = fn


def get_transform(name: str) -> Transform:
    if name not in TRANSFORMS:
        raise ConfigError(f"unknown transform {name!r}; known: {', '.join(sorted(TRANSFORMS))}")
    return TRANSFORMS[name]
