"""``ltbench bench``: throughput figures to size runs (never timed unit tests).

``bench train`` times, on the same model and batches: the data pipeline alone (gather + augment on the
device), the 2-view supcon augmentation of the contrastive methods (KCL/TSC/SBCL stage 1), the full train
step (pipeline + forward + backward + SGD) and evaluation. ``bench dpp`` times the k-DPP samplers.
"""

from __future__ import annotations

import argparse
import time


def add_bench_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench", required=True)
    t = sub.add_parser("train", help="images/s of the data pipeline, the train step and evaluation")
    t.add_argument("--backbone", default="resnet32")
    t.add_argument("--dataset", default="cifar10_lt")
    t.add_argument("--data-root")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--steps", type=int, default=20, help="timed steps (after 3 warm-up steps)")
    t.add_argument("--precision", default="auto", help="auto | bf16 | fp32 | both")
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int)
    d = sub.add_parser("dpp", help="k-DPP sampler timings: exact (structured) vs eig vs dppy")
    d.add_argument("--sizes", default="1000,5000,20000,100000")
    d.add_argument("--repeats", type=int, default=3)
    c = sub.add_parser("compare", help="one epoch: conventional PIL/DataLoader loop vs ltbench, side by side")
    c.add_argument("--dataset", default="cifar10_lt")
    c.add_argument("--data-root")
    c.add_argument("--batch-size", type=int, default=128)
    c.add_argument("--workers", type=int, default=2, help="DataLoader workers of the conventional loop")
    c.add_argument("--precision", default="both", help="fp32 | bf16 | both (ltbench side)")
    c.add_argument("--threads", type=int)
    f = sub.add_parser("profile", help="torch.profiler over real trainer steps: time by kind and top operators")
    f.add_argument("--method", default="ce")
    f.add_argument("--dataset", default="cifar10_lt")
    f.add_argument("--data-root")
    f.add_argument("--steps", type=int, default=20)
    f.add_argument("--threads", type=int)
    f.add_argument("--out", default="/tmp/ltbench-profile", help="scratch run directory (nothing is written)")
    r = sub.add_parser("report", help="seconds for `ltbench table` on N synthetic run records (goal: 1,000 in < 2 s)")
    r.add_argument("--records", type=int, default=1000)
    r.add_argument("--repeats", type=int, default=3)


def _timed(fn, steps: int, sync) -> float:
    for _ in range(3):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return time.perf_counter() - t0


def bench_train(args: argparse.Namespace) -> list[list]:
    import torch

    from ltbench.config import RunConfig
    from ltbench.data.augment import get_transform
    from ltbench.run import load_data
    from ltbench.runtime import configure_threads, resolve_device, resolve_precision

    device = resolve_device(args.device)
    threads = configure_threads(args.threads)
    data = load_data(RunConfig(dataset=args.dataset, data_root=args.data_root))
    images, labels = data.train_x.to(device), data.train_y.to(device)
    bs, gen = args.batch_size, torch.Generator(device=device).manual_seed(0)
    transform = get_transform("standard")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    precisions = ["bf16", "fp32"] if args.precision == "both" else [resolve_precision(args.precision, device)]

    def batch():
        idx = torch.randint(0, len(labels), (bs,), generator=gen, device=device)
        x = transform(images[idx], data, gen).contiguous(memory_format=torch.channels_last)
        return x, labels[idx]

    supcon = get_transform("supcon")

    def two_views():  # KCL/TSC/SBCL stage 1: two kornia supcon views per image (METHODS.md §6)
        idx = torch.randint(0, len(labels), (bs,), generator=gen, device=device)
        raw = images[idx]
        return [supcon(raw, data, gen).contiguous(memory_format=torch.channels_last) for _ in range(2)]

    rows = [
        ["data pipeline (gather + augment)", "-", bs * args.steps / _timed(batch, args.steps, sync)],
        [
            "2-view supcon augmentation (images/s, 2 views each)",
            "-",
            bs * args.steps / _timed(two_views, args.steps, sync),
        ],
    ]
    for prec in precisions:
        rows += _model_rows(args, data, device, prec, batch, images, sync)
    print(f"device {device.type}, {threads} threads, batch {bs}, dataset {data.name} ({data.image_size}px)")
    return rows


def _model_rows(args, data, device, prec: str, batch, images, sync) -> list[list]:
    """Train-step and evaluation images/s of a fresh model at one precision (channels_last, SGD)."""
    import torch
    import torch.nn.functional as F

    from ltbench.data.augment import normalise
    from ltbench.models.backbones import build_backbone
    from ltbench.models.heads import linear_classifier

    torch.manual_seed(0)
    model = linear_classifier(build_backbone(args.backbone, data.image_size), data.num_classes).to(device)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=prec == "bf16")

    def step():
        x, y = batch()
        with torch.autocast(**amp):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def evaluate():
        with torch.no_grad(), torch.autocast(**amp):
            model(normalise(images[:512], data).contiguous(memory_format=torch.channels_last))

    rows = [[f"train step ({args.backbone})", prec, args.batch_size * args.steps / _timed(step, args.steps, sync)]]
    model.eval()
    rows.append([f"evaluation ({args.backbone})", prec, 512 * args.steps / _timed(evaluate, args.steps, sync)])
    return rows


def main(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    if args.bench == "train":
        rows = bench_train(args)
        print(
            tabulate([[r[0], r[1], f"{r[2]:.0f}"] for r in rows], ["what", "precision", "images/s"], tablefmt="github")
        )
        return 0
    if args.bench == "dpp":
        from ltbench.bench_dpp import format_dpp_bench, run_dpp_bench

        sizes = tuple(int(s) for s in args.sizes.split(","))
        print(format_dpp_bench(run_dpp_bench(sizes=sizes, repeats=args.repeats)))
        return 0
    if args.bench == "compare":
        from ltbench.bench_compare import run_compare

        rows = run_compare(args)
        heads = ["loop", "precision", "images/s", "vs conventional"]
        print(tabulate([[a, b, f"{c:.0f}", f"{d:.2f}x"] for a, b, c, d in rows], heads, tablefmt="github"))
        return 0
    if args.bench == "profile":
        from ltbench.bench_profile import main as profile_main

        return profile_main(args)
    if args.bench == "report":
        from ltbench.bench_report import run_report_bench

        rows = run_report_bench(n=args.records, repeats=args.repeats)
        print(tabulate([[w, f"{t:.3f}"] for w, t in rows], ["what", "seconds"], tablefmt="github"))
        return 0
    raise AssertionError(args.bench)


__all__ = ["add_bench_args", "main"]
