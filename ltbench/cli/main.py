"""``ltbench run | list | bench`` (argparse subcommands).

Every user error ends as one line ``ltbench: error: ...`` and exit status 2, never a traceback. Heavy
imports (torch, timm) happen inside the subcommands so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys

from ltbench.errors import LTBenchError
from ltbench.train.interrupt import Interrupted


def _shots(text: str) -> tuple[int, int]:
    try:
        many, few = (int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MANY,FEW (e.g. 100,20), got {text!r}") from None
    return many, few


def _class_counts(text: str) -> tuple[int, ...]:
    """``--class-counts``: the counts themselves (``5000x9,100``) or a file holding them."""
    from pathlib import Path

    from ltbench.data.longtail import parse_class_counts

    path = Path(text).expanduser()
    if path.is_file():
        text = path.read_text()
    try:
        return parse_class_counts(text)
    except LTBenchError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--class-counts: ")) from None


def _presets(values: list[str] | None) -> tuple[str, ...]:
    return tuple(p for v in values or [] for p in v.split(",") if p)


def _flag_type(name: str, hint: str):
    """argparse ``type`` of a RunConfig field from its annotation (``int | None`` -> int, ...)."""
    if name == "shots":
        return _shots
    if name == "train_counts":
        return _class_counts
    for kind in ("int", "float"):
        if hint.startswith(kind):
            return {"int": int, "float": float}[kind]
    return str


def add_run_args(p: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field (help, choices from the field), plus --set/--lr/--batch-size, --config and
    --dry-run. Field flags have no argparse default, so the flags given are told apart from the defaults (they
    override a --config file, and only they do)."""
    import dataclasses

    from ltbench.config import RunConfig

    for f in dataclasses.fields(RunConfig):
        meta = f.metadata
        if meta.get("cli", True) is False:
            continue
        flag, hint = meta.get("flag") or "--" + f.name.replace("_", "-"), str(f.type)
        help_text = meta.get("help", "")
        if hint == "bool":
            p.add_argument(flag, dest=f.name, action="store_true", default=argparse.SUPPRESS, help=help_text)
        elif f.name == "preset":
            p.add_argument(flag, dest=f.name, action="append", default=argparse.SUPPRESS, help=help_text)
        else:
            if meta.get("choices"):
                help_text += f" [{' | '.join(meta['choices'])}]"
            kind = _flag_type(f.name, hint)
            p.add_argument(flag, dest=f.name, type=kind, default=argparse.SUPPRESS, help=help_text)
    p.add_argument("--batch-size", type=int, help="batch size of the main stage (= --set batch_size=N)")
    p.add_argument("--lr", type=float, help="learning rate of the main stage (= --set lr=X)")
    p.add_argument(
        "--schedule",
        choices=("step", "cosine", "cosine_epoch"),
        help="lr schedule of the main stage of the CIFAR-recipe methods (= --set schedule=...)",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a declared hparam (type-checked; `ltbench show METHOD` lists them); repeatable",
    )
    p.add_argument(
        "--config",
        metavar="RECIPE.toml",
        help="read the flags from a TOML file (keys as the flags, [hparams] for --set); flags given override it",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the fully resolved configuration as a --config file; read no data, train and write nothing",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help="train on N local devices (GPUs, or CPU processes with gloo): starts N processes with torchrun; the "
        "batch and lr stay the global ones (README Multi-GPU)",
    )


def explicit_flags(args: argparse.Namespace) -> dict:
    """The RunConfig fields given as flags (absent from ``args`` otherwise: their defaults are suppressed)."""
    from ltbench.config import FIELDS

    return {name: getattr(args, name) for name in FIELDS if hasattr(args, name)}


def config_from_args(args: argparse.Namespace, recipe=None):
    """The RunConfig of ``ltbench run``: the recipe file's values (if any), then the flags given on top."""
    from ltbench.config import RunConfig, parse_sets
    from ltbench.errors import ConfigError

    kw = dict(recipe.fields) if recipe else {}
    flags = explicit_flags(args)
    if "preset" in flags:
        flags["preset"] = _presets(flags["preset"])
    kw.update(flags)
    sets = parse_sets(args.sets)
    hparams: dict = {**(recipe.hparams if recipe else {}), **sets}
    for key in ("lr", "batch_size", "schedule"):  # --lr / --batch-size / --schedule are --set shorthands
        value = getattr(args, key, None)
        if value is None:
            continue
        if key in sets:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{flag} {value} and --set {key}={sets[key]} both set {key}: give one of them")
        hparams[key] = value
    return RunConfig(hparams=hparams, **kw)


def cmd_run(args: argparse.Namespace) -> int:
    from ltbench.errors import ConfigError
    from ltbench.recipe import read_recipe

    recipe = read_recipe(args.config) if getattr(args, "config", None) else None
    cfg = config_from_args(args, recipe)
    if recipe is not None and recipe.resolved is not None:
        check_recipe(args, recipe, cfg)
    if getattr(args, "dry_run", False):
        return dry_run(cfg)
    devices = getattr(args, "devices", None)
    if devices is not None and devices < 1:
        raise ConfigError(f"--devices must be >= 1, got {devices}")
    if devices is not None and devices > 1:
        from ltbench.distributed.launch import launch_local

        return launch_local(devices, args.argv)
    from ltbench.run import execute

    record = execute(cfg, progress=not args.quiet)
    from ltbench.distributed.world import env_world
    from ltbench.run import concrete
    from ltbench.train.progress import console

    if env_world().is_main:  # one line per run, not one per process
        console(f"result: {concrete(cfg).run_dir / 'result.json'}", sys.stdout)
    return 0 if record and record.get("status") == "done" else 1


def check_recipe(args: argparse.Namespace, recipe, cfg) -> None:
    """A recipe's ``[resolved]`` table must still be what it resolves to; with flags on top it describes another
    configuration, so it is not checked then (and we say so)."""
    from ltbench.recipe import check_resolved, resolved_table
    from ltbench.run import concrete
    from ltbench.train.progress import console

    if (
        explicit_flags(args)
        or args.sets
        or any(getattr(args, k, None) is not None for k in ("lr", "batch_size", "schedule"))
    ):
        console(f"ltbench: note: flags override {recipe.path}: its [resolved] table is not checked")
        return
    check_resolved(recipe, resolved_table(concrete(cfg))[0])


def dry_run(cfg) -> int:
    from ltbench.recipe import dry_run as render_dry_run
    from ltbench.train.progress import console

    text, warnings = render_dry_run(cfg)
    sys.stdout.write(text)
    sys.stdout.flush()  # the recipe first, then the warnings about it (stderr)
    for line in warnings:
        console(f"ltbench: warning: {line}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from ltbench.cli.catalog import print_catalog

    print_catalog(args.kind)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ltbench.cli.show import main as show_main

    return show_main(args)


def cmd_sweep(args: argparse.Namespace) -> int:
    from ltbench.cli.sweep import run_sweep

    return run_sweep(args)


def cmd_status(args: argparse.Namespace) -> int:
    from ltbench.cli.sweep import show_status

    return show_status(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from ltbench.cli.bench import main as bench_main

    return bench_main(args)


def cmd_probe(args: argparse.Namespace) -> int:
    from ltbench.report.probe import main as probe_main

    return probe_main(args)


def version() -> str:
    """``ltbench.__version__``: the one place the version is written besides pyproject.toml (a test keeps the two
    equal), so a source checkout on PYTHONPATH reports its own version, not that of an installed copy."""
    import ltbench

    return ltbench.__version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltbench", description="Long-tailed recognition benchmark harness.")
    parser.add_argument("--version", action="version", version=f"ltbench {version()}", help="print the version, exit")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train and evaluate one configuration (resumes if interrupted)")
    add_run_args(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("sweep", help="launch methods x datasets x seeds x hparams (debug | local | slurm)")
    from ltbench.cli.sweep import add_sweep_args

    add_sweep_args(p)
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("status", help="pending / running / incomplete / done / failed runs of a sweep directory")
    p.add_argument("sweep_dir", help="<out>/<sweep name>")
    p.set_defaults(func=cmd_status)
    from ltbench.cli.report import add_commands

    add_commands(sub)  # table, plot
    from ltbench.cli import toolbox

    toolbox.add_commands(sub)  # predict, export, diff
    p = sub.add_parser("probe", help="linear-probe accuracy of finished runs' frozen backbone features")
    p.add_argument("run_dirs", nargs="+", help="finished run directories, or a sweep folder (all its finished runs)")
    p.add_argument("--data-root", help="where the runs' dataset is (default: $LTBENCH_DATA)")
    p.add_argument("--out", help="folder for probe.md and probe.csv (default: the folder given, or the runs' parent)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads (default: $SLURM_CPUS_PER_TASK or torch's)")
    p.set_defaults(func=cmd_probe)
    p = sub.add_parser("list", help="registered methods, datasets and backbones")
    p.add_argument("kind", nargs="?", choices=("methods", "datasets", "backbones"), help="only this registry")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="a method's paper, hparams (default, range, source) and presets")
    p.add_argument("method", help="registered method, or 'all'")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("bench", help="throughput benchmarks: train | compare | dpp | ot | profile | report")
    from ltbench.cli.bench import add_bench_args

    add_bench_args(p)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["run"]  # `ltbench` alone: the default run, as the README promises
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv)  # `run --devices N` starts its workers with the same arguments
    from ltbench.train.progress import console

    try:
        code = args.func(args)
    except LTBenchError as exc:
        console(f"ltbench: error: {exc}")
        code = 2
    except Interrupted as exc:
        console(f"ltbench: {exc}; rerun the same command to resume from it")
        code = 128 + exc.signum
    except KeyboardInterrupt:
        console("ltbench: interrupted; the last epoch checkpoint is kept, rerun the same command to resume")
        code = 130
    _quiet_closed_stdout()
    return code


def _quiet_closed_stdout() -> None:
    """`ltbench ... | head`: once the reader is gone, flushing stdout at exit would print a BrokenPipeError
    traceback; point stdout at /dev/null instead (the Python documentation's recipe)."""
    import os

    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
