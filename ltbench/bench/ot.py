"""Timing of OTmix's pairing plan: ltbench's log-domain torch Sinkhorn vs POT's ``ot.sinkhorn`` (the release's call).

Both solve the same problem (uniform marginals, ε = 0.01, at most 1000 iterations, stop at column-marginal
error 1e-9, checked every 10 iterations) on costs shaped like OTmix's: w·(1 − cos) + (1 − w)·(1 − cf) for random
64-d features, 10 classes and a random confusion matrix with a zero diagonal. The table gives the median time of
one plan, the iterations, the largest difference between the two plans and whether the row-argmax pairings
agree. POT is an optional extra (``pip install pot``); its columns are skipped without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from ltbench.bench.dpp import median_ms
from ltbench.ot import sinkhorn_plan, sinkhorn_pot


def otmix_like_cost(batch: int, seed: int, classes: int = 10, dim: int = 64, weight: float = 0.05) -> torch.Tensor:
    """A cost matrix of OTmix's form (docs/methods.md §14.1 c) from seeded random features and confusion."""
    from ltbench.methods.otmix import otmix_cost, row_normalised_confusion

    gen = torch.Generator().manual_seed(seed)
    fg, bg = torch.randn(batch, dim, generator=gen), torch.randn(batch, dim, generator=gen)
    cf = row_normalised_confusion(torch.rand(classes, classes, generator=gen))
    y_fg = torch.randint(0, classes, (batch,), generator=gen)
    y_bg = torch.randint(0, classes, (batch,), generator=gen)
    return otmix_cost(fg, bg, cf[y_fg][:, y_bg], weight)


def run_ot_bench(sizes: Sequence[int] = (64, 128, 256), repeats: int = 5, device: str = "cpu") -> pd.DataFrame:
    """One row per batch size B: torch_ms (ltbench, on ``device``), pot_ms, pot/torch, iterations, max |ΔT|,
    pairing agreement. Notes in ``df.attrs["notes"]``."""
    try:
        import ot  # noqa: F401

        have_pot = True
    except ImportError:
        have_pot = False
    dev = torch.device(device)
    rows = []
    for b in sizes:
        costs = [otmix_like_cost(b, seed) for seed in range(repeats)]
        dev_costs = [c.to(dev) for c in costs]

        def ours(r: int, dev_costs: list[torch.Tensor] = dev_costs) -> None:
            sinkhorn_plan(dev_costs[r])[0].argmax(1).cpu()  # the pairing reaches the host: timing is complete

        ours(0)  # warm-up (allocations, CUDA context)
        row: dict = {"B": b, "torch_ms": median_ms(ours, repeats)}
        plan, iters = sinkhorn_plan(costs[0])
        row["iterations"] = iters
        if have_pot:
            row["pot_ms"] = median_ms(lambda r, costs=costs: sinkhorn_pot(costs[r]).argmax(1), repeats)
            row["pot/torch"] = row["pot_ms"] / row["torch_ms"]
            pot_plan = sinkhorn_pot(costs[0])
            row["max_abs_diff"] = float((plan - pot_plan).abs().max())
            row["same_pairs"] = bool(torch.equal(plan.argmax(1), pot_plan.argmax(1)))
        rows.append(row)
    df = pd.DataFrame(rows)
    notes = [f"ε = 0.01, median of {repeats}, torch on {device}, torch threads = {torch.get_num_threads()}"]
    if not have_pot:
        notes.append("POT not installed: its columns are skipped (pip install pot, or the 'ot' extra)")
    df.attrs["notes"] = notes
    return df
