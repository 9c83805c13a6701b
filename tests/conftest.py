"""Shared fixtures: a temporary output root, tiny configs on the synthetic dataset, real-data location,
waiting on observable events, no network, and a derandomized hypothesis profile."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

try:  # the fuzz tests draw the same examples on every run: the suite is deterministic (README)
    from hypothesis import settings
except ImportError:  # hypothesis is a dev extra; only tests/test_fuzz.py needs it
    pass
else:
    settings.register_profile("ltbench", derandomize=True, database=None)
    settings.load_profile("ltbench")


# ---------------------------------------------------------------- no network
def offline_download(name, root):
    """Stands in for ``ltbench.data.cifar.torchvision_download``: fails as on a machine without network."""
    raise OSError("[Errno -3] Temporary failure in name resolution (tests never download)")


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """No test may download CIFAR: on a machine with network a missing data root would otherwise fetch
    170 MB and train on it instead of giving the offline error the test expects."""
    monkeypatch.setattr("ltbench.data.cifar.torchvision_download", offline_download)


# ---------------------------------------------------------------- real data
def real_data_root() -> Path | None:
    """``$LTBENCH_TEST_DATA`` (the folder holding the extracted shared copies cifar10/ and cifar100/), or None."""
    root = os.environ.get("LTBENCH_TEST_DATA")
    return Path(root) if root else None


def skip_unless_required(reason: str, requirement: str) -> None:
    """Skip with ``reason`` on a developer's machine; fail where ``$LTBENCH_REQUIRE`` (comma-separated) names
    the requirement — .ci/run sets ``data,slurm``, so CI can never pass by skipping what it provides."""
    if requirement in os.environ.get("LTBENCH_REQUIRE", "").split(","):
        pytest.fail(f"{reason} ($LTBENCH_REQUIRE names {requirement!r}: it must be present here)")
    pytest.skip(reason)


def _real_root(folder: str, label: str) -> Path:
    root = real_data_root()
    if root is None:
        skip_unless_required(
            f"real {label} not found: $LTBENCH_TEST_DATA is not set (expected $LTBENCH_TEST_DATA/{folder})", "data"
        )
    if not (root / folder).is_dir():
        skip_unless_required(f"real {label} not found under $LTBENCH_TEST_DATA (expected {root / folder})", "data")
    return root


@pytest.fixture
def cifar10_root() -> Path:
    """The --data-root holding the real extracted CIFAR-10 (``cifar10/``); skips with the reason if absent."""
    return _real_root("cifar10", "CIFAR-10")


@pytest.fixture
def cifar100_root() -> Path:
    """The --data-root holding the real extracted CIFAR-100 (``cifar100/``); skips with the reason if absent."""
    return _real_root("cifar100", "CIFAR-100")


# ---------------------------------------------------------------- waiting on events
def wait_until(
    cond: Callable[[], bool],
    what: str,
    timeout: float = 300,
    proc: subprocess.Popen | None = None,
    interval: float = 0.05,
) -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds, or as soon as ``proc`` (if given) has
    exited, since then the condition can no longer come true."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(f"process exited with {proc.returncode} while waiting for {what}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def count_lines(path: Path) -> int:
    """Complete lines of a file (0 if it does not exist yet)."""
    try:
        return path.read_text().count("\n")
    except FileNotFoundError:
        return 0


def wait_for_lines(path: Path, n: int, timeout: float = 300, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``path`` (e.g. a run's log.jsonl) has at least ``n`` complete lines."""
    wait_until(lambda: count_lines(path) >= n, f"{n} lines in {path}", timeout, proc)


# ---------------------------------------------------------------- tiny runs
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
