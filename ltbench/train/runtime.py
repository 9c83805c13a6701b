"""Where and how fast a run executes: device, precision, CPU threads. Recorded, never hashed."""

from __future__ import annotations

import os

import torch

from ltbench.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (bf16 matrix units), where oneDNN's bf16 convolutions pay off."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.x; absent -> assume no
    return bool(probe is not None and probe())


def resolve_precision(name: str, device: torch.device) -> str:
    """auto -> bf16 autocast on CUDA GPUs with native bf16 and on CPUs with AMX; fp32 elsewhere.

    Measured side by side on the 2-core reference Xeon with AMX (`ltbench bench train --precision both`,
    ResNet-32 train step, batch 128): bf16 388 vs fp32 193 img/s with 1 thread, 631 vs 359 with 2; one
    CIFAR-10-LT epoch 2.0x / 1.8x fp32 (`ltbench bench compare`), and a 20-epoch CE run ends within seed noise
    of fp32 (42.0 vs 43.4 %). An earlier measurement on a machine of the same kind, whose AMX flag was not
    recorded, had bf16 slower than fp32 (307 vs 373 img/s, 2 threads): bf16 is chosen only where AMX is present.
    """
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_amx() else "fp32"


def configure_threads(threads: int | None) -> int:
    """CPU threads: explicit value, else SLURM_CPUS_PER_TASK (a SLURM job may see more cores than it
    was given; two 1-thread jobs beat one 2-thread job on a 2-core node), else torch's default."""
    if threads is None and os.environ.get("SLURM_CPUS_PER_TASK"):
        threads = int(os.environ["SLURM_CPUS_PER_TASK"])
    if threads is not None:
        cpus = os.cpu_count() or 1
        if not 1 <= threads <= 4 * cpus:  # more than 4 threads per core only ever oversubscribes
            raise ConfigError(f"--threads must be between 1 and {4 * cpus} on this {cpus}-CPU machine, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def seed_everything(seed: int, deterministic: bool) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
