"""The few collectives the trainer needs besides DDP's gradient all-reduce: agreeing on per-epoch numbers, on
stopping, and on BatchNorm statistics. Every function is a no-op (returns its input) in a single-process run."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ltbench.distributed.world import World


def mean_across(world: World, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each value averaged over the ranks (one all-reduce for all of them): the epoch's logged losses are then
    the mean over the whole global batch stream, not rank 0's share. Keys must be the same on every rank."""
    if not world.distributed or not values:
        return values
    keys = sorted(values)
    flat = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world.size
    return dict(zip(keys, flat.unbind()))


def agree(world: World, loss_sum: torch.Tensor, stop: bool) -> tuple[float, bool]:
    """(sum of the ranks' running loss sums, whether any rank was asked to stop) in one all-reduce, so that all
    ranks raise ``Diverged`` or write the mid-epoch checkpoint at the same step (a rank that stopped alone would
    leave the others waiting in the next gradient all-reduce)."""
    if not world.distributed:
        return float(loss_sum), stop
    t = torch.stack([loss_sum.detach().float().reshape(()), torch.tensor(float(stop), device=loss_sum.device)])
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t[0]), bool(t[1] > 0)


@torch.no_grad()
def sync_buffers(world: World, model: nn.Module) -> None:
    """Rank 0's BatchNorm statistics (every buffer) on every rank. Without SyncBatchNorm each rank's running
    statistics drift from its own shards; hooks that run the model in eval mode over the training set (SBCL's
    k-means, IP-DPP's probabilities) must see the same model everywhere, and rank 0's is the one checkpointed."""
    if not world.distributed:
        return
    for buf in model.buffers():
        dist.broadcast(buf, src=0)


def gather_objects(world: World, obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (small picklable things: RNG states of a mid-epoch checkpoint)."""
    if not world.distributed:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()
