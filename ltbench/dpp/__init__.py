"""k-DPP sampling with the IP-DPP kernel of BNS + IP-DPP (docs/methods.md §9.1, §9.3 items 9–11).

For one class with true-class probabilities p (N items) the kernel is S_ij = p_i p_j / N (i ≠ j),
S_jj = 1 − p_j (Σ_l p_l − p_j) / N, i.e. S = diag(d) + p pᵀ/N with d_i = 1 − p_i P / N. It is PSD with rows
summing to 1; when most p ≈ 1 it is close to rank one and det(S_Y) is dominated by the diagonal, so the
k-DPP favours low-confidence (informative) items. Stage 2 draws, per majority class, k items from
P(Y) ∝ det(S_Y), |Y| = k.

Sampler modes of :func:`sample_k_dpp`:

* ``exact`` (default): exact sampling that uses the kernel's structure — no N×N matrix, no
  eigendecomposition (see :mod:`ltbench.dpp.exact` for the algorithm and its exactness argument).
  Milliseconds for N = 5,000, well under a second for N = 100,000, k = 10,000.
* ``eig``: the textbook exact k-DPP sampler (Kulesza & Taskar 2012, Alg. 8) on the dense kernel; O(N³).
  Kept as an independent cross-check and as the benchmark baseline.
* ``paper``: Algorithm 1 of the paper as published: Bernoulli(λ/(λ+1)) eigenvector selection in eigh order,
  truncated once k are kept, then a *deterministic* arg-max phase 2. It is not a k-DPP sampler and can
  return fewer than k items; we return what it returns.
* ``code``: a uniform random k-subset, fresh at every call — the release's uniform undersampling, re-drawn.

:func:`sample_per_class` also accepts ``released_fixed`` (not a k-DPP mode, so not in :data:`MODES`): what the
release (CASELabCode/Fudong-BNS-IPDPP, ``sampling/ip_dpp_smapler.py``) does exactly — it creates
``RandomState(42)`` inside every refresh and keeps the starting state of dppy's exchange chain, a uniform
k-subset, so every refresh returns the *same* uniform subset of each class and the kernel is never used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ltbench.dpp.eig import paper_algorithm1, sample_eig
from ltbench.dpp.exact import log_normaliser_db, sample_structured, structured_weights
from ltbench.errors import ConfigError

MODES = ("exact", "eig", "paper", "code")
# the release seeds a fresh generator with 42 inside every IP-DPP refresh (sampling/ip_dpp_smapler.py, forward)
RELEASED_SEED = 42
SUBSET_MODES = (*MODES, "released_fixed")  # modes of sample_per_class

__all__ = [
    "MODES",
    "RELEASED_SEED",
    "SUBSET_MODES",
    "ipdpp_kernel",
    "k_dpp_log_normaliser",
    "paper_algorithm1",
    "sample_k_dpp",
    "sample_per_class",
    "subset_log_prob",
]


def _as_probs(p: torch.Tensor | np.ndarray | Sequence[float]) -> torch.Tensor:
    """Validate p and return it as a 1-D float64 CPU tensor (a copy)."""
    t = torch.as_tensor(p).detach().to(device="cpu", dtype=torch.float64).clone()
    if t.dim() != 1:
        raise ConfigError(f"p must be a 1-D vector of true-class probabilities, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ConfigError("p contains NaN or infinite values; true-class probabilities must be finite")
    if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
        raise ConfigError(f"p must lie in [0, 1], got values in [{float(t.min()):g}, {float(t.max()):g}]")
    return t


def _check_k(k: int, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ConfigError(f"k must be an integer, got {k!r}")
    if k < 0:
        raise ConfigError(f"k must be non-negative, got k={k}")
    if k > n:
        raise ConfigError(f"k={k} exceeds the ground-set size N={n}; a k-DPP needs k ≤ N")
    return int(k)


def _generator(generator: torch.Generator | None) -> torch.Generator:
    """The caller's generator, or a freshly (non-deterministically) seeded one; global RNG untouched."""
    if generator is not None:
        return generator
    g = torch.Generator()
    g.seed()
    return g


def ipdpp_kernel(p: torch.Tensor | np.ndarray | Sequence[float]) -> torch.Tensor:
    """Dense N×N IP-DPP kernel (float64) — for tests and the ``eig``/``paper`` modes only.

    The diagonal is built as d + p²/N with d_i = (1 − p_i) + p_i Q/N (Q = Σ(1 − p)), algebraically equal to
    1 − p_j (P − p_j)/N but free of cancellation when p ≈ 1.
    """
    t = _as_probs(p)
    n = max(t.numel(), 1)
    d, b = structured_weights(t)
    s = torch.outer(t, t) / n
    s.diagonal().copy_(d + b)
    return s


def k_dpp_log_normaliser(p: torch.Tensor | np.ndarray | Sequence[float], k: int) -> float:
    """log Z = log Σ_{|Y|=k} det(S_Y) by the structured O(N·k) dynamic programme (−inf when Z = 0)."""
    t = _as_probs(p)
    k = _check_k(k, t.numel())
    d, b = structured_weights(t)
    return log_normaliser_db(d.numpy(), b.numpy(), k)


def subset_log_prob(p: torch.Tensor | np.ndarray | Sequence[float], subset: Sequence[int]) -> float:
    """log P(Y) = log det(S_Y) − log Z under the k-DPP with k = |Y|, via the determinant lemma."""
    t = _as_probs(p)
    idx = torch.as_tensor(list(subset), dtype=torch.long)
    if idx.unique().numel() != idx.numel() or (idx.numel() and (idx.min() < 0 or idx.max() >= t.numel())):
        raise ConfigError(f"subset must hold distinct indices in [0, {t.numel()}), got {list(subset)}")
    d, b = structured_weights(t)
    dy, by = d[idx], b[idx]
    zero = dy == 0
    if int(zero.sum()) >= 2:
        return -math.inf
    if int(zero.sum()) == 1:
        log_det = math.log(float(by[zero][0])) if float(by[zero][0]) > 0 else -math.inf
        log_det += float(torch.log(dy[~zero]).sum())
    else:
        log_det = float(torch.log(dy).sum()) + math.log1p(float((by / dy).sum()))
    return log_det - k_dpp_log_normaliser(t, idx.numel())


def sample_k_dpp(
    p: torch.Tensor | np.ndarray | Sequence[float],
    k: int,
    generator: torch.Generator | None = None,
    mode: str = "exact",
) -> torch.Tensor:
    """Draw k distinct items (sorted LongTensor of indices into p) from the IP-DPP k-DPP.

    ``generator`` (a CPU ``torch.Generator``) makes draws reproducible; None uses fresh randomness. See the
    module docstring for the modes; ``paper`` may return fewer than k items (published behaviour).
    Raises :class:`~ltbench.errors.ConfigError` for invalid p, k or mode.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown k-DPP sampler mode {mode!r}; valid modes: {', '.join(MODES)}")
    t = _as_probs(p)
    n = t.numel()
    k = _check_k(k, n)
    gen = _generator(generator)
    if k == 0 or k == n:
        return torch.arange(k, dtype=torch.long)
    if mode == "code":
        return torch.randperm(n, generator=gen)[:k].sort().values
    if mode == "exact":
        d, b = structured_weights(t)
        return sample_structured(d, b, k, gen, num=1)[0].sort().values
    eigvals, eigvecs = torch.linalg.eigh(ipdpp_kernel(t))
    # Eigenvalues below the rounding level of eigh (λ_max = 1) are zero: e.g. all p = 1 gives rank one.
    eigvals = torch.where(eigvals > n * torch.finfo(torch.float64).eps, eigvals, 0.0)
    if mode == "eig":
        return sample_eig(eigvals, eigvecs, k, gen)
    return paper_algorithm1(eigvals, eigvecs, k, torch.rand(n, dtype=torch.float64, generator=gen))


def sample_per_class(
    p: torch.Tensor | np.ndarray | Sequence[float],
    labels: torch.Tensor | np.ndarray | Sequence[int],
    k: int,
    generator: torch.Generator | None = None,
    mode: str = "exact",
) -> tuple[torch.Tensor, dict[int, int]]:
    """Stage-2 subset: per class c with n_c > k, a k-DPP draw on that class's p alone (kernel size n_c);
    classes with n_c ≤ k are kept whole (§9.3 item 11).

    ``mode="released_fixed"`` is the release's behaviour: ``generator`` and p are ignored; a generator seeded
    with :data:`RELEASED_SEED` is created at each call and the classes are visited in reverse label order (as
    the release's loop), each drawing a uniform k-subset — the same subsets at every call.
    Returns (sorted global indices, {class: number selected}); with mode ``paper`` a class may get < k.
    """
    t = _as_probs(p)
    lab = torch.as_tensor(labels).detach().to("cpu").long()
    if lab.shape != t.shape:
        raise ConfigError(f"labels must have the same shape as p, got {tuple(lab.shape)} vs {tuple(t.shape)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ConfigError(f"k must be a non-negative integer, got {k!r}")
    if mode not in SUBSET_MODES:
        raise ConfigError(f"unknown subset sampler mode {mode!r}; valid modes: {', '.join(SUBSET_MODES)}")
    classes = torch.unique(lab).tolist()
    if mode == "released_fixed":
        gen, mode, classes = torch.Generator().manual_seed(RELEASED_SEED), "code", classes[::-1]
    else:
        gen = _generator(generator)
    parts, sizes = [], {}
    for c in classes:
        members = (lab == c).nonzero().flatten()
        if members.numel() > k:
            members = members[sample_k_dpp(t[members], int(k), generator=gen, mode=mode)]
        parts.append(members)
        sizes[int(c)] = int(members.numel())
    idx = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
    return idx.sort().values, dict(sorted(sizes.items()))
