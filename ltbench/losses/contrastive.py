"""Supervised-contrastive losses: one core for KCL / TSC / SBCL / SupCon, and BNS.

docs/methods.md §6 (KCL), §7 (TSC), §8 (SBCL), §9.1–§9.3 (BNS). Re-exported by :mod:`ltbench.losses`; the labelled
queue of the MoCo-style variants is :mod:`ltbench.models.queue`.

Layout convention for 2-view batches (``views = 2``): embedding row i < B is view 1 of image i and row
B + i is view 2 of the same image (its "twin"), i.e. ``torch.cat([view1, view2])``. Methods express their
positive / denominator sets as boolean masks and call :func:`contrastive_loss`; only the masks differ
between SupCon, KCL, SBCL's two terms (:func:`sbcl_loss`) and the MoCo-style queue variants. TSC appends
its target bank to the contrast set (:func:`targeted_contrastive_loss`), so it shares the same core. All
random choices draw from a ``torch.Generator`` when one is given (reproducible tests), otherwise from the
global RNG on the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BNSLoss",
    "contrastive_log_prob",
    "contrastive_loss",
    "first_k_mask",
    "kcl_masks",
    "kcl_queue_masks",
    "sample_mask",
    "sbcl_loss",
    "sbcl_masks",
    "sbcl_queue_loss",
    "sbcl_queue_masks",
    "supcon_masks",
    "targeted_contrastive_loss",
    "targets_as_samples",
]


def _uniform(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) draws on ``device``; drawn on the generator's own device when one is given."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _mm(a: Tensor, b: Tensor) -> Tensor:
    """a · bᵀ in float32 even under autocast (bf16 keeps ~3 digits of s/τ ≈ 14 at τ = 0.07)."""
    with torch.autocast(a.device.type, enabled=False):
        return a.float() @ b.float().t()


def sample_mask(candidates: Tensor, k: int | None, generator: torch.Generator | None = None) -> Tensor:
    """Per row, keep min(k, #candidates) of the True entries, uniformly without replacement.

    The k largest of i.i.d. uniform scores over a row's candidates form a uniform random k-subset, so one
    ``topk`` samples every row at once (no Python loop over anchors). Non-candidates get score −1, below
    every candidate, and are masked out again when a row has fewer than k candidates. ``k=None`` keeps all.
    """
    if k is None:
        return candidates.clone()
    if k <= 0 or candidates.shape[1] == 0:
        return torch.zeros_like(candidates)
    scores = _uniform(tuple(candidates.shape), candidates.device, generator).masked_fill(~candidates, -1.0)
    idx = scores.topk(min(k, candidates.shape[1]), dim=1).indices
    return torch.zeros_like(candidates).scatter_(1, idx, True) & candidates


def first_k_mask(candidates: Tensor, k: int) -> Tensor:
    """Per row, keep the first min(k, #candidates) True entries in column order (deterministic).

    The official KCL (BalFeat ``moco/kcl_builder.py``) takes ``gt_mask.topk(k)`` of a 0/1 same-class mask over
    the queue slots; all positives tie at 1, and CUDA's top-k returns tied entries in index order, i.e. the
    k same-class entries with the lowest queue slots (fewer if there are fewer; the zeros topk adds then are
    masked out again, as here).
    """
    if k <= 0:
        return torch.zeros_like(candidates)
    return candidates & (candidates.long().cumsum(1) <= k)


def contrastive_log_prob(
    anchors: Tensor,
    contrast: Tensor,
    denom_mask: Tensor,
    temperature: float | Tensor,
) -> Tensor:
    """log[e^{s_ia/τ_i} / Σ_{a'∈A_i} e^{s_ia'/τ_i}] for every (anchor i, contrast a), float32 (M × K).

    s = anchors · contrastᵀ (the rows are expected L2-normalised); τ is a float or a per-anchor (M,) tensor
    (SBCL's class-wise temperatures). The masked log-sum-exp subtracts the row maximum over A_i, so small
    τ cannot overflow. Rows with an empty A_i hold meaningless huge values; the caller masks them. Exposed
    so that TSC can read its target column with the same denominator D_i.
    """
    logits = _mm(anchors, contrast)
    if isinstance(temperature, Tensor):
        logits = logits / temperature.to(logits.device, torch.float32).reshape(-1, 1)
    else:
        logits = logits / float(temperature)
    # finfo.min, not −inf: a row with an empty A_i then has a finite lse and finite (zero) gradients
    masked = logits.masked_fill(~denom_mask, torch.finfo(torch.float32).min)
    return logits - torch.logsumexp(masked, dim=1, keepdim=True)


def contrastive_loss(
    anchors: Tensor,
    contrast: Tensor,
    pos_mask: Tensor,
    denom_mask: Tensor,
    temperature: float | Tensor,
    reduction: str = "mean",
) -> Tensor:
    """Supervised-contrastive loss ℓ_i = −(1/|P_i|) Σ_{p∈P_i} log[e^{s_ip/τ_i} / Σ_{a∈A_i} e^{s_ia/τ_i}].

    The shared core of SupCon, KCL (§6), TSC (§7) and SBCL (§8): ``pos_mask`` = P_i, ``denom_mask`` = A_i
    (bool, M × K), ``contrast`` may be the batch or [keys; queue]. Positives are always added to the
    denominator set (each term is then a log-probability ≤ 0; an OR costs nothing, an assert would need a
    host sync). An anchor with no positive has no defined ℓ_i: it contributes 0 and is left out of the mean
    (a tail image whose class-mates are absent from the batch must not dilute the loss of the others).
    ``reduction="mean"`` averages over anchors with ≥ 1 positive (0, still differentiable, if there are
    none); ``"none"`` returns the (M,) vector with zeros at anchors without positives.
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    pos_mask = pos_mask.bool()
    log_prob = contrastive_log_prob(anchors, contrast, denom_mask.bool() | pos_mask, temperature)
    n_pos = pos_mask.sum(1)
    per_anchor = -torch.where(pos_mask, log_prob, 0.0).sum(1) / n_pos.clamp_min(1)
    if reduction == "none":
        return per_anchor
    has_pos = n_pos > 0
    return (per_anchor * has_pos).sum() / has_pos.sum().clamp_min(1)


def _view_layout(labels: Tensor, views: int) -> tuple[Tensor, Tensor, Tensor]:
    """(labels of all views, same-image mask, identity mask) for rows laid out as [view1; view2; ...]."""
    b = labels.numel()
    image = torch.arange(views * b, device=labels.device) % b
    return (
        labels.repeat(views),
        image[:, None] == image[None, :],
        torch.eye(views * b, dtype=torch.bool, device=labels.device),
    )


def supcon_masks(labels: Tensor, views: int = 2) -> tuple[Tensor, Tensor]:
    """SupCon (pos, denom) masks for ``views``·B rows: P_i = same label except i itself; A_i = all but i."""
    lab, _, eye = _view_layout(labels, views)
    return (lab[:, None] == lab[None, :]) & ~eye, ~eye


def kcl_masks(
    labels: Tensor, k: int, generator: torch.Generator | None = None, views: int = 2
) -> tuple[Tensor, Tensor]:
    """KCL (pos, denom) masks, in-batch (TSC's CIFAR re-implementation; docs/methods.md §6).

    P_i = {the other views of image i} ∪ S_i, S_i = k rows drawn uniformly without replacement from the
    same-class rows of *other* images (all of them if fewer than k); A_i = every row except i, so unselected
    class-mates stay in the denominator. k = 6 is KCL's ImageNet-LT value. With k ≥ the largest class count
    times ``views`` this equals :func:`supcon_masks`.
    """
    lab, same_image, eye = _view_layout(labels, views)
    sampled = sample_mask((lab[:, None] == lab[None, :]) & ~same_image, k, generator)
    return (same_image & ~eye) | sampled, ~eye


def kcl_queue_masks(
    query_labels: Tensor,
    queue_labels: Tensor,
    k: int,
    generator: torch.Generator | None = None,
    positives: str = "random",
) -> tuple[Tensor, Tensor]:
    """KCL masks for the MoCo-style variant: contrast = [keys (B); queue (K)] (official KCL, §6).

    P_i = {own key} ∪ k same-class queue entries; A_i = own key + whole queue (the other keys of the batch are
    not in it, as in MoCo). ``positives="topk"``: the k same-class entries with the lowest queue slots, as the
    official code's ``topk`` (:func:`first_k_mask`); ``"random"``: k drawn uniformly without replacement.
    Returns (B × (B + K)) masks.
    """
    if positives not in ("topk", "random"):
        raise ValueError(f"positives must be 'topk' or 'random', got {positives!r}")
    own = torch.eye(query_labels.numel(), dtype=torch.bool, device=query_labels.device)
    same = query_labels[:, None] == queue_labels.to(query_labels.device)[None, :]
    chosen = first_k_mask(same, k) if positives == "topk" else sample_mask(same, k, generator)
    pos = torch.cat([own, chosen], dim=1)
    return pos, torch.cat([own, torch.ones_like(same)], dim=1)


TSC_VARIANTS = ("paper", "code_cifar", "code_imagenet")


def targeted_contrastive_loss(
    anchors: Tensor,
    contrast: Tensor,
    pos_mask: Tensor,
    denom_mask: Tensor,
    targets: Tensor,
    target_index: Tensor,
    temperature: float,
    weight: float = 0.2,
    variant: str = "paper",
) -> Tensor:
    """TSC loss with an explicit target term (Li et al., CVPR 2022; docs/methods.md §7.3), mean over anchors.

    Both forms share D_i = Σ_{a∈A_i} e^{s_ia/τ} + Σ_{u∈U} e^{ẑ_i·u/τ}: **all** C targets U enter every
    denominator, so each anchor is also pushed away from the other classes' targets. ``targets`` (C × d, unit
    rows) are appended to the contrast set; ``target_index`` (M,) is the column of anchor i's assigned target
    c*_i; P_i, A_i are the KCL masks (in-batch or queue). With L_i = −Σ_{p∈P_i} log[e^{s_ip/τ}/D_i] and
    T_i = −log[e^{ẑ_i·c*_i/τ}/D_i]:

    - ``"paper"`` (TSC supp. eq.): ℓ_i = L_i/|P_i| + λ·T_i;
    - ``"code_imagenet"`` (LTH14/targeted-supcon ``moco/builder.py``, ``KCL.forward`` with ``--sep_t``): ℓ_i =
      (L_i + λ·T_i)/(|P_i| + 1) — the target is counted as one more positive in the normaliser
      (``mask_pos_view.sum(1)``), so relative to the pull its weight is λ/|P_i| = λ/(k+1), not λ.

    An anchor without positives keeps only its (normalised) target term. The CIFAR release has no target term
    of its own (:func:`targets_as_samples`).
    """
    if variant not in ("paper", "code_imagenet"):
        raise ValueError(f"variant must be 'paper' or 'code_imagenet' here, got {variant!r}")
    m, k = pos_mask.shape
    pos = pos_mask.bool()
    full = torch.cat([contrast.float(), targets.to(contrast.device, torch.float32)])
    every_target = torch.ones(m, targets.shape[0], dtype=torch.bool, device=pos.device)
    log_prob = contrastive_log_prob(anchors, full, torch.cat([denom_mask.bool() | pos, every_target], 1), temperature)
    pull = -torch.where(pos, log_prob[:, :k], 0.0).sum(1)
    target_term = -log_prob[:, k:].gather(1, target_index.reshape(-1, 1).to(pos.device)).squeeze(1)
    n_pos = pos.sum(1)
    if variant == "paper":
        return (pull / n_pos.clamp_min(1) + weight * target_term).mean()
    return ((pull + weight * target_term) / (n_pos + 1)).mean()


def targets_as_samples(
    z: Tensor,
    labels: Tensor,
    targets: Tensor,
    repeat: int,
    target_labels: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """TSC's CIFAR release: the targets enter the batch as fake images, (rows, labels) for :func:`kcl_masks`.

    LTH14/targeted-supcon ``cifar_dirty/main_supcon_imba.py`` (commit c4f15eb, ``--use_target``) appends every
    target ``repeat`` times (``--target_repeat`` 25) to each view, labelled with its class (``label_order``: a
    fixed class → target order, no matching), and runs the plain KCL loss of ``cifar_dirty/tsc_cifar_loss.py``
    on the enlarged batch. Target copy j is a "two-view image" whose views are identical: it is an anchor
    too, its twin is a positive, and the k sampled positives of a real anchor are drawn from its class-mates
    and its class's 2·``repeat`` target copies alike. There is no λ: ``repeat`` sets the targets' weight.

    ``z`` holds V·B rows laid out [view1; view2; ...] (the module convention); returns V·(B + R·C) rows laid
    out [view1; T; view2; T; ...] and the B + R·C labels, so :func:`kcl_masks` treats each copy as an image.
    ``target_labels[c]`` is the class of target c (default: c, the release's order on CIFAR-100).
    """
    b = labels.numel()
    if target_labels is None:
        target_labels = torch.arange(targets.shape[0], device=labels.device)
    fake = targets.to(z.device, torch.float32).repeat_interleave(repeat, dim=0)
    rows = torch.cat([part for view in z.float().split(b) for part in (view, fake)])
    return rows, torch.cat([labels, target_labels.to(labels.device).repeat_interleave(repeat)])


def sbcl_masks(labels: Tensor, subclasses: Tensor, views: int = 2) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """SBCL (pos, denom) masks of the subclass term and of the class term (docs/methods.md §8), in-batch.

    ``subclasses`` are global ids (unique across classes). Subclass term: P^s_i = same subclass except i
    (includes i's own other view), A^s_i = all j ≠ i. Class term: P^c_i = i's other views ∪ same class but
    another subclass; A^c_i = i's other views ∪ every row of another subclass, i.e. i's other same-subclass
    rows are neither positives nor negatives there (they are already pulled together by the subclass term).
    """
    lab, same_image, eye = _view_layout(labels, views)
    sub = subclasses.to(labels.device).repeat(views)
    same_sub = sub[:, None] == sub[None, :]
    same_cls = lab[:, None] == lab[None, :]
    twin = same_image & ~eye
    return same_sub & ~eye, ~eye, twin | (same_cls & ~same_sub), twin | ~same_sub


def sbcl_loss(
    z: Tensor,
    labels: Tensor,
    subclasses: Tensor,
    class_temperature: Tensor,
    temperature: float = 0.1,
    base_temperature: float = 0.07,
    gamma: float = 0.25,
) -> Tensor:
    """SBCL loss (Hou et al., ICCV 2023; docs/methods.md §8) on 2-view rows ``z = [view1; view2]`` (unit rows).

    ℓ_i = (τ/τ_b)·ℓ^s_i + γ·ℓ^c_i, averaged over the 2B anchors: ℓ^s at temperature τ on subclass
    positives, ℓ^c at the anchor's class temperature τ_{y_i} (``class_temperature``, (C,)) on class
    positives (masks of :func:`sbcl_masks`). τ = 0.1, τ_b = 0.07, γ = 0.25 are the official code's values.
    """
    views = z.shape[0] // labels.numel()
    pos_s, den_s, pos_c, den_c = sbcl_masks(labels, subclasses, views)
    sub_term = contrastive_loss(z, z, pos_s, den_s, temperature, reduction="none")
    tau_anchor = class_temperature.to(z.device)[labels].repeat(views)
    cls_term = contrastive_loss(z, z, pos_c, den_c, tau_anchor, reduction="none")
    return ((temperature / base_temperature) * sub_term + gamma * cls_term).mean()


def sbcl_queue_masks(
    labels: Tensor, subclasses: Tensor, queue_labels: Tensor, queue_subclasses: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """SBCL's MoCo-queue masks (release moco/loss.py ``SupConLoss_rank``) over the contrast set [keys (B); queue (K)].

    As in MoCo, a query sees only its own key among the batch's keys. Subclass term: P^s_i = own key ∪ queue
    entries of i's subclass, A^s_i = own key ∪ the whole queue. Class term: P^c_i = own key ∪ queue entries of
    i's class but another subclass, A^c_i = own key ∪ every queue entry of another subclass. Queue entries
    enqueued before the first clustering carry subclass −1 (never i's): negatives of both terms, as released.
    Returns (B × (B + K)) boolean masks (pos_s, den_s, pos_c, den_c).
    """
    own = torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
    same_sub = subclasses[:, None] == queue_subclasses.to(labels.device)[None, :]
    same_cls = labels[:, None] == queue_labels.to(labels.device)[None, :]
    return (
        torch.cat([own, same_sub], 1),
        torch.cat([own, torch.ones_like(same_sub)], 1),
        torch.cat([own, same_cls & ~same_sub], 1),
        torch.cat([own, ~same_sub], 1),
    )


def sbcl_queue_loss(
    queries: Tensor,
    contrast: Tensor,
    masks: tuple[Tensor, Tensor, Tensor, Tensor],
    temperature: float = 0.07,
    rank_temperature: float = 0.12,
    gamma: float = 0.2,
) -> Tensor:
    """SBCL's ImageNet-LT loss (release moco/loss.py ``SupConLoss_rank``): ℓ = ℓ^s + γ·ℓ^c, mean over the queries.

    ℓ^s at τ (the MoCo temperature, 0.07) on the subclass masks, ℓ^c at the fixed ranking temperature τ_r = 0.12
    on the class masks of :func:`sbcl_queue_masks`; γ = 0.2 (the release's ``grama``). Unlike the CIFAR form
    (:func:`sbcl_loss`) there is no τ/τ_b factor and no class-wise temperature.
    """
    pos_s, den_s, pos_c, den_c = masks
    sub_term = contrastive_loss(queries, contrast, pos_s, den_s, temperature)
    return sub_term + gamma * contrastive_loss(queries, contrast, pos_c, den_c, rank_temperature)


def _bns_paper_direction(q: Tensor, v: Tensor, queries: Tensor, negatives: Tensor, tau: float) -> Tensor:
    """Mean over anchors i of −1/|Q*_i| Σ_{k∈Q*_i} [logσ(q_k·v_i/τ) + (1/n_i) Σ_{j∈neg(i)} logσ(−q_k·v_j/τ)].

    queries[i, k]: q_k ∈ Q*_i (k = i included); negatives[i, j]: key v_j is a negative of anchor i. With
    S[k, j] = q_k·v_j/τ the negative sums for every (k, i) pair are one matmul (logσ(−S) · negativesᵀ).
    """
    sim = _mm(q, v) / tau
    neg_sum = _mm(F.logsigmoid(-sim), negatives)  # [k, i] = Σ_j neg[i, j] logσ(−S[k, j])
    n_neg = negatives.sum(1).clamp_min(1)  # no negatives: the sum is 0, so is the term
    pair = F.logsigmoid(sim) + neg_sum / n_neg[None, :]  # [k, i]
    per_anchor = -(queries.float() * pair.t()).sum(1) / queries.sum(1)
    return per_anchor.mean()


class BNSLoss(nn.Module):
    """Balanced-negative-sampling loss of BNS+IP-DPP stage 1 (Lin & Yuan 2025; docs/methods.md §9.1–§9.3).

    ``forward(q, v, labels)``: q, v are the two views' embeddings (B × d) of the same B images, normalised
    here. ``variant="paper"`` (ltbench spec §9.3, Eq. 12 of the paper): for anchor i, Q*_i = {q_i} ∪ m other
    queries of class y_i (uniform without replacement; fewer if the batch has fewer, possibly none), each
    paired with the anchor's key v_i and with its negatives — all keys of another class, or ``n`` of them
    drawn uniformly; the negative sum is divided by their number n_i [PROPOSAL: batch-size invariance]. Mean
    over anchors; ``symmetric`` averages with the q↔v swapped loss (same sampled sets) [PROPOSAL].
    ``variant="code"`` (released code, §9.2): over the 2B views, ℓ_a = −logσ(mean_{p∈P_a} e^{s_ap/τ})
    − logσ(−(1/2B) Σ_{q∈N_a} e^{s_aq/τ}), P_a = other views of the same label, N_a = other labels; the
    negative sum is divided by the row length 2B, as released; m, n and symmetric are ignored there.
    τ = 0.5 and m = 4 are the defaults of §9.3 (τ from the code; m "small", ≤ n_min − 1 on CIFAR-100-LT).
    """

    variants = ("paper", "code")

    def __init__(
        self,
        variant: str = "paper",
        temperature: float = 0.5,
        m: int | None = 4,
        n: int | None = None,
        symmetric: bool = True,
    ) -> None:
        super().__init__()
        if variant not in self.variants:
            raise ValueError(f"unknown BNS variant {variant!r}; valid: {', '.join(self.variants)}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.variant, self.temperature, self.m, self.n, self.symmetric = variant, temperature, m, n, symmetric

    def forward(
        self,
        q: Tensor,
        v: Tensor,
        labels: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        if q.shape != v.shape or q.ndim != 2 or labels.shape != (q.shape[0],):
            raise ValueError(f"need q, v (B, d) and labels (B,); got {q.shape}, {v.shape}, {labels.shape}")
        q, v = F.normalize(q.float(), dim=1), F.normalize(v.float(), dim=1)
        if self.variant == "code":
            return self._code(q, v, labels)
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
        queries = eye | sample_mask(same & ~eye, self.m, generator)
        negatives = sample_mask(~same, self.n, generator)
        loss = _bns_paper_direction(q, v, queries, negatives, self.temperature)
        if self.symmetric:
            loss = 0.5 * (loss + _bns_paper_direction(v, q, queries, negatives, self.temperature))
        return loss

    def _code(self, q: Tensor, v: Tensor, labels: Tensor) -> Tensor:
        z = torch.cat([q, v])
        lab = labels.repeat(2)
        same = lab[:, None] == lab[None, :]
        eye = torch.eye(lab.numel(), dtype=torch.bool, device=lab.device)
        e = torch.exp(_mm(z, z) / self.temperature)
        pos = same & ~eye
        pos_mean = torch.where(pos, e, 0.0).sum(1) / pos.sum(1).clamp_min(1)
        neg_mean = torch.where(~same, e, 0.0).sum(1) / lab.numel()  # divided by 2B, as released
        return -(F.logsigmoid(pos_mean) + F.logsigmoid(-neg_mean)).mean()
