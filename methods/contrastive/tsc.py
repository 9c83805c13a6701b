"""TSC — Targeted Supervised Contrastive learning (Li et al., CVPR 2022; docs/methods.md §7).

C target points spread uniformly on the unit hypersphere are assigned to the classes online (Hungarian
matching of EMA class centroids to targets, every iteration) and a λ-weighted term pulls each sample
towards its class's target, so tail classes also get well-separated regions. The rest is KCL (§6): same
masks, same recipe, plain KCL during a warm-up (the first half of stage 1), same stage 2.

The paper's formula and the authors' two releases differ (§7.3), so ``variant`` picks one: ``paper`` (the
supplementary's equation), ``code_cifar`` (the CIFAR release: targets as 25 fake samples per view, fixed
class → target order, no λ, no matching) or ``code_imagenet`` (the ImageNet release: target term divided by
|P_i| + 1 together with the pull).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ltbench.distributed.gather import gather_rows, gather_views
from ltbench.errors import ConfigError
from ltbench.losses.contrastive import (
    TSC_VARIANTS,
    contrastive_loss,
    kcl_masks,
    targeted_contrastive_loss,
    targets_as_samples,
)
from ltbench.method import HP
from ltbench.methods.contrastive.common import IMAGENET_PRESET, QUEUE_HP, ContrastiveTwoStage
from ltbench.methods.contrastive.kcl import KCL_HP
from ltbench.registry import METHODS

TSC_HP = {
    # Which formula (docs/methods.md §7.3). The CIFAR numbers (79.7 / 43.8) came, as far as can be told, from the
    # CIFAR release: the authors point CIFAR users to it (LTH14/targeted-supcon issue #11: SupContrast with
    # tsc_cifar_loss.py) and released their script, cifar_dirty/main_supcon_imba.py (commit c4f15eb). The
    # ImageNet-LT numbers came from moco/builder.py (README command, --tw 0.2; issue #12: "follow the code").
    "variant": HP(
        "code_cifar",
        "TSC CIFAR release cifar_dirty/ (c4f15eb), the authors' CIFAR code (issue #11); 'paper' = supp. eq.; "
        "'code_imagenet' = moco/builder.py (§7.3)",
        choices=TSC_VARIANTS,
    ),
    "target_repeat": HP(25, "TSC CIFAR release main_supcon_imba.py --target_repeat 25 (code_cifar only, §7.3)"),
    "lam": HP(
        0.2,
        "TSC paper: λ = 0.2, robust on 0.1–0.5; the ImageNet code's --tw 0.2 (§7); code_cifar has none",
        range=("uniform", 0.05, 1.0),
    ),
    # CIFAR warm-up length unstated; ImageNet-LT: 200 KCL + 200 TSC epochs, i.e. half (§7, §12 item 3)
    "kcl_epochs": HP(500, "PROPOSAL §7: plain KCL for the first 500 of 1000 epochs", epoch=True),
    # Each assignment solves a C x C problem on the host (scipy), a device -> host copy that stalls a GPU step;
    # 1 = every iteration as the paper; N > 1 reuses the last assignment for N - 1 steps (centroids still move)
    "assign_every": HP(1, "TSC paper: Hungarian assignment every iteration (§7); N > 1 saves host syncs"),
    "centroid_momentum": HP(0.9, "TSC paper/code: EMA class centroids, momentum 0.9 (§7)"),
    "target_steps": HP(10000, "TSC code target_generation.py: 10,000 Adam steps when C > d + 1 (§7)"),
}


def simplex_targets(num_classes: int, dim: int, generator: torch.Generator | None = None) -> Tensor:
    """C unit vectors in R^d with all pairwise cosines −1/(C−1): the regular simplex, C ≤ d + 1.

    The exact minimiser of TSC's uniformity energy for C ≤ d + 1 (docs/methods.md §7 PROPOSAL): the centred
    standard basis of R^C spans a (C−1)-dim subspace; its coordinates in an orthonormal basis of that
    subspace are zero-padded to d and turned by a random rotation, so no target is axis-aligned.
    """
    if num_classes < 2 or num_classes > dim + 1:
        raise ValueError(f"a regular simplex of {num_classes} points needs 2 <= C <= d + 1 = {dim + 1}")
    centred = torch.eye(num_classes, dtype=torch.float64) - 1.0 / num_classes
    basis = torch.linalg.svd(centred).Vh[: num_classes - 1]  # orthonormal rows spanning the subspace
    coords = F.normalize(centred @ basis.t(), dim=1)  # (C, C−1), pairwise cosine −1/(C−1)
    coords = F.pad(coords, (0, dim - coords.shape[1]))
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    return (coords @ rotation).float()


def uniformity_energy(u: Tensor, t: float = 0.07) -> Tensor:
    """(1/C) Σ_i log Σ_j exp(u_i·u_j / t), j = i included, as TSC's target_generation.py (§7)."""
    return torch.logsumexp(u @ u.t() / t, dim=1).mean()


def optimised_targets(
    num_classes: int,
    dim: int,
    steps: int = 10000,
    lr: float = 1e-3,
    t: float = 0.07,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Targets for C > d + 1: Adam on the uniformity energy of normalised points, keeping the best (§7)."""
    x = torch.randn(num_classes, dim, generator=generator).to(device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    best, best_u = math.inf, F.normalize(x.detach(), dim=1)
    for _ in range(steps):
        u = F.normalize(x, dim=1)
        loss = uniformity_energy(u, t)
        value = float(loss.detach())
        if value < best:
            best, best_u = value, u.detach().clone()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return best_u


def target_bank(num_classes: int, dim: int, steps: int, device: torch.device | str = "cpu") -> Tensor:
    """The fixed target bank U (C × d): closed-form simplex when it exists, else the optimised one."""
    gen = torch.Generator().manual_seed(0)  # fixed: the bank is part of the method, not of the seed
    if num_classes <= dim + 1:
        return simplex_targets(num_classes, dim, gen).to(device)
    return optimised_targets(num_classes, dim, steps, generator=gen, device=device)


def hungarian_assignment(centroids: Tensor, targets: Tensor) -> Tensor:
    """π with π[y] = the target of class y, maximising Σ_y c̄_y·u_π(y) (scipy linear_sum_assignment, §7)."""
    from scipy.optimize import linear_sum_assignment

    score = (centroids.float() @ targets.float().t()).detach().cpu().double().numpy()
    rows, cols = linear_sum_assignment(score, maximize=True)
    perm = torch.empty(len(rows), dtype=torch.long)
    perm[torch.as_tensor(rows)] = torch.as_tensor(cols, dtype=torch.long)
    return perm.to(centroids.device)


@torch.no_grad()
def update_centroids(centroids: Tensor, z: Tensor, labels: Tensor, momentum: float) -> Tensor:
    """EMA of each present class's normalised batch mean, renormalised (TSC, §7); absent classes unchanged.

    A zero (never seen) centroid becomes the batch mean itself after the first update.
    """
    sums = torch.zeros_like(centroids).index_add_(0, labels, z.detach().float())
    # presence by scatter, not bincount (whose output size depends on the data: a host sync on a GPU)
    present = torch.zeros(centroids.shape[0], dtype=torch.bool, device=labels.device).index_fill_(0, labels, True)
    moved = F.normalize(momentum * centroids + (1 - momentum) * F.normalize(sums, dim=1), dim=1)
    return torch.where(present[:, None], moved, centroids)


@METHODS.register("tsc")
class TSC(ContrastiveTwoStage):
    """KCL + a pull towards per-class targets on the hypersphere: the paper's λ-weighted term or the ImageNet
    release's (Hungarian-assigned online), or the CIFAR release's targets-as-samples (fixed order); ``variant``."""

    display_name = "TSC"

    paper = "Li et al., Targeted Supervised Contrastive Learning for Long-Tailed Recognition, CVPR 2022"
    hparams = {**ContrastiveTwoStage.hparams, **KCL_HP, **TSC_HP, **QUEUE_HP}
    # ImageNet-LT: 200 KCL epochs then 200 TSC epochs (TSC paper, warm-up ablation; docs/methods.md §7), not
    # KCL's 200-epoch recipe with the CIFAR warm-up of 500, which never leaves the warm-up
    # ... and the ImageNet release's loss (moco/builder.py, the README's --tw 0.2 command; §7.3)
    presets = {"imagenet_lt": {**IMAGENET_PRESET, "epochs": 400, "kcl_epochs": 200, "variant": "code_imagenet"}}
    step_syncs = {
        **ContrastiveTwoStage.step_syncs,
        "hungarian_assignment": "paper/code_imagenet: the C x C assignment is solved on the host every "
        "`assign_every` steps",
    }

    def __init__(self, hp, info) -> None:
        super().__init__(hp, info)
        # absent in runs recorded before the choice existed: they ran the paper's formula
        self.variant = hp.get("variant", "paper")
        if self.variant == "code_cifar" and hp.get("queue_size", 0) > 0:
            raise ConfigError(
                "tsc variant=code_cifar is the in-batch CIFAR release (targets as fake batch samples); with a "
                "queue (queue_size > 0) use variant=code_imagenet or paper"
            )
        self.targets: Tensor | None = None
        self.centroids: Tensor | None = None
        self.assignment: Tensor | None = None
        self.steps = 0  # target-phase steps done (assign_every)

    def on_stage_start(self, stage, model, ctx) -> None:
        super().on_stage_start(stage, model, ctx)
        if stage.name == "contrastive" and self.targets is None:  # resumed runs restore theirs
            self.targets = target_bank(self.num_classes, self.hp["proj_dim"], self.hp["target_steps"], ctx.device)
            self.centroids = torch.zeros_like(self.targets)
            gram = self.targets @ self.targets.t()
            off = gram[~torch.eye(len(gram), dtype=torch.bool, device=gram.device)]
            ctx.record("tsc_targets", {"max_cos": float(off.max()), "mean_cos": float(off.mean())})

    def contrastive_step(self, model, batch, epoch) -> dict:
        warm_up = epoch < self.hp["kcl_epochs"]  # plain KCL first, every variant (§7.3)
        if self.variant == "code_cifar" and not warm_up:
            return {"loss": self.code_cifar_loss(model, batch)}
        anchors, labels, contrast, pos, den = self.kcl_contrast(model, batch)
        tau = self.hp["temperature"]
        if self.variant != "code_cifar":  # the matching variants track centroids during the warm-up too
            # centroid statistics of the global batch (in-batch anchors are gathered already; queue anchors local)
            seen, seen_labels = (
                (anchors, labels) if model.queue is None else (gather_rows(anchors), gather_rows(labels))
            )
            self.centroids = update_centroids(self.centroids, seen, seen_labels, self.hp["centroid_momentum"])
        if warm_up:
            return {"loss": contrastive_loss(anchors, contrast, pos, den, tau)}
        self.steps += 1
        if self.assignment is None or (self.steps - 1) % self.hp["assign_every"] == 0:
            self.assignment = hungarian_assignment(self.centroids, self.targets)
        index = self.assignment[labels]
        lam = self.hp["lam"]
        loss = targeted_contrastive_loss(anchors, contrast, pos, den, self.targets, index, tau, lam, self.variant)
        return {"loss": loss}

    def code_cifar_loss(self, model, batch) -> Tensor:
        """The CIFAR release's loss: KCL on the batch enlarged by ``target_repeat`` copies of every target per view.

        Class y owns target y for the whole run (cifar_dirty/main_supcon_imba.py, c4f15eb: ``label_order`` is
        ``range(100)`` on CIFAR-100; its CIFAR-10 permutation belongs to its own, unreleased target file, and for
        a regular simplex every order is equivalent). No centroids, no matching; τ/τ_base = 1 (both 0.07).
        """
        v1, v2 = batch["x"]
        z = gather_views(model.embed(torch.cat([v1, v2])), 2)  # the global batch's views (several processes)
        rows, labels = targets_as_samples(z, gather_rows(batch["y"]), self.targets, self.hp["target_repeat"])
        pos, den = kcl_masks(labels, self.hp["k"])
        return contrastive_loss(rows, rows, pos, den, self.hp["temperature"])

    def state_dict(self) -> dict:
        return {
            "targets": self.targets,
            "centroids": self.centroids,
            "assignment": self.assignment,
            "steps": self.steps,
        }

    def load_state_dict(self, state) -> None:
        self.targets, self.centroids = state.get("targets"), state.get("centroids")
        self.assignment, self.steps = state.get("assignment"), int(state.get("steps", 0))
