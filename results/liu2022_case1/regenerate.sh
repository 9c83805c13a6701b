#!/usr/bin/env bash
# Regenerates results/liu2022_case1/: Liu & Liu's toy case 1 (§3, "increasing majority") on the shared real CIFAR-10:
# classes 0-8 at n ∈ {100, 500, 1000, 2500, 5000} training images each, class 9 (truck) fixed at 100
# (--class-counts nx9,100), CE, ResNet-32, the `quick` preset (20 epochs), bf16, one thread per run
# (slurm/liu2022_case1.toml). 10 runs, 1.64 M training images per seed: about 1.8 CPU-hours where a 1-thread bf16
# ResNet-32 job runs at ~530 img/s (AMX), about 3.5 where it runs at ~255 (avx512_bf16 only), two runs at a time.
# SEEDS (default 0,1 as the spec) picks the seeds; finished runs are kept, so a rerun only does what is missing.
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] [SEEDS=0,1] bash results/liu2022_case1/regenerate.sh
source "$(dirname "$0")/../common.sh"
ltbench sweep slurm/liu2022_case1.toml --seeds "${SEEDS:-0,1}" --threads 1 --launcher slurm --preset "$PRESET" \
    --data-root "$DATA" --out "$RUNS" --wait ${RESUME[@]+"${RESUME[@]}"}
bash "$RESULTS/tables.sh" "$RUNS/liu2022_case1"
