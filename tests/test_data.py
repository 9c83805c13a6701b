"""Dataset readers: image-folder order, pickle order, the decoded-array cache, errors, digits, synthetic, real CIFAR."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ltbench.config import RunConfig
from ltbench.data import cifar
from ltbench.data.base import DataSpec
from ltbench.data.longtail import class_counts, natural_key, shot_groups
from ltbench.errors import ConfigError, DataError
from ltbench.registry import DATASETS

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# file names whose natural order (1, 2, 3, 10) differs from lexicographic order (1, 10, 2, 3); x_3 is WebP
FILES = ["x_10.png", "x_2.png", "x_1.png", "x_3.webp"]
NATURAL = [1, 2, 3, 10]


def _write(path: Path, label: int, number: int) -> None:
    """A 32x32 image whose first pixel encodes (label, number in the file name) so order can be checked."""
    arr = np.full((32, 32, 3), 7, dtype=np.uint8)
    arr[0, 0] = (label, number, 200)
    Image.fromarray(arr).save(path, **({"lossless": True} if path.suffix == ".webp" else {}))


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for split in ("train", "test"):
        for label, name in enumerate(CIFAR10_CLASSES):
            d = root / "cifar10" / split / name
            d.mkdir(parents=True)
            for f in FILES:
                _write(d / f, label, int(f.split("_")[1].split(".")[0]))
            (d / "notes.txt").write_text("not an image")
    return root


def test_image_folder_order_and_labels(folder_root, tmp_path):
    x, y, classes, src = cifar.load_cifar_pool("cifar10", folder_root, "train", tmp_path / "cache")
    assert classes == CIFAR10_CLASSES and src["format"] == "folder"
    assert x.shape == (40, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    assert y.tolist() == np.repeat(np.arange(10), 4).tolist()
    assert x[:, 0, 0, 0].tolist() == y.tolist()  # pixel label == folder label
    assert x[:, 1, 0, 0].tolist() == NATURAL * 10  # natural file-name order inside each class
    assert (x[:, 2, 0, 0] == 200).all() and (x[:, :, 1:, :] == 7).all()  # channels-first, exact pixels


def test_second_load_hits_the_cache(folder_root, tmp_path, monkeypatch):
    first = cifar.load_cifar_pool("cifar10", folder_root, "train", tmp_path / "cache")
    assert first[3]["cache_hit"] is False

    def boom(*args, **kwargs):
        raise AssertionError("decoded again despite a valid cache")

    monkeypatch.setattr(cifar, "decode_images", boom)
    second = cifar.load_cifar_pool("cifar10", folder_root, "train", tmp_path / "cache")
    assert second[3]["cache_hit"] is True
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_changed_source_invalidates_the_cache(folder_root, tmp_path):
    cache = tmp_path / "cache"
    cifar.load_cifar_pool("cifar10", folder_root, "train", cache)
    _write(folder_root / "cifar10" / "train" / "bird" / "x_20.png", 2, 20)
    x, y, _, src = cifar.load_cifar_pool("cifar10", folder_root, "train", cache)
    assert src["cache_hit"] is False and len(y) == 41 and x[12, 1, 0, 0] == 20


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_shape"])
def test_corrupt_cache_is_rebuilt(folder_root, tmp_path, damage):
    cache = tmp_path / "cache"
    ref = cifar.load_cifar_pool("cifar10", folder_root, "train", cache)
    path = Path(ref[3]["cache"])
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 100)
    else:
        np.savez(
            path,
            images=np.zeros((3, 3, 8, 8), np.uint8),
            labels=np.zeros(3, np.int64),
            classes=np.array(CIFAR10_CLASSES),
        )
    with pytest.warns(UserWarning, match="corrupt cache"):
        x, y, classes, src = cifar.load_cifar_pool("cifar10", folder_root, "train", cache)
    assert src["cache_hit"] is False and np.array_equal(x, ref[0]) and np.array_equal(y, ref[1])
    assert cifar.load_cifar_pool("cifar10", folder_root, "train", cache)[3]["cache_hit"] is True
    assert not list(cache.glob("*.tmp"))


def test_pickle_release_is_read_in_batch_order(tmp_path):
    pdir = tmp_path / "cifar-10-batches-py"
    pdir.mkdir()
    rng = np.random.default_rng(0)
    data = {}
    for fname in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, size=6).tolist()
        data[fname] = (rng.integers(0, 256, size=(6, 3072), dtype=np.uint8), labels)
        with open(pdir / fname, "wb") as fh:
            pickle.dump({"data": data[fname][0], "labels": labels}, fh)
    with open(pdir / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": CIFAR10_CLASSES}, fh)
    x, y, classes, src = cifar.load_cifar_pool("cifar10", tmp_path, "train", tmp_path / "cache")
    assert src["format"] == "pickle" and classes == CIFAR10_CLASSES and x.shape == (30, 3, 32, 32)
    assert y.tolist() == sum((data[f"data_batch_{k}"][1] for k in range(1, 6)), [])
    assert np.array_equal(x[6].reshape(-1), data["data_batch_2"][0][0])  # row = R, G, B planes
    assert cifar.load_cifar_pool("cifar10", pdir, "test", tmp_path / "cache")[1].tolist() == data["test_batch"][1]


def test_missing_root_is_actionable(tmp_path, monkeypatch):
    def offline(name, root):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(cifar, "torchvision_download", offline)
    spec = DataSpec(root=tmp_path / "nowhere", cache_dir=tmp_path / "cache")
    with pytest.raises(DataError) as err:
        DATASETS.get("cifar10_lt")(spec)
    msg = str(err.value)
    assert "--data-root" in msg and "LTBENCH_DATA" in msg and "offline" in msg and "\n" not in msg
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg and "cifar10-webp.tar.gz" in msg


def test_wrong_class_folders_and_image_size_are_reported(folder_root, tmp_path):
    with pytest.raises(DataError, match="has 10 class folders.*expected 100"):
        cifar.load_cifar_pool("cifar100", folder_root / "cifar10", "train", tmp_path / "cache")
    Image.new("RGB", (28, 28)).save(folder_root / "cifar10" / "test" / "cat" / "x_0.png")
    with pytest.raises(DataError, match="x_0.png is 28x28, expected 32x32"):
        cifar.load_cifar_pool("cifar10", folder_root, "test", tmp_path / "cache")


def test_cifar_lt_on_a_small_copy_caps_and_records(folder_root, tmp_path):
    spec = DataSpec(root=folder_root, cache_dir=tmp_path / "cache")
    data = DATASETS.get("cifar10_lt")(spec)
    assert data.class_counts == [4] * 10 and len(data.test_y) == 40  # every class capped to its 4 images
    p = data.provenance
    assert p["capped_classes"] == list(range(10)) and p["counts_requested"] == class_counts(5000, 10, 100)
    assert p["source"] == "folder" and "differ" in p["note"] and len(p["index_hash"]) == 16
    assert data.mean == (0.4914, 0.4822, 0.4465) and data.crop_padding == 4 and data.hflip
    with pytest.raises(DataError, match="rule B"):  # 4 images per class cannot give 100 val images
        DATASETS.get("cifar10_lt")(DataSpec(root=folder_root, cache_dir=tmp_path / "cache", val="B"))
    with pytest.raises(ConfigError, match="none | B"):
        DATASETS.get("cifar10_lt")(DataSpec(root=folder_root, val="A"))


def test_digits_lt_counts_shapes_and_splits():
    data = DATASETS.get("digits_lt")(DataSpec())
    assert data.class_counts == class_counts(130, 10, 10) == [130, 100, 77, 60, 46, 36, 28, 21, 16, 13]
    assert all(len(g) > 0 for g in shot_groups(data.class_counts).values())
    assert data.train_x.shape == (527, 3, 8, 8) and data.test_x.shape == (400, 3, 8, 8)
    assert data.train_y.bincount().tolist() == data.class_counts
    assert data.test_y.bincount().tolist() == [40] * 10
    assert int(data.train_x.max()) == 255 and (data.train_x[:, 0] == data.train_x[:, 2]).all()
    assert data.crop_padding == 1 and not data.hflip and data.classes == [str(c) for c in range(10)]
    assert 0.2 < data.mean[0] < 0.4 and data.mean[0] == data.mean[1] == data.mean[2]
    val = DATASETS.get("digits_lt")(DataSpec(val="B", subset="first"))
    assert len(val.val_y) == 100 and val.val_y.bincount().tolist() == [10] * 10
    assert val.class_counts[0] == 128 and val.provenance["capped_classes"] == [0]


def test_synthetic_lt_is_deterministic_and_learnable():
    a = DATASETS.get("synthetic_lt")(DataSpec())
    b = DATASETS.get("synthetic_lt")(DataSpec())
    assert a.train_x.equal(b.train_x) and a.test_x.equal(b.test_x) and a.train_y.equal(b.train_y)
    assert a.class_counts == class_counts(60, 10, 10) and a.train_x.shape[1:] == (3, 16, 16)
    assert a.test_y.bincount().tolist() == [20] * 10 and a.crop_padding == 2 and a.hflip
    # nearest class mean on raw pixels, fitted on the LT train set: far above the 10 % chance level
    xs, xt = a.train_x.flatten(1).float(), a.test_x.flatten(1).float()
    centroids = np.stack([xs[a.train_y == c].mean(0).numpy() for c in range(10)])
    pred = ((xt.numpy()[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (pred == a.test_y.numpy()).mean() > 0.5
    assert DATASETS.get("synthetic_lt")(DataSpec(imbalance_ratio=1)).class_counts == [60] * 10


# ---------------------------------------------------------------- real data (tests/conftest.py: cifar10_root, ...)


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ltbench-cache")


@pytest.mark.slow
def test_real_cifar10_lt(cifar10_root, real_cache, monkeypatch):
    spec = DataSpec(root=cifar10_root, cache_dir=real_cache)
    data = DATASETS.get("cifar10_lt")(spec)
    assert len(data.train_y) == 12_406 and data.class_counts == class_counts(5000, 10, 100)
    assert data.train_y.bincount().tolist() == data.class_counts and data.classes == CIFAR10_CLASSES
    assert len(data.test_y) == 10_000 and data.test_y.bincount().tolist() == [1000] * 10

    def boom(*args, **kwargs):
        raise AssertionError("decoded again despite a valid cache")

    monkeypatch.setattr(cifar, "decode_images", boom)  # the second load is served from the cache
    again = DATASETS.get("cifar10_lt")(spec)
    assert again.provenance["index_hash"] == data.provenance["index_hash"] and again.train_x.equal(data.train_x)
    name = sorted((cifar10_root / "cifar10" / "test" / "airplane").iterdir(), key=lambda p: natural_key(p.name))[0]
    with Image.open(name) as im:
        assert np.array_equal(data.test_x[0].permute(1, 2, 0).numpy(), np.asarray(im.convert("RGB")))


@pytest.mark.slow
def test_real_cifar10_val_rule_b(cifar10_root, real_cache):
    data = DATASETS.get("cifar10_lt")(DataSpec(root=cifar10_root, cache_dir=real_cache, val="B"))
    assert len(data.val_y) == 1000 and data.val_y.bincount().tolist() == [100] * 10
    assert data.class_counts[0] == 4900 and data.class_counts[1:] == class_counts(5000, 10, 100)[1:]
    assert data.provenance["capped_classes"] == [0] and data.provenance["val_size"] == 1000


@pytest.mark.slow
def test_real_cifar100_lt(cifar100_root, real_cache):
    data = DATASETS.get("cifar100_lt")(DataSpec(root=cifar100_root, cache_dir=real_cache))
    assert len(data.train_y) == 10_847 and data.class_counts == class_counts(500, 100, 100)
    assert data.provenance["capped_classes"] == []  # the shared IR-10 copy contains every IR >= 10 subset
    assert len(data.test_y) == 10_000 and data.test_y.bincount().tolist() == [100] * 100
    assert data.classes[0] == "apple" and data.classes[-1] == "worm"
    assert {k: len(v) for k, v in shot_groups(data.class_counts).items()} == {"many": 35, "medium": 35, "few": 30}


def test_explicit_class_counts_replace_the_profile(tmp_path):
    """--class-counts (Liu & Liu's toy studies): any counts, one per class, same subset rule and provenance."""
    import subprocess
    import sys

    from ltbench.data.longtail import parse_class_counts

    assert parse_class_counts("5000x9,100") == (5000,) * 9 + (100,)
    assert parse_class_counts("3\n2, 1x2") == (3, 2, 1, 1)
    for bad in ("5000x9,0", "abc", "", "10x0"):
        with pytest.raises(ConfigError, match="class-counts"):
            parse_class_counts(bad)
    data = DATASETS.get("synthetic_lt")(DataSpec(class_counts=(5, 20, 3, 20, 20, 20, 20, 20, 20, 8)))
    assert data.class_counts == [5, 20, 3, 20, 20, 20, 20, 20, 20, 8]
    assert data.provenance["profile"] == "custom" and data.provenance["imbalance_ratio"] == pytest.approx(20 / 3)
    with pytest.raises(ConfigError, match="gives 2 counts; this dataset has 10 classes"):
        DATASETS.get("synthetic_lt")(DataSpec(class_counts=(5, 3)))
    with pytest.raises(ConfigError, match="drop --imbalance-ratio"):
        RunConfig(method="ce", dataset="synthetic_lt", train_counts=(5,) * 10, imbalance_ratio=10)
    assert RunConfig(method="ce").run_id == RunConfig(method="ce", train_counts=None).run_id  # old run ids stay
    counts_file = tmp_path / "counts.txt"
    counts_file.write_text("20x9\n5\n")
    base = [sys.executable, "-m", "ltbench", "run", "--method", "ce", "--dataset", "synthetic_lt", "--epochs", "1"]
    base += ["--quiet", "--device", "cpu"]
    cmd = [*base, "--class-counts", str(counts_file), "--out", str(tmp_path / "o")]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    [result] = (tmp_path / "o" / "runs").glob("*/result.json")
    assert json.loads(result.read_text())["data"]["class_counts"] == [20] * 9 + [5]
    too_many = subprocess.run(
        [*base, "--class-counts", "999x10", "--out", str(tmp_path / "p")], capture_output=True, text=True
    )
    assert too_many.returncode == 2 and "lower those classes' --class-counts" in too_many.stderr
    bad = subprocess.run([*base, "--class-counts", "5x9,zero"], capture_output=True, text=True)
    assert bad.returncode == 2 and "accepted: positive integers" in bad.stderr


def test_similar_sample_injection_mixes_a_share_of_one_class_towards_another():
    """--mix-similar SRC:DST:RHO:LAMBDA (Liu & Liu §4.2): round(ρ·n_src) images of SRC become
    round(λ·x_src + (1−λ)·x_dst) with x_dst from DST; labels, other images and the test set are unchanged."""
    import torch

    from ltbench.data.similar import inject_similar

    clean = DATASETS.get("synthetic_lt")(DataSpec())
    data = inject_similar(DATASETS.get("synthetic_lt")(DataSpec()), "0:9:0.5:0.25")
    info = data.provenance["mix_similar"]
    n_src = clean.class_counts[0]
    assert info["replaced"] == round(0.5 * n_src) and (info["src"], info["dst"], info["seed"]) == (0, 9, 0)
    assert torch.equal(data.train_y, clean.train_y) and torch.equal(data.test_x, clean.test_x)
    changed = (data.train_x != clean.train_x).flatten(1).any(1)
    assert set(clean.train_y[changed].tolist()) <= {0} and int(changed.sum()) <= info["replaced"]
    dst_images = clean.train_x[clean.train_y == 9].float()
    for i in torch.nonzero(changed).flatten()[:5].tolist():  # each changed image is one of the admissible mixes
        mixes = (0.25 * clean.train_x[i].float() + 0.75 * dst_images).round()
        assert (mixes == data.train_x[i].float()).flatten(1).all(1).any()
    again = inject_similar(DATASETS.get("synthetic_lt")(DataSpec()), "0:9:0.5:0.25")
    assert torch.equal(again.train_x, data.train_x)  # a fixed seed: every run seed trains on the same images
    for bad in ("0:9:1.5:0.2", "0:0:0.2:0.2", "0:9:0.2", "a:b:c:d"):
        with pytest.raises(ConfigError, match="--mix-similar"):
            RunConfig(method="ce", dataset="synthetic_lt", mix_similar=bad)
    with pytest.raises(ConfigError, match="not a class of"):
        inject_similar(DATASETS.get("synthetic_lt")(DataSpec()), "0:zebra:0.2:0.2")
    assert RunConfig(method="ce").run_id == RunConfig(method="ce", mix_similar=None).run_id
    assert RunConfig(method="ce").run_id != RunConfig(method="ce", mix_similar="0:9:0.2:0.2").run_id


def test_similar_sample_pairing_follows_the_release_by_default():
    """PAIRING balanced (default): DST's images tiled as in the authors' verification/imbalance_cifar.py, each
    mixed into the same number of SRC images (ρ = 0.1 of 5,000 with 50 tail images: 10 each); random: uniform
    draws with replacement, the same draws as before the option existed. The pairing is always written out."""
    from ltbench.data.similar import SEED, _partners, inject_similar

    dst = np.arange(1000, 1050)
    balanced = _partners(np.random.RandomState(0), dst, 500, "balanced")
    assert sorted(set(np.bincount(balanced - 1000).tolist())) == [10]
    assert set(np.bincount(_partners(np.random.RandomState(0), dst, 70, "balanced") - 1000).tolist()) == {1, 2}
    rng = np.random.RandomState(SEED)
    assert np.array_equal(_partners(np.random.RandomState(SEED), dst, 30, "random"), rng.choice(dst, 30, replace=True))
    assert len(set(np.bincount(_partners(np.random.RandomState(0), dst, 500, "random") - 1000).tolist())) > 1
    assert RunConfig(method="ce", mix_similar="0:9:0.2:0.2").mix_similar == "0:9:0.2:0.2:balanced"
    assert RunConfig(method="ce", mix_similar="0:9:0.2:0.2:random").mix_similar == "0:9:0.2:0.2:random"
    same = RunConfig(method="ce", mix_similar="0:9:0.2:0.2").run_id
    assert same == RunConfig(method="ce", mix_similar="0:9:0.2:0.2:balanced").run_id
    assert same != RunConfig(method="ce", mix_similar="0:9:0.2:0.2:random").run_id
    with pytest.raises(ConfigError, match="PAIRING 'tiled' is not one of balanced, random"):
        RunConfig(method="ce", mix_similar="0:9:0.2:0.2:tiled")
    a = inject_similar(DATASETS.get("synthetic_lt")(DataSpec()), "0:9:0.5:0.25:balanced")
    b = inject_similar(DATASETS.get("synthetic_lt")(DataSpec()), "0:9:0.5:0.25:random")
    assert a.provenance["mix_similar"]["pairing"] == "balanced" and b.provenance["mix_similar"]["pairing"] == "random"
    assert a.provenance["mix_similar"]["replaced_hash"] == b.provenance["mix_similar"]["replaced_hash"]  # same images
    assert a.provenance["mix_similar"]["partners_hash"] != b.provenance["mix_similar"]["partners_hash"]
