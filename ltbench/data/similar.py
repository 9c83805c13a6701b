"""Similar-sample injection (``--mix-similar``), the category-similarity experiment of Liu & Liu ("Investigate
the essence of long-tailed recognition from a unified perspective", §4.2; docs/methods.md §13).

A fraction ρ of class SRC's training images is replaced by λ·x_src + (1 − λ)·x_dst, x_dst a training image of
class DST; labels are unchanged (the mixed images still count as SRC). Raising ρ or lowering λ makes SRC look more
like DST, which is how the paper varies the similarity between a frequent and a rare class at fixed sample
numbers. Applied once when the data is built, from a fixed seed (0, like the subset rule), so every run seed trains
on the same images; what was replaced is recorded in the provenance.

Which DST image goes with each replaced image (PAIRING): ``balanced`` (default) follows the authors' release
(github.com/Haishen-ll/the-Essence-of-LT-Rocognition, verification/imbalance_cifar.py, gen_overlaped_data), which
tiles DST's images so each is mixed into the same number of SRC images (ρ·5000/50 = 10 to 40 each at ρ = 0.1 to
0.4); ``random`` draws each partner uniformly with replacement, so some DST images are used several times more
than others. Two smaller differences from the release are kept and stated: the release hard-codes classes 0 and 9,
λ = 0.2 and 5,000 head images (here any SRC, DST, ρ, λ; with a count that DST's images do not divide, some are used
once more than others), and its mixes are cut to integers (float to uint8), here rounded (at most one grey level).
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


def _partners(rng: np.random.RandomState, dst_idx: np.ndarray, k: int, pairing: str) -> np.ndarray:
    """The DST image mixed into each of the k replaced SRC images. ``balanced``: DST's images in a shuffled order,
    repeated until k are taken, so each is used k/n times (the release's tiling); ``random``: k uniform draws."""
    if pairing == "random":
        return rng.choice(dst_idx, size=k, replace=True)
    order = rng.permutation(dst_idx)
    return np.tile(order, -(-k // len(order)))[:k]


def inject_similar(data: LTData, text: str) -> LTData:
    """``data`` with the injection applied to its in-memory training images (a new tensor; labels as they were)."""
    src_name, dst_name, rho, lam, pairing = parse_mix_similar(text)
    if not isinstance(data.train_x, torch.Tensor):
        raise ConfigError("--mix-similar works on in-memory datasets (CIFAR-LT, digits_lt, synthetic_lt)")
    src, dst = _class_index(data, src_name), _class_index(data, dst_name)
    if src == dst:
        raise ConfigError("--mix-similar: SRC and DST must be different classes")
    labels = data.train_y.numpy()
    src_idx, dst_idx = np.flatnonzero(labels == src), np.flatnonzero(labels == dst)
    if len(dst_idx) == 0:
        raise ConfigError(f"--mix-similar: class {data.classes[dst]!r} has no training images to mix in")
    rng = np.random.RandomState(SEED)
    replaced = np.sort(rng.choice(src_idx, size=int(round(rho * len(src_idx))), replace=False))
    partners = _partners(rng, dst_idx, len(replaced), pairing)
    x = data.train_x.clone()
    mixed = lam * x[replaced].float() + (1 - lam) * data.train_x[partners].float()
    x[replaced] = mixed.round().clamp(0, 255).to(x.dtype)
    data.train_x = x
    data.provenance = {
        **data.provenance,
        "mix_similar": {
            "src": src, "dst": dst, "rho": rho, "lambda": lam, "pairing": pairing, "seed": SEED,
            "replaced": len(replaced), "replaced_hash": index_hash(replaced), "partners_hash": index_hash(partners),
        },
    }  # fmt: skip
    return data
