"""Evaluation keeps the logits of every prediction variant on the device and copies them to the host once per
variant, in chunks of at most ``DEVICE_BUDGET`` bytes: the same logits whatever the budget, and a bounded
number of copies (τ-norm has 22 variants; all of ImageNet-LT's test set would hold 4.4 GB on the device)."""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

import ltbench.evaluate as evaluate_mod
from ltbench.evaluate import evaluate_logits
from tests.test_test_time_logits import Built


class _Copies(TorchFunctionMode):
    """Counts ``Tensor.cpu()`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.n += getattr(func, "__name__", "") == "cpu"
        return func(*args, **(kwargs or {}))


def _evaluate(built: Built, images: torch.Tensor) -> tuple[dict, int]:
    with _Copies() as copies:
        out = evaluate_logits(built.method, built.model, built.ctx, images)
    return out, copies.n


def test_the_logits_move_to_the_host_once_per_variant_or_per_budget(monkeypatch):
    built = Built("tau_norm", {})
    images = built.ctx.data.train_x[:60]
    monkeypatch.setattr(built.ctx, "eval_batch_size", 8)  # 8 batches
    whole, copies = _evaluate(built, images)
    assert len(whole) > 10 and copies == len(whole)  # one copy per variant, not one per batch
    per_batch = len(whole) * 8 * built.ctx.data.num_classes * 4  # bytes of one batch of every variant
    monkeypatch.setattr(evaluate_mod, "DEVICE_BUDGET", 3 * per_batch)  # flush after every 4th batch
    chunked, copies = _evaluate(built, images)
    assert copies == 2 * len(whole)  # 8 batches -> a chunk after batch 4, the rest at the end
    assert whole.keys() == chunked.keys()
    for k, v in whole.items():
        assert torch.equal(v, chunked[k]) and v.shape == (60, built.ctx.data.num_classes) and v.device.type == "cpu"
