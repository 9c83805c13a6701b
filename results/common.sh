# Sourced by results/*/regenerate.sh: data/run folders (DATA, RUNS), the local one-node SLURM cluster, and
# run_sweep SPEC, which runs a sweep file to completion and sets SWEEP to its directory.
#
# PIN=COMMIT finishes a regeneration longer than one sitting on machines whose run folders do not survive: the
# sweeps run with the code of COMMIT (a detached worktree of it under ${PIN_DIR:-/tmp}, imported first through
# PYTHONPATH, so every record says COMMIT) and take the runs already finished at COMMIT from this results folder's
# committed records (`ltbench sweep --resume`, which refuses records of any other code). Commit the records after
# each sitting; the next one, on any machine, runs `PIN=COMMIT bash results/<name>/regenerate.sh` again.
set -euo pipefail
RECORDS=$(cd "$(dirname "$0")" && pwd)/runs  # the calling results folder's committed records
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA=${DATA:-$HOME/.cache/ltbench/data}
RUNS=${RUNS:-ltbench-out/sweeps}
RESUME=()
if [ -n "${PIN:-}" ]; then
    PIN=$(git rev-parse --verify --quiet "$PIN^{commit}") || { echo "PIN: no such commit here" >&2; exit 2; }
    PIN_TREE=${PIN_DIR:-/tmp}/ltbench-${PIN:0:12}
    [ -d "$PIN_TREE" ] || git worktree add --detach "$PIN_TREE" "$PIN" >/dev/null
    grep -q -- '"--resume"' "$PIN_TREE/ltbench/cli/sweep.py" || {
        echo "PIN=$PIN predates 'ltbench sweep --resume': pin a later commit" >&2
        exit 2
    }
    export PYTHONPATH=$PIN_TREE${PYTHONPATH:+:$PYTHONPATH}
    [ ! -d "$RECORDS" ] || RESUME=(--resume "$RECORDS")  # none yet: the first sitting
    echo "code of $PIN ($PIN_TREE)${RESUME[*]:+; resuming from $RECORDS}" >&2
fi
bash slurm/dev-cluster/start-local-cluster.sh >/dev/null

run_sweep() {
    ltbench sweep "$1" --launcher slurm --preset localhost --data-root "$DATA" --out "$RUNS" --wait \
        ${RESUME[@]+"${RESUME[@]}"}
    SWEEP=$RUNS/$(python -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['sweep']['name'])" "$1")
}
