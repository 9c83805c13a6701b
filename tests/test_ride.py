"""RIDE (docs/methods.md §5): the multi-expert wrapper, the loss, and one tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from ltbench.config import RunConfig
from ltbench.errors import ConfigError
from ltbench.losses import LDAMLoss, class_balanced_weights
from ltbench.method import DataInfo
from ltbench.methods.ride.experts import ExpertBackbone, multi_expert_model
from ltbench.methods.ride.ride import class_temperature, ride_loss
from ltbench.models.cifar_resnet import resnet18_cifar_backbone, resnet32_backbone
from ltbench.records import log_entries
from ltbench.registry import METHODS
from ltbench.run import execute

COUNTS = [50, 20, 8, 3]


def _n(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_expert_output_shapes():
    torch.manual_seed(0)
    model = multi_expert_model(resnet32_backbone(), num_classes=7, num_experts=3)
    out = model.forward_experts(torch.randn(4, 3, 32, 32))
    assert out.logits.shape == (3, 4, 7)
    assert out.ensemble.shape == (4, 7)
    assert out.features.shape == (3, 4, 48)  # reduce_dimension: stage-3 width 64 -> 48
    torch.testing.assert_close(out.ensemble, out.logits.mean(0))
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    assert out.logits.abs().max() <= 30.0 + 1e-4  # s · cosine


def test_resnet32_expert_structure_and_parameter_count():
    """RIDE ResNet-32, 3 experts, reduce_dimension, 10 classes: 770,896 parameters vs 463,504 for one
    ResNet-32 feature extractor (+650 for its linear head) — 1.66x. Computed, not recalled: shared stem +
    stage 1 = 23,824; each expert's stages 2-3 (widths 24/48) = 248,544; each cosine head 48 x 10 = 480.
    Test-time FLOPs (FlopCounterMode): 0.201 vs 0.138 GFLOPs, 1.46x."""
    r32 = resnet32_backbone()
    model = multi_expert_model(resnet32_backbone(), num_classes=10, num_experts=3)
    bb = model.backbone
    assert bb.shared_stages == 1 and bb.widths == (16, 24, 48) and bb.feature_dim == 48
    shared = _n(bb.stem) + _n(bb.shared)
    assert shared == _n(r32.stem) + _n(r32.stages[0]) == 23_824
    reduced = resnet32_backbone(widths=(16, 24, 48))  # the same constructor, RIDE's per-expert widths
    expert = _n(reduced.stages[1]) + _n(reduced.stages[2])
    assert all(_n(e) == expert == 248_544 for e in bb.experts)
    assert _n(model) == shared + 3 * expert + 3 * 48 * 10 == 770_896
    assert _n(r32) == 463_504
    # experts are independent copies, not shared modules
    assert bb.experts[0][0][0].conv1.weight.data_ptr() != bb.experts[1][0][0].conv1.weight.data_ptr()


def test_shared_stages_choice_on_four_stage_backbone():
    # ResNet-18 (CIFAR stem): default shares stages 1-2, per-expert 3-4 at 3/4 width, like RIDE's ResNet-50
    bb = ExpertBackbone(resnet18_cifar_backbone(), num_experts=2)
    assert bb.shared_stages == 2 and bb.widths == (64, 128, 192, 384)
    bb = ExpertBackbone(resnet32_backbone(), num_experts=2, shared_stages=0, reduce_dimension=False)
    assert bb.widths == (16, 32, 64) and len(bb.experts[0]) == 3
    with pytest.raises(ConfigError):
        ExpertBackbone(resnet32_backbone(), shared_stages=3)


def test_non_cifar_resnet_backbone_is_a_config_error():
    with pytest.raises(ConfigError, match="resnet32"):
        multi_expert_model(torch.nn.Linear(4, 4), num_classes=3)


def test_one_expert_without_diversity_is_ldam_drw():
    torch.manual_seed(0)
    cos = torch.rand(6, 4) * 2 - 1
    y = torch.tensor([0, 1, 2, 3, 3, 2])
    weight = class_balanced_weights(COUNTS, 0.9999)
    ldam = LDAMLoss(COUNTS, max_margin=0.5, s=30.0, weight=weight)
    z = 30.0 * cos
    out = ride_loss(z[None], z, y, ldam, 30.0, lambda_div=0.0, temperature=class_temperature(COUNTS, 0.05))
    torch.testing.assert_close(out["loss"], ldam(cos, y))
    # hand check: margin Δ_c = 0.5 (n_min / n_c)^(1/4) subtracted from the target cosine, x30, weighted CE
    margins = 0.5 * (3 / torch.tensor(COUNTS, dtype=torch.float)) ** 0.25
    adj = cos.clone()
    adj[torch.arange(6), y] -= margins[y]
    hand = (weight[y] * F.cross_entropy(30.0 * adj, y, reduction="none")).sum() / weight[y].sum()
    torch.testing.assert_close(out["loss"], hand)
    assert float(out["kl"]) == pytest.approx(0.0, abs=1e-6)  # one expert: it *is* the ensemble


def test_diversity_gradient_does_not_reach_the_ensemble_target():
    torch.manual_seed(0)
    z = torch.randn(3, 5, 4, requires_grad=True)
    y = torch.randint(0, 4, (5,))
    ldam = LDAMLoss(COUNTS)
    target = torch.randn(5, 4, requires_grad=True)  # a leaf standing in for z̄
    ride_loss(z, target, y, ldam, 30.0, lambda_div=-0.2)["loss"].backward()
    assert target.grad is None  # detached inside the loss
    # the ensemble computed from the experts themselves: same gradient as with a constant target
    z1 = z.detach().clone().requires_grad_(True)
    ride_loss(z1, z1.mean(0), y, ldam, 30.0, lambda_div=-0.2)["loss"].backward()
    z2 = z.detach().clone().requires_grad_(True)
    ride_loss(z2, z.detach().mean(0), y, ldam, 30.0, lambda_div=-0.2)["loss"].backward()
    torch.testing.assert_close(z1.grad, z2.grad)
    # the diversity term does move the experts (its gradient is not zero)
    z0 = z.detach().clone().requires_grad_(True)
    ride_loss(z0, z0.mean(0), y, ldam, 30.0, lambda_div=0.0)["loss"].backward()
    assert not torch.allclose(z0.grad, z1.grad)


def test_kl_term_matches_formula_with_class_temperature():
    torch.manual_seed(1)
    z = torch.randn(2, 5, 4) * 5
    y = torch.randint(0, 4, (5,))
    t = class_temperature(COUNTS, 0.05)
    assert t.max() == 1.0 and t.argmax() == 0 and bool((t > 0).all())
    out = ride_loss(z, z.mean(0), y, LDAMLoss(COUNTS), 30.0, lambda_div=-0.45, temperature=t)
    p = F.softmax(z.mean(0) / t, dim=1)
    kl = sum((p * (p.log() - F.log_softmax(z_e / t, dim=1))).sum(1).mean() for z_e in z)
    torch.testing.assert_close(out["kl"], kl)
    torch.testing.assert_close(out["loss"], out["ldam"] - 0.45 * t.mean() ** 2 * kl)


def test_ride_runs_end_to_end_on_synthetic_data(tmp_path):
    cfg = RunConfig(
        method="ride",
        dataset="synthetic_lt",
        epochs=1,
        eval_every=0,
        device="cpu",
        precision="fp32",
        out=str(tmp_path),
        hparams={"batch_size": 100},
    )
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done"
    saved = json.loads((cfg.run_dir / "result.json").read_text())
    assert saved["model"]["params"] > 0 and saved["model"]["gflops"] > 0
    assert saved["resolved"]["hp"]["num_experts"] == 3 and saved["resolved"]["hp"]["weight_decay"] == 5e-4
    log = log_entries(cfg.run_dir)
    assert all(torch.isfinite(torch.tensor([e["loss"], e["ldam"], e["kl"]])).all() for e in log)
    # --epochs 1 scales reweight_epoch 160/200 to 1: DRW and temperature never switch on in epoch 0
    assert rec["resolved"]["hp"]["reweight_epoch"] == 1 and log[0]["drw"] == 0.0


@pytest.mark.parametrize(("dataset", "expected"), [("cifar100_lt", -0.45), ("cifar10_lt", -0.2), ("digits_lt", -0.2)])
def test_lambda_div_follows_the_official_config_of_each_dataset(dataset, expected):
    """configs/config_imbalance_cifar100_ride.json: -0.45 since 2021-01-03; no CIFAR-10 config (loss default)."""
    from ltbench.resolve import resolve

    assert resolve(RunConfig(method="ride", dataset=dataset), METHODS.get("ride")).hp["lambda_div"] == expected
    over = resolve(RunConfig(method="ride", dataset=dataset, hparams={"lambda_div": "-0.3"}), METHODS.get("ride"))
    assert over.hp["lambda_div"] == -0.3


def _info() -> DataInfo:
    return DataInfo(num_classes=len(COUNTS), class_counts=list(COUNTS), image_size=32, dataset="cifar10_lt")


def test_distillation_warms_up_for_20_epochs():
    from ltbench.resolve import resolve

    cls = METHODS.get("ride")
    for teacher, warm in (("", 5), ("/some/run", 20)):
        hp = resolve(RunConfig(method="ride", dataset="cifar10_lt", hparams={"teacher": teacher}), cls).hp
        assert cls(hp, _info()).stages()[0].warmup_epochs == warm


def test_rotation_is_nearest_neighbour_like_torchvision():
    """RIDE's RandomRotation(15) (torchvision: nearest, fill 0): every output pixel is an input value or 0."""
    from ltbench.data.transforms import _rotation

    torch.manual_seed(0)
    x = torch.randint(1, 255, (4, 3, 32, 32)).float()
    out = _rotation()(x)
    values = set(x.unique().tolist()) | {0.0}
    assert set(out.unique().tolist()) <= values and not torch.equal(out, x)


# ---------------------------------------------------------------------------------------------- ImageNet backbones
@pytest.mark.parametrize(("name", "zeroed"), [("resnet50", False), ("timm:resnext50_32x4d", True)])
def test_timm_resnets_split_like_the_release(name, zeroed):
    """RIDE fb_resnets (§5): stem + layer1-2 shared, per-expert layer3-4 at 192/384 bottleneck widths (1,536-d
    features); the trunk is the backbone's own modules, the experts are independent and initialised as the
    backbone is (ltbench's resnet50 keeps every BN at 1; timm's default zero-initialises each block's last BN)."""
    from ltbench.methods.ride.experts import TimmResNetExperts, num_stages
    from ltbench.models.backbones import build_backbone

    torch.manual_seed(0)
    backbone = build_backbone(name, 32)
    layer1 = backbone.model.layer1
    model = multi_expert_model(backbone, num_classes=5, num_experts=3, shared_stages=num_stages(backbone) - 2)
    experts = model.backbone
    assert isinstance(experts, TimmResNetExperts) and experts.shared[0] is layer1
    assert experts.widths == (64, 128, 192, 384) and experts.feature_dim == 1536
    a, b = experts.experts[0], experts.experts[1]
    assert a[0][0].conv1.in_channels == 512 and a[1][-1].conv3.out_channels == 1536  # layer2's output feeds it
    assert not torch.equal(a[0][0].conv1.weight, b[0][0].conv1.weight)
    assert bool((a[1][-1].bn3.weight == 0).all()) is zeroed
    out = model.forward_experts(torch.randn(2, 3, 32, 32))
    assert out.logits.shape == (3, 2, 5) and out.features.shape == (3, 2, 1536)
    assert not any(n.startswith(("backbone.stem.0", "layer3", "layer4")) for n, _ in model.named_parameters()
                   if n.startswith("backbone.shared"))  # fmt: skip
    with pytest.raises(ConfigError, match="not a timm ResNet"):
        multi_expert_model(build_backbone("vit_tiny", 32), num_classes=5)


def test_imagenet_lt_preset_is_the_release_config():
    """RIDE's ImageNet-LT config (§5): ResNet-50, 100 epochs, batch 256, lr 0.1, wd 2e-4, warm-up 5, x0.1 at 60
    and 80, DRW + temperature (α 0.02) from 80, no rotation; ride_ea's router reads the top 50 (ImageNet)."""
    from ltbench.resolve import resolve

    for name in ("ride", "ride_ea"):
        cls = METHODS.get(name)
        res = resolve(RunConfig(method=name, dataset="imagenet_lt", preset=("imagenet_lt",)), cls)
        assert res.backbone == "resnet50"
        hp = res.hp
        assert (hp["reweight_epoch"], hp["alpha"], hp["lambda_div"]) == (80, 0.02, -0.2)
        stage = cls(hp, _info()).stages()[0]
        assert (stage.epochs, stage.batch_size, stage.lr, stage.weight_decay) == (100, 256, 0.1, 2e-4)
        assert stage.milestones == ((60, 0.1), (80, 0.01)) and stage.transform == "standard"
    assert resolve(RunConfig(method="ride_ea", dataset="imagenet_lt", preset=("imagenet_lt",)),
                   METHODS.get("ride_ea")).hp["router_top_k"] == 50  # fmt: skip
    cifar = METHODS.get("ride")(
        resolve(RunConfig(method="ride", dataset="cifar10_lt"), METHODS.get("ride")).hp, _info()
    )
    assert cifar.stages()[0].milestones == ((160, 0.01), (180, 1e-4)) and cifar.stages()[0].transform == "ride"


def test_stage_key_of_a_record_from_before_the_new_hparams_is_unchanged():
    """A finished ride run recorded before ``lr_factor`` / ``rotation`` existed still serves ride_ea --from."""
    from ltbench.resolve import resolve

    cls = METHODS.get("ride")
    hp = resolve(RunConfig(method="ride", dataset="cifar10_lt"), cls).hp
    old = {k: v for k, v in hp.items() if k not in ("lr_factor", "rotation")}
    assert cls(old, _info()).stage_key(0) == cls(hp, _info()).stage_key(0)
    assert cls(old, _info()).stages() == cls(hp, _info()).stages()


def test_ride_trains_end_to_end_on_a_timm_resnet(tmp_path):
    cfg = RunConfig(method="ride", dataset="synthetic_lt", backbone="timm:resnet18", epochs=1, eval_every=0,
                    device="cpu", precision="fp32", out=str(tmp_path), hparams={"batch_size": 100})  # fmt: skip
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done"
    assert all(torch.isfinite(torch.tensor([e["loss"], e["kl"]])).all() for e in log_entries(cfg.run_dir))
