"""Experiment trackers (--tracker): TensorBoard events read back, W&B offline files, and the observer rule — a
tracker failure costs one line and never the run."""

from __future__ import annotations

import json

import pytest

from ltbench.config import RunConfig
from ltbench.errors import ConfigError
from ltbench.run import execute


def _config(out, tracker: str, **kw) -> RunConfig:
    return RunConfig(method="ce", dataset="synthetic_lt", out=str(out), epochs=2, eval_every=1, precision="fp32",
                     device="cpu", tracker=tracker, hparams={"batch_size": 8}, **kw)  # fmt: skip


def test_tensorboard_events_hold_steps_epochs_and_final_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _config(tmp_path, "tensorboard")
    record = execute(cfg, progress=False)
    events = EventAccumulator(str(cfg.run_dir / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/images_per_s", "epoch/loss", "epoch/test_acc", "test/overall"} <= tags
    assert {"test/medium", "test/few", "test/macro_f1"} <= tags  # synthetic_lt has no many-shot class (NaN: left out)
    assert [e.step for e in events.Scalars("epoch/loss")] == [0, 1]
    log = [json.loads(line) for line in (cfg.run_dir / "log.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("epoch/loss")] == pytest.approx([e["loss"] for e in log])
    assert events.Scalars("test/overall")[0].value == pytest.approx(record["metrics"]["overall"])
    steps = [e.step for e in events.Scalars("train/loss")]  # training images seen since the run began
    n_train = sum(record["data"]["class_counts"])
    assert steps == sorted(steps) and steps[-1] == 2 * n_train
    assert "test/per_class_accuracy" in events.Tags()["histograms"]
    assert {"config/text_summary", "run_id/text_summary"} <= set(events.Tags()["tensors"])


def test_wandb_offline_run_is_written_under_the_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = _config(tmp_path, "wandb", sweep="my_sweep")
    assert execute(cfg, progress=False)["status"] == "done"
    [offline] = list((cfg.run_dir / "wandb").glob("offline-run-*"))
    assert any(offline.glob("*.wandb"))


def test_a_failing_tracker_costs_one_line_and_never_the_run(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard")
    from ltbench.train import trackers

    calls = {"n": 0}

    def broken(self, images_seen, values):
        calls["n"] += 1
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trackers.TensorBoardTracker, "step", broken)
    reference = execute(_config(tmp_path / "ref", "none"), progress=False)
    record = execute(_config(tmp_path / "tb", "tensorboard"), progress=False)
    assert record["status"] == "done"
    assert json.dumps(record["metrics"]) == json.dumps(reference["metrics"])  # (NaN-safe) the same run
    err = capsys.readouterr().err
    assert err.count("tracker failed") == 1 and "No space left on device" in err
    assert calls["n"] == 1  # disabled after its first failure


def test_an_unknown_or_missing_tracker_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="--tracker 'mlflow' is not one of none, tensorboard, wandb"):
        _config(tmp_path, "mlflow")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = _config(tmp_path, "wandb")
    with pytest.raises(ConfigError, match=r'pip install "ltbench\[wandb\]"'):
        execute(cfg, progress=False)
    assert not cfg.run_dir.exists()  # refused before anything was written


def test_the_tracker_is_not_part_of_the_run_id(tmp_path):
    assert _config(tmp_path, "tensorboard").run_id == _config(tmp_path, "none").run_id


def test_a_sweep_passes_its_tracker_to_every_run(tmp_path):
    import subprocess
    import sys

    spec = tmp_path / "s.toml"
    spec.write_text('[sweep]\nname = "s"\nmethods = ["ce"]\ndatasets = ["synthetic_lt"]\n')
    cmd = [sys.executable, "-m", "ltbench", "sweep", str(spec), "--tracker", "tensorboard", "--dry-run"]
    with_tracker = subprocess.run([*cmd, "--out", str(tmp_path)], capture_output=True, text=True)
    without = subprocess.run([*cmd[:-3], "--dry-run", "--out", str(tmp_path)], capture_output=True, text=True)
    assert with_tracker.returncode == 0, with_tracker.stderr
    assert with_tracker.stdout == without.stdout  # same runs (the tracker is not part of a run id)

    from ltbench.cli.main import build_parser
    from ltbench.cli.sweep import spec_from_args

    args = build_parser().parse_args(["sweep", str(spec), "--tracker", "wandb"])
    assert spec_from_args(args).run["tracker"] == "wandb"
