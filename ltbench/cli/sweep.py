"""``ltbench sweep`` and ``ltbench status``: argument handling and printing around sweep.py/launch.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from ltbench.errors import ConfigError
from ltbench.records import STATES


def _list(text: str | None) -> list[str]:
    return [t for t in (text or "").split(",") if t]


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="sweep file (TOML, see slurm/*.toml); or give the lists below")
    p.add_argument("--name", help="sweep name (directory under --out); default: the spec file's name")
    p.add_argument("--methods", help="comma-separated methods")
    p.add_argument("--datasets", help="comma-separated datasets")
    p.add_argument("--seeds", help="comma-separated seeds (default 0)")
    p.add_argument("--backbones", help="comma-separated backbones (default: each method's)")
    p.add_argument("--n-hparams", type=int, help="random hparam draws per method from the declared ranges")
    p.add_argument("--epochs", type=int, help="epochs of every run's main stage")
    p.add_argument("--run-preset", action="append", help="run preset for every run (e.g. quick)")
    p.add_argument("--data-root")
    p.add_argument("--from", dest="from_run", help="take identical first stages from finished runs under this folder")
    p.add_argument("--out", help="output root (default: $LTBENCH_OUT or ./ltbench-out)")
    p.add_argument("--launcher", default="debug", help="debug (in-process) | local | slurm")
    p.add_argument("--preset", help="cluster preset: ltbench/sweep/presets.toml or $LTBENCH_PRESETS (e.g. dev, gpu1)")
    p.add_argument("--array-parallelism", type=int, help="max simultaneously running array tasks")
    p.add_argument("--tracker", choices=("none", "tensorboard", "wandb"), help="experiment tracker of every run")
    p.add_argument("--threads", type=int, help="CPU threads of every run (default: $SLURM_CPUS_PER_TASK or torch's)")
    p.add_argument("--dry-run", action="store_true", help="print the run states and what would be launched")
    p.add_argument("--retry-failed", action="store_true", help="also relaunch runs that failed")
    p.add_argument(
        "--resume",
        metavar="RECORDS",
        help="first take the finished runs of this sweep from RECORDS (an earlier sitting's records, e.g. "
        "results/<name>/runs), where this checkout's code made them; launch only the rest",
    )
    p.add_argument("--wait", action="store_true", help="wait for the submitted jobs and report their outcome")


def spec_from_args(args: argparse.Namespace):
    from ltbench.sweep import SweepSpec, load_spec

    if args.spec:
        spec = load_spec(Path(args.spec))
    else:
        if not (args.methods and args.datasets):
            raise ConfigError("ltbench sweep needs a sweep file or both --methods and --datasets")
        spec = SweepSpec(name=args.name or "sweep", methods=_list(args.methods), datasets=_list(args.datasets))
    if args.name:
        spec.name = args.name
    if args.methods:  # with a sweep file: run only these (e.g. the first rows of a long table)
        spec.methods = _list(args.methods)
    if args.datasets:
        spec.datasets = _list(args.datasets)
    if args.seeds:
        spec.seeds = [int(s) for s in _list(args.seeds)]
    if args.backbones:
        spec.backbones = _list(args.backbones)
    if args.n_hparams is not None:
        spec.n_hparams = args.n_hparams
    if args.epochs is not None:
        spec.run["epochs"] = args.epochs
    if args.run_preset:
        spec.run["preset"] = [p for v in args.run_preset for p in v.split(",") if p]
    if args.data_root:
        spec.run["data_root"] = args.data_root
    if args.from_run:
        spec.run["from_run"] = args.from_run
    if args.tracker:
        spec.run["tracker"] = args.tracker
    if args.threads is not None:
        spec.run["threads"] = args.threads
    return spec


def differences(configs: list) -> list[str]:
    """For each config, the settings that vary across ``configs`` (method, dataset, seed, hparams, ...), as
    ``key=value`` text: what tells the runs of a dry run apart besides their hashes."""
    flat = []
    for cfg in configs:
        d = {k: v for k, v in cfg.identity().items() if k != "hparams"}
        d.update({f"hparams.{k}": v for k, v in sorted(cfg.hparams.items())})
        flat.append(d)
    keys = sorted({k for d in flat for k in d})
    varying = [k for k in keys if len({repr(d.get(k)) for d in flat}) > 1]
    return [", ".join(f"{k.removeprefix('hparams.')}={d.get(k)}" for k in varying) for d in flat]


def run_sweep(args: argparse.Namespace) -> int:
    from ltbench.config import default_out
    from ltbench.run import prepare
    from ltbench.sweep import expand, states, to_launch

    spec = spec_from_args(args)
    configs = expand(spec, out=args.out or spec.out or default_out())
    for cfg in configs:  # validate every config before anything is submitted
        prepare(cfg)
    resumed = _resume(configs, Path(args.resume), copy=not args.dry_run) if args.resume else set()
    grouped = states(configs)
    todo = [c for c in to_launch(configs, retry_failed=args.retry_failed) if c.run_id not in resumed]
    sweep_dir = Path(configs[0].out) / spec.name
    print(
        f"sweep {spec.name}: {len(configs)} runs in {sweep_dir} — "
        + ", ".join(f"{s} {len(grouped[s])}" for s in STATES)
    )
    if args.dry_run:
        for cfg, what in zip(todo, differences(todo)):
            print(f"  would launch {cfg.run_id}" + (f"  ({what})" if what else ""))
        return 0
    if not todo:
        print("nothing to launch")
        return 0
    from ltbench.sweep.launch import submit

    jobs = submit(todo, args.launcher, sweep_dir / ".submitit", args.preset, args.array_parallelism)
    print(
        f"launched {len(jobs)} runs with the {args.launcher} launcher"
        + (f" (job array {jobs[0].job_id.split('_')[0]})" if args.launcher == "slurm" else "")
    )
    if args.launcher == "debug" or args.wait:
        return _wait(jobs, todo)
    return 0


def _resume(configs: list, records: Path, copy: bool) -> set[str]:
    """--resume: restore what RECORDS holds of this sweep (a dry run only says what it would restore)."""
    from ltbench.sweep.resume import resume_from_records

    done = resume_from_records(configs, records, copy=copy)
    print(f"{'resumed' if copy else 'would resume'} {len(done.restored)} finished runs from {records}")
    for line in done.refused:
        print(f"  not resumed {line}")
    if done.refused:
        print("  (to finish a sweep at the commit its records were made at, run it from a checkout of that commit)")
    return set(done.restored)


def _wait(jobs, configs) -> int:
    failed = 0
    for job, cfg in zip(jobs, configs):
        try:
            outcome = job.results()[0]  # a multi-task (multi-GPU) job: task 0's outcome, that of rank 0
        except Exception as exc:  # the job itself died (killed, cancelled): the others still finish
            outcome = f"failed: {type(exc).__name__}: {str(exc).strip()[-300:]}"
        if outcome != "done":
            failed += 1
            print(f"  {cfg.run_id}: {outcome}")
    print(f"{len(jobs) - failed} done, {failed} failed")
    return 1 if failed else 0


def show_status(args: argparse.Namespace) -> int:
    from ltbench.sweep import failure_reason, sweep_status

    d = Path(args.sweep_dir)
    if not d.is_dir():
        raise ConfigError(f"{d} is not a sweep directory (expected <out>/<sweep name>)")
    grouped = sweep_status(d)
    print(f"{d}: " + ", ".join(f"{s} {len(grouped[s])}" for s in STATES))
    for name in grouped["failed"]:
        print(f"  failed {name}: {failure_reason(d / name)}")
    for name in grouped["running"] + grouped["incomplete"]:
        print(f"  {'running' if name in grouped['running'] else 'incomplete'} {name}")
    return 0
