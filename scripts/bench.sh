#!/usr/bin/env bash
# Runs the benchmarks (criterion, release profile) and writes BENCHMARKS.md with each figure
# as a ratio against the baselines measured in the same run:
#   - catalog:    load-table latency and commit throughput on the embedded default
#   - delegation: remote signing on s3s-fs and load-table with vended credentials on moto;
#                 needs s3s-fs (PATH or ~/.cargo/bin) and moto (.venv-moto/ or MOTO_SERVER_BIN),
#                 which `bash scripts/test.sh` installs
#   - backends:   load-table latency and commit throughput on PostgreSQL as a ratio of SQLite;
#                 starts its own PostgreSQL 15 (initdb/pg_ctl on PATH), skipped without it
# Extra arguments go to both benches (e.g. `--measurement-time 3`). CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo bench -p sluice-server --bench catalog -- "$@"
cargo bench -p sluice-server --bench delegation -- "$@"
# The PostgreSQL server binaries live outside PATH on Debian.
PATH="$PATH:$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)" \
  cargo bench -p sluice-server --bench backends -- "$@"
python3 scripts/bench_report.py > BENCHMARKS.md.tmp
mv BENCHMARKS.md.tmp BENCHMARKS.md
cat BENCHMARKS.md
