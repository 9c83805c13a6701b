"""ImageNet-LT, Places-LT and iNaturalist 2018 from their official split files, images decoded per batch.

The long tail of these benchmarks is fixed by published split files (OLTR, Liu et al. CVPR 2019, for
ImageNet-LT and Places-LT; the iNaturalist 2018 competition for iNat), so unlike CIFAR-LT nothing is
sub-sampled here: ``--imbalance-ratio``/``--profile``/``--subset`` are refused. Each split file lists
``<relative image path> <label>`` (or, for iNat, the competition's COCO-style JSON). The official
validation split is loaded whenever the benchmark has one (ImageNet-LT, Places-LT: 20 images per class)
and is what any selection uses; the test split is what is reported (iNat reports on val2018 and has no
separate validation split). Images: ltbench/data/files.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ltbench.data.base import DataSpec, LTData, default_data_root
from ltbench.data.files import FileImages, available_decoder
from ltbench.errors import ConfigError, DataError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CROP, RESIZE = 224, 256  # RandomResizedCrop(224) / Resize(256) + CenterCrop(224) (classifier-balancing)
JITTER = 0.4  # ColorJitter(0.4, 0.4, 0.4, 0) in classifier-balancing's ImageNet-LT/Places-LT train transform
# Per-dataset normalisation and colour jitter where the official loaders differ from ImageNet's: classifier-
# balancing's data/dataloader.py (and RIDE's iNaturalist loader) normalise iNaturalist 2018 with its own
# statistics and use no colour jitter for it.
STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], float]] = {
    "inat2018": ((0.466, 0.471, 0.380), (0.195, 0.194, 0.192), 0.0),
}


@dataclass(frozen=True)
class Layout:
    folder: str  # where the split files usually live, relative to --data-root
    splits: dict[str, tuple[str, ...]]  # split -> accepted file names (first found wins)
    image_dirs: tuple[str, ...]  # image roots tried, relative to --data-root ("." = the root itself)
    source: str  # where to get the split files


LAYOUTS = {
    "imagenet_lt": Layout(
        "ImageNet_LT",
        {s: (f"ImageNet_LT_{s}.txt",) for s in ("train", "val", "test")},
        ("ImageNet", "imagenet", "ImageNet_LT", "."),
        "the OLTR release (github.com/zhmiao/OpenLongTailRecognition-OLTR, ImageNet_LT_*.txt), image paths "
        "relative to the ImageNet-2012 root (train/..., val/...)",
    ),
    "places_lt": Layout(
        "Places_LT",
        {s: (f"Places_LT_{s}.txt",) for s in ("train", "val", "test")},
        ("Places365", "places365", "Places_LT", "."),
        "the OLTR release (github.com/zhmiao/OpenLongTailRecognition-OLTR, Places_LT_*.txt), image paths "
        "relative to the Places365-Standard root",
    ),
    "inat2018": Layout(
        "iNaturalist18",
        {"train": ("train2018.json", "iNaturalist18_train.txt"), "test": ("val2018.json", "iNaturalist18_val.txt")},
        ("iNaturalist18", "inat2018", "."),
        "the iNaturalist 2018 competition (github.com/visipedia/inat_comp: train2018.json, val2018.json) or "
        "classifier-balancing's iNaturalist18_{train,val}.txt, image paths relative to the folder holding "
        "train_val2018/",
    ),
}


def read_split(path: Path) -> tuple[list[str], list[int]]:
    """(relative image paths, labels) from a ``<path> <label>`` text file or a COCO-style JSON."""
    try:
        if path.suffix == ".json":
            blob = json.loads(path.read_text())
            label_of = {a["image_id"]: int(a["category_id"]) for a in blob["annotations"]}
            images = blob["images"]
            return [im["file_name"] for im in images], [label_of[im["id"]] for im in images]
        rows = [line.rsplit(maxsplit=1) for line in path.read_text().splitlines() if line.strip()]
        return [r[0].lstrip("/") for r in rows], [int(r[1]) for r in rows]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise DataError(f"split file {path} is not in the expected format ({type(exc).__name__}: {exc})") from exc


def _find(root: Path, name: str, layout: Layout, split: str) -> Path:
    for folder in (layout.folder, "."):
        for fname in layout.splits[split]:
            if (root / folder / fname).is_file():
                return root / folder / fname
    wanted = " or ".join(layout.splits[split])
    raise DataError(
        f"{name}: split file {wanted} not found in {root / layout.folder} or {root}. Expected layout: "
        f"DIR/{layout.folder}/<split files> plus the images under DIR/{layout.image_dirs[0]}/ (--data-root DIR). "
        f"The split files come from {layout.source}"
    )


def _image_root(root: Path, name: str, layout: Layout, first: str) -> Path:
    for d in layout.image_dirs:
        if (root / d / first).is_file():
            return root / d
    tried = ", ".join(str(root / d) for d in layout.image_dirs)
    raise DataError(f"{name}: the first listed image {first} is under none of {tried}; point --data-root at them")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _check_spec(name: str, spec: DataSpec) -> None:
    if spec.imbalance_ratio is not None or spec.class_counts or spec.profile != "exp" or spec.subset != "ldam":
        raise ConfigError(
            f"{name}'s long tail is fixed by its split files; --imbalance-ratio/--class-counts/--profile/--subset "
            "apply to CIFAR-LT (and digits_lt)"
        )
    if spec.val != "none":
        raise ConfigError(f"{name} uses its official validation split; --val applies to CIFAR-LT")


def build_folder_lt(name: str, spec: DataSpec) -> LTData:
    """The LTData of a split-file benchmark: file-backed images, labels, class counts, provenance."""
    _check_spec(name, spec)
    layout = LAYOUTS[name]
    root = Path(spec.root).expanduser() if spec.root else default_data_root()
    files = {split: _find(root, name, layout, split) for split in layout.splits}
    lists = {split: read_split(path) for split, path in files.items()}
    train_paths, train_labels = lists["train"]
    if not train_paths:
        raise DataError(f"{name}: {files['train']} lists no images")
    image_root = _image_root(root, name, layout, train_paths[0])
    num_classes = max(train_labels) + 1
    counts = np.bincount(train_labels, minlength=num_classes)
    if (counts == 0).any() or min(train_labels) < 0:
        missing = np.flatnonzero(counts == 0)[:5].tolist()
        raise DataError(f"{name}: labels must be 0..C-1 with training images each; no training image for {missing}")
    size = spec.image_size or CROP
    decoder = available_decoder(spec.decoder)  # recorded: what decodes, not only what was asked for
    workers = spec.workers if spec.workers is not None else min(8, max(0, (os.cpu_count() or 1) - 1))

    def images(split: str) -> tuple[FileImages, torch.Tensor]:
        paths, labels = lists[split]
        if labels and (min(labels) < 0 or max(labels) >= num_classes):
            raise DataError(f"{name}: {files[split]} has labels outside 0..{num_classes - 1}")
        full = [str(image_root / p) for p in paths]
        resize = round(size * RESIZE / CROP)
        return FileImages(full, size, resize, workers, decoder), torch.tensor(labels, dtype=torch.long)

    train_x, train_y = images("train")
    test_x, test_y = images("test")
    val_x, val_y = images("val") if "val" in lists else (None, None)
    mean, std, jitter = STATS.get(name, (IMAGENET_MEAN, IMAGENET_STD, JITTER))
    names = {}
    for p, y in zip(train_paths, train_labels):
        names.setdefault(y, Path(p).parent.name)
    return LTData(
        name=name,
        classes=[names[c] for c in range(num_classes)],
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        class_counts=counts.tolist(),
        mean=mean,
        std=std,
        crop_padding=0,  # the workers' random-resized crop replaces CIFAR's pad-crop
        color_jitter=jitter,
        val_x=val_x,
        val_y=val_y,
        provenance={
            "source": "split files",
            "split_files": {s: str(p) for s, p in files.items()},
            "split_sha256": {s: _sha(p) for s, p in files.items()},
            "image_root": str(image_root),
            "image_size": size,
            "decoder": decoder,
            "normalisation": {"mean": list(mean), "std": list(std), "color_jitter": jitter},
            "note": f"official split files ({layout.source}); nothing sub-sampled",
        },
    )
