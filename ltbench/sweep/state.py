"""Run states of a sweep, read from the run directories: what is pending, running, incomplete, done or failed,
and what a launch submits (only what is not done; failed runs only when asked)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ltbench.config import RunConfig
from ltbench.records import STATES, is_run_dir, read_json, run_state

CONCRETE_PRECISIONS = ("bf16", "fp32")  # what precision="auto" resolves to (ltbench.train.runtime.resolve_precision)


def as_ran(cfg: RunConfig) -> list[RunConfig]:
    """The configs a sweep entry may have run as. A run names the precision that ran in its id (run.concrete
    replaces "auto" on the machine that trains), which the submitting machine cannot know: with "auto", each
    concrete precision is a candidate, and the config itself (where a job that failed before it could resolve
    the precision writes its failure, sweep.launch.RunJob); otherwise the config itself."""
    if cfg.precision != "auto":
        return [cfg]
    return [replace(cfg, precision=p) for p in CONCRETE_PRECISIONS] + [cfg]


def run_dir_of(cfg: RunConfig) -> Path:
    """The run directory of a sweep entry: that of the candidate (``as_ran``) that got furthest (done, then running,
    failed, incomplete), or the config's own when none has started."""
    rank = {"done": 0, "running": 1, "failed": 2, "incomplete": 3}
    found = [(run_state(c.run_dir), c.run_dir) for c in as_ran(cfg)]  # each folder read once
    started = [(rank[state], run_dir) for state, run_dir in found if state in rank]
    return min(started)[1] if started else cfg.run_dir


def states(configs: list[RunConfig]) -> dict[str, list[RunConfig]]:
    """Group configs by their on-disk state: pending / running / incomplete / done / failed."""
    out: dict[str, list[RunConfig]] = {s: [] for s in STATES}
    for cfg in configs:
        out[run_state(run_dir_of(cfg))].append(cfg)
    return out


def to_launch(configs: list[RunConfig], retry_failed: bool = False) -> list[RunConfig]:
    """What a launch submits: everything not done, minus failed runs unless ``retry_failed``."""
    grouped = states(configs)
    todo = grouped["pending"] + grouped["incomplete"]
    return todo + grouped["failed"] if retry_failed else todo


def failure_reason(run_dir: Path) -> str:
    """The last line of a failed run's recorded error."""
    rec = read_json(Path(run_dir) / "result.json") or {}
    err = (rec.get("error") or "").strip().splitlines()
    return err[-1] if err else "unknown error"


def sweep_status(sweep_dir: Path) -> dict[str, list[str]]:
    """States of the run directories directly under ``sweep_dir`` (for ``ltbench status``, no spec needed).

    Only run directories count (``is_run_dir``): submitit's folder, figure folders and anything else a user
    keeps there are not runs."""
    out: dict[str, list[str]] = {s: [] for s in STATES}
    for d in sorted(p for p in Path(sweep_dir).iterdir() if is_run_dir(p)):
        out[run_state(d)].append(d.name)
    return out
