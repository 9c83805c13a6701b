"""Losses: classification losses and class weights (:mod:`.classic`) and the supervised-contrastive core with
BNS (:mod:`.contrastive`). The public names of docs/architecture.md §3 (``FocalLoss``, ``LDAMLoss``,
``class_balanced_weights``, ``BNSLoss``) are importable from here."""

from ltbench.losses.classic import (
    FocalLoss,
    KPSLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    class_balanced_weights,
    inverse_frequency_weights,
    log_prior,
    logit_adjusted_cross_entropy,
)
from ltbench.losses.contrastive import (
    BNSLoss,
    contrastive_log_prob,
    contrastive_loss,
    first_k_mask,
    kcl_masks,
    kcl_queue_masks,
    sample_mask,
    sbcl_loss,
    sbcl_masks,
    supcon_masks,
    targeted_contrastive_loss,
    targets_as_samples,
)

__all__ = [
    "BNSLoss",
    "FocalLoss",
    "KPSLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "class_balanced_weights",
    "contrastive_log_prob",
    "contrastive_loss",
    "inverse_frequency_weights",
    "first_k_mask",
    "kcl_masks",
    "kcl_queue_masks",
    "log_prior",
    "logit_adjusted_cross_entropy",
    "sample_mask",
    "sbcl_loss",
    "sbcl_masks",
    "supcon_masks",
    "targeted_contrastive_loss",
    "targets_as_samples",
]
