"""``synthetic_lt``: tiny generated images for tests (deterministic, no files, built in milliseconds).

Each class is a smooth stripe pattern with its own colour, stripe direction and frequency, plus per-image
random phase, contrast and pixel noise. A tiny CNN separates the classes in a few epochs, so end-to-end
tests can check that training learns something without any data on disk.
"""

from __future__ import annotations

import numpy as np

from ltbench.data.base import DataSpec, LTData
from ltbench.data.longtail import RULES, assemble_lt, lt_split, requested_counts
from ltbench.errors import ConfigError

NUM_CLASSES = 10
SIZE = 16
N_MAX = 60  # ~240 training images at IR 10: a full epoch is a few steps of batch 100
DEFAULT_IR = 10.0
TEST_PER_CLASS = 20
VAL_PER_CLASS = 10  # validation rule B (docs/protocol.md §0.1 item 7): last 10 of each class's pool
SEED = 20240601  # fixed: the dataset is part of the test suite, not a random draw
NOISE = 0.08


def _class_params(c: int) -> tuple[np.ndarray, int, int]:
    """Colour (3,), stripe axis (0 = horizontal stripes, 1 = vertical) and cycles per image of class c.

    Stripes only run along an image axis so a horizontal flip (on by default for this dataset) maps every
    class onto itself; the hue is spread evenly around the colour wheel.
    """
    hue = 2 * np.pi * c / NUM_CLASSES
    colour = 0.5 + 0.35 * np.cos(hue + 2 * np.pi * np.arange(3) / 3)
    return colour, c % 2, 1 + c // 2


def generate(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` images of every class, class 0's first: uint8 (N, 3, SIZE, SIZE) and int64 labels."""
    coord = np.arange(SIZE, dtype=np.float64) / SIZE
    xs = []
    for c in range(NUM_CLASSES):
        colour, axis, freq = _class_params(c)
        phase = rng.uniform(0, 2 * np.pi, size=(n_per_class, 1))
        wave = np.sin(2 * np.pi * freq * coord[None, :] + phase)  # (n, SIZE) along one axis
        wave = wave[:, :, None] if axis == 0 else wave[:, None, :]  # rows vary (0) or columns vary (1)
        contrast = rng.uniform(0.3, 0.5, size=(n_per_class, 1, 1))
        grey = 0.5 + contrast * np.broadcast_to(wave, (n_per_class, SIZE, SIZE))
        img = colour[None, :, None, None] * (0.4 + grey[:, None]) / 1.4
        xs.append(img + rng.normal(0, NOISE, size=img.shape))
    x = np.clip(np.rint(np.concatenate(xs) * 255), 0, 255).astype(np.uint8)
    return x, np.repeat(np.arange(NUM_CLASSES, dtype=np.int64), n_per_class)


def pool_stats(x: np.ndarray | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] of the generated training pool ``x`` (generated here when not given:
    the statistics of a finished run without loading a dataset)."""
    if x is None:
        x, _ = generate(N_MAX, np.random.default_rng(np.random.SeedSequence(SEED).spawn(2)[0]))
    vals = x.reshape(len(x), 3, -1).astype(np.float64) / 255.0
    return tuple(float(m) for m in vals.mean(axis=(0, 2))), tuple(float(s) for s in vals.std(axis=(0, 2)))


def build_synthetic_lt(spec: DataSpec) -> LTData:
    """Long-tailed synthetic stripes: N_MAX per class in the pool, exp/step profile, balanced test set."""
    if spec.subset not in RULES:
        raise ConfigError(f"unknown subset rule {spec.subset!r}; accepted: {' | '.join(RULES)}")
    ir = DEFAULT_IR if spec.imbalance_ratio is None else float(spec.imbalance_ratio)
    requested, chosen = requested_counts(spec.class_counts, N_MAX, NUM_CLASSES, ir, spec.profile)
    rng_train, rng_test = (np.random.default_rng(s) for s in np.random.SeedSequence(SEED).spawn(2))
    x, y = generate(N_MAX, rng_train)
    test_x, test_y = generate(TEST_PER_CLASS, rng_test)
    split = lt_split(y, requested, spec.subset, spec.val, VAL_PER_CLASS)
    mean, std = pool_stats(x)
    provenance = {
        "source": f"generated (seed {SEED})",
        "subset": spec.subset,
        "subset_seed": 0,
        **chosen,
        "n_max": N_MAX,
        "val": spec.val,
        "val_per_class": VAL_PER_CLASS if spec.val == "B" else 0,
    }
    classes = [f"pattern{c}" for c in range(NUM_CLASSES)]
    return assemble_lt("synthetic_lt", classes, x, y, (test_x, test_y), split, (mean, std), (2, True), provenance)
