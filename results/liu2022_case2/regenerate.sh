#!/usr/bin/env bash
# Regenerates results/liu2022_case2/: Liu & Liu's toy case 2 (§3, "decreasing minority") on the shared real CIFAR-10:
# classes 0-8 at 5,000 training images each, class 9 (truck) at n ∈ {5000, 2500, 1000, 500, 100}
# (--class-counts 5000x9,n), CE, ResNet-32, the `quick` preset (20 epochs), bf16, one thread per run
# (slurm/liu2022_case2.toml). 10 runs (2 seeds), 4.68 M training images per seed: about 5 CPU-hours in all where a
# 1-thread bf16 ResNet-32 job runs at ~530 img/s (AMX), about 7 at ~360 and 10 at ~255 (avx512_bf16 only; 45-65 min
# per run), two runs at a time. Longer than one sitting on a 2-core machine: run it with PIN=COMMIT
# (results/common.sh) and commit the records after each sitting; the next sitting resumes at the same commit.
# Committed: seed 0, its five runs made at PIN=092c30e in one sitting (SEEDS=0; 32-35 min per run at ~450 img/s).
# SEEDS (default 0,1 as the spec) picks the seeds; finished runs are kept, so a rerun only does what is missing.
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] [SEEDS=0,1] [PIN=COMMIT] bash results/liu2022_case2/regenerate.sh
source "$(dirname "$0")/../common.sh"
ltbench sweep slurm/liu2022_case2.toml --seeds "${SEEDS:-0,1}" --threads 1 --launcher slurm --preset "$PRESET" \
    --data-root "$DATA" --out "$RUNS" --wait ${RESUME[@]+"${RESUME[@]}"}
bash "$RESULTS/tables.sh" "$RUNS/liu2022_case2"
