"""Recipe files: ``ltbench run --config recipe.toml`` and the ``--dry-run`` output that writes one.

A recipe holds the same keys as ``ltbench run``'s flags (RunConfig fields; ``lr`` and ``batch_size`` as the
flags of that name) plus an ``[hparams]`` table for ``--set`` values. ``--dry-run`` prints the configuration as
such a file, followed by a ``[resolved]`` table: what it resolves to (presets applied, epochs scaled, backbone,
every stage). Reading a recipe back, ``[resolved]`` is checked, never read: a recipe that no longer resolves to
what it says (ltbench's defaults changed, or the table was edited) is refused instead of training silently
something else. Torch is not imported here; ``dry_run`` imports what resolving needs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltbench.config import FIELDS, RunConfig
from ltbench.errors import ConfigError

# fields whose flag is not their name (--from -> from_run, --class-counts -> train_counts)
FLAG_ALIASES = {
    f.metadata["flag"].lstrip("-").replace("-", "_"): name for name, f in FIELDS.items() if f.metadata.get("flag")
}
HPARAM_FLAGS = ("lr", "batch_size", "schedule")  # shorthands of hparams (--lr, --batch-size, --schedule)
TABLES = ("hparams", "resolved")


def file_fields() -> list[str]:
    """The top-level keys a recipe accepts: the fields ``ltbench run`` has a flag for, then --lr/--batch-size."""
    return [n for n, f in FIELDS.items() if f.metadata.get("cli", True)] + list(HPARAM_FLAGS)


@dataclass
class Recipe:
    """A parsed recipe file: RunConfig keyword values, hparams, and the ``[resolved]`` table it claims."""

    path: Path | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    resolved: dict[str, Any] | None = None


def read_recipe(path: str | Path) -> Recipe:
    """Parse and type-check a recipe; every problem is one ConfigError naming the file and the key."""
    path = Path(path).expanduser()
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from None
    recipe = Recipe(path=path)
    valid = file_fields()
    flags = {}
    for raw_key, value in doc.items():
        key = FLAG_ALIASES.get(raw_key, raw_key.replace("-", "_"))
        if key in TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {raw_key} must be a table ([{key}]), got {value!r}")
            if key == "hparams":
                recipe.hparams.update(value)
            else:
                recipe.resolved = value
        elif key in HPARAM_FLAGS:
            flags[key] = _typed(path, raw_key, value, "float" if key == "lr" else "int")
        elif key in valid:
            recipe.fields[key] = field_value(path, key, value)
        else:
            shown = ", ".join(valid + [f"[{t}]" for t in TABLES])
            raise ConfigError(f"{path}: unknown key {raw_key!r}; valid: {shown}")
    for key in set(flags) & set(recipe.hparams):
        raise ConfigError(f"{path}: {key} is given twice, at the top level and in [hparams]; keep one")
    recipe.hparams.update(flags)
    return recipe


def field_value(path: Path, key: str, value: Any) -> Any:
    """A TOML value as the RunConfig field ``key`` holds it (from the field's annotation)."""
    hint = str(FIELDS[key].type)
    if key == "preset":
        if isinstance(value, str):
            value = [p for p in value.split(",") if p]
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise ConfigError(f'{path}: preset must be a list of names (e.g. ["quick"]), got {value!r}')
        return tuple(value)
    if key == "shots":
        if isinstance(value, str):
            value = value.split(",")
        try:
            many, few = (int(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: shots must be [MANY, FEW] (e.g. [100, 20]), got {value!r}") from None
        return many, few
    for kind in ("bool", "int", "float", "str"):
        if hint.startswith(kind):
            return _typed(path, key, value, kind)
    return value


def _typed(path: Path, key: str, value: Any, kind: str) -> Any:
    is_bool = isinstance(value, bool)
    ok = {
        "bool": is_bool,
        "int": isinstance(value, int) and not is_bool,
        "float": isinstance(value, (int, float)) and not is_bool,
        "str": isinstance(value, str),
    }[kind]
    if not ok:
        example = {"bool": "true", "int": "200", "float": "0.1", "str": '"name"'}[kind]
        raise ConfigError(f"{path}: {key} = {value!r}: expected {kind} (e.g. {key} = {example})")
    return float(value) if kind == "float" else value


# ---------------------------------------------------------------------------------------------- writing TOML
def toml_value(value: Any) -> str:
    """One TOML value (strings, numbers, booleans, arrays); None has no TOML form (TypeError)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _key(key: str) -> str:
    bare = key and all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in key)
    return key if bare else json.dumps(key, ensure_ascii=False)


def toml_lines(table: dict[str, Any]) -> list[str]:
    """``key = value`` lines; a None (or unrepresentable) value becomes a comment, so the file stays valid."""
    lines = []
    for key, value in table.items():
        try:
            lines.append(f"{_key(key)} = {toml_value(value)}")
        except TypeError:
            lines.append(f"# {_key(key)} = {value!r}  (no TOML form: left out)")
    return lines


def render(config: dict[str, Any], hparams: dict[str, Any], resolved: dict[str, Any] | None) -> str:
    """A recipe file: top-level keys, ``[hparams]``, then ``[resolved]`` with its hp table and stages."""
    lines = toml_lines(config) + ["", "[hparams]"] + toml_lines(hparams)
    if resolved is not None:
        rest = {k: v for k, v in resolved.items() if k not in ("hp", "stages")}
        lines += ["", "[resolved]"] + toml_lines(rest) + ["", "[resolved.hp]"] + toml_lines(resolved["hp"])
        for stage in resolved.get("stages", []):
            lines += ["", "[[resolved.stages]]"] + toml_lines(stage)
    return "\n".join(lines) + "\n"


def config_table(cfg: RunConfig) -> dict[str, Any]:
    """The top-level keys of ``cfg``'s recipe: every field that defines the result (None: the default, left
    out), and the runtime fields only where they differ from their defaults."""
    out = {}
    default = RunConfig()
    for name in file_fields():
        if name in HPARAM_FLAGS or (value := getattr(cfg, name)) is None:
            continue
        meta = FIELDS[name].metadata
        if (meta.get("runtime") or meta.get("quiet")) and value == getattr(default, name):
            continue
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


# ---------------------------------------------------------------------------------------------- checking
def check_resolved(recipe: Recipe, fresh: dict[str, Any]) -> None:
    """Refuse a recipe whose ``[resolved]`` table differs from what its configuration resolves to now."""
    if recipe.resolved is None:
        return
    now = tomllib.loads(render({}, {}, fresh))["resolved"]  # the same normalisation as the file went through
    path = _first_difference(recipe.resolved, now)
    if path is None:
        return
    said, got = _at(recipe.resolved, path), _at(now, path)
    from ltbench import __version__

    raise ConfigError(
        f"{recipe.path}: [resolved] {path} is {said} but this configuration resolves to {got} with ltbench "
        f"{__version__} (defaults changed, or [resolved] was edited); change values in [hparams] or the top-level "
        "keys, or delete [resolved] to accept what it resolves to now"
    )


_MISSING = "(absent)"


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                return sub
            found = _first_difference(a[key], b[key], sub)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    same = a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    return None if same and type(a) is type(b) else path


def _at(doc: Any, path: str) -> str:
    for part in path.replace("[", ".[").split("."):
        if part.startswith("["):
            index = int(part[1:-1])
            doc = doc[index] if isinstance(doc, list) and index < len(doc) else _MISSING
        elif isinstance(doc, dict):
            doc = doc.get(part, _MISSING)
    return doc if doc is _MISSING else repr(doc)


def asdict_stage(stage: Any) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(stage).items()}


# ---------------------------------------------------------------------------------------------- --dry-run
def resolved_table(cfg: RunConfig) -> tuple[dict[str, Any], list[str]]:
    """What ``cfg`` resolves to, as ``[resolved]`` holds it, and warnings; no data read, nothing written.

    The stages are the method's own, built with the dataset's nominal class counts (stages depend on hparams
    only) and with the backbone's training recipe applied as the trainer applies it."""
    from ltbench.run import prepare

    method_cls, resolved = prepare(cfg)
    table = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(resolved).items()}
    stages, warnings = _stages(cfg, method_cls, resolved)
    if stages is not None:
        table["stages"] = [asdict_stage(s) for s in stages]
    return table, warnings


def _stages(cfg: RunConfig, method_cls: type, resolved: Any) -> tuple[list | None, list[str]]:
    import torch

    from ltbench.data.base import DataSpec
    from ltbench.data.nominal import nominal
    from ltbench.method import DataInfo
    from ltbench.models.backbones import build_backbone
    from ltbench.run import explicit_lrs
    from ltbench.train.recipes import apply_backbone_recipe

    spec = DataSpec(imbalance_ratio=cfg.imbalance_ratio, profile=cfg.profile, val=cfg.val, image_size=cfg.image_size)
    shape = nominal(cfg.dataset, spec)
    if shape is None:
        return None, [f"dataset {cfg.dataset} cannot be described without reading it: stages not shown"]
    if cfg.image_size is not None and shape.resize is None:
        raise ConfigError(
            f"--image-size applies to file-backed datasets (imagenet_lt, places_lt, inat2018), not {cfg.dataset}"
        )
    counts = shape.class_counts or [1] * shape.num_classes  # unknown before the split files are read
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    method = method_cls(dict(resolved.hp), DataInfo(shape.num_classes, counts, shape.image_size, cfg.dataset, labels))
    recipe = getattr(build_backbone(resolved.backbone, shape.image_size), "recipe", None)  # never pretrained here
    stages = apply_backbone_recipe(method.stages(), recipe, set(explicit_lrs(cfg, resolved)))
    return stages, _batch_warnings(cfg.dataset, stages, shape.train_size)


def _batch_warnings(dataset: str, stages: list, train_size: int | None) -> list[str]:
    """A batch larger than the training set makes every epoch one short batch (or no step with drop_last)."""
    if train_size is None:
        return []
    out = []
    for stage in stages:
        if stage.batch_size > train_size:
            effect = "no step at all (drop_last)" if stage.drop_last else "a single batch per epoch"
            out.append(
                f"stage {stage.name!r}: batch size {stage.batch_size} exceeds the ~{train_size} training images of "
                f"{dataset} (requested class counts): {effect}"
            )
    return out


def dry_run(cfg: RunConfig) -> tuple[str, list[str]]:
    """The recipe file ``cfg`` amounts to on this machine (precision ``auto`` made concrete, as the run id
    is), with its ``[resolved]`` table, and the warnings to print beside it."""
    from ltbench import __version__
    from ltbench.run import concrete

    cfg = concrete(cfg)
    table, warnings = resolved_table(cfg)
    head = [
        f"# ltbench {__version__} run --dry-run: {cfg.method} on {cfg.dataset}; nothing was read, trained or written",
        f"# run id  {cfg.run_id}",
        f"# run dir {cfg.run_dir}",
        "# `ltbench run --config THIS_FILE` runs it. [resolved] is what it resolves to: checked when the file is",
        "# read, never read as settings (change the keys above it).",
    ]
    return "\n".join(head) + "\n" + render(config_table(cfg), dict(cfg.hparams), table), warnings
