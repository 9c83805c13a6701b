"""Eigendecomposition-based k-DPP samplers on the dense IP-DPP kernel (modes ``eig`` and ``paper`` of
:func:`ltbench.dpp.sample_k_dpp`): the textbook exact sampler of Kulesza & Taskar (2012, Alg. 8), O(N³), kept as
an independent cross-check of the structured sampler and as the benchmark baseline; and the paper's Algorithm 1
as published (docs/methods.md §9.1), which is not a k-DPP sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor


def sample_eig(eigvals: torch.Tensor, eigvecs: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
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
