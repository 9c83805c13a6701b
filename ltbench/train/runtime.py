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


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def resolve_precision(name: str, device: torch.device) -> str:
    """auto -> bf16 autocast on CUDA GPUs with native bf16 and on CPUs with native bf16 dot products (AMX or
    avx512_bf16); fp32 elsewhere, where bf16 is emulated.

    Measured (``ltbench bench train --precision both``, ResNet-32 train step, batch 128, side by side in one
    process): an AMX Xeon (the reference machine) bf16 388 vs fp32 193 img/s with 1 thread, 631 vs 359 with 2;
    an avx512_bf16 Xeon without AMX 416 vs 282 (one CIFAR-10-LT epoch, ``bench compare``, 2 threads, 1.47x);
    a machine of the same kind with neither flag recorded had bf16 slower than fp32 (307 vs 373). README
    "Performance" has the table. Capping oneDNN's ISA on the AMX machine (ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16)
    does *not* reproduce the avx512_bf16 machine (bf16 fell to a fraction of fp32): the real CPU is the
    measurement this rule follows. The CPU flags are recorded in every result.json.
    """
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    flags = cpu_flags()
    return "bf16" if {"avx512_bf16", "amx_bf16"} & flags or cpu_has_amx() else "fp32"


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
    """Seed every RNG and set the algorithm choice *both ways*: a --deterministic run must not leave deterministic
    algorithms on (or cudnn autotuning off) for later runs of an in-process sweep. On CUDA, cudnn.benchmark picks
    the fastest convolution algorithms unless determinism is asked for."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic and torch.cuda.is_available()
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def numerics() -> dict:
    """What decides the arithmetic of a run beyond its precision: on CUDA an "fp32" run uses TF32 tensor cores
    for convolutions (and matmuls when allowed) by default, so these are recorded with every result."""
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def _compile_totals() -> dict[str, int]:
    """torch.compile's process-wide totals so far (they only grow; ``torch._dynamo.reset`` clears none of them)."""
    from torch._dynamo.utils import counters

    stats = counters.get("stats", {})
    return {
        "frames_compiled": int(stats.get("unique_graphs", 0)),
        "calls_captured": int(stats.get("calls_captured", 0)),
        "graph_breaks": int(sum(counters.get("graph_break", {}).values())),
    }


class CompileWatch:
    """torch.compile's counters for one --compile run, started before the model is compiled: graphs compiled,
    graph breaks and recompiles, so a silent fallback to eager or a recompile storm is visible in the record.

    Dynamo's counters are cumulative over the process, so an in-process sweep would report every earlier run's
    compiles again: the report is the difference from the start. There is no recompile counter (torch 2.14 never
    fills ``counters["recompiles"]``); a recompile is a compilation whose metrics carry a ``recompile_reason``
    (a guard failed on an already compiled frame; a new model instance of the same code is not one). Dynamo keeps
    the last 64 of those metrics: the ones already there at the start are held and skipped."""

    def __init__(self) -> None:
        from torch._dynamo.utils import get_compilation_metrics

        self._start = _compile_totals()
        self._seen = get_compilation_metrics()  # held: their ids cannot be reused while this list lives

    def report(self) -> dict[str, int]:
        from torch._dynamo.utils import get_compilation_metrics

        seen = {id(m) for m in self._seen}
        new = [m for m in get_compilation_metrics() if id(m) not in seen]
        now = _compile_totals()
        return {
            **{k: now[k] - self._start[k] for k in now},
            "recompiles": sum(m.recompile_reason is not None for m in new),
        }
