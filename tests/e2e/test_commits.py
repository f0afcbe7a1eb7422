"""Optimistic concurrency: stale commits fail with CommitFailedException, concurrent appends never
lose an update."""

from __future__ import annotations

import threading
import traceback

import pytest
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.types import LongType, StringType

from util import NO_RETRY, SCHEMA, read_all, rows

THREADS = 6
ROWS_PER_APPEND = 3


def test_stale_append_fails(catalog, ns):
    ident = (ns, "stale")
    catalog.create_table(ident, schema=SCHEMA, properties=NO_RETRY)
    t1 = catalog.load_table(ident)
    t2 = catalog.load_table(ident)

    t1.append(rows(0, 2))
    with pytest.raises(CommitFailedException):
        t2.append(rows(100, 2))

    final = catalog.load_table(ident)
    assert len(final.snapshots()) == 1
    assert sorted(read_all(final).column("id").to_pylist()) == [0, 1]

    # After a refresh the second writer can commit.
    t2.refresh()
    t2.append(rows(100, 2))
    final = catalog.load_table(ident)
    assert len(final.snapshots()) == 2
    assert sorted(read_all(final).column("id").to_pylist()) == [0, 1, 100, 101]


def test_stale_schema_update_fails(catalog, ns):
    ident = (ns, "stale_schema")
    catalog.create_table(ident, schema=SCHEMA, properties=NO_RETRY)
    t1 = catalog.load_table(ident)
    t2 = catalog.load_table(ident)

    with t1.update_schema() as u:
        u.add_column("from_t1", StringType())
    with pytest.raises(CommitFailedException):
        with t2.update_schema() as u:
            u.add_column("from_t2", LongType())

    names = [f.name for f in catalog.load_table(ident).schema().fields]
    assert "from_t1" in names and "from_t2" not in names


def _concurrent_appends(new_catalog, ident, threads: int):
    """Each thread uses its own client, loads the table, waits for the others, then appends once."""
    barrier = threading.Barrier(threads)
    successes: list[int] = []
    conflicts: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            cat = new_catalog()
            table = cat.load_table(ident)
            data = rows(1000 * (i + 1), ROWS_PER_APPEND)
            barrier.wait(timeout=60)
            try:
                table.append(data)
            except CommitFailedException:
                with lock:
                    conflicts.append(i)
                return
            with lock:
                successes.append(i)
        except Exception:  # anything else is a test failure
            barrier.abort()
            with lock:
                errors.append(traceback.format_exc())

    workers = [threading.Thread(target=worker, args=(i,), name=f"appender-{i}") for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=240)
    assert not any(w.is_alive() for w in workers), "appender threads hung"
    assert not errors, "unexpected errors:\n" + "\n".join(errors)
    return sorted(successes), sorted(conflicts)


def test_concurrent_appends_without_retry_lose_nothing(catalog, new_catalog, ns):
    ident = (ns, "race")
    catalog.create_table(ident, schema=SCHEMA, properties=NO_RETRY)

    successes, conflicts = _concurrent_appends(new_catalog, ident, THREADS)
    print(f"concurrent appends: {len(successes)} succeeded, {len(conflicts)} conflicted")
    assert len(successes) + len(conflicts) == THREADS
    assert len(successes) >= 1, "at least one concurrent append must win"

    final = catalog.load_table(ident)
    assert len(final.snapshots()) == len(successes), (successes, conflicts)
    ids = sorted(read_all(final).column("id").to_pylist())
    expected = sorted(1000 * (i + 1) + k for i in successes for k in range(ROWS_PER_APPEND))
    assert ids == expected, "every successful append (and nothing else) must be visible"


def test_concurrent_appends_with_client_retry_all_land(catalog, new_catalog, ns):
    ident = (ns, "race_retry")
    catalog.create_table(
        ident,
        schema=SCHEMA,
        properties={
            "commit.retry.num-retries": "20",
            "commit.retry.min-wait-ms": "10",
            "commit.retry.max-wait-ms": "200",
        },
    )

    successes, conflicts = _concurrent_appends(new_catalog, ident, THREADS)
    print(f"concurrent appends: {len(successes)} succeeded, {len(conflicts)} conflicted")
    assert conflicts == [], f"appends gave up despite retries: {conflicts}"
    assert successes == list(range(THREADS))

    final = catalog.load_table(ident)
    assert len(final.snapshots()) == THREADS
    assert read_all(final).num_rows == THREADS * ROWS_PER_APPEND
    assert final.current_snapshot().summary["total-records"] == str(THREADS * ROWS_PER_APPEND)
