"""Resolve a RunConfig against its method: defaults, presets, ``--set`` overrides and epoch scaling.

The result is what config.json records, so a run directory always says exactly which recipe ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ltbench.config import QUICK_EPOCHS, SCALE_PRESETS, RunConfig, parse_value
from ltbench.data.longtail import default_shots
from ltbench.errors import ConfigError
from ltbench.method import HP


@dataclass
class Resolved:
    hp: dict[str, Any]
    backbone: str
    scale: float
    presets: tuple[str, ...]
    shots: tuple[int, int] = (100, 20)
    pretrained: bool = False  # --pretrained, or a preset that starts from pretrained weights (Places-LT)


def per_dataset(value: Any, dataset: str) -> Any:
    """Preset values may depend on the dataset: ``{"cifar100_lt": a, "*": b}``."""
    if isinstance(value, dict):
        return value.get(dataset, value.get("*"))
    return value


def scale_epoch(value: Any, scale: float) -> Any:
    """Scale an epoch hparam: integers round half up and stay >= 1 unless they were 0; floats scale."""
    if scale == 1.0 or value is None:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return 0 if value == 0 else max(1, math.floor(value * scale + 0.5))
    return float(value) * scale


def check_value(key: str, value: Any, spec: HP) -> Any:
    """Type-check (and parse, for strings from the command line) one override."""
    kind = spec.kind
    if isinstance(value, str) and kind is not str:
        value = parse_value(value, kind, key)
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif kind in (tuple, list) and isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"--set {key}={value!r}: expected {kind.__name__}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"--set {key}={value!r}: must be one of {', '.join(map(str, spec.choices))}")
    return value


def check_ranges(hp: dict[str, Any]) -> None:
    """Values no recipe can use, caught before any data is read: non-finite numbers, batch sizes < 1,
    learning rates <= 0, negative epoch counts. (Types are checked by ``check_value``.)"""
    for key, value in hp.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            raise ConfigError(f"hparam {key}={value}: must be a finite number")
        if key.endswith("batch_size") and value < 1:
            raise ConfigError(f"hparam {key}={value}: a batch size must be >= 1")
        if (key == "lr" or key.endswith("_lr")) and value <= 0:
            raise ConfigError(f"hparam {key}={value}: a learning rate must be > 0")
        if key.endswith("epochs") and value < 0:
            raise ConfigError(f"hparam {key}={value}: an epoch count must be >= 0")


def _group(key: str, spec: HP) -> str:
    """The stage-length hparam an epoch hparam is relative to (``epoch=True`` means ``epochs``)."""
    return spec.epoch if isinstance(spec.epoch, str) else "epochs"


def _epoch_scales(cfg: RunConfig, hp: dict, specs: dict[str, HP], presets: tuple[str, ...]) -> dict[str, float]:
    """One scale per stage length (``epochs``, ``ft_epochs``, ...): ``--epochs N`` gives every stage N epochs,
    ``quick`` gives every stage at most QUICK_EPOCHS, each stage's milestones scaled with it."""
    groups = {_group(k, s) for k, s in specs.items() if s.epoch} | ({"epochs"} & set(hp))
    scales = {}
    for group in groups:
        full = hp.get(group)
        if not isinstance(full, int) or full <= 0:
            continue
        if cfg.epochs is not None:
            scales[group] = cfg.epochs / full
        elif "quick" in presets:
            scales[group] = min(1.0, QUICK_EPOCHS / full)
    return scales


def _suggested(dataset_presets: tuple[str, ...], method_cls: type, cfg: RunConfig) -> tuple[str, ...]:
    """A dataset's suggested presets (used only when the user names none): ``quick`` unless ``--epochs`` is
    given, and method presets named after the dataset's needs (e.g. ``digits``) only where a method has one."""
    return tuple(p for p in dataset_presets if p in method_cls.presets or (p in SCALE_PRESETS and cfg.epochs is None))


def resolve(cfg: RunConfig, method_cls: type, dataset_presets: tuple[str, ...] = ()) -> Resolved:
    """Defaults -> method presets -> ``--set`` overrides; then ``quick``/``--epochs`` scaling."""
    specs: dict[str, HP] = method_cls.hparams
    hp = {k: per_dataset(v.default, cfg.dataset) for k, v in specs.items()}  # defaults may differ by dataset
    presets = cfg.preset or _suggested(dataset_presets, method_cls, cfg)
    backbone, shots, pretrained = None, None, cfg.pretrained
    for name in presets:
        if name in SCALE_PRESETS:
            continue
        if name not in method_cls.presets:
            valid = ", ".join(list(SCALE_PRESETS) + sorted(method_cls.presets))
            raise ConfigError(f"unknown preset {name!r} for method {cfg.method!r}; valid: {valid}")
        for key, value in method_cls.presets[name].items():
            value = per_dataset(value, cfg.dataset)
            if key == "backbone":
                backbone = value
            elif key == "shots":
                shots = tuple(value)
            elif key == "pretrained":
                pretrained = bool(value)
            else:
                hp[key] = value
    explicit = set()
    for key, value in cfg.hparams.items():
        if key not in specs:
            raise ConfigError(f"method {cfg.method!r} has no hparam {key!r}; valid: {', '.join(sorted(specs))}")
        hp[key] = check_value(key, value, specs[key])
        explicit.add(key)
    scales = _epoch_scales(cfg, hp, specs, presets)
    for key, spec in specs.items():
        if spec.epoch and key not in explicit:
            hp[key] = scale_epoch(hp[key], scales.get(_group(key, spec), 1.0))
    for group in scales:
        if cfg.epochs is not None and group not in explicit:
            hp[group] = cfg.epochs
    check_ranges(hp)
    scale = scales.get("epochs", 1.0)
    return Resolved(
        hp=hp,
        backbone=cfg.backbone or backbone or per_dataset(method_cls.default_backbone, cfg.dataset),
        scale=scale,
        presets=tuple(presets),
        shots=tuple(cfg.shots or shots or default_shots(cfg.dataset)),
        pretrained=pretrained,
    )
