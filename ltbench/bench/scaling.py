"""``ltbench bench train --devices N``: the train step under DDP on N processes against one process.

The N processes are started by torchrun's elastic launcher (``torch.distributed.launcher.elastic_launch``, what
``torchrun --standalone`` runs); each times the same train step as ``bench train`` on its 1/N share of the global
batch, gradients all-reduced by DDP. Reported: images/s of the global batch, per device, and the scaling efficiency
(per-device images/s over the one-process images/s of the same global batch: 1.0 is perfect strong scaling).
"""

from __future__ import annotations

import argparse
import os
import time


def ddp_step_rate(cfg: dict) -> float:
    """One rank: global images/s of ``cfg["steps"]`` DDP train steps (3 warm-up steps first); the slowest rank's
    time, since every step waits for all of them."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from ltbench.config import RunConfig
    from ltbench.data.transforms import get_transform
    from ltbench.distributed.world import setup, teardown
    from ltbench.models.backbones import build_backbone
    from ltbench.models.heads import linear_classifier
    from ltbench.run import load_data
    from ltbench.train.runtime import configure_threads, resolve_device

    world, device = setup(resolve_device(cfg["device"]))
    configure_threads(cfg["threads"])
    data = load_data(RunConfig(dataset=cfg["dataset"], data_root=cfg["data_root"]))
    images, labels = data.train_x.to(device), data.train_y.to(device)
    local = cfg["batch_size"] // world.size
    gen = torch.Generator(device=device).manual_seed(world.rank)
    transform = get_transform("standard")
    torch.manual_seed(0)
    model = linear_classifier(build_backbone(cfg["backbone"], data.image_size), data.num_classes).to(device)
    model = model.to(memory_format=torch.channels_last)
    ddp = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.index is not None else None
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=cfg["precision"] == "bf16")

    def step() -> None:
        idx = torch.randint(0, len(labels), (local,), generator=gen, device=device)
        x = transform(images[idx], data, gen).contiguous(memory_format=torch.channels_last)
        with torch.autocast(**amp):
            loss = F.cross_entropy(ddp(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(cfg["steps"]):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = torch.tensor([time.perf_counter() - t0])
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    teardown(world)
    return cfg["batch_size"] * cfg["steps"] / float(seconds)


def scaling_rows(args: argparse.Namespace, precision: str, single_rate: float) -> list[list]:
    """Rows for ``bench train``: DDP images/s over ``args.devices`` processes, per device, with the efficiency."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    n = args.devices
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=n,
        run_id=f"ltbench-bench-{os.getpid()}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
    )
    keys = ("backbone", "dataset", "data_root", "batch_size", "steps", "device", "threads")
    cfg = {k: getattr(args, k) for k in keys} | {"precision": precision}
    total = elastic_launch(config, ddp_step_rate)(cfg)[0]
    per_device = total / n
    return [
        [f"train step, DDP on {n} processes ({args.backbone}, global batch {args.batch_size})", precision, total],
        [f"  per device (scaling efficiency {per_device / single_rate:.2f})", precision, per_device],
    ]
