"""``ltbench bench``: the benchmark subcommands (train, dpp, ot, compare, profile, report, decode) and their options.

Benchmarks give throughput figures to size runs and to compare implementations side by side in one
process; they are never timed unit tests. The benchmarks themselves live in :mod:`ltbench.bench`.
"""

from __future__ import annotations

import argparse


def add_bench_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench", required=True)
    defaults = {"formatter_class": argparse.ArgumentDefaultsHelpFormatter}  # --help shows every default
    t = sub.add_parser("train", **defaults, help="images/s of the data pipeline, the train step and evaluation")
    t.add_argument("--backbone", default="resnet32")
    t.add_argument("--dataset", default="cifar10_lt")
    t.add_argument("--data-root")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--steps", type=int, default=20, help="timed steps (after 3 warm-up steps)")
    t.add_argument("--precision", default="auto", help="auto | bf16 | fp32 | both")
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int)
    t.add_argument("--compile", action="store_true", help="also time the step with torch.compile (for GPUs)")
    t.add_argument(
        "--devices",
        type=int,
        default=1,
        help="also time the step under DDP on N processes (torchrun's launcher; GPUs, or CPU processes with gloo): "
        "images/s per device and scaling efficiency",
    )
    d = sub.add_parser("dpp", **defaults, help="k-DPP sampler timings: exact (structured) vs eig vs dppy")
    d.add_argument("--sizes", default="1000,5000,20000,100000")
    d.add_argument("--repeats", type=int, default=3)
    o = sub.add_parser(
        "ot", **defaults, help="OTmix's pairing plan: ltbench's torch Sinkhorn vs POT (the release's call)"
    )
    o.add_argument("--sizes", default="64,128,256", help="batch sizes B (plans are B x B)")
    o.add_argument("--repeats", type=int, default=5)
    o.add_argument("--device", default="cpu", help="where the torch solver runs (cpu | cuda)")
    c = sub.add_parser(
        "compare", **defaults, help="one epoch: conventional PIL/DataLoader loop vs ltbench, side by side"
    )
    c.add_argument("--dataset", default="cifar10_lt")
    c.add_argument("--data-root")
    c.add_argument("--batch-size", type=int, default=128)
    c.add_argument("--workers", type=int, default=2, help="DataLoader workers of the conventional loop")
    c.add_argument("--precision", default="both", help="fp32 | bf16 | both (ltbench side)")
    c.add_argument("--threads", type=int)
    f = sub.add_parser(
        "profile", **defaults, help="torch.profiler over real trainer steps: time by kind and top operators"
    )
    f.add_argument("--method", default="ce")
    f.add_argument("--dataset", default="cifar10_lt")
    f.add_argument("--data-root")
    f.add_argument("--steps", type=int, default=20)
    f.add_argument("--threads", type=int)
    f.add_argument("--out", default="/tmp/ltbench-profile", help="scratch run directory (nothing is written)")
    r = sub.add_parser(
        "report", **defaults, help="seconds for `ltbench table` on N synthetic run records (goal: 1,000 in < 2 s)"
    )
    r.add_argument("--records", type=int, default=1000)
    r.add_argument("--repeats", type=int, default=3)
    j = sub.add_parser(
        "decode", **defaults, help="images/s of the ImageNet-scale loader: PIL vs torchvision.io decoding, side by side"
    )
    j.add_argument("--folder", help="a folder of JPEGs (searched recursively); default: make --make of them")
    j.add_argument("--data-root", help="where cifar10/ is, to make the JPEGs from")
    j.add_argument("--make", type=int, default=2000, help="JPEGs made from CIFAR-10 when no --folder is given")
    j.add_argument("--scratch", default="/tmp/ltbench-jpegs", help="where the made JPEGs go (reused)")
    j.add_argument("--workers", default="2", help="comma-separated DataLoader worker counts (0 = main process)")
    j.add_argument("--batch-size", type=int, default=128)
    j.add_argument("--threads", type=int)


def main(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    if args.bench == "train":
        from ltbench.bench.train import bench_train

        rows = bench_train(args)
        print(
            tabulate([[r[0], r[1], f"{r[2]:.0f}"] for r in rows], ["what", "precision", "images/s"], tablefmt="github")
        )
        return 0
    if args.bench == "dpp":
        from ltbench.bench.dpp import format_dpp_bench, run_dpp_bench

        sizes = tuple(int(s) for s in args.sizes.split(","))
        print(format_dpp_bench(run_dpp_bench(sizes=sizes, repeats=args.repeats)))
        return 0
    if args.bench == "ot":
        from ltbench.bench.dpp import format_dpp_bench
        from ltbench.bench.ot import run_ot_bench

        sizes = tuple(int(s) for s in args.sizes.split(","))
        print(format_dpp_bench(run_ot_bench(sizes=sizes, repeats=args.repeats, device=args.device)))
        return 0
    if args.bench == "compare":
        from ltbench.bench.compare import run_compare

        rows = run_compare(args)
        heads = ["loop", "precision", "images/s", "vs conventional"]
        print(tabulate([[a, b, f"{c:.0f}", f"{d:.2f}x"] for a, b, c, d in rows], heads, tablefmt="github"))
        return 0
    if args.bench == "profile":
        from ltbench.bench.profile import main as profile_main

        return profile_main(args)
    if args.bench == "decode":
        from ltbench.bench.decode import run_decode_bench
        from ltbench.bench.dpp import format_dpp_bench

        print(format_dpp_bench(run_decode_bench(args)))
        return 0
    if args.bench == "report":
        from ltbench.bench.report import run_report_bench

        rows = run_report_bench(n=args.records, repeats=args.repeats)
        print(tabulate([[w, f"{t:.3f}"] for w, t in rows], ["what", "seconds"], tablefmt="github"))
        return 0
    raise AssertionError(args.bench)
