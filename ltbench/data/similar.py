"""Similar-sample injection (``--mix-similar``), the category-similarity experiment of Liu & Liu ("Investigate
the essence of long-tailed recognition from a unified perspective", §4.2; docs/methods.md §13).

A fraction ρ of class SRC's training images is replaced by λ·x_src + (1 − λ)·x_dst, x_dst a uniformly drawn
training image of class DST; labels are unchanged (the mixed images still count as SRC). Raising ρ or lowering
λ makes SRC look more like DST, which is how the paper varies the similarity between a frequent and a rare
class at fixed sample numbers. Applied once when the data is built, from a fixed seed (0, like the subset rule),
so every run seed trains on the same images; what was replaced is recorded in the provenance.
"""

from __future__ import annotations

import numpy as np
import torch

from ltbench.config import parse_mix_similar
from ltbench.data.base import LTData
from ltbench.data.longtail import index_hash
from ltbench.errors import ConfigError

SEED = 0


def _class_index(data: LTData, name: str) -> int:
    if name.isdigit() and int(name) < data.num_classes:
        return int(name)
    if name in data.classes:
        return data.classes.index(name)
    raise ConfigError(f"--mix-similar: {name!r} is not a class of {data.name} (0..{data.num_classes - 1} or a name)")


def inject_similar(data: LTData, text: str) -> LTData:
    """``data`` with the injection applied to its in-memory training images (a new tensor; labels as they were)."""
    src_name, dst_name, rho, lam = parse_mix_similar(text)
    if not isinstance(data.train_x, torch.Tensor):
        raise ConfigError("--mix-similar works on in-memory datasets (CIFAR-LT, digits_lt, synthetic_lt)")
    src, dst = _class_index(data, src_name), _class_index(data, dst_name)
    if src == dst:
        raise ConfigError("--mix-similar: SRC and DST must be different classes")
    labels = data.train_y.numpy()
    src_idx, dst_idx = np.flatnonzero(labels == src), np.flatnonzero(labels == dst)
    rng = np.random.RandomState(SEED)
    replaced = np.sort(rng.choice(src_idx, size=int(round(rho * len(src_idx))), replace=False))
    partners = rng.choice(dst_idx, size=len(replaced), replace=True)
    x = data.train_x.clone()
    mixed = lam * x[replaced].float() + (1 - lam) * data.train_x[partners].float()
    x[replaced] = mixed.round().clamp(0, 255).to(x.dtype)
    data.train_x = x
    data.provenance = {
        **data.provenance,
        "mix_similar": {
            "src": src, "dst": dst, "rho": rho, "lambda": lam, "seed": SEED,
            "replaced": len(replaced), "replaced_hash": index_hash(replaced), "partners_hash": index_hash(partners),
        },
    }  # fmt: skip
    return data
