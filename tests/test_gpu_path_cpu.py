"""Properties of the GPU path that a CPU can check (issue #24): global numerics settings do not leak from one
in-process run into the next, evaluation copies each prediction variant to the host once per split rather than
once per batch, and the file-backed decoding workers are started once per run, not once per epoch."""

from __future__ import annotations

import pytest
import torch

from ltbench.data.base import DataSpec
from ltbench.registry import DATASETS
from ltbench.run import execute
from tests.conftest import tiny_config
from tests.test_device_guard import build_on_meta, on_meta_guard
from tests.test_folder_data import imagenet_lt_root  # noqa: F401  (a fixture)

# ---------------------------------------------------------------- numerics
ONE_STEP = {"batch_size": 256}  # synthetic_lt's ~240 training images in one step


@pytest.fixture
def restore_numerics():
    """The process-wide algorithm flags as they were (a failing test must not leave determinism on)."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1:]


def test_a_deterministic_run_does_not_leave_determinism_on(tmp_path, restore_numerics):
    """An in-process sweep runs one config after another: the second, non-deterministic run must get cudnn
    autotuning back (on a GPU) and nondeterministic algorithms, and each record says which it had."""
    strict = execute(tiny_config(tmp_path / "a", deterministic=True, epochs=1, hparams=ONE_STEP), progress=False)
    assert strict["numerics"]["deterministic_algorithms"] is True
    assert strict["numerics"]["cudnn_benchmark"] is False
    loose = execute(tiny_config(tmp_path / "b", deterministic=False, epochs=1, hparams=ONE_STEP), progress=False)
    assert torch.are_deterministic_algorithms_enabled() is False
    assert torch.backends.cudnn.deterministic is False
    assert torch.backends.cudnn.benchmark is torch.cuda.is_available()
    assert loose["numerics"] == {
        "deterministic_algorithms": False,
        "cudnn_benchmark": torch.cuda.is_available(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,  # TF32 decides an "fp32" run's arithmetic on CUDA
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


# ---------------------------------------------------------------- evaluation copies
def test_evaluation_copies_each_variant_to_the_host_once_per_split():
    """τ-norm predicts 20+ variants per batch; a copy per variant per batch would be hundreds of host syncs on a
    GPU. On meta (the device stand-in of tests/test_device_guard.py) every host read is counted."""
    from ltbench.evaluate import evaluate

    method, model, ctx, _ = build_on_meta("tau_norm")
    ctx.eval_batch_size = 16
    data = ctx.data
    splits = [x for x in (data.test_x, data.val_x) if x is not None]  # synthetic_lt: test only
    assert all(len(x) > 3 * ctx.eval_batch_size for x in splits)  # several batches each
    with on_meta_guard(ctx) as guard:
        ev = evaluate(method, model, ctx, (100, 20))
    variants = 1 + len(ev["variants"])
    assert variants > 10
    assert dict(guard.host_reads) == {"cpu": variants * len(splits)}
    assert guard.seen["meta"] > 0


# ---------------------------------------------------------------- decoding workers
def _worker_pids(pools: dict) -> list[int]:
    """Process ids of the workers behind the (single) pool."""
    (pool,) = pools.values()
    return [w.pid for w in pool.loader._iterator._workers]


def test_file_decoding_workers_start_once_and_serve_every_epoch(imagenet_lt_root, monkeypatch):  # noqa: F811
    """The persistent DataLoader of a file-backed image set is built, and its worker processes started, once; a
    new epoch only swaps the job list (ltbench/data/files.py), so the same workers decode every epoch."""
    import torch.utils.data.dataloader as dl

    import ltbench.data.files as files

    pools: dict = {}
    monkeypatch.setattr(files, "_POOLS", pools)
    built, started = [], []
    loader_init, iter_init = dl.DataLoader.__init__, dl._MultiProcessingDataLoaderIter.__init__
    monkeypatch.setattr(dl.DataLoader, "__init__", lambda self, *a, **k: built.append(1) or loader_init(self, *a, **k))
    monkeypatch.setattr(
        dl._MultiProcessingDataLoaderIter, "__init__", lambda self, ld: started.append(1) or iter_init(self, ld)
    )
    data = DATASETS.get("imagenet_lt")(DataSpec(root=imagenet_lt_root, image_size=32, workers=1))
    images, chunks = data.train_x, list(torch.arange(len(data.train_x)).split(8))
    pids = []
    try:
        for epoch in range(3):
            seeds = [epoch * 100 + b for b in range(len(chunks))]
            assert [len(b) for b in images.batches(chunks, seeds)] == [len(c) for c in chunks]
            pids.append(_worker_pids(pools))
    finally:
        pools.clear()  # dropping the loader shuts its workers down
    assert len(built) == 1 and len(started) == 1
    assert pids[0] == pids[1] == pids[2]
