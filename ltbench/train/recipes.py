"""Training recipes shared by several methods, as declared hparams plus the Stage they build.

Keeping them here means a method states *which* recipe it follows (and overrides what differs), instead
of repeating learning rates and milestones in every module.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ltbench.method import HP, Stage

# The LDAM-DRW CIFAR recipe (kaidic/LDAM-DRW cifar_train.py), used by CE, Focal, LDAM-DRW and most
# CIFAR-LT papers: docs/methods.md §1.
LDAM_CIFAR: dict[str, HP] = {
    "epochs": HP(200, "LDAM-DRW CIFAR recipe (docs/methods.md §1)", help="epochs of the main stage", epoch=True),
    "lr": HP(0.1, "LDAM-DRW CIFAR recipe (§1)", range=("log", 0.01, 0.5)),
    "batch_size": HP(128, "LDAM-DRW CIFAR recipe (§1)", range=("choice", (64, 128, 256))),
    "momentum": HP(0.9, "LDAM-DRW CIFAR recipe (§1)"),
    "weight_decay": HP(2e-4, "LDAM-DRW CIFAR recipe (§1)", range=("log", 5e-5, 1e-3)),
    "warmup_epochs": HP(5, "LDAM-DRW: linear warm-up over the first 5 epochs (§1)", epoch=True),
    "lr_drop_1": HP(160, "LDAM-DRW: lr x0.01 from epoch 160 (§1)", epoch=True),
    "lr_drop_2": HP(180, "LDAM-DRW: lr x0.0001 from epoch 180 (§1)", epoch=True),
    "schedule": HP(
        "step",
        "LDAM-DRW: step decay at lr_drop_1/2 (§1); cosine_epoch = classifier-balancing's CosineAnnealingLR stepped "
        "per epoch; cosine = per iteration (--schedule)",
        choices=("step", "cosine", "cosine_epoch"),
    ),
}

# classifier-balancing's representation stage on the large benchmarks (config/ImageNet_LT/feat_uniform.yaml,
# config/iNaturalist18/feat_unifrom.yaml): 90 epochs, batch 512, SGD lr 0.2, momentum 0.9, cosine to 0 stepped
# per epoch (coslr, endlr 0), no warm-up; weight decay 5e-4 (ImageNet-LT) / 1e-4 (iNaturalist 2018). The
# configs use ResNeXt-50 (ImageNet-LT) and ResNet-50 (iNat); ltbench's large-scale backbone is ResNet-50.
CB_LARGE_SCALE: dict[str, dict[str, Any]] = {
    dataset: {
        "backbone": "resnet50",
        "epochs": 90,
        "batch_size": 512,
        "lr": 0.2,
        "weight_decay": wd,
        "warmup_epochs": 0,
        "schedule": "cosine_epoch",
    }
    for dataset, wd in (("imagenet_lt", 5e-4), ("inat2018", 1e-4))
}


# Places-LT (OLTR config/Places_LT/stage_1.py, the protocol classifier-balancing follows there): an ImageNet-
# pretrained ResNet-152 (OLTR loads Caffe weights; timm's ``tv_in1k`` are torchvision's, the closest it has),
# fine-tuned 30 epochs at batch 128, SGD momentum 0.9, wd 5e-4, the feature model at lr 0.001 and the new
# classifier at 0.1, StepLR ×0.1 every 10 epochs, no warm-up. OLTR's 512-d fc layer after the pooling
# (use_fc) is its own model part and not used: classifier-balancing's Places configs read 2048-d features.
PLACES_LT: dict[str, Any] = {
    "backbone": "timm:resnet152.tv_in1k",
    "pretrained": True,
    "epochs": 30,
    "batch_size": 128,
    "lr": 0.1,
    "backbone_lr_factor": 0.01,
    "weight_decay": 5e-4,
    "warmup_epochs": 0,
    "schedule": "step",
    "lr_drop_1": 10,
    "lr_drop_2": 20,
    "lr_factor": 0.1,
}
# The hparams a fine-tuning recipe needs beyond the CIFAR recipe's (CE and the decoupling methods declare them)
FINETUNE_HP: dict[str, HP] = {
    "backbone_lr_factor": HP(
        1.0, "1 = one lr; OLTR Places_LT/stage_1.py: feature model 0.001 / classifier 0.1 = 0.01 (places_lt preset)"
    ),
    "lr_factor": HP(
        0.01, "LDAM-DRW: ×0.01 at lr_drop_1, ×0.0001 at lr_drop_2 (§1); OLTR Places-LT StepLR gamma 0.1: 0.1"
    ),
}


def large_scale_presets(hparams: dict[str, HP], **extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``--preset imagenet_lt | inat2018`` for a method that has no large-scale recipe of its own: CB_LARGE_SCALE
    restricted to the hparams the method declares (plus the backbone), then the method's ``extra[dataset]``."""
    return {
        dataset: {**{k: v for k, v in recipe.items() if k == "backbone" or k in hparams}, **extra.get(dataset, {})}
        for dataset, recipe in CB_LARGE_SCALE.items()
    }


def schedule_hp(source: str) -> HP:
    """The ``schedule`` hparam of a method whose paper decays the lr in steps at its ``lr_drop_*`` milestones;
    the large-scale presets switch it to classifier-balancing's per-epoch cosine."""
    return HP(
        "step",
        f"{source}: step decay at the lr_drop milestones; cosine_epoch = classifier-balancing's CosineAnnealingLR "
        "stepped per epoch (the imagenet_lt / inat2018 presets); cosine = per iteration",
        choices=("step", "cosine", "cosine_epoch"),
    )


def scheduled(hp: dict[str, Any], milestones: tuple[tuple[int, float], ...]) -> dict[str, Any]:
    """Stage fields for ``hp["schedule"]``: the milestones under ``step`` (also for records from before the hparam
    existed), none under a cosine schedule."""
    schedule = hp.get("schedule", "step")
    return {"schedule": schedule, "milestones": milestones if schedule == "step" else ()}


def sgd_hparams(source: str, epochs: int) -> dict[str, HP]:
    """The five SGD hparams every CIFAR recipe declares (epochs, lr, batch 128, momentum 0.9, wd 2e-4), with the
    recipe's source: OTmix, DisA and BBN share them with LDAM-DRW's and differ only in schedule."""
    return {
        "epochs": HP(epochs, source, help="epochs of the one stage", epoch=True),
        "lr": HP(0.1, source, range=("log", 0.01, 0.5)),
        "batch_size": HP(128, source),
        "momentum": HP(0.9, source),
        "weight_decay": HP(2e-4, source, range=("log", 5e-5, 1e-3)),
    }


def sgd_stage(hp: dict[str, Any], name: str = "train", **fields: Any) -> Stage:
    """One SGD stage from the ``sgd_hparams`` values in ``hp``; ``fields`` set the rest (schedule, sampler...)."""
    base = dict(name=name, epochs=hp["epochs"], lr=hp["lr"], batch_size=hp["batch_size"], optimizer="sgd",
                momentum=hp["momentum"], weight_decay=hp["weight_decay"])  # fmt: skip
    return Stage(**{**base, **fields})


def ldam_cifar_stage(hp: dict[str, Any], name: str = "train", **overrides: Any) -> Stage:
    """The single SGD stage of the LDAM-DRW CIFAR recipe, from resolved hparams (epoch values scaled)."""
    schedule = hp.get("schedule", "step")  # (runs recorded before the hparam existed: step)
    factor = hp.get("lr_factor", 0.01)  # RIDE's ImageNet-LT preset: 0.1 (the others do not declare it)
    milestones = (
        ((hp["lr_drop_1"], factor), (hp["lr_drop_2"], round(factor * factor, 15))) if schedule == "step" else ()
    )
    fields = dict(schedule=schedule, warmup_epochs=hp["warmup_epochs"], milestones=milestones)
    fields["backbone_lr_factor"] = hp.get("backbone_lr_factor", 1.0)  # declared by CE and decoupling (Places-LT)
    return sgd_stage(hp, name, **{**fields, **overrides})


def apply_backbone_recipe(stages: list[Stage], recipe: dict | None, explicit_lrs: set[float]) -> list[Stage]:
    """Backbone-owned training defaults (e.g. AdamW + cosine for ViT/DeiT/Swin, ltbench/models/timm_backbones)
    applied to every full-training stage of any method; head-only stages keep the method's optimizer.

    The learning rate becomes ``lr_per_512 x batch/512`` unless the user set that stage's lr explicitly
    (``--lr`` / ``--set ft_lr=...``): the recipe replaces defaults, never the user's choices.
    """
    if not recipe:
        return stages
    out = []
    for stage in stages:
        if stage.trainable != "all":
            out.append(stage)
            continue
        lr = stage.lr if stage.lr in explicit_lrs else recipe["lr_per_512"] * stage.batch_size / 512
        out.append(
            dataclasses.replace(
                stage,
                optimizer=recipe["optimizer"],
                lr=lr,
                weight_decay=recipe["weight_decay"],
                schedule=recipe["schedule"],
                milestones=(),
                warmup_epochs=max(stage.warmup_epochs, recipe["warmup_fraction"] * stage.epochs),
                warmup_per_iter=True,
                no_decay_1d=recipe["no_decay_1d"],
            )
        )
    return out
