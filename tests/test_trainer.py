"""The trainer end to end on the synthetic dataset: records, resume, NaN guard, schedules."""

import json
import math

import pytest
import torch

from ltbench.method import Stage
from ltbench.records import log_entries, run_state
from ltbench.run import execute
from ltbench.train.optim import lr_factor
from tests.conftest import interrupt_run, tiny_config


def test_run_writes_the_run_directory(out_dir):
    cfg = tiny_config(out_dir)
    rec = execute(cfg, progress=False)
    d = cfg.run_dir
    assert {p.name for p in d.iterdir()} >= {"config.json", "log.jsonl", "ckpt.pt", "result.json", "done"} | {
        "predictions.npz",
        "features.npz",
    }
    assert rec["status"] == "done" and run_state(d) == "done"
    res = json.loads((d / "result.json").read_text())
    assert res["schema_version"] == 1 and res["run_id"] == cfg.run_id
    m = res["metrics"]
    assert set(m) >= {"overall", "many", "medium", "few", "per_class", "macro_f1", "g_mean", "ece"}
    assert len(m["per_class"]) == res["data"]["num_classes"]
    assert res["data"]["class_counts"] == sorted(res["data"]["class_counts"], reverse=True)
    assert res["model"]["params"] > 0 and res["model"]["gflops"] > 0
    assert res["env"]["precision"] == "fp32"
    env = res["env"]
    assert {"commit", "dirty", "diff_sha256", "cpu_model", "cpu_flags"} <= set(env)
    assert (env["diff_sha256"] is None) == (env["dirty"] is False)
    import numpy as np

    with np.load(d / "predictions.npz") as z:  # logits stored: calibration / AUC / post-hoc need no rerun
        assert z["logits"].dtype == np.float32 and z["logits"].shape == (len(z["labels"]), m["per_class"].__len__())
        assert (z["logits"].argmax(1) == z["preds"]).all()
    with np.load(d / "features.npz") as z:
        assert z["features"].dtype == np.float32
    log = log_entries(d)
    assert [e["epoch"] for e in log] == [0, 1]
    # a second call reports the finished run instead of training again
    assert execute(cfg, progress=False)["metrics"] == res["metrics"]


def test_resume_after_interruption_gives_identical_metrics(out_dir, tmp_path):
    full = execute(tiny_config(out_dir, epochs=4), progress=False)
    cfg = tiny_config(tmp_path / "other", epochs=4)
    interrupt_run(cfg, after_epochs=2)
    assert run_state(cfg.run_dir) == "incomplete"
    resumed = execute(cfg, progress=False)
    assert resumed["metrics"]["per_class"] == full["metrics"]["per_class"]
    assert resumed["metrics"]["overall"] == full["metrics"]["overall"]
    log = log_entries(cfg.run_dir)
    assert [e["epoch"] for e in log] == [0, 1, 2, 3]


def test_nan_loss_stops_the_run_as_failed(out_dir):
    from ltbench.train.trainer import Diverged

    cfg = tiny_config(out_dir, hparams={"lr": 1e30})
    with pytest.raises(Diverged, match="loss became"):
        execute(cfg, progress=False)
    res = json.loads((cfg.run_dir / "result.json").read_text())
    assert res["status"] == "failed" and "loss became" in res["error"]
    assert run_state(cfg.run_dir) == "failed"


def test_ldam_step_schedule_by_hand():
    s = Stage("s", epochs=200, lr=0.1, batch_size=128, warmup_epochs=5, milestones=((160, 0.01), (180, 1e-4)))
    assert [lr_factor(s, e, 0, 10) for e in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert lr_factor(s, 159, 5, 10) == 1.0
    assert lr_factor(s, 160, 0, 10) == 0.01 and lr_factor(s, 199, 9, 10) == 1e-4


def test_cosine_schedule_with_iteration_warmup():
    s = Stage(
        "s", epochs=10, lr=1.0, batch_size=8, schedule="cosine", warmup_epochs=2, warmup_per_iter=True, warmup_start=0.0
    )
    assert lr_factor(s, 0, 0, 4) == 0.0
    assert lr_factor(s, 1, 0, 4) == pytest.approx(0.5)
    assert lr_factor(s, 2, 0, 4) == pytest.approx(1.0)
    assert lr_factor(s, 6, 0, 4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_cosine_schedule_with_restarts_by_hand():
    """``restarts``: each listed epoch starts a new half cycle from the full lr, over the epochs up to the next
    restart (SBCL's moco/main.py: two cosines of 200 epochs); a restart outside the stage or without a cosine is
    refused."""
    from ltbench.errors import ConfigError

    s = Stage("s", epochs=10, lr=1.0, batch_size=8, schedule="cosine", restarts=(4,))
    want = [0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)] + [
        0.5 * (1 + math.cos(math.pi * e / 6)) for e in range(6)
    ]
    assert [lr_factor(s, e, 0, 10) for e in range(10)] == pytest.approx(want)
    assert lr_factor(s, 3, 5, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 3.5 / 4)))
    w = Stage("w", epochs=10, lr=1.0, batch_size=8, schedule="cosine", warmup_epochs=2, warmup_per_iter=True,
              restarts=(6,))  # fmt: skip
    assert [lr_factor(w, e, 0, 10) for e in (1, 2, 4, 6, 8)] == pytest.approx([0.5, 1.0, 0.5, 1.0, 0.5])
    for bad in ({"restarts": (0,)}, {"restarts": (10,)}, {"restarts": (3,), "schedule": "step"}):
        with pytest.raises(ConfigError, match="restarts="):
            Stage("b", epochs=10, lr=1.0, batch_size=8, **({"schedule": "cosine"} | bad))


def test_bf16_autocast_path_runs_on_cpu(out_dir):
    """The same run in bf16 and fp32: bf16 arithmetic was used (the losses differ) and is close to fp32."""
    bf16_cfg, fp32_cfg = (tiny_config(out_dir / p, precision=p, epochs=1) for p in ("bf16", "fp32"))
    rec = execute(bf16_cfg, progress=False)
    assert rec["env"]["precision"] == "bf16" and rec["status"] == "done"
    execute(fp32_cfg, progress=False)
    [bf16], [fp32] = log_entries(bf16_cfg.run_dir), log_entries(fp32_cfg.run_dir)
    assert bf16["loss"] != fp32["loss"], "precision bf16 trained in fp32"
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=0.05)  # measured: 0.2 % apart


def test_compile_flag_compiles_the_backbone_in_place(out_dir, monkeypatch):
    """--compile reaches nn.Module.compile on the backbone (in place: checkpoints keep their keys; a runtime
    field: the run id is unchanged). The real compile is replaced by a recorder: it costs 35-65 s per model on
    CPU and is meant for GPUs."""
    from ltbench.cli.main import build_parser, config_from_args

    calls = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: calls.append(type(self).__name__))
    assert config_from_args(build_parser().parse_args(["run", "--compile"])).compile
    cfg = tiny_config(out_dir, compile=True, epochs=1)
    assert cfg.run_id == tiny_config(out_dir, epochs=1).run_id
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done" and calls == ["CifarResNet"]
    keys = torch.load(cfg.run_dir / "ckpt.pt", weights_only=False)["model"]
    assert keys and not any("_orig_mod" in k for k in keys)


def test_progress_lines_inside_long_epochs_without_a_terminal(monkeypatch):
    """SLURM logs (no terminal) get a step line every $LTBENCH_PROGRESS_SECONDS inside an epoch, then the epoch
    summary; with the default 60 s a short epoch prints its summary only."""
    import io

    from ltbench.method import Stage
    from ltbench.train.progress import Progress

    stage = Stage(name="train", epochs=2, lr=0.1, batch_size=10)
    for seconds, expected in (("0", 3), ("60", 0)):
        monkeypatch.setenv("LTBENCH_PROGRESS_SECONDS", seconds)
        stream = io.StringIO()
        progress = Progress([stage], 100, stream=stream)
        progress.start_epoch(0, 0, 10)
        for it in (2, 4, 6):
            progress.step(it, 1.5, 100.0)
        progress.end_epoch({"loss": 1.5, "lr": 0.1, "images_per_s": 100.0})
        lines = stream.getvalue().splitlines()
        assert len([line for line in lines if " step " in line]) == expected
        assert lines[-1].startswith("[train] epoch 1/2 loss 1.5000")
