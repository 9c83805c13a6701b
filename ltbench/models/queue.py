"""The labelled FIFO key queue of the MoCo-style contrastive variants (official KCL/TSC/SBCL on ImageNet-LT,
docs/methods.md §6): a reusable model part, checkpointed with the model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LabelledQueue(nn.Module):
    """FIFO ring buffer of L2-normalised keys with their labels (the "labelled queue" of KCL/TSC/SBCL, §6).

    ``enqueue`` overwrites the oldest entries. ``.keys`` / ``.labels`` give the filled part only (before the
    first wrap-around the filled slots are 0..filled−1), so the loss never contrasts with empty slots.
    Keys and labels are buffers and the write pointer is extra state: the queue lives in ``state_dict``
    and resumes from a checkpoint. The pointer stays a Python int (no host sync per step).
    """

    def __init__(self, size: int, dim: int, subclasses: bool = False) -> None:
        super().__init__()
        if size <= 0 or dim <= 0:
            raise ValueError(f"size and dim must be positive, got size={size}, dim={dim}")
        self.size = size
        self.register_buffer("_keys", torch.zeros(size, dim))
        self.register_buffer("_labels", torch.full((size,), -1, dtype=torch.long))
        # SBCL's queue also keeps each key's subclass at enqueue time (moco/moco.py ``queue_l``); only a queue
        # that is asked for it has the buffer, so the checkpoints of the KCL/TSC queues keep their keys
        self.register_buffer("_subclasses", torch.full((size,), -1, dtype=torch.long) if subclasses else None)
        self.ptr, self.filled = 0, 0

    @torch.no_grad()
    def enqueue(self, keys: Tensor, labels: Tensor, subclasses: Tensor | None = None) -> None:
        """Write the newest ``size`` keys at the pointer; ``subclasses`` only (and always) for a subclass queue."""
        if (subclasses is None) != (self._subclasses is None):
            raise ValueError("subclass ids go with a queue built with subclasses=True, and only with one")
        keys, labels = keys.detach()[-self.size :], labels.detach()[-self.size :]  # more than size: keep newest
        n = keys.shape[0]
        pos = (self.ptr + torch.arange(n, device=self._keys.device)) % self.size
        self._keys[pos] = F.normalize(keys.float(), dim=1).to(self._keys.device)
        self._labels[pos] = labels.to(self._labels.device, torch.long)
        if subclasses is not None:
            self._subclasses[pos] = subclasses.detach()[-self.size :].to(self._labels.device, torch.long)
        self.ptr, self.filled = (self.ptr + n) % self.size, min(self.size, self.filled + n)

    @property
    def keys(self) -> Tensor:
        return self._keys[: self.filled]

    @property
    def labels(self) -> Tensor:
        return self._labels[: self.filled]

    @property
    def subclasses(self) -> Tensor:
        if self._subclasses is None:
            raise AttributeError("this queue keeps no subclass ids (built with subclasses=False)")
        return self._subclasses[: self.filled]

    def get_extra_state(self) -> dict:
        return {"ptr": self.ptr, "filled": self.filled}

    def set_extra_state(self, state: dict) -> None:
        self.ptr, self.filled = int(state["ptr"]), int(state["filled"])
