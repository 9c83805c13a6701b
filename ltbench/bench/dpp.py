"""Timing of the IP-DPP k-DPP samplers: structured ``exact`` vs the O(N³) ``eig`` sampler vs dppy.

The point of the table is the claim in docs/methods.md §9.3 item 10: the structured exact sampler makes per-class
k-DPP draws essentially free, whereas anything that eigendecomposes the N×N kernel is hopeless beyond a few
thousand items per class. dppy is an optional extra (``pip install dppy``); its column is skipped without it.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ltbench.dpp import ipdpp_kernel, sample_k_dpp

_BETA_A, _BETA_B = 5.0, 1.0  # p ~ Beta(5, 1): mean 0.83, skewed towards 1 like classifier confidences


def median_ms(fn: Callable[[int], object], repeats: int) -> float:
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        fn(r)
        times.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(times)


def _dppy_sampler(notes: list[str]) -> Callable[[np.ndarray, int, int], object] | None:
    """dppy's exact k-DPP sampler for the L-ensemble L = S (kernel build and eigendecomposition included)."""
    try:
        from dppy.finite_dpps import FiniteDPP
    except ImportError:
        notes.append("dppy not installed: dppy column skipped (pip install dppy, or the 'dpp' extra)")
        return None

    def run(p: np.ndarray, k: int, seed: int) -> object:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dpp = FiniteDPP("likelihood", L=ipdpp_kernel(p).numpy())
            out = dpp.sample_exact_k_dpp(size=k, random_state=np.random.RandomState(seed))
        if caught:
            msg = (
                f"dppy at N={p.size}, k={k}: {caught[0].category.__name__}: {caught[0].message} "
                "(its e_l recursion is unnormalised, so its phase-1 probabilities are inf/nan there)"
            )
            if msg not in notes:
                notes.append(msg)
        return out

    return run


def run_dpp_bench(
    sizes: Sequence[int] = (1000, 5000, 20000, 100000),
    k_frac: float = 0.1,
    repeats: int = 3,
    seed: int = 0,
    modes: Sequence[str] = ("exact", "eig", "dppy"),
    eig_max_n: int = 5000,
    dppy_max_n: int = 5000,
) -> pd.DataFrame:
    """Median wall time (ms, over ``repeats``) of each sampler drawing k = round(k_frac·N) from the same p.

    Returns one row per N with columns N, k, <mode>_ms and <mode>/exact ratios; ``eig``/``dppy`` are NaN
    above their max N (O(N³)). Human-readable remarks are in ``df.attrs["notes"]``.
    """
    notes: list[str] = []
    dppy_run = _dppy_sampler(notes) if "dppy" in modes else None
    active = [m for m in ("exact", "eig", "dppy") if m in modes and (m != "dppy" or dppy_run is not None)]
    limits = {"exact": math.inf, "eig": eig_max_n, "dppy": dppy_max_n}
    rows = []
    for n in sizes:
        p = np.random.default_rng(seed).beta(_BETA_A, _BETA_B, size=n)
        k = max(1, round(k_frac * n))
        row: dict[str, float] = {"N": n, "k": k}
        for mode in active:
            if n > limits[mode]:
                row[f"{mode}_ms"] = math.nan
                continue
            if mode == "dppy":
                fn = lambda r, p=p, k=k: dppy_run(p, k, seed + r)  # noqa: E731
            else:
                fn = lambda r, p=p, k=k, m=mode: sample_k_dpp(  # noqa: E731
                    p, k, generator=torch.Generator().manual_seed(seed + r), mode=m
                )
            row[f"{mode}_ms"] = median_ms(fn, repeats)
        rows.append(row)
    df = pd.DataFrame(rows)
    for mode in active:
        if mode != "exact" and "exact" in active:
            df[f"{mode}/exact"] = df[f"{mode}_ms"] / df["exact_ms"]
        if mode != "exact" and any(n > limits[mode] for n in sizes):
            notes.append(f"{mode} skipped for N > {limits[mode]} (O(N^3) eigendecomposition)")
    notes.append(
        f"p ~ Beta({_BETA_A:g}, {_BETA_B:g}), k = {k_frac:g}·N, median of {repeats}, "
        f"torch threads = {torch.get_num_threads()}"
    )
    df.attrs["notes"] = notes
    return df


def format_dpp_bench(df: pd.DataFrame) -> str:
    """Plain-text table (tabulate) followed by the notes; skipped cells print as '-'."""
    from tabulate import tabulate

    table = df.astype(object).where(df.notna(), None)
    text = tabulate(table, headers="keys", tablefmt="simple", showindex=False, floatfmt=".1f", missingval="-")
    notes = df.attrs.get("notes", [])
    return text + ("\n\n" + "\n".join(f"note: {n}" for n in notes) if notes else "")
