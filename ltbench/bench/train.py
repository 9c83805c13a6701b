"""``ltbench bench train``: throughput figures to size runs (never timed unit tests).

It times, on the same model and batches: the data pipeline alone (gather + augment on the
device), the 2-view supcon augmentation of the contrastive methods (KCL/TSC/SBCL stage 1), the full train
step (pipeline + forward + backward + SGD) and evaluation.
"""

from __future__ import annotations

import argparse
import time


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
    from ltbench.data.transforms import get_transform
    from ltbench.run import load_data
    from ltbench.train.runtime import configure_threads, resolve_device, resolve_precision

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

    def two_views():  # KCL/TSC/SBCL stage 1: two kornia supcon views per image (docs/methods.md §6)
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
        if (getattr(args, "devices", None) or 1) > 1:  # the same step on N processes under DDP
            from ltbench.bench.scaling import scaling_rows

            rows += scaling_rows(args, prec, rows[-2][2])
        if getattr(args, "compile", False):
            rows += _model_rows(args, data, device, prec, batch, images, sync, compiled=True)
    print(f"device {device.type}, {threads} threads, batch {bs}, dataset {data.name} ({data.image_size}px)")
    return rows


def _model_rows(args, data, device, prec: str, batch, images, sync, compiled: bool = False) -> list[list]:
    """Train-step and evaluation images/s of a fresh model at one precision (channels_last, SGD); ``compiled``:
    the backbone under torch.compile as ``--compile`` runs it (the compilation happens in the warm-up)."""
    import torch
    import torch.nn.functional as F

    from ltbench.data.transforms import normalise
    from ltbench.models.backbones import build_backbone
    from ltbench.models.heads import linear_classifier

    torch.manual_seed(0)
    model = linear_classifier(build_backbone(args.backbone, data.image_size), data.num_classes).to(device)
    model = model.to(memory_format=torch.channels_last)
    if compiled:
        model.backbone.compile(dynamic=False)
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

    tag = f"{prec}+compile" if compiled else prec
    rows = [[f"train step ({args.backbone})", tag, args.batch_size * args.steps / _timed(step, args.steps, sync)]]
    model.eval()
    rows.append([f"evaluation ({args.backbone})", tag, 512 * args.steps / _timed(evaluate, args.steps, sync)])
    return rows
