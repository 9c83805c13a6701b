"""The in-memory dataset record every reader returns and the options every reader accepts.

Small datasets (CIFAR, digits, synthetic) are held as one uint8 tensor so the loader can keep them on the
training device and augment whole batches there (docs/architecture.md §6).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


def default_data_root() -> Path:
    """``$LTBENCH_DATA`` if set, else ``~/.cache/ltbench/data`` (issue 2)."""
    env = os.environ.get("LTBENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ltbench" / "data"


def default_cache_dir() -> Path:
    """Where decoded image arrays are cached: ``$LTBENCH_CACHE`` or ``~/.cache/ltbench/cache``."""
    env = os.environ.get("LTBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ltbench" / "cache"


@dataclass(frozen=True)
class DataSpec:
    """What a dataset builder needs to know; ``None`` means "the dataset's own default"."""

    root: Path | None = None
    imbalance_ratio: float | None = None
    class_counts: tuple[int, ...] | None = None  # explicit training images per class (--class-counts)
    profile: str = "exp"  # exp | step (docs/protocol.md §0.1 item 2)
    subset: str = "ldam"  # ldam | first (docs/protocol.md §0.1 item 3)
    val: str = "none"  # none | B (held-out balanced validation split, docs/protocol.md §0.1 item 7)
    cache_dir: Path | None = None
    image_size: int | None = None  # file-backed datasets: crop side (default 224; resize = size x 8/7)
    workers: int | None = None  # file-backed datasets: decoding processes (default: CPUs - 1, at most 8)
    decoder: str = "torchvision"  # file-backed datasets: torchvision | pil (ltbench/data/files.py)


@dataclass(frozen=True)
class Nominal:
    """What a dataset looks like before any image is read. ``ltbench run --dry-run`` builds a method's stages
    from it (methods are constructed with class counts), and ``ltbench.load_run`` takes the normalisation of
    runs recorded before result.json held it from here."""

    num_classes: int
    class_counts: list[int] | None  # requested counts (before any cap); None where only the split files know
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: int | None = None  # file-backed: shorter side resized to this, then the centre image_size crop

    @property
    def train_size(self) -> int | None:
        return None if self.class_counts is None else sum(self.class_counts)


@dataclass
class LTData:
    """A long-tailed classification dataset in memory.

    Images are uint8 ``(N, C, H, W)`` tensors (C = 3 for every dataset, grey images are replicated) so one
    backbone definition fits all small datasets; the large datasets hold
    :class:`~ltbench.data.files.FileImages` that decode batches of that shape on demand.
    ``class_counts[c]`` is the number of training images of label ``c``; labels follow the dataset's
    canonical order, not sorted by count.
    """

    name: str
    classes: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_counts: list[int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_padding: int = 4  # pad-crop augmentation (CIFAR: 4 px, docs/protocol.md §0.1)
    hflip: bool = True  # digits are not flip-invariant
    color_jitter: float = 0.0  # ColorJitter(0.4, 0.4, 0.4) for the ImageNet-LT family (classifier-balancing)
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    def summary(self) -> str:
        val = f", val {len(self.val_y)}" if self.val_y is not None else ""
        return (
            f"{self.name}: {self.num_classes} classes, train {len(self.train_y)}, "
            f"test {len(self.test_y)}{val}, {self.image_size}x{self.image_size}, "
            f"counts {self.class_counts[0]}..{self.class_counts[-1]}"
        )
