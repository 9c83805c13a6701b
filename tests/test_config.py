"""Config validation, hparam overrides, preset scaling and the run id."""

import pytest

from ltbench.config import RunConfig
from ltbench.errors import ConfigError
from ltbench.registry import METHODS
from ltbench.resolve import resolve, scale_epoch


def test_run_id_ignores_runtime_fields_only():
    a = RunConfig(method="ce", seed=1, out="/a", device="cpu")
    b = RunConfig(method="ce", seed=1, out="/b", device="auto", threads=3)
    assert a.run_id == b.run_id
    assert a.run_id != RunConfig(method="ce", seed=2).run_id
    assert a.run_id != RunConfig(method="ce", seed=1, hparams={"lr": 0.05}).run_id
    assert a.run_id.startswith("ce-digits_lt-s1-")


@pytest.mark.parametrize(
    "kw",
    [
        dict(profile="linear"),
        dict(subset="random"),
        dict(val="A"),
        dict(precision="fp16"),
        dict(epochs=0),
        dict(imbalance_ratio=0.5),
        dict(shots=(10, 20)),
    ],
)
def test_bad_values_rejected(kw):
    with pytest.raises(ConfigError):
        RunConfig(**kw)


def test_set_overrides_are_type_checked():
    ce = METHODS.get("ce")
    r = resolve(RunConfig(hparams={"lr": "0.05", "batch_size": "64"}), ce)
    assert r.hp["lr"] == 0.05 and r.hp["batch_size"] == 64
    with pytest.raises(ConfigError, match="expected int"):
        resolve(RunConfig(hparams={"batch_size": "big"}), ce)
    with pytest.raises(ConfigError, match="valid: .*lr"):
        resolve(RunConfig(hparams={"learning_rate": "0.1"}), ce)


def test_quick_preset_scales_every_epoch_milestone():
    ce = METHODS.get("ce")
    r = resolve(RunConfig(preset=("quick",)), ce)
    assert (r.hp["epochs"], r.hp["lr_drop_1"], r.hp["lr_drop_2"], r.hp["warmup_epochs"]) == (20, 16, 18, 1)
    r = resolve(RunConfig(epochs=50), ce)
    assert (r.hp["epochs"], r.hp["lr_drop_1"], r.hp["lr_drop_2"]) == (50, 40, 45)
    # an explicit --set value is taken as given, not scaled
    r = resolve(RunConfig(epochs=50, hparams={"lr_drop_1": "30"}), ce)
    assert r.hp["lr_drop_1"] == 30


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid: quick"):
        resolve(RunConfig(preset=("fast",)), METHODS.get("ce"))


def test_scale_epoch_rounding():
    assert scale_epoch(160, 0.1) == 16
    assert scale_epoch(5, 0.1) == 1
    assert scale_epoch(0, 0.1) == 0
    assert scale_epoch(2.5, 0.5) == 1.25


def test_unknown_names_suggest_close_match():
    with pytest.raises(ConfigError, match="Did you mean 'ce'"):
        METHODS.get("cee")


def test_static_catalog_matches_registries():
    from ltbench.cli.catalog import static_entries
    from ltbench.registry import BACKBONES, DATASETS

    for name, reg in (("METHODS", METHODS), ("DATASETS", DATASETS), ("BACKBONES", BACKBONES)):
        assert static_entries(name) == reg.describe_all()


def test_show_lists_every_hparam_of_every_method(capsys):
    """`ltbench show all`: each registered method with each declared hparam, its default and its source."""
    from ltbench.cli import main
    from ltbench.registry import METHODS

    assert main(["show", "all"]) == 0
    out = capsys.readouterr().out
    for name in METHODS.names():
        cls = METHODS.get(name)
        assert f"{name} — {cls.display_name}" in out
        for key, spec in cls.hparams.items():
            assert f"| {key} " in out and spec.source in out


def test_registered_name_is_the_class_name_and_every_method_has_a_display_name():
    from ltbench.cli.catalog import display_names
    from ltbench.registry import METHODS

    shown = display_names()
    for name in METHODS.names():
        cls = METHODS.get(name)
        assert cls.name == name and cls.display_name and shown[name] == cls.display_name


def test_run_flags_and_sweep_keys_derive_from_the_config_fields():
    """No hand-kept field list: every RunConfig field is a `ltbench run` flag (unless marked cli=False) and a
    sweep [run] key (unless the sweep sets it itself)."""
    import dataclasses

    from ltbench.cli.main import build_parser
    from ltbench.config import RunConfig
    from ltbench.sweep.spec import RUN_FIELDS

    run = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    flags = {o for a in run._actions for o in a.option_strings}
    for f in dataclasses.fields(RunConfig):
        if f.metadata.get("cli", True):
            assert f.metadata.get("flag", "--" + f.name.replace("_", "-")) in flags
    assert {"pretrained", "image_size", "workers", "compile"} <= set(RUN_FIELDS)
