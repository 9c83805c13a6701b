"""Real GPU tests (marker ``gpu``; skipped with the reason where CUDA is absent). They run in
``slurm/gpu_check.sh`` on a GPU machine: every method on CUDA in bf16 with CUDA's own sync detector in the
step loop, the mid-epoch resume on CUDA, and --compile's static shapes."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch

from ltbench.registry import METHODS
from ltbench.run import execute
from tests.conftest import tiny_config
from tests.test_gpu_guards import audit_method

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run slurm/gpu_check.sh on one)"),
]


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_on_cuda_syncs_only_where_it_declares(method, tmp_path):
    """Trains on CUDA in bf16 (LWS's head swap and RIDE-EA's router included); CUDA's sync detector and the
    Python-level audit find no synchronisation in the step loop beyond the method's ``step_syncs``."""
    audit_method(method, tmp_path, device="cuda", precision="bf16")


def test_mid_epoch_resume_on_cuda_is_exact(tmp_path, monkeypatch):
    """SIGTERM mid-epoch on CUDA (SLURM preemption), then resume: the saved RNG states load to the CPU."""
    import ltbench.train.trainer as trainer_mod

    kw = dict(device="cuda", precision="bf16", deterministic=True, epochs=3, hparams={"batch_size": 16})
    full = execute(tiny_config(tmp_path / "ref", **kw), progress=False)
    cfg = tiny_config(tmp_path / "cut", **kw)

    class Late:
        def __init__(self):
            self.n, self.signum = 0, 0

        def __bool__(self):
            self.n += 1
            self.signum = 15 if self.n > 16 else 0
            return bool(self.signum)

    monkeypatch.setattr(trainer_mod, "graceful_stop", contextlib.contextmanager(lambda: (yield Late())))
    with pytest.raises(KeyboardInterrupt):
        execute(cfg, progress=False)
    monkeypatch.undo()
    assert torch.load(cfg.run_dir / "ckpt.pt", weights_only=True)["mid_epoch"]["cuda_rng"] is not None
    resumed = execute(cfg, progress=False)
    assert json.dumps(resumed["metrics"], sort_keys=True) == json.dumps(full["metrics"], sort_keys=True)


def test_compile_keeps_shapes_static_on_cuda(tmp_path):
    rec = execute(tiny_config(tmp_path, device="cuda", precision="bf16", epochs=2, compile=True), progress=False)
    report = rec["compile"]
    assert report["graph_breaks"] == 0, report
    assert 1 <= report["frames_compiled"] <= 4, report  # train + eval mode (and a padded eval shape), no storm
