"""DisA (Gao, Zhao, Guo, Zha, ICML 2024): distribution alignment toward a simplex ETF by optimal transport
(docs/methods.md §15; official code: JintongGao/DisA, cifar_train.py, sinkhorn.py, models/resnet_cifar_ot.py).

On top of CE-DRW with mixup on every batch, the normalised, batch-normalised features ĥ of the mixed batch are
transported onto the C vertices m_c of a fixed random simplex ETF (cost 1 − cos(ĥ_i, m_c), uniform marginals,
entropic OT with ε = 1, the release's log-domain Sinkhorn with its loose stop rule); the transport cost
Σ π_ic G_ic, weighted by λ = 0.1, is added to the loss and differentiated through the Sinkhorn iterations. No
labels enter the alignment term.

Variants (``variant``): ``learned_head`` (default, the abstract's "learning classifier") trains the linear
classifier with the backbone; ``code`` reproduces the release, whose optimiser is given the backbone only, so
the classifier stays at its random initialisation; ``fixed_etf_head`` (PROPOSAL) makes the ETF itself the
classifier, logits ĥ·M/τ, with no linear layer. In all three the ETF module's BatchNorm keeps its initial affine
parameters (1, 0), as in the release. CIFAR-100 uses ResNet-32 at base width 32 (``resnet32_w2``): the ETF needs
feature dimension d >= C.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltbench.errors import ConfigError
from ltbench.losses import class_balanced_weights
from ltbench.method import HP, DataInfo, Method, Stage
from ltbench.methods.mixing import StepDraws, epoch_rng, steps_bound
from ltbench.ot import disa_sinkhorn
from ltbench.registry import METHODS
from ltbench.train.context import Context
from ltbench.train.recipes import large_scale_presets, schedule_hp, scheduled, sgd_hparams, sgd_stage

SRC = "DisA release cifar_train.py (docs/methods.md §15.2)"


def simplex_etf(dim: int, num_classes: int, generator: torch.Generator | None = None) -> Tensor:
    """M = √(C/(C−1))·P·(I − 11ᵀ/C), P the orthonormal Q factor of a U[0,1) d×C matrix (models/resnet_cifar_ot.py
    L155-178): unit columns with pairwise inner products −1/(C−1), summing to zero. Needs d >= C."""
    if dim < num_classes:
        raise ConfigError(
            f"disa: a simplex ETF of {num_classes} vertices needs feature dimension >= {num_classes}, the backbone "
            f"gives {dim}; use a wider backbone (CIFAR-100: --backbone resnet32_w2, 128-d, as the release does) "
            f"or a neck (--set neck_dim=N, N >= {num_classes})"
        )
    p, _ = torch.linalg.qr(torch.rand(dim, num_classes, generator=generator, dtype=torch.float64))
    centre = torch.eye(num_classes, dtype=torch.float64) - 1.0 / num_classes
    return (math.sqrt(num_classes / (num_classes - 1)) * p @ centre).float()


def disa_loss(features: Tensor, etf: Tensor, eps: float = 1.0, max_iter: int = 200, thresh: float = 0.1) -> Tensor:
    """Σ_ic π_ic·G_ic with G = 1 − ĥ·M for unit rows ĥ and the ETF's columns, π the release's Sinkhorn plan
    (uniform marginals, no labels; §15.1 step 3). Differentiable through every Sinkhorn iteration."""
    cost = 1.0 - features.float() @ etf.float()
    plan, _ = disa_sinkhorn(cost, eps=eps, max_iter=max_iter, thresh=thresh)
    return (plan * cost).sum()


class DisAModel(nn.Module):
    """Backbone (→ optional neck) → linear classifier (the logits), plus the ETF module on the same features:
    BatchNorm1d, L2 normalisation, and the fixed ETF buffer (stored with the weights, so a resumed run aligns to
    the same M).

    ``neck_dim`` > 0 puts Linear(d, neck_dim) + BatchNorm1d between the backbone and both heads, so that a
    backbone narrower than the class count (ResNet-50's 2048-d on iNat's 8,142 classes) can still carry an exact
    C-vertex ETF (PROPOSAL §15.5). ``etf_tau`` > 0 replaces the linear classifier by the fixed ETF itself, logits
    ĥ·M/τ (the ``fixed_etf_head`` variant, PROPOSAL §15.5); no linear layer is built then."""

    etf: Tensor

    def __init__(self, backbone: nn.Module, num_classes: int, neck_dim: int = 0, etf_tau: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        dim = neck_dim or backbone.feature_dim
        self.neck = nn.Sequential(nn.Linear(backbone.feature_dim, dim), nn.BatchNorm1d(dim)) if neck_dim else None
        self.etf_tau = etf_tau
        self.head = None if etf_tau else nn.Linear(dim, num_classes)
        if self.head is not None:
            nn.init.kaiming_normal_(self.head.weight)  # the release's _weights_init; default bias init
        self.etf_bn = nn.BatchNorm1d(dim)
        self.etf_bn.requires_grad_(False)  # never given to the release's optimiser: affine stays (1, 0)
        self.register_buffer("etf", simplex_etf(dim, num_classes))  # drawn after the head, as before (same runs)

    def forward(self, x: Tensor) -> Tensor:
        return self.logits(self.features(x))

    def features(self, x: Tensor) -> Tensor:
        """h: the backbone's pooled features, through the neck when there is one (what both heads read)."""
        h = self.backbone(x)
        return h if self.neck is None else self.neck(h)

    def logits(self, h: Tensor) -> Tensor:
        """The classifier on h: the linear head, or ĥ·M/τ when the ETF is the classifier."""
        return self.head(h) if self.head is not None else self.aligned(h) @ self.etf / self.etf_tau

    def aligned(self, h: Tensor) -> Tensor:
        """ĥ = normalise(BN(h)): the features the ETF alignment sees."""
        return F.normalize(self.etf_bn(h.float()), dim=1)


@METHODS.register("disa")
class DisA(Method):
    """CE-DRW + mixup + an OT alignment of normalised features to a fixed simplex ETF (λ = 0.1)."""

    display_name = "DisA"
    paper = "Gao, Zhao, Guo, Zha — Distribution Alignment Optimization through Neural Collapse for LT, ICML 2024"
    default_backbone = {"cifar100_lt": "resnet32_w2", "*": "resnet32"}
    step_syncs = {"disa_sinkhorn": "the release's Sinkhorn stops on the host-read change of u (sinkhorn.py)"}
    hparams = {
        **sgd_hparams(SRC, 200),
        "warmup_epochs": HP(5, "DisA: lr·e/5 for 1-based e <= 5 (§15.2)", epoch=True),
        "lr_drop_1": HP(160, "DisA: lr x0.1 for 1-based epochs 161-180 (§15.2)", epoch=True),
        "lr_drop_2": HP(180, "DisA: lr x0.01 after 1-based epoch 180 (§15.2)", epoch=True),
        "drw_epoch": HP(160, "CE-DRW: class-balanced weights from 0-based epoch 160 (§15.2)", epoch=True),
        "beta": HP(0.9999, "CE-DRW effective-number β (§15.2)"),
        "disa_weight": HP(0.1, "λ_DisA (--lamda, §15.2)", range=("log", 0.01, 1.0)),
        "eps": HP(1.0, "Sinkhorn ε (sinkhorn.py, §15.2)"),
        "sinkhorn_iters": HP(200, "Sinkhorn iteration cap (sinkhorn.py, §15.2)"),
        "sinkhorn_thresh": HP(0.1, "Sinkhorn stop threshold on the change of u (sinkhorn.py, §15.2)"),
        "mixup_alpha": HP(1.0, "mixup λ ~ Beta(1, 1) on every batch (cifar_train.py, §15.1 step 1)"),
        "schedule": schedule_hp("DisA (§15.2)"),
        "neck_dim": HP(0, "PROPOSAL §15.5: 0 = none; Linear(d, n) + BN before both heads when d < C (iNat: 8192)"),
        "etf_tau": HP(0.1, "PROPOSAL §15.5 (no source; the paper's definition is unknown, §15.4): fixed_etf_head "
                      "logits ĥ·M/τ, s = 1/τ = 10"),
        "variant": HP("learned_head", "PROPOSAL §15.5: learned_head; code = classifier frozen at init (release); "
                      "fixed_etf_head = the ETF is the classifier (ĥ·M/τ)",
                      choices=("learned_head", "code", "fixed_etf_head")),
    }  # fmt: skip
    # ImageNet-LT / iNat (PROPOSAL §15.5; only CIFAR code is released): classifier-balancing's large-scale recipe,
    # DRW for the last third, mixup and λ_DisA as on CIFAR; iNat's 8,142 classes need the 8192-d neck.
    presets = large_scale_presets(hparams, imagenet_lt={"drw_epoch": 60}, inat2018={"drw_epoch": 60, "neck_dim": 8192})

    def __init__(self, hp: dict[str, Any], info: DataInfo) -> None:
        super().__init__(hp, info)
        self.criterion = nn.CrossEntropyLoss()
        self.draws = StepDraws()

    def build_model(self, backbone: nn.Module, num_classes: int, class_counts: list[int]) -> nn.Module:
        hp = self.hp
        etf_tau = hp["etf_tau"] if hp["variant"] == "fixed_etf_head" else 0.0
        model = DisAModel(backbone, num_classes, hp["neck_dim"], etf_tau)
        if hp["variant"] == "code":
            model.head.requires_grad_(False)  # the release's SGD gets model.parameters() only (§15.1 caveat)
        return model

    def stages(self) -> list[Stage]:
        hp = self.hp
        milestones = ((hp["lr_drop_1"], 0.1), (hp["lr_drop_2"], 0.01))
        return [sgd_stage(hp, warmup_epochs=hp["warmup_epochs"], **scheduled(hp, milestones))]

    def on_stage_start(self, stage: Stage, model: nn.Module, ctx: Context) -> None:
        self.criterion.to(ctx.device)
        ctx.record("disa_variant", self.hp["variant"])

    def on_epoch_start(self, stage: Stage, epoch: int, model: nn.Module, ctx: Context) -> None:
        if epoch >= self.hp["drw_epoch"] and self.criterion.weight is None:
            self.criterion.weight = class_balanced_weights(self.counts, self.hp["beta"]).to(ctx.device)
        a = self.hp["mixup_alpha"]
        self.draws.redraw(lam=epoch_rng().beta(a, a, steps_bound(len(ctx.train_y), stage.batch_size)))
        ctx.log(drw=float(self.criterion.weight is not None))

    def training_step(self, model: nn.Module, batch: dict, stage: Stage, epoch: int) -> dict[str, Tensor]:
        x, y = batch["x"], batch["y"]
        lam = self.draws.next()["lam"]
        perm = torch.randperm(len(y), device=x.device)
        h = model.features(lam * x + (1 - lam) * x[perm])
        logits = model.logits(h)
        ce = lam * self.criterion(logits, y) + (1 - lam) * self.criterion(logits, y[perm])
        align = disa_loss(model.aligned(h), model.etf, self.hp["eps"], self.hp["sinkhorn_iters"],
                          self.hp["sinkhorn_thresh"])  # fmt: skip
        return {"loss": ce + self.hp["disa_weight"] * align, "ce": ce.detach(), "disa": align.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"draws": self.draws.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.draws.load_state_dict(state["draws"])
