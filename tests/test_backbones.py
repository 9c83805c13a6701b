"""timm backbones: curated entries, ``timm:<name>``, recipes, errors, and the method x backbone-family
smoke matrix (every method, 1 epoch per stage on synthetic_lt, with a tiny member of each family)."""

from __future__ import annotations

import pytest
import torch

from ltbench.errors import ConfigError
from ltbench.models import timm_backbones
from ltbench.models.backbones import TIMM_CURATED, build_backbone
from ltbench.records import log_entries
from ltbench.registry import BACKBONES, METHODS
from ltbench.run import execute
from ltbench.train.trainer import load_checkpoint
from tests.test_methods import _fast_overrides, _info, _two_step_config

# Tiny members of each family, built by the same adapters as the curated entries (only sizes differ).
TINY = {
    "tiny_timm_resnet": lambda image_size=32, **kw: timm_backbones.resnet50(image_size, layers=(1, 1, 1, 1), **kw),
    "tiny_vit": lambda image_size=32, **kw: timm_backbones.vit(
        "vit_tiny_patch16_224", image_size, depth=1, embed_dim=32, num_heads=2, **kw
    ),
    "tiny_deit": lambda image_size=32, **kw: timm_backbones.vit(
        "deit_tiny_patch16_224", image_size, depth=1, embed_dim=32, num_heads=2, **kw
    ),
    "tiny_swin": lambda image_size=32, **kw: timm_backbones.swin(
        "swin_tiny_patch4_window7_224", image_size, depths=(1, 1, 1, 1), embed_dim=16, num_heads=(1, 1, 1, 1), **kw
    ),
}
MULTI_EXPERT = ("ride", "ride_ea")  # architecture surgery on CIFAR ResNets only: refused elsewhere


@pytest.fixture(scope="module", autouse=True)
def tiny_backbones():
    for name, fn in TINY.items():
        BACKBONES.register(name)(fn)
    yield
    for name in TINY:
        BACKBONES._entries.pop(name)


# 224-px forwards of the large members (resnet50, swin_tiny, deit_small, vit_small) are left out: covered by
# their 32-px build and by vit_tiny/deit_tiny at 224
LARGE = ("resnet50", "swin_tiny", "deit_small", "vit_small")
BUILDS = [(name, size) for size in (32, 224) for name in TIMM_CURATED if not (size == 224 and name in LARGE)]


@pytest.mark.parametrize(("name", "size"), BUILDS, ids=[f"{n}-{s}" for n, s in BUILDS])
def test_curated_backbones_build_at_32_and_224(name, size):
    net = build_backbone(name, size).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, net.feature_dim) and net.feature_dim == net.model.num_features


def test_small_image_adaptations():
    r50 = build_backbone("resnet50", 32).model
    assert r50.conv1.kernel_size == (3, 3) and r50.conv1.stride == (1, 1) and isinstance(r50.maxpool, torch.nn.Identity)
    assert build_backbone("resnet50", 224).model.conv1.kernel_size == (7, 7)
    assert build_backbone("vit_tiny", 32).model.patch_embed.patch_size == (4, 4)
    assert build_backbone("vit_tiny", 224).model.patch_embed.patch_size == (16, 16)
    assert build_backbone("swin_tiny", 32).model.patch_embed.patch_size == (2, 2)
    assert build_backbone("timm:resnet18", 32).feature_dim == 512  # any timm name, dimension discovered


def test_backbone_errors_are_clear(monkeypatch):
    with pytest.raises(ConfigError, match="timm has no model 'resnet5'.*resnet50"):
        build_backbone("timm:resnet5", 32)
    with pytest.raises(ConfigError, match="not a multiple of 4"):
        build_backbone("vit_tiny", 30)
    with pytest.raises(ConfigError, match="does not tile"):
        build_backbone("swin_tiny", 48)
    with pytest.raises(ConfigError, match="has no pretrained weights"):
        build_backbone("resnet32", 32, pretrained=True)
    import timm

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(ConfigError, match="--pretrained: the weights of timm model 'vit_tiny_patch16_224'.*online"):
        build_backbone("vit_tiny", 32, pretrained=True)


def test_transformer_recipe_applies_to_full_training_stages_only(tmp_path):
    hp = {**_fast_overrides("crt"), "batch_size": 128}
    rec = execute(_two_step_config(tmp_path, "crt", backbone="tiny_vit", hparams=hp), progress=False)
    assert rec["extras"]["backbone_recipe"]["optimizer"] == "adamw"
    # stage 1 (full training) gets AdamW at 5e-4 x 128/512; the head-only cRT stage keeps SGD lr 0.2
    log = log_entries(tmp_path / "runs" / rec["run_id"])
    assert log[0]["lr"] <= 5e-4 * 128 / 512 and log[1]["lr"] <= 0.2


@pytest.mark.parametrize("given", [0.003, "0.003"])  # a number (Python, sweeps) or a string (--set lr=0.003)
def test_an_explicit_lr_survives_the_transformer_recipe(tmp_path, given):
    """The lr the optimizer used (log.jsonl), not the resolved hparam: the recipe replaces default lrs only."""
    hp = {"batch_size": 100}
    default_cfg = _two_step_config(tmp_path / "d", "ce", backbone="tiny_vit", hparams=hp)
    explicit_cfg = _two_step_config(tmp_path / "e", "ce", backbone="tiny_vit", hparams={**hp, "lr": given})
    execute(default_cfg, progress=False)
    execute(explicit_cfg, progress=False)
    default, explicit = log_entries(default_cfg.run_dir), log_entries(explicit_cfg.run_dir)
    # one epoch of per-iteration warm-up: the last step's lr is a fixed fraction of the base lr in both runs
    ratio = explicit[0]["lr"] / default[0]["lr"]
    assert ratio == pytest.approx(0.003 / (5e-4 * 100 / 512), rel=1e-6)


@pytest.mark.parametrize("backbone", list(TINY))
@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_with_every_backbone_family(method, backbone, tmp_path):
    cfg = _two_step_config(tmp_path, method, backbone=backbone, hparams=_fast_overrides(method))
    if method in MULTI_EXPERT and backbone != "tiny_timm_resnet":  # RIDE splits ResNets only (CIFAR and timm)
        with pytest.raises(ConfigError, match="supported backbones: resnet32"):
            execute(cfg, progress=False)
        return
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done" and rec["resolved"]["backbone"] == backbone
    # every stage ran its one epoch, on a model built around that backbone (its weights in the checkpoint)
    stages = METHODS.get(method)(rec["resolved"]["hp"], _info(rec)).stages()
    assert [e["stage_name"] for e in log_entries(cfg.run_dir)] == [s.name for s in stages for _ in range(s.epochs)]
    weights = load_checkpoint(cfg.run_dir / "ckpt.pt")["model"]
    own = {k.removeprefix("backbone.") for k in weights if k.startswith("backbone.")}
    built = set(build_backbone(backbone, rec["data"]["image_size"]).state_dict())
    if method in MULTI_EXPERT:  # the backbone's stem and layer1-2 are the shared trunk, layer3-4 per expert
        assert {k for k in own if k.startswith("shared.")} and {k for k in own if k.startswith("experts.2.")}
        return
    if method == "bbn":  # the trunk is the model without its last block (and norm), which become the branches
        trunk = {k for k in own if k.startswith("model.")}
        assert trunk < built and any(k.startswith("rb_block.") for k in own)
        return
    assert own == built


def test_resnet50_is_initialised_as_the_papers_resnets():
    """``resnet50`` starts every block's last BatchNorm at weight 1 (classifier-balancing / RIDE / torchvision);
    ``timm:resnet50`` keeps timm's zero-initialised last BN (zero_init_last)."""
    ours = build_backbone("resnet50", 224).model
    theirs = build_backbone("timm:resnet50", 224).model
    last_bns = lambda m: [blk.bn3.weight for stage in (m.layer1, m.layer2, m.layer3, m.layer4) for blk in stage]  # noqa: E731
    assert all(bool((w == 1).all()) for w in last_bns(ours))
    assert all(bool((w == 0).all()) for w in last_bns(theirs))
