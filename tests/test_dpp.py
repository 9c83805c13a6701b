"""Tests of the IP-DPP k-DPP samplers (ltbench.dpp): exactness against brute-force enumeration, the
normaliser, the paper's Algorithm 1 on a hand-checked example, reproducibility, numerical safety, errors."""

from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from scipy import stats

from ltbench.dpp import (
    MODES,
    ipdpp_kernel,
    k_dpp_log_normaliser,
    paper_algorithm1,
    sample_k_dpp,
    sample_per_class,
    subset_log_prob,
)
from ltbench.dpp.eig import _choose_eigvecs
from ltbench.dpp.exact import (
    _below,
    _threshold,
    log_normaliser_db,
    sample_structured,
    solve_tilt,
    structured_weights,
)
from ltbench.errors import ConfigError

P_MIXED = [0.1, 0.5, 0.9, 0.99, 1.0, 0.0]  # includes p = 1 and p = 0 (t = 1 tilt branch)
P_EQUAL = [0.7] * 6  # all p equal: the k-DPP is uniform
P_CONFIDENT = [1.0, 1.0, 0.999, 0.98, 0.95, 0.9, 0.6, 0.0]  # near rank one: exercises the t < 1 branch
# Special-item weight ≫ plain weight (t ≪ 1): a sampler that mishandles the special item or the final
# acceptance coin fails the chi-square test here by many orders of magnitude (checked by mutation).
P_NEAR_RANK_ONE = [1.0, 1.0, 1.0, 1.0, 0.999, 0.99, 0.97, 0.9]
CHI2_CASES = (
    [(P_MIXED, k) for k in range(1, 7)]
    + [(P_EQUAL, 3)]
    + [(P_CONFIDENT, k) for k in range(1, 9)]
    + [(P_NEAR_RANK_ONE, k) for k in range(2, 8)]
)


def _det(s: torch.Tensor, y: tuple[int, ...]) -> float:
    return float(torch.linalg.det(s[list(y)][:, list(y)]))


def _brute_force(p: list[float], k: int) -> dict[tuple[int, ...], float]:
    """det(S_Y)/Z for every k-subset, from the dense kernel."""
    s = ipdpp_kernel(p)
    dets = {y: _det(s, y) for y in itertools.combinations(range(len(p)), k)}
    z = sum(dets.values())
    return {y: max(v, 0.0) / z for y, v in dets.items()}


def _chi2_pvalue(samples: np.ndarray, probs: dict[tuple[int, ...], float]) -> float:
    """Chi-square goodness of fit of sampled subsets (rows) to probs; cells with expected count < 5 pooled."""
    keys = list(probs)
    index = {y: i for i, y in enumerate(keys)}
    obs = np.zeros(len(keys))
    for row in samples:
        obs[index[tuple(int(x) for x in row)]] += 1
    exp = np.array([probs[y] for y in keys]) * len(samples)
    small = exp < 5
    if small.any():
        obs = np.append(obs[~small], obs[small].sum())
        exp = np.append(exp[~small], exp[small].sum())
    if exp[-1] == 0:  # a pooled cell of zero expected count must be empty
        assert obs[-1] == 0
        obs, exp = obs[:-1], exp[:-1]
    if obs.size == 1:  # a single possible outcome (k = N): nothing to test beyond the count
        return 1.0 if obs[0] == len(samples) else 0.0
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


def _exact_draws(p: list[float], k: int, num: int, seed: int) -> np.ndarray:
    """num exact samples from the batched core that ``sample_k_dpp(mode='exact')`` calls with num=1."""
    d, b = structured_weights(torch.tensor(p, dtype=torch.float64))
    return sample_structured(d, b, k, torch.Generator().manual_seed(seed), num=num).numpy()


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- kernel and normaliser ---------------------------------------------------------------------------------


def test_kernel_matches_definition_and_is_a_psd_stochastic_matrix():
    p = torch.tensor(P_MIXED + [0.3, 0.77], dtype=torch.float64)
    n, total = p.numel(), float(p.sum())
    s = ipdpp_kernel(p)
    want = torch.outer(p, p) / n
    want.diagonal().copy_(1 - p * (total - p) / n)
    torch.testing.assert_close(s, want, rtol=0, atol=1e-15)
    torch.testing.assert_close(s, s.T, rtol=0, atol=0)
    torch.testing.assert_close(s.sum(1), torch.ones(n, dtype=torch.float64))
    eig = torch.linalg.eigvalsh(s)
    assert float(eig.min()) >= -1e-12 and float(eig.max()) <= 1 + 1e-12


@pytest.mark.parametrize("p", [P_MIXED, P_EQUAL, P_CONFIDENT, [1.0] * 5])
def test_log_normaliser_matches_dense_enumeration(p):
    s = ipdpp_kernel(p)
    for k in range(len(p) + 1):
        z = sum(_det(s, y) for y in itertools.combinations(range(len(p)), k))
        got = k_dpp_log_normaliser(p, k)
        if z <= 1e-14:
            assert got == -math.inf or math.exp(got) < 1e-14
        else:
            assert got == pytest.approx(math.log(z), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_log_normaliser_matches_elementary_symmetric_polynomial_of_eigenvalues(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.beta(8, 1, size=30), [1.0, 1.0, 0.0], rng.uniform(size=7)])
    lam = torch.linalg.eigvalsh(ipdpp_kernel(p)).clamp_min(0).numpy()
    e = np.zeros(11)
    e[0] = 1.0
    for x in lam:  # e_l(λ) by the usual recursion (fine in float64 at this size)
        e[1:] = e[1:] + x * e[:-1]
    assert k_dpp_log_normaliser(p, 10) == pytest.approx(math.log(e[10]), rel=1e-9)


def test_subset_log_probs_sum_to_one():
    total = sum(math.exp(subset_log_prob(P_CONFIDENT, y)) for y in itertools.combinations(range(8), 3))
    assert total == pytest.approx(1.0, rel=1e-10)
    probs = _brute_force(P_CONFIDENT, 3)
    assert math.exp(subset_log_prob(P_CONFIDENT, (0, 6, 7))) == pytest.approx(probs[(0, 6, 7)], rel=1e-9)


# --- exactness of mode "exact" ------------------------------------------------------------------------------


def test_both_tilt_branches_are_exercised():
    """The t = 1 and t < 1 regimes of the rejection sampler are both covered by CHI2_CASES."""
    branches = set()
    for p, k in CHI2_CASES:
        if 2 <= k < len(p):
            d, b = structured_weights(torch.tensor(p, dtype=torch.float64))
            alpha, beta = solve_tilt(d, b, k)
            branches.add(math.isclose(alpha, beta))
    assert branches == {True, False}


@pytest.mark.parametrize("p,k", CHI2_CASES)
def test_exact_matches_brute_force_distribution(p, k):
    draws = _exact_draws(p, k, 20_000, seed=1000 + k)
    assert draws.shape == (20_000, k)
    assert _chi2_pvalue(draws, _brute_force(p, k)) > 1e-3


@pytest.mark.parametrize("p,k", [(P_NEAR_RANK_ONE, 4), (P_MIXED, 3)])
def test_exact_with_8_bit_integer_uniforms_matches_brute_force(p, k):
    """With 8-bit integer parts, ties (resolved by an extra uniform) happen in a few % of the rounds."""
    d, b = structured_weights(torch.tensor(p, dtype=torch.float64))
    draws = sample_structured(d, b, k, _seeded(77), num=20_000, bits=8).numpy()
    assert _chi2_pvalue(draws, _brute_force(p, k)) > 1e-3


def test_integer_threshold_ties_are_exact_and_shared_between_thresholds():
    """U = (m + V)/2^bits < thr: tied cells use V, and both thresholds of one cell see the same V."""
    thr_any = _threshold(np.array([100.7 / 256, 1.0, 0.0, 0.5]), 8)
    thr_plain = _threshold(np.array([100.3 / 256, 1.0, 0.0, 0.25]), 8)
    assert thr_any.whole.tolist() == [100, 255, 0, 128] and thr_any.frac[1] == 1.0
    rounds = 40_000
    m = np.tile(np.array([100, 255, 0, 128], dtype=np.uint8), (rounds, 1))  # every cell tied
    rng = np.random.default_rng(0)
    inside, ties = _below(m, thr_any, np.arange(rounds), rng)
    assert inside[:, 1].all() and not inside[:, 2].any() and not inside[:, 3].any()
    assert inside[:, 0].mean() == pytest.approx(0.7, abs=0.01)
    rows = np.arange(0, rounds, 3)  # a subset of the rounds, as for the size-k candidates
    plain, _ = _below(m[rows], thr_plain, rows, rng, ties)
    assert plain[:, 0].mean() == pytest.approx(0.3, abs=0.015)
    assert not (plain & ~inside[rows]).any()  # plain ⊆ inside: the same V was reused


def test_public_exact_sampler_matches_brute_force():
    g = _seeded(7)
    draws = np.stack([sample_k_dpp(P_CONFIDENT, 3, generator=g).numpy() for _ in range(3000)])
    assert _chi2_pvalue(draws, _brute_force(P_CONFIDENT, 3)) > 1e-3


def test_exact_inclusion_frequencies_match_dp_marginals_at_medium_n():
    """N = 30 is too big to enumerate; P(i ∉ Y) = Z(ground set without i) / Z from the DP instead."""
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.beta(20, 0.5, size=24), [1.0, 0.0, 0.3, 0.5, 0.999, 0.9999]])
    k = 8
    d, b = structured_weights(torch.tensor(p))
    log_z = log_normaliser_db(d.numpy(), b.numpy(), k)
    keep = [np.delete(np.arange(30), i) for i in range(30)]
    incl = np.array([1 - math.exp(log_normaliser_db(d.numpy()[m], b.numpy()[m], k) - log_z) for m in keep])
    assert incl.sum() == pytest.approx(k, rel=1e-9)
    draws = sample_structured(d, b, k, _seeded(11), num=20_000).numpy()
    freq = np.bincount(draws.ravel(), minlength=30) / len(draws)
    z_scores = (freq - incl) / np.sqrt(incl * (1 - incl) / len(draws))
    assert np.abs(z_scores).max() < 4.5


def test_lower_confidence_means_higher_inclusion():
    p = [0.1, 0.5, 0.9, 0.99]
    exact = [sum(v for y, v in _brute_force(p, 2).items() if i in y) for i in range(4)]
    assert all(a > b for a, b in itertools.pairwise(exact))
    draws = _exact_draws(p, 2, 100_000, seed=5)
    freq = np.bincount(draws.ravel(), minlength=4) / len(draws)
    assert all(a > b for a, b in itertools.pairwise(freq))
    np.testing.assert_allclose(freq, exact, atol=0.01)


def test_all_p_one_is_uniform_by_convention():
    """Every k ≥ 2 subset has det 0 (rank-one kernel); the documented fallback is a uniform k-subset."""
    draws = _exact_draws([1.0] * 5, 2, 10_000, seed=2)
    uniform = {y: 0.1 for y in itertools.combinations(range(5), 2)}
    assert _chi2_pvalue(draws, uniform) > 1e-3


# --- the other modes ---------------------------------------------------------------------------------------


def test_eig_mode_agrees_with_brute_force_and_with_exact():
    p, k, num = P_MIXED, 3, 3000
    g = _seeded(3)
    eig_draws = np.stack([sample_k_dpp(p, k, generator=g, mode="eig").numpy() for _ in range(num)])
    probs = _brute_force(p, k)
    assert _chi2_pvalue(eig_draws, probs) > 1e-3
    exact_draws = _exact_draws(p, k, num, seed=4)
    keys = list(probs)
    counts = [Counter(map(tuple, draws.tolist())) for draws in (eig_draws, exact_draws)]
    table = np.array([[c[y] for y in keys] for c in counts])
    table = table[:, table.sum(0) > 0]
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_eig_mode_handles_larger_k_and_all_ones():
    y = sample_k_dpp(np.random.default_rng(0).beta(5, 1, size=40), 12, generator=_seeded(0), mode="eig")
    assert y.numel() == 12 and y.unique().numel() == 12
    # Phase 1 at k = 500: e_k(λ) ≈ 1e-1400 here, far below float64 — the log-space table must cope.
    lam = np.random.default_rng(0).uniform(0, 1e-3, size=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = _choose_eigvecs(lam, 500, np.random.default_rng(1).uniform(size=2000))
    assert chosen is not None and len(set(chosen)) == 500
    g = _seeded(0)  # all p = 1: rank-one kernel, Z = 0 for k ≥ 2 → the same uniform convention as "exact"
    draws = np.stack([sample_k_dpp([1.0] * 5, 2, generator=g, mode="eig").numpy() for _ in range(2000)])
    assert _chi2_pvalue(draws, {y: 0.1 for y in itertools.combinations(range(5), 2)}) > 1e-3


_C, _S = math.cos(math.pi / 6), math.sin(math.pi / 6)
_HAND_EIGVECS = torch.tensor([[_C, -_S, 0.0], [_S, _C, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
_HAND_EIGVALS = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)  # keep probs 1/6, 1/3, 9/19


@pytest.mark.parametrize(
    "k,uniforms,expected",
    [
        # keep v0 (0.1 < 1/6), skip v1 (0.5 ≥ 1/3), keep v2 → k = 0. Scores (row norms²/2): 0.375, 0.125, 0.5
        # → item 2; then V = span{v0} with scores 0.75, 0.25, 0 → item 0.
        (2, [0.1, 0.5, 0.2], [0, 2]),
        # skip v0, keep v1 and v2: scores 0.125, 0.375, 0.5 → item 2, then span{v1}: 0.25, 0.75 → item 1.
        (2, [0.9, 0.1, 0.3], [1, 2]),
        # keep v0 and stop at k = 0 although v1, v2 would pass: the scan is truncated. arg-max of v0² → 0.
        (1, [0.1, 0.1, 0.1], [0]),
        # only v2 passes: |Y| = 1 < k = 3 — the published algorithm returns fewer than k items.
        (3, [0.9, 0.9, 0.1], [2]),
        # nothing passes: empty result.
        (2, [0.9, 0.9, 0.9], []),
    ],
)
def test_paper_algorithm1_hand_checked(k, uniforms, expected):
    u = torch.tensor(uniforms, dtype=torch.float64)
    assert paper_algorithm1(_HAND_EIGVALS, _HAND_EIGVECS, k, u).tolist() == expected


def test_paper_mode_is_algorithm1_on_the_ipdpp_kernel():
    p = np.random.default_rng(1).beta(3, 1, size=40)
    got = sample_k_dpp(p, 10, generator=_seeded(9), mode="paper")
    lam, vec = torch.linalg.eigh(ipdpp_kernel(p))
    want = paper_algorithm1(lam, vec, 10, torch.rand(40, dtype=torch.float64, generator=_seeded(9)))
    assert got.tolist() == want.tolist()
    assert got.numel() <= 10 and got.unique().numel() == got.numel()


def test_code_mode_is_uniform():
    g = _seeded(0)
    draws = np.stack([sample_k_dpp([0.5] * 5, 2, generator=g, mode="code").numpy() for _ in range(5000)])
    uniform = {y: 0.1 for y in itertools.combinations(range(5), 2)}
    assert _chi2_pvalue(draws, uniform) > 1e-3


# --- API behaviour -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_reproducible_with_seeded_generator(mode):
    p = np.random.default_rng(0).beta(4, 1, size=40)  # small: eigh is slow on a contended CPU
    a = sample_k_dpp(p, 8, generator=_seeded(123), mode=mode)
    b = sample_k_dpp(p, 8, generator=_seeded(123), mode=mode)
    assert torch.equal(a, b) and a.dtype == torch.long
    assert torch.equal(a, a.sort().values)
    if mode != "paper":  # phase 2 of the paper's algorithm is deterministic; the others must vary
        c = sample_k_dpp(p, 8, generator=_seeded(124), mode=mode)
        assert not torch.equal(a, c)


def test_unseeded_calls_use_fresh_randomness():
    p = np.full(1000, 0.9)
    assert not torch.equal(sample_k_dpp(p, 100), sample_k_dpp(p, 100))


@pytest.mark.parametrize("mode", MODES)
def test_k_zero_and_k_n(mode):
    p = [0.2, 0.9, 1.0]
    assert sample_k_dpp(p, 0, mode=mode).tolist() == []
    assert sample_k_dpp(p, 3, mode=mode).tolist() == [0, 1, 2]


@pytest.mark.parametrize("fill", [0.999, 1.0, 0.0, None])
def test_numerically_safe_at_large_n_and_k(fill):
    n, k = 20_000, 2_000
    mixed = np.random.default_rng(0).choice([0.0, 1.0, 0.999999, 0.5], size=n)
    p = mixed if fill is None else np.full(n, fill)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = sample_k_dpp(torch.tensor(p), k, generator=_seeded(0))
    assert y.numel() == k and y.unique().numel() == k
    assert int(y.min()) >= 0 and int(y.max()) < n


@pytest.mark.parametrize(
    "p,k,mode,match",
    [
        ([0.5, 0.5], 3, "exact", "exceeds"),
        ([0.5, 0.5], -1, "exact", "non-negative"),
        ([0.5, float("nan")], 1, "exact", "NaN"),
        ([0.5, float("inf")], 1, "exact", "NaN or infinite"),
        ([0.5, 1.2], 1, "exact", r"\[0, 1\]"),
        ([0.5, -0.1], 1, "exact", r"\[0, 1\]"),
        ([[0.5, 0.5]], 1, "exact", "1-D"),
        ([0.5, 0.5], 1, "greedy", "valid modes: exact, eig, paper, code"),
        ([0.5, 0.5], 1.5, "exact", "integer"),
    ],
)
def test_errors(p, k, mode, match):
    with pytest.raises(ConfigError, match=match):
        sample_k_dpp(p, k, mode=mode)


def test_normaliser_errors():
    with pytest.raises(ConfigError, match="exceeds"):
        k_dpp_log_normaliser([0.5], 2)


def test_sample_per_class_keeps_small_classes_and_draws_k_from_big_ones():
    labels = torch.tensor([0] * 50 + [1] * 10 + [2] * 3 + [3] * 5)
    p = torch.rand(labels.numel(), generator=_seeded(0), dtype=torch.float64)
    idx, sizes = sample_per_class(p, labels, 5, generator=_seeded(1))
    assert sizes == {0: 5, 1: 5, 2: 3, 3: 5}
    assert torch.equal(idx, idx.sort().values) and idx.unique().numel() == idx.numel() == 18
    for c, n in sizes.items():
        assert int((labels[idx] == c).sum()) == n
    assert set(range(60, 68)) <= set(idx.tolist())  # classes 2 and 3 kept whole
    idx2, _ = sample_per_class(p, labels, 5, generator=_seeded(1))
    assert torch.equal(idx, idx2)
    _, paper_sizes = sample_per_class(p, labels, 5, generator=_seeded(1), mode="paper")
    assert paper_sizes[2] == 3 and all(v <= 5 for v in paper_sizes.values())


def test_dpp_bench_smoke(monkeypatch):
    from ltbench.bench.dpp import format_dpp_bench, run_dpp_bench

    df = run_dpp_bench(sizes=(30, 200), repeats=1, modes=("exact", "eig"), eig_max_n=100)
    assert list(df.columns) == ["N", "k", "exact_ms", "eig_ms", "eig/exact"]
    assert df["k"].tolist() == [3, 20] and math.isnan(df["eig_ms"][1]) and df["exact_ms"].notna().all()
    text = format_dpp_bench(df)
    assert "exact_ms" in text and "eig skipped for N > 100" in text
    monkeypatch.setitem(__import__("sys").modules, "dppy.finite_dpps", None)  # dppy "not installed"
    df = run_dpp_bench(sizes=(50,), repeats=1, modes=("exact", "dppy"))
    assert "dppy_ms" not in df.columns and any("pip install dppy" in n for n in df.attrs["notes"])
