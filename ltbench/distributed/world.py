"""Which process of a run this is: rank, world size, local rank, read from the launcher's environment.

torchrun (``torch.distributed.run``, also started by ``ltbench run --devices N``) sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; a SLURM task launched by submitit gets the same variables from
``submitit.helpers.TorchDistributedEnvironment`` (ltbench/distributed/launch.py). Without them a run is one
process, exactly as before: no process group is created and nothing below changes what it computes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ltbench.errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place in the run. ``size == 1``: a single-process run (no process group)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files (config.json, log.jsonl, ckpt.pt, result.json) and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def record(self) -> dict:
        """What result.json and config.json say about the processes of a multi-process run."""
        return {"world_size": self.size, "backend": self.backend}


SINGLE = World()


def env_world() -> World:
    """The world the launcher described in the environment (no process group yet); SINGLE without one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group the environment describes (NCCL on CUDA, gloo on CPU) and pick this rank's device
    (``cuda:LOCAL_RANK``). Idempotent: a process group that already exists is reused (tests, in-process reuse)."""
    world = env_world()
    if not world.distributed:
        return SINGLE, device
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"local rank {world.local_rank} has no GPU: this node shows {torch.cuda.device_count()} "
                "(start as many processes per node as it has GPUs)"
            )
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=world.rank, world_size=world.size)
    return World(world.rank, world.size, world.local_rank, dist.get_backend()), device


def teardown(world: World) -> None:
    """Leave the process group at the end of a run (each rank once, after its last collective)."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
