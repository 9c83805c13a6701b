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

QUICK_EPOCHS = 20  # --preset quick: the first stage gets ~20 epochs (200 -> 20 for the CIFAR recipe)
SCALE_PRESETS = ("quick",)


# Liu & Liu's release (verification/imbalance_cifar.py, gen_overlaped_data) tiles the tail class's images, so each
# is mixed into an equal share of the replaced head images: "balanced", the default; "random" draws partners
# uniformly with replacement (what ltbench did before the release was read)
MIX_PAIRINGS = ("balanced", "random")
MIX_SIMILAR_FORM = (
    "SRC:DST:RHO:LAMBDA[:PAIRING] (classes by index or name, 0 <= RHO, LAMBDA <= 1, PAIRING balanced (default) or "
    "random), e.g. 0:9:0.2:0.2"
)


def parse_mix_similar(text: str) -> tuple[str, str, float, float, str]:
    """``--mix-similar SRC:DST:RHO:LAMBDA[:PAIRING]`` (ltbench/data/similar.py) checked without touching data."""
    parts = text.split(":")
    try:
        src, dst, rho, lam = parts[0], parts[1], float(parts[2]), float(parts[3])
    except (IndexError, ValueError):
        raise ConfigError(f"--mix-similar {text!r}: expected {MIX_SIMILAR_FORM}") from None
    pairing = parts[4] if len(parts) == 5 else MIX_PAIRINGS[0]
    if len(parts) not in (4, 5) or not (0 <= rho <= 1 and 0 <= lam <= 1) or not src or not dst or src == dst:
        raise ConfigError(f"--mix-similar {text!r}: expected {MIX_SIMILAR_FORM}, SRC and DST different")
    if pairing not in MIX_PAIRINGS:
        raise ConfigError(f"--mix-similar {text!r}: PAIRING {pairing!r} is not one of {', '.join(MIX_PAIRINGS)}")
    return src, dst, rho, lam, pairing


def default_out() -> str:
    return os.environ.get("LTBENCH_OUT", "ltbench-out")


def option(default: Any = None, help: str = "", *, runtime: bool = False, choices: tuple | None = None, **kw: Any):
    """A RunConfig field with what every consumer needs to know about it, so no list of fields is kept by hand:
    ``help`` (the CLI), ``runtime`` (changes where or how fast a run executes, not what it computes: left out of
    the run id), ``choices`` (validated here, listed by the CLI), ``cli=False`` (no ``ltbench run`` flag; set
    otherwise), ``flag`` (the flag's name when it is not the field's), ``id_default`` (a field added after runs
    existed: its default value is left out of the run id so old run ids stay valid), ``quiet`` (also left out of
    config.json and of recipes at its default, so the records of runs that do not use it keep their keys)."""
    meta = {"help": help, "runtime": runtime, "choices": choices}
    meta.update({k: kw.pop(k) for k in ("cli", "id_default", "flag", "quiet") if k in kw})
    if "default_factory" in kw:
        return field(metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run. ``None`` means "the method's or dataset's default"."""

    method: str = option("bns_ipdpp", "registered method (see `ltbench list`; default: bns_ipdpp)")
    dataset: str = option("digits_lt", "registered dataset (default: digits_lt, embedded)")
    backbone: str | None = option(None, "registered backbone or timm:<name> (default: the method's)")
    epochs: int | None = option(None, "epochs of the main stage; every epoch milestone scales with it")
    preset: tuple[str, ...] = option((), "quick (short recipe) and/or a method preset; repeatable")
    seed: int = option(0, "random seed")
    hparams: dict[str, Any] = option(default_factory=dict, help="declared hparams (--set KEY=VALUE)", cli=False)
    imbalance_ratio: float | None = option(None, "n_max / n_min (default: the dataset's, 100 for CIFAR)")
    profile: str = option("exp", "class-count profile", choices=("exp", "step"))
    train_counts: tuple[int, ...] | None = option(
        None,
        "training images per class instead of a profile: N or NxK (N repeated K times), comma-separated, in class "
        "order (e.g. 5000x9,100), or a file holding them",
        id_default=True,
        flag="--class-counts",
    )
    mix_similar: str | None = option(
        None,
        "replace a share RHO of class SRC's training images by LAMBDA*x_src + (1-LAMBDA)*x_dst (x_dst from class "
        "DST; labels kept): SRC:DST:RHO:LAMBDA[:PAIRING], PAIRING balanced (each DST image used equally often, as the "
        "release; default) or random (Liu & Liu §4.2)",
        id_default=True,
    )
    subset: str = option("ldam", "which images: LDAM-DRW's exact rule or dataset order", choices=("ldam", "first"))
    val: str = option("none", "held-out balanced validation split (docs/protocol.md §0.1 B)", choices=("none", "B"))
    shots: tuple[int, int] | None = option(
        None, "many/few thresholds MANY,FEW (default: the dataset's; 500,200 on CIFAR-10-LT, else 100,20)"
    )
    ssp: bool = option(False, "rotation self-supervised stage 0 before the method")
    precision: str = option(
        "auto", "autocast precision (auto: bf16 where the device runs it fast)", choices=("auto", "bf16", "fp32")
    )
    deterministic: bool = option(False, "deterministic algorithms (slower on GPU)")
    data_root: str | None = option(
        None, "data directory (default: $LTBENCH_DATA, else ~/.cache/ltbench/data)", runtime=True
    )
    out: str = option(
        default_factory=default_out, help="output root (default: $LTBENCH_OUT, else ./ltbench-out)", runtime=True
    )
    sweep: str = option("runs", "folder under --out (a sweep's name)", runtime=True, cli=False)
    device: str = option("auto", "training device", runtime=True, choices=("auto", "cpu", "cuda"))
    threads: int | None = option(None, "CPU threads (default: $SLURM_CPUS_PER_TASK or torch's)", runtime=True)
    eval_every: int = option(10, "log test accuracy every N epochs (0: only at the end)", runtime=True)
    compile: bool = option(False, "torch.compile the backbone (for GPUs; not faster on CPU)", runtime=True)
    tracker: str = option(
        "none", "experiment tracker (an observer; needs the extra of that name)", runtime=True,
        choices=("none", "tensorboard", "wandb"),
    )  # fmt: skip
    pretrained: bool = option(False, "timm's pretrained weights (timm backbones only)", id_default=True)
    image_size: int | None = option(None, "ImageNet-LT/Places-LT/iNat: crop size (default 224)", id_default=True)
    workers: int | None = option(None, "ImageNet-LT/Places-LT/iNat: decoding processes (default CPUs-1)", runtime=True)
    decoder: str = option(
        "torchvision",
        "ImageNet-LT/Places-LT/iNat: JPEG decoding and crops by torchvision.io + tensor resize (faster) or by PIL",
        choices=("torchvision", "pil"),
        id_default=True,
    )
    from_run: str | None = option(
        None,
        "take the first stages from a finished run (or a folder of runs) whose stages are identical: a CE run for "
        "cRT/LWS/τ-norm, a contrastive stage 1 for another stage 2",
        runtime=True,
        flag="--from",
    )
    strict_counts: bool = option(
        False, "stop when the data cannot give every class its requested count (default: cap it, say so)", runtime=True
    )
    sync_bn: bool = option(
        False,
        "multi-GPU runs: SyncBatchNorm, BatchNorm statistics over the global batch instead of each GPU's share",
        id_default=True,
        quiet=True,
    )

    def __post_init__(self) -> None:
        from ltbench.cli.catalog import canonical_method

        # a display name (LDAM-DRW, cRT) becomes the registry key here, so run ids and records only hold keys
        object.__setattr__(self, "method", canonical_method(self.method))
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                flag = name.replace("_", "-")
                raise ConfigError(f"--{flag} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be a positive integer, got {self.epochs}")
        if self.train_counts is not None and (self.imbalance_ratio is not None or self.profile != "exp"):
            raise ConfigError("--class-counts gives every class its count: drop --imbalance-ratio / --profile")
        if self.train_counts is not None and not all(isinstance(n, int) and n >= 1 for n in self.train_counts):
            raise ConfigError(f"--class-counts must be positive integers, got {self.train_counts}")
        if self.mix_similar is not None:  # the pairing always written out: run ids and labels say which ran
            pairing = parse_mix_similar(self.mix_similar)[4]
            object.__setattr__(self, "mix_similar", ":".join([*self.mix_similar.split(":")[:4], pairing]))
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
        for f in dataclasses.fields(self):
            if f.metadata.get("runtime") or (f.metadata.get("id_default") and d[f.name] == f.default):
                d.pop(f.name)
        return d

    def record(self) -> dict[str, Any]:
        """config.json's ``config``: every field, except ``quiet`` ones at their default."""
        d = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.metadata.get("quiet") and d[f.name] == f.default:
                d.pop(f.name)
        return d

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        digest = hashlib.sha256(blob).hexdigest()[:10]
        return f"{self.method}-{self.dataset}-s{self.seed}-{digest}"

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.sweep / self.run_id


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
RUNTIME_FIELDS = tuple(n for n, f in FIELDS.items() if f.metadata.get("runtime"))
CHOICES = {n: f.metadata["choices"] for n, f in FIELDS.items() if f.metadata.get("choices")}
# What a run's identity holds besides method, dataset, seed and hparams (report columns, table row labels)
SETTING_FIELDS = tuple(
    n for n, f in FIELDS.items() if not f.metadata.get("runtime") and n not in ("method", "dataset", "seed", "hparams")
)


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
