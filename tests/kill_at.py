"""``python -m tests.kill_at STAGE STEPS ltbench-args...``: run ``ltbench`` and SIGKILL the process (a real
``kill -9``: no handler, no checkpoint written) right after step STEPS of the first epoch of stage STAGE.

Deterministic, unlike a kill at a wall-clock moment, so tests can aim at the first steps of a stage."""

from __future__ import annotations

import os
import signal
import sys

import ltbench.data.loader as loader
import ltbench.train.trainer as trainer
from ltbench.cli import main

STAGE, STEPS = int(sys.argv[1]), int(sys.argv[2])
_run_epoch, _iterate, _where = trainer.Trainer._run_epoch, loader.DeviceBatches.iterate, {"stage": -1, "epoch": -1}


def run_epoch(self, idx, stage, epoch, state):
    _where.update(stage=idx, epoch=epoch)
    return _run_epoch(self, idx, stage, epoch, state)


def iterate(self, start=0):
    for n, batch in enumerate(_iterate(self, start), start + 1):
        yield batch
        if (_where["stage"], _where["epoch"]) == (STAGE, 0) and n >= STEPS:
            os.kill(os.getpid(), signal.SIGKILL)


trainer.Trainer._run_epoch = run_epoch
loader.DeviceBatches.iterate = iterate
sys.exit(main(sys.argv[3:]))
