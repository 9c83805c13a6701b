"""DistributedDataParallel around a method's training step, and the ``--sync-bn`` conversion.

Methods call their model's parts directly (``model.embed``, ``model.backbone``, ``model.head``), not only
``model(x)``, so wrapping the model itself would let those calls bypass DDP's forward, and with it the gradient
all-reduce. Instead DDP wraps a ``StepModule`` whose forward *is* ``method.training_step(model, batch, ...)``:
whatever the step does with the model, its gradients are reduced. Methods never see DDP (architecture §2).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ltbench.errors import ConfigError


class StepModule(nn.Module):
    """``forward(batch, stage, epoch) -> method.training_step(model, batch, stage, epoch)``; the model is a
    submodule, so DDP sees (and broadcasts, and reduces) exactly its parameters and buffers."""

    def __init__(self, method, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._method = method  # a plain attribute: the method is not a module

    def forward(self, batch: dict, stage, epoch: int) -> dict:
        return self._method.training_step(self.model, batch, stage, epoch)


def wrap_step(method, model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """DDP over the step, for the current stage's trainable parameters (built again at every stage, since the
    set of parameters that require gradients changes: head-only stages, RIDE's router).

    ``find_unused_parameters=True``: some stages leave trainable parameters unused in a step (the classifier head
    during a contrastive stage, BBN's branches); DDP then marks them ready instead of waiting for them. Buffers are
    broadcast from rank 0 at every forward (DDP's default), so BatchNorm statistics follow rank 0's."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(StepModule(method, model), device_ids=ids, find_unused_parameters=True)


def convert_sync_bn(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """``--sync-bn``: every BatchNorm becomes a SyncBatchNorm (statistics over the global batch). PyTorch's
    SyncBatchNorm synchronises CUDA tensors only, so a multi-process CPU run refuses it instead of failing in the
    first forward. In a single process it computes exactly what BatchNorm does (state_dict keys are the same)."""
    if device.type != "cuda" and world_size > 1:
        raise ConfigError("--sync-bn needs CUDA devices (PyTorch's SyncBatchNorm does not synchronise CPU tensors)")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
