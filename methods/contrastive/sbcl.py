"""SBCL — Subclass-Balancing Contrastive Learning (Hou et al., ICCV 2023; docs/methods.md §8).

Every head class is split by k-means into sub-clusters about the size of a tail class; the loss contrasts
at the subclass level (instance- and subclass-balanced) plus a class term, at class-wise temperatures, that
keeps subclasses of one class closer to each other than to other classes. After a SupCon warm-up the
clusters and temperatures are recomputed every ``step`` epochs from the un-augmented training images.
Stage 2 as KCL/TSC: LDAM with class-balanced weights from epoch 0 on the frozen encoder.

Two released forms. In-batch (``queue_size`` = 0, the CIFAR release SimCLR/): SupCon warm-up, then
:func:`sbcl_loss` over the 2B views. MoCo queue (``queue_size`` > 0, the ImageNet-LT release moco/, the
``imagenet_lt`` preset): queries against their own momentum key and a queue of keys that remembers each key's
class and subclass; a KCL warm-up (k queue positives) for the first half, then :func:`sbcl_queue_loss`, with
the optimizer rebuilt and the cosine schedule restarted at the switch, as moco/main.py does.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ltbench.distributed.gather import gather_rows, gather_views
from ltbench.losses.contrastive import (
    contrastive_loss,
    kcl_queue_masks,
    sbcl_loss,
    sbcl_queue_loss,
    sbcl_queue_masks,
    supcon_masks,
)
from ltbench.method import HP
from ltbench.methods.contrastive.common import FT_SCHEDULES, IMAGENET_PRESET, QUEUE_HP, ContrastiveTwoStage
from ltbench.registry import METHODS

SBCL_HP = {
    "temperature": HP(0.1, "SBCL code: τ = 0.1 (§8)", range=("log", 0.05, 0.5)),
    "base_temperature": HP(0.07, "SBCL code: τ_b = 0.07 (§8)"),
    "gamma": HP(0.25, "SBCL code: class-term weight γ = 0.25 (§8)", range=("uniform", 0.05, 1.0)),
    "cluster_size": HP(10, "SBCL code: L = 10 CIFAR (20 ImageNet-LT); M = max(n_min, L) (§8)"),
    "supcon_epochs": HP(10, "SBCL code: 10 SupCon epochs before the first clustering (§8)", epoch=True),
    # SBCL code SimCLR/main.py builds the warm-up loss as SupConLoss(temperature=0.1), whose base_temperature
    # defaults to 0.1 (SimCLR/loss.py): τ/τ_b = 1. 'tau_ratio' scales it by τ/τ_b = 0.1/0.07 ≈ 1.43 like the
    # subclass term (ltbench's earlier choice, so the loss does not jump when clustering starts).
    "warmup_scale": HP(
        "code",
        "SBCL code SimCLR/loss.py: warm-up SupCon ×1 (τ_b = τ = 0.1); 'tau_ratio' = ×τ/τ_b ≈ 1.43 (§8)",
        choices=("code", "tau_ratio"),
    ),
    "step": HP(10, "SBCL code: re-cluster every 10 epochs on CIFAR (5 on ImageNet-LT) (§8)", epoch=True),
    "kmeans_iters": HP(35, "SBCL code: k-means ≤ 35 iterations (§8)"),
    "kmeans_tol": HP(1e-3, "SBCL code: k-means tolerance 1e-3 (§8)"),
    "final_lr_factor": HP(1e-4, "SBCL code: cosine to lr·1e-4 (§8)"),
    # the MoCo-queue form only (queue_size > 0): moco/main.py and moco/loss.py
    "k": HP(6, "SBCL code moco/main.py: KCL(k=6) warm-up, k random same-class queue positives (queue form, §8)"),
    "rank_temperature": HP(
        0.12, "SBCL code moco/loss.py SupConLoss_rank: ranking_temperature = 0.12 of the class term (queue form, §8)"
    ),
    # SBCL's numbers came from its own code's classifier schedule; 'tsc_supp' stays selectable (§6.3)
    "ft_schedule": HP(
        "sbcl_code",
        "SBCL code: 5-epoch warm-up, ×0.1 at 140, ×0.01 at 180 (§8); 'tsc_supp' = TSC supp. (§6.3)",
        choices=FT_SCHEDULES,
    ),
}


def subclass_counts(class_counts: list[int], cluster_size: int) -> list[int]:
    """K_c = max(1, ⌊n_c / M⌋) with M = max(n_min, L) (SBCL code, §8): subclasses about a tail class's size."""
    m = max(min(class_counts), cluster_size)
    return [max(1, n // m) for n in class_counts]


def _padded_by_class(z: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(points C × n_max × d zero-padded, valid C × n_max, class of each sorted point, slot of it)."""
    counts = torch.bincount(labels, minlength=num_classes)
    order = torch.argsort(labels, stable=True)
    cls = labels[order]
    slot = torch.arange(len(labels), device=z.device) - (torch.cumsum(counts, 0) - counts)[cls]
    points = z.new_zeros(num_classes, int(counts.max()), z.shape[1])
    valid = torch.zeros(points.shape[:2], dtype=torch.bool, device=z.device)
    points[cls, slot], valid[cls, slot] = z[order], True
    return points, valid, order, slot


@torch.no_grad()
def per_class_kmeans(
    z: Tensor,
    labels: Tensor,
    ks: list[int],
    iters: int = 35,
    tol: float = 1e-3,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Cosine (spherical) k-means with K_c centres inside every class c, all classes at once (§8).

    Classes are padded to one (C × n_max × d) tensor, so each iteration is a batched matmul plus a
    one-hot batched matmul for the new centres, with no Python loop over classes or points. Centres start
    at K_c distinct random points of their class; an empty cluster keeps its centre. Stops after ``iters``
    iterations or when every class's total centre shift Σ_k ‖c_k − c_k'‖ is below ``tol``. Returns a
    global subclass id per point: Σ_{c' < c} K_c' + local cluster index.
    """
    z = F.normalize(z.float(), dim=1)
    num_classes, dev = len(ks), z.device
    points, valid, order, slot = _padded_by_class(z, labels, num_classes)
    k_t = torch.as_tensor(ks, device=dev)
    k_max = int(k_t.max())
    scores = torch.rand(valid.shape, generator=generator, device=dev if generator is None else generator.device)
    init = scores.to(dev).masked_fill(~valid, -1.0).topk(k_max, dim=1).indices  # K_c ≤ n_c distinct points
    centres = points.gather(1, init[..., None].expand(-1, -1, z.shape[1]))
    live = torch.arange(k_max, device=dev)[None, :] < k_t[:, None]  # centres k >= K_c do not exist

    def assign(c: Tensor) -> Tensor:
        return torch.bmm(points, c.transpose(1, 2)).masked_fill(~live[:, None, :], -math.inf).argmax(2)

    for _ in range(iters):
        onehot = F.one_hot(assign(centres), k_max).float() * valid[..., None]
        sums, sizes = torch.bmm(onehot.transpose(1, 2), points), onehot.sum(1)
        moved = torch.where((sizes > 0)[..., None], F.normalize(sums, dim=2), centres)
        shift = float((moved - centres).norm(dim=2).sum(1).max())
        centres = moved
        if shift < tol:
            break
    local = assign(centres)[labels[order], slot]
    out = torch.empty_like(labels)
    out[order] = (torch.cumsum(k_t, 0) - k_t)[labels[order]] + local
    return out


@torch.no_grad()
def class_temperatures(z: Tensor, labels: Tensor, ks: list[int], temperature: float) -> Tensor:
    """τ_c = τ·density_c / mean(density), density_c = mean‖ẑ − μ_c‖ / log(n_c + 10), clipped to its
    [20th, 80th] percentile over classes; classes with one subclass keep τ (SBCL code, §8). Dense (compact)
    classes get a lower temperature, so their class term is sharper."""
    num_classes = len(ks)
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1).float()
    mu = torch.zeros(num_classes, z.shape[1], device=z.device).index_add_(0, labels, z.float()) / counts[:, None]
    spread = torch.zeros(num_classes, device=z.device).index_add_(0, labels, (z.float() - mu[labels]).norm(dim=1))
    density = spread / counts / torch.log(counts + 10)
    density = density.clamp(torch.quantile(density, 0.2), torch.quantile(density, 0.8))  # §8: 20–80th pct
    tau = temperature * density / density.mean()
    return torch.where(torch.as_tensor(ks, device=z.device) > 1, tau, torch.full_like(tau, temperature))


QUEUE_FORM_HP = ("k", "rank_temperature", *QUEUE_HP)  # read only when queue_size > 0


@METHODS.register("sbcl")
class SBCL(ContrastiveTwoStage):
    """Subclass-balancing contrastive pre-training (periodic per-class k-means), then LDAM on frozen features."""

    display_name = "SBCL"

    paper = "Hou et al., Subclass-balancing Contrastive Learning for Long-tailed Recognition, ICCV 2023"
    hparams = {**ContrastiveTwoStage.hparams, **SBCL_HP, **QUEUE_HP}
    queue_subclasses = True
    # ImageNet-LT: the release's moco/main.py + moco/loss.py (§8.5): the MoCo queue form, 400 epochs (200 KCL
    # warm-up + 200 SBCL, the cosine restarted with a new optimizer at 200), stage 2 as KCL/TSC's ImageNet-LT.
    presets = {
        "imagenet_lt": {
            **IMAGENET_PRESET,  # resnet50, batch 256, lr 0.1, queue 65,536, momentum 0.999 (moco/main.py defaults)
            "epochs": 400,  # moco/main.py --epochs 400
            "weight_decay": 1e-4,  # moco/main.py --wd 1e-4
            "cluster_size": 20,  # moco/main.py --cluster 20
            "step": 5,  # moco/main.py --step 5 (re-cluster every 5 epochs)
            "temperature": 0.07,  # moco/main.py --moco-t 0.07 (both terms' softmax over [own key; queue])
            "gamma": 0.2,  # moco/loss.py SupConLoss_rank grama = 0.2
            "supcon_epochs": 200,  # moco/main.py: pretrain_epochs = epochs // 2 (the KCL warm-up)
            "final_lr_factor": 0.0,  # moco/main.py adjust_learning_rate: cosine down to 0
        }
    }

    def __init__(self, hp, info) -> None:
        super().__init__(hp, info)
        self.ks = subclass_counts(self.counts, hp["cluster_size"])
        self.subclasses: Tensor | None = None  # global subclass id per training image
        self.class_tau: Tensor | None = None

    @property
    def queue_form(self) -> bool:
        """The MoCo-queue form of the ImageNet-LT release (``queue_size`` > 0) rather than the in-batch CIFAR form."""
        return self.hp.get("queue_size", 0) > 0  # a run recorded before the queue form has no queue_size

    def stages(self):
        """The queue form rebuilds its optimizer and restarts the cosine at the warm-up's end (moco/main.py)."""
        pre, ft = super().stages()
        if self.queue_form and 0 < self.hp["supcon_epochs"] < pre.epochs:
            pre = dataclasses.replace(pre, restarts=(self.hp["supcon_epochs"],))
        return [pre, ft]

    @property
    def warmup_factor(self) -> float:
        """The warm-up SupCon loss's factor: 1 as released, or τ/τ_b (``warmup_scale``, §8)."""
        hp = self.hp
        return 1.0 if hp["warmup_scale"] == "code" else hp["temperature"] / hp["base_temperature"]

    def on_stage_start(self, stage, model, ctx) -> None:
        queue = model.queue
        if stage.name == "contrastive" and queue is not None and queue.filled == 0:
            # moco/moco.py: the queue starts as random unit keys of class and subclass −1 (negatives only); a
            # resumed queue comes from the checkpoint
            keys = torch.randn(queue.size, queue.keys.shape[1], generator=ctx.generator, device=ctx.generator.device)
            none = torch.full((queue.size,), -1, dtype=torch.long)
            queue.enqueue(keys, none, none)
        super().on_stage_start(stage, model, ctx)
        if stage.name != "contrastive":
            return
        if self.queue_form:  # moco/main.py: KCL with k random queue positives
            ctx.record("sbcl_form", "moco_queue")
            ctx.record("sbcl_warmup", {"loss": "kcl_queue", "k": self.hp["k"]})
        else:  # SimCLR/main.py: SupCon
            ctx.record("sbcl_form", "in_batch")
            ctx.record("sbcl_warmup", {"scale": self.hp["warmup_scale"], "factor": self.warmup_factor})

    def on_epoch_start(self, stage, epoch, model, ctx) -> None:
        start, step = self.hp["supcon_epochs"], max(1, self.hp["step"])
        if stage.name != "contrastive" or epoch < start or (epoch - start) % step != 0:
            return
        # eval mode, un-augmented images (§8 PROPOSAL); the queue form clusters the key encoder's features, as
        # moco/main.py cluster() does (model(im_q=...) without keys returns encoder_k's)
        encoder = model.key_encoder if self.queue_form and model.key_encoder is not None else model.embed
        z = ctx.infer(model, lambda m, x: encoder(x))
        hp = self.hp
        self.subclasses = per_class_kmeans(z, ctx.train_y, self.ks, hp["kmeans_iters"], hp["kmeans_tol"], ctx.generator)
        ctx.record("sbcl_subclasses_per_class", self.ks)
        used = float(torch.unique(self.subclasses).numel())
        if self.queue_form:  # moco/loss.py has no class-wise temperatures
            ctx.log(subclasses=used)
            return
        self.class_tau = class_temperatures(z, ctx.train_y, self.ks, hp["temperature"])
        ctx.log(subclasses=used, tau_min=float(self.class_tau.min()), tau_max=float(self.class_tau.max()))

    def contrastive_step(self, model, batch, epoch) -> dict:
        if self.queue_form:
            return self.queue_step(model, batch, epoch)
        v1, v2 = batch["x"]
        z = gather_views(model.embed(torch.cat([v1, v2])), 2)  # the global batch (ltbench/distributed/gather.py)
        y, hp = gather_rows(batch["y"]), self.hp
        if self.subclasses is None or epoch < hp["supcon_epochs"]:  # SupCon warm-up at τ, scaled per warmup_scale
            loss = contrastive_loss(z, z, *supcon_masks(y), hp["temperature"])
            return {"loss": self.warmup_factor * loss}
        sub = self.subclasses[gather_rows(batch["index"])]
        loss = sbcl_loss(z, y, sub, self.class_tau, hp["temperature"], hp["base_temperature"], hp["gamma"])
        return {"loss": loss}

    def stage_key(self, index: int) -> dict:
        """The in-batch form reads none of the queue form's hparams: they stay out of its key, so SBCL runs
        recorded before the queue form existed still serve ``--from``."""
        key = super().stage_key(index)
        if not self.queue_form:
            key = {**key, "hp": {k: v for k, v in key["hp"].items() if k not in QUEUE_FORM_HP}}
        return key

    def queue_step(self, model, batch, epoch) -> dict:
        """The ImageNet-LT release's step: queries against [own key; queue], KCL then SBCL (moco/main.py train())."""
        hp, queue, y = self.hp, model.queue, batch["y"]
        q, keys = self.queries_and_keys(model, *batch["x"])
        contrast = torch.cat([keys, queue.keys.to(keys.dtype)])  # a new tensor: the enqueue below is safe
        if self.subclasses is None or epoch < hp["supcon_epochs"]:  # moco/loss.py KCL, k random queue positives
            sub = torch.full_like(y, -1)  # moco/imagenet_lt_loader.py: no subclass before the first clustering
            pos, den = kcl_queue_masks(y, queue.labels, hp["k"], positives="random")
            loss = contrastive_loss(q, contrast, pos, den, hp["temperature"])
        else:
            sub = self.subclasses[batch["index"]]
            masks = sbcl_queue_masks(y, sub, queue.labels, queue.subclasses)
            loss = sbcl_queue_loss(q, contrast, masks, hp["temperature"], hp["rank_temperature"], hp["gamma"])
        queue.enqueue(gather_rows(keys), gather_rows(y), gather_rows(sub))  # every rank's keys (concat_all_gather)
        return {"loss": loss}

    def state_dict(self) -> dict:
        return {"subclasses": self.subclasses, "class_tau": self.class_tau}

    def load_state_dict(self, state) -> None:
        self.subclasses, self.class_tau = state.get("subclasses"), state.get("class_tau")
