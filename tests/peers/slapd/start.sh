#!/usr/bin/env bash
# Starts a throw-away OpenLDAP slapd for one test and loads seed.ldif into it.
#
#   start.sh DATADIR PORT     slapd on ldap://127.0.0.1:PORT/ with its database, config
#                             (slapd.conf, no cn=config), log and pid file in DATADIR
#
# Environment: SLAPD_DEBUG (default 0; 256 logs every operation to DATADIR/slapd.log, which
# the tests read to see which binds and searches Sluice made), SEED_LDIF (default: seed.ldif
# beside this script). Admin: cn=admin,dc=example,dc=org / secret.
set -euo pipefail
datadir=${1:?usage: start.sh DATADIR PORT}
port=${2:?usage: start.sh DATADIR PORT}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
seed=${SEED_LDIF:-$here/seed.ldif}
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

mkdir -p "$datadir/db"
datadir=$(cd "$datadir" && pwd)
uri="ldap://127.0.0.1:$port/"
admin_dn="cn=admin,dc=example,dc=org"
admin_pw=secret

# The memberof overlay gives users a memberOf attribute; the ACLs let the service account
# read everything, users read entries and bind with their own password, and nobody read
# password hashes.
cat >"$datadir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema

pidfile  $datadir/slapd.pid
argsfile $datadir/slapd.args

modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof

database mdb
maxsize 104857600
suffix "dc=example,dc=org"
rootdn "$admin_dn"
rootpw $admin_pw
directory $datadir/db
index objectClass eq
index uid,cn,mail eq
index member eq

overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE

access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by dn.exact="cn=svc,dc=example,dc=org" read
  by self read
  by users read
  by * none
CONF

slaptest -Q -u -f "$datadir/slapd.conf"

# Bounded: a server that accepts and never answers must not hold the caller forever.
ready() {
  timeout 10 ldapsearch -o nettimeout=2 -x -H "$uri" -D "$admin_dn" -w "$admin_pw" \
    -s base -b "" namingContexts >/dev/null 2>&1
}

# `-d` keeps slapd in the foreground, so $! is slapd itself and the pid file is exact.
nohup slapd -d "${SLAPD_DEBUG:-0}" -f "$datadir/slapd.conf" -h "$uri" >"$datadir/slapd.log" 2>&1 &
pid=$!
echo "$pid" >"$datadir/slapd.pid"

for _ in $(seq 1 200); do
  # Alive after the answer too: when the port was taken, another slapd answered.
  if ready && kill -0 "$pid" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "slapd exited while starting; its log:" >&2
    cat "$datadir/slapd.log" >&2
    exit 1
  fi
  sleep 0.05
done
ready && kill -0 "$pid" 2>/dev/null || {
  echo "slapd did not answer on $uri within 10 s" >&2
  cat "$datadir/slapd.log" >&2
  exit 1
}

# -c: a restart on an existing data directory finds the entries already there.
if ! timeout 60 ldapadd -o nettimeout=10 -c -x -H "$uri" -D "$admin_dn" -w "$admin_pw" -f "$seed" >"$datadir/seed.out" 2>&1; then
  grep -q "Already exists" "$datadir/seed.out" || { cat "$datadir/seed.out" >&2; exit 1; }
fi
echo "slapd $pid ready on $uri"
