#!/usr/bin/env bash
# Regenerates results/liu2022_table_budget/: CE for 40 epochs at IR 100 and IR 10 (slurm/liu2022_table_budget.toml),
# the step-matched control for the CE+SSP runs of results/liu2022_table/ (20 rotation + 20 CE epochs), then the
# table of CE (20 epochs), CE+SSP and CE (40 epochs) side by side. 2 runs, about 50 CPU-minutes on a CPU without AMX.
# Made with PIN=092c30e, the commit of the Table 1 runs, so that the three rows differ only in what they train: the
# spec is read from this checkout (it is newer than that commit), the code is the pinned commit's.
#   DATA=/path/holding/cifar10 [RUNS=runs/folder] [PIN=COMMIT] bash results/liu2022_table_budget/regenerate.sh
SPEC=$(realpath "$(dirname "$0")/../../slurm/liu2022_table_budget.toml")
source "$(dirname "$0")/../common.sh"
ltbench sweep "$SPEC" --launcher slurm --preset "$PRESET" --data-root "$DATA" --out "$RUNS" \
    --wait ${RESUME[@]+"${RESUME[@]}"}
bash "$RESULTS/tables.sh" "$RUNS/liu2022_table_budget"
