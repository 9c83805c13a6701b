"""Progress display: a tqdm bar per epoch on a terminal, one summary line per epoch everywhere.

The summary line (epoch, loss, img/s, ETA) is what SLURM logs keep; the bar only adds live feedback.
"""

from __future__ import annotations

import os
import sys
import time

from ltbench.method import Stage


def console(message: str, stream=None) -> None:
    """One line for the user on stderr. Console trouble (a closed pipe as in ``ltbench run | head``, a vanished
    terminal) must never fail a run, so write errors are ignored."""
    try:
        print(message, file=stream or sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    def __init__(self, stages: list[Stage], n_train: int, enabled: bool = True, stream=None) -> None:
        self.stages, self.enabled = stages, enabled
        self.stream = stream or sys.stderr
        self.work = [s.epochs * n_train * s.views for s in stages]  # images per stage, for the ETA
        self.total = sum(self.work)
        self.done_work = 0.0
        self.rate: float | None = None
        self.bar = None
        self.t_start = time.perf_counter()
        # without a terminal (SLURM logs) a line every PROGRESS_SECONDS inside long epochs, not only per epoch
        self.line_every = float(os.environ.get("LTBENCH_PROGRESS_SECONDS", 60))
        self.last_line = time.perf_counter()

    def start_epoch(self, stage: int, epoch: int, steps: int) -> None:
        self.stage, self.epoch = stage, epoch
        self.done_work = sum(self.work[:stage]) + self.work[stage] * epoch / max(1, self.stages[stage].epochs)
        if self.enabled and _isatty(self.stream):
            from tqdm import tqdm

            s = self.stages[stage]
            self.bar = tqdm(
                total=steps, desc=f"{s.name} {epoch + 1}/{s.epochs}", leave=False, file=self.stream, dynamic_ncols=True
            )

    def step(self, it: int, loss: float, ips: float) -> None:
        if self.enabled and self.bar is None and time.perf_counter() - self.last_line >= self.line_every:
            self.last_line = time.perf_counter()
            s = self.stages[self.stage]
            console(
                f"[{s.name}] epoch {self.epoch + 1}/{s.epochs} step {it} loss {loss:.4f} {ips:.0f} img/s", self.stream
            )
        if self.bar is not None:
            try:
                self.bar.n = it
                self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{ips:.0f}", refresh=True)
            except (OSError, ValueError):  # the terminal went away: carry on without the bar
                self.bar = None

    def end_epoch(self, entry: dict) -> None:
        self.close()
        self.last_line = time.perf_counter()
        stage = self.stages[self.stage]
        views = max(1, stage.views)
        self.done_work += self.work[self.stage] / max(1, stage.epochs)
        rate = entry["images_per_s"] * views
        self.rate = rate if self.rate is None else 0.7 * self.rate + 0.3 * rate
        eta = (self.total - self.done_work) / max(self.rate, 1e-9)
        if self.enabled:
            acc = f" test_acc {entry['test_acc']:.4f}" if "test_acc" in entry else ""
            console(
                f"[{stage.name}] epoch {self.epoch + 1}/{stage.epochs} loss {entry['loss']:.4f} "
                f"lr {entry['lr']:.3g} {entry['images_per_s']:.0f} img/s{acc} ETA {_fmt_time(eta)}",
                self.stream,
            )

    def close(self) -> None:
        if self.bar is not None:
            try:
                self.bar.close()
            except (OSError, ValueError):
                pass
            self.bar = None


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False
