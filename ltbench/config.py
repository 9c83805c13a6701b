"""Run configuration: what the user asked for, its validation, and the run id.

``RunConfig`` is the user-level request (a frozen dataclass, hashable into the run id). ``resolve``
turns it into the concrete recipe (hparams with defaults, presets and overrides; epoch values scaled;
backbone) that config.json records. Torch is not imported here so the CLI can validate quickly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench.errors import ConfigError

QUICK_EPOCHS = 20  # --preset quick: the first stage gets ~20 epochs (200 -> 20 for the CIFAR recipe, issue 2)
SCALE_PRESETS = ("quick",)
CHOICES = {
    "profile": ("exp", "step"),
    "subset": ("ldam", "first"),
    "val": ("none", "B"),
    "device": ("auto", "cpu", "cuda"),
    "precision": ("auto", "bf16", "fp32"),
}
# Fields that change where or how fast a run executes, not what it computes: excluded from the run id.
RUNTIME_FIELDS = ("data_root", "out", "device", "threads", "sweep", "eval_every", "compile", "workers")


IDENTITY_DEFAULTS = {"pretrained": False, "image_size": None}


def default_out() -> str:
    return os.environ.get("LTBENCH_OUT", "ltbench-out")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run. ``None`` means "the method's or dataset's default"."""

    method: str = "bns_ipdpp"  # the paper ltbench is built around (issue 6)
    dataset: str = "digits_lt"
    backbone: str | None = None
    epochs: int | None = None
    preset: tuple[str, ...] = ()
    seed: int = 0
    hparams: dict[str, Any] = field(default_factory=dict)
    imbalance_ratio: float | None = None
    profile: str = "exp"
    subset: str = "ldam"
    val: str = "none"
    shots: tuple[int, int] | None = None  # None: (100, 20) — many > 100, few < 20 (shot_acc, §0.3) or a preset's
    ssp: bool = False
    precision: str = "auto"
    deterministic: bool = False
    data_root: str | None = None
    out: str = field(default_factory=default_out)
    sweep: str = "runs"
    device: str = "auto"
    threads: int | None = None
    eval_every: int = 10
    compile: bool = False
    pretrained: bool = False  # timm weights (ImageNet-pretrained backbones), never silently random
    image_size: int | None = None  # file-backed datasets (ImageNet-LT & co.): crop side, default 224
    workers: int | None = None  # file-backed datasets: decoding processes

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                flag = name.replace("_", "-")
                raise ConfigError(f"--{flag} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be a positive integer, got {self.epochs}")
        if self.imbalance_ratio is not None and not self.imbalance_ratio >= 1:
            raise ConfigError(f"--imbalance-ratio must be >= 1, got {self.imbalance_ratio}")
        many, few = self.shots or (100, 20)
        if not 0 <= few <= many:
            raise ConfigError(f"--shots MANY,FEW needs 0 <= FEW <= MANY, got {many},{few}")
        if self.image_size is not None and not 8 <= self.image_size <= 1024:
            raise ConfigError(f"--image-size must be between 8 and 1024, got {self.image_size}")
        if self.workers is not None and not 0 <= self.workers <= 64:
            raise ConfigError(f"--workers must be between 0 and 64, got {self.workers}")
        if self.eval_every < 0:
            raise ConfigError(f"--eval-every must be >= 0, got {self.eval_every}")

    def identity(self) -> dict[str, Any]:
        """The fields that define the result (the run id is a hash of their canonical JSON)."""
        d = dataclasses.asdict(self)
        for k in RUNTIME_FIELDS:
            d.pop(k)
        for k, default in IDENTITY_DEFAULTS.items():  # fields added later: old run ids stay valid
            if d[k] == default:
                d.pop(k)
        return d

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        digest = hashlib.sha256(blob).hexdigest()[:10]
        return f"{self.method}-{self.dataset}-s{self.seed}-{digest}"

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.sweep / self.run_id


def parse_value(text: str, kind: type, key: str) -> Any:
    """Parse ``--set key=text`` as the declared type of the hparam (bool, int, float, str, tuple)."""
    try:
        if kind is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            value = float(text)
            if value != value:
                raise ValueError
            return value
        if kind in (tuple, list):
            return (
                tuple(json.loads(text))
                if text.strip().startswith("[")
                else tuple(_auto(t) for t in text.split(",") if t.strip())
            )
        return text
    except (ValueError, json.JSONDecodeError):
        example = _EXAMPLES.get(kind.__name__, "a value")
        raise ConfigError(f"--set {key}={text!r}: expected {kind.__name__} (e.g. {example})") from None


_EXAMPLES = {"int": "128", "float": "0.1 or 1e-3", "bool": "true/false", "tuple": "60,80", "list": "60,80"}


def _auto(text: str) -> Any:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text.strip()


def parse_sets(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{k: v}`` (values stay strings until the method's declared types are known)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out
