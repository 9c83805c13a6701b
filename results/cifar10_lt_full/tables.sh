#!/usr/bin/env bash
# The tables of results/cifar10_lt_full/ from the committed run records under runs/ (seconds, no training):
# final-epoch accuracy with the published number and Δ, ECE, and the best-test† column for comparison with
# releases that select on the test set.
set -euo pipefail
cd "$(dirname "$0")"
ltbench table runs --published --select best-test --metrics ece --out table.md
ltbench table runs --published --select best-test --metrics ece --out table.tex
