"""ImageNet-LT-style split-file datasets on a tiny fake tree in the official format, end to end."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from ltbench.data.base import DataSpec
from ltbench.data.files import FileImages, centre_box, rrc_box
from ltbench.errors import ConfigError, DataError
from ltbench.registry import DATASETS
from ltbench.run import execute
from tests.conftest import tiny_config

SYNSETS = ["n01440764", "n01443537", "n01484850", "n01491361"]
TRAIN_COUNTS = [12, 6, 3, 2]


def _image(path, rng: np.random.Generator, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = int(rng.integers(36, 80)), int(rng.integers(36, 80))  # varied sizes and aspect ratios, as in ImageNet
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path, quality=95)


@pytest.fixture
def imagenet_lt_root(tmp_path):
    """DIR/ImageNet/{train,val}/<synset>/*.JPEG and DIR/ImageNet_LT/ImageNet_LT_{train,val,test}.txt."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    lines = {"train": [], "val": [], "test": []}
    for label, (syn, n) in enumerate(zip(SYNSETS, TRAIN_COUNTS)):
        for i in range(n + 2):  # the last 2 training-set images form the val split (as OLTR's val)
            rel = f"train/{syn}/{syn}_{i}.JPEG"
            _image(root / "ImageNet" / rel, rng, "L" if i == 1 else "RGB")
            lines["train" if i < n else "val"].append(f"{rel} {label}")
        for i in range(3):
            rel = f"val/{syn}/ILSVRC2012_val_{label:04d}{i}.JPEG"
            _image(root / "ImageNet" / rel, rng)
            lines["test"].append(f"{rel} {label}")
    (root / "ImageNet_LT").mkdir()
    for split, rows in lines.items():
        (root / "ImageNet_LT" / f"ImageNet_LT_{split}.txt").write_text("\n".join(rows) + "\n")
    return root


def test_split_files_give_counts_groups_and_provenance(imagenet_lt_root):
    data = DATASETS.get("imagenet_lt")(DataSpec(root=imagenet_lt_root, image_size=32, workers=0))
    assert data.mean == (0.485, 0.456, 0.406) and data.color_jitter == 0.4
    assert data.class_counts == TRAIN_COUNTS and data.classes == SYNSETS
    assert len(data.test_y) == 12 and len(data.val_y) == 8 and data.image_size == 32
    assert isinstance(data.train_x, FileImages) and data.train_x.shape == (23, 3, 32, 32)
    p = data.provenance
    assert p["source"] == "split files" and set(p["split_sha256"]) == {"train", "val", "test"}
    batch = data.test_x.decode_batch([0, 1, 2], seed=None)
    assert batch.dtype == torch.uint8 and batch.shape == (3, 3, 32, 32)
    again = data.train_x[torch.tensor([3, 0])].decode_batch([0, 1], seed=7)
    assert torch.equal(again, data.train_x[torch.tensor([3, 0])].decode_batch([0, 1], seed=7))  # seeded crops


def test_crop_boxes_match_torchvision_semantics():
    # Resize(256) + CenterCrop(224) of a 512x384 image keeps the central 298.67 x 298.67 region
    left, top, right, bottom = centre_box(512, 384, 224, 256)
    assert right - left == pytest.approx(224 * 384 / 256) and (left + right) / 2 == pytest.approx(256)
    rng = random.Random(0)
    for _ in range(200):
        x0, y0, x1, y1 = rrc_box(100, 60, rng)
        area = (x1 - x0) * (y1 - y0)
        assert 0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 60
        assert area <= 6000 and (area >= 0.08 * 6000 * 0.9 or (x1 - x0, y1 - y0) == (80, 60))


def test_a_method_runs_end_to_end_on_the_fake_tree(imagenet_lt_root, tmp_path):
    cfg = tiny_config(
        tmp_path / "out", "crt", dataset="imagenet_lt", data_root=str(imagenet_lt_root), image_size=32, workers=2,
        epochs=1, hparams={"batch_size": 8, "stage2_epochs": 1, "stage2_batch_size": 8},
    )  # fmt: skip
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done" and rec["data"]["class_counts"] == TRAIN_COUNTS
    assert rec["data"]["groups"]["few"] == [0, 1, 2, 3] and rec["val"] is not None  # official val evaluated
    assert rec["data"]["provenance"]["image_root"].endswith("ImageNet")
    assert len(json.loads((cfg.run_dir / "result.json").read_text())["metrics"]["per_class"]) == 4


def test_missing_files_and_bad_options_are_actionable(imagenet_lt_root, tmp_path):
    with pytest.raises(DataError, match="ImageNet_LT_train.txt not found.*Expected layout.*OLTR"):
        DATASETS.get("imagenet_lt")(DataSpec(root=tmp_path / "empty"))
    with pytest.raises(DataError, match="Places_LT_train.txt not found"):
        DATASETS.get("places_lt")(DataSpec(root=imagenet_lt_root))
    with pytest.raises(ConfigError, match="fixed by its split files"):
        DATASETS.get("imagenet_lt")(DataSpec(root=imagenet_lt_root, imbalance_ratio=50))
    (imagenet_lt_root / "ImageNet" / "train" / SYNSETS[0] / f"{SYNSETS[0]}_0.JPEG").unlink()
    with pytest.raises(DataError, match="first listed image train/n01440764/n01440764_0.JPEG is under none of"):
        DATASETS.get("imagenet_lt")(DataSpec(root=imagenet_lt_root))
    (imagenet_lt_root / "ImageNet_LT" / "ImageNet_LT_train.txt").write_text("no label here\n")
    with pytest.raises(DataError, match="not in the expected format"):
        DATASETS.get("imagenet_lt")(DataSpec(root=imagenet_lt_root))
    cfg = tiny_config(tmp_path / "o", "ce", image_size=32)  # synthetic_lt is not file-backed
    with pytest.raises(ConfigError, match="--image-size applies to file-backed datasets"):
        execute(cfg, progress=False)


def test_inat_json_format(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "inat"
    images, anns = [], []
    for i, (cat, kingdom) in enumerate([(0, "Plantae"), (0, "Plantae"), (1, "Animalia")]):
        rel = f"train_val2018/{kingdom}/{cat}/{i}.jpg"
        _image(root / rel, rng)
        images.append({"id": 100 + i, "file_name": rel})
        anns.append({"image_id": 100 + i, "category_id": cat})
    blob = json.dumps({"images": images, "annotations": anns, "categories": [{"id": 0}, {"id": 1}]})
    (root / "train2018.json").write_text(blob)
    (root / "val2018.json").write_text(blob)
    data = DATASETS.get("inat2018")(DataSpec(root=root, image_size=32, workers=0))
    assert data.class_counts == [2, 1] and data.val_y is None and len(data.test_y) == 3
    # the official loaders' iNaturalist statistics and no colour jitter (ImageNet-LT keeps ImageNet's, jitter 0.4)
    assert data.mean == (0.466, 0.471, 0.380) and data.std == (0.195, 0.194, 0.192) and data.color_jitter == 0
    assert data.provenance["normalisation"]["color_jitter"] == 0


@pytest.fixture
def places_lt_root(tmp_path):
    """DIR/Places365/<class>/*.jpg and DIR/Places_LT/Places_LT_{train,val,test}.txt (OLTR's format)."""
    rng = np.random.default_rng(1)
    root = tmp_path / "places"
    lines = {"train": [], "val": [], "test": []}
    for label, n in enumerate([6, 3, 2]):
        for split, count in (("train", n), ("val", 1), ("test", 2)):
            for i in range(count):
                rel = f"{split}/c{label}/{i:08d}.jpg"
                _image(root / "Places365" / rel, rng)
                lines[split].append(f"{rel} {label}")
    (root / "Places_LT").mkdir()
    for split, rows in lines.items():
        (root / "Places_LT" / f"Places_LT_{split}.txt").write_text("\n".join(rows) + "\n")
    return root


def test_places_lt_preset_fine_tunes_a_pretrained_resnet152_with_a_slower_backbone(places_lt_root, tmp_path,
                                                                                   monkeypatch):  # fmt: skip
    """--preset places_lt (OLTR config/Places_LT/stage_1.py): the ImageNet-pretrained ResNet-152 is asked for with
    its weights, the backbone trains at 0.01 x the head's lr, ×0.1 at epochs 10 and 20 of 30; cRT's stage 2 is
    classifier-balancing's Places_LT cls_crt.yaml. Offline, the weights are stubbed: the test checks that they
    were requested and that the record says so; a smaller timm ResNet stands in to keep the test short."""
    import timm

    from ltbench.records import log_entries, read_json

    asked = []
    create = timm.create_model

    def offline(name, pretrained=False, **kw):
        asked.append((name, pretrained))
        return create("resnet18", pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    cfg = tiny_config(
        tmp_path / "out", "crt", dataset="places_lt", data_root=str(places_lt_root), image_size=32, workers=2,
        preset=("places_lt",), epochs=1, hparams={"batch_size": 4, "stage2_batch_size": 4, "stage2_epochs": 1},
    )  # fmt: skip
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done" and rec["data"]["class_counts"] == [6, 3, 2]
    assert ("resnet152.tv_in1k", True) in asked
    resolved = read_json(cfg.run_dir / "config.json")["resolved"]
    assert resolved["pretrained"] is True and resolved["backbone"] == "timm:resnet152.tv_in1k"
    hp = resolved["hp"]
    assert (hp["backbone_lr_factor"], hp["weight_decay"], hp["lr"], hp["lr_factor"]) == (0.01, 5e-4, 0.1, 0.1)
    assert (hp["stage2_batch_size"], hp["stage2_lr"]) == (4, 0.1)  # --set wins over the preset's 256
    log = log_entries(cfg.run_dir)
    assert log[0]["lr"] == pytest.approx(0.1)  # the logged lr is the head's; the backbone's is 0.001 (below)


def test_backbone_lr_factor_splits_the_optimizer_groups():
    from torch import nn

    from ltbench.method import Stage
    from ltbench.train.optim import build_optimizer, set_lr

    model = nn.Module()
    model.backbone, model.head = nn.Linear(3, 4), nn.Linear(4, 2)
    params = list(model.named_parameters())
    stage = Stage("s", epochs=30, lr=0.1, batch_size=8, weight_decay=5e-4, backbone_lr_factor=0.01)
    opt = build_optimizer(params, stage)
    set_lr(opt, 0.1)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert {n: lrs[id(p)] for n, p in params} == pytest.approx(
        {"backbone.weight": 1e-3, "backbone.bias": 1e-3, "head.weight": 0.1, "head.bias": 0.1}
    )
    one = build_optimizer(params, Stage("s", epochs=30, lr=0.1, batch_size=8))
    assert len(one.param_groups) == 1 and "lr_scale" not in one.param_groups[0]
    with pytest.raises(ConfigError, match="backbone_lr_factor"):
        Stage("s", epochs=3, lr=0.1, batch_size=8, backbone_lr_factor=float("nan"))


def test_the_decoder_that_ran_is_recorded(imagenet_lt_root, monkeypatch):
    default = DATASETS.get("imagenet_lt")(DataSpec(root=imagenet_lt_root, image_size=32, workers=0))
    pil = DATASETS.get("imagenet_lt")(DataSpec(root=imagenet_lt_root, image_size=32, workers=0, decoder="pil"))
    assert default.provenance["decoder"] == default.train_x.decoder == default.test_x.decoder == "torchvision"
    assert pil.provenance["decoder"] == pil.train_x.decoder == "pil"
    a, b = default.test_x.decode_batch([0, 1], seed=None), pil.test_x.decode_batch([0, 1], seed=None)
    assert a.shape == b.shape == (2, 3, 32, 32)
    import torchvision.io

    monkeypatch.delattr(torchvision.io, "decode_image")  # a torchvision without image decoders
    fallback = DATASETS.get("imagenet_lt")(DataSpec(root=imagenet_lt_root, image_size=32, workers=0))
    assert fallback.provenance["decoder"] == fallback.train_x.decoder == "pil"
