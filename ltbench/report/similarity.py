"""Category similarity between classes, from a trained run (Liu & Liu, "Investigate the essence of long-tailed
recognition from a unified perspective": a rare class suffers most when it resembles a frequent one).

Two measures per class pair (a, b), both from what a run stores about the test set:

* ``feature_cosine[a][b]`` — the cosine similarity of the class-mean pooled features of a and b over the
  class-stratified test sample (``features.npz``; the paper compares class means);
* ``confusion[a][b]`` — the share of class-a test images predicted as b (``predictions.npz``), zero diagonal.

``most_similar_frequent[c]`` is the highest feature cosine between c and any class with more training images
(None for the most frequent class): the x-axis of the similarity scatter of ``ltbench plot --kind similarity``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ltbench.records import FEATURES_FILE, PREDICTIONS_FILE

MAX_CLASSES = 100  # C x C matrices go into result.json up to this many classes


def class_similarity(
    features: np.ndarray, feature_labels: np.ndarray, preds: np.ndarray, labels: np.ndarray, counts: Sequence[int]
) -> dict:
    """The two C x C measures and each class's highest similarity to a more frequent class (lists, JSON-ready)."""
    num_classes = len(counts)
    means = np.zeros((num_classes, features.shape[1]))
    for c in range(num_classes):
        members = features[feature_labels == c]
        if len(members):
            means[c] = members.mean(axis=0)
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    unit = means / np.where(norms > 0, norms, 1.0)
    cosine = unit @ unit.T
    pairs = np.bincount(labels * num_classes + preds, minlength=num_classes**2)
    confusion = pairs.reshape(num_classes, num_classes).astype(float)
    confusion /= np.maximum(confusion.sum(axis=1, keepdims=True), 1.0)
    np.fill_diagonal(confusion, 0.0)
    return {
        "feature_cosine": np.round(cosine, 6).tolist(),
        "confusion": np.round(confusion, 6).tolist(),
        "most_similar_frequent": most_similar_frequent(cosine, counts),
    }


def most_similar_frequent(cosine: np.ndarray, counts: Sequence[int]) -> list[float | None]:
    """For each class, the highest cosine to a class with strictly more training images (None if there is none)."""
    counts = np.asarray(counts)
    out: list[float | None] = []
    for c in range(len(counts)):
        frequent = counts > counts[c]
        out.append(round(float(cosine[c, frequent].max()), 6) if frequent.any() else None)
    return out


def run_similarity(run_dir: Path, counts: Sequence[int]) -> dict | None:
    """``class_similarity`` from a run's stored files (runs recorded before the measure was added), or None."""
    feats, preds = Path(run_dir) / FEATURES_FILE, Path(run_dir) / PREDICTIONS_FILE
    if not (feats.exists() and preds.exists()):
        return None
    with np.load(feats) as f, np.load(preds) as p:
        if f["features"].ndim != 2:
            return None
        return class_similarity(f["features"], f["labels"], p["preds"].astype(int), p["labels"].astype(int), counts)
