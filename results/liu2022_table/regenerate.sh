#!/usr/bin/env bash
# Regenerates results/liu2022_table/: Liu & Liu's Table 1 on the shared real CIFAR-10-LT, the IR-100 and IR-10 columns
# (slurm/liu2022_table.toml): CE, CE-RS, CE-RW, CE-DRW, Focal and LDAM, each without and with rotation
# self-supervised pre-training (--ssp), ResNet-32, the `quick` preset (every stage 20 epochs), bf16, seed 0, one
# thread per run. 24 runs, 11.8 M training images (an SSP run trains twice): about 6 CPU-hours where a 1-thread bf16
# ResNet-32 job runs at ~530 img/s (AMX), 9 at ~360, 13 at ~255 (avx512_bf16 only), two runs at a time; 13 to 45 min
# per run at ~360 img/s. Longer than one sitting on a 2-core machine: run it with PIN=COMMIT (results/common.sh) and
# commit the records after each sitting; the next sitting resumes at the same commit. All 24 committed runs were made at
# PIN=092c30e over three sittings (measured here: 10-23 min per run without SSP, 18-35 min with, ~450 img/s).
# results/liu2022_table_budget/ holds the step-matched CE control.
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] [PIN=COMMIT] bash results/liu2022_table/regenerate.sh
source "$(dirname "$0")/../common.sh"
ltbench sweep slurm/liu2022_table.toml --launcher slurm --preset "$PRESET" --data-root "$DATA" --out "$RUNS" \
    --wait ${RESUME[@]+"${RESUME[@]}"}
bash "$RESULTS/tables.sh" "$RUNS/liu2022_table"
