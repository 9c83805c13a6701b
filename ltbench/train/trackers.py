"""Experiment trackers (``--tracker tensorboard|wandb``): observers of a run, never part of it.

A tracker sees what the progress display sees — the running loss, learning rate and images/s every 20 steps,
each epoch's log line, and the final metrics (overall, many / medium / few, per-class accuracy as a histogram)
— plus the resolved configuration, under the run id as its name. Sweeps group their runs: TensorBoard writes
one directory per run inside the sweep folder (``tensorboard --logdir SWEEP``), W&B uses the sweep name as the
group. ``run.json``/``log.jsonl`` stay the record; a tracker failure (full disk, network, a bad key) prints one
line and the run goes on without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ltbench.errors import ConfigError
from ltbench.train.progress import console

TRACKERS = ("none", "tensorboard", "wandb")
EXTRAS = {"tensorboard": "tensorboard", "wandb": "wandb"}  # pip install "ltbench[<extra>]"


class Tracker:
    """The interface (and the ``none`` tracker): every call is optional work for an observer."""

    name = "none"

    def step(self, images_seen: int, values: dict[str, float]) -> None:
        """Running values inside an epoch; ``images_seen`` counts training images since the run began."""

    def epoch(self, index: int, entry: dict[str, Any]) -> None:
        """One epoch's log.jsonl line; ``index`` counts epochs over all stages (0-based)."""

    def final(self, index: int, metrics: dict[str, Any]) -> None:
        """The reported metrics of the finished run."""

    def close(self) -> None:
        """Flush and release files or connections."""


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, run_dir: Path, run_id: str, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        self.writer.add_text("config", f"```\n{_flat_text(config)}\n```")
        self.writer.add_text("run_id", run_id)

    def step(self, images_seen: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"train/{key}", value, images_seen)

    def epoch(self, index: int, entry: dict[str, Any]) -> None:
        for key, value in _numbers(entry).items():
            self.writer.add_scalar(f"epoch/{key}", value, index)

    def final(self, index: int, metrics: dict[str, Any]) -> None:
        import numpy as np

        for key, value in _numbers(metrics).items():
            self.writer.add_scalar(f"test/{key}", value, index)
        per_class = [v for v in metrics.get("per_class") or [] if v == v]
        if per_class:
            self.writer.add_histogram("test/per_class_accuracy", np.asarray(per_class), index)

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    """W&B: project ``$WANDB_PROJECT`` (default ``ltbench``), group = the sweep, name = the run id. Every call
    logs without an explicit step (W&B wants one increasing step for all keys); ``images_seen`` and ``epoch``
    are logged as values to plot against. Offline with ``WANDB_MODE=offline``."""

    name = "wandb"

    def __init__(self, run_dir: Path, run_id: str, config: dict[str, Any], group: str) -> None:
        import wandb

        self.wandb = wandb
        project = os.environ.get("WANDB_PROJECT", "ltbench")
        self.run = wandb.init(project=project, group=group, name=run_id, config=config, dir=str(run_dir), reinit=True)

    def step(self, images_seen: int, values: dict[str, float]) -> None:
        self.run.log({"images_seen": images_seen, **{f"train/{k}": v for k, v in values.items()}})

    def epoch(self, index: int, entry: dict[str, Any]) -> None:
        self.run.log({"epoch": index, **{f"epoch/{k}": v for k, v in _numbers(entry).items()}})

    def final(self, index: int, metrics: dict[str, Any]) -> None:
        self.run.summary.update({f"test/{k}": v for k, v in _numbers(metrics).items()})
        per_class = [v for v in metrics.get("per_class") or [] if v == v]
        if per_class:
            self.run.log({"test/per_class_accuracy": self.wandb.Histogram(per_class)})

    def close(self) -> None:
        self.run.finish()


class Observed(Tracker):
    """Wraps a tracker so that its failure costs one line on stderr and nothing else: the first exception
    disables it for the rest of the run."""

    def __init__(self, inner: Tracker) -> None:
        self.inner, self.name, self.failed = inner, inner.name, False

    def _call(self, what: str, *args: Any) -> None:
        if self.failed:
            return
        try:
            getattr(self.inner, what)(*args)
        except Exception as exc:  # noqa: BLE001 - an observer must never stop the run
            self.failed = True
            reason = " ".join(str(exc).split())[:200]
            console(
                f"ltbench: the {self.name} tracker failed ({type(exc).__name__}: {reason}); the run goes on without it"
            )

    def step(self, images_seen: int, values: dict[str, float]) -> None:
        self._call("step", images_seen, values)

    def epoch(self, index: int, entry: dict[str, Any]) -> None:
        self._call("epoch", index, entry)

    def final(self, index: int, metrics: dict[str, Any]) -> None:
        self._call("final", index, metrics)

    def close(self) -> None:
        self._call("close")


def check_tracker(kind: str) -> None:
    """A tracker whose package is missing is a configuration error naming the extra, raised before anything is
    written (``ltbench.run.prepare``)."""
    if kind == "none":
        return
    if kind not in TRACKERS:
        raise ConfigError(f"--tracker {kind!r} is not one of {', '.join(TRACKERS)}")
    import importlib.util

    if importlib.util.find_spec(kind) is None:
        raise ConfigError(f'--tracker {kind} needs the {kind} package: pip install "ltbench[{EXTRAS[kind]}]"')


def make_tracker(kind: str, run_dir: Path, run_id: str, config: dict[str, Any], group: str) -> Tracker:
    """The tracker for ``--tracker`` (checked by ``check_tracker``); one that cannot start (e.g. W&B without a
    login) is reported in one line and skipped."""
    check_tracker(kind)
    if kind == "none":
        return Tracker()
    try:
        if kind == "tensorboard":
            return Observed(TensorBoardTracker(run_dir, run_id, config))
        return Observed(WandbTracker(run_dir, run_id, config, group))
    except Exception as exc:  # noqa: BLE001 - same rule as a failure later on
        console(
            f"ltbench: the {kind} tracker could not start ({type(exc).__name__}: {exc}); the run goes on without it"
        )
        return Tracker()


def _numbers(d: dict[str, Any]) -> dict[str, float]:
    """The finite scalar numbers of a dict (bools and NaN left out)."""
    out = {}
    for key, value in d.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            out[key] = float(value)
    return out


def _flat_text(config: dict[str, Any], prefix: str = "") -> str:
    lines = []
    for key, value in sorted(config.items()):
        if isinstance(value, dict):
            lines.append(_flat_text(value, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key} = {value!r}")
    return "\n".join(line for line in lines if line)
