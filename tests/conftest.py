"""Shared fixtures: a temporary output root, tiny configs on the synthetic dataset, real-data location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


def real_data_root() -> Path | None:
    """Where the extracted shared CIFAR copies are: $LTBENCH_TEST_DATA, else /work/data if present."""
    root = Path(os.environ.get("LTBENCH_TEST_DATA", "/work/data"))
    return root if (root / "cifar10").is_dir() else None


@pytest.fixture
def real_root() -> Path:
    root = real_data_root()
    if root is None:
        pytest.skip("real CIFAR data not found: set LTBENCH_TEST_DATA to the folder holding cifar10/ and cifar100/")
    return root


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


def tiny_config(out: Path, method: str = "ce", **kw):
    """A run on synthetic_lt that takes a couple of seconds on CPU."""
    from ltbench.config import RunConfig

    kw.setdefault("epochs", 2)
    kw.setdefault("eval_every", 0)
    kw.setdefault("precision", "fp32")
    kw.setdefault("device", "cpu")
    kw.setdefault("dataset", "synthetic_lt")
    return RunConfig(method=method, out=str(out), **kw)


def interrupt_run(cfg, after_epochs: int) -> None:
    """Run ``cfg`` and interrupt it (KeyboardInterrupt) when epoch number ``after_epochs`` (0-based, counted
    over all stages) starts, leaving an incomplete run directory to resume from."""
    import ltbench.train.trainer as trainer_mod
    from ltbench.run import execute

    original, calls = trainer_mod.Trainer._run_epoch, {"n": 0}

    def crash(self, *a, **k):
        if calls["n"] == after_epochs:
            raise KeyboardInterrupt
        calls["n"] += 1
        return original(self, *a, **k)

    trainer_mod.Trainer._run_epoch = crash
    try:
        with pytest.raises(KeyboardInterrupt):
            execute(cfg, progress=False)
    finally:
        trainer_mod.Trainer._run_epoch = original
