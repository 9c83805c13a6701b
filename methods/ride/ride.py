"""RIDE: Routing Diverse Distribution-Aware Experts (Wang et al., ICLR 2021; docs/methods.md §5).

E experts share the early ResNet stages (``ltbench.methods.ride.experts``). Each expert is trained with LDAM-DRW
on its own logits plus a diversity term that pushes its prediction *away* from the (detached) ensemble
average (λ_div < 0); the prediction is the ensemble mean. After ``reweight_epoch`` both DRW weights and a
class-wise softmax temperature switch on. The expert-assignment router is the separate method ``ride_ea``
(methods/ride/ride_ea.py); distillation from a finished run (e.g. a 6-expert RIDE) is ``--set teacher=RUN_DIR``.

Sources: frank-xwang/RIDE-LongTailRecognition ``model/loss.py`` (RIDELoss) and
``configs/config_imbalance_cifar100_ride.json`` (commit 18bd3ef).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltbench.losses import LDAMLoss, class_balanced_weights
from ltbench.method import HP, Method, Stage
from ltbench.methods.ride.experts import RIDE_SCALE, multi_expert_model, num_stages
from ltbench.registry import METHODS
from ltbench.train.context import Context
from ltbench.train.recipes import LDAM_CIFAR, ldam_cifar_stage

RIDE_HP = {
    **LDAM_CIFAR,
    "weight_decay": HP(5e-4, "RIDE CIFAR config: wd 5e-4 (docs/methods.md §5)", range=("log", 5e-5, 1e-3)),
    "num_experts": HP(3, "RIDE CIFAR config: 3 experts (§5)", range=("choice", (2, 3, 4, 6))),
    "lambda_div": HP(
        {"cifar100_lt": -0.45, "*": -0.2},
        "RIDE configs/config_imbalance_cifar100_ride.json: additional_diversity_factor -0.45 since commit 18fee39 "
        "(2021-01-03; -0.2 at 18bd3ef, +0.2 at release); no CIFAR-10 config: RIDELoss default -0.2",
        range=("uniform", -1.0, 0.0),
        help="weight of KL(ensemble ‖ expert); negative = maximise disagreement",
        type=float,
    ),
    "alpha": HP(0.05, "RIDELoss reweight_factor 0.05 (CIFAR default, §5)", range=("uniform", 0.0, 0.2)),
    "reweight_epoch": HP(160, "RIDE CIFAR config: DRW + class-wise temperature from epoch 160 (§5)", epoch=True),
    "beta": HP(0.9999, "RIDELoss DRW effective-number β = 0.9999 (§3, §5)"),
    "max_margin": HP(0.5, "RIDELoss max_m = 0.5 (§5)", range=("uniform", 0.1, 1.0)),
    "scale": HP(RIDE_SCALE, "RIDE: cosine logits x s = 30 (§5)"),
    "reduce_dimension": HP(True, "RIDE README: --reduce_dimension 1 (per-expert widths x 3/4, §5)"),
    "expert_stages": HP(2, "RIDE code: the last two stages are per-expert (ResNet-32 and ResNet-50, §5)"),
    "lr_factor": HP(0.01, "RIDE CIFAR config: each milestone multiplies the lr by 0.01; ImageNet-LT 0.1 (§5)"),
    "rotation": HP(True, "RIDE CIFAR loaders: RandomRotation(15) after crop + flip; not in its ImageNet loaders (§5)"),
    "teacher": HP("", "PROPOSAL §5: distillation off; a finished run's directory turns it on", type=str),
    "distill_temperature": HP(1.5, "config_imbalance_cifar100_distill_ride.json: distill_temperature 1.5 (§5)"),
    "distill_weight": HP(1.0, "RIDELossWithDistill additional_distill_loss_factor default 1.0"),
    "distill_warmup_epochs": HP(
        20, "config_imbalance_cifar100_distill_ride.json: CustomLR warmup_epoch 20 with a teacher (§5)", epoch=True
    ),
}


def class_temperature(class_counts: list[int], alpha: float) -> Tensor:
    """T_c = w_c / max_j w_j with w_c = C·π_c·α + 1 − α (RIDELoss ``per_cls_weights_enabled_diversity``).

    The most frequent class gets T = 1 and rarer classes T < 1, which sharpens their logits inside the
    diversity term (the softmax divides logit c by T_c); α = 0 gives T ≡ 1.
    """
    n = torch.as_tensor(class_counts, dtype=torch.float64)
    w = n.numel() * (n / n.sum()) * alpha + 1.0 - alpha
    if not bool((w > 0).all()):
        raise ValueError(f"alpha={alpha} is too large: some class-wise temperatures are <= 0")
    return (w / w.max()).float()


def ride_loss(
    expert_logits: Tensor,
    ensemble: Tensor,
    targets: Tensor,
    ldam: LDAMLoss,
    scale: float,
    lambda_div: float,
    temperature: Tensor | None = None,
) -> dict[str, Tensor]:
    """Σ_e [ LDAM-DRW(z^e, y) + λ_div · T̄² · KL(softmax(z̄/T) ‖ softmax(z^e/T)) ], z̄ detached (§5).

    ``expert_logits`` E x B x C are s-scaled (the LDAM margin s·Δ_y is subtracted from them, as in
    RIDELoss; ``ldam`` takes cosines, hence z / s), ``temperature`` is None (T = 1) or the class-wise
    T_c (C,). The ensemble is detached: the diversity term moves each expert, never the target it is
    compared against. Deliberate difference: with λ_div = 0 RIDELoss applies LDAM to the *ensemble* logits
    of every expert; we keep the per-expert formula of the paper. Returns ``loss``, ``ldam`` and ``kl``.
    """
    z = expert_logits.float()
    if temperature is None:
        t, t_mean = 1.0, torch.ones((), device=z.device)
    else:
        t = temperature.to(z.device)
        t_mean = t.mean()  # T̄: KD's temperature² scaling, a tensor so CUDA needs no host sync
    target = F.softmax(ensemble.detach().float() / t, dim=-1)
    ldam_sum = z.new_zeros(())
    kl_sum = z.new_zeros(())
    for z_e in z:
        ldam_sum = ldam_sum + ldam(z_e / scale, targets)
        kl_sum = kl_sum + F.kl_div(F.log_softmax(z_e / t, dim=-1), target, reduction="batchmean")
    loss = ldam_sum + lambda_div * t_mean.square() * kl_sum
    return {"loss": loss, "ldam": ldam_sum.detach(), "kl": kl_sum.detach()}


@METHODS.register("ride")
class RIDE(Method):
    """RIDE: 3 reduced-width experts on a shared trunk, LDAM-DRW + diversity loss, ensemble prediction."""

    display_name = "RIDE"

    paper = "Wang et al., Long-tailed Recognition by Routing Diverse Distribution-Aware Experts, ICLR 2021"
    hparams = RIDE_HP
    # RIDE's ImageNet-LT config (§5): ResNet-50, 100 epochs, batch 256, lr 0.1 (Nesterov), wd 2e-4, warm-up 5,
    # x0.1 at 60 and 80, DRW + temperature (α 0.02) from 80, λ_div the RIDELoss default -0.2, no rotation.
    # ResNeXt-50 (the MODEL_ZOO's best row): add --backbone timm:resnext50_32x4d.
    presets = {
        "imagenet_lt": {"backbone": "resnet50", "epochs": 100, "batch_size": 256, "lr": 0.1, "weight_decay": 2e-4,
                        "warmup_epochs": 5, "lr_drop_1": 60, "lr_drop_2": 80, "lr_factor": 0.1,
                        "reweight_epoch": 80, "alpha": 0.02, "rotation": False},
    }  # fmt: skip

    def __init__(self, hp, info) -> None:
        super().__init__(hp, info)
        self.ldam = LDAMLoss(self.counts, max_margin=hp["max_margin"], s=hp["scale"])
        self.temperature: Tensor | None = None
        self.teacher = None  # (method, model) of --set teacher=RUN_DIR, loaded at the first stage

    def stages(self) -> list[Stage]:
        # RIDE CIFAR config: the LDAM-DRW schedule (warm-up 5, x0.01 at 160 and 180), nesterov, wd 5e-4; the
        # distillation config warms up for 20 epochs
        warmup = self.hp["distill_warmup_epochs"] if self.hp["teacher"] else self.hp["warmup_epochs"]
        transform = "ride" if self.hp.get("rotation", True) else "standard"
        return [ldam_cifar_stage(self.hp, nesterov=True, transform=transform, warmup_epochs=warmup)]

    def stage_key(self, index: int) -> dict:
        """RIDE's training stage reads only RIDE's hparams: a finished ``ride`` run can stand in for stage 1 of
        ``ride_ea`` (``--from``), whose router hparams do not touch it."""
        return {"method": "ride", "hp": {k: self.hp.get(k, RIDE_HP[k].default) for k in RIDE_HP}}

    def build_model(self, backbone: nn.Module, num_classes: int, class_counts: list[int]) -> nn.Module:
        return multi_expert_model(
            backbone,
            num_classes,
            num_experts=self.hp["num_experts"],
            shared_stages=max(0, num_stages(backbone) - self.hp["expert_stages"]),
            reduce_dimension=self.hp["reduce_dimension"],
            scale=self.hp["scale"],
        )

    def on_stage_start(self, stage: Stage, model: nn.Module, ctx: Context) -> None:
        self.ldam.to(ctx.device)  # margins (and DRW weights) live on the device, never copied per step
        if self.hp["teacher"] and self.teacher is None:
            from ltbench.restore import load_finished

            self.teacher = load_finished(self.hp["teacher"], self.info, ctx.device)

    def distill_loss(self, ensemble: Tensor, x: Tensor) -> Tensor:
        """T_d² · KL(softmax(teacher/T_d) ‖ softmax(student ensemble/T_d)) (RIDELossWithDistill).

        Deliberate difference: RIDELossWithDistill adds the RIDE loss and this term once per expert, i.e. the
        whole loss x E; we add each once (the same minimiser; the code's x E acts like an E-fold lr).
        """
        t_method, t_model = self.teacher
        with torch.no_grad():
            target = F.softmax(t_method.predict(t_model, x).float() / self.hp["distill_temperature"], dim=-1)
        log_student = F.log_softmax(ensemble.float() / self.hp["distill_temperature"], dim=-1)
        return self.hp["distill_temperature"] ** 2 * F.kl_div(log_student, target, reduction="batchmean")

    def on_epoch_start(self, stage: Stage, epoch: int, model: nn.Module, ctx: Context) -> None:
        """DRW weights and class-wise temperature from ``reweight_epoch`` (0-indexed; RIDE's 1-indexed
        ``epoch > reweight_epoch`` is the same epoch)."""
        if epoch >= self.hp["reweight_epoch"] and self.temperature is None:
            weight = class_balanced_weights(self.counts, self.hp["beta"])
            temperature = class_temperature(self.counts, self.hp["alpha"])
            # recorded from the host copies, before the move: reading them back from the device would sync
            ctx.record("drw_weights", weight.tolist())
            ctx.record("ride_temperature", temperature.tolist())
            self.ldam.weight = weight.to(ctx.device)
            self.temperature = temperature.to(ctx.device)
        ctx.log(drw=float(self.temperature is not None))

    def training_step(self, model, batch, stage, epoch) -> dict:
        out = model.forward_experts(batch["x"])
        losses = ride_loss(
            out.logits, out.ensemble, batch["y"], self.ldam, model.scale, self.hp["lambda_div"], self.temperature
        )
        if self.teacher is not None:
            losses["distill"] = self.distill_loss(out.ensemble, batch["x"])
            losses["loss"] = losses["loss"] + self.hp["distill_weight"] * losses["distill"]
            losses["distill"] = losses["distill"].detach()
        return losses
