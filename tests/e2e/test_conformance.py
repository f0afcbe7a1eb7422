"""What PyIceberg expects of a catalog the way the Java reference implementation behaves
(issue 15): metadata lists in written order, partition evolution Java accepts, float defaults,
field ids on create, `namespace-separator`, and commit conflicts that name the requirement."""

from __future__ import annotations

import pytest
import requests
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema, assign_fresh_schema_ids
from pyiceberg.transforms import DayTransform, HourTransform, IdentityTransform, VoidTransform
from pyiceberg.types import (
    FloatType,
    IntegerType,
    LongType,
    MapType,
    NestedField,
    StringType,
    StructType,
    TimestampType,
)

from util import NO_RETRY, SCHEMA, read_all, rows, sorted_pylist

EVENTS = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "ts", TimestampType(), required=False),
    NestedField(3, "data", StringType(), required=False),
)


def raw_load(warehouse, ns: str, table: str) -> requests.Response:
    server = warehouse.server
    r = server.get(f"/v1/{server.prefix(warehouse.name)}/namespaces/{ns}/tables/{table}", headers={"X-Iceberg-Access-Delegation": ""})
    assert r.status_code == 200, r.text
    return r


def test_snapshots_and_schemas_in_written_order(catalog, warehouse, ns):
    ident = (ns, "ordered")
    t = catalog.create_table(ident, schema=SCHEMA)
    t.append(rows(0, 2))
    t.append(rows(2, 2))
    t.append(rows(4, 2))
    t.overwrite(rows(10, 1))
    for i in range(6):
        with t.update_schema() as u:
            u.add_column(f"c{i}", IntegerType())
    t = catalog.load_table(ident)

    snaps = t.snapshots()
    ops = [s.summary.operation.value for s in snaps]
    # PyIceberg's overwrite is a delete/overwrite after the appends it replaces.
    assert ops[:3] == ["append", "append", "append"] and len(ops) >= 4, ops
    assert set(ops[3:]) <= {"delete", "overwrite", "append"}, ops
    times = [s.timestamp_ms for s in snaps]
    assert times == sorted(times), times
    seqs = [s.sequence_number for s in snaps]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    # The log holds the snapshots that became current (not a commit's intermediate ones), in order.
    logged = [e.snapshot_id for e in t.metadata.snapshot_log]
    assert [s.snapshot_id for s in snaps if s.snapshot_id in logged] == logged
    assert [s.schema_id for s in t.metadata.schemas] == list(range(7))
    assert t.inspect.snapshots().column("snapshot_id").to_pylist() == [s.snapshot_id for s in snaps]
    assert sorted_pylist(read_all(t)) == [dict(r, **{f"c{i}": None for i in range(6)}) for r in sorted_pylist(rows(10, 1))]

    # Stable: the same version loads identically, in the order PyIceberg parsed it.
    first, second = raw_load(warehouse, ns, "ordered"), raw_load(warehouse, ns, "ordered")
    assert first.json()["metadata"] == second.json()["metadata"]
    body = first.json()["metadata"]
    assert [s["schema-id"] for s in body["schemas"]] == list(range(7))
    assert [s["snapshot-id"] for s in body["snapshots"]] == [s.snapshot_id for s in snaps]


def test_v1_remove_identity_partition_becomes_void(catalog, ns):
    ident = (ns, "v1_remove")
    spec = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=IdentityTransform(), name="id"))
    t = catalog.create_table(ident, schema=EVENTS, partition_spec=spec, properties={"format-version": "1"})
    with t.update_spec() as u:
        u.remove_field("id")
    t = catalog.load_table(ident)
    assert t.format_version == 1
    assert list(t.spec().fields) == [PartitionField(source_id=1, field_id=1000, transform=VoidTransform(), name="id")]
    assert [s.spec_id for s in t.specs().values()] == [0, 1]
    # The table keeps working: a later commit on top of the void spec.
    with t.transaction() as tx:
        tx.set_properties(after="void")
    assert catalog.load_table(ident).properties["after"] == "void"


@pytest.mark.parametrize("format_version", ["1", "2"])
def test_hour_partition_added_next_to_day(catalog, ns, format_version):
    ident = (ns, f"hour_v{format_version}")
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=DayTransform(), name="ts_day"))
    t = catalog.create_table(ident, schema=EVENTS, partition_spec=spec, properties={"format-version": format_version})
    with t.update_spec() as u:
        u.add_field("ts", HourTransform(), "ts_hour")
    t = catalog.load_table(ident)
    assert list(t.spec().fields) == [
        PartitionField(source_id=2, field_id=1000, transform=DayTransform(), name="ts_day"),
        PartitionField(source_id=2, field_id=1001, transform=HourTransform(), name="ts_hour"),
    ]
    assert t.metadata.last_partition_id == 1001
    with t.transaction() as tx:
        tx.set_properties(after="hour")
    assert catalog.load_table(ident).spec() == t.spec()


def test_float_default_round_trips_as_written(catalog, warehouse, ns):
    """A float column's defaults read back by PyIceberg exactly as written (22.27, not the f64
    widening 22.270000457763672). The table is created over HTTP: PyIceberg 0.12's own
    create_table drops field defaults when it renumbers the schema."""
    server = warehouse.server
    schema = {
        "type": "struct",
        "schema-id": 0,
        "fields": [
            {"id": 1, "name": "id", "type": "long", "required": False},
            {"id": 2, "name": "temp", "type": "float", "required": False, "initial-default": 22.27, "write-default": 22.27},
        ],
    }
    r = server.post(
        f"/v1/{server.prefix(warehouse.name)}/namespaces/{ns}/tables",
        json={"name": "floats", "schema": schema, "properties": {"format-version": "3"}},
        headers={"X-Iceberg-Access-Delegation": ""},
    )
    assert r.status_code == 200, r.text
    assert "22.270000457763672" not in r.text
    t = catalog.load_table((ns, "floats"))
    field = t.schema().find_field("temp")
    assert field.initial_default == 22.27, field
    assert field.write_default == 22.27, field
    with t.transaction() as tx:
        tx.set_properties(after="floats")
    assert catalog.load_table((ns, "floats")).schema().find_field("temp").initial_default == 22.27


def test_field_ids_are_the_clients(catalog, ns):
    """PyIceberg numbers a new schema itself (the reference order: a map's key and value ids
    before the fields of its key struct); the created table has exactly those ids."""
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(
            2,
            "attrs",
            MapType(
                key_id=3,
                key_type=StructType(NestedField(5, "k1", IntegerType(), required=True), NestedField(6, "k2", IntegerType(), required=True)),
                value_id=4,
                value_type=StructType(NestedField(7, "v", StringType(), required=False)),
                value_required=False,
            ),
            required=False,
        ),
        NestedField(8, "note", StringType(), required=False),
    )
    expected = assign_fresh_schema_ids(schema)
    t = catalog.create_table((ns, "ids"), schema=schema)
    got = t.schema()
    for name in ["id", "attrs", "attrs.key.k1", "attrs.key.k2", "attrs.value", "attrs.value.v", "note"]:
        assert got.find_field(name).field_id == expected.find_field(name).field_id, name
    assert got.find_type("attrs").key_id == expected.find_type("attrs").key_id
    assert got.find_type("attrs").value_id == expected.find_type("attrs").value_id


def test_namespace_separator(catalog, warehouse):
    server = warehouse.server
    r = server.get("/v1/config", params={"warehouse": warehouse.name})
    assert r.status_code == 200, r.text
    assert r.json()["overrides"]["namespace-separator"] == "%1F"
    from conftest import unique

    top = unique("sep")
    catalog.create_namespace((top,))
    catalog.create_namespace((top, "inner"))
    assert catalog.list_namespaces((top,)) == [(top, "inner")]
    assert catalog.load_namespace_properties((top, "inner")) is not None
    t = catalog.create_table((top, "inner", "t"), schema=SCHEMA)
    assert catalog.load_table((top, "inner", "t")).metadata.table_uuid == t.metadata.table_uuid
    r = server.get(f"/v1/{server.prefix(warehouse.name)}/namespaces/{top}%1Finner")
    assert r.status_code == 200 and r.json()["namespace"] == [top, "inner"], r.text


def test_commit_conflict_names_the_requirement(catalog, ns):
    ident = (ns, "conflict")
    catalog.create_table(ident, schema=SCHEMA, properties=NO_RETRY)
    t1 = catalog.load_table(ident)
    t1.append(rows(0, 1))
    t2 = catalog.load_table(ident)
    expected = t2.current_snapshot().snapshot_id
    t1.append(rows(1, 1))
    found = catalog.load_table(ident).current_snapshot().snapshot_id
    with pytest.raises(CommitFailedException, match=f"Requirement failed: branch main has changed: expected id {expected} != {found}"):
        t2.append(rows(2, 1))
