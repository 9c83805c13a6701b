"""The two decoders of file-backed datasets (ltbench/data/files.py) and ``ltbench bench decode``."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from ltbench.config import RunConfig
from ltbench.data.files import FileImages, available_decoder, decode
from ltbench.errors import ConfigError, DataError
from ltbench.inference.preprocess import Preprocess


def _gradient(path, w: int = 120, h: int = 90, fmt: str | None = None) -> str:
    """A smooth image whose every region looks different: crops of different boxes differ by tens of levels."""
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], -1).astype(np.uint8)
    Image.fromarray(arr).save(path, format=fmt, quality=95) if fmt != "BMP" else Image.fromarray(arr).save(path)
    return str(path)


def test_both_decoders_crop_the_same_regions_from_the_same_seed(tmp_path):
    path = _gradient(tmp_path / "a.jpg")
    for seed in range(5):
        pil = decode(path, 32, 37, random.Random(seed), "pil").double().numpy()
        tv = decode(path, 32, 37, random.Random(seed), "torchvision").double().numpy()
        assert pil.shape == tv.shape == (3, 32, 32)
        assert np.abs(pil - tv).mean() < 1.5  # same box, two bilinear antialiased resamplers
        other = decode(path, 32, 37, random.Random(seed + 100), "torchvision").double().numpy()
        assert np.abs(other - tv).mean() > 5  # another box is far off: the check above can fail
    pil, tv = (decode(path, 32, 37, None, d).double().numpy() for d in ("pil", "torchvision"))
    assert np.abs(pil - tv).mean() < 5  # Resize + CenterCrop in two resamplings (whole pixels) vs one


def test_torchvision_falls_back_to_pil_and_bad_files_are_errors(tmp_path):
    bmp = _gradient(tmp_path / "a.bmp", fmt="BMP")  # a format torchvision.io does not decode
    tv, pil = (decode(bmp, 32, 37, random.Random(1), d) for d in ("torchvision", "pil"))
    assert torch.equal(tv, pil)
    frames = [Image.fromarray(np.full((40, 50, 3), v, np.uint8)) for v in (30, 200)]
    frames[0].save(tmp_path / "c.gif", save_all=True, append_images=frames[1:])  # animated: the first frame
    first = decode(str(tmp_path / "c.gif"), 16, 18, None, "torchvision")
    assert first.shape == (3, 16, 16) and torch.equal(first, decode(str(tmp_path / "c.gif"), 16, 18, None, "pil"))
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"not an image")
    for decoder in ("torchvision", "pil"):
        with pytest.raises(DataError, match="cannot decode image .*b.jpg"):
            decode(str(bad), 32, 37, None, decoder)
    with pytest.raises(ValueError, match="not one of torchvision, pil"):
        decode(bmp, 32, 37, None, "cv2")


def test_a_torchvision_without_image_decoders_falls_back_to_pil(monkeypatch):
    import torchvision.io

    assert available_decoder("torchvision") == "torchvision" and available_decoder("pil") == "pil"
    monkeypatch.delattr(torchvision.io, "decode_image")
    assert available_decoder("torchvision") == "pil"


def test_the_decoder_is_an_option_recorded_and_in_the_run_id_only_when_not_the_default(tmp_path):
    assert "decoder" not in RunConfig().identity()
    assert RunConfig(decoder="pil").identity()["decoder"] == "pil"
    assert RunConfig(decoder="pil").run_id != RunConfig().run_id
    with pytest.raises(ConfigError, match="--decoder 'cv2' is not one of torchvision, pil"):
        RunConfig(decoder="cv2")
    images = FileImages([_gradient(tmp_path / "a.jpg")], 32, 37, 0, "pil")
    assert images[torch.tensor([0])].decoder == "pil"  # a subset keeps it
    # predict/export: a run recorded before --decoder existed was decoded by PIL
    old = {"mean": [0.5] * 3, "std": [0.2] * 3, "image_size": 32, "resize": 37}
    path = _gradient(tmp_path / "b.jpg")
    assert Preprocess.from_dict(old).decoder is None
    assert torch.equal(Preprocess.from_dict(old).load(path), decode(path, 32, 37, None, "pil"))
    assert Preprocess.from_dict({**old, "decoder": "torchvision"}).as_dict()["decoder"] == "torchvision"


def test_bench_decode_times_both_decoders_on_a_folder(tmp_path, capsys):
    from ltbench.cli import main

    for i in range(6):
        _gradient(tmp_path / f"{i}.jpg", 60 + 10 * i, 50)
    assert main(["bench", "decode", "--folder", str(tmp_path), "--workers", "0", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("pil ", "torchvision "))]
    kinds = {(r[0], r[-3]) for r in rows if r[1] == "main"}
    assert {("pil", "train"), ("pil", "eval"), ("torchvision", "train"), ("torchvision", "eval")} <= kinds, out
    assert all(float(r[-1]) == 1.0 for r in rows if r[0] == "pil")  # the ratio column is relative to PIL
    assert "6 JPEGs" in out and "torchvision batched decode_jpeg (cpu)" in out


def test_bench_decode_makes_jpegs_from_real_cifar10(cifar10_root, tmp_path):
    from ltbench.bench.decode import make_jpegs

    paths = make_jpegs(cifar10_root, tmp_path / "j", 6)
    sizes = [Image.open(p).size for p in paths]
    assert sizes[:3] == [(256, 256), (341, 256), (256, 341)] and len(sizes) == 6
    assert make_jpegs(cifar10_root, tmp_path / "j", 6) == paths  # reused
    with pytest.raises(DataError, match="makes its JPEGs from CIFAR-10"):
        make_jpegs(tmp_path / "nothing", tmp_path / "k", 6)
