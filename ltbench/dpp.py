"""k-DPP sampling with the IP-DPP kernel of BNS + IP-DPP (METHODS.md §9.1, §9.3 items 9–11).

For one class with true-class probabilities p (N items) the kernel is S_ij = p_i p_j / N (i ≠ j),
S_jj = 1 − p_j (Σ_l p_l − p_j) / N, i.e. S = diag(d) + p pᵀ/N with d_i = 1 − p_i P / N. It is PSD with rows
summing to 1; when most p ≈ 1 it is close to rank one and det(S_Y) is dominated by the diagonal, so the
k-DPP favours low-confidence (informative) items. Stage 2 draws, per majority class, k items from
P(Y) ∝ det(S_Y), |Y| = k.

Sampler modes of :func:`sample_k_dpp`:

* ``exact`` (default): exact sampling that uses the kernel's structure — no N×N matrix, no
  eigendecomposition (see :mod:`ltbench._dpp_exact` for the algorithm and its exactness argument).
  Milliseconds for N = 5,000, well under a second for N = 100,000, k = 10,000.
* ``eig``: the textbook exact k-DPP sampler (Kulesza & Taskar 2012, Alg. 8) on the dense kernel; O(N³).
  Kept as an independent cross-check and as the benchmark baseline.
* ``paper``: Algorithm 1 of the paper as published: Bernoulli(λ/(λ+1)) eigenvector selection in eigh order,
  truncated once k are kept, then a *deterministic* arg-max phase 2. It is not a k-DPP sampler and can
  return fewer than k items; we return what it returns.
* ``code``: a uniform random k-subset — what the released code effectively does (§9.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ltbench._dpp_exact import log_normaliser_db, sample_structured, structured_weights
from ltbench.errors import ConfigError

MODES = ("exact", "eig", "paper", "code")

__all__ = [
    "MODES",
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
        return _sample_eig(eigvals, eigvecs, k, gen)
    return paper_algorithm1(eigvals, eigvecs, k, torch.rand(n, dtype=torch.float64, generator=gen))


def _sample_eig(eigvals: torch.Tensor, eigvecs: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Kulesza & Taskar (2012) Alg. 8: pick k eigenvectors by elementary symmetric polynomials, then sample
    the projection DPP they span with the chain rule."""
    n = eigvals.numel()
    chosen = _choose_eigvecs(eigvals.numpy(), k, torch.rand(n, dtype=torch.float64, generator=gen).numpy())
    if chosen is None:  # Z = 0 (all p = 1, rank-one kernel): same convention as mode "exact"
        return torch.randperm(n, generator=gen)[:k].sort().values

    def pick(norms2: torch.Tensor) -> int:
        return int(torch.multinomial(norms2.clamp_min(0.0), 1, generator=gen))

    return _projection_chain(eigvecs[:, chosen], pick)


def _choose_eigvecs(lam: np.ndarray, k: int, uniforms: np.ndarray) -> list[int] | None:
    """Phase 1 of Alg. 8: keep eigenvector n (scanning n = N..1) with prob λ_n e_{l−1}^{n−1} / e_l^n.

    The elementary symmetric polynomials e_l^n = e_l(λ_1..λ_n) are kept in log space (they span hundreds of
    orders of magnitude for k in the hundreds). Returns None when e_k^N = 0.
    """
    n = lam.size
    with np.errstate(divide="ignore"):
        loglam = np.log(lam)
    table = np.full((n + 1, k + 1), -np.inf)
    table[:, 0] = 0.0
    for i in range(1, n + 1):
        top = min(k, i)
        table[i, 1 : top + 1] = np.logaddexp(table[i - 1, 1 : top + 1], loglam[i - 1] + table[i - 1, :top])
    if not np.isfinite(table[n, k]):
        return None
    chosen, left = [], k
    for i in range(n, 0, -1):
        if left == 0:
            break
        if i == left or uniforms[i - 1] < math.exp(loglam[i - 1] + table[i - 1, left - 1] - table[i, left]):
            chosen.append(i - 1)
            left -= 1
    return chosen


def _projection_chain(v: torch.Tensor, pick: Callable[[torch.Tensor], int]) -> torch.Tensor:
    """Select |V| items from the projection kernel V Vᵀ (V with orthonormal columns), one at a time.

    At each step the item score is the squared row norm of V — (1/|V|)·Σ_v (vᵀe_i)² up to the constant
    1/|V| — and after choosing item i, V is replaced by an orthonormal basis of span(V) ∩ e_i^⊥. That
    subspace's projector is the old one minus w wᵀ with w = V r/‖r‖ (r = row i of V), so instead of
    re-orthonormalising V we Gram–Schmidt the chosen rows and subtract (V e)² from the scores: O(N·|V|)
    per step. ``pick`` turns the scores into an item (sampling for K&T, arg-max for the paper).
    """
    norms2 = (v * v).sum(dim=1)
    basis = torch.zeros(v.shape[1], v.shape[1], dtype=v.dtype)
    out: list[int] = []
    for step in range(v.shape[1]):
        i = pick(norms2)
        r = v[i].clone()
        for _ in range(2):  # twice is enough (Kahan–Parlett)
            r -= basis[:step].T @ (basis[:step] @ r)
        nrm = float(r.norm())
        if nrm <= 1e-12:
            break
        basis[step] = r / nrm
        norms2 -= (v @ basis[step]) ** 2
        norms2[i] = 0.0
        norms2[out] = 0.0
        out.append(i)
    return torch.tensor(sorted(out), dtype=torch.long)


def paper_algorithm1(eigvals: Tensor, eigvecs: Tensor, k: int, uniforms: Tensor) -> Tensor:
    """Algorithm 1 as published (§9.1), with its randomness supplied as ``uniforms`` (one per eigenvalue).

    Phase 1 scans eigenvalues in the given (eigh, ascending) order and keeps eigenvector i when
    uniforms[i] < λ_i/(λ_i + 1), decrementing k, and stops when k reaches 0 — so it keeps at most k, often
    fewer. Phase 2 repeatedly takes the arg-max (first index on ties) of (1/|V|) Σ_v (vᵀe_i)², adds it to Y
    and restricts V to its subspace orthogonal to e_i, until V is empty. Returns sorted Y (|Y| = |V|).
    """
    lam = eigvals.clamp_min(0.0)
    keep, left = [], k
    for i in range(lam.numel()):
        if left == 0:
            break
        if float(uniforms[i]) < float(lam[i] / (lam[i] + 1.0)):
            keep.append(i)
            left -= 1
    if not keep:
        return torch.zeros(0, dtype=torch.long)
    return _projection_chain(eigvecs[:, keep], lambda norms2: int(torch.argmax(norms2)))


def sample_per_class(
    p: torch.Tensor | np.ndarray | Sequence[float],
    labels: torch.Tensor | np.ndarray | Sequence[int],
    k: int,
    generator: torch.Generator | None = None,
    mode: str = "exact",
) -> tuple[torch.Tensor, dict[int, int]]:
    """Stage-2 subset: per class c with n_c > k, a k-DPP draw on that class's p alone (kernel size n_c);
    classes with n_c ≤ k are kept whole (§9.3 item 11).

    Returns (sorted global indices, {class: number selected}); with mode ``paper`` a class may get < k.
    """
    t = _as_probs(p)
    lab = torch.as_tensor(labels).detach().to("cpu").long()
    if lab.shape != t.shape:
        raise ConfigError(f"labels must have the same shape as p, got {tuple(lab.shape)} vs {tuple(t.shape)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ConfigError(f"k must be a non-negative integer, got {k!r}")
    if mode not in MODES:
        raise ConfigError(f"unknown k-DPP sampler mode {mode!r}; valid modes: {', '.join(MODES)}")
    gen = _generator(generator)
    parts, sizes = [], {}
    for c in torch.unique(lab).tolist():
        members = (lab == c).nonzero().flatten()
        if members.numel() > k:
            members = members[sample_k_dpp(t[members], int(k), generator=gen, mode=mode)]
        parts.append(members)
        sizes[int(c)] = int(members.numel())
    idx = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
    return idx.sort().values, sizes
