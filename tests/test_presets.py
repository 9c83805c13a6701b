"""Every preset of every method reaches each phase it declares: an epoch index (a warm-up's end, a DRW switch,
a milestone) lies inside the stage it belongs to once the preset and its scaling are applied. A preset that
shortens a stage but not its warm-up (TSC's ImageNet-LT preset once ran as plain KCL) fails here."""

from __future__ import annotations

import pytest

from ltbench.config import RunConfig
from ltbench.registry import METHODS
from ltbench.resolve import _group, resolve

CASES = [(m, p) for m in METHODS.names() for p in [None, "quick", *sorted(METHODS.get(m).presets)]]
# presets named after a dataset run on it
DATASET = {"imagenet_lt": "imagenet_lt", "inat2018": "inat2018", "places_lt": "places_lt", "digits": "digits_lt"}


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
        if key.startswith("lr_drop") and hp.get("schedule", "step") != "step":
            continue  # the milestones of the step schedule; a cosine schedule does not read them
        for value in _values(hp[key]):
            assert value < hp[group] or value == 0, (
                f"{method} preset {preset}: {key}={value} is not inside the {hp[group]}-epoch stage ({group})"
            )


def test_large_scale_presets_follow_classifier_balancing_and_schedule_is_a_flag(tmp_path):
    """--preset imagenet_lt | inat2018 for CE and the decoupling methods: feat_uniform.yaml / feat_unifrom.yaml
    (90 epochs, batch 512, lr 0.2, cosine stepped per epoch, wd 5e-4 / 1e-4, ResNet-50); --schedule is --set
    schedule; --lr together with --set lr is refused."""
    import subprocess
    import sys

    from ltbench.config import RunConfig
    from ltbench.methods.one_stage import ce_stage_key
    from ltbench.registry import METHODS
    from ltbench.resolve import resolve

    for method in ("ce", "crt", "lws", "tau_norm"):
        for dataset, wd in (("imagenet_lt", 5e-4), ("inat2018", 1e-4)):
            res = resolve(RunConfig(method=method, dataset=dataset, preset=(dataset,)), METHODS.get(method))
            assert res.backbone == "resnet50"
            assert {k: res.hp[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "schedule")} == {
                "epochs": 90, "batch_size": 512, "lr": 0.2, "weight_decay": wd, "schedule": "cosine_epoch",
            }  # fmt: skip
    hp = resolve(RunConfig(method="ce", dataset="cifar10_lt", hparams={"schedule": "cosine"}), METHODS.get("ce")).hp
    [stage] = METHODS.get("ce")(hp, None).stages()
    assert stage.schedule == "cosine" and stage.milestones == ()
    old = {k: v for k, v in hp.items() if k != "schedule"}  # a record from before the hparam: step, same key
    step = {**hp, "schedule": "step"}
    assert ce_stage_key(old) == ce_stage_key(step)
    base = [sys.executable, "-m", "ltbench", "run", "--method", "ce", "--dataset", "synthetic_lt", "--dry-run"]
    ok = subprocess.run([*base, "--schedule", "cosine_epoch"], capture_output=True, text=True)
    assert ok.returncode == 0 and 'schedule = "cosine_epoch"' in ok.stdout, ok.stderr
    both = subprocess.run([*base, "--lr", "0.1", "--set", "lr=0.2"], capture_output=True, text=True)
    assert both.returncode == 2 and "--lr 0.1 and --set lr=0.2 both set lr" in both.stderr
