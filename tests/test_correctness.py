"""Correctness items of the outside review: checkpoints (corrupt, refused, crafted), the frozen-weights guard,
precision in the run id, capped class counts, console robustness, file permissions, divergence warnings."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ltbench.config import RunConfig
from ltbench.errors import CheckpointError, ConfigError, DataError, FrozenWeightsChanged
from ltbench.method import Stage
from ltbench.methods.one_stage import OneStageLoss
from ltbench.records import log_entries, read_json, run_state
from ltbench.registry import METHODS
from ltbench.run import execute
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture
def registered():
    """Register test-only methods for one test and remove them afterwards."""
    added = []

    def add(name, cls):
        METHODS.register(name)(cls)
        added.append(name)
        return cls

    yield add
    for name in added:
        METHODS._entries.pop(name)


# ------------------------------------------------------------------ checkpoints
def test_truncated_checkpoint_is_kept_aside_and_the_run_restarts(out_dir):
    fresh = execute(tiny_config(out_dir / "ref", epochs=2), progress=False)  # the same run, never damaged
    cfg = tiny_config(out_dir, epochs=2)
    execute(cfg, progress=False)  # leaves a checkpoint we damage
    run_dir = cfg.run_dir
    data = (run_dir / "ckpt.pt").read_bytes()
    (run_dir / "done").unlink()
    (run_dir / "result.json").unlink()
    (run_dir / "ckpt.pt").write_bytes(data[: len(data) // 2])
    rec = execute(cfg, progress=False)
    aside = list(run_dir.glob("ckpt.pt.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == data[: len(data) // 2]  # never deleted
    assert list(run_dir.glob("log.jsonl.before-*"))  # the old log moved aside with it
    assert rec["status"] == "done" and [e["epoch"] for e in log_entries(run_dir)] == [0, 1]
    # restarted from scratch: exactly the undamaged run's result (JSON: an empty shot group's NaN equals itself)
    assert json.dumps(rec["metrics"], sort_keys=True) == json.dumps(fresh["metrics"], sort_keys=True)


def test_a_checkpoint_the_code_cannot_use_stops_the_run_and_keeps_every_file(out_dir):
    cfg = tiny_config(out_dir, epochs=2)
    execute(cfg, progress=False)
    run_dir = cfg.run_dir
    blob = torch.load(run_dir / "ckpt.pt", weights_only=True)
    blob["model"] = {"renamed." + k: v for k, v in blob["model"].items()}  # as after a code change
    torch.save(blob, run_dir / "ckpt.pt")
    (run_dir / "done").unlink()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != "run.lock"}
    with pytest.raises(CheckpointError, match="does not fit this code's model.*every file is kept"):
        execute(cfg, progress=False)
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != "run.lock"}
    assert after == before


class _Payload:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_carrying_a_pickled_payload_is_refused_and_runs_nothing(out_dir, tmp_path):
    cfg = tiny_config(out_dir, epochs=2)
    execute(cfg, progress=False)
    (cfg.run_dir / "done").unlink()
    marker = tmp_path / "pwned"
    torch.save({"state": {"stage": 0}, "evil": _Payload(marker)}, cfg.run_dir / "ckpt.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        execute(cfg, progress=False)
    from ltbench.restore import load_finished  # the teacher / probe path reads checkpoints too

    (cfg.run_dir / "done").touch()
    with pytest.raises(CheckpointError):
        from ltbench.method import DataInfo

        rec = read_json(cfg.run_dir / "result.json")
        info = DataInfo(rec["data"]["num_classes"], rec["data"]["class_counts"], 16, rec["data"]["name"])
        load_finished(cfg.run_dir, info, torch.device("cpu"))
    assert not marker.exists()


# ------------------------------------------------------------------ the frozen-weights guard
class _Meddler(OneStageLoss):
    """A buggy method: its head-only stage nudges the backbone."""

    display_name = "meddler"

    def stages(self):
        first = super().stages()[0]
        return [first, Stage(name="head", epochs=1, lr=0.1, batch_size=64, trainable="head")]

    def on_epoch_start(self, stage, epoch, model, ctx):
        if stage.name == "head":
            with torch.no_grad():
                next(model.backbone.parameters()).add_(1.0)


def test_frozen_weights_changing_fails_the_run_with_a_clear_error(out_dir, registered):
    registered("zz_meddler", _Meddler)
    cfg = tiny_config(out_dir, method="zz_meddler", epochs=1)
    with pytest.raises(FrozenWeightsChanged, match="trains only model.head, yet weights it declares frozen changed"):
        execute(cfg, progress=False)
    assert run_state(cfg.run_dir) == "failed"
    assert "declares frozen" in read_json(cfg.run_dir / "result.json")["error"]


# ------------------------------------------------------------------ precision and the run id
def test_auto_precision_is_resolved_before_the_run_id(out_dir):
    from ltbench.run import concrete
    from ltbench.train.runtime import resolve_precision

    auto = tiny_config(out_dir, precision="auto", epochs=1)
    rec = execute(auto, progress=False)
    actual = resolve_precision("auto", torch.device("cpu"))
    assert rec["env"]["precision"] == actual == rec["config"]["precision"]
    assert rec["run_id"] == tiny_config(out_dir, precision=actual, epochs=1).run_id == concrete(auto).run_id
    assert rec["run_id"] != auto.run_id


@pytest.mark.parametrize(
    "flags, amx, expected", [(["avx512_bf16"], False, "bf16"), ([], True, "bf16"), (["avx2"], False, "fp32")]
)
def test_auto_precision_on_cpu_follows_the_bf16_instructions(monkeypatch, flags, amx, expected):
    from ltbench.train import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: set(flags))
    monkeypatch.setattr(runtime, "cpu_has_amx", lambda: amx)
    cpu = torch.device("cpu")
    assert runtime.resolve_precision("auto", cpu) == expected
    assert runtime.resolve_precision("fp32", cpu) == "fp32" and runtime.resolve_precision("bf16", cpu) == "bf16"


# ------------------------------------------------------------------ capped class counts
def test_capped_counts_are_said_marked_and_refused_on_request(tmp_path):
    from tests.test_data import CIFAR10_CLASSES, FILES, _write

    root = tmp_path / "data"  # 4 images per class: every CIFAR-10-LT count above 4 is capped
    for split in ("train", "test"):
        for label, name in enumerate(CIFAR10_CLASSES):
            d = root / "cifar10" / split / name
            d.mkdir(parents=True)
            for f in FILES:
                _write(d / f, label, int(f.split("_")[1].split(".")[0]))
    args = ["run", "--method", "ce", "--dataset", "cifar10_lt", "--data-root", str(root), "--epochs", "1"]
    args += ["--device", "cpu", "--precision", "fp32", "--eval-every", "0", "--out", str(tmp_path / "out")]
    env = {**_env(), "LTBENCH_CACHE": str(tmp_path / "cache")}
    strict = subprocess.run([sys.executable, "-m", "ltbench", *args, "--strict-counts"], capture_output=True,
                            text=True, env=env, timeout=300)  # fmt: skip
    assert strict.returncode == 2 and "fewer training images than requested" in strict.stderr
    assert not (tmp_path / "out" / "runs").exists() or not any((tmp_path / "out" / "runs").iterdir())
    res = subprocess.run([sys.executable, "-m", "ltbench", *args], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    notes = [line for line in res.stderr.splitlines() if "fewer training images than requested" in line]
    assert len(notes) == 1 and "airplane 4/5000" in notes[0]
    from ltbench.report.table import make_table

    table = make_table(tmp_path / "out")
    assert "CE ‡" in table and "‡ Trained with fewer images" in table


# ------------------------------------------------------------------ console, files, status
def test_a_closed_output_pipe_never_fails_a_run(tmp_path):
    """`ltbench run ... 2>&1 | head -4`: the reader goes away after four lines; training carries on."""
    cmd = [sys.executable, "-m", "ltbench", "run", "--method", "ce", "--dataset", "synthetic_lt", "--epochs", "6"]
    cmd += ["--device", "cpu", "--precision", "fp32", "--eval-every", "1", "--threads", "1", "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env())
    for _ in range(4):
        proc.stdout.readline()
    proc.stdout.close()  # what `head -4` does after its fourth line
    assert proc.wait(timeout=300) == 0
    [run_dir] = (tmp_path / "runs").iterdir()
    assert run_state(run_dir) == "done"


def test_records_are_written_with_the_umask_permissions(out_dir):
    old = os.umask(0o022)
    try:
        cfg = tiny_config(out_dir, epochs=1)
        execute(cfg, progress=False)
    finally:
        os.umask(old)
    for name in ("result.json", "config.json", "log.jsonl", "predictions.npz"):
        assert stat.S_IMODE((cfg.run_dir / name).stat().st_mode) == 0o644, name


def test_a_refused_start_leaves_no_folder_and_status_counts_only_runs(tmp_path):
    missing = tmp_path / "nowhere"  # and no download: tests/conftest.py (no_downloads) makes it fail as offline
    cfg = RunConfig(method="ce", dataset="cifar10_lt", data_root=str(missing), out=str(tmp_path), sweep="sw")
    with pytest.raises(DataError):
        execute(cfg, progress=False)
    assert not cfg.run_dir.exists()
    done = tiny_config(tmp_path, epochs=1, sweep="sw")
    execute(done, progress=False)
    (tmp_path / "sw" / ".submitit").mkdir()
    (tmp_path / "sw" / "figures").mkdir()
    from ltbench.sweep import sweep_status

    states = sweep_status(tmp_path / "sw")
    assert states["done"] == [done.run_id] and sum(len(v) for v in states.values()) == 1


# ------------------------------------------------------------------ divergence
class _Exploding(OneStageLoss):
    """A loss that grows by 10^3 per epoch while staying finite."""

    display_name = "exploding"

    def training_step(self, model, batch, stage, epoch):
        return {"loss": super().training_step(model, batch, stage, epoch)["loss"] * 1000.0**epoch}


def test_a_loss_grown_by_orders_of_magnitude_is_recorded_and_said(out_dir, registered, capsys):
    registered("zz_exploding", _Exploding)
    rec = execute(tiny_config(out_dir, method="zz_exploding", epochs=3), progress=False)
    assert rec["status"] == "done" and len(rec["warnings"]) == 1 and "diverged" in rec["warnings"][0]
    assert "ltbench: warning: stage 'train'" in capsys.readouterr().err
    quiet = execute(tiny_config(out_dir / "ok", epochs=3), progress=False)
    assert quiet["warnings"] == []


# ------------------------------------------------------------------ library errors
def test_bad_argument_values_raise_value_errors():
    from ltbench.data.longtail import class_counts
    from ltbench.dpp import sample_k_dpp
    from ltbench.losses import LDAMLoss

    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError):
        sample_k_dpp([0.5, 0.5], 3)
    with pytest.raises(ValueError):
        LDAMLoss([10, 0])
    with pytest.raises(ValueError):
        class_counts(500, 10, 0.5)
