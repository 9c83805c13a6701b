"""The model of the contrastive two-stage methods (KCL, TSC, SBCL; docs/methods.md §6–§8): backbone + classifier head +
projection MLP, with the optional MoCo key encoder and labelled queue of the ImageNet-scale variant."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ltbench.models.cifar_resnet import Classifier
from ltbench.models.queue import LabelledQueue


class ContrastiveModel(Classifier):
    """Backbone + classifier head + projection MLP (+ optional momentum key encoder and labelled queue)."""

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        projector: nn.Module,
        queue_size: int = 0,
        momentum: float = 0.0,
        queue_subclasses: bool = False,
    ) -> None:
        super().__init__(backbone, head)
        self.projector = projector
        self.key_encoder: nn.Module | None = None
        self.queue: LabelledQueue | None = None
        if queue_size > 0:
            self.queue = LabelledQueue(queue_size, projector.net[-1].out_features, queue_subclasses)
            if momentum > 0:  # MoCo: a copy that only moves by EMA, never by gradients
                self.key_encoder = nn.Sequential(copy.deepcopy(backbone), copy.deepcopy(projector))
                self.key_encoder.requires_grad_(False)

    def embed(self, x: Tensor) -> Tensor:
        """L2-normalised projection ẑ = normalise(g(f(x)))."""
        return self.projector(self.backbone(x))

    @torch.no_grad()
    def momentum_update(self, m: float) -> None:
        """θ_k ← m·θ_k + (1 − m)·θ_q for the key encoder (MoCo; buffers follow its own forward passes)."""
        query = list(self.backbone.parameters()) + list(self.projector.parameters())
        keys = list(self.key_encoder.parameters())
        torch._foreach_mul_(keys, m)
        torch._foreach_add_(keys, [p.detach() for p in query], alpha=1.0 - m)
