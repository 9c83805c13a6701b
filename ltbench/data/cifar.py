"""CIFAR-10-LT and CIFAR-100-LT from the torchvision pickle release or an image-folder copy.

The long-tailed subset is defined on *dataset order* (docs/protocol.md §0.1 item 3), so the readers' first job is
to reproduce that order: pickle batches in file order, image folders by a natural sort of the file names
inside alphabetically sorted class folders. Decoded pools are cached as uint8 arrays (``cache.py``).
"""

from __future__ import annotations

import os
import pickle
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ltbench.data.base import DataSpec, LTData, default_cache_dir, default_data_root
from ltbench.data.cache import cache_key, files_fingerprint, folder_fingerprint, load_cached, save_cached
from ltbench.data.longtail import RULES, assemble_lt, lt_split, natural_key, requested_counts
from ltbench.errors import ConfigError, DataError

NAMES = ("cifar10", "cifar100")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
N_MAX = {"cifar10": 5000, "cifar100": 500}  # docs/protocol.md §0.1 item 2
DEFAULT_IR = 100.0  # docs/protocol.md §0.1 (IR = 100)
VAL_PER_CLASS = {"cifar10": 100, "cifar100": 20}  # validation rule B, docs/protocol.md §0.1 item 7
# CIFAR-10 statistics for both datasets, as LDAM/RIDE/TSC/SBCL do (docs/protocol.md §0.1, "Augmentation")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")
PICKLE_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
PICKLE_FILES = {  # (meta file, meta key, train files, test files, label key)
    "cifar10": ("batches.meta", "label_names", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"),
    "cifar100": ("meta", "fine_label_names", ["train"], ["test"], "fine_labels"),
}
DOWNLOAD_TIMEOUT_S = 30  # a stalled connection must not hang a run; offline machines fail within a second


@dataclass(frozen=True)
class Source:
    """Where a split was found: ``kind`` pickle (``path`` = pickle dir) or folder (``path`` = split dir)."""

    kind: str
    path: Path


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ConfigError(f"unknown CIFAR variant {name!r}; accepted: {' | '.join(NAMES)}")


def find_source(name: str, root: Path, split: str) -> tuple[Source | None, list[Path]]:
    """The first source under ``root`` in discovery order, and every path that was looked at.

    Order: torchvision pickle dir (also ``root`` itself if it is one), ``root/<name>/<split>``,
    ``root/<split>`` (``root`` pointing at an extracted copy of that dataset).
    """
    pdir = PICKLE_DIRS[name]
    looked = [root / pdir, root, root / name / split, root / split]
    for cand in looked[:2]:
        if (cand / PICKLE_FILES[name][0]).is_file():
            return Source("pickle", cand), looked
    for cand in looked[2:]:
        if cand.is_dir():
            return Source("folder", cand), looked
    return None, looked


def torchvision_download(name: str, root: Path) -> None:
    """Let torchvision fetch and extract the pickle release into ``root`` (both splits are in the archive)."""
    import torchvision.datasets as tvd

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # urllib has no timeout by default; a stall would hang
    try:
        (tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100)(str(root), train=True, download=True)
    finally:
        socket.setdefaulttimeout(old)


def _download(name: str, root: Path, looked: list[Path]) -> Source:
    """torchvision's download (creates the pickle dir); offline it fails and we explain what to do instead."""
    tried = ", ".join(str(p) for p in dict.fromkeys(looked) if p != root)
    missing = "" if root.is_dir() else f"; {root} does not exist"
    try:
        torchvision_download(name, root)
    except Exception as exc:  # noqa: BLE001 - any download failure becomes one actionable message
        raise DataError(
            f"{name} not found (looked for {tried}{missing}) and downloading it failed, the machine seems "
            f"offline ({type(exc).__name__}: {' '.join(str(exc).split())}). "
            "Point --data-root (or $LTBENCH_DATA) at a folder holding a copy: "
            f"the torchvision pickle dir {PICKLE_DIRS[name]}/ or an extracted image folder "
            f"(e.g. `tar xzf {name}-webp.tar.gz -C DIR`, then --data-root DIR)"
        ) from exc
    return Source("download", root / PICKLE_DIRS[name])


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"CIFAR pickle file {path} is missing; re-extract the torchvision archive")
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="latin1")


def read_pickle_split(name: str, pdir: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (N, 3, 32, 32) uint8 and labels in the order of appearance in the batch files."""
    meta, meta_key, train_files, test_files, label_key = PICKLE_FILES[name]
    classes = [str(c) for c in _unpickle(pdir / meta)[meta_key]]
    xs, ys = [], []
    for fname in train_files if split == "train" else test_files:
        batch = _unpickle(pdir / fname)
        xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))  # rows are R, G, B planes
        ys.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys), classes


def list_image_folder(split_dir: Path, num_classes: int) -> tuple[list[str], list[list[str]]]:
    """Class names (alphabetical = label order) and each class's image paths in natural file-name order."""
    with os.scandir(split_dir) as it:
        classes = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    if len(classes) != num_classes:
        shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise DataError(
            f"{split_dir} has {len(classes)} class folders ({shown or 'none'}), expected "
            f"{num_classes}; point --data-root at the folder holding cifar10/ or cifar100/"
        )
    files = []
    for c in classes:
        with os.scandir(split_dir / c) as it:
            names = sorted((e.name for e in it if e.name.lower().endswith(IMAGE_EXTS) and e.is_file()), key=natural_key)
        if not names:
            raise DataError(f"class folder {split_dir / c} holds no images ({' '.join(IMAGE_EXTS)})")
        files.append([os.path.join(split_dir, c, n) for n in names])
    return classes, files


def _decode_chunk(paths: list[str]) -> np.ndarray:
    """Decode image files to an (n, 32, 32, 3) uint8 array; Pillow releases the GIL while decoding."""
    out = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise DataError(f"cannot decode image {p}: {exc}") from exc
        if arr.shape != (32, 32, 3):
            raise DataError(f"image {p} is {arr.shape[1]}x{arr.shape[0]}, expected 32x32 (is this CIFAR?)")
        out[i] = arr
    return out


def decode_images(paths: list[str], chunk: int = 1000) -> np.ndarray:
    """Decode ``paths`` in parallel chunks, keeping their order; (N, 3, 32, 32) uint8."""
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    if len(chunks) <= 1:
        parts = [_decode_chunk(c) for c in chunks]
    else:
        workers = min(8, len(chunks), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
            parts = list(ex.map(_decode_chunk, chunks))
    hwc = np.concatenate(parts) if parts else np.zeros((0, 32, 32, 3), np.uint8)
    return np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))


def read_folder_split(name: str, split_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images and labels of an image-folder split: class 0's files in natural order, then class 1's, ..."""
    classes, files = list_image_folder(split_dir, NUM_CLASSES[name])
    labels = np.concatenate([np.full(len(f), c, dtype=np.int64) for c, f in enumerate(files)])
    images = decode_images([p for f in files for p in f])
    return images, labels, classes


def _fingerprint(name: str, src: Source, split: str) -> dict:
    if src.kind == "folder":
        return {"kind": "folder", **folder_fingerprint(src.path, IMAGE_EXTS)}
    meta, _, train_files, test_files, _ = PICKLE_FILES[name]
    files = [src.path / f for f in [meta, *(train_files if split == "train" else test_files)]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"CIFAR pickle files missing: {', '.join(missing)}; re-extract the torchvision archive")
    return {"kind": "pickle", **files_fingerprint(files)}


def _valid(arrays: dict, num_classes: int, n_files: int | None) -> bool:
    x, y, classes = arrays.get("images"), arrays.get("labels"), arrays.get("classes")
    if x is None or y is None or classes is None:
        return False
    ok = x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == (3, 32, 32) and y.shape == (len(x),)
    ok = ok and len(classes) == num_classes and len(y) > 0 and 0 <= y.min() and y.max() < num_classes
    return bool(ok and (n_files is None or len(x) == n_files))


def load_cifar_pool(
    name: str, root: Path, split: str, cache_dir: Path | None = None
) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """One full CIFAR split in dataset order: ``(images uint8 N×3×32×32, labels int64, classes, source)``.

    The decoded arrays are cached under ``cache_dir`` (default ``default_cache_dir()``) keyed by the source
    fingerprint, so only the first load pays for decoding.
    """
    _check_name(name)
    if split not in ("train", "test"):
        raise ConfigError(f"unknown split {split!r}; accepted: train | test")
    root = Path(root).expanduser()
    src, looked = find_source(name, root, split)
    if src is None:
        src = _download(name, root, looked)
    fp = _fingerprint(name, Source("pickle", src.path) if src.kind == "download" else src, split)
    key = cache_key({"name": name, "split": split, **fp})
    path = Path(cache_dir or default_cache_dir()).expanduser() / f"{name}-{split}-{key}.npz"
    expect = fp.get("files") if src.kind == "folder" else None
    arrays = load_cached(path, lambda a: _valid(a, NUM_CLASSES[name], expect))
    hit = arrays is not None
    if arrays is not None:
        images, labels, classes = arrays["images"], arrays["labels"].astype(np.int64), arrays["classes"].tolist()
    else:
        if src.kind == "folder":
            images, labels, classes = read_folder_split(name, src.path)
        else:
            images, labels, classes = read_pickle_split(name, src.path, split)
        save_cached(path, {"images": images, "labels": labels, "classes": np.array(classes)})
    source = {
        "format": src.kind,
        "path": str(src.path.resolve()),
        "fingerprint": key,
        "cache": str(path),
        "cache_hit": hit,
    }
    return images, labels, [str(c) for c in classes], source


def _note(src: dict, truncated: bool, rule: str) -> str:
    notes = []
    if src["format"] == "folder":
        notes.append(
            "image-folder copy: dataset order = natural sort of file names per class; the pickle order "
            "is not recoverable, so the subset differs from the published one (docs/protocol.md §0.1 item 3)"
        )
    if truncated:
        notes.append(
            f"the training pool has fewer than n_max images in some classes (a long-tailed copy); "
            f"the {rule} rule was applied to the available pool, so the images differ from the "
            f"published subset"
        )
    return "; ".join(notes)


def build_cifar_lt(name: str, spec: DataSpec) -> LTData:
    """The long-tailed training subset, the full balanced test split and (rule B) a balanced val split.

    Counts follow docs/protocol.md §0.1 item 2; requested counts that exceed a class's pool (head class under
    rule B, or a copy that ships only a long-tailed subset) are capped and recorded in the provenance.
    """
    _check_name(name)
    if spec.val not in ("none", "B"):
        raise ConfigError(f"unknown validation rule {spec.val!r}; accepted: none | B")
    if spec.subset not in RULES:
        raise ConfigError(f"unknown subset rule {spec.subset!r}; accepted: {' | '.join(RULES)}")
    root = Path(spec.root).expanduser() if spec.root else default_data_root()
    cache_dir = spec.cache_dir or default_cache_dir()
    ir = DEFAULT_IR if spec.imbalance_ratio is None else float(spec.imbalance_ratio)
    n_max, num_classes = N_MAX[name], NUM_CLASSES[name]
    requested, chosen = requested_counts(spec.class_counts, n_max, num_classes, ir, spec.profile)
    x, y, classes, src = load_cifar_pool(name, root, "train", cache_dir)
    test_x, test_y, test_classes, test_src = load_cifar_pool(name, root, "test", cache_dir)
    if test_classes != classes:
        raise DataError(f"{name}: train and test class lists differ ({src['path']} vs {test_src['path']})")
    v = VAL_PER_CLASS[name]
    split = lt_split(y, requested, spec.subset, spec.val, v)
    split_sizes = np.bincount(y, minlength=num_classes)
    truncated = bool((split_sizes < n_max).any())
    provenance = {
        "source": src["format"],
        "source_path": src["path"],
        "fingerprint": src["fingerprint"],
        "test_source_path": test_src["path"],
        "test_fingerprint": test_src["fingerprint"],
        "subset": spec.subset,
        "subset_seed": 0,
        **chosen,
        "n_max": n_max,
        "val": spec.val,
        "val_per_class": v if spec.val == "B" else 0,
        "note": _note(src, truncated, spec.subset),
    }
    return assemble_lt(f"{name}_lt", classes, x, y, (test_x, test_y), split, (MEAN, STD), (4, True), provenance)
