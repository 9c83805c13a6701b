"""Weighted means over the global batch, for losses with PyTorch's weighted-mean convention (RW, class-balanced
weights, DRW, LDAM's weights): Σ_i w_i ℓ_i / Σ_i w_i over *all* ranks' images.

A per-rank weighted mean, averaged by DDP, would divide each rank's share by its own weight sum (a rank holding
more tail images would count for less). Here each rank divides its weighted sum by the global weight sum over the
world size, so DDP's average of the ranks' gradients is the gradient of the global weighted mean, and the mean of
the ranks' loss values is its value. In one process it is Σ w ℓ / Σ w.
"""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor

from ltbench.distributed.gather import world_size


def weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """This rank's share of the global weighted mean of ``values`` (per image) with ``weights`` (per image)."""
    total = weights.detach().sum()
    size = world_size()
    if size > 1:
        total = total.clone()
        dist.all_reduce(total)  # no gradient flows through the weights: they are constants of the recipe
        total = total / size
    return (weights * values).sum() / total
