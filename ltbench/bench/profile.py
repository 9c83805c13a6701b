"""``ltbench bench profile``: where a training step's time goes (torch.profiler), grouped by kind.

The trainer's step = batch gather + augmentation on the device, forward, backward, optimizer. This runs
real ``Trainer`` epochs (the same code as ``ltbench run``) under torch.profiler and groups the self CPU
time of every operator into: model compute (convolutions, norms, activations, pooling, matmuls and their
backward), augmentation and batching (indexing, padding, flips, normalisation), optimizer (SGD/AdamW
updates), and the rest. A large "rest" or "augmentation" share is overhead worth removing.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

# relu runs as clamp_min, residual sums as (out-of-place) add; in-place add_/mul_ are optimizer/BN-stat updates
MODEL = ("conv", "batch_norm", "relu", "clamp", "threshold", "addmm", "mm", "matmul", "linear", "pool", "mean")
DATA = ("index", "gather", "pad", "flip", "where", "rand", "cat", "stack", "copy_", "to", "contiguous", "div", "sub")
OPTIM = ("sgd", "adam", "_foreach", "add_", "mul_", "lerp", "addcmul", "zero_")


def kind(op: str) -> str:
    name = op.lower().removeprefix("aten::")
    if name == "add":
        return "model compute"
    for label, keys in (("model compute", MODEL), ("optimizer", OPTIM), ("augmentation / batching", DATA)):
        if any(k in name for k in keys):
            return label
    return "other"


def _trainer(args: argparse.Namespace):
    """A Trainer for ``args.method`` on ``args.dataset``, built exactly as ``ltbench run`` builds it."""
    import torch

    from ltbench.config import RunConfig
    from ltbench.method import DataInfo
    from ltbench.models.backbones import build_backbone
    from ltbench.registry import METHODS
    from ltbench.resolve import resolve
    from ltbench.run import load_data
    from ltbench.train.context import Context
    from ltbench.train.runtime import configure_threads
    from ltbench.train.trainer import Trainer

    configure_threads(args.threads)
    cfg = RunConfig(method=args.method, dataset=args.dataset, data_root=args.data_root, device="cpu")
    data = load_data(cfg)
    resolved = resolve(cfg, METHODS.get(args.method))
    info = DataInfo(data.num_classes, list(data.class_counts), data.image_size, data.name, data.train_y)
    method = METHODS.get(args.method)(dict(resolved.hp), info)
    model = method.build_model(build_backbone(resolved.backbone, data.image_size), data.num_classes, info.class_counts)
    model = model.to(memory_format=torch.channels_last)
    ctx = Context(data, torch.device("cpu"), "fp32", channels_last=True)
    return Trainer(method, model, ctx, args.out, seed=0, eval_every=0, progress=False)


def profile_epochs(args: argparse.Namespace) -> tuple[list[list], list[list]]:
    """(rows by kind, top operators) over ``args.steps`` training steps of ``args.method``."""
    from torch.profiler import ProfilerActivity, profile

    trainer = _trainer(args)
    method, model, ctx, data = trainer.method, trainer.model, trainer.ctx, trainer.ctx.data
    stage = trainer.stages[0]
    trainer._setup_stage(0, stage, fresh=True)
    trainer._train_mode(stage)
    order, _ = trainer._epoch_order(0, stage, 0)
    from ltbench.data.loader import DeviceBatches
    from ltbench.data.transforms import get_transform

    batches = DeviceBatches(data, ctx.train_x, ctx.train_y, order, stage.batch_size, get_transform(stage.transform),
                            ctx.generator, stage.views, stage.drop_last, True)  # fmt: skip

    def endless():  # small datasets have fewer batches than warm-up + profiled steps
        while True:
            yield from batches

    it = endless()

    def step() -> None:
        batch = next(it)
        out = method.training_step(model, batch, stage, 0)
        trainer.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        trainer.optimizer.step()

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    by_kind: dict[str, float] = defaultdict(float)
    for e in events:
        by_kind[kind(e.key)] += e.self_cpu_time_total
    rows = [[k, f"{100 * v / total:.1f}%", round(v / 1e3 / args.steps, 2)] for k, v in sorted(by_kind.items())]
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
    ops = [[e.key, kind(e.key), f"{100 * e.self_cpu_time_total / total:.1f}%"] for e in top]
    return rows, ops


def main(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    rows, ops = profile_epochs(args)
    print(f"{args.method} on {args.dataset}, {args.steps} profiled steps (self CPU time):")
    print(tabulate(rows, ["kind", "share", "ms / step"], tablefmt="github"))
    print()
    print(tabulate(ops, ["operator", "kind", "share"], tablefmt="github"))
    return 0
