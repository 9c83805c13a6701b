"""``ltbench bench decode``: images/s of the large-dataset input pipeline, PIL vs torchvision.io, side by side.

ImageNet-LT, Places-LT and iNaturalist are read from JPEG files every epoch (ltbench/data/files.py), so the
decoder bounds a large run's speed on machines with few CPU cores per GPU. This bench times the very loader
the trainer uses (``FileImages.batches``: persistent DataLoader workers, one job per batch) with each decoder,
for training crops (RandomResizedCrop 224) and evaluation crops (Resize 256 + CenterCrop 224), in the main
process and with ``--workers`` processes; also torchvision's batched ``decode_jpeg`` on a list of files (the
form that pays off on a GPU, where nvJPEG decodes the whole list at once) and, where CUDA exists, that batched
decode on the GPU. Every decoder reads the same files and crops the same boxes from the same seeds.

Without a folder of JPEGs (``--folder``), it makes ``--make`` of them from the shared CIFAR-10 training images,
upscaled (bicubic) to a shorter side of 256 px with aspect ratios 1, 4:3 and 3:4 in turn, JPEG quality 90 —
ImageNet-like sizes, but smooth upscaled content compresses better than photographs, so absolute images/s are
higher than on ImageNet; the ratio between decoders is the figure to read.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from ltbench.data.files import DECODERS, FileImages

SHORT_SIDE, QUALITY = 256, 90  # ImageNet's typical shorter side; a common JPEG quality (ImageNet's own vary)
ASPECTS = ((1, 1), (4, 3), (3, 4))  # width:height, in turn


def make_jpegs(data_root: str | Path, out: str | Path, n: int) -> list[str]:
    """``n`` JPEGs in ``out`` made from CIFAR-10 training images (module docstring); reused when already there."""
    from PIL import Image

    from ltbench.data.cifar import list_image_folder
    from ltbench.errors import DataError

    out = Path(out)
    done = out / f"made-{n}"
    paths = [str(out / f"{i:06d}.jpg") for i in range(n)]
    if done.is_file():
        return paths
    train = Path(data_root).expanduser() / "cifar10" / "train"
    if not train.is_dir():
        raise DataError(f"bench decode makes its JPEGs from CIFAR-10: {train} not found (--data-root, or --folder)")
    _, files = list_image_folder(train, 10)
    sources = [p for group in zip(*files) for p in group][:n]  # classes interleaved
    if len(sources) < n:
        raise DataError(f"--make {n}: only {len(sources)} CIFAR-10 training images under {train}")
    out.mkdir(parents=True, exist_ok=True)
    for i, (src, dst) in enumerate(zip(sources, paths)):
        aw, ah = ASPECTS[i % len(ASPECTS)]
        size = (SHORT_SIDE * aw // min(aw, ah), SHORT_SIDE * ah // min(aw, ah))
        with Image.open(src) as im:
            im.convert("RGB").resize(size, Image.BICUBIC).save(dst, quality=QUALITY)
    done.touch()
    return paths


def folder_jpegs(folder: str | Path) -> list[str]:
    from ltbench.errors import DataError

    paths = sorted(str(p) for p in Path(folder).expanduser().rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not paths:
        raise DataError(f"no .jpg/.jpeg files under {folder}")
    return paths


def time_loader(paths: list[str], decoder: str, workers: int, train: bool, batch: int) -> float:
    """images/s of one pass of the trainer's loader over ``paths`` (after a warm-up pass that starts the workers)."""
    images = FileImages(paths, 224, 256, workers, decoder)
    chunks = list(torch.arange(len(paths)).split(batch))

    def one_pass(parts: list[torch.Tensor]) -> None:
        for _ in images.batches(parts, list(range(len(parts))) if train else None):
            pass

    one_pass(chunks[: max(1, 2 * workers)])  # workers started, first batches decoded
    start = time.perf_counter()
    one_pass(chunks)
    return len(paths) / (time.perf_counter() - start)


def time_batched(paths: list[str], device: str, train: bool, batch: int) -> float:
    """images/s of torchvision's list ``decode_jpeg`` on ``device`` plus the same crops, in the main process."""
    import random
    import warnings

    import torchvision.transforms.v2.functional as F
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    from ltbench.data.files import rrc_box

    def one_pass(files: list[str]) -> None:
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29: TorchCodec will take decoding over
        rng = random.Random(0)
        for i in range(0, len(files), batch):
            data = [read_file(p) for p in files[i : i + batch]]
            crops = []
            for x in decode_jpeg(data, mode=ImageReadMode.RGB, device=device):
                if train:
                    left, top, right, bottom = rrc_box(x.shape[2], x.shape[1], rng)
                    crops.append(F.resized_crop(x, top, left, bottom - top, right - left, [224, 224], antialias=True))
                else:
                    crops.append(F.center_crop(F.resize(x, [256], antialias=True), [224, 224]))
            torch.stack(crops)
        if device == "cuda":
            torch.cuda.synchronize()

    one_pass(paths[:batch])  # warm-up (nvJPEG handles, kernels)
    start = time.perf_counter()
    one_pass(paths)
    return len(paths) / (time.perf_counter() - start)


def run_decode_bench(args: argparse.Namespace) -> pd.DataFrame:
    """Rows: decoder, where it runs, crops, images/s, and the ratio to PIL in the same place."""
    from ltbench.train.runtime import configure_threads

    threads = configure_threads(args.threads)
    paths = folder_jpegs(args.folder) if args.folder else make_jpegs(args.data_root, args.scratch, args.make)
    rows = []
    for workers in sorted({0, *(int(w) for w in args.workers.split(","))}):  # 0: the batched rows' baseline
        where = "main process" if workers == 0 else f"{workers} DataLoader workers"
        for train in (True, False):
            speed = {d: time_loader(paths, d, workers, train, args.batch_size) for d in DECODERS}
            for d in DECODERS:
                rows.append([d, where, "train" if train else "eval", speed[d], speed[d] / speed["pil"]])
    notes = [f"{len(paths)} JPEGs from {args.folder or args.scratch}; batch {args.batch_size}; {threads} threads"]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if not torch.cuda.is_available():
        notes.append("no CUDA device here: GPU (nvJPEG) decoding not measured")
    for device in devices:
        for train in (True, False):
            crops = "train" if train else "eval"
            pil = next(r[3] for r in rows if r[:3] == ["pil", "main process", crops])
            speed = time_batched(paths, device, train, args.batch_size)
            rows.append([f"torchvision batched decode_jpeg ({device})", "main process", crops, speed, speed / pil])
    df = pd.DataFrame(rows, columns=["decoder", "where", "crops", "images/s", "vs pil"])
    df.attrs["notes"] = notes
    return df
