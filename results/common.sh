# Sourced by results/*/regenerate.sh: data/run folders (DATA, RUNS), the local one-node SLURM cluster, and
# run_sweep SPEC, which runs a sweep file to completion and sets SWEEP to its directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA=${DATA:-$HOME/.cache/ltbench/data}
RUNS=${RUNS:-ltbench-out/sweeps}
bash slurm/dev-cluster/start-local-cluster.sh >/dev/null

run_sweep() {
    ltbench sweep "$1" --launcher slurm --preset localhost --data-root "$DATA" --out "$RUNS" --wait
    SWEEP=$RUNS/$(python -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['sweep']['name'])" "$1")
}
