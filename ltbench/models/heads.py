"""Heads: features -> logits (or embeddings). Separate from backbones so stages can swap them.

A model built by a method is an ``nn.Module`` with ``.backbone`` (pooled features) and ``.head``; the
trainer relies on these two names to freeze the backbone and re-initialise the head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.models.cifar_resnet import Classifier


class CosineHead(nn.Module):
    """Normalised linear head without bias: returns cos(f, W_c) (unscaled), LDAM's ``NormedLinear`` (§3).

    Computed in float32 even under bf16 autocast: margins of 0.05 on a cosine must not drown in bf16's
    3 significant digits.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, num_classes))
        # LDAM-DRW NormedLinear init: uniform(-1, 1) then renorm columns (kaidic/LDAM-DRW models/resnet_cifar.py)
        self.weight.data.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.normalize(x.float(), dim=1) @ F.normalize(self.weight.float(), dim=0)

    def class_weights(self) -> torch.Tensor:
        """Per-class weight vectors as rows (C x d), for weight-norm statistics."""
        return self.weight.t()


class LWSHead(nn.Module):
    """Learnable weight scaling (Kang et al. 2020): keep W, b of a trained linear head, learn f_c per class."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        for p in self.linear.parameters():
            p.requires_grad_(False)
        # on the trained layer's device: the head is swapped in mid-run, on whatever device the model is
        self.scales = nn.Parameter(torch.ones(linear.out_features, device=linear.weight.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.scales

    def class_weights(self) -> torch.Tensor:
        return self.linear.weight * self.scales[:, None]


def tau_normalised_weight(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """W_c / ||W_c||^tau for each class row (τ-norm, Kang et al. 2020, docs/methods.md §4); the bias is dropped."""
    norms = weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return weight / norms.pow(tau)


class ProjectionMLP(nn.Module):
    """Linear-ReLU-Linear projector with L2-normalised output (SupCon/KCL/TSC/SBCL/BNS stage 1)."""

    def __init__(self, in_features: int, hidden: int, out: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.normalize(self.net(x.float()), dim=1)


def new_linear(in_features: int, num_classes: int) -> nn.Linear:
    head = nn.Linear(in_features, num_classes)
    nn.init.kaiming_normal_(head.weight)  # LDAM-DRW _weights_init (§0.5)
    return head


def linear_classifier(backbone: nn.Module, num_classes: int) -> Classifier:
    """The default model: backbone + a fresh linear head."""
    return Classifier(backbone, new_linear(backbone.feature_dim, num_classes))


def cosine_classifier(backbone: nn.Module, num_classes: int) -> Classifier:
    """Backbone + unscaled cosine head (LDAM, KPS and the contrastive methods' stage 2)."""
    return Classifier(backbone, CosineHead(backbone.feature_dim, num_classes))


def class_weight_matrix(head: nn.Module) -> torch.Tensor | None:
    """The C x d class weight matrix of a head, for the weight-norm statistics of the seed paper."""
    if hasattr(head, "class_weights"):
        return head.class_weights().detach()
    if isinstance(head, nn.Linear):
        return head.weight.detach()
    return None
