#!/usr/bin/env bash
# Stops the slapd that start.sh started in DATADIR (by its pid file); the data stays.
#
#   stop.sh DATADIR
set -u
datadir=${1:?usage: stop.sh DATADIR}
pidfile=$datadir/slapd.pid
[[ -f $pidfile ]] || exit 0
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
fi
rm -f "$pidfile"
echo "stopped slapd $pid"
