"""A finished run's evaluation preprocessing, applied to image files: what ``ltbench predict`` feeds a model.

The dataset's evaluation is reproduced: file-backed datasets (ImageNet-LT, Places-LT, iNaturalist) resize the
shorter side to ``resize`` and centre-crop ``image_size``, with the very function their workers use; the
in-memory datasets (CIFAR, digits, synthetic) hold square images of ``image_size``, so a file is centre-cropped
to a square and resized to it. Then the dataset's mean and std, as ``ltbench.data.transforms.normalise``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ltbench.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


@dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing: ``load(path)`` gives a uint8 (3, S, S) image, ``self(x)`` normalises a batch."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    resize: int | None = None  # file-backed datasets: the shorter side before the centre crop
    decoder: str | None = None  # file-backed datasets: the run's --decoder (None: in-memory, or recorded before it)

    @classmethod
    def of_run(cls, config: dict, result: dict) -> Preprocess:
        """From result.json (recorded since the toolbox) or, for older runs, the dataset's own constants."""
        recorded = result["data"].get("preprocess")
        if recorded:
            return cls.from_dict(recorded)
        from ltbench.data.base import DataSpec
        from ltbench.data.nominal import nominal

        cfg = config["config"]
        spec = DataSpec(imbalance_ratio=cfg.get("imbalance_ratio"), profile=cfg.get("profile", "exp"))
        shape = nominal(result["data"]["name"], spec)
        if shape is None:
            raise DataError(f"the normalisation of dataset {result['data']['name']!r} is neither recorded nor known")
        return cls(shape.mean, shape.std, result["data"]["image_size"], shape.resize)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        """The inverse of :meth:`as_dict` (records from before ``--decoder`` have no decoder)."""
        return cls(tuple(d["mean"]), tuple(d["std"]), d["image_size"], d["resize"], d.get("decoder"))

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def load(self, path: str | Path) -> torch.Tensor:
        """One image file as uint8 (3, image_size, image_size); a DataError names the file and the reason."""
        from ltbench.data.files import centre_box, decode

        if self.resize is not None:
            # runs recorded before --decoder existed were decoded by PIL
            return decode(str(path), self.image_size, self.resize, None, self.decoder or "pil")
        from PIL import Image

        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                box = centre_box(*im.size, self.image_size, self.image_size)  # the central square
                out = im.resize((self.image_size, self.image_size), Image.BILINEAR, box=box)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {path}: {exc}") from exc
        return torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) (or one (3, H, W) image) -> float32 normalised, as the dataset's evaluation."""
        x = images.unsqueeze(0) if images.dim() == 3 else images
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x.float() * (1.0 / 255.0) - mean) / std


def image_files(paths: list[str | Path]) -> list[Path]:
    """Files named, and the images directly inside folders named (sorted); a missing path is an error."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return out
