"""BNS + IP-DPP as a method (docs/methods.md §9): stages, subsets, records, variants, presets and resume.

The loss and the sampler have their own tests (test_losses.py, test_dpp.py); these check the method's
wiring on the synthetic dataset: what is drawn, when, what is recorded, and that a resumed run draws
and trains exactly as an uninterrupted one.
"""

from __future__ import annotations

import pytest
import torch

import ltbench.methods.bns_ipdpp as bns_ipdpp_module
from ltbench.config import RunConfig
from ltbench.dpp import sample_per_class
from ltbench.errors import ConfigError
from ltbench.methods.bns_ipdpp import BNSIPDPP
from ltbench.records import log_entries, run_state
from ltbench.registry import METHODS
from ltbench.resolve import resolve
from ltbench.run import execute
from tests.conftest import interrupt_run, tiny_config

# small but complete: 2 BNS epochs, head warm-up, 4 IP-DPP epochs with a redraw every 2
HP = {"batch_size": 64, "ft_batch_size": 32, "ft_epochs": 4, "refresh_every": 2, "k": 12}


def _cfg(out, **hp):
    return tiny_config(out, method="bns_ipdpp", epochs=None, hparams={**HP, "epochs": 2, **hp})


def _log(cfg) -> list[dict]:
    return log_entries(cfg.run_dir)


def test_stages_and_subset_records(out_dir):
    cfg = _cfg(out_dir)
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done"
    counts = rec["data"]["class_counts"]
    stages = [(e["stage_name"], e["epoch"]) for e in _log(cfg)]
    assert stages == [("bns", 0), ("bns", 1), ("head_warmup", 0)] + [("ipdpp", e) for e in range(4)]
    extras = rec["extras"]
    assert extras["ipdpp"] == {
        "mode": "exact",
        "k": 12,
        "refresh_every": 2,
        "loss_variant": "paper",
        "finetune": "full",
        "head_init": "warm",
    }
    draws = extras["dpp_subsets"]
    assert [d["epoch"] for d in draws] == [0, 2]  # every F epochs, never at the last epoch
    expected = {str(c): min(n, 12) for c, n in enumerate(counts)}
    assert all({str(k): v for k, v in d["sizes"].items()} == expected for d in draws)
    # the recorded draws are the ones the log shows at the redraw epochs (mean_p of that moment, not a stale one)
    assert [d["mean_p"] for d in draws] == [e["mean_p"] for e in _log(cfg) if "mean_p" in e]
    assert sum(expected.values()) == next(e["subset_size"] for e in _log(cfg) if "subset_size" in e)


def test_default_k_is_a_tenth_of_the_largest_class():
    from ltbench.method import DataInfo

    cls = METHODS.get("bns_ipdpp")
    hp = resolve(RunConfig(method="bns_ipdpp", dataset="cifar10_lt"), cls).hp
    method = cls(hp, DataInfo(10, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], 32, "cifar10_lt"))
    assert method.k == 500  # §9.3 item 11: k = n_max / 10
    method100 = cls(hp, DataInfo(100, [500] + [5] * 99, 32, "cifar100_lt"))
    assert method100.k == 50


def test_frozen_variant_keeps_the_backbone(out_dir, monkeypatch):
    """finetune=frozen trains the head only: the backbone (weights and BN statistics) at the end of the run is
    exactly the one the IP-DPP stage started from."""
    snapshot = {}
    original = BNSIPDPP.on_stage_start

    def spy(self, stage, model, ctx):
        if stage.name == "ipdpp":
            snapshot.update({k: v.clone() for k, v in model.backbone.state_dict().items()})
        original(self, stage, model, ctx)

    monkeypatch.setattr(BNSIPDPP, "on_stage_start", spy)
    cfg = _cfg(out_dir, finetune="frozen")
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done" and rec["extras"]["ipdpp"]["finetune"] == "frozen" and snapshot
    final = torch.load(cfg.run_dir / "ckpt.pt", weights_only=False)["model"]
    backbone = {k.removeprefix("backbone."): v for k, v in final.items() if k.startswith("backbone.")}
    assert backbone.keys() == snapshot.keys()
    assert all(torch.equal(v, snapshot[k]) for k, v in backbone.items())


@pytest.mark.parametrize("mode", ["exact", "eig", "paper", "code"])
def test_every_sampler_mode_runs(out_dir, mode, monkeypatch):
    """The mode reaches the sampler: the head warm-up draws uniformly ("code"), each IP-DPP draw in ``mode``."""
    modes = []

    def spy(*args, mode="exact", **kwargs):
        modes.append(mode)
        return sample_per_class(*args, mode=mode, **kwargs)

    monkeypatch.setattr(bns_ipdpp_module, "sample_per_class", spy)
    cfg = _cfg(out_dir, sampler_mode=mode, epochs=1, ft_epochs=1)
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done" and rec["extras"]["ipdpp"]["mode"] == mode
    assert modes == ["code", mode]


def test_code_variant_and_random_head_skip_the_warmup(out_dir):
    cfg = _cfg(out_dir, loss_variant="code", head_init="random", epochs=1, ft_epochs=1)
    rec = execute(cfg, progress=False)
    assert [e["stage_name"] for e in _log(cfg)] == ["bns", "ipdpp"]
    assert rec["extras"]["ipdpp"]["loss_variant"] == "code"


def test_presets_released_and_resnet32():
    cls = METHODS.get("bns_ipdpp")
    rel10 = resolve(RunConfig(method="bns_ipdpp", dataset="cifar10_lt", preset=("released",)), cls)
    assert rel10.backbone == "resnet18_cifar" and rel10.shots == (500, 200)
    assert rel10.hp["batch_size"] == 1024 and rel10.hp["loss_variant"] == "code"
    rel100 = resolve(RunConfig(method="bns_ipdpp", dataset="cifar100_lt", preset=("released",)), cls)
    assert rel100.backbone == "resnet34_cifar" and rel100.shots == (100, 20)
    assert rel100.hp["refresh_every"] == 20
    assert rel10.hp["sampler_mode"] == rel100.hp["sampler_mode"] == "released_fixed"
    quick = resolve(RunConfig(method="bns_ipdpp", dataset="cifar10_lt", preset=("resnet32", "quick")), cls)
    assert quick.backbone == "resnet32"
    # each stage scaled on its own: 1000 -> 20 pre-training epochs, 100 -> 20 fine-tuning epochs (F 10 -> 2)
    assert quick.hp["epochs"] == 20 and quick.hp["warmup_epochs"] == 1
    assert quick.hp["ft_epochs"] == 20 and quick.hp["ft_warmup_epochs"] == 1 and quick.hp["refresh_every"] == 2


def test_resume_mid_ipdpp_gives_identical_metrics(out_dir, tmp_path):
    """An interruption inside stage 2 (after a draw, before the next) resumes with the same subset."""
    full = execute(_cfg(out_dir), progress=False)
    cfg = _cfg(tmp_path / "other")
    interrupt_run(cfg, after_epochs=4)  # bns 0, bns 1, head_warmup 0, ipdpp 0 done -> stop in ipdpp epoch 1
    assert run_state(cfg.run_dir) == "incomplete"
    resumed = execute(cfg, progress=False)
    assert resumed["metrics"]["per_class"] == full["metrics"]["per_class"]
    assert resumed["extras"]["dpp_subsets"] == full["extras"]["dpp_subsets"]


def test_bns_stage_uses_two_views_and_no_classifier_loss():
    """Stage 1 sees two views and only the projector's embeddings enter the loss (head gets no gradient)."""
    from ltbench.method import DataInfo
    from ltbench.models.backbones import build_backbone

    cls = METHODS.get("bns_ipdpp")
    hp = resolve(RunConfig(method="bns_ipdpp", dataset="synthetic_lt"), cls).hp
    method = cls(hp, DataInfo(3, [8, 4, 2], 16, "synthetic_lt"))
    pre = method.stages()[0]
    assert pre.views == 2 and pre.transform == "simclr_bns2" and not pre.evaluate and pre.optimizer == "adamw"
    torch.manual_seed(0)
    model = method.build_model(build_backbone("resnet32", 16), 3, [8, 4, 2])
    x = torch.randn(6, 3, 16, 16)
    out = method.training_step(model, {"x": (x, x.flip(3)), "y": torch.tensor([0, 0, 1, 1, 2, 0])}, pre, 0)
    out["loss"].backward()
    assert float(out["loss"]) > 0  # a mean of -log sigmoid terms (NaN fails this too)
    assert model.head.weight.grad is None and model.projector.net[0].weight.grad is not None


def test_the_old_preset_name_paper_is_gone():
    """`paper` named the release's recipe; it is `released` now, and no committed spec or result used the old name."""
    cls = METHODS.get("bns_ipdpp")
    assert "paper" not in cls.presets and "released" in cls.presets
    with pytest.raises(ConfigError, match="unknown preset 'paper'.*released"):
        resolve(RunConfig(method="bns_ipdpp", dataset="cifar10_lt", preset=("paper",)), cls)


# ---------------------------------------------------------------- the release's subset: one fixed uniform draw
LABELS = torch.tensor([0] * 6 + [1] * 4 + [2] * 2)


def test_released_fixed_is_the_uniform_draw_of_a_seed_42_generator_in_reverse_class_order():
    """By hand: a generator seeded with 42, classes visited 2, 1, 0 (the release's reversed loop), each class with
    more than k images reduced to the first k of a uniform permutation; class 2 (2 ≤ k) kept whole."""
    k = 3
    g = torch.Generator().manual_seed(42)
    want_1 = 6 + torch.randperm(4, generator=g)[:k]  # class 1 first: it is drawn before class 0
    want_0 = torch.randperm(6, generator=g)[:k]
    expected = sorted([10, 11, *want_1.tolist(), *want_0.tolist()])
    idx, sizes = sample_per_class(torch.full((12,), 0.5), LABELS, k, mode="released_fixed")
    assert idx.tolist() == expected and sizes == {0: 3, 1: 3, 2: 2}


def test_released_fixed_ignores_p_and_the_generator():
    """Not kernel-dependent: opposite p (which reverse the k-DPP's preferences) and other generators, same subset."""
    low = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.5], dtype=torch.float64)
    a, _ = sample_per_class(low, LABELS, 3, generator=torch.Generator().manual_seed(1), mode="released_fixed")
    b, _ = sample_per_class(1 - low, LABELS, 3, generator=torch.Generator().manual_seed(2), mode="released_fixed")
    c, _ = sample_per_class(low, LABELS, 3, mode="released_fixed")  # unseeded: still the same
    assert torch.equal(a, b) and torch.equal(a, c)


def test_released_fixed_is_uniform_over_seeds(monkeypatch):
    """The fixed subset is one uniform draw: with the seed varied, the rule hits every 2-subset of 4 equally often."""
    import itertools

    import ltbench.dpp

    counts = dict.fromkeys(itertools.combinations(range(4), 2), 0)
    for seed in range(3000):
        monkeypatch.setattr(ltbench.dpp, "RELEASED_SEED", seed)
        y, _ = sample_per_class(torch.tensor([0.1, 0.9, 0.5, 1.0]), torch.zeros(4), 2, mode="released_fixed")
        counts[tuple(y.tolist())] += 1
    assert all(abs(c / 3000 - 1 / 6) < 0.03 for c in counts.values())  # 1/6 ± 0.03 is > 4 standard errors


@pytest.mark.parametrize("mode", ["released_fixed", "code"])
def test_two_refreshes_same_subset_only_in_released_fixed(out_dir, mode, monkeypatch):
    """released_fixed: every refresh returns the same subset (as the release); code: a fresh uniform one."""
    drawn = []

    def spy(*args, **kwargs):
        idx, sizes = sample_per_class(*args, **kwargs)
        drawn.append(idx)
        return idx, sizes

    monkeypatch.setattr(bns_ipdpp_module, "sample_per_class", spy)
    cfg = _cfg(out_dir, sampler_mode=mode, epochs=1)
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done" and rec["extras"]["ipdpp"]["mode"] == mode
    assert ("fixed_seed" in rec["extras"]["ipdpp"]) == (mode == "released_fixed")
    refreshes = drawn[1:]  # the first draw is the head warm-up's random balanced subset
    assert len(refreshes) == 2  # epochs 0 and 2 of 4
    assert torch.equal(refreshes[0], refreshes[1]) == (mode == "released_fixed")
