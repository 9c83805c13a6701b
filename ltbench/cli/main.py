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


def _presets(values: list[str] | None) -> tuple[str, ...]:
    return tuple(p for v in values or [] for p in v.split(",") if p)


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="bns_ipdpp", help="registered method (see `ltbench list`; default: bns_ipdpp)")
    p.add_argument("--dataset", default="digits_lt", help="registered dataset (default: digits_lt, embedded)")
    p.add_argument("--backbone", help="registered backbone (default: the method's, usually resnet32)")
    p.add_argument("--data-root", help="data directory (default: $LTBENCH_DATA, else ~/.cache/ltbench/data)")
    p.add_argument("--epochs", type=int, help="epochs of the main stage; every epoch milestone scales with it")
    p.add_argument("--preset", action="append", help="quick (short recipe) and/or a method preset; repeatable")
    p.add_argument("--batch-size", type=int, help="batch size of the main stage (= --set batch_size=N)")
    p.add_argument("--lr", type=float, help="learning rate of the main stage (= --set lr=X)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a declared hparam (type-checked); repeatable",
    )
    p.add_argument("--imbalance-ratio", type=float, help="n_max / n_min (default: the dataset's, 100 for CIFAR)")
    p.add_argument("--profile", default="exp", help="class-count profile: exp | step")
    p.add_argument("--subset", default="ldam", help="which images: ldam (LDAM-DRW's exact rule) | first")
    p.add_argument("--val", default="none", help="held-out balanced validation split: none | B (METHODS §0.1)")
    p.add_argument("--shots", type=_shots, help="many/few thresholds MANY,FEW (default 100,20 or the preset's)")
    p.add_argument("--image-size", type=int, help="ImageNet-LT/Places-LT/iNat: crop size (default 224)")
    p.add_argument("--workers", type=int, help="ImageNet-LT/Places-LT/iNat: decoding processes (default CPUs-1)")
    p.add_argument("--pretrained", action="store_true", help="timm's pretrained weights (timm backbones only)")
    p.add_argument("--ssp", action="store_true", help="rotation self-supervised stage 0 before the method")
    p.add_argument("--precision", default="auto", help="auto | bf16 | fp32 (auto: bf16 on bf16 GPUs and AMX CPUs)")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (slower on GPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone (for GPUs; not faster on CPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, help="CPU threads (default: $SLURM_CPUS_PER_TASK or torch's)")
    p.add_argument("--eval-every", type=int, default=10, help="log test accuracy every N epochs (0: only at the end)")
    p.add_argument("--out", help="output root (default: $LTBENCH_OUT or ./ltbench-out)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def config_from_args(args: argparse.Namespace):
    from ltbench.config import RunConfig, parse_sets

    hparams: dict = parse_sets(args.sets)
    if args.lr is not None:
        hparams["lr"] = args.lr
    if args.batch_size is not None:
        hparams["batch_size"] = args.batch_size
    kw = dict(
        method=args.method,
        dataset=args.dataset,
        backbone=args.backbone,
        epochs=args.epochs,
        preset=_presets(args.preset),
        seed=args.seed,
        hparams=hparams,
        imbalance_ratio=args.imbalance_ratio,
        profile=args.profile,
        subset=args.subset,
        val=args.val,
        shots=args.shots,
        ssp=args.ssp,
        pretrained=args.pretrained,
        image_size=args.image_size,
        workers=args.workers,
        precision=args.precision,
        deterministic=args.deterministic,
        compile=args.compile,
        data_root=args.data_root,
        device=args.device,
        threads=args.threads,
        eval_every=args.eval_every,
    )
    if args.out:
        kw["out"] = args.out
    return RunConfig(**kw)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    from ltbench.run import execute

    record = execute(cfg, progress=not args.quiet)
    print(f"result: {cfg.run_dir / 'result.json'}")
    return 0 if record and record.get("status") == "done" else 1


def cmd_list(args: argparse.Namespace) -> int:
    from ltbench.cli.catalog import print_catalog

    print_catalog(args.kind)
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltbench", description="Long-tailed recognition benchmark harness.")
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
    p = sub.add_parser("probe", help="linear-probe accuracy of finished runs' frozen backbone features")
    p.add_argument("run_dirs", nargs="+", help="finished run directories")
    p.add_argument("--data-root", help="where the runs' dataset is (default: $LTBENCH_DATA)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_probe)
    p = sub.add_parser("list", help="registered methods, datasets and backbones")
    p.add_argument("kind", nargs="?", choices=("methods", "datasets", "backbones"), help="only this registry")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("bench", help="throughput benchmarks: train | dpp")
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
    try:
        return args.func(args)
    except LTBenchError as exc:
        print(f"ltbench: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"ltbench: {exc}; rerun the same command to resume from it", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(
            "ltbench: interrupted; the last epoch checkpoint is kept, rerun the same command to resume", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
