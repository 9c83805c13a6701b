"""Starting the processes of one run: torchrun on one machine, submitit tasks on SLURM.

``ltbench run --devices N`` is ``torchrun --standalone --nproc-per-node N -m ltbench run ...`` (without
``--devices``), started through ``torch.distributed.run``'s own API: the elastic agent starts, watches and, when one
rank fails, stops the workers. On SLURM, a job with ``tasks_per_node`` = GPUs runs one submitit task per GPU; each
task exports the torch.distributed variables submitit derives from SLURM's (``TorchDistributedEnvironment``).
"""

from __future__ import annotations

import os

from ltbench.errors import ConfigError


def without_devices(argv: list[str]) -> list[str]:
    """``argv`` without ``--devices N`` / ``--devices=N`` (the workers must not launch again)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--devices":
            skip = True
        elif not arg.startswith("--devices="):
            out.append(arg)
    return out


def launch_local(devices: int, argv: list[str]) -> int:
    """Run ``ltbench <argv>`` as ``devices`` processes on this machine under torchrun's elastic agent; the exit
    status of the first failed worker (its own error is printed by that worker), else 0."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--devices inside a torchrun or SLURM task: the launcher already started the processes")
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={devices}", "--module", "ltbench", *without_devices(argv)]
    )
    try:
        run(args)
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values() if f.exitcode]
        return codes[0] if codes and codes[0] > 0 else 1
    return 0


def join_slurm_tasks() -> None:
    """In a submitit job with several tasks (``tasks_per_node`` > 1 or several nodes): set RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR and MASTER_PORT from SLURM's variables, so that ``ltbench.run`` joins the process
    group. CUDA_VISIBLE_DEVICES is left alone: each task picks ``cuda:LOCAL_RANK`` itself. A single-task job (and
    the debug executor) is left unchanged."""
    import submitit

    try:
        tasks = submitit.JobEnvironment().num_tasks
    except RuntimeError:  # not inside a submitit job
        return
    if tasks > 1 and "WORLD_SIZE" not in os.environ:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
