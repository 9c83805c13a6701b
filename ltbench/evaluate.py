"""Evaluation, owned by the benchmark: logits on a split for the method's default prediction and its
post-hoc variants, then every metric from ``ltbench.metrics``. The final epoch is what is reported.
"""

from __future__ import annotations

import torch
from torch import nn

from ltbench.method import Method
from ltbench.metrics import classification_metrics
from ltbench.train.context import Context

DEVICE_BUDGET = 512 * 2**20  # bytes of evaluation logits kept on the device before they move to the host


@torch.no_grad()
def evaluate_logits(
    method: Method, model: nn.Module, ctx: Context, images: torch.Tensor, stats: dict | None = None
) -> dict[str, torch.Tensor]:
    """CPU float32 logits per prediction variant ("default" plus e.g. ``tau=0.5``), one forward pass.

    Batches stay on the device (one copy per variant at the end, not one per batch: τ-norm has 22 variants)
    until they hold ``DEVICE_BUDGET`` bytes, then move to the host together: all 22 variants of ImageNet-LT's
    test set (50,000 x 1,000) would hold 4.4 GB of device memory. ``stats``, if given, receives the test-set
    mean of every per-image statistic of ``method.eval_stats``.
    """
    was_training = model.training
    model.eval()
    outs: dict[str, list[torch.Tensor]] = {}  # device batches not yet copied
    host: dict[str, list[torch.Tensor]] = {}  # one chunk per copy
    per_image: dict[str, list[torch.Tensor]] = {}
    held = 0  # bytes of logits on the device
    try:
        for x in ctx.eval_batches(images):
            with ctx.autocast():
                variants = method.predict_variants(model, x) or {}
                default = method.predict(model, x)
            for name, logits in {"default": default, **variants}.items():
                outs.setdefault(name, []).append(logits.float())
            held += sum(v.numel() for v in (default, *variants.values())) * 4
            if held > DEVICE_BUDGET:
                outs, held = _to_host(outs, host), 0
            if stats is not None:
                for name, value in (method.eval_stats(model, x) or {}).items():
                    per_image.setdefault(name, []).append(value.float())
    finally:
        model.train(was_training)
    n = len(images)  # the rest is padding (compiled models)
    if stats is not None:
        stats.update({k: float(torch.cat(v)[:n].mean()) for k, v in per_image.items()})
    _to_host(outs, host)
    return {k: torch.cat(v)[:n] for k, v in host.items()}


def _to_host(outs: dict[str, list[torch.Tensor]], host: dict[str, list[torch.Tensor]]) -> dict:
    """Append the device batches of every variant to ``host`` as one chunk (one copy per variant); returns {}."""
    for k, v in outs.items():
        host.setdefault(k, []).append(torch.cat(v).cpu())
    return {}


def evaluate(method: Method, model: nn.Module, ctx: Context, shots: tuple[int, int]) -> dict:
    """Test metrics of the reported prediction; variants selected on validation data only (rule B).

    Returns ``{"metrics": ..., "variants": {name: overall test acc}, "val": {...}, "chosen": name}``.
    """
    data = ctx.data
    many, few = shots
    stats: dict[str, float] = {}
    test = evaluate_logits(method, model, ctx, data.test_x, stats)
    val_scores = None
    if data.val_x is not None:
        val = evaluate_logits(method, model, ctx, data.val_x)
        val_scores = {k: float((v.argmax(1) == data.val_y).float().mean()) for k, v in val.items()}
    chosen = method.choose_variant(val_scores) or "default"
    metrics = classification_metrics(test[chosen], data.test_y, data.class_counts, many, few)
    metrics.update(stats)  # e.g. experts_used (RIDE-EA): a property of the reported prediction
    variants = {
        k: classification_metrics(v, data.test_y, data.class_counts, many, few)
        for k, v in test.items()
        if k != "default"
    }
    return {
        "metrics": metrics,
        "chosen": chosen,
        "val": val_scores,
        "variants": {k: {m: v[m] for m in ("overall", "many", "medium", "few")} for k, v in variants.items()},
        "test_logits": test[chosen],
    }


@torch.no_grad()
def feature_sample(
    model: nn.Module, ctx: Context, images: torch.Tensor, labels: torch.Tensor, per_class: int = 20, seed: int = 0
) -> dict[str, torch.Tensor] | None:
    """Pooled backbone features of a class-stratified test sample (``per_class`` images per class, at most
    5,000 in all) for the t-SNE figure of ``ltbench plot``; None if the model has no ``backbone``."""
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        return None
    gen = torch.Generator().manual_seed(seed)
    num_classes = int(labels.max()) + 1
    take = max(1, min(per_class, 5000 // num_classes))
    picks = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        picks.append(members[torch.randperm(len(members), generator=gen)[:take]])
    index = torch.cat(picks).sort().values
    was_training = backbone.training
    backbone.eval()
    feats = []
    try:
        for x in ctx.eval_batches(images[index]):
            with ctx.autocast():
                feats.append(backbone(x).float())
    finally:
        backbone.train(was_training)
    # float32: float16 overflows to inf on large pooled features (then t-SNE fails)
    features = torch.cat(feats)[: len(index)].cpu()
    return {"features": features, "labels": labels[index].int(), "index": index.int()}
