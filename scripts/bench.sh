#!/usr/bin/env bash
# Runs the catalog benchmarks (criterion, release profile) and writes BENCHMARKS.md with
# each figure as a ratio against the baselines measured in the same run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo bench -p sluice-server --bench catalog -- "$@"
python3 scripts/bench_report.py > BENCHMARKS.md
cat BENCHMARKS.md
