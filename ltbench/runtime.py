"""Where and how fast a run executes: device, precision, CPU threads. Recorded, never hashed."""

from __future__ import annotations

import os
from functools import lru_cache

import torch

from ltbench.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (avx512_bf16 / amx_bf16)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> str:
    """auto -> bf16 autocast where the hardware does bf16 natively (CUDA with bf16, avx512_bf16 CPUs)."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def configure_threads(threads: int | None) -> int:
    """CPU threads: explicit value, else SLURM_CPUS_PER_TASK (a SLURM job may see more cores than it
    was given; two 1-thread jobs beat one 2-thread job on a 2-core node), else torch's default."""
    if threads is None and os.environ.get("SLURM_CPUS_PER_TASK"):
        threads = int(os.environ["SLURM_CPUS_PER_TASK"])
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {threads}")
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
