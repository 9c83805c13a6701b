"""Datasets described without reading them: classes, requested class counts, image size, normalisation.

``ltbench run --dry-run`` must resolve a whole recipe (the method's stages need class counts) without touching
data, and ``ltbench.load_run`` needs the evaluation preprocessing of runs recorded before result.json held it.
Every value comes from the constants the readers themselves use, so the two cannot disagree.
"""

from __future__ import annotations

from ltbench.data.base import DataSpec, Nominal
from ltbench.data.longtail import class_counts

# classes of the split-file benchmarks (docs/protocol.md); their counts are only known from the split files
FOLDER_CLASSES = {"imagenet_lt": 1000, "places_lt": 365, "inat2018": 8142}


def _ir(spec: DataSpec, default: float) -> float:
    return default if spec.imbalance_ratio is None else float(spec.imbalance_ratio)


def cifar(name: str, spec: DataSpec) -> Nominal:
    from ltbench.data import cifar as c

    counts = class_counts(c.N_MAX[name], c.NUM_CLASSES[name], _ir(spec, c.DEFAULT_IR), spec.profile)
    return Nominal(c.NUM_CLASSES[name], counts, 32, c.MEAN, c.STD)


def digits(spec: DataSpec) -> Nominal:
    from ltbench.data import digits as d

    mean, std = d.pool_stats()
    counts = class_counts(d.N_MAX, d.NUM_CLASSES, _ir(spec, d.DEFAULT_IR), spec.profile)
    return Nominal(d.NUM_CLASSES, counts, 8, (mean,) * 3, (std,) * 3)


def synthetic(spec: DataSpec) -> Nominal:
    from ltbench.data import synthetic as s

    mean, std = s.pool_stats()
    counts = class_counts(s.N_MAX, s.NUM_CLASSES, _ir(spec, s.DEFAULT_IR), spec.profile)
    return Nominal(s.NUM_CLASSES, counts, s.SIZE, mean, std)


def folder(name: str, spec: DataSpec) -> Nominal:
    from ltbench.data import folder as f

    size = spec.image_size or f.CROP
    mean, std, _ = f.STATS.get(name, (f.IMAGENET_MEAN, f.IMAGENET_STD, f.JITTER))
    return Nominal(FOLDER_CLASSES[name], None, size, mean, std, resize=round(size * f.RESIZE / f.CROP))


def nominal(dataset: str, spec: DataSpec | None = None) -> Nominal | None:
    """The registered dataset's description (its builder's ``nominal``), or None for a dataset without one."""
    from ltbench.registry import DATASETS

    describe = getattr(DATASETS.get(dataset), "nominal", None)
    return describe(spec or DataSpec()) if describe else None
