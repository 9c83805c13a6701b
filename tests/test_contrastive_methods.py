"""KCL / TSC / SBCL (docs/methods.md §6–§8): losses on hand-made embeddings, TSC targets and assignment, SBCL
clustering, the MoCo-style queue option, and one epoch per stage end to end on synthetic data (CPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ltbench.config import RunConfig
from ltbench.data.longtail import class_counts
from ltbench.losses.contrastive import (
    contrastive_loss,
    kcl_masks,
    sbcl_loss,
    supcon_masks,
    targeted_contrastive_loss,
    targets_as_samples,
)
from ltbench.method import DataInfo
from ltbench.methods.contrastive.common import ContrastiveModel
from ltbench.methods.contrastive.kcl import KCL
from ltbench.methods.contrastive.sbcl import class_temperatures, per_class_kmeans, subclass_counts
from ltbench.methods.contrastive.tsc import (
    TSC,
    hungarian_assignment,
    optimised_targets,
    simplex_targets,
    uniformity_energy,
    update_centroids,
)
from ltbench.records import log_entries, read_json
from ltbench.run import execute

CIFAR10_LT = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def unit(*shape: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=1)


def resolved_hp(cls, **overrides) -> dict:
    hp = {k: v.default for k, v in cls.hparams.items()}
    hp.update(overrides)
    return hp


class TinyBackbone(nn.Module):
    feature_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 8), nn.BatchNorm1d(8), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def tiny_method(cls, num_classes: int = 3, **hp):
    info = DataInfo(num_classes=num_classes, class_counts=[6, 4, 2][:num_classes], image_size=4, dataset="toy")
    method = cls(resolved_hp(cls, proj_dim=4, **hp), info)
    torch.manual_seed(0)
    return method, method.build_model(TinyBackbone(), num_classes, info.class_counts)


def two_view_batch(labels: list[int], seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor(labels)
    return {"x": [torch.randn(len(y), 3, 4, 4, generator=g) for _ in range(2)], "y": y, "index": torch.arange(len(y))}


# ------------------------------------------------------------------------------------------------ KCL
def test_kcl_with_all_positives_equals_supcon_through_the_method():
    method, model = tiny_method(KCL, k=100)
    batch = two_view_batch([0, 0, 1, 0, 2, 1])
    torch.manual_seed(1)
    loss = method.contrastive_step(model, batch, epoch=0)["loss"].detach()
    z = model.embed(torch.cat(batch["x"]))
    ref = contrastive_loss(z, z, *supcon_masks(batch["y"]), method.hp["temperature"])
    assert float(loss) == pytest.approx(ref.item(), rel=1e-5)


def test_losses_are_invariant_to_permuting_the_batch():
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    z1, z2 = unit(6, 5, seed=1), unit(6, 5, seed=2)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    z, zp = torch.cat([z1, z2]), torch.cat([z1[perm], z2[perm]])
    kcl = contrastive_loss(z, z, *kcl_masks(labels, k=100), 0.07)
    kcl_p = contrastive_loss(zp, zp, *kcl_masks(labels[perm], k=100), 0.07)
    assert float(kcl) == pytest.approx(float(kcl_p), rel=1e-5)
    targets, assign = simplex_targets(3, 5), torch.tensor([2, 0, 1])
    tsc = targeted_contrastive_loss(z, z, *kcl_masks(labels, 100), targets, assign[labels.repeat(2)], 0.07, 0.2)
    lp = labels[perm]
    tsc_p = targeted_contrastive_loss(zp, zp, *kcl_masks(lp, 100), targets, assign[lp.repeat(2)], 0.07, 0.2)
    assert float(tsc) == pytest.approx(float(tsc_p), rel=1e-5)
    sub, tau = torch.tensor([0, 2, 1, 3, 2, 0]), torch.tensor([0.08, 0.12, 0.1])
    sb = sbcl_loss(z, labels, sub, tau)
    assert float(sb) == pytest.approx(float(sbcl_loss(zp, labels[perm], sub[perm], tau)), rel=1e-5)


def test_kcl_queue_option_momentum_encoder_and_queue():
    method, model = tiny_method(KCL, k=2, queue_size=8, momentum=0.9)
    assert model.queue is not None and model.key_encoder is not None
    assert not any(p.requires_grad for p in model.key_encoder.parameters())
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5)
    for step in range(3):
        query = [p.detach().clone() for p in list(model.backbone.parameters()) + list(model.projector.parameters())]
        before = [p.clone() for p in model.key_encoder.parameters()]
        loss = method.contrastive_step(model, two_view_batch([0, 1, 0, 2, 1], seed=step), epoch=0)["loss"]
        assert torch.isfinite(loss)
        for k_new, k_old, q in zip(model.key_encoder.parameters(), before, query):  # θ_k ← 0.9 θ_k + 0.1 θ_q
            assert torch.allclose(k_new, 0.9 * k_old + 0.1 * q, atol=1e-6)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in model.key_encoder.parameters())
        opt.step()
        assert model.queue.filled == min(8, 5 * (step + 1))
    assert torch.allclose(model.queue.keys.norm(dim=1), torch.ones(8), atol=1e-5)
    assert set(model.queue.labels.tolist()) <= {0, 1, 2}
    # momentum 0: keys come from the encoder itself (detached), no copy is kept
    method0, model0 = tiny_method(KCL, k=2, queue_size=4, momentum=0.0)
    assert model0.key_encoder is None
    method0.contrastive_step(model0, two_view_batch([0, 1, 2]), epoch=0)["loss"].backward()
    assert model0.queue.filled == 3


def test_kcl_queue_positives_topk_by_hand():
    """topk (official KCL): the k same-class entries with the lowest queue slots; random: any k of them.

    Queue slots 0..7 hold labels [1, 0, 1, 1, 2, 1, 0, 1]; k = 2. Query of class 1 -> slots 0 and 2 (not 3, 5, 7);
    class 0 -> slots 1 and 6 (only two exist); class 2 -> slot 4 (fewer than k: all of them); class 3 -> none.
    The denominator is the own key plus the whole queue either way."""
    from ltbench.losses.contrastive import kcl_queue_masks

    queue = torch.tensor([1, 0, 1, 1, 2, 1, 0, 1])
    queries = torch.tensor([1, 0, 2, 3])
    pos, den = kcl_queue_masks(queries, queue, 2, positives="topk")
    chosen = [pos[i, 4:].nonzero().flatten().tolist() for i in range(4)]
    assert chosen == [[0, 2], [1, 6], [4], []]
    assert torch.equal(pos[:, :4], torch.eye(4, dtype=torch.bool)) and bool(den[:, 4:].all())
    assert torch.equal(den[:, :4], torch.eye(4, dtype=torch.bool))
    # deterministic: the same set every time, whatever the random state
    assert torch.equal(pos, kcl_queue_masks(queries, queue, 2, torch.Generator().manual_seed(5), positives="topk")[0])
    # random: k of the class-1 slots {0, 2, 3, 5, 7}, varying with the generator, and sometimes not the first two
    draws = {
        tuple(
            kcl_queue_masks(queries, queue, 2, torch.Generator().manual_seed(s))[0][0, 4:].nonzero().flatten().tolist()
        )
        for s in range(40)
    }
    assert all(len(d) == 2 and set(d) <= {0, 2, 3, 5, 7} for d in draws) and len(draws) > 3


def test_kcl_positives_reach_the_loss_and_are_recorded(monkeypatch):
    """The method passes its ``positives`` to the queue masks (default topk = the release); TSC samples."""
    import ltbench.methods.contrastive.common as common

    assert KCL.hparams["positives"].default == "topk" and "positives" not in TSC.hparams
    seen = []
    real = common.kcl_queue_masks

    def spy(*args, positives="random", **kwargs):
        seen.append(positives)
        return real(*args, positives=positives, **kwargs)

    monkeypatch.setattr(common, "kcl_queue_masks", spy)
    for hp in [{}, {"positives": "random"}]:
        method, model = tiny_method(KCL, k=2, queue_size=8, **hp)
        method.contrastive_step(model, two_view_batch([0, 1, 0, 2, 1]), epoch=0)
    assert seen == ["topk", "random"]
    assert tiny_method(TSC, k=2, queue_size=8, variant="code_imagenet")[0].queue_positives == "random"


# ------------------------------------------------------------------------------------------------ TSC
@pytest.mark.parametrize(("c", "d"), [(10, 128), (100, 128), (129, 128), (2, 3)])
def test_simplex_targets_are_a_regular_simplex(c, d):
    u = simplex_targets(c, d, torch.Generator().manual_seed(0)).double()
    assert u.shape == (c, d)
    assert torch.allclose(u.norm(dim=1), torch.ones(c, dtype=torch.float64), atol=1e-6)
    off = (u @ u.t())[~torch.eye(c, dtype=torch.bool)]
    assert torch.allclose(off, torch.full_like(off, -1.0 / (c - 1)), atol=1e-6)
    with pytest.raises(ValueError):
        simplex_targets(d + 2, d)


def test_optimised_targets_spread_out():
    start = F.normalize(torch.randn(12, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    u = optimised_targets(12, 3, steps=400, lr=3e-2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(u.norm(dim=1), torch.ones(12), atol=1e-5)
    assert float(uniformity_energy(u)) < float(uniformity_energy(start))
    # 12 points on S²: the optimum is the icosahedron, largest pairwise cosine 1/√5 ≈ 0.447
    assert float((u @ u.t())[~torch.eye(12, dtype=torch.bool)].max()) < 0.5


def test_hungarian_assignment_recovers_a_known_permutation():
    targets = simplex_targets(10, 128, torch.Generator().manual_seed(1))
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(2))
    noise = 0.05 * torch.randn(10, 128, generator=torch.Generator().manual_seed(3))
    centroids = F.normalize(targets[perm] + noise, dim=1)  # class y sits next to target perm[y]
    assert torch.equal(hungarian_assignment(centroids, targets), perm)


def test_ema_centroids():
    z = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=1)
    c = update_centroids(torch.zeros(3, 2), z, torch.tensor([0, 0, 1]), 0.9)
    assert torch.allclose(c[0], F.normalize(torch.tensor([1.0, 1.0]), dim=0), atol=1e-6)  # first: the batch mean
    assert torch.equal(c[2], torch.zeros(2))  # absent class untouched
    c2 = update_centroids(c, z[:1], torch.tensor([1]), 0.9)
    assert torch.allclose(c2[1], F.normalize(0.9 * c[1] + 0.1 * z[0], dim=0), atol=1e-6)


def test_tsc_loss_by_hand():
    z = F.normalize(torch.tensor([[1.0, 0.2], [0.3, 1.0], [0.9, -0.1], [0.1, 0.8]]), dim=1)  # 2 images x 2 views
    u = F.normalize(torch.tensor([[1.0, 0.0], [-1.0, 0.1]]), dim=1)
    labels, tau, lam = torch.tensor([0, 1]), 0.5, 0.2
    pos, den = kcl_masks(labels, k=6)
    got = targeted_contrastive_loss(z, z, pos, den, u, torch.tensor([0, 1, 0, 1]), tau, lam)
    per = []
    for i in range(4):
        twin = (i + 2) % 4
        d = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(4) if a != i)
        d += sum(math.exp(float(z[i] @ t) / tau) for t in u)
        pull = -math.log(math.exp(float(z[i] @ z[twin]) / tau) / d)
        per.append(pull - lam * math.log(math.exp(float(z[i] @ u[i % 2]) / tau) / d))
    assert float(got) == pytest.approx(sum(per) / 4, rel=1e-5)


# 3 images x 2 views (rows [view1; view2]), classes [0, 0, 1]; two targets in R^3 (written out, normalised)
Z3 = [[1.0, 0.2, 0.1], [0.8, 0.5, -0.2], [-0.3, 1.0, 0.4], [0.9, 0.1, 0.3], [0.6, 0.7, 0.0], [-0.5, 0.8, 0.2]]
U3 = [[1.0, 0.0, 0.0], [-0.5, 0.866, 0.0]]


def _hand_tsc(z, u, labels, tau, lam, variant):
    """ℓ_i from the formulas of docs/methods.md §7.3, all class-mates positive (k large), target c*_i = u[y_i]."""
    n = len(z)
    lab = labels * 2

    def e(a, b):
        return math.exp(sum(x * y for x, y in zip(a, b)) / tau)

    per = []
    for i in range(n):
        d = sum(e(z[i], z[a]) for a in range(n) if a != i) + sum(e(z[i], t) for t in u)
        pos = [p for p in range(n) if p != i and lab[p] == lab[i]]
        pull = -sum(math.log(e(z[i], z[p]) / d) for p in pos)
        target = -math.log(e(z[i], u[lab[i]]) / d)
        if variant == "paper":
            per.append(pull / len(pos) + lam * target)
        else:  # code_imagenet: (pull + λ·target) / (|P_i| + 1)
            per.append((pull + lam * target) / (len(pos) + 1))
    return sum(per) / n


@pytest.mark.parametrize("variant", ["paper", "code_imagenet"])
def test_tsc_explicit_target_variants_by_hand(variant):
    z, u = F.normalize(torch.tensor(Z3), dim=1), F.normalize(torch.tensor(U3), dim=1)
    labels, tau, lam = torch.tensor([0, 0, 1]), 0.5, 0.2
    pos, den = kcl_masks(labels, k=100)
    index = labels.repeat(2)
    got = targeted_contrastive_loss(z, z, pos, den, u, index, tau, lam, variant)
    want = _hand_tsc(z.tolist(), u.tolist(), [0, 0, 1], tau, lam, variant)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_tsc_imagenet_code_is_the_paper_with_weight_lambda_over_k_plus_1():
    """Where every anchor has |P_i| = k + 1 positives, the release's ℓ = (k+1)/(k+2) · paper ℓ with λ/(k+1): at
    k = 6 its target weight relative to the pull is 0.2/7 ≈ 0.029, 7x weaker than the paper's 0.2 (§7.3)."""
    z, u = F.normalize(torch.tensor(Z3[:2] + Z3[3:5]), dim=1), F.normalize(torch.tensor(U3), dim=1)
    labels = torch.tensor([0, 0])  # 2 images of class 0: |P_i| = 3 = k + 1 with k = 2
    pos, den = kcl_masks(labels, k=2)
    args = (z, z, pos, den, u, torch.zeros(4, dtype=torch.long), 0.5)
    code = targeted_contrastive_loss(*args, 0.2, "code_imagenet")
    paper = targeted_contrastive_loss(*args, 0.2 / 3, "paper")
    assert float(code) == pytest.approx(3 / 4 * float(paper), rel=1e-6)
    with pytest.raises(ValueError):
        targeted_contrastive_loss(*args, 0.2, "code_cifar")  # no explicit target term: targets_as_samples


def test_tsc_cifar_release_targets_as_samples_by_hand():
    """code_cifar: each target ``repeat`` times per view as a fake image of its class; plain KCL over all rows,
    every row (target copies too) an anchor; no λ (cifar_dirty/main_supcon_imba.py + tsc_cifar_loss.py)."""
    z, u = F.normalize(torch.tensor(Z3), dim=1), F.normalize(torch.tensor(U3), dim=1)
    rows, labels = targets_as_samples(z, torch.tensor([0, 0, 1]), u, repeat=2)
    # [img0, img1, img2, u0, u0, u1, u1] per view, labelled by class
    want_rows = [z[0], z[1], z[2], u[0], u[0], u[1], u[1], z[3], z[4], z[5], u[0], u[0], u[1], u[1]]
    assert torch.equal(rows, torch.stack(want_rows)) and labels.tolist() == [0, 0, 1, 0, 0, 1, 1]
    tau, lab = 0.5, labels.tolist() * 2
    r = [list(map(float, row)) for row in want_rows]

    def e(a, b):
        return math.exp(sum(x * y for x, y in zip(a, b)) / tau)

    per = []
    for i in range(14):
        d = sum(e(r[i], r[a]) for a in range(14) if a != i)
        pos = [p for p in range(14) if p != i and lab[p] == lab[i]]
        per.append(-sum(math.log(e(r[i], r[p]) / d) for p in pos) / len(pos))
    pos, den = kcl_masks(labels, k=100)  # k large: every same-class row, real or target copy
    assert float(contrastive_loss(rows, rows, pos, den, tau)) == pytest.approx(sum(per) / 14, rel=1e-5)
    pos1, _ = kcl_masks(labels, k=1)  # k = 1: the twin and one more same-class row (image or target copy)
    assert (pos1.sum(1) == 2).all() and all(bool(pos1[i, (i + 7) % 14]) for i in range(14))


def test_tsc_variant_is_resolved_recorded_and_checked():
    from ltbench.errors import ConfigError
    from ltbench.resolve import resolve

    def hp(**kw):
        return resolve(RunConfig(method="tsc", dataset=kw.pop("dataset", "cifar10_lt"), **kw), TSC).hp

    assert hp()["variant"] == "code_cifar" and hp()["target_repeat"] == 25
    assert hp(dataset="imagenet_lt", preset=("imagenet_lt",))["variant"] == "code_imagenet"
    assert hp(hparams={"variant": "paper"})["variant"] == "paper"
    with pytest.raises(ConfigError):
        hp(hparams={"variant": "code"})
    with pytest.raises(ConfigError):  # the CIFAR release is in-batch: no queue
        tiny_method(TSC, queue_size=8, variant="code_cifar")


def test_tsc_code_cifar_step_uses_fixed_targets_and_no_matching():
    method, model = tiny_method(TSC, kcl_epochs=0, k=2)
    assert method.variant == "code_cifar"
    method.targets, method.centroids = simplex_targets(3, 4), torch.zeros(3, 4)
    loss = method.contrastive_step(model, two_view_batch([0, 1, 2, 0]), epoch=0)["loss"]
    assert torch.isfinite(loss) and method.assignment is None and torch.equal(method.centroids, torch.zeros(3, 4))
    loss.backward()
    assert model.projector.net[0].weight.grad is not None


def test_tsc_state_round_trip():
    method, model = tiny_method(TSC, kcl_epochs=0, variant="paper")  # the matching variants keep an assignment
    method.targets, method.centroids = simplex_targets(3, 4), torch.zeros(3, 4)
    loss = method.contrastive_step(model, two_view_batch([0, 1, 2, 0]), epoch=0)["loss"]
    assert torch.isfinite(loss) and method.assignment is not None
    other, _ = tiny_method(TSC)
    other.load_state_dict(method.state_dict())
    assert torch.equal(other.centroids, method.centroids) and torch.equal(other.assignment, method.assignment)


# ------------------------------------------------------------------------------------------------ SBCL
def test_sbcl_subclass_counts():
    ks = subclass_counts(CIFAR10_LT, 10)  # M = max(n_min = 50, L = 10) = 50
    assert ks == [100, 59, 35, 21, 12, 7, 4, 2, 1, 1]
    ks100 = subclass_counts(class_counts(500, 100, 100), 10)  # M = max(5, 10) = 10
    assert ks100[0] == 50 and ks100[-1] == 1
    assert all(k == max(1, n // 10) for k, n in zip(ks100, class_counts(500, 100, 100)))


def test_per_class_kmeans_finds_the_blobs_and_uses_global_ids():
    g = torch.Generator().manual_seed(0)
    counts, ks = [60, 30, 10], [3, 2, 1]
    centres = simplex_targets(6, 16, g)  # 6 well-separated directions: 3 + 2 + 1 blobs
    blob = torch.cat([torch.arange(k) + sum(ks[:c]) for c, k in enumerate(ks)])
    labels, truth = [], []
    for c, n in enumerate(counts):
        labels += [c] * n
        truth += [int(blob[sum(ks[:c]) + i % ks[c]]) for i in range(n)]
    labels, truth = torch.tensor(labels), torch.tensor(truth)
    z = F.normalize(centres[truth] + 0.1 * torch.randn(len(truth), 16, generator=g), dim=1)
    shuffle = torch.randperm(len(labels), generator=g)
    ids = per_class_kmeans(z[shuffle], labels[shuffle], ks, generator=torch.Generator().manual_seed(1))
    ids, labels, truth = ids[shuffle.argsort()], labels, truth
    for c, k in enumerate(ks):
        got = ids[labels == c]
        assert set(got.tolist()) == set(range(sum(ks[:c]), sum(ks[:c]) + k))  # K_c clusters, global ids
    pairs = {(int(a), int(b)) for a, b in zip(ids, truth)}
    assert len(pairs) == sum(ks)  # each cluster is exactly one blob


def test_class_temperatures_by_hand():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(5).repeat_interleave(torch.tensor([30, 20, 20, 10, 10]))
    spread = torch.tensor([0.05, 0.1, 0.2, 0.4, 0.8])[labels, None]
    z = F.normalize(torch.eye(5, 8)[labels] + spread * torch.randn(90, 8, generator=g), dim=1)
    got = class_temperatures(z, labels, [3, 2, 2, 1, 1], 0.1)
    zn, yn = z.double().numpy(), labels.numpy()
    density = np.array(
        [
            np.linalg.norm(zn[yn == c] - zn[yn == c].mean(0), axis=1).mean() / np.log((yn == c).sum() + 10)
            for c in range(5)
        ]
    )
    density = np.clip(density, *np.percentile(density, [20, 80]))
    want = np.where(np.array([3, 2, 2, 1, 1]) > 1, 0.1 * density / density.mean(), 0.1)
    assert np.allclose(got.numpy(), want, rtol=1e-5)
    assert got[0] < got[1] < got[2]  # compact classes get a lower temperature


def test_sbcl_loss_by_hand():
    z = F.normalize(torch.tensor([[1.0, 0.2], [0.6, 0.8], [-0.7, 0.5], [0.9, 0.4], [0.4, 0.9], [-0.8, 0.2]]), dim=1)
    lab, sub = [0, 0, 1], [0, 1, 2]  # 3 images x 2 views; class 0 has two subclasses
    class_tau, tau, tau_b, gamma = [0.2, 0.3], 0.1, 0.07, 0.25

    def s(i, j, t):
        return math.exp(float(z[i] @ z[j]) / t)

    per = []
    for i in range(6):
        others = [j for j in range(6) if j != i]
        twin = (i + 3) % 6
        p_sub = [j for j in others if sub[j % 3] == sub[i % 3]]
        l_sub = -sum(math.log(s(i, p, tau) / sum(s(i, a, tau) for a in others)) for p in p_sub) / len(p_sub)
        t = class_tau[lab[i % 3]]
        p_cls = [twin] + [j for j in others if lab[j % 3] == lab[i % 3] and sub[j % 3] != sub[i % 3]]
        a_cls = [twin] + [j for j in others if sub[j % 3] != sub[i % 3]]
        l_cls = -sum(math.log(s(i, p, t) / sum(s(i, a, t) for a in a_cls)) for p in p_cls) / len(p_cls)
        per.append(tau / tau_b * l_sub + gamma * l_cls)
    got = sbcl_loss(z, torch.tensor(lab), torch.tensor(sub), torch.tensor(class_tau), tau, tau_b, gamma)
    assert float(got) == pytest.approx(sum(per) / 6, rel=1e-5)


@pytest.mark.parametrize(("scale", "factor"), [("code", 1.0), ("tau_ratio", 0.1 / 0.07)])
def test_sbcl_warmup_scale(scale, factor):
    """Warm-up SupCon at τ = 0.1: ×1 as released (SupConLoss(temperature=0.1) keeps τ_b = 0.1), or ×τ/τ_b."""
    from ltbench.methods.contrastive.sbcl import SBCL

    assert SBCL.hparams["warmup_scale"].default == "code"
    method, model = tiny_method(SBCL, warmup_scale=scale)
    assert method.warmup_factor == pytest.approx(factor)
    batch = two_view_batch([0, 0, 1, 0, 2, 1])
    z = model.embed(torch.cat(batch["x"]))
    lab = batch["y"].repeat(2).tolist()

    def s(i, j):
        return math.exp(float(z[i] @ z[j]) / 0.1)

    per = []  # SupCon by hand: every other view of the same class is a positive; all other views in the denominator
    for i in range(12):
        others = [j for j in range(12) if j != i]
        pos = [j for j in others if lab[j] == lab[i]]
        per.append(-sum(math.log(s(i, p) / sum(s(i, a) for a in others)) for p in pos) / len(pos))
    got = method.contrastive_step(model, batch, epoch=0)["loss"]
    assert float(got) == pytest.approx(factor * sum(per) / 12, rel=1e-5)


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize(
    ("method", "hparams"),
    [
        ("kcl", {}),
        ("kcl", {"queue_size": 64, "momentum": 0.99}),
        ("tsc", {"kcl_epochs": 0}),  # targets active from the first epoch; code_cifar
        ("tsc", {"kcl_epochs": 0, "variant": "paper"}),
        ("tsc", {"kcl_epochs": 0, "variant": "code_imagenet"}),
        ("sbcl", {"supcon_epochs": 0}),  # clustering before the first epoch
        ("sbcl", {"supcon_epochs": 0, "queue_size": 64, "momentum": 0.99}),  # the ImageNet-LT release's queue form
    ],
)
def test_one_epoch_per_stage_end_to_end(method, hparams, tmp_path):
    cfg = RunConfig(
        method=method,
        dataset="synthetic_lt",
        epochs=1,
        eval_every=0,
        device="cpu",
        precision="fp32",
        out=str(tmp_path),
        hparams=hparams,
    )
    rec = execute(cfg, progress=False)  # the trainer raises if the head-only stage moved the backbone
    assert rec["status"] == "done", rec.get("error")
    log = log_entries(cfg.run_dir)
    assert [e["stage_name"] for e in log] == ["contrastive", "classifier"]
    assert all(math.isfinite(e["loss"]) for e in log)
    blob = torch.load(cfg.run_dir / "ckpt.pt", weights_only=False)
    if method == "tsc":  # the variant that ran is in the resolved hparams of config.json; only code_cifar never matches
        variant = hparams.get("variant", "code_cifar")
        assert read_json(cfg.run_dir / "config.json")["resolved"]["hp"]["variant"] == variant
        assert (blob["method"]["assignment"] is None) == (variant == "code_cifar") and "tsc_targets" in rec["extras"]
    if method == "sbcl":
        queued = bool(hparams.get("queue_size"))
        assert rec["extras"]["sbcl_form"] == ("moco_queue" if queued else "in_batch")
        warmup = {"loss": "kcl_queue", "k": 6} if queued else {"scale": "code", "factor": 1.0}
        assert rec["extras"]["sbcl_warmup"] == warmup
        assert blob["method"]["subclasses"].shape == (sum(rec["data"]["class_counts"]),)
        assert log[0]["subclasses"] == sum(subclass_counts(rec["data"]["class_counts"], 10))
    if method == "kcl":  # what ran: the release's top-k with the queue; in-batch always samples
        assert rec["extras"]["kcl_positives"] == ("topk" if hparams.get("queue_size") else "random (in-batch)")
    if hparams.get("queue_size"):
        assert blob["model"]["queue._extra_state"]["filled"] == 64  # pre-filled, then kept full
    if method == "sbcl" and hparams.get("queue_size"):  # every slot now holds a key of this run's subclasses
        assert int(blob["model"]["queue._subclasses"].min()) >= 0


def test_sbcl_queue_form_resumes_exactly_at_its_schedule_restart(tmp_path):
    """Killed at the end of the KCL warm-up (epoch 2 of 4), the queue form resumes to the same metrics as an
    uninterrupted run: the cosine restarts from the full lr at epoch 2 and the optimizer's momentum is cleared
    there (once: a new optimizer, as moco/main.py builds), the queue and its subclass ids come from the checkpoint."""
    from tests.conftest import interrupt_run

    def cfg(out):
        hp = {"supcon_epochs": 2, "queue_size": 64, "momentum": 0.99, "step": 1, "ft_epochs": 1, "warmup_epochs": 0}
        hp |= {"batch_size": 64, "lr": 0.05}
        return RunConfig(
            method="sbcl", dataset="synthetic_lt", epochs=4, eval_every=0, device="cpu", precision="fp32",
            out=str(out), hparams=hp,
        )  # fmt: skip

    empty_steps = []
    step = torch.optim.SGD.step

    def counting_step(self, *a, **k):
        empty_steps.append(len(self.state) == 0)
        return step(self, *a, **k)

    torch.optim.SGD.step = counting_step
    try:
        full = execute(cfg(tmp_path / "full"), progress=False)
    finally:
        torch.optim.SGD.step = step
    assert sum(empty_steps) == 3  # the first step of stage 1, of the restart (epoch 2) and of the classifier stage
    log = log_entries(cfg(tmp_path / "full").run_dir)
    lrs = [e["lr"] for e in log if e["stage_name"] == "contrastive"]
    assert lrs[2] == pytest.approx(lrs[0]) and lrs[1] < lrs[0]
    part = cfg(tmp_path / "part")
    interrupt_run(part, after_epochs=2)
    resumed = execute(part, progress=False)
    assert resumed["metrics"]["per_class"] == full["metrics"]["per_class"]


@pytest.mark.parametrize("name", ["kcl", "tsc", "sbcl"])
def test_imagenet_preset_builds_the_queue_its_loss_reads_and_cifar_none(name):
    """The ImageNet-LT releases (KCL/TSC moco/builder.py, SBCL moco/moco.py) contrast with a 65,536-key queue and a
    momentum encoder, and each loss reads it (kcl_contrast, SBCL's queue_step); the CIFAR defaults build neither."""
    from ltbench.registry import METHODS
    from ltbench.resolve import resolve

    cls = METHODS.get(name)
    info = DataInfo(num_classes=3, class_counts=[6, 4, 2], image_size=4, dataset="toy")
    for dataset, preset, queued in [("imagenet_lt", ("imagenet_lt",), True), ("cifar10_lt", (), False)]:
        hp = resolve(RunConfig(method=name, dataset=dataset, preset=preset), cls).hp
        assert (hp["queue_size"], hp["momentum"]) == ((65536, 0.999) if queued else (0, 0.0))
        model = cls({**hp, "proj_dim": 4, "queue_size": 16 if queued else 0}, info).build_model(
            TinyBackbone(), 3, [6, 4, 2]
        )
        assert (model.queue is not None) == queued and (model.key_encoder is not None) == queued


def test_sbcl_imagenet_preset_is_the_release_schedule():
    """SBCL moco/main.py: 400 epochs, wd 1e-4, --cluster 20, --step 5, τ 0.07, KCL warm-up = first half, then a new
    optimizer and a second cosine to 0; moco/loss.py SupConLoss_rank γ = 0.2, τ_r = 0.12; KCL(k=6)."""
    from ltbench.methods.contrastive.sbcl import SBCL
    from ltbench.resolve import resolve
    from ltbench.train.optim import lr_factor

    hp = resolve(RunConfig(method="sbcl", dataset="imagenet_lt", preset=("imagenet_lt",)), SBCL).hp
    want = {"epochs": 400, "weight_decay": 1e-4, "cluster_size": 20, "step": 5, "temperature": 0.07}
    assert {k: hp[k] for k in want} == want
    assert hp["supcon_epochs"] == 200 and hp["final_lr_factor"] == 0.0 and hp["batch_size"] == 256
    assert (hp["gamma"], hp["rank_temperature"], hp["k"]) == (0.2, 0.12, 6)
    assert subclass_counts([1280, 20, 5], hp["cluster_size"]) == [64, 1, 1]  # M = max(n_min = 5, 20) = 20
    info = DataInfo(num_classes=3, class_counts=[1280, 20, 5], image_size=224, dataset="imagenet_lt")
    pre = SBCL(hp, info).stages()[0]
    assert pre.restarts == (200,) and pre.schedule == "cosine"
    lrs = [pre.lr * lr_factor(pre, e, 0, 10) for e in (0, 100, 199, 200, 300)]
    assert lrs == pytest.approx([0.1, 0.05, 0.1 * 0.5 * (1 + math.cos(math.pi * 199 / 200)), 0.1, 0.05])
    cifar = resolve(RunConfig(method="sbcl", dataset="cifar10_lt"), SBCL).hp
    assert SBCL(cifar, info).stages()[0].restarts == ()  # the CIFAR release (SimCLR/main.py): one cosine


def _release_rank_loss(q, keys, queue, y, qy, sub, qsub, tau, tau_r, gamma):
    """moco/loss.py SupConLoss_rank written out per query: logits [q·k_own, q·queue], mean over queries."""
    total = 0.0
    for i in range(len(y)):
        logits = [float(q[i] @ keys[i])] + [float(q[i] @ u) for u in queue]
        e = [math.exp(v / tau) for v in logits]
        cluster = [1] + [int(s == sub[i]) for s in qsub]
        l_cluster = -sum(c * math.log(v / sum(e)) for c, v in zip(cluster, e)) / sum(cluster)
        inverse = [1] + [int(s != sub[i]) for s in qsub]
        label = [1] + [int(c == y[i] and s != sub[i]) for c, s in zip(qy, qsub)]
        er = [math.exp(v / tau_r) for v in logits]
        denom = sum(w * v for w, v in zip(inverse, er))
        l_label = -sum(m * (v / tau_r - math.log(denom)) for m, v in zip(label, logits)) / sum(label)
        total += l_cluster + gamma * l_label
    return total / len(y)


def test_sbcl_queue_loss_by_hand():
    """SBCL's ImageNet-LT loss against the release's formula evaluated by hand: own key always a positive of both
    terms; queue entries of the query's subclass are the subclass term's positives and leave the class term's
    denominator; entries of subclass −1 (enqueued before clustering) are plain negatives."""
    from ltbench.losses.contrastive import sbcl_queue_loss, sbcl_queue_masks

    g = torch.Generator().manual_seed(3)
    q, keys, queue = (F.normalize(torch.randn(n, 4, generator=g), dim=1) for n in (3, 3, 6))
    y, sub = [0, 0, 1], [0, 1, 2]
    qy, qsub = [0, 0, 1, 0, 1, -1], [0, 1, 2, 0, -1, -1]
    want = _release_rank_loss(q, keys, queue, y, qy, sub, qsub, 0.07, 0.12, 0.2)
    masks = sbcl_queue_masks(torch.tensor(y), torch.tensor(sub), torch.tensor(qy), torch.tensor(qsub))
    got = sbcl_queue_loss(q, torch.cat([keys, queue]), masks, 0.07, 0.12, 0.2)
    assert float(got) == pytest.approx(want, rel=1e-5)
    pos_s, den_s, pos_c, den_c = masks
    assert pos_s[0].tolist() == [True, False, False, True, False, False, True, False, False]  # own key + queue 0, 3
    assert den_c[0].tolist() == [True, False, False, False, True, True, False, True, True]  # not subclass 0


def test_sbcl_queue_form_warms_up_with_kcl_then_contrasts_subclasses():
    """The queue form (moco/main.py): the queue starts as random keys of class/subclass −1; before the first
    clustering a step is KCL with k random queue positives and enqueues subclass −1; afterwards SBCL's queue loss,
    enqueuing each key's current subclass; the in-batch form builds no queue."""
    from ltbench.methods.contrastive.sbcl import SBCL

    method, model = tiny_method(SBCL, queue_size=8, momentum=0.9, k=2, supcon_epochs=1)
    assert method.queue_form and model.queue.subclasses.numel() == 0

    class Ctx:
        generator, device = torch.Generator().manual_seed(0), torch.device("cpu")

        def record(self, *a, **k):
            pass

    method.on_stage_start(method.stages()[0], model, Ctx())
    assert model.queue.filled == 8 and set(model.queue.labels.tolist()) == {-1}
    assert set(model.queue.subclasses.tolist()) == {-1}
    batch = two_view_batch([0, 1, 0, 2])
    loss = method.contrastive_step(model, batch, epoch=0)["loss"]
    loss.backward()
    assert model.queue.labels[:4].tolist() == [0, 1, 0, 2] and model.queue.subclasses[:4].tolist() == [-1] * 4
    method.subclasses = torch.tensor([5, 7, 6, 9])  # as after a clustering
    method.contrastive_step(model, two_view_batch([0, 1, 0, 2], seed=1), epoch=1)["loss"].backward()
    assert model.queue.subclasses[4:].tolist() == [5, 7, 6, 9]
    plain, plain_model = tiny_method(SBCL)
    assert not plain.queue_form and plain_model.queue is None


def test_contrastive_model_is_a_classifier():
    _, model = tiny_method(KCL)
    assert isinstance(model, ContrastiveModel) and model.queue is None and model.key_encoder is None
    model.eval()
    assert model(torch.randn(2, 3, 4, 4)).shape == (2, 3)  # cosine head on the backbone features


# ------------------------------------------------------------------------------------------------ stage 2 schedule
def _classifier_lr(name: str, epochs: list[int], **cfg) -> list[float]:
    """lr of the resolved classifier stage at the start of each 0-based epoch (trainer's lr_factor)."""
    from ltbench.registry import METHODS
    from ltbench.resolve import resolve
    from ltbench.train.optim import lr_factor

    cls = METHODS.get(name)
    hp = resolve(RunConfig(method=name, dataset=cfg.pop("dataset", "cifar10_lt"), **cfg), cls).hp
    info = DataInfo(num_classes=10, class_counts=CIFAR10_LT, image_size=32, dataset="cifar10_lt")
    stage = cls(hp, info).stages()[1]
    assert stage.name == "classifier"
    return [stage.lr * lr_factor(stage, e, 0, 10) for e in epochs]


@pytest.mark.parametrize("name", ["kcl", "tsc"])
def test_kcl_tsc_classifier_schedule_is_the_tsc_supplementary_by_default(name):
    """TSC supp. Appendix A: lr 0.1, ×0.1 at epochs 140, 180 and 190, no warm-up stated (the KCL/TSC CIFAR runs);
    --set ft_schedule=sbcl_code: SBCL's code, 5-epoch warm-up (lr·e/5), ×0.1 at 140, ×0.01 at 180 (§6.3)."""
    epochs = [0, 4, 139, 140, 179, 180, 189, 190, 199]
    supp = _classifier_lr(name, epochs)
    assert supp == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4])
    sbcl = _classifier_lr(name, epochs, hparams={"ft_schedule": "sbcl_code"})
    assert sbcl == pytest.approx([0.02, 0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-3, 1e-3])
    # --preset quick scales the drops with the 20-epoch stage: 14, 18, 19
    quick = _classifier_lr(name, [13, 14, 17, 18, 19], preset=("quick",))
    assert quick == pytest.approx([0.1, 0.01, 0.01, 1e-3, 1e-4])
    # ImageNet-LT (TSC supp.): lr 10, ×0.1 at 20 and 30, no third drop
    imnet = _classifier_lr(name, [0, 19, 20, 29, 30, 39], dataset="imagenet_lt", preset=("imagenet_lt",))
    assert imnet == pytest.approx([10, 10, 1, 1, 0.1, 0.1])


def test_sbcl_classifier_schedule_stays_its_code():
    assert _classifier_lr("sbcl", [0, 4, 140, 180, 199]) == pytest.approx([0.02, 0.1, 0.01, 1e-3, 1e-3])
    tsc_supp = _classifier_lr("sbcl", [0, 190], hparams={"ft_schedule": "tsc_supp"})
    assert tsc_supp == pytest.approx([0.1, 1e-4])


def test_runs_recorded_before_the_schedule_choice_rebuild_with_the_sbcl_schedule():
    """config.json of an older run has no ft_schedule / ft_drop_3 / variant: it ran SBCL's schedule (and TSC the
    paper's formula); ltbench.restore rebuilds such runs from those hparams."""
    from ltbench.methods.contrastive.common import classifier_schedule

    old = {k: v.default for k, v in TSC.hparams.items() if k not in ("ft_schedule", "ft_drop_3", "variant")}
    assert classifier_schedule(old) == (5, ((140, 0.1), (180, 0.01)))
    info = DataInfo(num_classes=3, class_counts=[6, 4, 2], image_size=4, dataset="toy")
    assert TSC(old, info).variant == "paper"
