"""Images kept as files and decoded per batch (ImageNet-LT, Places-LT, iNaturalist: too large for memory).

:class:`FileImages` stands where the small datasets hold a uint8 tensor (``LTData.train_x`` ...): it can
be indexed with an index tensor (a subset, still lazy), reports a ``shape`` and decodes batches to fixed-
size uint8 tensors in DataLoader workers. Only the *spatial* part of the standard pipeline runs in the
workers — training: RandomResizedCrop(size, scale 0.08-1, ratio 3/4-4/3); evaluation: resize the shorter side
to ``resize`` (256) and centre-crop ``size`` (224). Flip and colour jitter then run batched on the training
device like every other dataset's augmentation (ltbench/data/transforms.py). Crop parameters come from a
per-batch seed, so a run is reproducible whatever the number of workers.

Two decoders, chosen by ``--decoder`` and recorded in the data provenance (``ltbench bench decode`` times
them side by side on real JPEGs; README "Performance"):

- ``torchvision`` (default, the faster one on CPU): ``torchvision.io.decode_image`` (libjpeg-turbo) and
  torchvision's antialiased uint8 bilinear ``resized_crop``; evaluation is Resize(256) then CenterCrop(224)
  exactly as torchvision's transforms do it. An image it cannot read (e.g. a CMYK JPEG on an old
  torchvision) falls back to PIL. torchvision 0.29 marks its image decoders deprecated in favour of
  TorchCodec; where a torchvision no longer has them, the datasets use ``pil`` and record that they did
  (:func:`available_decoder`).
- ``pil``: PIL decoding, each crop one ``Image.resize(box=...)`` from the original (the same region as
  resize-then-crop, one resampling instead of two).
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ltbench.errors import DataError

RRC_SCALE = (0.08, 1.0)  # torchvision RandomResizedCrop defaults (classifier-balancing ImageNet-LT recipe)
RRC_RATIO = (3 / 4, 4 / 3)


def rrc_box(width: int, height: int, rng: random.Random) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params with a local RNG: 10 tries, then the central crop."""
    area = width * height
    log_ratio = (math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1]))
    for _ in range(10):
        target = area * rng.uniform(*RRC_SCALE)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top, left = rng.randint(0, height - h), rng.randint(0, width - w)
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < RRC_RATIO[0]:
        w, h = width, int(round(width / RRC_RATIO[0]))
    elif in_ratio > RRC_RATIO[1]:
        w, h = int(round(height * RRC_RATIO[1])), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def centre_box(width: int, height: int, size: int, resize: int) -> tuple[float, float, float, float]:
    """The region of the original image that Resize(resize) + CenterCrop(size) keeps."""
    scale = resize / min(width, height)
    side_w, side_h = min(width, size / scale), min(height, size / scale)
    left, top = (width - side_w) / 2, (height - side_h) / 2
    return left, top, left + side_w, top + side_h


DECODERS = ("torchvision", "pil")


def decode(path: str, size: int, resize: int, rng: random.Random | None, decoder: str = "torchvision") -> torch.Tensor:
    """One image as a uint8 (3, size, size) tensor: a random-resized crop (``rng``) or the centre crop."""
    if decoder == "torchvision":
        return decode_torchvision(path, size, resize, rng)
    if decoder != "pil":
        raise ValueError(f"decoder {decoder!r} is not one of {', '.join(DECODERS)}")
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            box = rrc_box(*im.size, rng) if rng is not None else centre_box(*im.size, size, resize)
            out = im.resize((size, size), Image.BILINEAR, box=box)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}") from exc
    return torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1)


def available_decoder(requested: str) -> str:
    """``requested``, or ``pil`` where it is ``torchvision`` and this torchvision has no image decoders."""
    if requested != "torchvision":
        return requested
    try:
        from torchvision.io import decode_image, read_file  # noqa: F401
    except ImportError:
        return "pil"
    return "torchvision"


def decode_torchvision(path: str, size: int, resize: int, rng: random.Random | None) -> torch.Tensor:
    """:func:`decode` with torchvision.io and torchvision's tensor resize; PIL for what torchvision cannot read.

    The random crop's box comes from the same :func:`rrc_box` draw as the PIL decoder's, so both decoders crop
    the same regions from the same seed."""
    import torchvision.transforms.v2.functional as F
    from torchvision.io import ImageReadMode, decode_image, read_file

    try:
        with warnings.catch_warnings():  # torchvision 0.29's notice that TorchCodec will take these decoders over
            warnings.simplefilter("ignore", DeprecationWarning)
            x = decode_image(read_file(path), mode=ImageReadMode.RGB)
    except RuntimeError:  # a format or colour space this torchvision cannot decode: PIL reads (or rejects) it
        return decode(path, size, resize, rng, "pil")  # the same single crop draw from rng
    if x.dim() == 4:  # an animated GIF decodes to its frames: the first, as PIL's open() gives
        x = x[0]
    if rng is not None:
        left, top, right, bottom = rrc_box(x.shape[2], x.shape[1], rng)
        x = F.resized_crop(x, top, left, bottom - top, right - left, [size, size], antialias=True)
    else:
        x = F.center_crop(F.resize(x, [resize], antialias=True), [size, size])
    return x


@dataclass
class FileImages:
    """A lazy (N, 3, size, size) uint8 image array backed by files."""

    paths: list[str]
    size: int = 224
    resize: int = 256
    workers: int = 0
    decoder: str = "torchvision"  # torchvision | pil (module docstring)
    _index: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._index is None:
            self._index = np.arange(len(self.paths))

    def __len__(self) -> int:
        return len(self._index)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), 3, self.size, self.size)

    def to(self, device) -> FileImages:
        """Files stay where they are; batches are moved to the device once decoded."""
        return self

    def __getitem__(self, idx) -> FileImages:
        if isinstance(idx, torch.Tensor):
            idx = idx.cpu().numpy()
        return FileImages(self.paths, self.size, self.resize, self.workers, self.decoder, self._index[idx])

    def decode_batch(self, positions: Sequence[int], seed: int | None) -> torch.Tensor:
        """uint8 (B, 3, size, size) for the given positions; ``seed`` None means evaluation crops."""
        files = [int(self._index[p]) for p in positions]
        return _decode_paths(self.paths, files, self.size, self.resize, seed, self.decoder)

    def batches(self, chunks: Sequence[torch.Tensor], seeds: Sequence[int] | None) -> Iterator[torch.Tensor]:
        """Decoded batches for ``chunks`` of positions, in order, by ``workers`` DataLoader processes.

        One DataLoader per image set and crop size lives for the whole run (persistent workers, pinned memory on
        CUDA): workers are not respawned every epoch and every evaluation. Its sampler hands the workers job
        descriptors (file indices, crop seed), so a new epoch only swaps the job list."""
        jobs = [
            (self._index[c.cpu().numpy()].tolist(), None if seeds is None else seeds[i]) for i, c in enumerate(chunks)
        ]
        pool = _pool(self)
        if pool.busy:  # a second, nested pass (never in the trainer): a one-off loader
            yield from _loader(self, _JobList(jobs), persistent=False)
            return
        pool.sampler.jobs, pool.busy = jobs, True
        try:
            yield from pool.loader
        finally:
            pool.busy = False


def _decode_paths(
    paths: list[str], files: Sequence[int], size: int, resize: int, seed: int | None, decoder: str
) -> torch.Tensor:
    rng = random.Random(seed) if seed is not None else None
    return torch.stack([decode(paths[f], size, resize, rng, decoder) for f in files])


class _Decoder(torch.utils.data.Dataset):
    """Item = a job (file indices, crop seed) -> its decoded uint8 batch (the DataLoader runs these)."""

    def __init__(self, paths: list[str], size: int, resize: int, decoder: str) -> None:
        self.paths, self.size, self.resize, self.decoder = paths, size, resize, decoder

    def __getitem__(self, job: tuple[list[int], int | None]) -> torch.Tensor:
        return _decode_paths(self.paths, job[0], self.size, self.resize, job[1], self.decoder)


class _JobList(torch.utils.data.Sampler):
    """The current pass's jobs, iterated in the main process and sent to the workers."""

    def __init__(self, jobs: list | None = None) -> None:
        self.jobs = jobs or []

    def __iter__(self):
        return iter(list(self.jobs))

    def __len__(self) -> int:
        return len(self.jobs)


@dataclass
class _Pool:
    loader: torch.utils.data.DataLoader
    sampler: _JobList
    busy: bool = False


_POOLS: dict[tuple[int, int, int, int, str], _Pool] = {}
MAX_POOLS = 4  # train and eval crops of a run, plus slack; older pools (an in-process sweep's runs) are closed


def _loader(images: FileImages, sampler: _JobList, persistent: bool) -> torch.utils.data.DataLoader:
    from torch.utils.data import DataLoader

    workers = images.workers
    return DataLoader(
        _Decoder(images.paths, images.size, images.resize, images.decoder),
        batch_size=None,
        sampler=sampler,
        num_workers=workers,
        prefetch_factor=2 if workers else None,
        persistent_workers=persistent and workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


def _pool(images: FileImages) -> _Pool:
    key = (id(images.paths), images.size, images.resize, images.workers, images.decoder)
    if key not in _POOLS:
        while len(_POOLS) >= MAX_POOLS:  # dropping the loader shuts its persistent workers down
            del _POOLS[next(iter(_POOLS))]
        sampler = _JobList()
        _POOLS[key] = _Pool(_loader(images, sampler, persistent=True), sampler)
    return _POOLS[key]
