"""Sweeps through a real SLURM controller (the one-node cluster of slurm/dev-cluster/, started by .ci/run).

Skipped with a reason when no controller answers; CI starts one, so these always run there. Each test
submits through sbatch with the ``dev`` preset (1 CPU per job) on the synthetic dataset.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import skip_unless_required, wait_for_lines

pytestmark = pytest.mark.slurm


def _controller_up() -> str | None:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "sinfo/sbatch not installed (start slurm/dev-cluster/start-local-cluster.sh)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: no SLURM controller reachable"
    if out.returncode != 0 or not out.stdout.strip():
        return f"no SLURM controller reachable: {out.stderr.strip() or 'sinfo printed nothing'}"
    return None


_REASON = _controller_up()


@pytest.fixture(scope="module", autouse=True)
def controller() -> None:
    """No controller: skipped with the reason, except in CI (``LTBENCH_REQUIRE=...,slurm``), where it fails."""
    if _REASON:
        skip_unless_required(_REASON, "slurm")


@pytest.fixture(scope="module", autouse=True)
def idle_cluster(controller) -> None:
    """The tests wait for their own jobs: jobs already queued (a long sweep, stale jobs of a controller
    restarted with its old state) would make them time out after many minutes, so name them and stop now."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True, timeout=30)
    if out.stdout.strip():
        pytest.fail(
            "the SLURM cluster already has jobs, the slurm tests would queue behind them:\n"
            f"{out.stdout.strip()}\ncancel them (scancel) or restart slurm/dev-cluster/start-local-cluster.sh"
        )


RUN = {"eval_every": 0, "precision": "fp32", "device": "cpu"}


def _sweep(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ltbench", "sweep", "--launcher", "slurm", "--preset", "dev"]
    cmd += ["--out", str(tmp_path), "--name", name, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _write_spec(path: Path, methods: list[str], seeds: list[int], epochs: int, hparams: str = "") -> Path:
    run = "".join(f"{k} = {json.dumps(v)}\n" for k, v in RUN.items())
    path.write_text(
        f"[sweep]\nname = {path.stem!r}\nmethods = {methods!r}\ndatasets = ['synthetic_lt']\nseeds = {seeds!r}\n"
        f"[run]\nepochs = {epochs}\n{run}{hparams}"
    )
    return path


def _records(sweep_dir: Path) -> dict[str, dict]:
    return {
        d.name: json.loads((d / "result.json").read_text())
        for d in sorted(sweep_dir.iterdir())
        if (d / "result.json").exists()
    }


def test_sweep_is_one_array_job_and_relaunch_submits_nothing(tmp_path):
    spec = _write_spec(tmp_path / "grid.toml", ["ce", "focal"], [0, 1], epochs=1)
    res = _sweep(tmp_path, "grid", str(spec), "--wait")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "launched 4 runs with the slurm launcher (job array" in res.stdout
    array_id = res.stdout.split("(job array ")[1].split(")")[0]
    job_dirs = sorted(p.name for p in (tmp_path / "grid" / ".submitit").iterdir() if "_" in p.name and p.is_dir())
    assert job_dirs == [f"{array_id}_{i}" for i in range(4)]  # one array, four tasks
    records = _records(tmp_path / "grid")
    assert len(records) == 4 and all(r["status"] == "done" for r in records.values())
    assert all((tmp_path / "grid" / name / "done").exists() for name in records)
    again = _sweep(tmp_path, "grid", str(spec))
    assert again.returncode == 0 and "done 4" in again.stdout and "nothing to launch" in again.stdout


def test_requeued_run_resumes_with_identical_metrics(tmp_path):
    from ltbench.sweep import SweepSpec, expand
    from ltbench.sweep.launch import submit

    def spec(name: str) -> SweepSpec:
        return SweepSpec(name=name, methods=["ce"], datasets=["synthetic_lt"], seeds=[3], run={"epochs": 40, **RUN})

    [ref_cfg] = expand(spec("ref"), out=str(tmp_path))
    [cfg] = expand(spec("requeued"), out=str(tmp_path))
    [job] = submit([cfg], "slurm", tmp_path / "requeued" / ".submitit", preset="dev")
    log = cfg.run_dir / "log.jsonl"
    wait_for_lines(log, 3, timeout=240)  # 3 of 40 epochs done: requeued in the middle of the run
    assert not (cfg.run_dir / "done").exists(), "run finished before it could be requeued"
    subprocess.run(["scontrol", "requeue", job.job_id], check=True, timeout=30)
    [ref_job] = submit([ref_cfg], "slurm", tmp_path / "ref" / ".submitit", preset="dev")
    assert job.result() == "done" and ref_job.result() == "done"
    assert "ltbench: resuming" in job.stderr(), "the requeued job did not resume from its checkpoint"  # console: stderr
    rec, ref = (json.loads((c.run_dir / "result.json").read_text()) for c in (cfg, ref_cfg))
    assert rec["metrics"] == ref["metrics"]
    epochs = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert epochs == list(range(40))  # no epoch lost or logged twice across the requeue


def test_crashed_run_is_failed_and_retried(tmp_path):
    spec = _write_spec(tmp_path / "crash.toml", ["ce"], [0], epochs=1, hparams="[hparams.ce]\nlr = [1e30]\n")
    res = _sweep(tmp_path, "crash", str(spec), "--wait")
    assert res.returncode == 1 and "failed: loss became" in res.stdout, res.stdout + res.stderr
    status = subprocess.run(
        [sys.executable, "-m", "ltbench", "status", str(tmp_path / "crash")], capture_output=True, text=True
    )
    assert "failed 1" in status.stdout and "loss became" in status.stdout
    assert "nothing to launch" in _sweep(tmp_path, "crash", str(spec)).stdout
    retry = _sweep(tmp_path, "crash", str(spec), "--retry-failed", "--wait")
    assert "launched 1 runs with the slurm launcher" in retry.stdout, retry.stdout + retry.stderr
