"""Every preset of every method reaches each phase it declares: an epoch index (a warm-up's end, a DRW switch,
a milestone) lies inside the stage it belongs to once the preset and its scaling are applied. A preset that
shortens a stage but not its warm-up (TSC's ImageNet-LT preset once ran as plain KCL) fails here."""

from __future__ import annotations

import pytest

from ltbench.config import RunConfig
from ltbench.registry import METHODS
from ltbench.resolve import _group, resolve

CASES = [(m, p) for m in METHODS.names() for p in [None, "quick", *sorted(METHODS.get(m).presets)]]
DATASET = {"imagenet_lt": "imagenet_lt", "digits": "digits_lt"}  # presets named after a dataset run on it


def _values(value) -> list[float]:
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


@pytest.mark.parametrize(("method", "preset"), CASES, ids=[f"{m}-{p}" for m, p in CASES])
def test_every_epoch_index_lies_inside_its_stage(method, preset):
    cls = METHODS.get(method)
    cfg = RunConfig(method=method, dataset=DATASET.get(preset or "", "cifar10_lt"), preset=(preset,) if preset else ())
    hp = resolve(cfg, cls).hp
    for key, spec in cls.hparams.items():
        group = _group(key, spec)
        if not spec.epoch or key == group or group not in hp or not hp[group]:
            continue
        for value in _values(hp[key]):
            assert value < hp[group] or value == 0, (
                f"{method} preset {preset}: {key}={value} is not inside the {hp[group]}-epoch stage ({group})"
            )
