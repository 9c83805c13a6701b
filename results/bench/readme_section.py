"""Writes the README's "Performance" section from the bench outputs in results/bench/*.txt (regenerate.sh).

Every figure of that section is copied from one of these files, never typed: run this after regenerate.sh.
    python results/bench/readme_section.py
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "results" / "bench"


def body(name: str) -> list[str]:
    """The file's lines without the header regenerate.sh puts on top (and stray profiler/tracer lines)."""
    return [line for line in (BENCH / name).read_text().splitlines() if not line.startswith(("# ", "USDT:", "ERROR:"))]


def commit(name: str) -> str:
    header = (BENCH / name).read_text().splitlines()[1]
    sha = re.search(r"commit (\w+)", header).group(1)
    # written before regenerate.sh ignored its own outputs when checking for uncommitted changes
    return sha + (" with earlier bench outputs of the same run uncommitted" if "(dirty)" in header else "")


def load(name: str) -> str:
    return (BENCH / name).read_text().splitlines()[3].split(":", 1)[1].strip()


def table(name: str) -> str:
    return "\n".join(line for line in body(name) if line.startswith("|"))


def block(name: str) -> str:
    """The output verbatim, as a code block (kept line by line: never re-wrapped)."""
    return "```\n" + "\n".join(body(name)).strip("\n") + "\n```"


def prose(text: str) -> str:
    return textwrap.fill(text, 115)


def no_bf16() -> list[str]:
    """Why ``auto`` avoids bf16 without the instructions: the same bench on such a CPU, where one was measured."""
    f = "train_nobf16.txt"
    if not (BENCH / f).exists():
        return []
    info = ast.literal_eval((BENCH / f).read_text().splitlines()[2].split(":", 1)[1].rsplit(", torch", 1)[0].strip())
    cpu = f"{info['cpu_model']}, flags {' '.join(info['cpu_flags']) or 'none of them'}"
    return [
        prose(
            f"The same bench on a CPU without bf16 instructions ({cpu}; 10 steps, `--threads 1`; `{f}`, commit "
            f"{commit(f)}), where `auto` picks fp32 because bf16 autocast is emulated there:"
        ),
        table(f),
    ]


def section() -> str:
    parts = [
        "## Performance",
        prose(
            "Every figure below is a file in `results/bench/` (the command, commit, date, CPU flags and load average "
            "on top), made by `bash results/bench/regenerate.sh` on the 2-core reference CPU (Xeon with avx512_bf16 "
            "and AMX, torch 2.14.1) and copied here by `python results/bench/readme_section.py`. `train`, `compare`, "
            "`profile`, `startup` and `ddp` ran with nothing else on the machine; `dpp`, `ot`, `report` and `decode` "
            "ran beside two 1-thread training jobs (their ratios are side by side in one process, their absolute "
            "times are those of a busy machine). Compare ratios, not absolute speeds, across machines. Nothing here "
            "was measured on a GPU: no GPU was available to this project so far, so the CUDA paths (bf16/TF32 "
            "autocast, `--compile`, pinned-memory loading, NCCL multi-GPU, nvJPEG decoding) have run only in tests "
            "that guard them on CPU: every stage of every method takes optimizer steps on the `meta` device under "
            "CUDA's device-mixing rules (`tests/test_device_guard.py`), its step loop is audited for host syncs "
            "and host copies (`tests/test_gpu_guards.py`), a checkpoint tagged `cuda:0` resumes, evaluation copies "
            "each prediction variant to the host once per split (in 512 MB chunks), and `--compile` reports its "
            "recompiles and graph breaks per run; `slurm/gpu_check.sh` is the first check to run on a GPU."
        ),
    ]
    for t in (1, 2):
        f = f"train_threads{t}.txt"
        parts += [
            prose(
                f"`ltbench bench train --dataset cifar10_lt --data-root DIR --precision both --threads {t}` "
                f"(ResNet-32, batch 128, channels_last; `{f}`, commit {commit(f)}):"
            ),
            table(f),
        ]
    for t in (1, 2):
        f = f"compare_threads{t}.txt"
        parts += [
            prose(
                f"`ltbench bench compare --dataset cifar10_lt --data-root DIR --precision both --threads {t}`: one "
                "full training epoch (12,406 images), side by side, of the conventional loop (PIL images + "
                "torchvision RandomCrop/flip/ToTensor/Normalize through a DataLoader, default memory format, fp32) "
                f"and of a real `ltbench run` epoch, same ResNet-32, batch 128 and threads (`{f}`, commit "
                f"{commit(f)}):"
            ),
            table(f),
        ]
    parts += [
        prose(
            "`--precision auto` means bf16 autocast on CPUs with AMX or avx512_bf16 and on CUDA GPUs with bf16, "
            "fp32 elsewhere; the choice and the CPU flags are recorded in `result.json` (`env.precision`, "
            "`env.cpu_flags`). Accuracy: the slow test `test_bf16_training_matches_fp32_accuracy` checks that a "
            "2-epoch real CIFAR-10-LT run in bf16 ends within 5 points of the same run in fp32 (on CPUs with native "
            "bf16 only: elsewhere it says so and skips), and `test_bf16_autocast_path_runs_on_cpu` checks the bf16 "
            "arithmetic on every CPU. At the full 200-epoch CE recipe (README Fidelity) fp32 ended at 69.6 % and the "
            "bf16 runs at 70.2 and 70.8: no cost of bf16 beyond what one run moves by itself."
        ),
        *no_bf16(),
        prose(
            "`ltbench bench profile --dataset cifar10_lt --data-root DIR --threads 1` (torch.profiler over real "
            "fp32 trainer steps; `profile.txt`):"
        ),
        block("profile.txt"),
        prose(
            "On a busy machine OpenMP's spinning threads fight the other processes (a 2-thread run beside a "
            "training job can be several times slower than a 1-thread one): on a shared machine pass `--threads 1` "
            "(or export `OMP_WAIT_POLICY=PASSIVE`); SLURM jobs take their thread count from `SLURM_CPUS_PER_TASK`."
        ),
        prose(
            "Start-up and the default run (`ltbench run` with only `--seed`/`--precision`: BNS+IP-DPP on "
            "digits_lt, both stages; `startup.txt`):"
        ),
        block("startup.txt"),
        prose(
            "`ltbench bench dpp` (p ~ Beta(5, 1), k = N/10, median of 3; exact = the structured O(N·k) sampler; "
            f"`dpp.txt`, load {load('dpp.txt')}):"
        ),
        block("dpp.txt"),
        prose(
            "`OMP_NUM_THREADS=1 ltbench bench ot --repeats 21` (OTmix's pairing plan on OTmix-shaped costs, "
            "ε = 0.01, median of 21, one thread; `ot.txt`):"
        ),
        block("ot.txt"),
        prose(
            "Same algorithm (Sinkhorn–Knopp in float64) in both; ltbench keeps the torch solver because it runs on "
            "the training device (no feature copy to the host on a GPU, not measured here)."
        ),
        "`ltbench bench report` (`report.txt`):",
        table("report.txt"),
        prose(
            "`ltbench bench train --dataset digits_lt --devices 2 --threads 1` (DDP over gloo on this 2-core CPU: "
            "a CPU figure, not a GPU one; `ddp.txt`):"
        ),
        table("ddp.txt"),
        prose(
            "`ltbench bench decode --data-root DIR --workers 1 --threads 1`: the ImageNet-LT/Places-LT/iNaturalist "
            "loader (the trainer's own, persistent DataLoader workers) over 2,000 JPEGs made from CIFAR-10 training "
            "images upscaled to a 256-px shorter side (quality 90; smooth upscaled content decodes faster than "
            "photographs, so read the ratios), training crops (RandomResizedCrop 224) and evaluation crops (Resize "
            f"256 + CenterCrop 224), with each decoder (`decode.txt`, commit {commit('decode.txt')}, load "
            f"{load('decode.txt')}):"
        ),
        block("decode.txt"),
        prose(
            "`--decoder torchvision` is the default because it is the faster one here; with one worker beside two "
            "training jobs on 2 cores the worker rows are slower than the main-process rows (three processes on two "
            "cores). The batched `decode_jpeg` rows decode a list of files at once, the form nvJPEG needs on a GPU; "
            "on a CPU it is a loop, and the trainer does not use it."
        ),
    ]
    return "\n\n".join(parts) + "\n\n"


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index("## Performance\n"), text.index("## Reference\n")
    readme.write_text(text[:start] + section() + text[end:])


if __name__ == "__main__":
    main()
