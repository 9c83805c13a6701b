"""Entropic optimal transport between two uniform marginals, as OTmix and DisA use it (docs/methods.md §14, §15).

Two solvers with different jobs:

* ``sinkhorn_plan`` — OTmix's pairing plan: POT's ``ot.sinkhorn`` (Sinkhorn–Knopp, at most 1000 iterations,
  stop when the column-marginal error falls below 1e-9; the OTmix release calls it with ε = 0.01), in float64
  on the tensors' device and batched over leading dimensions (log domain where the kernel would underflow).
  No gradient is needed (the plan only picks pairs). ``sinkhorn_pot`` calls POT itself, for the agreement test
  and ``ltbench bench ot``.
* ``disa_sinkhorn`` — DisA's differentiable plan, as its release computes it (sinkhorn.py): log-domain updates
  of the dual potentials from zero with +1e-8 inside the logs, stopped when the mean absolute change of ``u``
  drops below ``thresh`` (0.1) or after ``max_iter`` (200) iterations; gradients flow through every iteration.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

POT_MAX_ITER = 1000  # ot.sinkhorn / sinkhorn_knopp defaults (POT ot/bregman/_sinkhorn.py)
POT_STOP = 1e-9
POT_CHECK_EVERY = 10  # POT evaluates the marginal error every 10 iterations


def sinkhorn_plan(
    cost: Tensor, eps: float = 0.01, max_iter: int = POT_MAX_ITER, tol: float = POT_STOP
) -> tuple[Tensor, int]:
    """The entropic plan T (float64, same shape as ``cost``, ... x n x m) with uniform marginals 1/n and 1/m,
    and the number of iterations run.

    POT's Sinkhorn–Knopp (from u = 1/n: v = b / Kᵀu, then u = a / Kv; K = exp(−M/ε)), in float64 on the cost's
    device and batched over leading dimensions. The stop test — the largest column-marginal error below ``tol``
    — is read every 10 iterations, as POT does: one host synchronisation per 10 iterations. Where K would
    underflow (max M / ε > 700; OTmix's costs stay below 1.05 at ε = 0.01) the same iteration runs on
    log-potentials instead.
    """
    cost = cost.double()
    if float(cost.amax()) / eps > 700:
        return _sinkhorn_log(cost, eps, max_iter, tol)
    n, m = cost.shape[-2], cost.shape[-1]
    kernel = torch.exp(-cost / eps)
    u = torch.full(cost.shape[:-1], 1.0 / n, dtype=torch.float64, device=cost.device)
    it = 0
    for it in range(1, max_iter + 1):
        v = (1.0 / m) / (kernel.transpose(-2, -1) @ u.unsqueeze(-1)).squeeze(-1)
        u = (1.0 / n) / (kernel @ v.unsqueeze(-1)).squeeze(-1)
        if it % POT_CHECK_EVERY == 0 or it == max_iter:
            columns = v * (kernel.transpose(-2, -1) @ u.unsqueeze(-1)).squeeze(-1)
            if float((columns - 1.0 / m).abs().amax()) < tol:
                break
    return u.unsqueeze(-1) * kernel * v.unsqueeze(-2), it


def _sinkhorn_log(cost: Tensor, eps: float, max_iter: int, tol: float) -> tuple[Tensor, int]:
    """``sinkhorn_plan``'s iteration on log-potentials f = ε log u, g = ε log v (no underflow at any ε)."""
    n, m = cost.shape[-2], cost.shape[-1]
    log_a, log_b = -math.log(n), -math.log(m)
    f = torch.full(cost.shape[:-1], eps * log_a, dtype=torch.float64, device=cost.device)
    g = torch.zeros(cost.shape[:-2] + (m,), dtype=torch.float64, device=cost.device)
    neg = -cost / eps
    it = 0
    for it in range(1, max_iter + 1):
        g = eps * (log_b - torch.logsumexp(neg + f.unsqueeze(-1) / eps, dim=-2))
        f = eps * (log_a - torch.logsumexp(neg + g.unsqueeze(-2) / eps, dim=-1))
        if it % POT_CHECK_EVERY == 0 or it == max_iter:
            plan = torch.exp(neg + (f.unsqueeze(-1) + g.unsqueeze(-2)) / eps)
            if float((plan.sum(dim=-2) - 1.0 / m).abs().amax()) < tol:
                break
    return torch.exp(neg + (f.unsqueeze(-1) + g.unsqueeze(-2)) / eps), it


def sinkhorn_pot(cost: Tensor, eps: float = 0.01) -> Tensor:
    """POT's ``ot.sinkhorn`` on one cost matrix with uniform marginals (the OTmix release's call), float64 on the
    CPU. Needs the optional ``pot`` package (``pip install pot``)."""
    try:
        import ot
    except ImportError as err:  # pragma: no cover - exercised only without POT
        raise ImportError("sinkhorn_pot needs POT: pip install pot") from err
    m = cost.detach().double().cpu().numpy()
    n, k = m.shape
    plan = ot.sinkhorn([1.0 / n] * n, [1.0 / k] * k, m, eps)
    return torch.from_numpy(plan)


def disa_sinkhorn(
    cost: Tensor, eps: float = 1.0, max_iter: int = 200, thresh: float = 0.1, tol: float | None = None
) -> tuple[Tensor, int]:
    """DisA's differentiable plan π (B x C) for a cost G (B x C) with uniform marginals 1/B, 1/C, and the number
    of iterations run (docs/methods.md §15.1 step 3). ``tol`` replaces the released stop threshold (an
    ablation, §15.5). The stop test reads the change of ``u`` on the host every iteration, as the release does.
    """
    b, c = cost.shape[-2], cost.shape[-1]
    mu = torch.full((b,), 1.0 / b, dtype=cost.dtype, device=cost.device)
    nu = torch.full((c,), 1.0 / c, dtype=cost.dtype, device=cost.device)
    u = torch.zeros_like(mu)
    v = torch.zeros_like(nu)
    stop = thresh if tol is None else tol
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        previous = u
        u = eps * (torch.log(mu + 1e-8) - torch.logsumexp(_scaled(cost, u, v, eps), dim=-1)) + u
        v = eps * (torch.log(nu + 1e-8) - torch.logsumexp(_scaled(cost, u, v, eps).transpose(-2, -1), dim=-1)) + v
        if float((u - previous).detach().abs().sum(-1).mean()) < stop:
            break
    return torch.exp(_scaled(cost, u, v, eps)), iterations


def _scaled(cost: Tensor, u: Tensor, v: Tensor, eps: float) -> Tensor:
    """(−G + u 1ᵀ + 1 vᵀ) / ε: the log of the plan for the current potentials."""
    return (-cost + u.unsqueeze(-1) + v.unsqueeze(-2)) / eps
