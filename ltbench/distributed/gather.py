"""All-gather for losses that need the whole global batch (the supervised-contrastive core, BNS).

Every rank gathers the embeddings and labels of all ranks and computes the *global* loss, the same number on every
rank and the same as one process with the global batch. Only this rank's rows carry a gradient (its own tensor is
put back in its slot). Rank r's backward thus gives ∂L/∂z_r · ∂z_r/∂θ; the gradient of L is the sum of these over
the ranks, and DDP *averages* gradients, so the local rows' gradient is multiplied by the world size on its way
back. A single process (no process group) gets its input back unchanged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _ScaleGrad(torch.autograd.Function):
    """Identity forward (the value is bit-identical), gradient times ``factor`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.factor, None


def _gather(x: Tensor) -> list[Tensor]:
    """Every rank's ``x`` (detached), in rank order; ranks may hold different numbers of rows (a last global
    batch that does not split evenly), so rows are padded to the largest count for the collective and trimmed."""
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    counts = [int(s) for s in sizes]
    most = max(counts)
    padded = x.detach()
    if x.shape[0] < most:
        padded = torch.cat([padded, padded.new_zeros((most - x.shape[0], *x.shape[1:]))])
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded.contiguous())
    return [p[:c] for p, c in zip(parts, counts)]


def gather_rows(x: Tensor) -> Tensor:
    """The global batch's rows of a tensor without gradient (labels, indices), in rank order."""
    if world_size() == 1:
        return x
    return torch.cat(_gather(x))


def gather_with_grad(x: Tensor) -> Tensor:
    """The global batch's rows of ``x``, this rank's own rows keeping their gradient (scaled by the world size, for
    DDP's averaging; see the module docstring)."""
    size = world_size()
    if size == 1:
        return x
    parts = _gather(x)
    parts[dist.get_rank()] = _ScaleGrad.apply(x, float(size))
    return torch.cat(parts)


def gather_views(z: Tensor, views: int) -> Tensor:
    """Rows laid out [view1; view2; ...] of the local images -> the same layout over the global batch
    ([view1 of all ranks' images; view2 of ...]), the layout the contrastive masks expect."""
    if world_size() == 1:
        return z
    return torch.cat([gather_with_grad(part) for part in z.chunk(views)])
