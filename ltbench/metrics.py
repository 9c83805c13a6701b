"""Evaluation metrics, owned by the benchmark (never by methods).

Group accuracies follow classifier-balancing's ``shot_acc``: the mean of per-class accuracies over the
classes whose *training* count is > many / in [few, many] / < few (docs/protocol.md §0.3). An empty group is
NaN (shown as "n/a"), never a crash and never silently 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def per_class_accuracy(preds, labels, num_classes: int) -> np.ndarray:
    """Recall of each class (NaN for a class absent from ``labels``)."""
    preds, labels = _np(preds), _np(labels)
    correct = np.bincount(labels, weights=(preds == labels).astype(float), minlength=num_classes)
    total = np.bincount(labels, minlength=num_classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / np.maximum(total, 1), np.nan)


def group_accuracy(per_class: Sequence[float], train_counts: Sequence[int], many: int = 100, few: int = 20) -> dict:
    """Many/medium/few means of per-class accuracies (recomputable later from stored per-class values)."""
    acc = np.asarray(per_class, dtype=float)
    counts = np.asarray(train_counts)
    groups = {"many": counts > many, "medium": (counts >= few) & (counts <= many), "few": counts < few}
    out: dict = {}
    for name, mask in groups.items():
        vals = acc[mask & ~np.isnan(acc)]
        out[name] = float(vals.mean()) if len(vals) else float("nan")
        out[f"{name}_classes"] = int(mask.sum())
    return out


def shot_accuracy(preds, labels, train_counts: Sequence[int], many: int = 100, few: int = 20) -> dict:
    """Overall top-1, per-class accuracy and many/medium/few (docs/architecture.md §3)."""
    preds, labels = _np(preds), _np(labels)
    per_class = per_class_accuracy(preds, labels, len(train_counts))
    out = {"overall": float((preds == labels).mean()) if len(labels) else float("nan")}
    out.update(group_accuracy(per_class, train_counts, many, few))
    out["per_class"] = [float(v) for v in per_class]
    return out


def macro_f1(preds, labels, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``labels``."""
    preds, labels = _np(preds), _np(labels)
    f1s = []
    for c in range(num_classes):
        tp = float(np.sum((preds == c) & (labels == c)))
        fp = float(np.sum((preds == c) & (labels != c)))
        fn = float(np.sum((preds != c) & (labels == c)))
        if tp + fn == 0:
            continue
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else float("nan")


def g_mean(per_class: Sequence[float]) -> float:
    """Geometric mean of per-class recalls (0 as soon as one class is never recognised)."""
    acc = np.asarray([a for a in per_class if not math.isnan(a)], dtype=float)
    if len(acc) == 0:
        return float("nan")
    if np.any(acc <= 0):
        return 0.0
    return float(np.exp(np.mean(np.log(acc))))


def macro_auc(probs, labels, num_classes: int) -> float:
    """Unweighted mean over classes of the one-vs-rest ROC AUC of p(c | x) (the tutorial seed's imbalance
    metrics; scikit-learn's ``roc_auc_score`` per class). Classes without positives or negatives in ``labels``
    have no AUC and are left out."""
    from sklearn.metrics import roc_auc_score

    probs, labels = _np(probs), _np(labels)
    if not np.isfinite(probs).all():  # a diverged model's probabilities: no ranking to score
        return float("nan")
    aucs = []
    for c in range(num_classes):
        positive = labels == c
        if positive.all() or not positive.any():
            continue
        aucs.append(roc_auc_score(positive, probs[:, c]))
    return float(np.mean(aucs)) if aucs else float("nan")


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017; 15 bins is their default)."""
    probs, labels = _np(probs), _np(labels)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def weight_norm_stats(weight) -> dict:
    """Per-class L2 norms of a classifier's weight rows and their variance (seed paper Table 2 / Fig. 6)."""
    w = _np(weight).astype(float)
    norms = np.linalg.norm(w, axis=1)
    return {"weight_norms": [float(v) for v in norms], "weight_norm_var": float(norms.var())}


def classification_metrics(
    logits: torch.Tensor, labels: torch.Tensor, train_counts: Sequence[int], many: int = 100, few: int = 20
) -> dict:
    """Every metric of a result record from test logits: shot accuracies, macro-F1, G-mean, ECE, macro AUC."""
    probs = torch.softmax(logits.float(), dim=1)
    preds = probs.argmax(dim=1)
    out = shot_accuracy(preds, labels, train_counts, many, few)
    out["macro_f1"] = macro_f1(preds, labels, len(train_counts))
    out["g_mean"] = g_mean(out["per_class"])
    out["ece"] = expected_calibration_error(probs, labels)
    out["auc"] = macro_auc(probs, labels, len(train_counts))
    return out
