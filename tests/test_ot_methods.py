"""OTmix, DisA and BBN (docs/methods.md §14-16): the hand-derivable checks of §14.7, §15.6 and §16.8, the lock-step
second sampler they run on, and exact resumption of a run interrupted mid-epoch while mixing."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ltbench.config import RunConfig
from ltbench.data.loader import DeviceBatches, class_probabilities, epoch_order
from ltbench.data.transforms import get_transform
from ltbench.errors import ConfigError
from ltbench.method import DataInfo, Stage
from ltbench.methods.bbn import BBN, cumulative_alpha
from ltbench.methods.disa import DisA, disa_loss, simplex_etf
from ltbench.methods.mixing import rand_box
from ltbench.methods.otmix import OTmix, otmix_cost, row_normalised_confusion
from ltbench.models import timm_backbones
from ltbench.models.backbones import build_backbone
from ltbench.ot import disa_sinkhorn, sinkhorn_plan, sinkhorn_pot
from ltbench.resolve import resolve
from ltbench.run import execute
from ltbench.train.optim import lr_factor
from tests.conftest import wait_until
from tests.test_reliability import _env


def _full_hp(method_cls, dataset="cifar10_lt", **hparams) -> dict:
    cfg = RunConfig(method=method_cls.name, dataset=dataset, hparams=hparams)
    return resolve(cfg, method_cls).hp


def _info(counts, dataset="cifar10_lt") -> DataInfo:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return DataInfo(len(counts), list(counts), 32, dataset, labels)


def _lrs(stage: Stage, one_based_epochs) -> list[float]:
    return [stage.lr * lr_factor(stage, e - 1, 0, 10) for e in one_based_epochs]


# ---------------------------------------------------------------------------------------------- OTmix §14.7
def test_sinkhorn_plan_two_by_two_examples():
    plan, _ = sinkhorn_plan(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), eps=0.01)
    assert plan[0, 0].item() == pytest.approx(0.5) and plan[1, 1].item() == pytest.approx(0.5)
    assert plan[0, 1].item() == pytest.approx(0.5 * math.exp(-100) / (1 + math.exp(-100)), rel=1e-6)  # 1.9e-44
    plan, _ = sinkhorn_plan(torch.tensor([[0.0, 0.5], [0.0, 1.0]]), eps=0.01)
    assert plan.flatten().tolist() == pytest.approx([2.4988e-4, 0.49975, 0.5, 1.9287e-19], rel=1e-3)
    assert plan.argmax(1).tolist() == [1, 0]  # OT swaps; a greedy row argmin would send both rows to column 0


@pytest.mark.filterwarnings("ignore:Sinkhorn did not converge")  # the second 2x2 example needs > 1000 iterations
@pytest.mark.parametrize("seed", [0, 1])
def test_sinkhorn_plan_agrees_with_pot(seed):
    pytest.importorskip("ot")
    cost = torch.rand(128, 128, generator=torch.Generator().manual_seed(seed))
    ours, _ = sinkhorn_plan(cost, eps=0.01)
    pot = sinkhorn_pot(cost, eps=0.01)
    assert (ours - pot).abs().max().item() < 1e-9
    assert torch.equal(ours.argmax(1), pot.argmax(1))
    for example in ([[0.0, 1.0], [1.0, 0.0]], [[0.0, 0.5], [0.0, 1.0]]):
        ours, _ = sinkhorn_plan(torch.tensor(example), eps=0.01)
        assert torch.allclose(ours, sinkhorn_pot(torch.tensor(example)), rtol=1e-6, atol=1e-30)


def test_the_log_domain_path_reaches_the_same_plan():
    """Costs whose kernel exp(−M/ε) would underflow take the log-potential iteration: the same fixed point."""
    from ltbench.ot import _sinkhorn_log

    cost = torch.rand(64, 64, generator=torch.Generator().manual_seed(3)).double()
    kernel_plan, _ = sinkhorn_plan(cost, eps=0.01)
    log_plan, _ = _sinkhorn_log(cost, 0.01, 1000, 1e-9)
    assert (kernel_plan - log_plan).abs().max().item() < 1e-12
    big, iters = sinkhorn_plan(cost * 100, eps=0.01)  # max M / ε ≈ 10,000: log path, still a coupling
    assert torch.isfinite(big).all() and iters > 0
    assert torch.allclose(big.sum(dim=1), torch.full((64,), 1 / 64, dtype=torch.float64), atol=1e-9)


def test_ot_bench_table():
    from ltbench.bench.ot import run_ot_bench

    pytest.importorskip("ot")
    df = run_ot_bench(sizes=(16,), repeats=1)
    assert list(df["B"]) == [16] and df["same_pairs"].all() and (df["max_abs_diff"] < 1e-9).all()
    assert (df["torch_ms"] > 0).all() and (df["pot_ms"] > 0).all()


def test_otmix_cost_by_hand():
    cf = row_normalised_confusion(torch.tensor([[8.0, 2.0], [5.0, 5.0]]))
    assert cf.flatten().tolist() == pytest.approx([0.0, 0.2, 0.5, 0.0])
    fg, bg = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]])  # cos = 0.6
    assert otmix_cost(fg, bg, cf[torch.tensor([1])][:, torch.tensor([0])], 0.05).item() == pytest.approx(0.495)
    same = otmix_cost(fg, fg, cf[torch.tensor([1])][:, torch.tensor([1])], 0.05)  # same class, cos = 1
    assert same.item() == pytest.approx(0.95)
    assert row_normalised_confusion(torch.zeros(2, 2)).tolist() == [[0.0, 0.0], [0.0, 0.0]]  # empty rows stay zero


def test_box_by_hand():
    assert rand_box(32, 32, 0.75, 16, 16) == (8, 24, 8, 24, 0.75)
    assert rand_box(32, 32, 0.75, 0, 0) == (0, 8, 0, 8, 0.9375)


def test_class_drawing_samplers_by_hand():
    counts = torch.tensor([4, 1])
    assert class_probabilities(counts, 0.0).tolist() == pytest.approx([0.5, 0.5])  # weighted_alpha a = 1
    assert class_probabilities(counts, 1.0).tolist() == pytest.approx([0.8, 0.2])  # a = 0: instance frequencies
    assert class_probabilities(counts, -1.0).tolist() == pytest.approx([0.2, 0.8])  # BBN per-sample 1/n_y²
    p = class_probabilities(torch.tensor([100, 10, 1]), -1.0)
    assert p.tolist() == pytest.approx([1 / 111, 10 / 111, 100 / 111])  # [0.0090, 0.0901, 0.9009]
    labels = torch.tensor([0] * 100 + [1] * 10 + [2])
    order = epoch_order("reversed", labels, 3, torch.Generator().manual_seed(0), length=200_000)
    freq = torch.bincount(labels[order], minlength=3).double() / len(order)
    assert freq.tolist() == pytest.approx(p.tolist(), abs=0.005)


def test_otmix_schedules_by_hand():
    hp = _full_hp(OTmix)
    method = OTmix(hp, _info([50, 5]))
    assert method.ot_probability(0) == 0 and method.ot_probability(120) == 0.5
    mixing = [e for e in range(240) if method.mixing_epoch(e)]
    assert mixing[0] == 4 and mixing[-1] == 236 and len(mixing) == 233
    [stage] = method.stages()
    assert _lrs(stage, [100, 101, 161, 201]) == pytest.approx([0.1, 0.01, 1e-3, 1e-5])
    assert stage.pair_sampler == "class_balanced"


def test_otmix_base_loss_per_dataset_and_the_test_leak_only_in_the_code_variant():
    assert _full_hp(OTmix)["base_loss"] == "ce_drw"
    assert _full_hp(OTmix, "cifar100_lt")["base_loss"] == "balanced_softmax"
    with pytest.raises(ConfigError, match="variant=code"):
        OTmix(_full_hp(OTmix, conf_source="test"), _info([50, 5]))
    assert OTmix(_full_hp(OTmix, variant="code"), _info([50, 5])).conf_source == "test"


# ---------------------------------------------------------------------------------------------- DisA §15.6
def test_simplex_etf_by_hand():
    m = simplex_etf(6, 4, torch.Generator().manual_seed(0)).double()
    gram = m.T @ m
    expected = torch.full((4, 4), -1 / 3, dtype=torch.float64).fill_diagonal_(1.0)
    assert torch.allclose(gram, expected, atol=1e-6)
    assert torch.allclose(m.sum(dim=1), torch.zeros(6, dtype=torch.float64), atol=1e-6)
    with pytest.raises(ConfigError, match="feature dimension >= 4"):
        simplex_etf(3, 4)


def test_disa_sinkhorn_by_hand():
    plan, _ = disa_sinkhorn(torch.ones(3, 4))
    assert plan.flatten().tolist() == pytest.approx([1 / 12] * 12, abs=1e-6)
    assert (plan * torch.ones(3, 4)).sum().item() == pytest.approx(1.0, abs=1e-6)
    g = torch.tensor([[0.0, 2.0], [2.0, 0.0]])
    plan, iters = disa_sinkhorn(g)
    assert plan.flatten().tolist() == pytest.approx([0.44040, 0.05960, 0.05960, 0.44040], abs=1e-5)
    assert (plan * g).sum().item() == pytest.approx(2 / (1 + math.e**2), abs=1e-6) and iters <= 2


def test_disa_loss_of_one_image_is_one_with_zero_gradient():
    etf = simplex_etf(6, 4, torch.Generator().manual_seed(1))
    h = F.normalize(torch.randn(1, 6), dim=1).requires_grad_(True)
    loss = disa_loss(h, etf)
    loss.backward()
    assert loss.item() == pytest.approx(1.0, abs=1e-6)
    assert h.grad.abs().max().item() < 1e-6


@pytest.mark.parametrize("variant, frozen", [("code", True), ("learned_head", False)])
def test_disa_code_variant_keeps_the_classifier_at_its_initialisation(tmp_path, monkeypatch, variant, frozen):
    built = {}
    build = DisA.build_model

    def capture(self, *a, **k):
        model = build(self, *a, **k)
        built.update(model=model, head=model.head.weight.detach().clone(), conv=model.backbone.stem[0].weight.clone())
        return model

    monkeypatch.setattr(DisA, "build_model", capture)
    cfg = RunConfig(method="disa", dataset="synthetic_lt", out=str(tmp_path), epochs=1, eval_every=0,
                    precision="fp32", device="cpu", hparams={"variant": variant, "batch_size": 100})  # fmt: skip
    assert execute(cfg, progress=False)["status"] == "done"
    model = built["model"]
    assert torch.equal(model.head.weight, built["head"]) is frozen
    assert not torch.equal(model.backbone.stem[0].weight, built["conv"])  # the backbone learns in both


def test_disa_defaults_to_the_wide_resnet_on_cifar100_and_says_why_resnet32_cannot_work():
    cfg = RunConfig(method="disa", dataset="cifar100_lt")
    assert resolve(cfg, DisA).backbone == "resnet32_w2"
    assert resolve(RunConfig(method="disa", dataset="cifar10_lt"), DisA).backbone == "resnet32"
    backbone = build_backbone("resnet32_w2", 32)
    assert backbone.feature_dim == 128 and sum(p.numel() for p in backbone.parameters()) == 1_848_608
    method = DisA(_full_hp(DisA, "cifar100_lt"), _info([5] * 100, "cifar100_lt"))
    with pytest.raises(ConfigError, match="resnet32_w2"):
        method.build_model(build_backbone("resnet32", 32), 100, [5] * 100)


# ---------------------------------------------------------------------------------------------- BBN §16.8
def test_bbn_alpha_by_hand():
    assert cumulative_alpha(0, 200) == 1.0
    assert cumulative_alpha(100, 200) == pytest.approx(0.75)
    assert cumulative_alpha(199, 200) == pytest.approx(0.009975)
    assert cumulative_alpha(179, 180) == pytest.approx(0.198975)  # D = 200 for a 180-epoch run


def test_bbn_mixed_loss_by_hand():
    """d = 1 per branch, C = 2, FC = I, bias 0, f_c = 1, f_r = 2, α = 0.75: z = [1.5, 1.0], L = 0.599077."""
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    alpha, f_c, f_r = 0.75, torch.tensor([[1.0]]), torch.tensor([[2.0]])
    z = head(2 * torch.cat([alpha * f_c, (1 - alpha) * f_r], dim=1))
    assert z.flatten().tolist() == pytest.approx([1.5, 1.0])
    ce0, ce1 = F.cross_entropy(z, torch.tensor([0])), F.cross_entropy(z, torch.tensor([1]))
    assert (ce0.item(), ce1.item()) == pytest.approx((0.474077, 0.974077), abs=1e-6)
    assert (alpha * ce0 + (1 - alpha) * ce1).item() == pytest.approx(0.599077, abs=1e-6)


BBN_BACKBONES = {
    "resnet32": lambda: build_backbone("resnet32", 32),
    "timm_resnet": lambda: timm_backbones.resnet50(32, layers=(1, 1, 1, 2)),
    "timm_vit": lambda: timm_backbones.vit("vit_tiny_patch16_224", 32, depth=2, embed_dim=32, num_heads=2),
    "timm_swin": lambda: timm_backbones.swin(
        "swin_tiny_patch4_window7_224", 32, depths=(1, 1, 1, 1), embed_dim=16, num_heads=(1, 1, 1, 1)
    ),
}


@pytest.mark.parametrize("backbone", sorted(BBN_BACKBONES))
def test_bbn_inference_is_the_training_formula_at_one_half(backbone):
    torch.manual_seed(0)
    method = BBN(_full_hp(BBN), _info([50, 5]))
    model = method.build_model(BBN_BACKBONES[backbone](), 2, [50, 5]).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        f_c, f_r = model.backbone.branch(x, "cb"), model.backbone.branch(x, "rb")
        train_form = model.head(2 * torch.cat([0.5 * f_c, 0.5 * f_r], dim=1))
        assert torch.equal(model(x), train_form)
    pairs = list(zip(model.backbone.cb_block.parameters(), model.backbone.rb_block.parameters()))
    assert all(a.shape == b.shape for a, b in pairs)
    assert any(not torch.equal(a, b) for a, b in pairs)  # two separately initialised last blocks
    # (timm ResNet blocks start with their last BatchNorm at zero, so there f_c = f_r at initialisation)
    assert model.head.in_features == 2 * model.backbone.branch_dim
    if backbone == "resnet32":  # the release's split: 4 shared blocks of stage 3, separately initialised branches
        assert not torch.equal(model.backbone.cb_block.conv1.weight, model.backbone.rb_block.conv1.weight)
        assert len(model.backbone.trunk.stages[-1]) == 4 and model.head.in_features == 128


def test_bbn_learning_rate_by_hand():
    [stage] = BBN(_full_hp(BBN), _info([50, 5])).stages()
    assert _lrs(stage, [1, 5, 119, 120, 160]) == pytest.approx([0.046667, 0.1, 0.1, 1e-3, 1e-5], rel=1e-4)
    assert stage.nesterov and stage.drop_last and stage.pair_sampler == "reversed"


def test_bbn_refuses_a_backbone_it_cannot_split():
    method = BBN(_full_hp(BBN), _info([50, 5]))
    with pytest.raises(ConfigError, match="supported: resnet32"):
        method.build_model(torch.nn.Linear(3, 3), 2, [50, 5])


# ---------------------------------------------------------------------------------------------- the paired batch
def test_paired_batches_move_in_lock_step():
    from ltbench.data.base import DataSpec
    from ltbench.data.datasets import synthetic_lt

    data = synthetic_lt(DataSpec())
    gen = torch.Generator().manual_seed(0)
    order = epoch_order("instance", data.train_y, data.num_classes, gen)
    pair = epoch_order("reversed", data.train_y, data.num_classes, gen, length=len(order))
    batches = DeviceBatches(data, data.train_x, data.train_y, order, 32, get_transform("standard"), gen,
                            drop_last=True, pair_order=pair)  # fmt: skip
    seen = list(batches)
    assert len(seen) == len(order) // 32
    for b, batch in enumerate(seen):
        assert batch["pair"]["x"].shape == batch["x"].shape
        assert torch.equal(batch["pair"]["index"], pair[b * 32 : (b + 1) * 32])
        assert torch.equal(batch["pair"]["y"], data.train_y[batch["pair"]["index"]])
    resumed = list(batches.iterate(3))
    assert [torch.equal(a["pair"]["index"], b["pair"]["index"]) for a, b in zip(resumed, seen[3:])] == [True] * len(
        resumed
    )


def test_stage_rejects_an_unknown_pair_sampler():
    with pytest.raises(ConfigError, match="pair_sampler"):
        Stage(name="s", epochs=1, lr=0.1, batch_size=8, pair_sampler="subset")


# ---------------------------------------------------------------------------------------------- resume, mid-epoch
PAIRED = {
    "otmix": ["--set", "mix_after=0", "--set", "mix_before_end=0", "--set", "ot_power=0.0", "--set", "mix_prob=0.7"],
    "bbn": [],
    "disa": [],
}


@pytest.mark.parametrize("method", sorted(PAIRED))
def test_sigterm_mid_epoch_while_mixing_then_resume_is_exact(tmp_path, method):
    """Interrupted after step 2 of epoch 1 (an OT-mixing epoch for OTmix): the resumed run rebuilds the lock-step
    pair order and replays the epoch's pre-drawn mixing numbers from the step it stopped at."""
    args = ["--method", method, "--dataset", "synthetic_lt", "--epochs", "3", "--batch-size", "32", "--threads", "1"]
    args += ["--precision", "fp32", "--device", "cpu", "--deterministic", "--eval-every", "0", "--quiet"]
    args += PAIRED[method]
    cmd = [sys.executable, "-m", "ltbench", "run", *args]
    ref = subprocess.run([*cmd, "--out", str(tmp_path / "ref")], capture_output=True, text=True, env=_env())
    assert ref.returncode == 0, ref.stderr
    out, marker = tmp_path / "out", tmp_path / "paused"
    pause = [sys.executable, "-m", "tests.pause_at", str(marker), "0", "1", "2", "run", *args, "--out", str(out)]
    proc = subprocess.Popen(pause, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    wait_until(marker.exists, "step 2 of epoch 1", timeout=300, proc=proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "checkpoint saved" in stderr, stderr
    resumed = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, env=_env())
    assert resumed.returncode == 0 and "ltbench: resuming" in resumed.stderr, resumed.stderr
    [ref_dir], [run_dir] = (tmp_path / "ref" / "runs").iterdir(), (out / "runs").iterdir()
    reference = json.loads((ref_dir / "result.json").read_text())
    assert json.loads((run_dir / "result.json").read_text())["metrics"] == reference["metrics"]
    if method == "otmix":
        log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        assert log[1]["ot_epoch"] == 1.0 and 0 < log[1]["mixed"] < 1


def test_otmix_pairs_each_foreground_with_the_background_the_plan_prefers():
    """Features alone (w = 1): foreground k looks exactly like background π(k), so the plan is ≈ the permutation
    π and the pairing recovers it; with the confusion term alone (w = 0) a foreground goes to the background whose
    class it is most confused with."""
    from torch import nn

    class Flat(nn.Module):
        def forward(self, x):
            return x.flatten(1)

    model = nn.Module()
    model.backbone = Flat()
    hp = _full_hp(OTmix, cost_weight=1.0)
    method = OTmix(hp, _info([50, 5, 5]))
    bg = F.normalize(torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(0)).flatten(1), dim=1).view(
        6, 1, 4, 4
    )
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    j, dup = method.ot_pairing(model, bg, bg[perm], torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long))
    assert j.tolist() == perm.tolist() and dup.item() == 0
    method = OTmix(_full_hp(OTmix, cost_weight=0.0), _info([50, 5, 5]))
    method.cf = row_normalised_confusion(torch.tensor([[0.0, 0, 0], [0, 0, 9], [0, 0, 0]]) + torch.eye(3))
    bg_y, fg_y = torch.tensor([0, 1, 2]), torch.tensor([1, 0, 2])
    x = torch.zeros(3, 1, 4, 4)
    j, _ = method.ot_pairing(model, x, x, bg_y, fg_y)
    assert j[0].item() == 2  # the class-1 foreground goes onto the class-2 background (cf[1, 2] = 0.9)


# ---------------------------------------------------------------------------------------------- large-scale presets
def _preset(method_cls, dataset: str):
    return resolve(RunConfig(method=method_cls.name, dataset=dataset, preset=(dataset,)), method_cls)


def test_bbn_inat_preset_is_the_release_config_and_imagenet_lt_the_proposal():
    """configs/iNaturalist2018.yaml (§16.4): ResNet-50, 180 epochs (D = 200), batch 128, lr 0.05, x0.1 at 1-based
    epochs 120 and 160, wd 1e-4, no warm-up; ImageNet-LT (§16.7): 90 epochs (D = 100), batch 256, lr 0.1, wd 5e-4,
    warm-up from 1/3 over 5 epochs, x0.1 at 60 and 80."""
    res = _preset(BBN, "inat2018")
    assert res.backbone == "resnet50"
    [stage] = BBN(res.hp, _info([5, 3])).stages()
    assert (stage.epochs, stage.batch_size, stage.weight_decay, stage.nesterov) == (180, 128, 1e-4, True)
    lrs = _lrs(stage, [1, 119, 120, 159, 160, 180])
    assert lrs == pytest.approx([0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005], rel=1e-12)
    assert cumulative_alpha(179, 180) == pytest.approx(1 - (179 / 200) ** 2)  # α ends at 0.199, not 0
    res = _preset(BBN, "imagenet_lt")
    [stage] = BBN(res.hp, _info([5, 3])).stages()
    assert (stage.epochs, stage.batch_size, stage.weight_decay) == (90, 256, 5e-4)
    lrs = _lrs(stage, [1, 5, 59, 60, 79, 80, 90])
    assert lrs == pytest.approx([0.1 * (1 / 3 + (2 / 3) / 5), 0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rel=1e-12)
    assert cumulative_alpha(89, 90) == pytest.approx(1 - 0.89**2)
    # CIFAR keeps x0.01 / x1e-4 (§16.4)
    [stage] = BBN(_full_hp(BBN), _info([5, 3])).stages()
    assert _lrs(stage, [119, 120, 160]) == pytest.approx([0.1, 1e-3, 1e-5], rel=1e-12)


@pytest.mark.parametrize("dataset, wd", [("imagenet_lt", 5e-4), ("inat2018", 1e-4)])
def test_otmix_and_disa_large_scale_presets_train_from_scratch_with_classifier_balancing_recipe(dataset, wd):
    """PROPOSALS §14.6 / §15.5: classifier-balancing's stage 1 (90 epochs, batch 512, lr 0.2, per-epoch cosine,
    no warm-up); OTmix: ERM with the val split's confusion on ImageNet-LT, DRW from epoch 68 on iNat; DisA: DRW for
    the last third, the 8192-d neck on iNat (8,142 classes > 2048)."""
    for cls in (OTmix, DisA):
        res = _preset(cls, dataset)
        assert res.backbone == "resnet50"
        [stage] = cls(res.hp, _info([5, 3])).stages()
        assert (stage.epochs, stage.batch_size, stage.lr, stage.weight_decay) == (90, 512, 0.2, wd)
        assert (stage.schedule, stage.milestones, stage.warmup_epochs) == ("cosine_epoch", (), 0)
    otmix, disa = _preset(OTmix, dataset).hp, _preset(DisA, dataset).hp
    if dataset == "imagenet_lt":
        assert (otmix["base_loss"], otmix["conf_source"]) == ("ce", "val")
        assert (disa["drw_epoch"], disa["neck_dim"]) == (60, 0)
    else:
        assert (otmix["base_loss"], otmix["drw_epoch"], otmix["conf_source"]) == ("ce_drw", 68, "train")
        assert (disa["drw_epoch"], disa["neck_dim"]) == (60, 8192)
    # the CIFAR recipes are unchanged: step milestones
    assert OTmix(_full_hp(OTmix), _info([5, 3])).stages()[0].milestones == ((100, 0.1), (160, 0.01), (200, 1e-4))
    assert DisA(_full_hp(DisA), _info([5, 3])).stages()[0].milestones == ((160, 0.1), (180, 0.01))


def test_disa_neck_lets_a_narrow_backbone_carry_a_full_etf():
    """§15.5: Linear(d, n) + BN before both heads when d < C; the error without it names both ways out."""
    torch.manual_seed(0)
    counts = [5] * 100
    method = DisA(_full_hp(DisA, "cifar100_lt", neck_dim=128), _info(counts, "cifar100_lt"))
    model = method.build_model(build_backbone("resnet32", 32), 100, counts)
    assert model.etf.shape == (128, 100) and model.head.in_features == 128
    assert isinstance(model.neck[0], torch.nn.Linear) and model.neck[0].in_features == 64
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    h = model.features(x)
    assert h.shape == (3, 128)
    torch.testing.assert_close(model(x), model.head(model.neck(model.backbone(x))))
    with pytest.raises(ConfigError, match="neck_dim"):
        DisA(_full_hp(DisA, "cifar100_lt"), _info(counts, "cifar100_lt")).build_model(
            build_backbone("resnet32", 32), 100, counts
        )


def test_disa_fixed_etf_head_classifies_with_the_etf_and_builds_no_linear_layer(tmp_path):
    """variant=fixed_etf_head (PROPOSAL §15.5): logits = ĥ·M/τ; the only parameters are the backbone's; a run
    trains the backbone end to end and records the variant."""
    torch.manual_seed(0)
    counts = [6, 3, 2]
    method = DisA(_full_hp(DisA, variant="fixed_etf_head", etf_tau=0.5), _info(counts))
    backbone = build_backbone("resnet32", 32)
    model = method.build_model(backbone, 3, counts).eval()
    assert model.head is None
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == sum(
        p.numel() for p in backbone.parameters()
    )
    x = torch.randn(4, 3, 32, 32)
    h = model.backbone(x)
    by_hand = F.normalize(model.etf_bn(h), dim=1) @ model.etf * 2.0
    torch.testing.assert_close(model(x), by_hand)
    assert by_hand.abs().max() <= 2.0 + 1e-6  # cosines with unit vertices, times s = 1/τ = 2
    hparams = {"variant": "fixed_etf_head", "batch_size": 100}
    cfg = RunConfig(method="disa", dataset="synthetic_lt", out=str(tmp_path), epochs=1, eval_every=0,
                    precision="fp32", device="cpu", hparams=hparams)  # fmt: skip
    result = execute(cfg, progress=False)
    assert result["status"] == "done"
    assert result["extras"]["disa_variant"] == "fixed_etf_head"
