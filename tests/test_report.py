"""Tables and figures from run records (issue 9): loading, aggregation by hand, layout, published join, plots.

Fake run directories reproduce the on-disk format of real runs (config.json, result.json, done, log.jsonl as
written by ltbench.run / ltbench.records); one real tiny run checks that the format has not drifted.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ltbench.cli import main
from ltbench.errors import ConfigError
from ltbench.records import write_json_atomic, write_result
from ltbench.report import load_records, load_status, regroup
from ltbench.report.published import PUBLISHED_CSV, join_published, load_published
from ltbench.report.table import build_grid, by_imbalance_ratio, make_table, summarize

COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # CIFAR-10-LT, IR 100 (docs/protocol.md §0.1)
BASE = [0.9, 0.9, 0.9, 0.9, 0.9, 0.7, 0.7, 0.7, 0.5, 0.5]
SHIFTS = (0.0, 0.02, 0.04)  # one per seed: means shift by +0.02, sample std of overall = 2 points
OFFSETS = {"ce": 0.0, "focal": -0.01, "ldam_drw": 0.03}  # overall 78.0 / 77.0 / 81.0


def _config(method: str, dataset: str, seed: int, out: Path, lr: float = 0.1, ir: float | None = None) -> dict:
    cfg = {
        "backbone": None,
        "compile": False,
        "data_root": None,
        "dataset": dataset,
        "deterministic": False,
        "device": "auto",
        "epochs": None,
        "eval_every": 10,
        "hparams": {} if lr == 0.1 else {"lr": lr},
        "imbalance_ratio": ir,
        "method": method,
        "out": str(out),
        "precision": "auto",
        "preset": [],
        "profile": "exp",
        "seed": seed,
        "shots": None,
        "ssp": False,
        "subset": "ldam",
        "sweep": "runs",
        "threads": None,
        "val": "none",
    }
    resolved = {"backbone": "resnet32", "hp": {"batch_size": 128, "epochs": 200, "lr": lr}, "presets": []}
    resolved.update(scale=1.0, shots=[100, 20])
    run_id = f"{method}-{dataset}-s{seed}-fake{abs(hash((method, dataset, lr, ir))) % 10**6:06d}"
    return {"config": cfg, "resolved": resolved, "run_id": run_id, "run_dir": str(out / "runs" / run_id)}


def fake_run(
    out: Path,
    method: str,
    seed: int,
    per_class: list[float],
    dataset: str = "cifar10_lt",
    lr: float = 0.1,
    ir: float | None = None,
) -> Path:
    """A done run with the exact file layout and result.json structure of ltbench.run."""
    base = _config(method, dataset, seed, out, lr, ir)
    run_dir = Path(base["run_dir"])
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "config.json", base)
    for epoch, loss in enumerate((2.0, 1.5, 1.0)):
        line = {"stage": 0, "stage_name": "train", "epoch": epoch, "lr": 0.1, "seconds": 1.0, "loss": loss}
        with open(run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(line | ({"test_acc": 0.5} if epoch == 1 else {})) + "\n")
    from ltbench.metrics import group_accuracy

    metrics = {"overall": float(np.mean(per_class)), "per_class": per_class, "macro_f1": 0.6, "g_mean": 0.55}
    metrics.update(group_accuracy(per_class, COUNTS), ece=0.1, weight_norms=[1.0 + c for c in range(10)])
    metrics["weight_norm_var"] = float(np.var(metrics["weight_norms"]))
    record = {
        **base,
        "status": "done",
        "error": None,
        "metrics": metrics,
        "chosen_variant": "default",
        "variants": {},
        "val": None,
        "model": {"params": 464154, "gflops": 0.07, "flops_note": "x"},
        "timing": {"stages": {"train": {"seconds": 10.0, "images": 1000, "images_per_s": 100.0}}, "wall_seconds": 12},
        "env": {"commit": "abc", "dirty": False, "device": "cpu", "device_name": "cpu", "precision": "fp32"},
        "data": {
            "name": dataset,
            "num_classes": 10,
            "classes": [f"c{i}" for i in range(10)],
            "class_counts": COUNTS,
            "shots": {"many": 100, "few": 20},
            "provenance": {"imbalance_ratio": ir or 100.0},
        },
        "extras": {},
    }
    write_result(run_dir, record)
    return run_dir


@pytest.fixture
def records(tmp_path: Path) -> Path:
    """3 methods x 3 seeds of done runs, one failed run and one incomplete run."""
    for method, offset in OFFSETS.items():
        for seed, shift in enumerate(SHIFTS):
            fake_run(tmp_path, method, seed, [a + offset + shift for a in BASE])
    failed = _config("tsc", "cifar10_lt", 0, tmp_path)
    Path(failed["run_dir"]).mkdir(parents=True)
    write_json_atomic(Path(failed["run_dir"]) / "config.json", failed)
    write_result(Path(failed["run_dir"]), {**failed, "status": "failed", "error": "Traceback...\nRuntimeError: boom"})
    incomplete = _config("kcl", "cifar10_lt", 0, tmp_path)
    Path(incomplete["run_dir"]).mkdir(parents=True)
    write_json_atomic(Path(incomplete["run_dir"]) / "config.json", incomplete)
    return tmp_path


def test_load_records_keeps_failed_and_incomplete_apart(records):
    df = load_records(records)
    assert len(df) == 9 and set(df["state"]) == {"done"}
    assert set(df["method"]) == set(OFFSETS)
    missing = {m["method"]: m for m in df.attrs["not_done"]}
    assert missing["tsc"]["state"] == "failed" and missing["tsc"]["error"] == "RuntimeError: boom"
    assert missing["kcl"]["state"] == "incomplete"
    assert isinstance(df["per_class"].iloc[0], list) and df["class_counts"].iloc[0] == COUNTS
    assert {"hparams.lr", "wn_var", "params", "gflops", "images_per_s", "macro_f1", "ece"} <= set(df.columns)
    status = load_status(records)
    assert sorted(status["state"].value_counts().items()) == [("done", 9), ("failed", 1), ("incomplete", 1)]
    every = load_records(records, include="all")
    assert len(every) == 11 and every.loc[every["method"] == "tsc", "overall"].isna().all()
    one = load_records(df["run_dir"].iloc[0])  # a single run directory also works
    assert len(one) == 1


def test_regroup_with_other_thresholds_matches_hand_values(records):
    df = load_records(records, shots=(100, 20))
    ce0 = df[(df["method"] == "ce") & (df["seed"] == 0)].iloc[0]
    assert ce0["many"] == pytest.approx((5 * 0.9 + 3 * 0.7) / 8) and ce0["medium"] == pytest.approx(0.5)
    assert math.isnan(ce0["few"]) and ce0["few_classes"] == 0
    r = regroup(df, (500, 200))
    ce0 = r[(r["method"] == "ce") & (r["seed"] == 0)].iloc[0]
    assert (ce0["many_classes"], ce0["medium_classes"], ce0["few_classes"]) == (5, 2, 3)
    assert ce0["many"] == pytest.approx(0.9) and ce0["medium"] == pytest.approx(0.7)
    assert ce0["few"] == pytest.approx((0.7 + 0.5 + 0.5) / 3)
    assert load_records(records, shots=(500, 200))["few"].notna().all()
    default = load_records(records)  # CIFAR-10-LT's own thresholds (500/200, as the BNS paper) unless --shots
    assert (default["shots_many"] == 500).all() and default["few"].notna().all()


def test_mean_std_and_highlighting_by_hand(records):
    summary = summarize(load_records(records))
    ov = summary[summary["metric"] == "overall"].set_index("method")
    assert ov.loc["ce", "mean"] == pytest.approx(78.0) and ov.loc["ce", "std"] == pytest.approx(2.0)
    assert ov.loc["focal", "mean"] == pytest.approx(77.0) and ov.loc["ldam_drw", "mean"] == pytest.approx(81.0)
    assert (ov["n"] == 3).all() and ov.loc["ce", "seeds"] == "0,1,2"
    text = make_table(records, fmt="markdown", shots="100,20")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "**81.0 ± 2.0**" in rows["LDAM-DRW"] and "<u>78.0 ± 2.0</u>" in rows["CE"]
    assert "**" not in rows["Focal"] and "<u>" not in rows["Focal"]
    assert "n/a" in rows["CE"]  # CIFAR-10-LT has no few class at 100/20 (docs/protocol.md §0.3)
    assert "Many >100 (8)" in text and "Medium 20–100 (2)" in text and "Few <20 (0)" in text
    assert "Overall (10)" in text
    assert "1 failed" in text and "1 incomplete" in text  # excluded runs are named, not silently dropped
    assert "Few <200 (3)" in make_table(records, fmt="markdown")  # the dataset's default thresholds


def test_distinct_configs_are_separate_rows_not_seeds(tmp_path):
    fake_run(tmp_path, "ce", 0, BASE)
    fake_run(tmp_path, "ce", 1, [a + 0.02 for a in BASE])
    fake_run(tmp_path, "ce", 0, BASE, lr=0.05)
    fake_run(tmp_path, "ce", 0, BASE, dataset="cifar100_lt")
    ov = summarize(load_records(tmp_path)).query("metric == 'overall'").set_index(["row", "dataset"])
    assert ov.loc[("ce (lr=0.1)", "cifar10_lt"), "n"] == 2 and ov.loc[("ce (lr=0.05)", "cifar10_lt"), "n"] == 1
    assert ov.loc[("ce (lr=0.1)", "cifar10_lt"), "mean"] == pytest.approx(77.0)


def _edit_records(run_dir: Path, edit) -> None:
    """Apply ``edit`` to a fake run's config.json and result.json alike (they carry the same config)."""
    for name in ("config.json", "result.json"):
        rec = json.loads((run_dir / name).read_text())
        edit(rec)
        (run_dir / name).write_text(json.dumps(rec))


def test_explicit_class_counts_label_rows_in_the_command_line_form(tmp_path):
    """Liu & Liu's toy cases differ only in --class-counts: each setting is its own row, named 500x9,100 (the form
    --class-counts accepts), not a ten-number list."""
    from ltbench.data.longtail import format_class_counts, parse_class_counts

    assert format_class_counts([5000] * 9 + [100]) == "5000x9,100"
    assert format_class_counts([3, 2, 1, 1]) == "3,2,1x2"
    for text in ("5000x9,100", "1,2x3,1", "7"):
        assert format_class_counts(parse_class_counts(text)) == text
    for n, seed in ((500, 0), (500, 1), (2500, 0)):

        def edit(rec, n=n):
            rec["config"]["train_counts"] = [n] * 9 + [100]
            rec["config"]["hparams"], rec["resolved"]["hp"]["lr"] = {}, 0.1
            rec.setdefault("data", {})["provenance"] = {"imbalance_ratio": n / 100}  # follows from the counts

        _edit_records(fake_run(tmp_path, "ce", seed, BASE, lr=0.1 + n / 1e6), edit)  # lr only makes the ids differ
    ov = summarize(load_records(tmp_path)).query("metric == 'overall'").set_index("row")
    assert ov.loc["ce (train_counts=500x9,100)", "n"] == 2 and ov.loc["ce (train_counts=2500x9,100)", "n"] == 1
    text = make_table([tmp_path], fmt="markdown")  # numbers sort as numbers: 500 before 2500
    assert text.index("(train_counts=500x9,100)") < text.index("(train_counts=2500x9,100)")


def test_rows_are_not_told_apart_by_settings_an_older_record_predates(tmp_path):
    """A record made before an option (``decoder``) or hparam (``schedule``) existed lacks it: that is no setting
    of its own, so a bf16 run of older code and an fp32 run of newer code are named by precision alone, not
    ``schedule=–``. A setting both records have still tells them apart, unset (None) or not."""

    def run(n: int, schedule: str | None = None, **config) -> None:
        def edit(rec):
            rec["config"].update(config)
            rec["resolved"]["hp"]["lr"] = 0.1  # fake_run's lr only makes the run ids differ
            if schedule:
                rec["resolved"]["hp"]["schedule"] = schedule

        _edit_records(fake_run(tmp_path, "ce", 0, BASE, lr=0.1 + n * 1e-9), edit)

    run(0, precision="bf16")  # fake_run's config has no decoder, its hparams no schedule: older code
    run(1, "step", precision="fp32", decoder="pil")
    assert set(summarize(load_records(tmp_path))["row"]) == {"ce (precision=bf16)", "ce (precision=fp32)"}

    run(2, "step", precision="fp32", decoder=None)  # has the option, left unset
    rows = set(summarize(load_records(tmp_path))["row"])
    assert {"ce (precision=fp32, decoder=–)", "ce (precision=fp32, decoder=pil)"} <= rows, rows


def test_latex_is_booktabs_and_escaped(records):
    tex = make_table(records, fmt="latex", metrics="macro_f1,g_mean,ece,wn_var")
    body = [line for line in tex.splitlines() if not line.startswith("%")]
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\end{tabular}"):
        assert sum(cmd in line for line in body) == 1, cmd
    joined = "\n".join(body)
    assert joined.count("{") == joined.count("}")
    assert not re.search(r"(?<!\\)_", joined), "unescaped underscore"
    assert r"\textbf{81.0 $\pm$ 2.0}" in joined and r"\underline{78.0 $\pm$ 2.0}" in joined
    ncols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", joined).group(1))
    rows = [line for line in body if line.endswith(r"\\") and "multicolumn" not in line]
    assert rows and all(line.count("&") == ncols - 1 for line in rows)
    assert "CIFAR-10-LT" in joined and "Macro-F1" in joined


def test_published_join_difference(records, tmp_path):
    pub = tmp_path / "pub.csv"
    pd.DataFrame(
        [
            {"method": "ce", "dataset": "cifar10_lt", "imbalance_ratio": 100, "many": 80.0, "medium": None,
             "few": None, "overall": 70.0, "backbone": "resnet32", "shots": "500,200", "source": "Paper A",
             "status": "published", "note": ""},
            {"method": "ce", "dataset": "cifar10_lt", "imbalance_ratio": 10, "many": None, "medium": None,
             "few": None, "overall": 99.0, "backbone": "resnet32", "shots": "", "source": "IR10",
             "status": "published", "note": ""},
        ]
    ).to_csv(pub, index=False)  # fmt: skip
    summary = join_published(summarize(load_records(records)), load_published(pub))
    ce = summary[summary["method"] == "ce"].set_index("metric")
    assert ce.loc["overall", "published"] == 70.0 and ce.loc["overall", "diff"] == pytest.approx(8.0)
    assert ce.loc["many", "published"] == 80.0 and ce.loc["many", "diff"] == pytest.approx(12.0)  # same 500/200
    other = join_published(summarize(load_records(records, shots=(100, 20))), load_published(pub))
    many = other[(other["method"] == "ce") & (other["metric"] == "many")].iloc[0]
    assert many["published"] == 80.0 and math.isnan(many["diff"])  # other thresholds: no Δ
    text = make_table(records, fmt="markdown", published=pub)
    row = next(line for line in text.splitlines() if line.startswith("| CE "))
    assert "70.0" in row and "+8.0" in row and "Paper A" in text
    grid = build_grid(summary, ("many", "medium", "few", "overall"), published=True)
    assert "Pub." in grid.heads and "Δ" in grid.heads


def test_published_csv_is_complete():
    pub = load_published(PUBLISHED_CSV)
    assert {"method", "dataset", "many", "medium", "few", "overall", "backbone", "source", "note", "status"} <= set(
        pub.columns
    )
    poster = pub[pub["source"].str.contains("poster")]
    assert len(poster) == 40 and set(poster["dataset"]) == {"cifar10_lt", "cifar100_lt", "imagenet_lt", "inat2018"}
    bns = poster.set_index(["method", "dataset"]).loc[("bns_ipdpp", "cifar100_lt")]
    assert (bns["many"], bns["medium"], bns["few"], bns["overall"]) == (62.4, 59.7, 31.9, 52.4)
    cao = pub[pub["source"].str.startswith("Cao et al. 2019")].set_index(["method", "dataset"])["overall"]
    # LDAM-DRW paper (arXiv 1906.07413v2): Table 2 and appendix Table 5 print top-1 errors; accuracy = 100 - error
    assert cao[("focal", "cifar10_lt")] == pytest.approx(100 - 29.62)
    assert cao[("ce_drw", "cifar10_lt")] == pytest.approx(100 - 25.14)
    assert cao[("ce_drw", "cifar100_lt")] == pytest.approx(100 - 59.34)
    assert pub["status"].isin(["published", "secondary", "UNVERIFIED"]).all()


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    from ltbench.config import RunConfig
    from ltbench.run import execute

    out = tmp_path_factory.mktemp("real")
    cfg = RunConfig(method="ce", dataset="synthetic_lt", epochs=1, device="cpu", precision="fp32", out=str(out))
    execute(cfg, progress=False)
    return out


def test_real_run_record_loads(real_run):
    from ltbench.metrics import group_accuracy

    df = load_records(real_run)
    r = df.iloc[0]
    assert len(df) == 1 and r["method"] == "ce" and r["dataset"] == "synthetic_lt" and r["backbone"]
    assert len(r["per_class"]) == r["num_classes"] == len(r["class_counts"]) == len(r["weight_norms"])
    assert r["params"] > 0 and r["gflops"] > 0 and r["train_seconds"] > 0 and not math.isnan(r["wn_var"])
    again = regroup(df, (30, 10)).iloc[0]
    hand = group_accuracy(r["per_class"], r["class_counts"], 30, 10)
    for g in ("many", "medium", "few"):
        assert again[f"{g}_classes"] == hand[f"{g}_classes"]
        assert again[g] == pytest.approx(hand[g], nan_ok=True)
    assert "synthetic" in make_table(real_run, fmt="markdown")


@pytest.mark.parametrize("kind", ["per-class", "weight-norms", "groups", "curves"])
def test_plots_write_png_and_pdf(real_run, records, tmp_path, kind):
    from ltbench.report.plot import make_plot

    paths = make_plot([real_run, records], kind, tmp_path / "fig")
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"] and all(p.stat().st_size > 0 for p in paths)


def test_tsne_and_confusion_need_stored_data(real_run, records, tmp_path):
    from ltbench.report.plot import make_plot

    bare = Path(load_records(records).query("method == 'ce' and seed == 1")["run_dir"].iloc[0])
    with pytest.raises(ConfigError, match="no feature sample.*features.npz"):
        make_plot(bare, "tsne", tmp_path)
    with pytest.raises(ConfigError, match="predictions.npz"):
        make_plot(bare, "confusion", tmp_path)
    with pytest.raises(ConfigError, match="did you mean 'tsne'"):
        make_plot(real_run, "tnse", tmp_path)
    for kind in ("tsne", "confusion"):  # real runs store both files
        assert sorted(p.suffix for p in make_plot(real_run, kind, tmp_path / kind)) == [".pdf", ".png"]
    run_dir = Path(load_records(records).query("method == 'ce' and seed == 0")["run_dir"].iloc[0])
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 6)
    np.savez(run_dir / "features.npz", features=rng.normal(size=(60, 8)) + labels[:, None], labels=labels)
    np.savez(run_dir / "predictions.npz", preds=rng.integers(0, 10, 200), labels=np.repeat(np.arange(10), 20))
    with pytest.warns(UserWarning, match="no features.npz"):
        tsne = make_plot(run_dir.parent, "tsne", tmp_path / "t")
    assert [p.name for p in tsne] == [f"tsne_{run_dir.name}.png", f"tsne_{run_dir.name}.pdf"]
    conf = make_plot(run_dir, "confusion", tmp_path / "c")
    assert sorted(p.suffix for p in conf) == [".pdf", ".png"]


def test_cli_table_and_plot(records, tmp_path, capsys):
    assert main(["table", str(records), "--format", "markdown", "--metrics", "macro_f1"]) == 0
    assert "Macro-F1" in capsys.readouterr().out
    out = tmp_path / "t" / "table.tex"
    assert main(["table", str(records), "--published", "--out", str(out)]) == 0
    assert out.read_text().startswith("%") and r"\toprule" in out.read_text()
    assert main(["table", str(records), "--format", "csv", "--datasets", "cifar10_lt"]) == 0
    assert capsys.readouterr().out.startswith("row,method,dataset,metric,mean,std,n")
    assert main(["plot", str(records), "--kind", "groups", "--out", str(tmp_path / "f")]) == 0
    assert (tmp_path / "f" / "groups.pdf").exists()


@pytest.mark.parametrize(
    "args, expect",
    [
        (["table", "{empty}"], "no completed runs"),
        (["table", "{empty}/nope"], "does not exist"),
        (["table", "{records}", "--shots", "5"], "MANY,FEW"),
        (["table", "{records}", "--shots", "20,100"], "FEW <= MANY"),
        (["table", "{records}", "--metrics", "f1"], "unknown metric"),
        (["table", "{records}", "--datasets", "cifar100_lt"], "no completed runs on"),
        (["table", "{records}", "--format", "html"], "latex, markdown, csv"),
        (["plot", "{records}", "--kind", "pie"], "unknown plot kind"),
    ],
)
def test_cli_bad_input_exit_2(records, tmp_path, capsys, args, expect):
    (tmp_path / "empty").mkdir()
    argv = [a.format(empty=tmp_path / "empty", records=records) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expect in err and len(err.strip().splitlines()) == 1


def test_cli_subprocess_one_line_no_traceback(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "ltbench", "table", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("ltbench: error: no completed runs")


def test_linear_probe_of_finished_runs(tmp_path):
    """The probe rebuilds each run's model, fits a class-balanced linear classifier on frozen features and
    reports the benchmark's groups; on separable features it is perfect; it is deterministic."""
    import torch

    from ltbench.report.probe import fit_probe, probe_run
    from ltbench.run import execute
    from tests.conftest import tiny_config

    x = torch.nn.functional.normalize(torch.eye(4).repeat(5, 1) + 0.01 * torch.randn(20, 4), dim=1)
    y = torch.arange(4).repeat(5)
    assert (fit_probe(x, y, 4)(x).argmax(1) == y).all()
    runs = [tiny_config(tmp_path, m, epochs=1) for m in ("ce", "kcl")]
    for cfg in runs:
        execute(cfg, progress=False)
    first = [probe_run(cfg.run_dir, None) for cfg in runs]
    assert [r["method"] for r in first] == ["ce", "kcl"]
    assert all(0.0 <= r["overall"] <= 1.0 for r in first)
    again = probe_run(runs[0].run_dir, None)
    assert json.dumps(again, sort_keys=True) == json.dumps(first[0], sort_keys=True)  # NaN-safe equality


def test_probe_cli_takes_a_sweep_folder_and_writes_its_table_there(tmp_path, capsys):
    """``ltbench probe SWEEP_DIR`` probes every finished run under it, skips (and names) the unfinished ones and
    writes probe.md (the printed table) and probe.csv into that folder; ``--out`` puts them elsewhere."""
    import argparse

    import pandas as pd

    from ltbench.report.probe import main
    from ltbench.run import execute
    from tests.conftest import tiny_config

    sweep = tmp_path / "sweep"
    cfg = tiny_config(sweep, "ce", epochs=1)
    execute(cfg, progress=False)
    (sweep / "half-done").mkdir()
    (sweep / "half-done" / "config.json").write_text(json.dumps({"config": {"method": "ce"}}))
    args = argparse.Namespace(run_dirs=[str(sweep)], data_root=None, device="cpu", threads=1, out=None)
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert (sweep / "probe.md").read_text() == out and "| ce " in out
    assert "skipping half-done" in err
    csv = pd.read_csv(sweep / "probe.csv")
    assert list(csv["run"]) == [Path(cfg.run_dir).name] and 0.0 <= csv["overall"][0] <= 1.0
    args.run_dirs, args.out = [str(cfg.run_dir)], str(tmp_path / "elsewhere")
    assert main(args) == 0 and (tmp_path / "elsewhere" / "probe.csv").exists()


def test_git_info_hashes_the_uncommitted_diff(tmp_path, monkeypatch):
    """A dirty tree gets a digest of its diff, so two differently modified trees never look alike."""
    import subprocess

    import ltbench.records as records

    repo = tmp_path / "repo"
    (repo / "ltbench").mkdir(parents=True)
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (repo / "f.txt").write_text("a\n")
    run("add", "f.txt")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    monkeypatch.setattr(records, "__file__", str(repo / "ltbench" / "records.py"))
    clean = records.git_info()
    assert clean["dirty"] is False and clean["diff_sha256"] is None and len(clean["commit"]) == 40
    (repo / "f.txt").write_text("b\n")
    one = records.git_info()
    (repo / "f.txt").write_text("c\n")
    two = records.git_info()
    assert one["dirty"] and two["dirty"] and one["diff_sha256"] != two["diff_sha256"]


def test_best_test_column_is_the_best_logged_or_final_epoch_and_marked(tmp_path):
    run_dir = fake_run(tmp_path, "ce", 0, BASE)  # final overall 0.78; the log holds test_acc 0.5 at epoch 1
    with open(run_dir / "log.jsonl", "a") as f:
        f.write(json.dumps({"stage": 0, "epoch": 3, "loss": 0.9, "test_acc": 0.83}) + "\n")
    df = load_records(tmp_path)
    assert df["best_test"].iloc[0] == pytest.approx(0.83) and df["epochs_evaluated"].iloc[0] == 3
    text = make_table(tmp_path, metrics="best_test")
    assert "Best-test†" in text and "| 83.0 " in text and "selected on the test set" in text
    assert "Best-test" not in make_table(tmp_path)  # never by default


def test_a_shortened_recipe_is_labelled_next_to_published_numbers(tmp_path):
    run_dir = fake_run(tmp_path, "ce", 0, BASE)
    for name in ("config.json", "result.json"):
        rec = json.loads((run_dir / name).read_text())
        rec["config"]["preset"], rec["resolved"]["presets"] = ["quick"], ["quick"]
        (run_dir / name).write_text(json.dumps(rec))
    text = make_table(tmp_path, published=True)
    assert "CE [quick]" in text and "its Δ to the paper measures the budget" in text
    assert "[quick]" not in make_table(tmp_path)  # without published numbers nothing is compared


def test_runs_that_differ_only_in_budget_are_rows_named_by_it(tmp_path):
    """A quick-preset run and an --epochs 40 run of one method (Liu & Liu's step-matched control) are two rows named
    by their budget, as the published tag names it ("CE [quick]"), not by the epochs and lr milestones the budget
    scales; next to published numbers the tag is not printed twice."""
    for lr, preset, epochs in ((0.1, ["quick"], None), (0.11, [], 40)):
        run_dir = fake_run(tmp_path / "ir100", "ce", 0, BASE, lr=lr)  # lr only makes the run ids differ
        for name in ("config.json", "result.json"):
            rec = json.loads((run_dir / name).read_text())
            rec["config"].update(preset=preset, epochs=epochs, hparams={})
            rec["resolved"]["presets"], rec["resolved"]["hp"]["lr"] = preset, 0.1
            rec["resolved"]["hp"]["epochs"] = epochs or 20
            (run_dir / name).write_text(json.dumps(rec))
    ov = summarize(load_records(tmp_path / "ir100")).query("metric == 'overall'").set_index("row")
    assert set(ov.index) == {"ce [quick]", "ce [40 ep]"} and (ov["n"] == 1).all()
    for text in (make_table(tmp_path / "ir100"), make_table(tmp_path / "ir100", published=True)):
        assert "| CE [quick] " in text and "| CE [40 ep] " in text and "[quick] [quick]" not in text
    assert "(overall):" in make_table(tmp_path / "ir100", published=True)  # one note per number, not per row
    fake_run(tmp_path / "ir10", "ce", 0, BASE, ir=10.0)  # the full recipe at another ratio: named by it
    rows = set(summarize(load_records(tmp_path)).query("metric == 'overall'")["row"])
    assert rows == {
        "ce (imbalance_ratio=100.0) [quick]",
        "ce (imbalance_ratio=10.0)",
        "ce (imbalance_ratio=100.0) [40 ep]",
    }


def test_run_records_use_the_dataset_thresholds():
    from ltbench.config import RunConfig
    from ltbench.registry import METHODS
    from ltbench.resolve import resolve

    assert resolve(RunConfig(method="ce", dataset="cifar10_lt"), METHODS.get("ce")).shots == (500, 200)
    assert resolve(RunConfig(method="ce", dataset="cifar100_lt"), METHODS.get("ce")).shots == (100, 20)
    assert resolve(RunConfig(method="ce", dataset="cifar10_lt", shots=(100, 20)), METHODS.get("ce")).shots == (100, 20)


def test_class_similarity_by_hand_and_its_figure(real_run, records, tmp_path):
    """Two classes with parallel mean features (cos 1), one orthogonal; the rarest class's highest similarity to a
    more frequent one is 1; confusion rows are shares of that class's test images, zero diagonal."""
    from ltbench.report.plot import make_plot
    from ltbench.report.similarity import class_similarity

    feats = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 0.0], [0.0, 5.0]])
    sim = class_similarity(feats, np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1, 2]), np.array([0, 0, 1, 1, 2]),
                           [100, 10, 50])  # fmt: skip
    assert np.allclose(sim["feature_cosine"], [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    assert np.allclose(sim["confusion"], [[0, 0.5, 0], [0, 0, 0], [0, 0, 0]])
    assert sim["most_similar_frequent"] == [None, 1.0, 0.0]
    record = json.loads(next(Path(real_run).glob("runs/*/result.json")).read_text())
    c = record["data"]["num_classes"]
    assert np.asarray(record["similarity"]["feature_cosine"]).shape == (c, c)  # every run records it (C <= 100)
    paths = make_plot(real_run, "similarity", tmp_path / "s")
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"] and paths[0].name.startswith("similarity_CE_")
    bare = Path(load_records(records).query("method == 'ce' and seed == 1")["run_dir"].iloc[0])
    with pytest.raises(ConfigError, match="no class similarity"):
        make_plot(bare, "similarity", tmp_path)


def test_sweep_figure_follows_classes_against_a_swept_setting(tmp_path):
    """`ltbench plot --kind sweep --x PARAM --classes ...` (Liu & Liu's studies): the swept value comes from a
    record column, a hparam, a list element or --mix-similar's ρ/λ; one line per class or group and method."""
    from ltbench.report.plot import make_plot
    from ltbench.report.study_plots import _target_name, sweep_values

    frame = pd.DataFrame(
        {
            "class_counts": [[500, 100], [1000, 100]],
            "mix_similar": ["0:9:0.2:0.4", None],
            "hparams.lr": ["0.1", "0.05"],
        }
    )
    assert sweep_values(frame, "class_counts[0]").tolist() == [500, 1000]
    assert sweep_values(frame, "mix_similar.rho").tolist() == [0.2, 0.0]  # no injection: ρ = 0
    assert sweep_values(frame, "mix_similar.lambda").tolist() == [0.4, 0.0]
    assert sweep_values(frame, "lr").tolist() == [0.1, 0.05]
    with pytest.raises(ConfigError, match="not a setting of these runs"):
        sweep_values(frame, "momentum")
    for seed in range(2):
        fake_run(tmp_path, "ce", seed, [a + 0.01 * seed for a in BASE])
        fake_run(tmp_path, "ce", seed, [a - 0.1 for a in BASE], lr=0.05)
    paths = make_plot(tmp_path, "sweep", tmp_path / "fig", x="lr", classes="0,few,overall,0-8")
    assert _target_name("0-8", (0, 8), [f"c{i}" for i in range(10)]) == "c0–c8 (mean)"
    assert _target_name("9", (9, 9), None) == "class 9" and _target_name("few", None, None) == "few"
    assert [p.name for p in paths] == ["sweep_lr.png", "sweep_lr.pdf"]
    shares = make_plot(tmp_path, "sweep", tmp_path / "fig", x="lr", classes="9:0,9")  # no similarity record: empty
    assert [p.name for p in shares] == ["shares_lr.png", "shares_lr.pdf"]
    held = make_plot(tmp_path, "sweep", tmp_path / "fig", x="seed", classes="0", where="lr=0.05")
    assert held[0].name == "sweep_seed_where_lr_0.05.png"
    with pytest.raises(ConfigError, match="no run matches --where lr=0.3"):
        make_plot(tmp_path, "sweep", tmp_path / "fig", x="seed", where="lr=0.3")
    with pytest.raises(ConfigError, match="needs --x"):
        make_plot(tmp_path, "sweep", tmp_path / "fig")


def test_sweep_figure_holds_the_other_setting_with_where():
    """A grid over ρ and λ (the similarity study) is drawn against ρ at λ = 0.2 and against λ at ρ = 0.2."""
    from ltbench.report.study_plots import where_runs

    grid = ["0:9:0:0.2", "0:9:0.1:0.2", "0:9:0.2:0.2", "0:9:0.4:0.2", "0:9:0.2:0", "0:9:0.2:0.4", "0:9:0.2:0.6"]
    frame = pd.DataFrame({"mix_similar": grid})
    assert where_runs(frame, "mix_similar.lambda=0.2")["mix_similar"].tolist() == grid[:4]
    assert where_runs(frame, "mix_similar.rho=0.2")["mix_similar"].tolist() == [grid[2], *grid[4:]]
    assert where_runs(frame, "mix_similar.rho=0.2,mix_similar.lambda=0.6")["mix_similar"].tolist() == [grid[6]]
    assert where_runs(frame, None).equals(frame)
    with pytest.raises(ConfigError, match="expected PARAM=VALUE"):
        where_runs(frame, "mix_similar.rho")
    with pytest.raises(ConfigError, match="VALUE must be a number"):
        where_runs(frame, "mix_similar.rho=high")


@pytest.mark.parametrize("n_methods", [20, 3])
def test_figures_of_many_methods_are_readable(tmp_path, monkeypatch, n_methods):
    """Every per-method figure of a 20-method sweep: 20 distinct colours, display names (not registry keys), a
    legend no taller than the figure, x tick labels that do not overlap, labelled thresholds, a caption."""
    import ltbench.report.plot as plot_mod
    from ltbench.registry import METHODS

    methods = ["ldam_drw", *[m for m in METHODS.names() if m != "ldam_drw"]][:n_methods]
    for i, method in enumerate(methods):
        fake_run(tmp_path, method, 0, [min(1.0, a + 0.01 * i) for a in BASE])
    captured = {}

    def keep(fig, out_dir, stem):
        fig.canvas.draw()
        captured[stem] = fig
        return [out_dir / f"{stem}.png"]

    monkeypatch.setattr(plot_mod, "save_figure", keep)
    for kind in ("per-class", "groups", "curves"):
        plot_mod.make_plot(tmp_path, kind, tmp_path / "fig")
    renderer = captured["per-class"].canvas.get_renderer()
    for stem, fig in captured.items():
        legends = [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
        assert legends, stem
        texts = [t.get_text() for lg in legends for t in lg.get_texts()]
        assert "ldam_drw" not in texts and "LDAM-DRW" in texts, stem  # display names, as the tables print
        assert len(set(texts) & {METHODS.get(m).display_name or m for m in methods}) == n_methods
        for lg in legends:
            assert lg.get_window_extent(renderer).height <= fig.bbox.height * 1.02, stem
        colours = {tuple(h.get_color()) if hasattr(h, "get_color") else tuple(h.get_facecolor())
                   for lg in legends for h in lg.legend_handles}  # fmt: skip
        assert len(colours) >= n_methods, stem
        assert any(t.get_text().startswith(("Lines:", "Bars:")) for t in fig.texts), stem  # sd explained
    ax = captured["per-class"].axes[0]
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
    boxes = [b for b in boxes if ax.bbox.x0 - 5 <= b.x0 and b.x1 <= ax.bbox.x1 + 5]
    assert all(a.x1 + 2 <= b.x0 for a, b in zip(boxes, boxes[1:])), "x tick labels touch or overlap"
    assert any(t.get_text().startswith(("many >", "few <")) for t in ax.texts)


def test_tsne_legend_runs_head_to_tail():
    """t-SNE colours read as the long tail: classes ordered by decreasing training count (ties by index), each
    labelled with its count; above 20 classes the groups come many → medium → few, absent groups left out."""
    import numpy as np

    from ltbench.report.plot import _hue

    hue, order, title = _hue(np.array([0, 2, 1]), [50, 5000, 300], (100, 20), ["cat", "dog", "eel"])
    assert order == ["dog (5000)", "eel (300)", "cat (50)"] and hue == ["cat (50)", "eel (300)", "dog (5000)"]
    assert "head" in title
    counts = [600] * 10 + [50] * 15
    hue, order, _ = _hue(np.array([24, 0, 3]), counts, (100, 20), None)
    assert order == ["many", "medium"] and hue == ["medium", "many", "many"]


def test_methods_narrow_a_table_and_name_what_is_missing(records):
    """``--methods`` keeps only the named methods' rows (keys or printed names, e.g. LDAM-DRW); a method with no
    completed run is a one-line error that lists what the records hold."""
    from ltbench.report.table import make_table

    full = make_table(records, metrics="ece")
    narrowed = make_table(records, metrics="ece", methods="LDAM-DRW,ce")
    rows = lambda text: [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")][1:]  # noqa: E731
    assert rows(narrowed) == [r for r in rows(full) if r in ("CE", "LDAM-DRW")] and len(rows(narrowed)) == 2
    with pytest.raises(ConfigError, match=r"no completed runs of \['bbn'\]; the records hold"):
        make_table(records, methods="BBN")


def test_imbalance_ratios_side_by_side_as_column_groups(tmp_path):
    """--columns imbalance_ratio: the seed paper's Table 1 layout, one column group per ratio (descending), one row
    per method; by default the same runs are separate rows named by their ratio."""
    for ir, shift in ((10.0, 0.1), (100.0, 0.0), (50.0, 0.05)):
        for seed in (0, 1):
            fake_run(tmp_path, "ce", seed, [a + shift + 0.01 * seed for a in BASE], ir=ir)
        fake_run(tmp_path, "focal", 0, [a + shift - 0.01 for a in BASE], ir=ir)
    text = make_table([tmp_path], columns="imbalance_ratio", fmt="markdown")
    head = text.splitlines()[0]
    assert head.index("CIFAR-10-LT IR 100 Overall") < head.index("CIFAR-10-LT IR 50 Overall")
    assert head.index("CIFAR-10-LT IR 50 Overall") < head.index("CIFAR-10-LT IR 10 Overall")
    rows = [line.split("|")[1].strip() for line in text.splitlines()[2:] if line.startswith("|")]
    assert rows == ["CE", "Focal"]
    ce = summarize(by_imbalance_ratio(load_records(tmp_path))).query("metric == 'overall' and row == 'ce'")
    means = dict(zip(ce["dataset"], ce["mean"]))
    assert means == pytest.approx({"cifar10_lt@IR100": 76.5, "cifar10_lt@IR50": 81.5, "cifar10_lt@IR10": 86.5})
    assert set(ce["n"]) == {2}
    default = make_table([tmp_path], fmt="markdown")
    assert "CE (imbalance_ratio=10.0)" in default or "CE (imbalance_ratio=10)" in default
    with pytest.raises(ConfigError, match="--columns 'ir'"):
        make_table([tmp_path], columns="ir")


def test_published_numbers_join_each_imbalance_ratio_column_group(tmp_path):
    """--columns imbalance_ratio with --published: each ratio's group gets the paper's number for that ratio (the
    seed paper's Table 1 beside ours), none where the paper has none."""
    for ir, shift in ((10.0, 0.1), (100.0, 0.0), (50.0, 0.05)):
        fake_run(tmp_path, "ce", 0, [a + shift for a in BASE], ir=ir)  # overall 76.0 / 81.0 / 86.0
    pub = tmp_path / "pub.csv"
    rows = [("ce", 100, 70.0, "Table 1"), ("ce", 10, 85.0, "Table 1"), ("focal", 100, 1.0, "Table 1")]
    pd.DataFrame(
        [{"method": m, "dataset": "cifar10_lt", "imbalance_ratio": ir, "overall": v, "backbone": "resnet32",
          "shots": "", "source": s, "status": "published", "note": ""} for m, ir, v, s in rows]
    ).to_csv(pub, index=False)  # fmt: skip
    text = make_table([tmp_path], columns="imbalance_ratio", published=pub, fmt="markdown")
    head = [h.strip() for h in text.splitlines()[0].split("|")]
    ce = [c.strip() for c in next(line for line in text.splitlines() if line.startswith("| CE ")).split("|")]
    after = {ir: head.index(f"CIFAR-10-LT IR {ir} Overall (10)") + 1 for ir in (100, 50, 10)}
    cell = {ir: (head[i], ce[i], ce[i + 1]) for ir, i in after.items()}
    assert cell[100] == ("CIFAR-10-LT IR 100 Pub.", "70.0", "+6.0")
    assert cell[10] == ("CIFAR-10-LT IR 10 Pub.", "85.0", "+1.0")
    assert cell[50][0] == "CIFAR-10-LT IR 50 n"  # no published number at IR 50: no Pub. / Δ columns there


def test_confusion_share_as_a_table_metric(tmp_path):
    """--metrics confusion:A:B: the share of class A's test images predicted as B (the record's similarity.confusion),
    mean ± sd over seeds, not ranked; a run without a similarity record gives an empty cell, not a zero."""
    import json

    for seed, share in ((0, 0.25), (1, 0.35)):
        run = fake_run(tmp_path, "ce", seed, BASE)
        rec = json.loads((run / "result.json").read_text())
        confusion = [[0.0] * 10 for _ in range(10)]
        confusion[9][0], confusion[9][1] = share, 0.5
        rec["similarity"] = {"confusion": confusion}
        (run / "result.json").write_text(json.dumps(rec))
    fake_run(tmp_path, "focal", 0, BASE)  # no similarity record
    cells = summarize(load_records(tmp_path), ("confusion:9:0", "confusion:9:9")).set_index(["row", "metric"])
    assert cells.loc[("ce", "confusion:9:0"), "mean"] == pytest.approx(30.0)
    assert cells.loc[("ce", "confusion:9:0"), "std"] == pytest.approx(100 * 0.1 / 2**0.5)
    assert cells.loc[("ce", "confusion:9:9"), "n"] == 0 and cells.loc[("focal", "confusion:9:0"), "n"] == 0
    text = make_table([tmp_path], fmt="markdown", metrics="confusion:9:0")
    assert "CIFAR-10-LT 9 as 0" in text.splitlines()[0] and "30.0 ± 7.1" in text and "**30.0" not in text
    assert "share of class A's test images predicted as class B" in text


def test_one_class_accuracy_as_a_table_metric(tmp_path):
    """--metrics class:N: the test accuracy of class N, mean ± sd over seeds (the class Liu & Liu follow)."""
    for seed in (0, 1):
        fake_run(tmp_path, "ce", seed, [a + 0.02 * seed for a in BASE])
    summary = summarize(load_records(tmp_path), ("overall", "class:0", "class:9"))
    cells = summary.set_index("metric")
    assert cells.loc["class:9", "mean"] == pytest.approx(51.0) and cells.loc["class:0", "mean"] == pytest.approx(91.0)
    assert cells.loc["class:9", "std"] == pytest.approx(2**0.5) and cells.loc["class:9", "n"] == 2
    text = make_table([tmp_path], fmt="markdown", metrics="class:9")
    assert "CIFAR-10-LT Class 9" in text.splitlines()[0] and "51.0 ± 1.4" in text
    assert summarize(load_records(tmp_path), ("class:12",))["n"].tolist() == [0]  # no such class: empty cell
    with pytest.raises(ConfigError, match="class:N, class:A-B or confusion:A:B"):
        make_table([tmp_path], metrics="class:x")
    # class:A-B: the mean over classes A..B, each class once (Liu & Liu's "the rest": classes 1-9 of toy case 1)
    rest = summarize(load_records(tmp_path), ("class:0-8",)).set_index("metric")
    assert rest.loc["class:0-8", "mean"] == pytest.approx(100 * (5 * 0.9 + 3 * 0.7 + 0.5) / 9 + 1.0)
    assert "CIFAR-10-LT Classes 0–8" in make_table([tmp_path], fmt="markdown", metrics="class:0-8").splitlines()[0]
    assert summarize(load_records(tmp_path), ("class:5-10",))["n"].tolist() == [0]  # past the last class: empty
    with pytest.raises(ConfigError, match="runs backwards"):
        make_table([tmp_path], metrics="class:8-0")
