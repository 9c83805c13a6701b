"""Image mixing shared by OTmix (CutMix-style boxes, docs/methods.md §14) and DisA (mixup, §15).

The per-step random numbers (whether a batch is mixed, λ, the box centre) are drawn once per epoch on the host,
from a NumPy generator seeded by the trainer's per-epoch torch seed, and consumed one step at a time: the step
itself then makes no host synchronisation (a box corner read from a device tensor would be one per step), the
run stays reproducible, and a resumed epoch replays the same numbers (the step counter is method state).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor


def epoch_rng() -> np.random.Generator:
    """A NumPy generator seeded from torch's global RNG, which the trainer seeds per (run seed, stage, epoch)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,))))


def rand_box(height: int, width: int, lam: float, cy: int, cx: int) -> tuple[int, int, int, int, float]:
    """CutMix's box as CMO/OTmix draw it (``rand_bbox``): cut sides int(side·√(1−λ)), centred at (cy, cx),
    corners clipped to the image. Returns (top, bottom, left, right) and λ̃ = 1 − clipped area / image area,
    the share of the background image that remains (§14.1 "Box"; §14.7 item 3)."""
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    top, bottom = min(max(cy - cut_h // 2, 0), height), min(max(cy + cut_h // 2, 0), height)
    left, right = min(max(cx - cut_w // 2, 0), width), min(max(cx + cut_w // 2, 0), width)
    kept = 1.0 - (bottom - top) * (right - left) / (height * width)
    return top, bottom, left, right, kept


def paste_box(background: Tensor, foreground: Tensor, box: tuple[int, int, int, int, float]) -> Tensor:
    """``background`` (B, C, H, W) with the box's pixels taken from ``foreground`` (same index)."""
    top, bottom, left, right, _ = box
    out = background.clone()
    out[:, :, top:bottom, left:right] = foreground[:, :, top:bottom, left:right]
    return out


class StepDraws:
    """Random numbers for each step of one epoch, drawn at the epoch's start; ``next()`` hands out one step's."""

    def __init__(self) -> None:
        self.columns: dict[str, list] = {}
        self.step = 0

    def redraw(self, **columns: np.ndarray) -> None:
        self.columns = {k: v.tolist() for k, v in columns.items()}
        self.step = 0

    def next(self) -> dict[str, Any]:
        i = self.step
        self.step += 1
        return {k: v[i] for k, v in self.columns.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns, self.step = state["columns"], state["step"]


def steps_bound(n_images: int, batch_size: int) -> int:
    """At least the number of steps an epoch of ``n_images`` can have (partial last batch included)."""
    return n_images // batch_size + 2
