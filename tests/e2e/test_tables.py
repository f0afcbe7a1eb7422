"""Tables through PyIceberg, for every warehouse kind: DDL, data round trips, rename, register, purge."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.types import StringType

from conftest import unique
from util import (
    ARROW_SCHEMA,
    NO_RETRY,
    PARTITION_BY_CATEGORY,
    SCHEMA,
    SORT_BY_ID,
    eventually,
    read_all,
    rows,
    sorted_pylist,
)


def _location_prefix(warehouse) -> str:
    # The embedded default (kind "file") is served through the S3 gateway: s3://default/….
    return "s3://default/" if warehouse.kind == "file" else f"s3://{warehouse.s3.bucket}/"


def test_create_table_defaults(catalog, warehouse, ns):
    table = catalog.create_table((ns, "plain"), schema=SCHEMA, properties={"owner": "bob"})
    assert table.name() == (ns, "plain")
    assert table.location().startswith(_location_prefix(warehouse)), table.location()
    if warehouse.kind == "s3":
        assert table.location().startswith(f"s3://{warehouse.s3.bucket}/wh1/"), table.location()
    assert table.metadata_location and table.metadata_location.startswith(table.location())
    assert table.properties.get("owner") == "bob"
    assert [f.name for f in table.schema().fields] == ["id", "category", "value"]
    assert table.spec().is_unpartitioned()
    assert table.current_snapshot() is None
    assert read_all(table).num_rows == 0

    # The metadata file the server wrote exists in storage.
    assert any(f.endswith(".metadata.json") for f in warehouse.list_files(table.location()))


def test_create_table_with_partition_spec_and_sort_order(catalog, ns):
    table = catalog.create_table(
        (ns, "parted"), schema=SCHEMA, partition_spec=PARTITION_BY_CATEGORY, sort_order=SORT_BY_ID
    )
    loaded = catalog.load_table((ns, "parted"))
    for t in (table, loaded):
        spec = t.spec()
        assert len(spec.fields) == 1
        field = spec.fields[0]
        assert field.name == "category"
        assert t.schema().find_field(field.source_id).name == "category"
        order = t.sort_order()
        assert len(order.fields) == 1
        assert t.schema().find_field(order.fields[0].source_id).name == "id"

    loaded.append(rows(0, 6, categories=("x", "y", "z")))
    data = catalog.load_table((ns, "parted")).scan().to_arrow()
    assert sorted_pylist(data) == sorted_pylist(rows(0, 6, categories=("x", "y", "z")))
    files = [task.file.file_path for task in catalog.load_table((ns, "parted")).scan().plan_files()]
    assert len(files) == 3
    assert all("category=" in f for f in files), files
    filtered = catalog.load_table((ns, "parted")).scan(row_filter="category == 'y'").to_arrow()
    assert sorted(filtered.column("id").to_pylist()) == [1, 4]


def test_create_table_from_arrow_schema(catalog, ns):
    table = catalog.create_table((ns, "from_arrow"), schema=ARROW_SCHEMA)
    table.append(rows(0, 3))
    assert read_all(catalog.load_table((ns, "from_arrow"))).num_rows == 3


def test_create_table_in_missing_namespace(catalog):
    with pytest.raises(NoSuchNamespaceError):
        catalog.create_table((unique("missing"), "t"), schema=SCHEMA)


def test_create_duplicate_table(catalog, ns):
    catalog.create_table((ns, "dup"), schema=SCHEMA)
    with pytest.raises(TableAlreadyExistsError):
        catalog.create_table((ns, "dup"), schema=SCHEMA)


def test_load_missing_table(catalog, ns):
    with pytest.raises(NoSuchTableError):
        catalog.load_table((ns, "nope"))
    with pytest.raises(NoSuchTableError):
        catalog.load_table((unique("missing"), "nope"))


def test_table_exists(catalog, ns):
    assert not catalog.table_exists((ns, "t"))
    catalog.create_table((ns, "t"), schema=SCHEMA)
    assert catalog.table_exists((ns, "t"))
    assert not catalog.table_exists((ns, "other"))
    assert not catalog.table_exists((unique("missing"), "t"))


def test_list_tables(catalog, ns):
    assert catalog.list_tables(ns) == []
    for name in ("t1", "t2", "t3"):
        catalog.create_table((ns, name), schema=SCHEMA)
    assert sorted(catalog.list_tables(ns)) == [(ns, "t1"), (ns, "t2"), (ns, "t3")]
    catalog.drop_table((ns, "t2"))
    assert sorted(catalog.list_tables(ns)) == [(ns, "t1"), (ns, "t3")]
    with pytest.raises(NoSuchNamespaceError):
        catalog.list_tables(unique("missing"))


def test_append_and_read_back(catalog, ns):
    table = catalog.create_table((ns, "events"), schema=SCHEMA)
    table.append(rows(0, 5))
    table.append(rows(5, 5))

    loaded = catalog.load_table((ns, "events"))
    assert len(loaded.snapshots()) == 2
    data = read_all(loaded)
    assert data.num_rows == 10
    assert sorted_pylist(data) == sorted_pylist(pa.concat_tables([rows(0, 5), rows(5, 5)]))
    summary = loaded.current_snapshot().summary
    assert summary["total-records"] == "10"

    # The in-memory table object was refreshed by the commit responses too.
    assert table.metadata_location == loaded.metadata_location


def test_overwrite(catalog, ns):
    table = catalog.create_table((ns, "ow"), schema=SCHEMA)
    table.append(rows(0, 4))
    table.overwrite(rows(100, 2))
    data = read_all(catalog.load_table((ns, "ow")))
    assert sorted(data.column("id").to_pylist()) == [100, 101]

    # Partial overwrite through a row filter.
    table.overwrite(rows(200, 1, categories=("b",)), overwrite_filter="category == 'b'")
    data = read_all(catalog.load_table((ns, "ow")))
    assert sorted(data.column("id").to_pylist()) == [100, 200]


def test_delete_rows(catalog, ns):
    table = catalog.create_table((ns, "del"), schema=SCHEMA)
    table.append(rows(0, 6))
    table.delete(delete_filter="id >= 3")
    assert sorted(read_all(catalog.load_table((ns, "del"))).column("id").to_pylist()) == [0, 1, 2]


def test_schema_evolution(catalog, ns):
    table = catalog.create_table((ns, "evolve"), schema=SCHEMA)
    table.append(rows(0, 2))

    with table.update_schema() as update:
        update.add_column("extra", StringType(), doc="added later")

    loaded = catalog.load_table((ns, "evolve"))
    assert [f.name for f in loaded.schema().fields] == ["id", "category", "value", "extra"]
    assert len(loaded.schemas()) == 2

    new_rows = pa.Table.from_pydict(
        {"id": [10, 11], "category": ["c", "c"], "value": [1.0, 2.0], "extra": ["x", "y"]},
        schema=pa.schema(list(ARROW_SCHEMA) + [pa.field("extra", pa.string(), nullable=True)]),
    )
    loaded.append(new_rows)

    data = read_all(catalog.load_table((ns, "evolve")))
    by_id = {r["id"]: r for r in data.to_pylist()}
    assert sorted(by_id) == [0, 1, 10, 11]
    assert by_id[0]["extra"] is None and by_id[1]["extra"] is None
    assert by_id[10]["extra"] == "x" and by_id[11]["extra"] == "y"

    # Rename + make the schema evolution visible to a fresh client.
    with loaded.update_schema() as update:
        update.rename_column("extra", "note")
    assert "note" in [f.name for f in catalog.load_table((ns, "evolve")).schema().fields]


def test_table_properties_update(catalog, ns):
    table = catalog.create_table((ns, "props"), schema=SCHEMA, properties={"a": "1"})
    with table.transaction() as tx:
        tx.set_properties(b="2")
        tx.remove_properties("a")
    props = catalog.load_table((ns, "props")).properties
    assert props.get("b") == "2"
    assert "a" not in props


def test_stage_create_transaction(catalog, ns):
    ident = (ns, "staged")
    txn = catalog.create_table_transaction(ident, schema=SCHEMA, partition_spec=PARTITION_BY_CATEGORY)
    # A staged create does not make the table visible yet.
    assert not catalog.table_exists(ident)
    txn.append(rows(0, 4))
    txn.set_properties(stage="done")
    table = txn.commit_transaction()

    assert catalog.table_exists(ident)
    loaded = catalog.load_table(ident)
    assert loaded.properties.get("stage") == "done"
    assert len(loaded.spec().fields) == 1
    assert sorted_pylist(read_all(loaded)) == sorted_pylist(rows(0, 4))
    assert table.metadata_location == loaded.metadata_location


def test_stage_create_conflicts_with_existing_table(catalog, ns):
    ident = (ns, "staged_dup")
    # No client-side retry: a staged table cannot be refreshed, the conflict must surface as is.
    txn = catalog.create_table_transaction(ident, schema=SCHEMA, properties=NO_RETRY)
    catalog.create_table(ident, schema=SCHEMA)  # someone else wins the name
    txn.append(rows(0, 1))

    with pytest.raises(CommitFailedException):
        txn.commit_transaction()
    assert read_all(catalog.load_table(ident)).num_rows == 0


def test_rename_table_within_namespace(catalog, ns):
    catalog.create_table((ns, "old"), schema=SCHEMA).append(rows(0, 3))
    renamed = catalog.rename_table((ns, "old"), (ns, "new"))
    assert renamed.name() == (ns, "new")
    assert not catalog.table_exists((ns, "old"))
    with pytest.raises(NoSuchTableError):
        catalog.load_table((ns, "old"))
    assert read_all(catalog.load_table((ns, "new"))).num_rows == 3
    assert sorted(catalog.list_tables(ns)) == [(ns, "new")]

    # The renamed table stays writable.
    catalog.load_table((ns, "new")).append(rows(3, 1))
    assert read_all(catalog.load_table((ns, "new"))).num_rows == 4


def test_rename_table_across_namespaces(catalog, ns):
    other = unique("ns")
    catalog.create_namespace(other)
    catalog.create_table((ns, "moving"), schema=SCHEMA).append(rows(0, 2))
    catalog.rename_table((ns, "moving"), (other, "moved"))
    assert catalog.list_tables(ns) == []
    assert catalog.list_tables(other) == [(other, "moved")]
    assert read_all(catalog.load_table((other, "moved"))).num_rows == 2
    # The source namespace is empty now and can be dropped.
    catalog.drop_namespace(ns)


def test_rename_errors(catalog, ns):
    catalog.create_table((ns, "a"), schema=SCHEMA)
    catalog.create_table((ns, "b"), schema=SCHEMA)
    with pytest.raises(TableAlreadyExistsError):
        catalog.rename_table((ns, "a"), (ns, "b"))
    with pytest.raises(NoSuchTableError):
        catalog.rename_table((ns, "nope"), (ns, "c"))
    with pytest.raises(NoSuchNamespaceError):
        catalog.rename_table((ns, "a"), (unique("missing"), "a"))
    assert sorted(catalog.list_tables(ns)) == [(ns, "a"), (ns, "b")]


def test_drop_table_and_register_again(catalog, warehouse, ns):
    ident = (ns, "reg")
    table = catalog.create_table(ident, schema=SCHEMA)
    table.append(rows(0, 3))
    table.append(rows(3, 3))
    table = catalog.load_table(ident)
    metadata_location = table.metadata_location
    snapshot_id = table.current_snapshot().snapshot_id

    catalog.drop_table(ident)  # no purge: files stay
    assert not catalog.table_exists(ident)
    with pytest.raises(NoSuchTableError):
        catalog.load_table(ident)
    with pytest.raises(NoSuchTableError):
        catalog.drop_table(ident)
    assert any(f.endswith(".parquet") for f in warehouse.list_files(table.location()))

    registered = catalog.register_table(ident, metadata_location)
    assert registered.name() == ident
    assert registered.current_snapshot().snapshot_id == snapshot_id
    loaded = catalog.load_table(ident)
    assert sorted_pylist(read_all(loaded)) == sorted_pylist(pa.concat_tables([rows(0, 3), rows(3, 3)]))

    # Registered tables accept further commits.
    loaded.append(rows(6, 1))
    assert read_all(catalog.load_table(ident)).num_rows == 7


def test_register_existing_identifier(catalog, ns):
    table = catalog.create_table((ns, "exists"), schema=SCHEMA)
    with pytest.raises(TableAlreadyExistsError):
        catalog.register_table((ns, "exists"), table.metadata_location)


def test_purge_table_removes_files(catalog, warehouse, ns):
    ident = (ns, "purged")
    table = catalog.create_table(ident, schema=SCHEMA, partition_spec=PARTITION_BY_CATEGORY)
    table.append(rows(0, 4))
    table.append(rows(4, 4))
    location = catalog.load_table(ident).location()
    before = warehouse.list_files(location)
    assert any(f.endswith(".parquet") for f in before), before
    assert any(f.endswith(".metadata.json") for f in before), before
    assert any(f.endswith(".avro") for f in before), before

    catalog.purge_table(ident)
    assert not catalog.table_exists(ident)

    def gone():
        left = warehouse.list_files(location)
        assert left == [], f"files left after purge: {left}"
        if warehouse.kind == "s3":
            on_disk = warehouse.list_files_on_disk(location)
            assert on_disk == [], f"s3s-fs still stores files under the table: {on_disk}"

    eventually(gone, timeout=20)


def test_drop_without_purge_keeps_files(catalog, warehouse, ns):
    ident = (ns, "kept")
    table = catalog.create_table(ident, schema=SCHEMA)
    table.append(rows(0, 2))
    location = table.location()
    catalog.drop_table(ident)
    files = warehouse.list_files(location)
    assert any(f.endswith(".parquet") for f in files), files
