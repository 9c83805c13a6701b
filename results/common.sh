# Sourced by results/*/regenerate.sh: data/run folders (DATA, RUNS), the cluster preset (PRESET), the calling results
# folder (RESULTS, where its tables go), the local one-node SLURM cluster, and run_sweep SPEC, which runs a sweep file
# to completion and sets SWEEP to its directory.
#
# PIN=COMMIT finishes a regeneration longer than one sitting on machines whose run folders do not survive: the
# sweeps run with the code and sweep files of COMMIT (from a detached worktree of it under ${PIN_DIR:-/tmp}, the
# working folder of every sweep and SLURM job, which Python imports from first, and on PYTHONPATH) and take the
# runs already finished at COMMIT from RESULTS/runs (`ltbench sweep --resume`, which refuses records of any other
# code). Commit the records after each sitting; the next one, on any machine, runs the same command again. The
# tables are made by this checkout's code (report fixes apply to pinned records too). A single run longer than a
# sitting: stop it with `scancel` (mid-epoch checkpoint), `source results/park.sh; park SWEEP_DIR RESULTS PIN`,
# commit RESULTS/unfinished/; the next sitting's run of this script puts the checkpoint back (unpark), the sweep
# resumes it.
set -euo pipefail
RESULTS=$(cd "$(dirname "$0")" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA=$(realpath -m "${DATA:-$HOME/.cache/ltbench/data}")
RUNS=$(realpath -m "${RUNS:-ltbench-out/sweeps}")
PRESET=${PRESET:-localhost}  # ltbench/sweep/presets.toml: 1 thread per job, 2 at once; or slurm/dev-cluster/presets.toml
export LTBENCH_PRESETS=${LTBENCH_PRESETS:-$PWD/slurm/dev-cluster/presets.toml}
RESUME=()
if [ -n "${PIN:-}" ]; then
    PIN=$(git rev-parse --verify --quiet "$PIN^{commit}") || { echo "PIN: no such commit here" >&2; exit 2; }
    PIN_TREE=${PIN_DIR:-/tmp}/ltbench-${PIN:0:12}
    [ -d "$PIN_TREE" ] || git worktree add --detach "$PIN_TREE" "$PIN" >/dev/null
    grep -q -- '"--resume"' "$PIN_TREE/ltbench/cli/sweep.py" || {
        echo "PIN=$PIN predates 'ltbench sweep --resume': pin a later commit" >&2
        exit 2
    }
    # only the sweeps (and so their jobs) run COMMIT's code: tables.sh, a new process, reports with this checkout's
    ltbench() { PYTHONPATH=$PIN_TREE${PYTHONPATH:+:$PYTHONPATH} command ltbench "$@"; }
    [ ! -d "$RESULTS/runs" ] || RESUME=(--resume "$RESULTS/runs") # none yet: the first sitting
    echo "code of $PIN ($PIN_TREE)${RESUME[*]:+; resuming from $RESULTS/runs}" >&2
    cd "$PIN_TREE"
fi
source "$RESULTS/../park.sh"
unpark "$RESULTS" "$RUNS"
bash slurm/dev-cluster/start-local-cluster.sh >/dev/null

run_sweep() {
    ltbench sweep "$1" --launcher slurm --preset "$PRESET" --data-root "$DATA" --out "$RUNS" --wait \
        ${RESUME[@]+"${RESUME[@]}"}
    SWEEP=$RUNS/$(python -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['sweep']['name'])" "$1")
}
