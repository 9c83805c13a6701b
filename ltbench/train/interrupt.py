"""Graceful stops: SIGTERM (SLURM preemption, scancel, requeue) and Ctrl-C end a run *between* two steps.

A signal arriving in the middle of ``loss.backward()`` or ``optimizer.step()`` must not leave half-updated
weights in a checkpoint, so the handlers below only set a flag; the trainer checks it after every step,
writes a mid-epoch checkpoint (weights, optimizer, the epoch's sample order and both RNG streams) and then
raises :class:`Interrupted`. A second Ctrl-C stops at once (the last complete checkpoint is kept).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """Raised after the mid-epoch checkpoint was written; a KeyboardInterrupt so that nothing that catches
    ``Exception`` (the run record, submitit) mistakes a stop for a failure."""

    def __init__(self, signum: int, where: str) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name} {where}; checkpoint saved")


class StopFlag:
    """Which signal asked the run to stop (0: none)."""

    def __init__(self) -> None:
        self.signum = 0

    def __bool__(self) -> bool:
        return self.signum != 0


@contextmanager
def graceful_stop() -> Iterator[StopFlag]:
    """Route SIGTERM and SIGINT to a flag while training; previous handlers come back afterwards.

    Outside the main thread (signals cannot be handled there) the flag simply never rises.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame) -> None:
        if flag.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        flag.signum = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
