"""Classification losses and class weights (docs/methods.md §2, §3, §13; docs/architecture.md §3).

Everything here is computed in float32 (inputs are cast with ``.float()``): margins of a few hundredths on a
cosine, and log-priors of rare classes, must not drown in bf16's 3 significant digits under autocast.
Per-class buffers (margins, radii, weights) are moved to the input's device inside ``forward`` so a loss
built on the CPU works on any device without the method calling ``.to()``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltbench.distributed.gather import world_size
from ltbench.distributed.reduce import weighted_mean

Counts = Sequence[int] | Tensor


def _counts(class_counts: Counts) -> Tensor:
    """Class counts as a float64 vector; every class must have at least one training image.

    A class with n_c = 0 has no defined weight, margin or log-prior (1/0, 0^(-1/4), log 0), so it is an
    error here rather than an inf that surfaces as a NaN loss hundreds of steps later.
    """
    n = torch.as_tensor(class_counts, dtype=torch.float64).detach().cpu()
    if n.ndim != 1 or n.numel() == 0:
        raise ValueError(f"class_counts must be a non-empty 1-D sequence, got shape {tuple(n.shape)}")
    bad = (n < 1).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"class_counts must be >= 1; classes {bad} have counts {n[bad].tolist()}")
    return n


def _sum_to_num_classes(w: Tensor) -> Tensor:
    """Rescale so Σ_c w_c = C (Cui et al. 2019; the LDAM-DRW code): the average class weight stays 1."""
    return (w * (w.numel() / w.sum())).float()


def class_balanced_weights(class_counts: Counts, beta: float) -> Tensor:
    """Class-balanced "effective number" weights w_c = (1 − β) / (1 − β^{n_c}), rescaled to Σ_c w_c = C.

    Cui et al., CVPR 2019 (docs/methods.md §3 DRW and §13 CB); LDAM-DRW uses β = 0.9999. β = 0 gives all ones
    (every class has effective number 1); β → 1 tends to inverse frequency. Computed in float64 because
    1 − β^{n_c} with β = 0.9999 and small n_c loses digits in float32. Returns float32 (C,).
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta} (beta -> 1 is inverse_frequency_weights)")
    n = _counts(class_counts)
    return _sum_to_num_classes((1.0 - beta) / effective_number(n, beta))


def effective_number(n: Tensor, beta: float) -> Tensor:
    """Cui et al.'s effective number 1 − β^n of n images (up to the factor 1/(1 − β)), without the cancellation of
    computing β^n first; β = 0 gives 1. Shared by the class-balanced weights and the effective_number sampler."""
    return -torch.expm1(n * math.log1p(beta - 1.0)) if beta > 0 else torch.ones_like(n)


def inverse_frequency_weights(class_counts: Counts) -> Tensor:
    """Re-weighting by inverse class frequency, w_c ∝ 1/n_c with Σ_c w_c = C (docs/methods.md §13 "RW")."""
    return _sum_to_num_classes(1.0 / _counts(class_counts))


def log_prior(class_counts: Counts) -> Tensor:
    """log π_c = log(n_c / N), float32 (C,): the logit-adjustment offset (Menon et al. 2021)."""
    n = _counts(class_counts)
    return (n.log() - n.sum().log()).float()


def _optional_weight(weight: Tensor | Sequence[float] | None) -> Tensor | None:
    """A per-class weight as a float32 buffer value (None = unweighted)."""
    return None if weight is None else torch.as_tensor(weight, dtype=torch.float32)


def _weighted_mean(per_sample: Tensor, targets: Tensor, weight: Tensor | None) -> Tensor:
    """Batch mean, or Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i} — PyTorch's weighted-mean convention (docs/methods.md §3),
    over the global batch when several processes train (ltbench/distributed/reduce.py)."""
    if weight is None:
        return per_sample.mean()
    w = weight.to(per_sample.device, per_sample.dtype)[targets]
    if world_size() > 1:
        return weighted_mean(per_sample, w)
    return (w * per_sample).sum() / w.sum()


def weighted_cross_entropy(logits: Tensor, targets: Tensor, weight: Tensor | None) -> Tensor:
    """``F.cross_entropy(logits, targets, weight=weight)``; with several processes and a weight, the weighted mean
    of the global batch instead of each rank's own (ltbench/distributed/reduce.py)."""
    if weight is None or world_size() == 1:
        return F.cross_entropy(logits, targets, weight=weight)
    per_sample = F.cross_entropy(logits, targets, reduction="none")
    return weighted_mean(per_sample, weight.to(per_sample.device, per_sample.dtype)[targets])


class CrossEntropy(nn.CrossEntropyLoss):
    """``nn.CrossEntropyLoss`` (same buffers, same result in one process) whose ``weight`` means the weighted mean
    of the global batch when several processes train: RW, DRW's weights and the class-balanced CE."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self.weight is None or world_size() == 1:
            return super().forward(logits, targets)
        return weighted_cross_entropy(logits, targets, self.weight)


def logit_adjusted_cross_entropy(
    logits: Tensor,
    targets: Tensor,
    class_counts: Counts | None = None,
    tau: float = 1.0,
    weight: Tensor | None = None,
    *,
    log_pi: Tensor | None = None,
) -> Tensor:
    """Cross-entropy on z_c + τ·log π_c (logit-adjusted loss, Menon et al. ICLR 2021; docs/methods.md §13).

    Adding the log-prior during training makes the head classes' logits "pay" for their frequency, so the
    learnt z estimates the balanced posterior. τ = 1 is Balanced Softmax (Ren et al., NeurIPS 2020).
    Give the prior as ``class_counts`` or, precomputed, as ``log_pi`` (exactly one). ``weight`` uses
    PyTorch's weighted-mean convention.
    """
    if (class_counts is None) == (log_pi is None):
        raise ValueError("give exactly one of class_counts and log_pi")
    lp = log_prior(class_counts) if log_pi is None else log_pi
    z = logits.float() + tau * lp.to(logits.device, torch.float32)
    w = None if weight is None else weight.to(z.device, torch.float32)
    return weighted_cross_entropy(z, targets, w)


class LogitAdjustedLoss(nn.Module):
    """:func:`logit_adjusted_cross_entropy` as a module: the log-prior log π_c is a buffer (moved to the device
    with the module, never rebuilt per step); τ = 0 is plain cross-entropy (the post-hoc form trains that)."""

    log_pi: Tensor

    def __init__(self, class_counts: Counts, tau: float = 1.0) -> None:
        super().__init__()
        self.tau = float(tau)
        self.register_buffer("log_pi", log_prior(class_counts))

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return logit_adjusted_cross_entropy(logits, targets, tau=self.tau, log_pi=self.log_pi)


class FocalLoss(nn.Module):
    """Focal loss ℓ = (1 − p_y)^γ · (−log p_y), batch mean (Lin et al. 2017; docs/methods.md §2).

    γ = 1 is LDAM-DRW's CIFAR setting (§2); γ = 0 is cross-entropy. p_y comes from the *unweighted*
    softmax: the reference code computes p_y = exp(−weighted CE) = p_y^{w_y}, letting the class weight leak
    into the modulating factor (§2 implementation note) — we do not. With ``weight`` (a settable buffer,
    None or a (C,) tensor, e.g. CB-Focal), ℓ_i is multiplied by w_{y_i} and the sum divided by Σ_i w_{y_i}.
    """

    weight: Tensor | None

    def __init__(self, gamma: float = 1.0, weight: Tensor | None = None) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.register_buffer("weight", _optional_weight(weight))

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        logp_y = F.log_softmax(logits.float(), dim=1).gather(1, targets[:, None]).squeeze(1)
        ce = -logp_y
        if self.gamma > 0:
            # 1 − p_y via expm1 (exact near p_y = 1); the clamp keeps (·)^γ finite-gradient at p_y = 1, γ < 1
            one_minus_p = (-torch.expm1(logp_y)).clamp_min(torch.finfo(torch.float32).tiny)
            ce = one_minus_p.pow(self.gamma) * ce
        return _weighted_mean(ce, targets, self.weight)


class LDAMLoss(nn.Module):
    """Label-distribution-aware margin loss (Cao et al., NeurIPS 2019; docs/methods.md §3).

    ``forward(cosine, targets)`` takes the *unscaled* cosine logits of a normalised head, subtracts
    Δ_y from the target class only, multiplies by s and applies weighted CE (PyTorch's weighted mean, as the
    reference). Margins Δ_c = Δ_max · (n_min / n_c)^{1/4} (= Δ_max n_c^{-1/4} / max_j n_j^{-1/4}): the
    rarest class gets Δ_max; Δ_max = 0.5 and s = 30 are the paper's CIFAR values. ``weight`` is a settable
    buffer (None or (C,)) so DRW can switch class-balanced weights on at its epoch.
    """

    margins: Tensor
    weight: Tensor | None

    def __init__(
        self,
        class_counts: Counts,
        max_margin: float = 0.5,
        s: float = 30.0,
        weight: Tensor | None = None,
    ) -> None:
        super().__init__()
        if s <= 0 or max_margin < 0:
            raise ValueError(f"need s > 0 and max_margin >= 0, got s={s}, max_margin={max_margin}")
        n = _counts(class_counts)
        self.s = float(s)
        self.register_buffer("margins", (max_margin * (n.min() / n) ** 0.25).float())
        self.register_buffer("weight", _optional_weight(weight))

    def logits(self, cosine: Tensor) -> Tensor:
        """The margin-free logits s·cos the loss trains: the method's test-time logits (probabilities, ECE)."""
        return cosine.float() * self.s

    def forward(self, cosine: Tensor, targets: Tensor) -> Tensor:
        cos = cosine.float()
        margin = self.margins.to(cos.device)[targets]
        logits = cos.scatter_add(1, targets[:, None], -margin[:, None]) * self.s
        w = None if self.weight is None else self.weight.to(cos.device)
        return weighted_cross_entropy(logits, targets, w)


class KPSLoss(nn.Module):
    """KPS loss, "KPS (no GA)": constant s (Li, Cheung & Hu, TPAMI 2022; docs/methods.md §13 [PROPOSAL]).

    ℓ = −log[e^{s(r_y cosθ_y − m_y)} / (e^{s(r_y cosθ_y − m_y)} + Σ_{j≠y} e^{s r_j cosθ_j})] on the unscaled
    cosines of a normalised head, with r_c ∝ log n_c + C_r (frequent classes get a larger radius) and
    m_c ∝ C_m − log n_c (rare classes a larger margin); the margin is in the cosine scale, inside s(·).

    Units (``normalize=True``, default). Taken literally (natural log, slope 1), the margins of IR = 100
    span log 100 = 4.6 > 2, the whole cosine range: with m_c ≥ 0 for the head, the rarest class's margin is
    at least 4.6 and its training constraint is unsatisfiable. The official code (Keke921/KPSLoss,
    ``losses.py``) fixes the units: radii log(50·n_c/n_min)/log 50 (rarest = 1) and margins rescaled so the
    largest is ``max_margin`` = 0.5. We do the same with the formula's shapes kept exactly:
        r_c = (log n_c + C_r) / (log n_min + C_r),   m_c = max_margin · (C_m − log n_c) / (C_m − log n_min),
    defaults C_r = log 50 − log n_min and C_m = log(50 · n_max): the official radii exactly, and its margins
    for an exponential profile (it flips the sorted radii; we use n_max / n_min, so order does not matter).
    CIFAR-10-LT IR 100: r from 1 (tail) to 2.18 (head), m from 0.5 (tail) to 0.23 (head).
    ``normalize=False`` is the literal r_c = log n_c + C_r, m_c = C_m − log n_c (defaults C_r = 1 − log n_min,
    C_m = log n_max: the smallest values with r_c ≥ 1 > 0 and m_c ≥ 0). Requires r_c > 0 and m_c ≥ 0.
    """

    radii: Tensor
    margins: Tensor
    weight: Tensor | None

    def __init__(
        self,
        class_counts: Counts,
        s: float = 30.0,
        c_r: float | None = None,
        c_m: float | None = None,
        max_margin: float = 0.5,
        normalize: bool = True,
        weight: Tensor | None = None,
    ) -> None:
        super().__init__()
        logn = _counts(class_counts).log()
        lo, hi = float(logn.min()), float(logn.max())
        base = math.log(50.0)  # Keke921/KPSLoss: counts rescaled so the rarest is 50, then log (radius 1)
        if c_r is None:
            c_r = base - lo if normalize else 1.0 - lo
        if c_m is None:
            c_m = base + hi if normalize else hi
        radii, margins = logn + c_r, c_m - logn
        if lo + c_r <= 0 or c_m < hi:
            raise ValueError(
                f"KPS needs r_c = log n_c + C_r > 0 and m_c = C_m − log n_c >= 0 for every class: "
                f"C_r must be > {-lo:.4f} and C_m >= {hi:.4f} (got C_r={c_r}, C_m={c_m})"
            )
        if normalize:
            radii = radii / (lo + c_r)
            span = c_m - lo  # 0 only for balanced counts with C_m = log n: then all margins are 0
            margins = margins * (max_margin / span) if span > 0 else torch.zeros_like(margins)
        self.s, self.c_r, self.c_m = float(s), float(c_r), float(c_m)
        self.register_buffer("radii", radii.float())
        self.register_buffer("margins", margins.float())
        self.register_buffer("weight", _optional_weight(weight))

    def logits(self, cosine: Tensor) -> Tensor:
        """The margin-free logits s·r_c·cos_c the loss trains: the method's test-time logits."""
        return cosine.float() * self.radii.to(cosine.device) * self.s

    def forward(self, cosine: Tensor, targets: Tensor) -> Tensor:
        cos = cosine.float()
        scaled = cos * self.radii.to(cos.device)
        margin = self.margins.to(cos.device)[targets]
        logits = scaled.scatter_add(1, targets[:, None], -margin[:, None]) * self.s
        w = None if self.weight is None else self.weight.to(cos.device)
        return weighted_cross_entropy(logits, targets, w)
