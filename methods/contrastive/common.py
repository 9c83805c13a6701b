"""Shared parts of the contrastive two-stage methods KCL, TSC and SBCL (docs/methods.md §6–§8).

Stage 1 ("contrastive") trains backbone + projection MLP on two supcon views per image with a supervised
contrastive loss from :mod:`ltbench.losses.contrastive`; the methods differ only in their masks and extra terms.
Stage 2 ("classifier") trains a head on the frozen backbone (BN in eval mode, checked bit-identical by the
trainer): a cosine head with the LDAM loss and class-balanced weights from epoch 0 (CIFAR), or a linear
head with CE and class-balanced sampling (ImageNet-LT). The head is built with the model and receives no
gradient in stage 1 (the contrastive step never calls it), so stage 2 starts from a fresh head without
re-initialising it (a re-initialisation would draw from an RNG state that differs after a resume).

Optional MoCo variant (official KCL/TSC on ImageNet-LT, §6): ``queue_size`` > 0 contrasts queries (view 1)
with keys (view 2) and a labelled FIFO queue; ``momentum`` > 0 computes the keys with a momentum (EMA) copy
of the encoder, ``momentum`` = 0 with the encoder itself (keys detached).
"""

from __future__ import annotations

from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from ltbench.data.transforms import KORNIA_SYNCS
from ltbench.distributed.gather import gather_rows, gather_views
from ltbench.losses import LDAMLoss, class_balanced_weights
from ltbench.losses.contrastive import kcl_masks, kcl_queue_masks
from ltbench.method import HP, Method, Stage
from ltbench.methods.contrastive.model import ContrastiveModel
from ltbench.models.heads import CosineHead, ProjectionMLP, new_linear

# Stage 1, CIFAR recipe of TSC's supplementary, applied identically to KCL and TSC (docs/methods.md §6).
STAGE1_HP: dict[str, HP] = {
    "epochs": HP(1000, "TSC supp.: 1000 contrastive epochs on CIFAR (§6)", epoch=True),
    "batch_size": HP(1024, "TSC supp.: batch 1024 (§6)", range=("choice", (256, 512, 1024))),
    "lr": HP(0.5, "TSC supp.: SGD lr 0.5, cosine (§6)", range=("log", 0.05, 1.0)),
    "weight_decay": HP(1e-4, "SupContrast/TSC code default wd 1e-4 (§6)"),
    "warmup_epochs": HP(10, "SupContrast code: 10-epoch per-iteration warm-up for batch > 256 (§6)", epoch=True),
    "warmup_from": HP(0.01, "SupContrast code: the warm-up starts at lr 0.01 (absolute, §6)"),
    # SupContrast code: cosine floor eta_min = lr * 0.1**3; §6 states no floor for KCL/TSC
    "final_lr_factor": HP(1e-3, "PROPOSAL: SupContrast code's cosine floor lr·1e-3 (§6 states none)"),
    "temperature": HP(0.07, "KCL/TSC code: τ = 0.07 (§6)", range=("log", 0.03, 0.5)),
    "proj_hidden": HP(0, "§6: MLP hidden width = backbone width (0 = that)"),
    "proj_dim": HP(128, "§6: 128-d embedding"),
}
# Stage 2, CIFAR: LDAM + class re-weighting on frozen features (TSC supp.), §6.3/§8. Two lr schedules: the
# TSC supplementary's (Appendix A: lr 0.1, ×0.1 at epochs 140, 180 and 190 — the runs behind the published
# KCL/TSC CIFAR numbers; no warm-up is stated) and SBCL's code (5-epoch warm-up, ×0.1 at 140, ×0.01 at 180).
FT_SCHEDULES = ("tsc_supp", "sbcl_code")
STAGE2_HP: dict[str, HP] = {
    "stage2": HP(
        "ldam", "§6: 'ldam' (CIFAR) or 'ce_cb' = CE + class-balanced sampler (ImageNet-LT)", choices=("ldam", "ce_cb")
    ),
    "ft_schedule": HP(
        "tsc_supp",
        "TSC supp. Appendix A (KCL/TSC CIFAR numbers): ×0.1 at ft_drop_1/2/3, no warm-up; 'sbcl_code': SBCL code "
        "(ft_warmup_epochs, ×0.1 at ft_drop_1, ×0.01 at ft_drop_2) (§6.3)",
        choices=FT_SCHEDULES,
    ),
    "ft_epochs": HP(200, "TSC supp. / SBCL code: 200 classifier epochs (§6, §8)", epoch="ft_epochs"),
    "ft_batch_size": HP(128, "TSC supp.: batch 128 (§6)"),
    "ft_lr": HP(0.1, "TSC supp.: lr 0.1 (§6)", range=("log", 0.01, 1.0)),
    "ft_weight_decay": HP(0.0, "SBCL code: wd 0 for the linear stage (§8)"),
    "ft_warmup_epochs": HP(5, "SBCL code: 5-epoch warm-up (§8); sbcl_code only", epoch="ft_epochs"),
    "ft_drop_1": HP(140, "TSC supp. / SBCL code: lr ×0.1 from epoch 140 (§6.3, §8)", epoch="ft_epochs"),
    "ft_drop_2": HP(180, "TSC supp. / SBCL code: lr ×0.01 from epoch 180 (§6.3, §8)", epoch="ft_epochs"),
    "ft_drop_3": HP(190, "TSC supp.: lr ×0.001 from epoch 190; tsc_supp only, 0 = none (§6.3)", epoch="ft_epochs"),
    "beta": HP(0.9999, "§6/§8: class-balanced weights β = 0.9999 from epoch 0"),
    "max_margin": HP(0.5, "LDAM: Δ_max = 0.5 (§3, §6)"),
    "scale": HP(30.0, "LDAM: s = 30 (§3, §6)"),
}
QUEUE_HP: dict[str, HP] = {
    "queue_size": HP(0, "§6: 0 = in-batch (CIFAR); official KCL ImageNet-LT: 65,536 labelled keys"),
    "momentum": HP(0.0, "§6: key-encoder momentum (official 0.999); 0 = keys from the encoder itself"),
}
# ImageNet-LT recipe (§6/§7): MoCo-style queue, CE + class-balanced sampling in stage 2
IMAGENET_PRESET = {
    "backbone": "resnet50",
    "epochs": 200,
    "batch_size": 256,
    "lr": 0.1,
    "weight_decay": 5e-4,
    "warmup_epochs": 0,
    "queue_size": 65536,
    "momentum": 0.999,
    "stage2": "ce_cb",
    "ft_epochs": 40,
    "ft_batch_size": 2048,
    "ft_lr": 10.0,
    "ft_warmup_epochs": 0,
    "ft_drop_1": 20,
    "ft_drop_2": 30,
    "ft_drop_3": 0,  # TSC supp.: ImageNet-LT drops only at 20 and 30
}


def classifier_schedule(hp: dict) -> tuple[float, tuple[tuple[float, float], ...]]:
    """(warm-up epochs, step milestones) of stage 2 under ``ft_schedule`` (docs/methods.md §6.3).

    ``tsc_supp``: ×0.1 at each of ft_drop_1, ft_drop_2, ft_drop_3 (0 = no third drop), no warm-up — what the TSC
    supplementary states for the runs behind the KCL/TSC numbers. ``sbcl_code``: SBCL's code, a warm-up of
    ``ft_warmup_epochs`` and ×0.1 / ×0.01 at ft_drop_1 / ft_drop_2. A run recorded before the choice existed has
    no ``ft_schedule``: it ran ``sbcl_code``.
    """
    if hp.get("ft_schedule", "sbcl_code") == "sbcl_code":
        return hp["ft_warmup_epochs"], ((hp["ft_drop_1"], 0.1), (hp["ft_drop_2"], 0.01))
    drops = [hp["ft_drop_1"], hp["ft_drop_2"]] + ([hp["ft_drop_3"]] if hp["ft_drop_3"] > 0 else [])
    return 0, tuple((d, 0.1 ** (i + 1)) for i, d in enumerate(drops))


class ContrastiveTwoStage(Method):
    """Base of KCL/TSC/SBCL: the two stages, the model, stage 2's loss and the KCL contrast set."""

    hparams = {**STAGE1_HP, **STAGE2_HP}
    presets = {"imagenet_lt": IMAGENET_PRESET}
    step_syncs = dict(KORNIA_SYNCS)  # the supcon views
    queue_subclasses = False  # SBCL's queue also keeps each key's subclass

    def __init__(self, hp, info) -> None:
        super().__init__(hp, info)
        self.ldam = LDAMLoss(
            self.counts,
            max_margin=hp["max_margin"],
            s=hp["scale"],
            weight=class_balanced_weights(self.counts, hp["beta"]),
        )

    def build_model(self, backbone, num_classes, class_counts):
        width = backbone.feature_dim
        proj = ProjectionMLP(width, self.hp["proj_hidden"] or width, self.hp["proj_dim"])
        head = CosineHead(width, num_classes) if self.hp["stage2"] == "ldam" else new_linear(width, num_classes)
        # a queue and key encoder only for a method whose loss reads them (it declares QUEUE_HP: KCL, TSC)
        queue = "queue_size" in self.hparams
        size, momentum = (self.hp.get("queue_size", 0), self.hp.get("momentum", 0.0)) if queue else (0, 0.0)
        return ContrastiveModel(backbone, head, proj, size, momentum, self.queue_subclasses)

    def stages(self) -> list[Stage]:
        hp = self.hp
        pre = Stage(
            name="contrastive",
            epochs=hp["epochs"],
            lr=hp["lr"],
            batch_size=hp["batch_size"],
            weight_decay=hp["weight_decay"],
            schedule="cosine",
            warmup_epochs=hp["warmup_epochs"],
            warmup_per_iter=True,
            warmup_start=min(1.0, hp["warmup_from"] / hp["lr"]),  # Stage wants a factor of lr
            final_lr_factor=hp["final_lr_factor"],
            views=2,
            transform="supcon",
            evaluate=False,  # no classifier yet
        )
        warmup, milestones = classifier_schedule(hp)
        ft = Stage(
            name="classifier",
            epochs=hp["ft_epochs"],
            lr=hp["ft_lr"],
            batch_size=hp["ft_batch_size"],
            weight_decay=hp["ft_weight_decay"],
            schedule="step",
            warmup_epochs=warmup,
            milestones=milestones,
            sampler="instance" if hp["stage2"] == "ldam" else "class_balanced",
            trainable="head",
            transform="standard",
        )
        return [pre, ft]

    def stage_key(self, index: int) -> dict:
        """Stage 1 reads no stage-2 hparam: runs differing only in their classifier stage share it (``--from``)."""
        if index == 0:
            return {"method": self.name, "hp": {k: v for k, v in self.hp.items() if k not in STAGE2_HP}}
        return super().stage_key(index)

    def training_step(self, model, batch, stage, epoch) -> dict:
        if stage.name == "contrastive":
            return self.contrastive_step(model, batch, epoch)
        out = model(batch["x"])
        if self.hp["stage2"] == "ldam":
            return {"loss": self.ldam(out, batch["y"])}
        return {"loss": F.cross_entropy(out, batch["y"])}

    def predict(self, model, x):
        """Stage 2's test-time logits: s·cos for the LDAM cosine head (the softmax its loss trains)."""
        out = model(x)
        return self.ldam.logits(out) if self.hp["stage2"] == "ldam" else out

    @abstractmethod
    def contrastive_step(self, model: ContrastiveModel, batch: dict, epoch: int) -> dict:
        """The stage-1 loss: each of KCL, TSC and SBCL defines its own."""

    # KCL contrast sets (KCL, TSC)
    @property
    def queue_positives(self) -> str:
        """How the k queue positives are chosen: KCL's ``positives`` hparam; TSC samples them uniformly."""
        return self.hp.get("positives", "random")

    def kcl_contrast(self, model: ContrastiveModel, batch: dict) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(anchors, their labels, contrast set, P mask, A mask) of KCL, in-batch or with the queue (§6).

        Several processes (ltbench/distributed/): in-batch, the views of the whole global batch are gathered, so the
        anchors, contrast set and masks are those of one process with the global batch; with the queue, the anchors
        stay local (their per-anchor losses need only the keys and the queue) and the queue takes every rank's
        keys, as MoCo's ``concat_all_gather``."""
        v1, v2 = batch["x"]
        y, k = batch["y"], self.hp["k"]
        if model.queue is None:  # SimCLR-style: all 2B views are anchors and contrast candidates
            z = gather_views(model.embed(torch.cat([v1, v2])), 2)
            y = gather_rows(y)
            pos, den = kcl_masks(y, k)
            return z, y.repeat(2), z, pos, den
        q, keys = self.queries_and_keys(model, v1, v2)
        pos, den = kcl_queue_masks(y, model.queue.labels, k, positives=self.queue_positives)
        contrast = torch.cat([keys, model.queue.keys.to(keys.dtype)])  # a copy: enqueue below is safe
        model.queue.enqueue(gather_rows(keys), gather_rows(y))
        return q, y, contrast, pos, den

    def queries_and_keys(self, model: ContrastiveModel, v1: Tensor, v2: Tensor) -> tuple[Tensor, Tensor]:
        """MoCo: queries from view 1 (with gradient), keys from view 2 by the momentum encoder after its EMA update,
        or by the encoder itself (detached) when ``momentum`` = 0."""
        if model.key_encoder is None:
            q, keys = model.embed(torch.cat([v1, v2])).chunk(2)
            return q, keys.detach()
        model.momentum_update(self.hp["momentum"])
        q = model.embed(v1)
        with torch.no_grad():
            keys = model.key_encoder(v2)
        return q, keys

    def on_stage_start(self, stage, model, ctx) -> None:
        """Stage 2's LDAM buffers go to the device once; pre-fill an empty queue with keys of random un-augmented
        training images (official KCL, §6)."""
        self.ldam.to(ctx.device)
        queue = getattr(model, "queue", None)
        if stage.name != "contrastive" or queue is None or queue.filled > 0:
            return  # a resumed queue is restored from the checkpoint
        n = min(queue.size, len(ctx.train_y))
        idx = torch.randperm(len(ctx.train_y), device=ctx.device)[:n]
        encoder = model.key_encoder if model.key_encoder is not None else model.embed
        keys = ctx.infer(model, lambda m, x: encoder(x), images=ctx.train_x[idx])
        queue.enqueue(keys, ctx.train_y[idx])
