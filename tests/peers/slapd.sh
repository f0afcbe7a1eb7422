#!/usr/bin/env bash
# OpenLDAP slapd peer for the LDAP login tests (crates/sluice-auth/tests/ldap.rs).
#
# Usage: tests/peers/slapd.sh install
#   Installs slapd + ldap-utils from apt, only when `slapd` is not already available
#   (on PATH or at /usr/sbin/slapd). Idempotent; needs root (or sudo) only when it installs.
#
# The tests themselves start a throw-away slapd per test with tests/peers/slapd/start.sh
# (seeded from tests/peers/slapd/seed.ldif) and stop it with stop.sh; the distro's own slapd
# service is not used and need not be running.
set -euo pipefail

have_slapd() {
  command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ]
}

have_tools() {
  command -v ldapsearch >/dev/null 2>&1 && command -v ldapadd >/dev/null 2>&1
}

case "${1:-}" in
  install)
    if have_slapd && have_tools; then
      echo "slapd already installed: $(command -v slapd || echo /usr/sbin/slapd)"
      exit 0
    fi
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to apt-get install slapd" >&2; exit 1; }
      SUDO="sudo"
    fi
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils
    have_slapd || { echo "slapd still missing after install" >&2; exit 1; }
    echo "slapd installed: $(command -v slapd || echo /usr/sbin/slapd)"
    ;;
  *)
    echo "usage: $0 install" >&2
    exit 2
    ;;
esac
