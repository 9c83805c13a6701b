"""RIDE with expert assignment (RIDE-EA; Wang et al., ICLR 2021, §3.3; docs/methods.md §5 "Optional stage 2").

Stage 1 is ``ride`` unchanged. Stage 2 adds ``model.router`` (ltbench/models/router.py) and trains only
it, on frozen experts (the trainer checks every other tensor bit-identical), with a class-balanced sampler
and BCE against "the ensemble so far is wrong but a larger one is right". The reported prediction is the
routed one; the result also records ``experts_used`` (test-set mean, 1..E) and the all-experts variant, so
the accuracy/compute trade-off is visible in one record. The router saves compute and is not expected to
raise accuracy (§5), which is why plain ``ride`` remains the benchmark default.

Source: frank-xwang/RIDE-LongTailRecognition ``configs/config_imbalance_cifar100_ride_ea.json`` (5 epochs,
batch 512, class-balanced, SGD lr 0.01 nesterov wd 5e-4, cosine, K = 30, pos_weight 100) and
``model/ldam_drw_resnets/ea_resnet_cifar.py`` (commit 18bd3ef).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltbench.method import HP, Method, Stage
from ltbench.methods.ride.ride import RIDE, RIDE_HP
from ltbench.methods.ride.router import ExpertRouter, route, router_targets
from ltbench.registry import METHODS
from ltbench.train.context import Context

RIDE_EA_HP = {
    **RIDE_HP,
    "router_epochs": HP(5, "ride_ea config: 5 epochs (§5)", epoch=True),
    "router_lr": HP(0.01, "ride_ea config: SGD lr 0.01, nesterov, cosine (§5)", range=("log", 1e-3, 0.1)),
    "router_batch_size": HP(512, "ride_ea config: batch 512 (§5)"),
    "router_top_k": HP(30, "ride_ea config: top_choices_num 30 (CIFAR-100; capped at C)"),
    "router_pos_weight": HP(100.0, "ride_ea config: pos_weight 100 (§5)"),
}


@METHODS.register("ride_ea")
class RIDEEA(RIDE):
    """RIDE, then a router trained on the frozen experts that decides how many experts each image uses."""

    display_name = "RIDE-EA"

    hparams = RIDE_EA_HP
    # the router reads the top 50 of the running logits on ImageNet (ride_ea ImageNet-LT config, §5)
    presets = {"imagenet_lt": {**RIDE.presets["imagenet_lt"], "router_top_k": 50}}

    def stages(self) -> list[Stage]:
        hp = self.hp
        router = Stage(
            name="router",
            epochs=hp["router_epochs"],
            lr=hp["router_lr"],
            batch_size=hp["router_batch_size"],
            optimizer="sgd",
            momentum=0.9,
            nesterov=True,
            weight_decay=hp["weight_decay"],  # ride_ea config: 5e-4, the same as stage 1
            schedule="cosine",
            sampler="class_balanced",
            trainable="router",
            transform="ride",
        )
        return [*super().stages(), router]

    def stage_key(self, index: int) -> dict:
        """Stage 1 is RIDE's (a finished ``ride`` run stands in for it); the router stage is this method's own."""
        return super().stage_key(index) if index < len(RIDE.stages(self)) else Method.stage_key(self, index)

    def on_stage_start(self, stage: Stage, model: nn.Module, ctx: Context) -> None:
        super().on_stage_start(stage, model, ctx)
        # a device tensor made once (BCE wants a tensor), not a host-to-device copy per step
        self.pos_weight = torch.tensor(self.hp["router_pos_weight"], device=ctx.device)

    def adapt_model(self, model: nn.Module, stage: Stage) -> None:
        if stage.name == "router" and getattr(model, "router", None) is None:
            dim, top_k = model.backbone.feature_dim, self.hp["router_top_k"]
            router = ExpertRouter(model.num_experts, dim, self.num_classes, top_k)
            model.router = router.to(next(model.parameters()).device)

    def training_step(self, model: nn.Module, batch: dict, stage: Stage, epoch: int) -> dict:
        if stage.name != "router":
            return super().training_step(model, batch, stage, epoch)
        with torch.no_grad():
            out = model.forward_experts(batch["x"])
        pred = model.router(out.logits, out.features)
        target = router_targets(out.logits, batch["y"])
        loss = F.binary_cross_entropy_with_logits(pred, target, pos_weight=self.pos_weight)
        return {"loss": loss, "asked_more": (pred > 0).float().mean().detach(), "should_ask": target.mean()}

    def _routing(self, model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        out = model.forward_experts(x)
        if getattr(model, "router", None) is None:  # stage 1 curve evaluations: all experts
            return out.ensemble, torch.full((x.shape[0],), float(model.num_experts), device=x.device)
        routing = route(out.logits, model.router(out.logits, out.features))
        return routing.logits, routing.experts_used

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        return self._routing(model, x)[0]

    def predict_variants(self, model: nn.Module, x: Tensor) -> dict[str, Tensor]:
        return {"all_experts": model(x)}

    def eval_stats(self, model: nn.Module, x: Tensor) -> dict[str, Tensor]:
        return {"experts_used": self._routing(model, x)[1]}
