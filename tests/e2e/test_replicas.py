"""Several `sluice serve` replicas on one PostgreSQL database, driven by PyIceberg.

A throwaway PostgreSQL 15 cluster (initdb/pg_ctl in a temp dir, ephemeral port; run as the
`postgres` OS user when we are root, since the server refuses to run as root) and three
replicas sharing it, the master key, the JWT signing key and one file warehouse, as a
deployment behind a load balancer would. Checks:
  - PyIceberg clients spread over the replicas append to one table at once: every commit
    either lands or fails with CommitFailedException (HTTP 409), and nothing is lost: the
    snapshots are exactly the successful appends, the rows exactly their rows, and every
    replica serves the same table;
  - a policy change made on one replica (a user leaves a group) is enforced by another within
    the documented bound (the 5 s policy-cache TTL; polled for up to 10 s).
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import CommitFailedException

import conftest
from conftest import ADMIN_KEY_ID, ADMIN_SECRET, Peer, free_port, unique
from util import NO_RETRY, SCHEMA, read_all, rows

REPLICAS = 3
CLIENTS_PER_REPLICA = 2
APPENDS_PER_CLIENT = 3
ROWS_PER_APPEND = 2
# Attempts per append (the first try plus retries after a refresh) before it counts as failed.
MAX_ATTEMPTS = 8
# The policy cache's documented bound across replicas is 5 s; allow scheduling slack.
POLICY_PROPAGATION_LIMIT_S = 10.0

PG_BIN_FALLBACK = Path("/usr/lib/postgresql/15/bin")


# --------------------------------------------------------------------------------------------
# PostgreSQL 15
# --------------------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidate = PG_BIN_FALLBACK / name
    if candidate.exists():
        return str(candidate)
    pytest.fail(
        f"PostgreSQL server binary `{name}` not found (apt-get install -y postgresql-15; scripts/test.sh does it)",
        pytrace=False,
    )


def _as_pg_user() -> bool:
    return os.geteuid() == 0


def _run_pg(argv: list[str]) -> None:
    """Runs a PostgreSQL tool, as the `postgres` OS user when we are root."""
    if _as_pg_user():
        argv = ["su", "postgres", "-c", subprocess.list2cmdline(argv)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{argv} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"


@dataclass
class Postgres:
    url: str
    log_path: Path


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    # Not under pytest's tmp dir: that is 0700 root-owned, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="sluice-e2e-pg-"))
    if _as_pg_user():
        shutil.chown(root, user="postgres")
    data = root / "data"
    log_path = root / "server.log"
    port = free_port()
    started = False
    try:
        _run_pg([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=200 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        _run_pg([pg_ctl, "-D", str(data), "-l", str(log_path), "-w", "-t", "60", "-o", options, "start"])
        started = True
        conftest._PEER_LOGS["postgres"] = log_path
        conftest._PEER_FIXTURES["postgres"] = "postgres"
        # The cluster is a throwaway: its default database is the catalog.
        yield Postgres(f"postgres://postgres@127.0.0.1:{port}/postgres", log_path)
    finally:
        if started:
            _run_pg([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# replicas
# --------------------------------------------------------------------------------------------


@dataclass
class Replica:
    name: str
    base_url: str
    peer: Peer

    def catalog(self, key_id: str = ADMIN_KEY_ID, secret: str = ADMIN_SECRET, **extra: str):
        return load_catalog(
            self.name,
            type="rest",
            uri=self.base_url,
            credential=f"{key_id}:{secret}",
            warehouse="default",
            **extra,
        )

    def request(self, method: str, path: str, auth: tuple[str, str] = (ADMIN_KEY_ID, ADMIN_SECRET), **kw) -> requests.Response:
        kw.setdefault("timeout", 60)
        return requests.request(method, self.base_url + path, auth=auth, **kw)


@pytest.fixture(scope="module")
def replicas(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    root = tmp_path_factory.mktemp("replicas")
    # One data directory: the shared file warehouse (the first replica creates `default` in it).
    data_dir = root / "data"
    data_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_") and not k.startswith("AWS_")}
    env.update(
        {
            "SLUICE_DATABASE_URL": postgres.url,
            "SLUICE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "SLUICE_JWT_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
            "SLUICE_BOOTSTRAP_ACCESS_KEY_ID": ADMIN_KEY_ID,
            "SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY": ADMIN_SECRET,
            "SLUICE_LOG_LEVEL": "info",
        }
    )
    started: list[Replica] = []
    try:
        # One after the other: the first migrates and bootstraps, the others find it done.
        for i in range(REPLICAS):
            name = f"sluice-replica-{i}"
            conftest._PEER_FIXTURES[name] = "replicas"
            peer, base, _port = conftest.start_sluice(
                name, ["--s3-listen", "127.0.0.1:0", "--data-dir", str(data_dir)], root / f"{name}.log", env
            )
            started.append(Replica(name, base, peer))
        yield started
    finally:
        for r in started:
            r.peer.stop()


# --------------------------------------------------------------------------------------------
# concurrent appends across replicas
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    # first id of every append that landed
    landed: list[int]
    # appends that gave up after MAX_ATTEMPTS conflicts
    gave_up: list[int]
    # CommitFailedException seen (each is one 409)
    conflicts: int


def _append_concurrently(replicas: list[Replica], ident: tuple[str, str]) -> Outcome:
    clients = [(r, c) for r in replicas for c in range(CLIENTS_PER_REPLICA)]
    barrier = threading.Barrier(len(clients))
    lock = threading.Lock()
    outcome = Outcome([], [], 0)
    errors: list[str] = []

    def worker(n: int, replica: Replica) -> None:
        try:
            table = replica.catalog().load_table(ident)
            barrier.wait(timeout=120)
            for k in range(APPENDS_PER_CLIENT):
                first_id = 100_000 * (n + 1) + 1000 * k
                for _attempt in range(MAX_ATTEMPTS):
                    try:
                        table.append(rows(first_id, ROWS_PER_APPEND))
                    except CommitFailedException:
                        with lock:
                            outcome.conflicts += 1
                        # Another replica's commit won: reload from this replica and try again,
                        # after a short random pause so the losers do not collide again in step.
                        time.sleep(random.uniform(0, 0.05))
                        table.refresh()
                        continue
                    with lock:
                        outcome.landed.append(first_id)
                    break
                else:
                    with lock:
                        outcome.gave_up.append(first_id)
        except Exception:  # anything but a 409 is a failure of the test
            barrier.abort()
            with lock:
                errors.append(traceback.format_exc())

    threads = [
        threading.Thread(target=worker, args=(n, r), name=f"{r.name}-client-{c}") for n, (r, c) in enumerate(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "appender threads hung"
    assert not errors, "errors other than CommitFailedException:\n" + "\n".join(errors)
    return outcome


def test_concurrent_pyiceberg_appends_across_replicas_lose_nothing(replicas: list[Replica]) -> None:
    admin = replicas[0].catalog()
    ns = unique("replicas")
    admin.create_namespace(ns)
    ident = (ns, "shared")
    admin.create_table(ident, schema=SCHEMA, properties=NO_RETRY)

    outcome = _append_concurrently(replicas, ident)
    print(f"appends landed: {len(outcome.landed)}, 409s: {outcome.conflicts}, gave up: {len(outcome.gave_up)}")
    attempted = REPLICAS * CLIENTS_PER_REPLICA * APPENDS_PER_CLIENT
    assert len(outcome.landed) + len(outcome.gave_up) == attempted
    assert outcome.landed, "at least one append must land"

    final = replicas[1].catalog().load_table(ident)
    assert len(final.snapshots()) == len(outcome.landed), outcome
    data = read_all(final)
    assert data.num_rows == len(outcome.landed) * ROWS_PER_APPEND
    expected = sorted(first + i for first in outcome.landed for i in range(ROWS_PER_APPEND))
    assert sorted(data.column("id").to_pylist()) == expected, "exactly the landed appends, each once"
    assert final.current_snapshot().summary["total-records"] == str(len(expected))

    # Every replica serves the same table: same pointer, same metadata, same data.
    served = []
    for r in replicas:
        resp = r.request("GET", f"/v1/{r.request('GET', '/v1/config?warehouse=default').json()['overrides']['prefix']}/namespaces/{ns}/tables/shared")
        assert resp.status_code == 200, resp.text
        served.append((resp.json()["metadata-location"], resp.json()["metadata"]))
        table = r.catalog().load_table(ident)
        assert table.metadata_location == final.metadata_location, r.name
        assert table.metadata == final.metadata, r.name
        assert sorted(read_all(table).column("id").to_pylist()) == expected, r.name
    assert all(s == served[0] for s in served)


def test_stale_commit_on_another_replica_is_a_409(replicas: list[Replica]) -> None:
    """The deterministic form of the race: a writer that read through one replica and commits
    after another replica moved the table on gets CommitFailedException, not a lost update."""
    a, b = replicas[0].catalog(), replicas[2].catalog()
    ns = unique("stale")
    a.create_namespace(ns)
    ident = (ns, "t")
    a.create_table(ident, schema=SCHEMA, properties=NO_RETRY)
    stale = a.load_table(ident)
    b.load_table(ident).append(rows(0, 2))
    with pytest.raises(CommitFailedException):
        stale.append(rows(100, 2))
    final = replicas[1].catalog().load_table(ident)
    assert len(final.snapshots()) == 1
    assert sorted(read_all(final).column("id").to_pylist()) == [0, 1]


# --------------------------------------------------------------------------------------------
# policy changes across replicas
# --------------------------------------------------------------------------------------------


def test_group_removal_on_one_replica_is_enforced_by_another(replicas: list[Replica]) -> None:
    a, b = replicas[0], replicas[1]
    ns = unique("policy")
    a.catalog().create_namespace(ns)
    a.catalog().create_table((ns, "t"), schema=SCHEMA)
    name = f"reader-{ns[-10:]}"
    r = a.request("POST", "/management/v1/users", json={"name": name})
    assert r.status_code == 201, r.text
    r = a.request("PUT", f"/management/v1/groups/Viewers/members/{name}")
    assert r.status_code == 204, r.text
    r = a.request("POST", f"/management/v1/users/{name}/access-keys")
    assert r.status_code == 201, r.text
    key = (r.json()["access-key-id"], r.json()["secret-access-key"])

    # The reader works through PyIceberg on replica b (which caches its policies now).
    reader = b.catalog(*key)
    assert read_all(reader.load_table((ns, "t"))).num_rows == 0
    prefix = b.request("GET", "/v1/config?warehouse=default").json()["overrides"]["prefix"]
    path = f"/v1/{prefix}/namespaces/{ns}/tables/t"
    assert b.request("GET", path, auth=key).status_code == 200

    # Removed from the group on replica a: a refuses at once (its own write clears its cache),
    # b within the bound.
    r = a.request("DELETE", f"/management/v1/groups/Viewers/members/{name}")
    assert r.status_code == 204, r.text
    removed_at = time.monotonic()
    assert a.request("GET", path, auth=key).status_code in (403, 404)
    while True:
        status = b.request("GET", path, auth=key).status_code
        elapsed = time.monotonic() - removed_at
        if status in (403, 404):
            break
        assert status == 200, status
        assert elapsed < POLICY_PROPAGATION_LIMIT_S, f"replica b still allows the read after {elapsed:.1f}s"
        time.sleep(0.2)
    print(f"replica b enforced the removal after {elapsed:.2f}s")
    # And for good: every replica refuses.
    for r in replicas:
        assert r.request("GET", path, auth=key).status_code in (403, 404), r.name
