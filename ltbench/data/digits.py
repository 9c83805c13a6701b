"""``digits_lt``: scikit-learn's bundled 8x8 handwritten digits, made long-tailed.

The embedded real default dataset: it ships with scikit-learn (no download, no data root), loads in
milliseconds and trains in seconds on a CPU, so ``ltbench run`` works out of the box and the CI exercises
real images. It follows the CIFAR-LT construction (docs/protocol.md §0.1) at a smaller scale.
"""

from __future__ import annotations

import functools

import numpy as np

from ltbench.data.base import DataSpec, LTData
from ltbench.data.longtail import RULES, assemble_lt, lt_split, requested_counts
from ltbench.errors import ConfigError

NUM_CLASSES = 10
N_MAX = 130  # every class keeps >= 134 training images after the test hold-out (class 8 has 174 in all)
DEFAULT_IR = 10.0  # 130 -> 13 images: many, medium and few groups are all non-empty at 100/20
TEST_PER_CLASS = 40  # the last 40 images of each class in dataset order: a balanced 400-image test set
VAL_PER_CLASS = 10  # validation rule B (docs/protocol.md §0.1 item 7) at this scale


@functools.lru_cache(maxsize=1)
def load_digits_pool() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images as uint8 (N, 3, 8, 8) (grey replicated, 0..16 scaled to 0..255) and int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    grey = np.rint(d.data * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    x = np.ascontiguousarray(np.repeat(grey, 3, axis=1))
    x.setflags(write=False)  # shared by every build through the cache; selections copy
    return x, d.target.astype(np.int64)


def split_test(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training pool and of the balanced test set (last TEST_PER_CLASS of each class)."""
    test = np.concatenate([np.flatnonzero(y == c)[-TEST_PER_CLASS:] for c in range(NUM_CLASSES)])
    pool = np.setdiff1d(np.arange(len(y)), test)  # ascending: dataset order is kept
    return pool, np.sort(test)


@functools.lru_cache(maxsize=1)
def pool_stats() -> tuple[float, float]:
    """Mean and std of the training pool's pixels in [0, 1]; the same for all three (grey) channels.

    Computed from the pool (before the long-tailed selection), so it does not depend on IR, subset rule or
    seed and never sees the test images; ~0.30 / 0.38.
    """
    x, y = load_digits_pool()
    pool, _ = split_test(y)
    vals = x[pool, 0].astype(np.float64) / 255.0
    return float(vals.mean()), float(vals.std())


def build_digits_lt(spec: DataSpec) -> LTData:
    """Long-tailed digits: exp/step profile over the pool, LDAM or first-n subset, optional val rule B."""
    if spec.subset not in RULES:
        raise ConfigError(f"unknown subset rule {spec.subset!r}; accepted: {' | '.join(RULES)}")
    ir = DEFAULT_IR if spec.imbalance_ratio is None else float(spec.imbalance_ratio)
    requested, chosen = requested_counts(spec.class_counts, N_MAX, NUM_CLASSES, ir, spec.profile)
    x, y = load_digits_pool()
    pool, test = split_test(y)
    split = lt_split(y[pool], requested, spec.subset, spec.val, VAL_PER_CLASS)
    # lt_split returns positions in the pool; map them back to positions in the full dataset
    split.train = pool[split.train]
    split.val = None if split.val is None else pool[split.val]
    mean, std = pool_stats()
    provenance = {
        "source": "sklearn.datasets.load_digits",
        "subset": spec.subset,
        "subset_seed": 0,
        **chosen,
        "n_max": N_MAX,
        "test_per_class": TEST_PER_CLASS,
        "val": spec.val,
        "val_per_class": VAL_PER_CLASS if spec.val == "B" else 0,
        "note": "mean/std computed from the training pool (all non-test images)",
    }
    classes = [str(c) for c in range(NUM_CLASSES)]
    return assemble_lt(
        "digits_lt", classes, x, y, (x[test], y[test]), split, ((mean,) * 3, (std,) * 3), (1, False), provenance
    )
