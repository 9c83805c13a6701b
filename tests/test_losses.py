"""Losses checked against values computed by hand from the formulas (docs/methods.md §2, §3, §6–§9, §13).

Every reference value below is computed with plain Python ``math`` on scalars and explicit loops over the
sets named in the formulas — never with the vectorised code under test.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from ltbench.losses import (
    BNSLoss,
    FocalLoss,
    KPSLoss,
    LDAMLoss,
    class_balanced_weights,
    contrastive_loss,
    inverse_frequency_weights,
    kcl_masks,
    kcl_queue_masks,
    log_prior,
    logit_adjusted_cross_entropy,
    sample_mask,
    supcon_masks,
)
from ltbench.models.queue import LabelledQueue

CIFAR10_LT = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
LOGITS = [[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]]
TARGETS = [0, 2]


def t(x, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype)


def log_softmax_at(row: list[float], y: int) -> float:
    return row[y] - math.log(sum(math.exp(z) for z in row))


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def dot(a, b) -> float:
    return sum(x * y for x, y in zip(a, b))


def unit(rows: list[list[float]]) -> list[list[float]]:
    return [[x / math.sqrt(dot(r, r)) for x in r] for r in rows]


# ----------------------------------------------------------------------------- class weights
def test_class_balanced_weights_by_hand():
    w = class_balanced_weights([3, 1], 0.5)
    raw = [(1 - 0.5) / (1 - 0.5**3), (1 - 0.5) / (1 - 0.5**1)]
    expected = [2 * r / sum(raw) for r in raw]
    assert w.dtype == torch.float32
    assert w.tolist() == pytest.approx(expected, rel=1e-6)


def test_class_balanced_weights_properties():
    assert class_balanced_weights([7, 3, 1], 0.0).tolist() == [1.0, 1.0, 1.0]
    w = class_balanced_weights([40, 10, 2], 0.99)
    assert float(w.sum()) == pytest.approx(3.0, rel=1e-6)
    assert float(w[0] / w[1]) == pytest.approx((1 - 0.99**10) / (1 - 0.99**40), rel=1e-6)
    drw = class_balanced_weights(CIFAR10_LT, 0.9999)
    assert float(drw.sum()) == pytest.approx(10.0, rel=1e-6)
    assert bool((drw[1:] > drw[:-1]).all())
    raw = [(1 - 0.9999) / (1 - 0.9999**n) for n in CIFAR10_LT]
    assert drw.tolist() == pytest.approx([10 * r / sum(raw) for r in raw], rel=1e-5)


@pytest.mark.parametrize("bad", [[5, 0, 1], [3, -1]])
def test_zero_counts_raise(bad):
    with pytest.raises(ValueError, match="class_counts"):
        class_balanced_weights(bad, 0.9)
    with pytest.raises(ValueError, match="class_counts"):
        LDAMLoss(bad)


def test_beta_out_of_range_raises():
    with pytest.raises(ValueError, match="beta"):
        class_balanced_weights([3, 1], 1.0)


def test_inverse_frequency_weights():
    w = inverse_frequency_weights([1, 2, 4])
    assert w.tolist() == pytest.approx([3 * x / 1.75 for x in (1.0, 0.5, 0.25)], rel=1e-6)


# ----------------------------------------------------------------------------- focal
def focal_by_hand(gamma: float, weight: list[float] | None = None) -> float:
    num = den = 0.0
    for row, y in zip(LOGITS, TARGETS):
        logp = log_softmax_at(row, y)
        w = 1.0 if weight is None else weight[y]
        num += w * (1 - math.exp(logp)) ** gamma * (-logp)
        den += w
    return num / den


def test_focal_gamma0_is_cross_entropy():
    logits, y = torch.randn(16, 5, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 5
    assert float(FocalLoss(0.0)(logits, y)) == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-6)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 0.5])
def test_focal_by_hand(gamma):
    assert float(FocalLoss(gamma)(t(LOGITS), t(TARGETS, torch.long))) == pytest.approx(focal_by_hand(gamma))


def test_focal_weighted_uses_unweighted_softmax():
    weight = [1.0, 2.0, 3.0]
    loss = float(FocalLoss(1.0, weight=t(weight))(t(LOGITS), t(TARGETS, torch.long)))
    assert loss == pytest.approx(focal_by_hand(1.0, weight))
    # the reference code's p_y = exp(−w_y·CE) = p_y^{w_y} (weight leaking into the factor) differs
    leaked = sum(
        weight[y] * (1 - math.exp(weight[y] * log_softmax_at(r, y))) * (-log_softmax_at(r, y))
        for r, y in zip(LOGITS, TARGETS)
    ) / sum(weight[y] for y in TARGETS)
    assert abs(loss - leaked) > 1e-3


def test_focal_weight_is_settable_and_gradients_finite():
    loss = FocalLoss(0.5)
    loss.weight = t([1.0, 2.0, 3.0])
    got = float(loss(t(LOGITS), t(TARGETS, torch.long)))
    assert got == pytest.approx(focal_by_hand(0.5, [1.0, 2.0, 3.0]))
    loss.weight = None
    z = t([[200.0, 0.0, 0.0]]).requires_grad_()  # p_y == 1 in float32
    loss(z, t([0], torch.long)).backward()
    assert torch.isfinite(z.grad).all()


# ----------------------------------------------------------------------------- LDAM
COS = [[0.2, 0.5, -0.1], [0.9, 0.0, 0.3], [0.1, 0.4, 0.6]]
COS_Y = [1, 2, 0]


def ldam_by_hand(margins, s, weight=None) -> float:
    num = den = 0.0
    for row, y in zip(COS, COS_Y):
        z = [s * (c - (margins[j] if j == y else 0.0)) for j, c in enumerate(row)]
        w = 1.0 if weight is None else weight[y]
        num += -w * log_softmax_at(z, y)
        den += w
    return num / den


def test_ldam_margins():
    loss = LDAMLoss([100, 10, 1])
    expected = [0.5 * (1 / 100) ** 0.25, 0.5 * (1 / 10) ** 0.25, 0.5]
    assert loss.margins.tolist() == pytest.approx(expected, rel=1e-6)
    assert expected[:2] == pytest.approx([0.158113883, 0.281170663])
    # == Δ_max · n_c^{-1/4} / max_j n_j^{-1/4}
    assert LDAMLoss([8, 3, 2], max_margin=0.3).margins.tolist() == pytest.approx(
        [0.3 * n**-0.25 / 2**-0.25 for n in (8, 3, 2)], rel=1e-6
    )


@pytest.mark.parametrize("weight", [None, [0.5, 1.0, 4.0]])
def test_ldam_by_hand(weight):
    loss = LDAMLoss([100, 10, 1], max_margin=0.5, s=5.0, weight=None if weight is None else t(weight))
    margins = [0.5 * (1 / 100) ** 0.25, 0.5 * (1 / 10) ** 0.25, 0.5]
    got = float(loss(t(COS), t(COS_Y, torch.long)))
    assert got == pytest.approx(ldam_by_hand(margins, 5.0, weight), rel=1e-6)


def test_ldam_drw_weight_swap_and_state():
    loss = LDAMLoss([100, 10, 1], s=5.0)
    margins = loss.margins.tolist()
    cos, y = t(COS), t(COS_Y, torch.long)
    loss.weight = t([0.5, 1.0, 4.0])  # what the DRW switch does
    assert float(loss(cos, y)) == pytest.approx(ldam_by_hand(margins, 5.0, [0.5, 1.0, 4.0]), rel=1e-6)
    loss.weight = None
    assert float(loss(cos, y)) == pytest.approx(ldam_by_hand(margins, 5.0), rel=1e-6)
    assert "margins" in loss.state_dict()


# ----------------------------------------------------------------------------- logit adjustment
@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_logit_adjusted_by_hand(tau):
    counts = [6, 3, 1]
    expected = 0.0
    for row, y in zip(LOGITS, TARGETS):
        z = [c + tau * math.log(n / 10) for c, n in zip(row, counts)]
        expected -= log_softmax_at(z, y) / len(TARGETS)
    logits, y = t(LOGITS), t(TARGETS, torch.long)
    assert float(logit_adjusted_cross_entropy(logits, y, counts, tau=tau)) == pytest.approx(expected)
    lp = log_prior(counts)
    assert lp.tolist() == pytest.approx([math.log(n / 10) for n in counts], rel=1e-6)
    assert float(logit_adjusted_cross_entropy(logits, y, tau=tau, log_pi=lp)) == pytest.approx(expected)


def test_logit_adjusted_needs_exactly_one_prior():
    logits, y = t(LOGITS), t(TARGETS, torch.long)
    with pytest.raises(ValueError, match="exactly one"):
        logit_adjusted_cross_entropy(logits, y)
    with pytest.raises(ValueError, match="exactly one"):
        logit_adjusted_cross_entropy(logits, y, [6, 3, 1], log_pi=log_prior([6, 3, 1]))


# ----------------------------------------------------------------------------- KPS
def kps_by_hand(radii, margins, s) -> float:
    total = 0.0
    for row, y in zip(COS, COS_Y):
        target = math.exp(s * (radii[y] * row[y] - margins[y]))
        others = sum(math.exp(s * radii[j] * row[j]) for j in range(len(row)) if j != y)
        total -= math.log(target / (target + others))
    return total / len(COS)


def test_kps_literal_by_hand():
    counts, c_r, c_m = [100, 10, 1], 1.0, math.log(100)
    loss = KPSLoss(counts, s=2.0, c_r=c_r, c_m=c_m, normalize=False)
    radii = [math.log(n) + c_r for n in counts]
    margins = [c_m - math.log(n) for n in counts]
    assert loss.radii.tolist() == pytest.approx(radii, rel=1e-6)
    assert loss.margins.tolist() == pytest.approx(margins, abs=1e-6)
    got = float(loss(t(COS), t(COS_Y, torch.long)))
    assert got == pytest.approx(kps_by_hand(radii, margins, 2.0), rel=1e-6)


def test_kps_default_matches_official_code_units():
    loss = KPSLoss(CIFAR10_LT)
    # Keke921/KPSLoss: radii log(n_c·50/n_min) normalised to min 1; margins = reversed radii, max 0.5
    raw = [math.log(n * 50 / min(CIFAR10_LT)) for n in CIFAR10_LT]
    radii = [r / min(raw) for r in raw]
    margins = [0.5 * r / max(radii) for r in reversed(radii)]
    assert loss.radii.tolist() == pytest.approx(radii, rel=1e-5)
    assert loss.margins.tolist() == pytest.approx(margins, abs=2e-3)  # equal for an exact exp profile
    assert float(loss.margins.max()) == pytest.approx(0.5) and float(loss.margins.min()) >= 0
    cos, y = torch.rand(6, 10, generator=torch.Generator().manual_seed(1)) * 2 - 1, torch.arange(6)
    r, m = loss.radii.tolist(), loss.margins.tolist()
    expected = 0.0
    for i in range(6):
        row = cos[i].tolist()
        z = [30.0 * (r[j] * row[j] - (m[j] if j == i else 0.0)) for j in range(10)]
        expected -= log_softmax_at(z, i) / 6
    assert float(loss(cos, y)) == pytest.approx(expected, rel=1e-5)


def test_kps_validates_radius_and_margin():
    with pytest.raises(ValueError, match="r_c"):
        KPSLoss([100, 10, 1], c_r=-0.5, normalize=False)
    with pytest.raises(ValueError, match="m_c"):
        KPSLoss([100, 10, 1], c_m=math.log(100) - 0.1)


# ----------------------------------------------------------------------------- contrastive core
Z4 = unit([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.8, 0.6]])


def supcon_by_hand(z, pos_sets, denom_sets, taus) -> list[float | None]:
    out = []
    for i, (pos, den, tau) in enumerate(zip(pos_sets, denom_sets, taus)):
        if not pos:
            out.append(None)
            continue
        log_den = math.log(sum(math.exp(dot(z[i], z[a]) / tau) for a in den))
        out.append(-sum(dot(z[i], z[p]) / tau - log_den for p in pos) / len(pos))
    return out


def test_supcon_masks_by_hand():
    pos, den = supcon_masks(t([0, 1], torch.long), views=2)  # rows: img0 v1, img1 v1, img0 v2, img1 v2
    assert pos.tolist() == [[j == (i + 2) % 4 for j in range(4)] for i in range(4)]
    assert den.tolist() == [[i != j for j in range(4)] for i in range(4)]
    pos, _ = supcon_masks(t([0, 0, 1, 1], torch.long), views=1)
    assert pos.nonzero().tolist() == [[0, 1], [1, 0], [2, 3], [3, 2]]


def test_contrastive_loss_by_hand():
    z = t(Z4)
    pos, den = supcon_masks(t([0, 0, 1, 1], torch.long), views=1)
    pos_sets, den_sets = [[1], [0], [3], [2]], [[j for j in range(4) if j != i] for i in range(4)]
    per = supcon_by_hand(Z4, pos_sets, den_sets, [0.5] * 4)
    assert float(contrastive_loss(z, z, pos, den, 0.5)) == pytest.approx(sum(per) / 4, rel=1e-6)
    # two positives for anchor 0 (|P_i| normalisation), restricted denominator for anchor 1
    pos2 = torch.zeros(4, 4, dtype=torch.bool)
    pos2[0, 1] = pos2[0, 2] = pos2[1, 3] = True
    den2 = ~torch.eye(4, dtype=torch.bool)
    den2[1, 2] = False
    per2 = supcon_by_hand(Z4, [[1, 2], [3], [], []], [[1, 2, 3], [0, 3], [], []], [0.5] * 4)
    got = contrastive_loss(z, z, pos2, den2, 0.5, reduction="none")
    assert got.tolist() == pytest.approx([per2[0], per2[1], 0.0, 0.0], rel=1e-6)


def test_contrastive_anchors_without_positives_are_excluded():
    z = t(Z4)
    pos, den = supcon_masks(t([0, 0, 1, 2], torch.long), views=1)
    all_but = [[j for j in range(4) if j != i] for i in range(4)]
    per = supcon_by_hand(Z4, [[1], [0], [], []], all_but, [0.2] * 4)
    assert float(contrastive_loss(z, z, pos, den, 0.2)) == pytest.approx((per[0] + per[1]) / 2, rel=1e-6)
    none = torch.zeros(4, 4, dtype=torch.bool)
    zg = z.clone().requires_grad_()
    out = contrastive_loss(zg, zg, none, den, 0.2)
    out.backward()
    assert float(out.detach()) == 0.0 and torch.isfinite(zg.grad).all()
    zg.grad = None
    den_empty_row = den.clone()
    den_empty_row[3] = False  # anchor 3: no denominator and no positive
    contrastive_loss(zg, zg, pos, den_empty_row, 0.2).backward()
    assert torch.isfinite(zg.grad).all()


def test_contrastive_per_anchor_temperature():
    z = t(Z4)
    pos, den = supcon_masks(t([0, 0, 1, 1], torch.long), views=1)
    same = contrastive_loss(z, z, pos, den, torch.full((4,), 0.3))
    assert float(same) == pytest.approx(float(contrastive_loss(z, z, pos, den, 0.3)), rel=1e-6)
    taus = [0.1, 0.2, 0.3, 0.4]
    per = supcon_by_hand(Z4, [[1], [0], [3], [2]], [[j for j in range(4) if j != i] for i in range(4)], taus)
    assert float(contrastive_loss(z, z, pos, den, t(taus))) == pytest.approx(sum(per) / 4, rel=1e-6)


def test_contrastive_adds_positives_to_denominator_and_is_stable():
    z = t(Z4)
    pos, den = supcon_masks(t([0, 0, 1, 1], torch.long), views=1)
    ref = contrastive_loss(z, z, pos, den, 0.5)
    assert float(contrastive_loss(z, z, pos, den & ~pos, 0.5)) == pytest.approx(float(ref), rel=1e-6)
    assert torch.isfinite(contrastive_loss(z, z, pos, den, 1e-3))


def _two_view_batch(b: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    v1, v2 = (
        F.normalize(torch.randn(b, 8, generator=g), dim=1),
        F.normalize(torch.randn(b, 8, generator=g), dim=1),
    )
    return v1, v2, torch.randint(0, 3, (b,), generator=g)


def test_supcon_and_kcl_are_permutation_invariant():
    v1, v2, labels = _two_view_batch(10, 0)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    z, zp = torch.cat([v1, v2]), torch.cat([v1[perm], v2[perm]])
    for masks in (lambda y: supcon_masks(y), lambda y: kcl_masks(y, k=100)):
        a = contrastive_loss(z, z, *masks(labels), 0.1)
        b = contrastive_loss(zp, zp, *masks(labels[perm]), 0.1)
        assert float(a) == pytest.approx(float(b), rel=1e-5)


# ----------------------------------------------------------------------------- KCL masks
def test_kcl_with_all_positives_equals_supcon():
    labels = t([0, 0, 0, 1, 1, 2, 0, 3], torch.long)
    for k in (7, 14, 100):
        pos, den = kcl_masks(labels, k, generator=torch.Generator().manual_seed(0))
        sup_pos, sup_den = supcon_masks(labels)
        assert torch.equal(pos, sup_pos) and torch.equal(den, sup_den)


def test_kcl_masks_sampling_rules():
    labels = t([0] * 6 + [1] * 3 + [2] * 2 + [3], torch.long)
    b, k = 12, 3
    pos, den = kcl_masks(labels, k, generator=torch.Generator().manual_seed(3))
    lab = labels.tolist() * 2
    for i in range(2 * b):
        twin = (i + b) % (2 * b)
        assert pos[i, twin] and not pos[i, i] and not den[i, i] and int(den[i].sum()) == 2 * b - 1
        sampled = [j for j in range(2 * b) if pos[i, j] and j != twin]
        available = lab.count(lab[i]) - 2  # both views of every other image of the class
        assert len(sampled) == min(k, available)
        assert all(lab[j] == lab[i] and j % b != i % b for j in sampled)
    again, _ = kcl_masks(labels, k, generator=torch.Generator().manual_seed(3))
    other, _ = kcl_masks(labels, k, generator=torch.Generator().manual_seed(4))
    assert torch.equal(pos, again) and not torch.equal(pos, other)


def test_sample_mask_is_uniform():
    cand = torch.zeros(4000, 12, dtype=torch.bool)
    cand[:, 2:12] = True  # 10 candidates, choose 3: each chosen with probability 0.3
    chosen = sample_mask(cand, 3, generator=torch.Generator().manual_seed(0))
    assert (chosen.sum(1) == 3).all() and not chosen[:, :2].any()
    freq = chosen[:, 2:].float().mean(0)
    assert torch.allclose(freq, torch.full((10,), 0.3), atol=0.03)  # ~4 sigma
    pairs = chosen[:, 2] & chosen[:, 3]  # P(both) = C(8,1)/C(10,3) = 1/15
    assert float(pairs.float().mean()) == pytest.approx(1 / 15, abs=0.015)


def test_kcl_queue_masks():
    q_lab, queue_lab = t([0, 1, 2], torch.long), t([0, 0, 0, 1, 2, 2, 0], torch.long)
    pos, den = kcl_queue_masks(q_lab, queue_lab, k=2, generator=torch.Generator().manual_seed(0))
    assert pos.shape == den.shape == (3, 10)
    assert pos[:, :3].tolist() == torch.eye(3, dtype=torch.bool).tolist() == den[:, :3].tolist()
    assert den[:, 3:].all()
    assert pos[:, 3:].sum(1).tolist() == [2, 1, 2]
    for i, row in enumerate(pos[:, 3:].tolist()):
        assert all(queue_lab[j] == q_lab[i] for j, p in enumerate(row) if p)


# ----------------------------------------------------------------------------- labelled queue
def test_labelled_queue_fifo_and_wraparound():
    queue = LabelledQueue(4, 2)
    keys = t([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    queue.enqueue(keys, t([0, 1, 2], torch.long))
    assert queue.filled == 3 and queue.labels.tolist() == [0, 1, 2]
    assert torch.allclose(queue.keys, t([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]]))  # normalised
    queue.enqueue(t([[1.0, 1.0], [2.0, 0.0]]), t([3, 4], torch.long))
    assert queue.filled == 4 and queue.labels.tolist() == [4, 1, 2, 3]  # 4 overwrote the oldest (0)
    queue.enqueue(t([[0.0, 1.0]]), t([5], torch.long))
    assert queue.labels.tolist() == [4, 5, 2, 3]  # then the next oldest (1)
    restored = LabelledQueue(4, 2)
    restored.load_state_dict(queue.state_dict())
    restored.enqueue(t([[1.0, 0.0]]), t([6], torch.long))
    assert restored.labels.tolist() == [4, 5, 6, 3]
    queue.enqueue(torch.ones(6, 2), t([10, 11, 12, 13, 14, 15], torch.long))  # more than size: newest 4 kept
    assert sorted(queue.labels.tolist()) == [12, 13, 14, 15]


# ----------------------------------------------------------------------------- BNS
Q3 = unit([[1.0, 0.2], [0.5, 0.9], [-0.7, 0.4]])
V3 = unit([[0.9, -0.3], [0.2, 1.0], [-0.6, -0.5]])
Y3 = [0, 0, 1]


def bns_paper_by_hand(q, v, labels, tau) -> float:
    """m = 1 with at most one other same-class query (forced), all negatives, (1/n_i) normalisation."""
    total = 0.0
    for i in range(len(q)):
        queries = [i] + [k for k in range(len(q)) if k != i and labels[k] == labels[i]]
        negatives = [j for j in range(len(q)) if labels[j] != labels[i]]
        acc = 0.0
        for k in queries:
            acc += log_sigmoid(dot(q[k], v[i]) / tau)
            acc += sum(log_sigmoid(-dot(q[k], v[j]) / tau) for j in negatives) / len(negatives)
        total += -acc / len(queries)
    return total / len(q)


def test_bns_paper_by_hand():
    q, v, y = t(Q3), t(V3), t(Y3, torch.long)
    one_way = bns_paper_by_hand(Q3, V3, Y3, 0.5)
    loss = BNSLoss("paper", temperature=0.5, m=1, n=None, symmetric=False)
    assert float(loss(q, v, y)) == pytest.approx(one_way, rel=1e-6)
    sym = BNSLoss("paper", temperature=0.5, m=1, symmetric=True)
    expected = 0.5 * (one_way + bns_paper_by_hand(V3, Q3, Y3, 0.5))
    assert float(sym(3 * q, v / 2, y)) == pytest.approx(expected, rel=1e-6)  # normalises its inputs


def test_bns_paper_divides_negatives_by_their_count():
    # anchor 2 has two negatives: the (1/n_i) sum differs from the plain sum of Eq. 12
    unnormalised = 0.0
    for i in range(3):
        queries = [i] + [k for k in range(3) if k != i and Y3[k] == Y3[i]]
        negs = [j for j in range(3) if Y3[j] != Y3[i]]
        acc = sum(
            log_sigmoid(dot(Q3[k], V3[i]) / 0.5) + sum(log_sigmoid(-dot(Q3[k], V3[j]) / 0.5) for j in negs)
            for k in queries
        )
        unnormalised += -acc / len(queries) / 3
    got = float(BNSLoss("paper", temperature=0.5, m=1, symmetric=False)(t(Q3), t(V3), t(Y3, torch.long)))
    assert abs(got - unnormalised) > 1e-2


def test_bns_paper_sampling():
    v1, v2, labels = _two_view_batch(12, 5)
    g = torch.Generator
    loss = BNSLoss("paper", m=2, n=3)
    a, b = loss(v1, v2, labels, g().manual_seed(0)), loss(v1, v2, labels, g().manual_seed(0))
    assert float(a) == float(b) and torch.isfinite(a)
    full, big = BNSLoss("paper", m=None, n=None), BNSLoss("paper", m=100, n=100)
    ref = float(big(v1, v2, labels, g().manual_seed(1)))
    assert float(full(v1, v2, labels)) == pytest.approx(ref, rel=1e-6)


def test_bns_code_by_hand():
    z = Q3 + V3
    lab = Y3 * 2
    total = 0.0
    for a in range(6):
        pos = [p for p in range(6) if p != a and lab[p] == lab[a]]
        neg = [n for n in range(6) if lab[n] != lab[a]]
        pos_mean = sum(math.exp(dot(z[a], z[p]) / 0.5) for p in pos) / len(pos)
        neg_mean = sum(math.exp(dot(z[a], z[n]) / 0.5) for n in neg) / 6  # row length 2B, as released
        total += -(log_sigmoid(pos_mean) + log_sigmoid(-neg_mean))
    loss = BNSLoss("code", temperature=0.5, m=3, n=1, symmetric=False)
    assert float(loss(t(Q3), t(V3), t(Y3, torch.long))) == pytest.approx(total / 6, rel=1e-6)


def test_bns_variant_validation():
    with pytest.raises(ValueError, match="paper, code"):
        BNSLoss("papr")


def test_bns_gradients_flow():
    v1, v2, labels = _two_view_batch(8, 2)
    for variant in ("paper", "code"):
        q, v = v1.clone().requires_grad_(), v2.clone().requires_grad_()
        BNSLoss(variant)(q, v, labels).backward()
        assert all(torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0 for x in (q, v))


def test_losses_state_dict_has_no_stray_entries():
    # per-class buffers checkpoint; a None weight is not stored
    assert set(LDAMLoss([3, 1]).state_dict()) == {"margins"}
    assert set(KPSLoss([3, 1]).state_dict()) == {"radii", "margins"}
    assert set(FocalLoss(1.0, weight=t([1.0, 2.0])).state_dict()) == {"weight"}
    assert list(itertools.islice(BNSLoss().state_dict(), 1)) == []


def test_contrastive_losses_stay_float32_under_autocast():
    v1, v2, labels = _two_view_batch(8, 3)
    z = torch.cat([v1, v2])
    pos, den = supcon_masks(labels)
    ref = [contrastive_loss(z, z, pos, den, 0.07), BNSLoss("code")(v1, v2, labels)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = [contrastive_loss(z, z, pos, den, 0.07), BNSLoss("code")(v1, v2, labels)]
    assert [float(x) for x in got] == [float(x) for x in ref]


@pytest.mark.parametrize("loss_cls", ["LDAMLoss", "KPSLoss"])
def test_margin_free_logits_are_what_the_loss_trains(loss_cls):
    """Test-time logits of the cosine-head losses: with no margin the loss is plain CE on ``logits(cos)``."""
    import ltbench.losses as L

    counts = [50, 20, 5]
    cos = torch.tensor([[0.9, -0.2, 0.1], [0.3, 0.4, -0.8]])
    y = torch.tensor([0, 2])
    loss = getattr(L, loss_cls)(counts, max_margin=0.0)
    assert torch.allclose(loss(cos, y), torch.nn.functional.cross_entropy(loss.logits(cos), y))
    if loss_cls == "LDAMLoss":
        assert torch.allclose(loss.logits(cos), 30 * cos)  # s = 30 (§3), not the raw cosines
