"""Long-tailed profiles, subset selection and shot groups: the protocol every CIFAR-LT number depends on.

Everything here is pure NumPy on label arrays so it can be checked exactly against the reference
repositories (docs/protocol.md §0.1) without touching images.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ltbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from ltbench.data.base import LTData

PROFILES = ("exp", "step")  # docs/protocol.md §0.1 item 2
RULES = ("ldam", "first")  # docs/protocol.md §0.1 item 3
SUBSET_SEED = 0  # the LDAM-DRW lineage seeds one legacy RandomState with 0 (docs/protocol.md §0.1 item 3)


def class_counts(n_max: int, num_classes: int, imbalance_ratio: float, profile: str = "exp") -> list[int]:
    """Training images per class, largest class first (docs/protocol.md §0.1 item 2).

    ``exp`` is computed exactly as the reference code does, ``int(n_max * (1/IR) ** (c/(C-1)))``, because a
    mathematically equal formula (``n_max * IR ** (-c/(C-1))``) can round differently and change a count.
    ``step`` keeps ``n_max`` for the first half of the classes and ``int(n_max/IR)`` for the rest.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown long-tail profile {profile!r}; accepted: {' | '.join(PROFILES)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ConfigError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)) or n_max < 1:
        raise ConfigError(f"n_max must be an integer >= 1, got {n_max!r}")
    ir = float(imbalance_ratio)
    if not (math.isfinite(ir) and ir >= 1):
        raise ConfigError(f"imbalance ratio must be a finite number >= 1, got {imbalance_ratio!r}")
    n_max, num_classes = int(n_max), int(num_classes)
    if num_classes == 1:
        return [n_max]
    imb_factor = 1 / ir  # the reference code's `imb_factor`
    if profile == "exp":
        counts = [int(n_max * imb_factor ** (c / (num_classes - 1))) for c in range(num_classes)]
    else:
        head = num_classes // 2
        counts = [n_max] * head + [int(n_max * imb_factor)] * (num_classes - head)
    if min(counts) < 1:
        empty = sum(c < 1 for c in counts)
        raise ConfigError(
            f"imbalance ratio {ir:g} leaves {empty} of {num_classes} classes with no training image "
            f"(largest class: {n_max}); use a ratio <= {n_max} for this dataset"
        )
    return counts


def requested_counts(
    explicit: Sequence[int] | None, n_max: int, num_classes: int, imbalance_ratio: float, profile: str
) -> tuple[list[int], dict]:
    """The counts a builder asks its pool for, and how they were chosen (for the provenance): the profile's
    (``class_counts``), or the user's explicit ``--class-counts`` (one per class, in class order)."""
    if explicit is None:
        return class_counts(n_max, num_classes, imbalance_ratio, profile), {
            "imbalance_ratio": imbalance_ratio, "profile": profile,
        }  # fmt: skip
    counts = [int(n) for n in explicit]
    if len(counts) != num_classes:
        raise ConfigError(
            f"--class-counts gives {len(counts)} counts; this dataset has {num_classes} classes (one count per class, "
            f"in class order, e.g. 5000x{num_classes - 1},100)"
        )
    return counts, {"imbalance_ratio": max(counts) / max(1, min(counts)), "profile": "custom", "counts_explicit": True}


def parse_class_counts(text: str) -> tuple[int, ...]:
    """``5000x9,100`` -> (5000, ..., 5000, 100): comma- or newline-separated counts, ``NxK`` repeating N K times.
    Raises ConfigError with the accepted form."""
    counts: list[int] = []
    for token in re.split(r"[,\s]+", text.strip()):
        if not token:
            continue
        match = re.fullmatch(r"(\d+)(?:x(\d+))?", token)
        if match is None or int(match.group(1)) < 1 or (match.group(2) is not None and int(match.group(2)) < 1):
            raise ConfigError(
                f"--class-counts: {token!r} is not a count; accepted: positive integers N or NxK (N repeated K times), "
                "separated by commas, e.g. 5000x9,100, or a file holding them"
            )
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    if not counts:
        raise ConfigError("--class-counts is empty; e.g. 5000x9,100")
    return tuple(counts)


def format_class_counts(counts: Sequence[int]) -> str:
    """(5000, ..., 5000, 100) -> ``5000x9,100``: the inverse of :func:`parse_class_counts`, runs of one count
    written ``NxK``; how tables name a run trained on explicit counts."""
    runs: list[list[int]] = []
    for n in counts:
        if runs and runs[-1][0] == n:
            runs[-1][1] += 1
        else:
            runs.append([n, 1])
    return ",".join(f"{n}x{k}" if k > 1 else str(n) for n, k in runs)


def select_indices(
    labels: np.ndarray, counts: Sequence[int], rule: str = "ldam", seed: int = SUBSET_SEED
) -> np.ndarray:
    """Positions in ``labels`` of the long-tailed subset, class 0's first (docs/protocol.md §0.1 item 3).

    ``ldam`` replays the LDAM-DRW construction: one ``np.random.RandomState(seed)``; for each class in label
    order, shuffle that class's ascending positions in place and keep the first ``counts[c]``. Because the
    RNG is shared across classes, the classes must be visited in order and every class consumes its shuffle
    even when it keeps all of its images. ``first`` keeps the first ``counts[c]`` in dataset order.
    """
    if rule not in RULES:
        raise ConfigError(f"unknown subset rule {rule!r}; accepted: {' | '.join(RULES)}")
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"labels must be a 1-D array, got shape {labels.shape}")
    rs = np.random.RandomState(seed) if rule == "ldam" else None
    picked = []
    for c, n_c in enumerate(counts):
        idx = np.where(labels == c)[0]
        if n_c > len(idx):
            raise DataError(f"class {c} has {len(idx)} images but {n_c} were requested; cap the counts first")
        if rs is not None:
            rs.shuffle(idx)
        picked.append(idx[: int(n_c)])
    return np.concatenate(picked).astype(np.int64) if picked else np.zeros(0, np.int64)


DEFAULT_SHOTS = (100, 20)  # classifier-balancing's shot_acc: many > 100, few < 20 (docs/protocol.md §0.3)
# CIFAR-10-LT has no class under 20 images at IR 100; the BNS paper (and its code) use many > 500, few < 200 there
DATASET_SHOTS = {"cifar10_lt": (500, 200)}


def default_shots(dataset: str) -> tuple[int, int]:
    """The many/few thresholds a dataset's tables and records use unless ``--shots`` says otherwise."""
    return DATASET_SHOTS.get(dataset, DEFAULT_SHOTS)


def shot_groups(train_counts: Sequence[int], many: int = 100, few: int = 20) -> dict[str, list[int]]:
    """Class indices per shot group: many ``n > many``, medium ``few <= n <= many``, few ``n < few``.

    The thresholds of classifier-balancing's ``shot_acc`` (docs/protocol.md §0.3); they are arguments because the
    BNS paper uses 500/200 on CIFAR-10-LT, which is not comparable with 100/20.
    """
    groups: dict[str, list[int]] = {"many": [], "medium": [], "few": []}
    for c, n in enumerate(train_counts):
        key = "many" if n > many else ("few" if n < few else "medium")
        groups[key].append(c)
    return groups


def index_hash(indices: np.ndarray | Sequence[int]) -> str:
    """Short sha256 of an index (or label) array: two runs used the same images iff their hashes match."""
    arr = np.ascontiguousarray(np.asarray(indices, dtype=np.int64))
    return hashlib.sha256(arr.tobytes()).hexdigest()[:16]


def natural_key(name: str) -> tuple:
    """Sort key where digit runs compare as numbers (``x_2`` < ``x_10``); image-folder order (docs/protocol.md §0.1)."""
    parts = re.split(r"(\d+)", name)
    # re.split with a capture group alternates text, number, text, ... so positions never mix types
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name


@dataclass
class LTSplit:
    """Positions (into the training split) of the LT subset and the held-out val set, with the bookkeeping."""

    train: np.ndarray
    val: np.ndarray | None
    requested: list[int]
    counts: list[int]
    pool_sizes: list[int]
    capped: list[int] = field(default_factory=list)


def lt_split(labels: np.ndarray, requested: Sequence[int], rule: str, val: str, val_per_class: int) -> LTSplit:
    """Hold out the validation images, cap the counts to what is left, then select the LT subset.

    Validation rule B (docs/protocol.md §0.1 item 7) holds out the *last* ``val_per_class`` images of every class
    in dataset order; ``none`` holds out nothing. A class whose pool is smaller than its requested count (the
    head class under rule B, or a copy that only ships a long-tailed subset) keeps its whole pool and is
    reported in ``capped`` so the result records it.
    """
    if val not in ("none", "B"):
        raise ConfigError(f"unknown validation rule {val!r}; accepted: none | B")
    labels = np.asarray(labels)
    num_classes = len(requested)
    by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    val_idx = None
    if val == "B":
        short = [c for c, idx in enumerate(by_class) if len(idx) <= val_per_class]
        if short:
            msg = f"validation rule B needs more than {val_per_class} images in every class"
            raise DataError(f"{msg}; classes {short} have too few")
        val_idx = np.concatenate([idx[-val_per_class:] for idx in by_class]).astype(np.int64)
        by_class = [idx[:-val_per_class] for idx in by_class]
    pool = np.sort(np.concatenate(by_class)).astype(np.int64)
    pool_sizes = [len(idx) for idx in by_class]
    counts = [min(int(n), size) for n, size in zip(requested, pool_sizes)]
    capped = [c for c, (n, size) in enumerate(zip(requested, pool_sizes)) if n > size]
    train = pool[select_indices(labels[pool], counts, rule)]
    return LTSplit(train, val_idx, [int(n) for n in requested], counts, pool_sizes, capped)


def assemble_lt(
    name: str,
    classes: list[str],
    x: np.ndarray,
    y: np.ndarray,
    test: tuple[np.ndarray, np.ndarray],
    split: LTSplit,
    stats: tuple[tuple, tuple],
    augment: tuple[int, bool],
    provenance: dict,
) -> LTData:
    """Wrap the selected arrays as an ``LTData`` (uint8 images, int64 labels) with the split's bookkeeping.

    Shared by every in-memory reader so the provenance keys are the same for all datasets. ``stats`` is
    ``(mean, std)``, ``augment`` is ``(crop_padding, hflip)``. Torch is imported here, not at module level,
    so the protocol functions above stay importable without it.
    """
    import torch

    from ltbench.data.base import LTData

    provenance = {
        **provenance,
        "counts_requested": split.requested,
        "counts": split.counts,
        "pool_sizes": split.pool_sizes,
        "capped_classes": split.capped,
        "index_hash": index_hash(split.train),
        "val_size": 0 if split.val is None else len(split.val),
    }
    val_x = val_y = None
    if split.val is not None:
        val_x, val_y = torch.from_numpy(x[split.val]), torch.from_numpy(y[split.val].astype(np.int64))
    test_x, test_y = test
    return LTData(
        name=name,
        classes=list(classes),
        train_x=torch.from_numpy(x[split.train]),
        train_y=torch.from_numpy(y[split.train].astype(np.int64)),
        test_x=torch.from_numpy(np.ascontiguousarray(test_x)),
        test_y=torch.from_numpy(test_y.astype(np.int64)),
        class_counts=list(split.counts),
        mean=tuple(stats[0]),
        std=tuple(stats[1]),
        crop_padding=augment[0],
        hflip=augment[1],
        val_x=val_x,
        val_y=val_y,
        provenance=provenance,
    )
