"""Metrics against values computed by hand."""

import math

import numpy as np
import pytest
import torch

from ltbench.metrics import (
    expected_calibration_error,
    g_mean,
    group_accuracy,
    macro_f1,
    shot_accuracy,
    weight_norm_stats,
)


def test_shot_accuracy_by_hand():
    # 3 classes with train counts 150 (many), 50 (medium), 5 (few); 2 test images per class
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 0, 1, 0, 1, 1]
    out = shot_accuracy(preds, labels, [150, 50, 5])
    assert out["per_class"] == [1.0, 0.5, 0.0]
    assert out["overall"] == pytest.approx(3 / 6)
    assert (out["many"], out["medium"], out["few"]) == (1.0, 0.5, 0.0)
    assert (out["many_classes"], out["medium_classes"], out["few_classes"]) == (1, 1, 1)


def test_empty_group_is_nan_not_crash():
    out = shot_accuracy(torch.tensor([0, 1]), torch.tensor([0, 1]), [5000, 83])
    assert out["few_classes"] == 0 and math.isnan(out["few"])
    assert out["many"] == 1.0 and out["medium"] == 1.0


def test_thresholds_are_inclusive_for_medium():
    g = group_accuracy([1.0, 0.0, 0.5], [100, 20, 19], many=100, few=20)
    assert (g["many_classes"], g["medium_classes"], g["few_classes"]) == (0, 2, 1)
    assert g["medium"] == pytest.approx(0.5) and g["few"] == pytest.approx(0.5)


def test_macro_f1_by_hand():
    labels = [0, 0, 1, 1]
    preds = [0, 1, 1, 1]
    # class 0: tp 1, fp 0, fn 1 -> 2/3 ; class 1: tp 2, fp 1, fn 0 -> 4/5
    assert macro_f1(preds, labels, 2) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_g_mean_by_hand():
    assert g_mean([0.25, 1.0]) == pytest.approx(0.5)
    assert g_mean([0.0, 1.0]) == 0.0


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.6, 0.4]])
    labels = np.array([0, 1])
    # bins of width 1/15: 0.9 in one bin (acc 1, conf .9), 0.6 in another (acc 0, conf .6)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.1 + 0.5 * 0.6)


def test_weight_norms():
    w = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    s = weight_norm_stats(w)
    assert s["weight_norms"] == [5.0, 1.0]
    assert s["weight_norm_var"] == pytest.approx(4.0)


def test_macro_auc_by_hand():
    """Three classes, four images. Class 0: both positives (0.8, 0.6) above both negatives → 1; class 1: its
    positive (0.5) beats 2 of 3 negatives (0.1, 0.3; not 0.6) → 2/3; class 2: 0.3 above 0.1, 0.1, 0.2 → 1."""
    from ltbench.metrics import classification_metrics, macro_auc

    probs = torch.tensor([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.3, 0.5, 0.2], [0.1, 0.6, 0.3]])
    labels = torch.tensor([0, 0, 1, 2])
    assert macro_auc(probs, labels, 3) == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert macro_auc(probs, labels, 4) == pytest.approx((1 + 2 / 3 + 1) / 3)  # class 3 has no positives: left out
    logits = probs.log()
    assert classification_metrics(logits, labels, [10, 5, 1])["auc"] == pytest.approx((1 + 2 / 3 + 1) / 3)


def test_macro_auc_of_a_diverged_model_is_nan():
    from ltbench.metrics import macro_auc

    assert math.isnan(macro_auc(torch.full((4, 3), float("nan")), torch.tensor([0, 0, 1, 2]), 3))
