#!/usr/bin/env bash
# Azurite 3.35 peer (Azure Blob emulator) for the ADLS storage tests and tests/e2e/test_adls.py.
#
#   tests/peers/azurite.sh install [DIR]   `npm install azurite@3.35.0` into DIR (default
#                                            <repo>/.peers/azurite); skipped while DIR carries a
#                                            stamp matching the version and the node version
#
# The tests start `DIR/node_modules/.bin/azurite-blob` themselves on an ephemeral port (with
# --skipApiVersionCheck, which current SDKs need) and stop it by pid. They find the
# installation through $SLUICE_AZURITE_DIR, else <repo>/.peers/azurite.
# 3.35 is the newest release that runs on Node 20 (later ones need Node >= 21).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/../.." && pwd))
VERSION=3.35.0

install() {
  local dir=${1:-$ROOT/.peers/azurite} want stamp
  command -v npm >/dev/null || { echo "npm not found (install Node.js >= 18 and npm)" >&2; exit 1; }
  mkdir -p "$dir"
  stamp=$dir/.sluice-stamp
  want="azurite-$VERSION node-$(node --version)"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -x $dir/node_modules/.bin/azurite-blob ]]; then
    echo "azurite up to date ($dir)"
    return 0
  fi
  [[ -f $dir/package.json ]] || echo '{"name":"sluice-azurite-peer","private":true}' >"$dir/package.json"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "azurite@$VERSION")
  echo "$want" >"$stamp"
  echo "azurite installed ($dir)"
}

case ${1:-} in
  install) shift; install "$@" ;;
  *) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
