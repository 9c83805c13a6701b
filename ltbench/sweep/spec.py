"""Sweeps: expand methods x datasets x backbones x seeds x hparams into RunConfigs, read their states
from the run directories, and decide what to launch (DomainBed's sweep.py idea: config hash -> run dir
-> ``done`` marker -> launch only what is missing).

Random hparam draws are seeded per hparam (method, dataset, trial, hparam name), so adding a new hparam
to a method does not reshuffle the values already drawn for the others.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ltbench.config import FIELDS, RunConfig
from ltbench.errors import ConfigError

# RunConfig fields a sweep's [run] table may set (the sweep itself sets method, dataset, backbone, seed, hparams,
# its name and the output root)
RUN_FIELDS = tuple(n for n in FIELDS if n not in ("method", "dataset", "backbone", "seed", "hparams", "sweep", "out"))


@dataclass
class SweepSpec:
    name: str
    methods: list[str]
    datasets: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    backbones: list[str | None] = field(default_factory=lambda: [None])
    grids: dict[str, dict[str, list]] = field(default_factory=dict)  # method (or "*") -> hparam -> values
    n_hparams: int = 0
    run: dict[str, Any] = field(default_factory=dict)  # RunConfig fields shared by every run
    out: str | None = None
    fields: dict[str, list] = field(default_factory=dict)  # [grid]: RunConfig field -> values, one run per combination


def load_spec(path: Path) -> SweepSpec:
    """A TOML sweep file (see slurm/*.toml). Unknown keys are errors, not silently ignored."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read sweep file {path}: {exc}") from None
    sweep = dict(raw.get("sweep", {}))
    unknown = set(raw) - {"sweep", "hparams", "run", "grid"}
    unknown |= set(sweep) - {"name", "methods", "datasets", "seeds", "backbones", "n_hparams", "out"}
    unknown |= set(raw.get("run", {})) - set(RUN_FIELDS)
    unknown |= set(raw.get("grid", {})) - set(RUN_FIELDS)
    for key, values in raw.get("grid", {}).items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep file {path}: [grid] {key} must be a non-empty list of values, got {values!r}")
    if unknown:
        raise ConfigError(f"sweep file {path}: unknown keys {sorted(unknown)}; run keys allowed: {RUN_FIELDS}")
    for key in ("methods", "datasets"):
        if not sweep.get(key):
            raise ConfigError(f"sweep file {path}: [sweep] needs a non-empty '{key}' list")
    return SweepSpec(
        name=sweep.get("name", Path(path).stem),
        methods=sweep["methods"],
        datasets=sweep["datasets"],
        seeds=sweep.get("seeds", [0]),
        backbones=sweep.get("backbones") or [None],
        grids=raw.get("hparams", {}),
        n_hparams=int(sweep.get("n_hparams", 0)),
        run=raw.get("run", {}),
        out=sweep.get("out"),
        fields=raw.get("grid", {}),
    )


def _seeded_rng(*parts: Any) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little"))


def draw(spec_range: tuple, rng: random.Random) -> Any:
    """One value from a declared sweep range: log / uniform / int / choice."""
    kind = spec_range[0]
    if kind == "log":
        return float(math.exp(rng.uniform(math.log(spec_range[1]), math.log(spec_range[2]))))
    if kind == "uniform":
        return float(rng.uniform(spec_range[1], spec_range[2]))
    if kind == "int":
        return rng.randint(spec_range[1], spec_range[2])
    if kind == "choice":
        return rng.choice(list(spec_range[1]))
    raise ValueError(f"unknown range kind {kind!r}")


def random_hparams(method: str, dataset: str, trial: int) -> dict[str, Any]:
    """Trial ``trial``'s random hparams: each drawn with its own seed (method, dataset, trial, name)."""
    from ltbench.registry import METHODS

    specs = METHODS.get(method).hparams
    return {k: draw(s.range, _seeded_rng(method, dataset, trial, k)) for k, s in sorted(specs.items()) if s.range}


def _grid(spec: SweepSpec, method: str) -> list[dict[str, Any]]:
    grid = {**spec.grids.get("*", {}), **spec.grids.get(method, {})}
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))] or [{}]


def _tuples(run: dict[str, Any]) -> dict[str, Any]:
    """TOML lists -> the tuples RunConfig's sequence fields hold."""
    return {k: tuple(v) if k in ("preset", "shots", "train_counts") and v is not None else v for k, v in run.items()}


def _field_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The [grid] of RunConfig fields (e.g. --class-counts or --mix-similar values): every combination."""
    keys = sorted(spec.fields)
    return [dict(zip(keys, values)) for values in itertools.product(*(spec.fields[k] for k in keys))] or [{}]


def expand(spec: SweepSpec, out: str | None = None) -> list[RunConfig]:
    """Every RunConfig of the sweep, in a stable order."""
    configs = []
    for method, dataset, backbone in itertools.product(spec.methods, spec.datasets, spec.backbones):
        trials = [random_hparams(method, dataset, t) for t in range(spec.n_hparams)] if spec.n_hparams else [{}]
        combos = itertools.product(_field_points(spec), trials, _grid(spec, method), spec.seeds)
        for point, trial, grid_point, seed in combos:
            run = _tuples({**spec.run, **point})
            cfg = RunConfig(
                method=method,
                dataset=dataset,
                backbone=backbone,
                seed=seed,
                hparams={**trial, **grid_point},
                sweep=spec.name,
                **run,
            )
            if out or spec.out:
                cfg = replace(cfg, out=out or spec.out)
            configs.append(cfg)
    return configs
