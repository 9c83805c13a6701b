#!/usr/bin/env bash
# Records, tables and figures of results/liu2022_similarity/ from a finished sweep folder (default: the committed
# runs/): accuracy of airplane (class 0, where the mixed images go) and truck (class 9, the rarest, mixed in)
# against ρ at λ = 0.2 and against λ at ρ = 0.2, and the share of truck's test images taken for airplane (9 as 0)
# and for automobile (9 as 1), the confusion the paper's mechanism predicts.
#   bash results/liu2022_similarity/tables.sh [SWEEP_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=results/liu2022_similarity
SWEEP=${1:-$OUT/runs}
source results/keep_records.sh
keep_records "$SWEEP" "$OUT" config.json result.json log.jsonl predictions.npz done
ltbench table "$OUT/runs" --format markdown --shots 500,200 --metrics class:0,class:9,confusion:9:0,confusion:9:1 \
    --out "$OUT/table.md"
ltbench table "$OUT/runs" --format csv --shots 500,200 --metrics class:0,class:9,confusion:9:0,confusion:9:1,macro_f1,ece \
    --out "$OUT/summary.csv"
ltbench plot "$OUT/runs" --kind sweep --x mix_similar.rho --where mix_similar.lambda=0.2 --classes 0,9,overall \
    --out "$OUT/figures"
ltbench plot "$OUT/runs" --kind sweep --x mix_similar.lambda --where mix_similar.rho=0.2 --classes 0,9,overall \
    --out "$OUT/figures"
ltbench plot "$OUT/runs" --kind sweep --x mix_similar.rho --where mix_similar.lambda=0.2 --classes 9:0,9:1 \
    --out "$OUT/figures"
ltbench plot "$OUT/runs" --kind sweep --x mix_similar.lambda --where mix_similar.rho=0.2 --classes 9:0,9:1 \
    --out "$OUT/figures"
