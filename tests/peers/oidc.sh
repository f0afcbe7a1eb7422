#!/usr/bin/env bash
# node oidc-provider peer (issuer for the OIDC tests of crates/sluice-auth).
#
#   tests/peers/oidc.sh install [DIR]      copy tests/peers/oidc into DIR (default <repo>/.peers/oidc)
#                                            and `npm install` there; skipped while DIR/node_modules
#                                            carries a stamp matching package.json and the node version
#   tests/peers/oidc.sh start DIR PORT     start `node server.mjs` on 127.0.0.1:PORT in the
#                                            background (pid in DIR/oidc-PORT.pid), wait until ready
#   tests/peers/oidc.sh stop DIR PORT      stop what `start` started (by its recorded pid)
#
# The Rust tests spawn `node server.mjs` themselves; they only need `install`. They find the
# installation through $SLUICE_OIDC_PEER_DIR, else <repo>/.peers/oidc.
# The peer's sources (server.mjs, package.json) live in tests/peers/oidc.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/../.." && pwd))
SRC=$HERE/oidc

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

need_node() {
  command -v node >/dev/null || { echo "node not found (install Node.js >= 18, e.g. apt-get install -y nodejs npm)" >&2; exit 1; }
  command -v npm >/dev/null || { echo "npm not found (apt-get install -y npm)" >&2; exit 1; }
}

install() {
  local dir=${1:-$ROOT/.peers/oidc} want stamp
  need_node
  [[ -f $SRC/server.mjs && -f $SRC/package.json ]] || { echo "oidc peer sources not found in $SRC" >&2; exit 1; }
  mkdir -p "$dir"
  # Sources are small: always refresh them (cheap, and picks up edits to server.mjs).
  cp -f "$SRC"/*.mjs "$SRC"/package.json "$dir"/
  [[ -f $SRC/package-lock.json ]] && cp -f "$SRC/package-lock.json" "$dir"/
  stamp=$dir/node_modules/.sluice-stamp
  want="$(sha256sum "$dir/package.json" | cut -d' ' -f1) node-$(node --version)"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -d $dir/node_modules/oidc-provider ]]; then
    echo "oidc peer up to date ($dir)"
    return 0
  fi
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
  echo "oidc peer installed ($dir)"
}

start() {
  local dir=${1:?usage: start DIR PORT} port=${2:?usage: start DIR PORT} pidf log i
  need_node
  [[ -d $dir/node_modules/oidc-provider ]] || { echo "not installed: run $0 install $dir" >&2; exit 1; }
  dir=$(cd "$dir" && pwd)
  pidf=$dir/oidc-$port.pid; log=$dir/oidc-$port.log
  # `&` on a simple command, so that $! is node's own pid (not a subshell's)
  PORT=$port nohup node "$dir/server.mjs" >"$log" 2>&1 </dev/null &
  echo $! >"$pidf"
  for i in $(seq 1 200); do
    if curl -sf "http://127.0.0.1:$port/.well-known/openid-configuration" >/dev/null; then
      echo "oidc-provider pid $(cat "$pidf") ready on http://127.0.0.1:$port"; return 0
    fi
    kill -0 "$(cat "$pidf")" 2>/dev/null || { cat "$log" >&2; rm -f "$pidf"; exit 1; }
    sleep 0.05
  done
  echo "oidc-provider not ready after 10 s (log: $log)" >&2; exit 1
}

stop() {
  local dir=${1:?usage: stop DIR PORT} port=${2:?usage: stop DIR PORT} pidf pid i
  pidf=$dir/oidc-$port.pid
  [[ -f $pidf ]] || exit 0
  pid=$(cat "$pidf")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidf"; echo "stopped oidc-provider $pid"
}

case ${1:-} in
  install) shift; install "$@" ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) usage ;;
esac
