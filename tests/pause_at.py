"""``python -m tests.pause_at MARKER STAGE EPOCH WHERE ltbench-args...``: run ``ltbench`` and, at one exact
moment of its training, create the file MARKER and wait there for the test to signal the process (a real
SIGTERM, SIGINT or SIGKILL sent from outside). The moment is, for epoch EPOCH of stage STAGE (both 0-based):

- WHERE = N (an integer >= 1): right after step N of that epoch;
- WHERE = save: inside the checkpoint save at the end of that epoch, once the new checkpoint is in its
  temporary file and before it replaces ckpt.pt (the epoch's log line is already written).

The wait ends when the trainer's stop flag rises (SIGTERM / SIGINT: the run goes on to stop after the next
step) or never (SIGKILL). Unlike a signal sent after a wall-clock sleep, where it lands is exact, so the
tests can aim at the middle of an epoch or at the window between the log line and the checkpoint.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import ltbench.data.loader as loader
import ltbench.train.trainer as trainer
from ltbench.cli import main

MARKER, STAGE, EPOCH, WHERE = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
WAIT_S = 600  # a test that never signals fails on its own timeout long before this
_run_epoch, _iterate, _save, _torch_save = (
    trainer.Trainer._run_epoch,
    loader.DeviceBatches.iterate,
    trainer.Trainer.save,
    torch.save,
)
_at = {"trainer": None, "stage": -1, "epoch": -1, "epoch_end_save": False, "paused": False}


def _here() -> bool:
    return not _at["paused"] and (_at["stage"], _at["epoch"]) == (STAGE, EPOCH)


def _pause() -> None:
    _at["paused"] = True
    MARKER.touch()
    deadline = time.monotonic() + WAIT_S
    while not _at["trainer"].stop and time.monotonic() < deadline:
        time.sleep(0.01)


def run_epoch(self, idx, stage, epoch, state):
    _at.update(trainer=self, stage=idx, epoch=epoch)
    return _run_epoch(self, idx, stage, epoch, state)


def iterate(self, start=0):
    for n, batch in enumerate(_iterate(self, start), start + 1):
        yield batch  # resumed when the trainer asks for the next batch: step n is complete
        if WHERE != "save" and n == int(WHERE) and _here():
            _pause()


def save(self, state, mid_epoch=None):
    _at["epoch_end_save"] = mid_epoch is None
    try:
        return _save(self, state, mid_epoch)
    finally:
        _at["epoch_end_save"] = False


def torch_save(obj, f, *args, **kwargs):
    _torch_save(obj, f, *args, **kwargs)
    if WHERE == "save" and _at["epoch_end_save"] and _here():
        _pause()


trainer.Trainer._run_epoch = run_epoch
trainer.Trainer.save = save
loader.DeviceBatches.iterate = iterate
torch.save = torch_save
sys.exit(main(sys.argv[5:]))
