"""Exact, structure-exploiting k-DPP sampler for the IP-DPP kernel (mode ``exact`` of :mod:`ltbench.dpp`).

The IP-DPP kernel of one class with confidences p (N items, P = Σ p, Q = Σ (1 − p) = N − P) is

    S = diag(d) + p pᵀ / N,    d_i = 1 − p_i P / N = (1 − p_i) + p_i Q / N ≥ 0,    b_i = p_i² / N.

(The second form of d_i is the one computed: it is exact to rounding even when p ≈ 1, where
``1 − p_i P / N`` cancels catastrophically.) By the matrix determinant lemma, for every subset Y

    det(S_Y) = Π_{i∈Y} d_i + Σ_{j∈Y} b_j Π_{i∈Y∖{j}} d_i ,

so a k-subset is a set of k items, each "plain" (weight d_i) except at most one "special" item (weight
b_j), and det(S_Y) sums the weights of the k + 1 ways to label Y. docs/methods.md §9.3 item 10(a) samples this
with an O(N·k) dynamic programme; here we use an equivalent but much cheaper exact method, **rejection
from tilted independent choices** (conditional Poisson sampling extended by the one special item):

* Every item independently picks a state: out / plain / special with odds 1 : c·d_i : u·b_i (c, u > 0).
  A draw (Y_plain, Y_special) then has probability ∝ c^|Yp| u^|Ys| Π_{Yp} d Π_{Ys} b.
* Keep the draw only if |Yp| + |Ys| = k and |Ys| ≤ 1. Conditioned on that, a labelled k-set with no
  special item has probability ∝ c^k Π d and one with special item j has probability ∝ c^k t b_j Π d
  (t = u / c). A final coin with acceptance a0 = min(1, t) (no special) / a1 = min(1, 1/t) (one special)
  removes the factor t, so an accepted draw has probability ∝ det-term of its labelling, and summing over
  the labellings of the same set Y gives exactly det(S_Y). Every accepted draw is therefore an exact
  sample of P(Y) ∝ det(S_Y), |Y| = k — for *any* c, u; c and u only decide how often we accept.
* c and u are chosen to maximise the acceptance probability A(c, u) = c^k t Z / Π_i(1 + c d_i + u b_i).
  log A is concave in (log c, log u); its maximiser makes the expected size k and the expected number of
  special items 1 (or t = 1 when even t = 1 gives < 1 expected special). At that point the size is a
  Poisson-binomial variable with integer mean k, whose mode is k (Darroch 1964), so P(size = k) ≈
  1/√(2π σ²) and the expected number of rounds is O(σ) = O(√min(k, N − k)). Each round is N random
  16-bit integers and one comparison per item (see :class:`_Threshold` for why that is still exact),
  vectorised over many rounds at once: N = 100,000, k = 10,000 costs a few hundred rounds, i.e. tens of
  millions of comparisons, instead of the 10⁹ table cells of the DP, and nothing can overflow or underflow
  (there are no products of k weights anywhere; the tilt is solved in log space).

The DP is still here (:func:`log_normaliser_db`, in log space) to compute log Z for tests and diagnostics.
Degenerate case: Z = 0 only when every p_i = 1 (then d ≡ 0, S = 11ᵀ/N has rank one) and k ≥ 2; the k-DPP
is undefined and the sampler returns a uniform k-subset, the limit of p_i = 1 − δ as δ → 0 (all items are
then exchangeable).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

_MAX_BATCH_ELEMS = 1 << 21  # uniforms drawn per vectorised batch of rounds
_INT_TYPES = {8: np.uint8, 16: np.uint16, 32: np.uint32}
Rng = np.random.Generator


def structured_weights(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d, b) of S = diag(d) + p pᵀ/N, computed without cancellation (see the module docstring)."""
    n = p.numel()
    q = 1.0 - p
    d = q + p * (q.sum() / n)
    return d.clamp_min(0.0), p * p / n


def _log(x: torch.Tensor) -> torch.Tensor:
    """Elementwise log of non-negative weights; torch gives log(0) = −inf without warnings."""
    return torch.log(x)


def _size_tilt(logw: np.ndarray, k: int) -> float:
    """log c such that Σ σ(log c + log w_i) = k (expected size k with t = 1), by safeguarded Newton."""
    n = logw.size
    base = math.log(k / (n - k))
    lo, hi = base - float(logw.max()), base - float(logw.min())  # Σσ ≤ k at lo, ≥ k at hi
    a = 0.5 * (lo + hi)
    for _ in range(200):
        pi = 0.5 * (1.0 + np.tanh(0.5 * (a + logw)))  # σ without overflow warnings
        g = float(pi.sum()) - k
        if abs(g) < 1e-9 * k + 1e-12:
            break
        lo, hi = (a, hi) if g < 0 else (lo, a)
        slope = float(pi @ (1.0 - pi))
        step = a - g / slope if slope > 0 else math.nan
        a = step if lo < step < hi else 0.5 * (lo + hi)
        if hi - lo < 1e-13 * (1.0 + abs(a)):
            break
    return a


def _log_den(alpha: float, beta: float, ld: np.ndarray, lb: np.ndarray) -> tuple[np.ndarray, ...]:
    """log(1 + e^{α+log d} + e^{β+log b}) and the plain / special probabilities, overflow-free."""
    a, s = alpha + ld, beta + lb
    top = np.maximum(np.maximum(a, s), 0.0)
    ea, es, e0 = np.exp(a - top), np.exp(s - top), np.exp(-top)
    tot = e0 + ea + es
    return top + np.log(tot), ea / tot, es / tot, e0 / tot


def _tilt_objective(alpha: float, beta: float, ld: np.ndarray, lb: np.ndarray, k: int):
    """log A up to the constant log Z, with its gradient and Hessian in (log c, log u)."""
    log_den, pl, sp, _ = _log_den(alpha, beta, ld, lb)
    f = (k - 1) * alpha + beta - float(log_den.sum())
    grad = np.array([k - 1 - pl.sum(), 1.0 - sp.sum()])
    cov = float(pl @ sp)
    hess = -np.array([[float(pl @ (1 - pl)), -cov], [-cov, float(sp @ (1 - sp))]])
    return f, grad, hess


def solve_tilt(d: torch.Tensor, b: torch.Tensor, k: int) -> tuple[float, float]:
    """(log c, log u) maximising the acceptance rate; any finite pair keeps the sampler exact.

    First solve t = 1 (one parameter, monotone). If that already expects ≤ 1 special item it is optimal
    (the t ≤ 1 branch of log A is maximised at its boundary). Otherwise maximise the concave log A with
    damped Newton, starting there; a maximiser exists because the expected special count goes from > 1
    (t = 1) to 0 (t → 0) along the size-k curve. Moments within a small fraction of a standard deviation
    of their targets are good enough: the tilt only sets the acceptance rate, never the distribution.
    """
    ld, lb = _log(d).numpy(), _log(b).numpy()
    alpha = _size_tilt(_log(d + b).numpy(), k)
    _, pl, sp, _ = _log_den(alpha, alpha, ld, lb)
    if float(sp.sum()) <= 1.0:
        return alpha, alpha
    tol = np.array([0.05 * math.sqrt(float(((pl + sp) * (1 - pl - sp)).sum()) + 1.0), 0.02])
    # Start from the uncoupled solution: k − 1 expected plain items, then u for one expected special one.
    a0 = _size_tilt(ld, k - 1)
    softplus = np.logaddexp(0.0, a0 + ld)
    x = np.array([a0, -float(np.logaddexp.reduce(lb - softplus))])
    f, g, h = _tilt_objective(x[0], x[1], ld, lb, k)
    for _ in range(100):
        if np.all(np.abs(g) < tol):
            break
        try:
            step = -np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            step = g
        if not np.all(np.isfinite(step)) or step @ g <= 0:
            step = g  # Hessian numerically singular: fall back to gradient ascent
        s = 1.0
        while s > 1e-12:
            fn, gn, hn = _tilt_objective(*(x + s * step), ld, lb, k)
            if fn >= f + 1e-4 * s * float(step @ g):
                break
            s *= 0.5
        else:
            break
        x, f, g, h = x + s * step, fn, gn, hn
    return float(x[0]), float(x[1])


def _numpy_rng(gen: torch.Generator) -> np.random.Generator:
    """A NumPy PCG64 stream seeded from ``gen`` (reproducible, advances ``gen``).

    NumPy's raw PCG64 words are much cheaper than ``torch.rand`` on CPU, and random numbers are most of
    the cost of the rejection rounds.
    """
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))


def sample_structured(
    d: torch.Tensor, b: torch.Tensor, k: int, gen: torch.Generator, num: int = 1, bits: int = 16
) -> torch.Tensor:
    """``num`` i.i.d. exact k-DPP samples for det(S_Y) = Π d + Σ b_j Π_{≠j} d, as a (num, k) LongTensor.

    Assumes 0 ≤ k ≤ N and finite non-negative d, b. Rows hold sorted indices. ``bits`` is the width of the
    integer uniforms of the rejection rounds (tests use 8 to exercise the tie-breaking path).
    """
    n = d.numel()
    rng = _numpy_rng(gen)
    if k == 0 or k == n:
        return torch.arange(k, dtype=torch.long).expand(num, k).clone()
    if k == 1:  # P({i}) ∝ S_ii = d_i + b_i
        w = (d + b).numpy()
        return torch.from_numpy(rng.choice(n, size=(num, 1), p=w / w.sum())).long()
    n_pos = int((d > 0).sum())
    if n_pos < k - 1 or (n_pos == k - 1 and not bool((b[d == 0] > 0).any())):
        keys = rng.random((num, n))  # Z = 0 (all p = 1): uniform k-subsets, see the module docstring
        return torch.from_numpy(np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)).long()
    return torch.from_numpy(_rejection_rounds(d, b, k, rng, num, bits)).long()


class _Threshold(NamedTuple):
    """A probability thr ∈ [0, 1] split as (whole + frac) / 2^bits, whole an integer < 2^bits.

    With m a uniform ``bits``-bit integer and V ~ U[0, 1) the event U = (m + V)/2^bits < thr is exactly
    {m < whole} ∪ {m = whole, V < frac}. Only the integers are compared for every item (16-bit integers
    are generated ~4× faster than float64 uniforms and compare faster); V is drawn only for the ties
    (probability 2^-bits per item), so the rounds stay exact at a fraction of the cost.
    """

    whole: np.ndarray
    frac: np.ndarray


class _Ties(NamedTuple):
    """The V draws of tied cells: sorted batch-global cell ids (round·N + item) and their values."""

    cells: np.ndarray
    vals: np.ndarray


def _threshold(thr: np.ndarray, bits: int) -> _Threshold:
    scaled = thr * 2.0**bits  # exact: scaling by a power of two
    whole = np.minimum(np.floor(scaled), 2.0**bits - 1)
    return _Threshold(whole.astype(_INT_TYPES[bits]), scaled - whole)


def _below(
    m: np.ndarray, thr: _Threshold, rows: np.ndarray, rng: np.random.Generator, memo: _Ties | None = None
) -> tuple[np.ndarray, _Ties]:
    """Bool matrix U < thr for the integer parts ``m`` (rows ``rows`` of the batch), and the tie draws.

    Tied cells get V ~ U[0, 1); a cell already tied against another threshold (``memo``) reuses its V, so
    both thresholds of one item are compared with the same U.
    """
    n = m.shape[1]
    out = m < thr.whole
    flat = np.flatnonzero(m == thr.whole)
    cells = rows[flat // n] * n + flat % n  # batch-global cell ids, increasing
    vals = rng.random(flat.size)
    if memo is not None and memo.cells.size and flat.size:
        pos = np.minimum(np.searchsorted(memo.cells, cells), memo.cells.size - 1)
        hit = memo.cells[pos] == cells
        vals[hit] = memo.vals[pos[hit]]
    out.reshape(-1)[flat] = vals < thr.frac[flat % n]
    return out, _Ties(cells, vals)


def _rejection_rounds(d: torch.Tensor, b: torch.Tensor, k: int, rng: Rng, num: int, bits: int):
    """The rejection loop of the module docstring (2 ≤ k < N, Z > 0); returns a (num, k) index array.

    Rounds are drawn in vectorised batches and accepted rounds are taken in drawing order, so the output
    is a sequence of i.i.d. exact samples (rejection does not care how many rounds are evaluated at once).
    The plain/special split is only evaluated for rounds of the right size.
    """
    n = d.numel()
    alpha, beta = solve_tilt(d, b, k)
    _, pl, sp, _ = _log_den(alpha, beta, _log(d).numpy(), _log(b).numpy())
    any_p = pl + sp  # P(plain) + P(special), no cancellation
    thr_any, thr_plain = _threshold(any_p, bits), _threshold(np.minimum(pl, any_p), bits)
    acc = np.array([min(1.0, math.exp(beta - alpha)), min(1.0, math.exp(alpha - beta))])  # 0 / 1 special
    # Rounds per sample, as measured: √(2πσ²) for t = 1, about e times more when t < 1 (then only the
    # rounds with exactly one special item, ≈ 1/e of them, are accepted with certainty).
    sigma2 = float((any_p * (1.0 - any_p)).sum())
    expected = math.sqrt(2 * math.pi * (sigma2 + 1.0)) * (math.e if acc[0] < 1 else 1.0)
    expected *= 1.5  # first batch: some slack, so that a second batch is rarely needed
    cap = max(1, _MAX_BATCH_ELEMS // n)
    rounds, drawn, max_rounds = max(1, min(int(expected * num), cap)), 0, int(1000 * (expected + 10) * num)
    out: list[np.ndarray] = []
    got = 0
    while got < num:
        if drawn > max_rounds:
            raise RuntimeError(f"k-DPP rejection sampler: no acceptance after {drawn} rounds (N={n}, k={k})")
        words = rng.bit_generator.random_raw(-(-rounds * n * bits // 64))
        m = words.view(_INT_TYPES[bits])[: rounds * n].reshape(rounds, n)
        coin = rng.random(rounds)
        inside, ties = _below(m, thr_any, np.arange(rounds), rng)
        cand = np.flatnonzero(inside.view(np.uint8).sum(axis=1, dtype=np.int64) == k)
        n_special = k - np.count_nonzero(_below(m[cand], thr_plain, cand, rng, ties)[0], axis=1)
        ok = (n_special <= 1) & (coin[cand] < acc[np.minimum(n_special, 1)])
        rows = cand[ok][: num - got]
        if rows.size:
            out.append(np.nonzero(inside[rows])[1].reshape(rows.size, k))
            got += rows.size
        drawn += rounds
        rounds = min(2 * rounds, cap)
    return np.concatenate(out)


def log_normaliser_db(d: np.ndarray, b: np.ndarray, k: int) -> float:
    """log Σ_{|Y|=k} det(S_Y) by the §9.3 10(a) dynamic programme, in log space (no under/overflow).

    E0[l] = log-weight of size-l prefixes without a special item, E1[l] with exactly one:
    E0'[l] = E0[l] ⊕ (log d_i + E0[l−1]),  E1'[l] = E1[l] ⊕ (log d_i + E1[l−1]) ⊕ (log b_i + E0[l−1]).
    O(N·k); meant for tests and diagnostics, not for sampling.
    """
    with np.errstate(divide="ignore"):
        ld, lb = np.log(np.asarray(d, dtype=np.float64)), np.log(np.asarray(b, dtype=np.float64))
    n = ld.size
    e0 = np.full(k + 1, -np.inf)
    e1 = np.full(k + 1, -np.inf)
    e0[0] = 0.0
    for i in range(n):
        top = min(k, i + 1)
        new1 = np.logaddexp(e1[1 : top + 1], ld[i] + e1[:top])
        new1 = np.logaddexp(new1, lb[i] + e0[:top])
        e0[1 : top + 1] = np.logaddexp(e0[1 : top + 1], ld[i] + e0[:top])
        e1[1 : top + 1] = new1
    return float(np.logaddexp(e0[k], e1[k]))
