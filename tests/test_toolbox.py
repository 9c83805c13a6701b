"""The researcher's toolbox: --version, display names as --method, --dry-run, --config recipes, load_run,
predict, export and diff (README, Toolbox)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import ltbench
from ltbench.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"ltbench {ltbench.__version__}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == ltbench.__version__


# ---------------------------------------------------------------- display names as --method
@pytest.mark.parametrize(
    "given, key",
    [
        ("LDAM-DRW", "ldam_drw"),
        ("cRT", "crt"),
        ("CRT", "crt"),
        ("τ-norm", "tau_norm"),
        ("Tau-Norm", "tau_norm"),
        ("BNS+IP-DPP", "bns_ipdpp"),
        ("balanced softmax", "balanced_softmax"),
        ("ce", "ce"),
    ],
)
def test_display_names_are_accepted_as_method(given, key, tmp_path):
    from ltbench.cli.main import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["run", "--method", given, "--out", str(tmp_path)]))
    assert cfg.method == key
    assert cfg.run_id.startswith(f"{key}-")
    assert cfg.identity()["method"] == key


def test_every_display_name_maps_to_its_key():
    from ltbench.cli.catalog import canonical_method, display_names

    for key, display in display_names().items():
        assert canonical_method(display) == key
        assert canonical_method(display.upper()) == key


def test_unknown_method_still_lists_the_known_ones(capsys):
    assert main(["show", "LDAM-DRX"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'LDAM-DRX'" in err and "ldam_drw" in err


def test_show_accepts_a_display_name(capsys):
    assert main(["show", "LDAM-DRW"]) == 0
    assert capsys.readouterr().out.startswith("ldam_drw — LDAM-DRW")


# ---------------------------------------------------------------- --dry-run and --config
def _dry_run(capsys, *argv: str) -> tuple[str, str]:
    assert main(["run", *argv, "--dry-run"]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def _run_id(text: str) -> str:
    return next(line.split()[-1] for line in text.splitlines() if line.startswith("# run id"))


def test_dry_run_round_trips_through_config(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--method", "LDAM-DRW", "--dataset", "synthetic_lt", "--out", str(out), "--epochs", "3", "--seed", "2"]
    text, _ = _dry_run(capsys, *argv, "--set", "max_margin=0.4", "--lr", "0.05", "--preset", "quick")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(text)
    again, _ = _dry_run(capsys, "--config", str(recipe))
    assert again == text  # the same configuration, the same [resolved] table, the same run id
    from ltbench.cli.main import build_parser, config_from_args
    from ltbench.run import concrete

    cfg = concrete(
        config_from_args(
            build_parser().parse_args(["run", *argv, "--set", "max_margin=0.4", "--lr", "0.05", "--preset", "quick"])
        )
    )
    assert _run_id(again) == cfg.run_id and cfg.method == "ldam_drw"
    assert not out.exists()  # a dry run writes nothing


def test_dry_run_resolves_presets_epochs_and_stages(capsys):
    text, _ = _dry_run(capsys, "--method", "crt", "--dataset", "digits_lt")
    doc = tomllib.loads(text)
    assert doc["method"] == "crt" and "epochs" not in doc  # as given: the defaults are resolved below
    resolved = doc["resolved"]
    assert resolved["presets"] == ["quick"] and resolved["scale"] == 0.1 and resolved["backbone"] == "resnet32"
    assert resolved["hp"]["epochs"] == 20 and resolved["hp"]["lr_drop_1"] == 16  # scaled with the main stage
    stages = {s["name"]: s for s in resolved["stages"]}
    assert stages["features"]["epochs"] == 20 and stages["features"]["milestones"] == [[16, 0.01], [18, 0.0001]]
    second = resolved["stages"][1]
    assert (second["sampler"], second["trainable"], second["batch_size"]) == ("class_aware", "head", 512)


def test_dry_run_warns_when_a_batch_exceeds_the_dataset(capsys):
    _, err = _dry_run(capsys, "--method", "ce", "--dataset", "synthetic_lt", "--batch-size", "512")
    assert "batch size 512 exceeds the ~240 training images of synthetic_lt" in err
    _, err = _dry_run(capsys, "--method", "ce", "--dataset", "synthetic_lt", "--batch-size", "64")
    assert "warning" not in err


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_config_file_values_and_flags_on_top(tmp_path, capsys):
    from ltbench.cli.main import build_parser, config_from_args
    from ltbench.recipe import read_recipe

    recipe = _write(
        tmp_path / "r.toml",
        'method = "LDAM-DRW"\ndataset = "synthetic_lt"\nepochs = 3\nseed = 1\npreset = ["quick"]\nshots = [50, 5]\n'
        "imbalance-ratio = 20\nlr = 0.05\n[hparams]\nmax_margin = 0.3\n",
    )
    args = build_parser().parse_args(["run", "--config", recipe, "--seed", "7", "--set", "max_margin=0.4"])
    cfg = config_from_args(args, read_recipe(recipe))
    assert (cfg.method, cfg.dataset, cfg.epochs, cfg.seed, cfg.preset, cfg.shots) == (
        "ldam_drw",
        "synthetic_lt",
        3,
        7,
        ("quick",),
        (50, 5),
    )
    assert cfg.imbalance_ratio == 20.0 and cfg.hparams == {"lr": 0.05, "max_margin": "0.4"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("epoch = 3\n", "unknown key 'epoch'; valid: method, dataset"),
        ("epochs = 'ten'\n", "epochs = 'ten': expected int"),
        ("ssp = 1\n", "ssp = 1: expected bool"),
        ("shots = [1]\n", "shots must be [MANY, FEW]"),
        ("method = \n", "not valid TOML"),
        ("hparams = 3\n", "hparams must be a table"),
        ("lr = 0.1\n[hparams]\nlr = 0.2\n", "lr is given twice"),
        ('profile = "log"\n', "--profile 'log' is not one of exp, step"),
        ("[hparams]\nnope = 1\n", "method 'ce' has no hparam 'nope'"),
    ],
)
def test_config_file_errors_are_one_line(tmp_path, capsys, text, message):
    recipe = _write(tmp_path / "r.toml", 'method = "ce"\ndataset = "synthetic_lt"\n' * ("method" not in text) + text)
    assert main(["run", "--config", recipe, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_config_refuses_a_stale_resolved_table(tmp_path, capsys):
    text, _ = _dry_run(capsys, "--method", "ce", "--dataset", "synthetic_lt", "--epochs", "2")
    recipe = _write(tmp_path / "r.toml", text.replace("\nlr = 0.1\n", "\nlr = 0.3\n", 1))
    assert main(["run", "--config", recipe, "--dry-run"]) == 2
    assert "[resolved] hp.lr is 0.3 but this configuration resolves to 0.1" in capsys.readouterr().err
    assert main(["run", "--config", recipe, "--dry-run", "--lr", "0.3"]) == 0  # flags on top: not checked
    assert "its [resolved] table is not checked" in capsys.readouterr().err


def test_a_recipe_trains_the_run_its_dry_run_names(tmp_path, capsys):
    out = tmp_path / "out"
    flags = ["--method", "CE", "--dataset", "synthetic_lt", "--epochs", "1", "--batch-size", "100", "--out", str(out)]
    text, _ = _dry_run(capsys, *flags, "--precision", "fp32", "--device", "cpu", "--eval-every", "0")
    recipe = _write(tmp_path / "r.toml", text)
    assert main(["run", "--config", recipe, "--quiet"]) == 0  # [resolved] checked, then trained
    assert (out / "runs" / _run_id(text) / "done").is_file()


@pytest.mark.parametrize("dataset", ["synthetic_lt", "digits_lt"])
@pytest.mark.parametrize("ir, profile", [(None, "exp"), (5.0, "step")])
def test_nominal_description_matches_the_built_dataset(dataset, ir, profile):
    from ltbench.data.base import DataSpec
    from ltbench.data.nominal import nominal
    from ltbench.registry import DATASETS

    spec = DataSpec(imbalance_ratio=ir, profile=profile)
    data, shape = DATASETS.get(dataset)(spec), nominal(dataset, spec)
    assert (shape.num_classes, shape.class_counts, shape.image_size) == (
        data.num_classes,
        data.class_counts,
        data.image_size,
    )
    assert (shape.mean, shape.std) == (data.mean, data.std)


# ---------------------------------------------------------------- finished runs for load_run, predict, export, diff
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Tiny finished runs on synthetic_lt (1-2 epochs, batch 100): CE twice (seeds differ), τ-norm with the
    validation split B (a post-hoc variant is chosen), RIDE (an expert ensemble predicts)."""
    from ltbench.run import execute
    from tests.conftest import tiny_config

    out = tmp_path_factory.mktemp("runs")
    cfgs = {
        "ce": tiny_config(out, "ce", hparams={"batch_size": 100}),
        "ce_seed1": tiny_config(out, "ce", seed=1, epochs=1, hparams={"batch_size": 100, "lr": 0.05}),
        "tau_norm": tiny_config(out, "tau_norm", val="B", epochs=1, hparams={"batch_size": 100}),
        "ride": tiny_config(out, "ride", epochs=1, hparams={"batch_size": 100}),
    }
    for cfg in cfgs.values():
        assert execute(cfg, progress=False)["status"] == "done"
    return {name: cfg.run_dir for name, cfg in cfgs.items()}


def _stored_logits(run_dir: Path):
    import numpy as np
    import torch

    with np.load(run_dir / "predictions.npz") as z:
        return torch.from_numpy(z["logits"])


def _listing(run_dir: Path) -> dict:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in run_dir.iterdir()}


def _synthetic_test_images(**spec):
    from ltbench.data.base import DataSpec
    from ltbench.registry import DATASETS

    return DATASETS.get("synthetic_lt")(DataSpec(**spec)).test_x


@pytest.mark.parametrize("name", ["ce", "tau_norm", "ride"])
def test_load_run_predicts_the_reported_logits(runs, name):
    import json

    import torch

    before = _listing(runs[name])
    run = ltbench.load_run(runs[name], device="cpu")
    result = json.loads((runs[name] / "result.json").read_text())
    assert not run.model.training and not any(p.requires_grad for p in run.model.parameters())
    assert run.variant == result["chosen_variant"] and run.class_names == result["data"]["classes"]
    assert run.config["method"] == name and run.resolved["backbone"] == "resnet32"
    logits = run.predict(run.transform(_synthetic_test_images(val=run.config["val"])))
    torch.testing.assert_close(logits, _stored_logits(runs[name]), rtol=1e-4, atol=1e-4)
    if name == "tau_norm":
        assert run.variant.startswith("tau=")  # validation chose a τ: predict is that variant, not the default
    assert _listing(runs[name]) == before  # read-only


def test_load_run_takes_older_runs_normalisation_from_the_dataset(runs, tmp_path):
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(runs["ce"], old)
    result = json.loads((old / "result.json").read_text())
    recorded = result["data"].pop("preprocess")
    (old / "result.json").write_text(json.dumps(result))
    run = ltbench.load_run(old)
    assert run.transform.as_dict() == recorded and run.normalisation == {k: recorded[k] for k in ("mean", "std")}


def test_load_run_refuses_unfinished_runs(tmp_path, runs):
    import shutil

    from ltbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"is not a finished run \(state: missing\)"):
        ltbench.load_run(tmp_path / "nowhere")
    half = tmp_path / "half"
    shutil.copytree(runs["ce"], half)
    (half / "done").unlink()
    with pytest.raises(ConfigError, match=r"state: incomplete"):
        ltbench.load_run(half)


def test_import_ltbench_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, ltbench; assert 'torch' not in sys.modules; assert callable(ltbench.load_run)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------- ltbench predict
def _save_pngs(folder: Path, images, names: list[str]) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for img, name in zip(images, names):
        paths.append(folder / name)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(paths[-1])
    return paths


def test_predict_prints_top_k_and_writes_csv(runs, tmp_path, capsys):
    import csv

    import torch

    test_x = _synthetic_test_images()
    pngs = _save_pngs(tmp_path / "imgs", test_x[[0, 25, 100]], ["a.png", "b.png", "c.png"])
    before = _listing(runs["ride"])
    code = main(
        ["predict", str(runs["ride"]), str(tmp_path / "imgs"), "--top-k", "3", "--out", str(tmp_path / "p.csv")]
    )
    assert code == 0
    out = capsys.readouterr().out
    run = ltbench.load_run(runs["ride"])
    probs = run.predict(run.transform(test_x[[0, 25, 100]])).softmax(dim=1)  # the saved PNGs are exact
    torch.testing.assert_close(run.predict_files(pngs).softmax(dim=1), probs)
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 9 and [r["rank"] for r in rows[:3]] == ["1", "2", "3"]
    for i, path in enumerate(pngs):
        top = probs[i].topk(3)
        mine = [r for r in rows if r["image"] == str(path)]
        assert [int(r["class_index"]) for r in mine] == top.indices.tolist()
        assert [r["class"] for r in mine] == [run.class_names[c] for c in top.indices.tolist()]
        torch.testing.assert_close(
            torch.tensor([float(r["probability"]) for r in mine]), top.values, rtol=1e-5, atol=1e-6
        )
        assert str(path) in out
    assert _listing(runs["ride"]) == before


def test_predict_resizes_any_image_and_names_bad_files(runs, tmp_path, capsys):
    from PIL import Image

    Image.new("L", (40, 30), color=128).save(tmp_path / "grey.jpg")  # grey, not square, larger: cropped, resized
    (tmp_path / "broken.png").write_bytes(b"not an image")
    code = main(["predict", str(runs["ce"]), str(tmp_path / "grey.jpg"), str(tmp_path / "broken.png")])
    captured = capsys.readouterr()
    assert code == 2
    assert "grey.jpg" in captured.out and "broken.png" not in captured.out
    assert f"ltbench: error: cannot read image {tmp_path / 'broken.png'}" in captured.err
    assert main(["predict", str(runs["ce"]), str(tmp_path / "missing.png")]) == 2
    assert "missing.png: no such file or folder" in capsys.readouterr().err
    assert main(["predict", str(runs["ce"]), str(tmp_path / "grey.jpg"), "--top-k", "0"]) == 2


# ---------------------------------------------------------------- ltbench export
@pytest.mark.parametrize("name", ["ce", "tau_norm", "ride"])
def test_export_reloads_with_weights_only_and_rebuilds_the_same_model(runs, tmp_path, name):
    import torch

    from ltbench.inference import load_export
    from ltbench.method import DataInfo
    from ltbench.models.backbones import build_backbone
    from ltbench.registry import METHODS

    before = _listing(runs[name])
    assert main(["export", str(runs[name]), "--to", str(tmp_path / "model.pt")]) == 0
    assert _listing(runs[name]) == before
    blob = torch.load(tmp_path / "model.pt", weights_only=True)  # plain torch: no code runs, no ltbench needed
    assert blob["ltbench_version"] == ltbench.__version__ and blob["backbone"] == "resnet32"
    assert blob["method"] == name and len(blob["class_names"]) == 10 and set(blob["preprocess"]) >= {"mean", "std"}
    # rebuilt by hand with ltbench's builders from nothing but the file
    d = blob["data"]
    info = DataInfo(d["num_classes"], d["class_counts"], d["image_size"], d["dataset"])
    method = METHODS.get(blob["method"])(blob["resolved"]["hp"], info)
    model = method.build_model(build_backbone(blob["backbone"], d["image_size"]), d["num_classes"], d["class_counts"])
    for stage in method.stages():
        method.adapt_model(model, stage)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    run = ltbench.load_run(runs[name])
    x = run.transform(_synthetic_test_images()[:64])
    with torch.no_grad():
        by_hand = (
            method.predict(model, x)
            if blob["variant"] == "default"
            else method.predict_variants(model, x)[blob["variant"]]
        )
    assert torch.equal(by_hand, run.predict(x))
    assert torch.equal(load_export(tmp_path / "model.pt").predict(x), run.predict(x))


def test_export_refuses_unfinished_runs_and_writing_into_a_run(runs, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere"), "--to", str(tmp_path / "m.pt")]) == 2
    assert "is not a finished run (state: missing)" in capsys.readouterr().err
    assert main(["export", str(runs["ce"]), "--to", str(runs["ce"] / "m.pt")]) == 2
    assert "is inside the run directory" in capsys.readouterr().err
    assert not (runs["ce"] / "m.pt").exists() and not (tmp_path / "m.pt").exists()


# ---------------------------------------------------------------- ltbench diff
def test_diff_shows_configuration_and_metric_differences(runs, capsys):
    assert main(["diff", str(runs["ce"]), str(runs["ce_seed1"])]) == 0
    out = capsys.readouterr().out
    lines = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "config.seed" in lines and "resolved.hp.lr" in lines and "config.hparams.lr" in lines
    assert "config.method" not in lines and "config.out" not in lines  # equal keys and locations are not listed
    for row in ("overall", "medium (5)", "few (5)", "macro_f1", "ece"):
        assert row in lines
    assert "per class (10 classes)" in out and "pattern9" in out
    assert main(["diff", str(runs["ce"]), str(runs["ride"]), "--classes", "3"]) == 0
    out = capsys.readouterr().out
    assert "the 3 largest differences of 10" in out and "config.method" in out


def test_diff_refuses_unfinished_runs(runs, tmp_path, capsys):
    assert main(["diff", str(runs["ce"]), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"run {tmp_path} is not a finished run" in err and err.count("\n") == 1
