"""Batched augmentation of uint8 image batches on the training device (ARCHITECTURE.md §6).

No per-image Python work: random crops are one gather with per-sample offsets, flips one ``where``.
Every transform takes ``(x_uint8 (B,C,H,W), data, generator)`` and returns normalised float32 images;
the generator lives on the same device as the images, so a CPU run is reproducible bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ltbench.data.base import LTData
from ltbench.errors import ConfigError

Transform = Callable[[torch.Tensor, LTData, torch.Generator | None], torch.Tensor]


def normalise(x: torch.Tensor, data: LTData) -> torch.Tensor:
    """uint8 -> float32 with the dataset's mean/std, in one fused multiply-add."""
    std = torch.tensor(data.std, device=x.device).view(1, -1, 1, 1)
    mean = torch.tensor(data.mean, device=x.device).view(1, -1, 1, 1)
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
    """The dataset's standard training augmentation: pad-crop (+ flip where valid), METHODS.md §0.1; plus
    colour jitter where the dataset's recipe has it (ImageNet-LT & co., after the workers' random crop)."""
    x = random_crop(x, data.crop_padding, gen)
    if data.hflip:
        x = random_hflip(x, gen)
    if data.color_jitter:
        x = colour_jitter(x, data.color_jitter)
    return normalise(x, data)


def colour_jitter(x: torch.Tensor, strength: float) -> torch.Tensor:
    """ColorJitter(brightness=contrast=saturation=strength, hue=0) per sample (kornia, torch's global RNG,
    re-seeded by the trainer each epoch); uint8 range in and out (float)."""
    import kornia.augmentation as K

    jitter = K.ColorJitter(strength, strength, strength, 0.0, p=1.0)
    return jitter(x.float() / 255.0).clamp(0, 1) * 255.0


def plain(x: torch.Tensor, data: LTData, gen: torch.Generator | None) -> torch.Tensor:
    """No augmentation (evaluation, feature extraction)."""
    return normalise(x, data)


TRANSFORMS: dict[str, Transform] = {"standard": standard, "none": plain}


def register_transform(name: str, fn: Transform) -> None:
    """Let heavier pipelines (contrastive views, rotations) add themselves without an import cycle."""
    TRANSFORMS[name] = fn


def get_transform(name: str) -> Transform:
    if name not in TRANSFORMS:
        import ltbench.data.views  # noqa: F401  (registers the multi-view pipelines)
    if name not in TRANSFORMS:
        raise ConfigError(f"unknown transform {name!r}; known: {', '.join(sorted(TRANSFORMS))}")
    return TRANSFORMS[name]
