"""Faults a week of cluster time will meet (issue "Hardening"): kill -9, SIGTERM / Ctrl-C, corrupt files,
a full disk, many processes finishing at once. Each is summarised in the README's "Reliability" section.

Training processes are real ``python -m ltbench.cli run`` subprocesses on synthetic_lt with one thread
and ``--deterministic``, so "identical metrics" means bit-identical floats in result.json.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ltbench.errors import LTBenchError
from ltbench.records import run_state
from ltbench.run import execute
from tests.conftest import count_lines, tiny_config, wait_until

RUN_ARGS = ["--method", "ce", "--dataset", "synthetic_lt", "--epochs", "6", "--batch-size", "8", "--threads", "1"]
RUN_ARGS += ["--precision", "fp32", "--device", "cpu", "--deterministic", "--eval-every", "0", "--quiet"]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def _start(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ltbench", "run", *RUN_ARGS, "--out", str(out), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _start_paused(out: Path, marker: Path, epoch: int, where: int | str) -> subprocess.Popen:
    """``ltbench run`` that stops at an exact moment of epoch ``epoch`` (tests/pause_at.py: right after step
    ``where``, or inside the end-of-epoch checkpoint save for ``where="save"``), creates ``marker`` and waits
    there for the test's signal."""
    cmd = [sys.executable, "-m", "tests.pause_at", str(marker), "0", str(epoch), str(where), "run", *RUN_ARGS]
    cmd += ["--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _finish(out: Path) -> tuple[dict, str]:
    proc = _start(out)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    [run_dir] = (out / "runs").iterdir()
    return json.loads((run_dir / "result.json").read_text()), stdout + stderr


def _log_lines(out: Path) -> int:
    logs = list((out / "runs").glob("*/log.jsonl")) if (out / "runs").exists() else []
    return count_lines(logs[0]) if logs else 0


def _checkpoint_state(out: Path) -> dict:
    [run_dir] = (out / "runs").iterdir()
    return torch.load(run_dir / "ckpt.pt", weights_only=False)["state"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """One uninterrupted run: what every interrupted run must reproduce exactly."""
    record, _ = _finish(tmp_path_factory.mktemp("ref"))
    return record


def _epochs_logged(out: Path) -> list[int]:
    [log] = (out / "runs").glob("*/log.jsonl")
    return [json.loads(line)["epoch"] for line in log.read_text().splitlines()]


STEPS_PER_EPOCH = 30  # synthetic_lt: 240 training images, batch 8


def test_kill_9_at_random_points_then_resume_is_exact(tmp_path, reference):
    """SIGKILL three times right after a (seeded) random step of increasing epochs, then once inside the last
    epoch's checkpoint save, after its log line is written and before ckpt.pt is replaced: each resumed run
    redoes exactly what the kill lost, and the log ends with every epoch exactly once."""
    rng = random.Random(0)
    kills = [(e, rng.randint(1, STEPS_PER_EPOCH - 1)) for e in sorted(rng.sample(range(1, 5), 3))] + [(5, "save")]
    out = tmp_path / "out"
    for i, (epoch, where) in enumerate(kills):
        marker = tmp_path / f"paused-{i}"
        proc = _start_paused(out, marker, epoch, where)
        wait_until(marker.exists, f"epoch {epoch} {where}", timeout=300, proc=proc)
        proc.kill()
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        if where == "save":  # the epoch is logged, the checkpoint on disk is still the one before it
            assert _epochs_logged(out) == list(range(epoch + 1)) and _checkpoint_state(out)["epoch"] == epoch
        else:
            assert _epochs_logged(out) == list(range(epoch))
    record, text = _finish(out)
    assert "ltbench: resuming" in text
    assert record["metrics"] == reference["metrics"]
    assert _epochs_logged(out) == list(range(6))  # every epoch exactly once, no torn lines


# A two-stage method of each family, killed -9 in the first steps of the stage that builds something new
# (a fresh head, a scale vector, a router, the contrastive classifier): the resumed run rebuilds it from the
# stage's seed and must end bit-identical to an uninterrupted run.
STAGE2 = {
    "crt": (1, ["--set", "stage2_epochs=2"]),
    "lws": (1, ["--set", "stage2_epochs=2"]),
    "bns_ipdpp": (1, ["--set", "ft_epochs=2", "--set", "batch_size=64", "--set", "ft_batch_size=16"]),
    "ride_ea": (1, ["--set", "router_epochs=2", "--set", "router_batch_size=32"]),
    "kcl": (1, ["--set", "ft_epochs=2", "--set", "batch_size=64", "--set", "ft_batch_size=16"]),
}


@pytest.mark.parametrize("method", sorted(STAGE2))
def test_kill_9_in_the_first_steps_of_stage_2_then_resume_is_exact(tmp_path, method):
    stage, extra = STAGE2[method]
    args = ["--method", method, "--dataset", "synthetic_lt", "--epochs", "2", "--threads", "1", *RUN_ARGS[10:], *extra]
    cmd = [sys.executable, "-m", "ltbench", "run", *args]
    ref = subprocess.run([*cmd, "--out", str(tmp_path / "ref")], capture_output=True, text=True, env=_env())
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out"
    marker = tmp_path / "paused"  # right after step 2 of the stage's first epoch, then a real kill -9
    pause = [sys.executable, "-m", "tests.pause_at", str(marker), str(stage), "0", "2", "run", *args, "--out", str(out)]
    killed = subprocess.Popen(pause, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    wait_until(marker.exists, f"step 2 of stage {stage}", timeout=300, proc=killed)
    killed.kill()
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    [run_dir] = (out / "runs").iterdir()
    assert torch.load(run_dir / "ckpt.pt", weights_only=True)["state"]["stage"] == stage - 1  # the boundary
    resumed = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, env=_env())
    assert resumed.returncode == 0 and "ltbench: resuming" in resumed.stderr, resumed.stderr
    [ref_dir] = (tmp_path / "ref" / "runs").iterdir()
    reference = json.loads((ref_dir / "result.json").read_text())
    assert json.loads((run_dir / "result.json").read_text())["metrics"] == reference["metrics"]


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 128 + signal.SIGINT)])
def test_sigterm_and_ctrl_c_save_a_mid_epoch_checkpoint(tmp_path, reference, sig, code):
    """The signal arrives right after step 11 of epoch 3 (of 30 steps): the run stops after the step in
    progress, 12, and its checkpoint is that moment's."""
    out, marker, step = tmp_path / "out", tmp_path / "paused", 11
    proc = _start_paused(out, marker, 2, step)
    wait_until(marker.exists, f"step {step} of epoch 3", timeout=300, proc=proc)
    assert _log_lines(out) == 2  # inside epoch 3
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert f"stopped by {signal.Signals(sig).name} at stage 0 epoch 2 step {step + 1}" in stderr
    assert "checkpoint saved" in stderr and "Traceback" not in stderr
    [run_dir] = (out / "runs").iterdir()
    state = _checkpoint_state(out)
    assert (state["stage"], state["epoch"], state["step"]) == (0, 2, step + 1), "not the interrupted moment's"
    assert run_state(run_dir) == "incomplete"
    record, text = _finish(out)
    assert f"at stage 0 epoch 2 step {step + 1}" in text  # "resuming ... at stage 0 epoch E step S"
    assert record["metrics"] == reference["metrics"]
    assert _epochs_logged(out) == list(range(6))


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def _same(a: dict, b: dict) -> bool:
    """Equal metrics, NaN (an empty shot group) included."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.parametrize("damage", ["truncate_ckpt", "garbage_ckpt", "truncate_result"])
def test_corrupt_files_are_detected_and_only_that_run_recovers(out_dir, damage, capsys):
    other = tiny_config(out_dir, "ce", seed=1)
    execute(other, progress=False)
    before = _digest(other.run_dir)
    cfg = tiny_config(out_dir, "ce", seed=2)
    reference = execute(tiny_config(out_dir / "ref", "ce", seed=2), progress=False)
    execute(cfg, progress=False)
    ckpt, result = cfg.run_dir / "ckpt.pt", cfg.run_dir / "result.json"
    if damage == "truncate_ckpt":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
        (cfg.run_dir / "done").unlink()
        result.unlink()
    elif damage == "garbage_ckpt":
        ckpt.write_bytes(b"not a checkpoint")
        (cfg.run_dir / "done").unlink()
        result.unlink()
    else:
        result.write_text(result.read_text()[:100])
    assert run_state(cfg.run_dir) == "incomplete"
    rec = execute(cfg, progress=False)
    printed = capsys.readouterr().err  # ltbench's console lines go to stderr
    if damage.endswith("ckpt"):
        assert "is truncated or corrupt" in printed and "restarting" in printed
        assert len(list(cfg.run_dir.glob("ckpt.pt.corrupt-*"))) == 1  # set aside, never deleted
    else:
        assert "resuming" in printed  # the intact final checkpoint: re-evaluated, nothing retrained
    assert _same(rec["metrics"], reference["metrics"])
    assert json.loads(result.read_text())["status"] == "done"
    assert _digest(other.run_dir) == before


def test_disk_full_while_checkpointing_is_a_clear_error_and_keeps_earlier_files(out_dir, monkeypatch):
    done_cfg = tiny_config(out_dir, "ce", seed=1)
    execute(done_cfg, progress=False)
    before = _digest(done_cfg.run_dir)
    cfg = tiny_config(out_dir, "ce", seed=3, epochs=3)
    real_save, calls = torch.save, {"n": 0}

    def full_disk(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # the second epoch's checkpoint: the first is on disk
            Path(f).write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(LTBenchError, match="no space left on device"):
        execute(cfg, progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    assert _digest(done_cfg.run_dir) == before
    assert not list(cfg.run_dir.glob(".ckpt.*")), "a partial checkpoint file was left behind"
    state = torch.load(cfg.run_dir / "ckpt.pt", weights_only=False)["state"]
    assert state["epoch"] == 1  # the last good checkpoint survived
    rec = execute(cfg, progress=False)  # space is back: the run resumes and finishes
    assert rec["status"] == "done"


def test_disk_full_on_the_result_keeps_the_previous_record(out_dir, monkeypatch):
    cfg = tiny_config(out_dir, "ce", seed=4)
    execute(cfg, progress=False)
    result = cfg.run_dir / "result.json"
    good = result.read_bytes()
    (cfg.run_dir / "done").unlink()  # force a re-evaluation that rewrites result.json

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(LTBenchError, match="no space left on device"):
        execute(cfg, progress=False)
    assert result.read_bytes() == good
    assert not list(cfg.run_dir.glob(".result.json.*"))


SIXTEEN = """
import sys, time
from pathlib import Path
from ltbench.config import RunConfig
from ltbench.run import execute
seed, out, ready = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
cfg = RunConfig(method="ce", dataset="synthetic_lt", epochs=1, eval_every=0, precision="fp32", device="cpu",
                threads=1, seed=seed, out=out, sweep="many", hparams={"batch_size": 128})
(ready / str(seed)).touch()  # imports done; train once all 16 are here, so that the runs end within moments
deadline = time.monotonic() + 600
while len(list(ready.iterdir())) < 16 and time.monotonic() < deadline:
    time.sleep(0.05)
execute(cfg, progress=False)
"""


@pytest.mark.slow
def test_sixteen_processes_finish_into_one_sweep_directory(tmp_path):
    from ltbench.report import load_records

    ready = tmp_path / "ready"  # a barrier: one file per process that has finished importing
    ready.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-c", SIXTEEN, str(s), str(tmp_path), str(ready)], env=_env())
        for s in range(16)
    ]
    assert all(p.wait(timeout=900) == 0 for p in procs)
    runs = sorted((tmp_path / "many").iterdir())
    assert len(runs) == 16 and all(run_state(r) == "done" for r in runs)
    df = load_records(tmp_path / "many")
    assert len(df) == 16 and sorted(df["seed"]) == list(range(16)) and not df.attrs["not_done"]


def _tiny_cifar_tree(root: Path, per_class: int = 3) -> Path:
    """A CIFAR-10 image-folder copy with ``per_class`` images per class and split (random pixels)."""
    from PIL import Image

    from tests.test_data import CIFAR10_CLASSES

    gen = torch.Generator().manual_seed(0)
    for split in ("train", "test"):
        for name in CIFAR10_CLASSES:
            d = root / "cifar10" / split / name
            d.mkdir(parents=True)
            for i in range(per_class):
                arr = torch.randint(0, 256, (32, 32, 3), generator=gen, dtype=torch.uint8).numpy()
                Image.fromarray(arr).save(d / f"{i}.png")
    return root


def test_degenerate_image_folders_give_clear_outcomes(tmp_path):
    from PIL import Image

    from ltbench.errors import DataError

    root = _tiny_cifar_tree(tmp_path / "data")
    train = root / "cifar10" / "train"
    # a class reduced to one image, and images in other modes (grayscale, palette, RGBA): they train
    for p in sorted((train / "cat").iterdir())[1:]:
        p.unlink()
    Image.new("L", (32, 32), 128).save(train / "dog" / "0.png")
    Image.new("P", (32, 32)).save(train / "dog" / "1.png")
    Image.new("RGBA", (32, 32), (1, 2, 3, 4)).save(train / "dog" / "2.png")
    cfg = tiny_config(tmp_path / "out", "ce", dataset="cifar10_lt", data_root=str(root), epochs=1)
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done" and rec["data"]["class_counts"][3] == 1  # cat is class 3
    # a class without images, then an image of the wrong size: one-line DataErrors naming the file
    for p in (train / "cat").iterdir():
        p.unlink()
    cfg2 = tiny_config(tmp_path / "out2", "ce", dataset="cifar10_lt", data_root=str(root), epochs=1)
    with pytest.raises(DataError, match="cat holds no images"):
        execute(cfg2, progress=False)
    Image.new("RGB", (32, 32)).save(train / "cat" / "0.png")
    Image.new("RGB", (64, 48)).save(train / "dog" / "3.png")
    with pytest.raises(DataError, match="3.png is 64x48, expected 32x32"):
        execute(cfg2, progress=False)
    assert run_state(cfg.run_dir) == "done"  # the earlier run is untouched
