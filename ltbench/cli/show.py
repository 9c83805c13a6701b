"""``ltbench show METHOD``: what a method declares — its paper, stages, and every hparam with its default,
sweep range, source and the presets that change it — so users need not read the source to use ``--set``."""

from __future__ import annotations

import argparse

from tabulate import tabulate


def _fmt(value: object) -> str:
    if isinstance(value, dict):  # per-dataset preset values
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return repr(value) if isinstance(value, str) else str(value)


def _range(spec) -> str:
    if spec.choices:
        return "one of " + ", ".join(map(str, spec.choices))
    if not spec.range:
        return ""
    kind, *rest = spec.range
    return f"{kind} {rest[0]}" if kind == "choice" else f"{kind} [{rest[0]}, {rest[1]}]"


def describe_method(name: str) -> str:
    """The text ``ltbench show`` prints for one registered method."""
    from ltbench.registry import METHODS

    cls = METHODS.get(name)
    doc = (cls.__doc__ or "").strip().splitlines()[0]
    lines = [f"{cls.name} — {cls.display_name or cls.name}: {doc}", f"paper: {cls.paper or 'n/a'}"]
    rows = []
    for key, spec in cls.hparams.items():
        changed = [f"{p}: {_fmt(v[key])}" for p, v in cls.presets.items() if key in v]
        epoch = " (epoch: scales with --epochs/quick)" if spec.epoch else ""
        rows.append([key, _fmt(spec.default), _range(spec), spec.source + epoch, "; ".join(changed)])
    lines.append(tabulate(rows, ["hparam", "default", "sweep range", "source", "presets"], tablefmt="github"))
    other = {p: {k: _fmt(v) for k, v in vals.items() if k not in cls.hparams} for p, vals in cls.presets.items()}
    for preset, vals in other.items():
        if vals:
            lines.append(f"preset {preset!r} also sets: " + "; ".join(f"{k}={v}" for k, v in vals.items()))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from ltbench.cli.catalog import canonical_method
    from ltbench.registry import METHODS

    names = METHODS.names() if args.method == "all" else [canonical_method(args.method)]
    print("\n\n".join(describe_method(n) for n in names))
    return 0
