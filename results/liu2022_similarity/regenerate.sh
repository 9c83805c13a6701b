#!/usr/bin/env bash
# Regenerates results/liu2022_similarity/: Liu & Liu's §4.2 similar-sample injection on the shared real CIFAR-10-LT
# (IR 100, ResNet-32, CE, `quick` preset = 20 epochs, bf16, one thread per run; slurm/liu2022_similarity.toml): a
# share ρ of airplane's (class 0, 5,000 images) training images becomes λ·x_airplane + (1−λ)·x_truck (class 9,
# 50 images), labels kept; ρ ∈ {0, 0.1, 0.2, 0.4} at λ = 0.2 and λ ∈ {0, 0.2, 0.4, 0.6} at ρ = 0.2 (7 settings).
# SEEDS (default 0,1 as the spec) picks the seeds; each run takes 9-16 min on a CPU without AMX (two at a time on
# 2 cores; the committed 14 ran at commit 6f3ce9e).
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] [SEEDS=0,1] [PIN=COMMIT] bash results/liu2022_similarity/regenerate.sh
source "$(dirname "$0")/../common.sh"
ltbench sweep slurm/liu2022_similarity.toml --seeds "${SEEDS:-0,1}" --threads 1 --launcher slurm --preset "$PRESET" \
    --data-root "$DATA" --out "$RUNS" --wait ${RESUME[@]+"${RESUME[@]}"}
bash "$RESULTS/tables.sh" "$RUNS/liu2022_similarity"
