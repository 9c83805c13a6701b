"""CE: plain softmax cross-entropy with instance-balanced sampling (docs/methods.md §1)."""

from __future__ import annotations

from ltbench.methods.one_stage import OneStageLoss, ce_stage_key
from ltbench.registry import METHODS
from ltbench.train.recipes import CB_LARGE_SCALE, FINETUNE_HP, LDAM_CIFAR, PLACES_LT


@METHODS.register("ce")
class CE(OneStageLoss):
    """Cross-entropy baseline, instance-balanced sampling (the LDAM-DRW CIFAR recipe)."""

    display_name = "CE"
    paper = "Cross-entropy baseline; recipe of Cao et al., NeurIPS 2019 (LDAM-DRW)"
    hparams = {**LDAM_CIFAR, **FINETUNE_HP}
    # --preset imagenet_lt | inat2018: classifier-balancing's stage 1; --preset places_lt: OLTR's fine-tuning
    presets = {**CB_LARGE_SCALE, "places_lt": PLACES_LT}

    def stage_key(self, index: int) -> dict:
        return ce_stage_key(self.hp)
