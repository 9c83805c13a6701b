"""Optimizers and learning-rate schedules. Only the trainer calls these (methods declare Stages).

Schedules are pure functions of (stage, epoch, iteration), so a resumed run needs no scheduler state and
lands on exactly the learning rate an uninterrupted run would use.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ltbench.errors import ConfigError
from ltbench.method import Stage


def param_groups(params: list[tuple[str, nn.Parameter]], weight_decay: float, no_decay_1d: bool) -> list[dict]:
    """Split parameters so biases and norm weights (1-D tensors) get no weight decay when asked.

    The AdamW recipes (BNS code, ViT/DeiT) exclude them; the SGD CIFAR recipes decay everything.
    """
    if not no_decay_1d:
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    decay = [p for n, p in params if p.ndim > 1 and not n.endswith(".bias")]
    no_decay = [p for n, p in params if not (p.ndim > 1 and not n.endswith(".bias"))]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(params: list[tuple[str, nn.Parameter]], stage: Stage) -> torch.optim.Optimizer:
    """The stage's optimizer; with ``backbone_lr_factor`` != 1 the backbone's parameters form their own groups,
    whose ``lr_scale`` :func:`set_lr` applies."""
    if stage.backbone_lr_factor == 1.0:
        groups = param_groups(params, stage.weight_decay, stage.no_decay_1d)
    else:
        backbone = [(n, p) for n, p in params if n.startswith("backbone.")]
        rest = [(n, p) for n, p in params if not n.startswith("backbone.")]
        groups = [
            {**g, "lr_scale": scale}
            for part, scale in ((rest, 1.0), (backbone, stage.backbone_lr_factor))  # the head's lr is the logged one
            if part
            for g in param_groups(part, stage.weight_decay, stage.no_decay_1d)
        ]
    if stage.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=stage.lr, momentum=stage.momentum, nesterov=stage.nesterov)
    if stage.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=stage.lr, betas=stage.betas)
    raise ConfigError(f"unknown optimizer {stage.optimizer!r}; known: sgd, adamw")


def lr_factor(stage: Stage, epoch: int, it: int, iters_per_epoch: int) -> float:
    """Multiplier of ``stage.lr`` at iteration ``it`` of 0-based ``epoch``.

    - per-epoch warm-up (LDAM-DRW/RIDE): factor s + (1 − s)(epoch+1)/W for epoch < W, s = ``warmup_start`` —
      lr·e/5 for 1-based e ≤ 5 at s = 0; BBN's WarmupMultiStepLR (s = 1/3) gives 0.4667·lr in epoch 1;
    - per-iteration warm-up (contrastive, BNS): linear from ``warmup_start`` to 1 over W epochs;
    - then "step": the factor of the last milestone reached; "cosine": half cycle to ``final_lr_factor``
      over the epochs after warm-up (per iteration); "constant": 1.
    """
    t = epoch + it / max(1, iters_per_epoch)
    w = stage.warmup_epochs
    if w > 0:
        if stage.warmup_per_iter and t < w:
            return stage.warmup_start + (1 - stage.warmup_start) * t / w
        if not stage.warmup_per_iter and epoch < w:
            return min(1.0, stage.warmup_start + (1 - stage.warmup_start) * (epoch + 1) / w)
    if stage.schedule == "step":
        factor = 1.0
        for m, f in stage.milestones:
            if epoch >= m:
                factor = f
        return factor
    if stage.schedule == "cosine":
        start, end = cosine_cycle(stage, t)
        progress = min(1.0, max(0.0, (t - start) / max(1e-8, end - start)))
        lo = stage.final_lr_factor
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * progress))
    if stage.schedule == "cosine_epoch":
        # classifier-balancing (run_networks.py): CosineAnnealingLR(T_max=E, eta_min=endlr) stepped at the *start*
        # of every epoch, so 0-based epoch e trains at lr·(1 + cos(π(e+1)/E))/2 and the last epoch at the floor
        lo = stage.final_lr_factor
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch + 1) / max(1, stage.epochs))))
    if stage.schedule == "constant":
        return 1.0
    raise ConfigError(f"unknown schedule {stage.schedule!r}; known: step, cosine, cosine_epoch, constant")


def cosine_cycle(stage: Stage, t: float) -> tuple[float, float]:
    """(start, end) epochs of the cosine half cycle that holds time ``t``: after the warm-up to the end of the
    stage, or between consecutive ``stage.restarts`` (each restart starts again from the full lr)."""
    bounds = [stage.warmup_epochs, *(r for r in sorted(stage.restarts) if r > stage.warmup_epochs), stage.epochs]
    start = max(b for b in bounds[:-1] if b <= t) if t >= bounds[0] else bounds[0]
    return start, bounds[bounds.index(start) + 1]


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Every group at ``lr`` times its ``lr_scale`` (1 unless :func:`build_optimizer` split off the backbone)."""
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
