"""Launching sweeps with submitit's executors, used directly: debug (in-process), local, slurm.

A sweep becomes one SLURM job array (``executor.batch()``) with an array-parallelism limit. Each job is
a ``submitit.helpers.Checkpointable``: on timeout or preemption submitit calls ``checkpoint`` and
requeues the same call, and the trainer resumes from its last epoch checkpoint, so the run ends with
the same result as an uninterrupted one.

A preset with ``tasks_per_node`` > 1 (``gpu8``: one task per GPU) makes each job one multi-process run: every task
calls the same ``RunJob``, joins the process group from SLURM's variables (ltbench/distributed/launch.py) and
trains its shard; rank 0 writes the run's files.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import submitit

from ltbench.config import RunConfig
from ltbench.errors import ConfigError

LAUNCHERS = ("debug", "local", "slurm")
# Shipped presets (package data); a site adds or overrides its own with $LTBENCH_PRESETS=/path/to/presets.toml
PRESETS_FILE = Path(__file__).resolve().parent / "presets.toml"


class RunJob(submitit.helpers.Checkpointable):
    """Run (or resume) one configuration; the default ``checkpoint`` resubmits the same call.

    A failing run returns ``"failed: <reason>"`` instead of raising: its result.json already says why
    (``ltbench status`` shows it, ``--retry-failed`` relaunches it), and submitit's debug executor would
    otherwise stop in pdb.
    """

    def __call__(self, cfg: RunConfig) -> str:
        from ltbench.distributed.launch import join_slurm_tasks
        from ltbench.distributed.world import env_world
        from ltbench.records import read_json, write_result
        from ltbench.run import execute

        join_slurm_tasks()
        main = env_world().is_main
        try:
            return execute(cfg, progress=main)["status"]
        except Exception as exc:
            if not main:
                raise  # a failed rank must fail its task (its traceback in the task's log), not report for the run
            if read_json(cfg.run_dir / "result.json") is None:  # failed before training started
                cfg.run_dir.mkdir(parents=True, exist_ok=True)
                write_result(cfg.run_dir, {"run_id": cfg.run_id, "status": "failed", "error": str(exc)})
            return f"failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}"


def preset_files() -> list[Path]:
    """The shipped presets, then the site's own file ($LTBENCH_PRESETS), whose entries win."""
    extra = os.environ.get("LTBENCH_PRESETS")
    return [PRESETS_FILE] + ([Path(extra).expanduser()] if extra else [])


def load_presets(paths: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    presets: dict[str, dict[str, Any]] = {}
    for path in paths or preset_files():
        try:
            presets.update(tomllib.loads(Path(path).read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read cluster presets {path}: {exc}") from None
    return presets


def make_executor(launcher: str, folder: Path, preset: str | None, array_parallelism: int | None) -> submitit.Executor:
    """submitit's AutoExecutor for ``launcher`` with the preset's parameters (generic names such as
    ``timeout_min``, ``cpus_per_task``, ``mem_gb``, ``gpus_per_node``, ``slurm_partition``)."""
    if launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher {launcher!r} is not one of {', '.join(LAUNCHERS)}")
    presets = load_presets()
    params: dict[str, Any] = {}
    if preset is not None:
        if preset not in presets:
            where = " + ".join(str(p) for p in preset_files())
            raise ConfigError(f"unknown cluster preset {preset!r}; presets in {where}: {', '.join(presets)}")
        params = dict(presets[preset])
    if array_parallelism is not None:
        params["slurm_array_parallelism"] = array_parallelism
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=launcher)
    if launcher != "slurm":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    if launcher == "debug":
        params = {}
    executor.update_parameters(name="ltbench", **params)
    return executor


def submit(
    configs: list[RunConfig],
    launcher: str,
    folder: Path,
    preset: str | None = None,
    array_parallelism: int | None = None,
) -> list[submitit.Job]:
    """Submit every config as one job array; returns the submitit jobs."""
    if not configs:
        return []
    if launcher == "local" and array_parallelism is not None and array_parallelism < len(configs):
        # submitit's LocalExecutor has no array throttle: it would start all the runs at once (7 runs of ~3 GB on
        # a 2-core, 24 GB machine exhausted its memory), so refuse instead of silently ignoring the limit
        raise ConfigError(
            f"--array-parallelism {array_parallelism} is not honoured by the local launcher, which starts all "
            f"{len(configs)} runs at once; use --launcher slurm (slurm/dev-cluster/ starts a one-node cluster on "
            "this machine), or launch fewer runs (--methods, --seeds), or --launcher debug (one at a time)"
        )
    executor = make_executor(launcher, folder, preset, array_parallelism)
    with executor.batch():
        jobs = [executor.submit(RunJob(), cfg) for cfg in configs]
    return jobs
