#!/usr/bin/env bash
# Runs the benchmarks. Two parts; BENCH_ONLY=criterion or BENCH_ONLY=http runs one of them.
#
# criterion (release profile): writes BENCHMARKS.md with each figure as a ratio against the
# baselines measured in the same run:
#   - catalog:    load-table latency and commit throughput on the embedded default
#   - delegation: remote signing on s3s-fs and load-table with vended credentials on moto;
#                 needs s3s-fs (PATH or ~/.cargo/bin) and moto (.venv-moto/ or MOTO_SERVER_BIN),
#                 which `bash scripts/test.sh` installs
#   - backends:   load-table latency and commit throughput on PostgreSQL as a ratio of SQLite;
#                 starts its own PostgreSQL 15 (initdb/pg_ctl on PATH), skipped without it
# Extra arguments go to each criterion bench (e.g. `--measurement-time 3`).
#
# http (issue #20): the release `sluice serve` as a user runs it, driven over loopback by wrk
# and by `sluice-bench` (crates/sluice-bench), next to an empty axum handler that answers with
# a body of the same size (`sluice-bench baseline`), in the same run:
#   - wrk (WRK_ARGS, default `-t2 -c16 -d10s`, the same for every run) on GET /health,
#     authenticated GET /v1/config, load-table of a warm table and the table-scoped sign
#     endpoint, each against its baseline, BENCH_ROUNDS (default 2) alternating rounds; and
#     the sign floor (`sluice-bench sign-floor`: the same sign request answered with nothing
#     but JSON in, one aws-sigv4 signature, JSON out) against the sign baseline;
#   - the Polaris-style workloads (`sluice-bench polaris`, POLARIS_ARGS) on SQLite and on a
#     throwaway PostgreSQL 15 cluster (skipped when initdb/pg_ctl are missing);
#   - idle RSS after start and cold start to the first 200 (`sluice-bench coldstart`,
#     COLDSTART_RUNS runs, default 10);
#   results: $CARGO_TARGET_DIR/bench-http.json (default target/), the markdown section in
#   $CARGO_TARGET_DIR/bench-http.md, printed; with BENCH_HTTP_WRITE=1 it also replaces the
#   section marked `<!-- bench-http -->` at the top of BENCHMARKS.md.
#   SLUICE_BIN: the sluice binary (default $CARGO_TARGET_DIR/release/sluice; build it with
#   `cargo build --release -p sluice`). Needs wrk, curl, jq, python3. Client and servers
#   share the machine's cores.
# CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_ONLY="${BENCH_ONLY:-all}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
# The PostgreSQL server binaries live outside PATH on Debian.
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"

criterion_part() {
  # --workspace: the features of a whole-workspace build, so nothing is rebuilt between benches.
  cargo bench --workspace --bench catalog -- "$@"
  cargo bench --workspace --bench delegation -- "$@"
  PATH="$PATH:$PG_BIN" cargo bench --workspace --bench backends -- "$@"
  python3 scripts/bench_report.py > BENCHMARKS.md.tmp
  mv BENCHMARKS.md.tmp BENCHMARKS.md
  cat BENCHMARKS.md
}

# ---- http part ---------------------------------------------------------------------------
KEY=AKIABENCH00000000000
SECRET=benchSecret0123456789abcdefghijklmnopqrs
PIDS=()
PG_DIR=""
AS_PG=()

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n "$PG_DIR" ]]; then
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
  [[ -n "${WORK:-}" ]] && rm -rf "$WORK"
}

# start_sluice NAME [DATABASE_URL]: `sluice serve` on free ports (API and S3 gateway) with its
# own data directory; sets NAME_PID and NAME_URL once /health answers 200.
start_sluice() {
  local name=$1 db=${2:-} port s3port pid i
  port=$(free_port)
  s3port=$(free_port)
  local args=(serve --listen "127.0.0.1:$port" --s3-listen "127.0.0.1:$s3port" --data-dir "$WORK/$name")
  [[ -n "$db" ]] && args+=(--database-url "$db")
  SLUICE_LOG_LEVEL=warn SLUICE_BOOTSTRAP_ACCESS_KEY_ID=$KEY SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY=$SECRET \
    "$SLUICE_BIN" "${args[@]}" >"$WORK/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for i in $(seq 1 400); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log"; echo "sluice serve ($name) exited" >&2; exit 1; }
    sleep 0.05
  done
  printf -v "${name}_PID" '%s' "$pid"
  printf -v "${name}_URL" '%s' "http://127.0.0.1:$port"
}

stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

rss_mb() {
  awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

# start_baseline NAME BYTES: sets BASE_NAME (its URL).
start_baseline() {
  local name=$1 bytes=$2 pid i
  "$BENCH" baseline --listen 127.0.0.1:0 --body-bytes "$bytes" >"$WORK/baseline-$name.addr" &
  pid=$!
  PIDS+=("$pid")
  for i in $(seq 1 200); do [[ -s "$WORK/baseline-$name.addr" ]] && break; sleep 0.05; done
  printf -v "BASE_$name" '%s' "http://$(head -1 "$WORK/baseline-$name.addr")"
  printf -v "BASEPID_$name" '%s' "$pid"
}

# CPU seconds (user + system) a process has used so far.
cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

# run_wrk OUT SERVER_PID URL METHOD TOKEN BODY_FILE: the wrk figures plus the CPU time the
# server process used during the run (a cost per request that other load on the machine
# hardly changes).
run_wrk() {
  local before after
  before=$(cpu_s "$2")
  # shellcheck disable=SC2086 # WRK_ARGS is a list of flags
  WRK_METHOD=$4 WRK_TOKEN=$5 WRK_BODY_FILE=$6 \
    wrk $WRK_ARGS --latency -s scripts/wrk_bench.lua "$3" >"$1.txt"
  after=$(cpu_s "$2")
  sed -n 's/^WRK_JSON //p' "$1.txt" | jq -c --argjson cpu "$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.3f", a - b}')" '. + {server_cpu_s: $cpu}' >"$1"
  echo "  $(basename "$1" .json): $(grep 'Requests/sec' "$1.txt" | tr -s ' ')"
}

# compare CASE SLUICE_URL BASELINE_URL BASELINE_PID METHOD TOKEN BODY_FILE [SERVER_PID]:
# alternating rounds; SERVER_PID is the process behind SLUICE_URL (default: Sluice's).
compare() {
  local case=$1 r server=${8:-$lite_PID}
  mkdir -p "$RES/wrk/$case"
  for r in $(seq 1 "$ROUNDS"); do
    if (( r % 2 == 1 )); then
      run_wrk "$RES/wrk/$case/baseline.$r.json" "$4" "$3" "$5" "$6" "$7"
      run_wrk "$RES/wrk/$case/sluice.$r.json" "$server" "$2" "$5" "$6" "$7"
    else
      run_wrk "$RES/wrk/$case/sluice.$r.json" "$server" "$2" "$5" "$6" "$7"
      run_wrk "$RES/wrk/$case/baseline.$r.json" "$4" "$3" "$5" "$6" "$7"
    fi
  done
}

start_pg() {
  PG_DIR=$(mktemp -d /tmp/sluice-bench-pg.XXXXXX)
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres "$PG_DIR"
    AS_PG=(runuser -u postgres --)
  fi
  PG_PORT=$(free_port)
  "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
  "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
}

http_part() {
  SLUICE_BIN="${SLUICE_BIN:-$TARGET_DIR/release/sluice}"
  if [[ ! -x "$SLUICE_BIN" ]]; then
    echo "no sluice binary at $SLUICE_BIN: build it with 'cargo build --release -p sluice' or set SLUICE_BIN" >&2
    exit 1
  fi
  for tool in wrk curl jq python3; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
  done
  # Built together with sluice: `-p sluice-bench` alone unifies other features and would
  # rebuild much of the dependency tree (and then sluice's again).
  cargo build --release -p sluice -p sluice-bench
  BENCH="$TARGET_DIR/release/sluice-bench"
  WRK_ARGS="${WRK_ARGS:--t2 -c16 -d10s}"
  ROUNDS="${BENCH_ROUNDS:-2}"
  POLARIS_ARGS="${POLARIS_ARGS:---depth 3 --fanout 4 --tables 1000 --concurrency 16 --seconds 10}"
  COLDSTART_RUNS="${COLDSTART_RUNS:-10}"
  WORK=$(mktemp -d)
  RES="$WORK/results"
  mkdir -p "$RES"
  trap cleanup EXIT

  echo "== sluice serve (SQLite, embedded default) and the baselines"
  start_sluice lite
  sleep 2
  local idle_rss
  idle_rss=$(rss_mb "$lite_PID")
  "$BENCH" setup --base "$lite_URL" --key "$KEY" --secret "$SECRET" \
    --sign-body-file "$WORK/sign-body.json" >"$RES/setup.json"
  local token health_b config_b load_b sign_b
  token=$(jq -r .token "$RES/setup.json")
  health_b=$(jq -r .bytes.health "$RES/setup.json")
  config_b=$(jq -r .bytes.config "$RES/setup.json")
  load_b=$(jq -r .bytes.load "$RES/setup.json")
  sign_b=$(jq -r .bytes.sign "$RES/setup.json")
  start_baseline health "$health_b"
  start_baseline config "$config_b"
  start_baseline load "$load_b"
  start_baseline sign "$sign_b"
  # The least work any remote signer does for the same request (JSON in, one aws-sigv4
  # signature, JSON out): how much of the sign gap is SigV4 and JSON themselves.
  "$BENCH" sign-floor --listen 127.0.0.1:0 >"$WORK/sign-floor.addr" &
  local floor_pid=$! i
  PIDS+=("$floor_pid")
  for i in $(seq 1 200); do [[ -s "$WORK/sign-floor.addr" ]] && break; sleep 0.05; done
  local floor_url="http://$(head -1 "$WORK/sign-floor.addr")"

  echo "== wrk $WRK_ARGS --latency, $ROUNDS alternating rounds per comparison"
  compare health "$lite_URL/health" "$BASE_health/health" "$BASEPID_health" GET "" ""
  compare config "$lite_URL$(jq -r .config_path "$RES/setup.json")" "$BASE_config/v1/config" "$BASEPID_config" GET "$token" ""
  compare load "$lite_URL$(jq -r .load_path "$RES/setup.json")" "$BASE_load/load" "$BASEPID_load" GET "$token" ""
  compare sign "$lite_URL$(jq -r .sign_path "$RES/setup.json")" "$BASE_sign/sign" "$BASEPID_sign" POST "$token" "$WORK/sign-body.json"
  compare sign_floor "$floor_url$(jq -r .sign_path "$RES/setup.json")" "$BASE_sign/sign" "$BASEPID_sign" POST "$token" "$WORK/sign-body.json" "$floor_pid"
  local loaded_rss
  loaded_rss=$(rss_mb "$lite_PID")

  echo "== Polaris-style workloads on SQLite: $POLARIS_ARGS"
  # shellcheck disable=SC2086 # POLARIS_ARGS is a list of flags
  "$BENCH" polaris --base "$lite_URL" --key "$KEY" --secret "$SECRET" $POLARIS_ARGS >"$RES/polaris-sqlite.json"
  stop_pid "$lite_PID"

  if [[ -n "$PG_BIN" && -x "$PG_BIN/initdb" ]]; then
    echo "== Polaris-style workloads on PostgreSQL ($PG_BIN)"
    start_pg
    start_sluice pg "postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    # shellcheck disable=SC2086
    "$BENCH" polaris --base "$pg_URL" --key "$KEY" --secret "$SECRET" $POLARIS_ARGS >"$RES/polaris-postgres.json"
    stop_pid "$pg_PID"
  else
    echo '{"skipped": "PostgreSQL server binaries (initdb, pg_ctl) not found"}' >"$RES/polaris-postgres.json"
  fi

  echo "== cold start and idle RSS, $COLDSTART_RUNS runs"
  "$BENCH" coldstart --bin "$SLUICE_BIN" --runs "$COLDSTART_RUNS" --scratch "$WORK" >"$RES/coldstart.json"

  jq -n --arg wrk "$WRK_ARGS" --arg rounds "$ROUNDS" --arg polaris "$POLARIS_ARGS" \
    --arg bin "$SLUICE_BIN" --arg idle "$idle_rss" --arg loaded "$loaded_rss" \
    --arg coldstart_runs "$COLDSTART_RUNS" --arg version "$("$SLUICE_BIN" --version 2>/dev/null || echo unknown)" \
    '{wrk_args: $wrk, rounds: ($rounds|tonumber), polaris_args: $polaris, sluice_bin: $bin,
      sluice_version: $version, idle_rss_mb: ($idle|tonumber), rss_after_wrk_mb: ($loaded|tonumber),
      coldstart_runs: ($coldstart_runs|tonumber)}' >"$RES/meta.json"
  local write=()
  [[ "${BENCH_HTTP_WRITE:-0}" == 1 ]] && write=(--insert BENCHMARKS.md)
  python3 scripts/bench_http_report.py "$RES" --json "$TARGET_DIR/bench-http.json" \
    --md "$TARGET_DIR/bench-http.md" "${write[@]}"
  cat "$TARGET_DIR/bench-http.md"
}

case "$BENCH_ONLY" in
  all) criterion_part "$@"; http_part ;;
  criterion) criterion_part "$@" ;;
  http) http_part ;;
  *) echo "BENCH_ONLY must be all, criterion or http (got '$BENCH_ONLY')" >&2; exit 2 ;;
esac
