"""Views through PyIceberg's view API (0.12: create_view, load_view, view_exists, list_views,
register_view, drop_view; it has no replace or rename), for every warehouse kind."""

from __future__ import annotations

import pytest
from pyiceberg.exceptions import NoSuchViewError, TableAlreadyExistsError, ViewAlreadyExistsError
from pyiceberg.view.metadata import SQLViewRepresentation, ViewRepresentation, ViewVersion

from conftest import unique
from util import SCHEMA


def _version(ns: str, sql: str) -> ViewVersion:
    return ViewVersion(
        version_id=1,
        schema_id=0,
        summary={"engine-name": "pyiceberg-e2e"},
        representations=[ViewRepresentation(SQLViewRepresentation(type="sql", sql=sql, dialect="spark"))],
        default_namespace=(ns,),
    )


def test_view_lifecycle(catalog, warehouse, ns):
    name = unique("v")
    sql = f"SELECT id FROM {ns}.t"
    view = catalog.create_view((ns, name), schema=SCHEMA, view_version=_version(ns, sql), properties={"comment": "e2e"})
    assert view.name() == (ns, name)
    assert view.current_version().representations[0].root.sql == sql
    assert view.properties.get("comment") == "e2e"
    assert [f.name for f in view.schema().fields] == [f.name for f in SCHEMA.fields]

    assert catalog.view_exists((ns, name))
    assert not catalog.view_exists((ns, "missing"))
    loaded = catalog.load_view((ns, name))
    assert loaded.uuid() == view.uuid()
    assert loaded.location() == view.location()
    assert loaded.current_version().representations[0].root.sql == sql
    # The embedded default (kind "file") is served through the S3 gateway: s3://default/….
    prefix = "s3://default/" if warehouse.kind == "file" else f"s3://{warehouse.s3.bucket}/"
    assert loaded.location().startswith(prefix), loaded.location()

    assert (ns, name) in catalog.list_views(ns)
    # Views are not tables, and a view is not listed as one.
    assert catalog.list_tables(ns) == []
    assert not catalog.table_exists((ns, name))

    with pytest.raises(ViewAlreadyExistsError):
        catalog.create_view((ns, name), schema=SCHEMA, view_version=_version(ns, sql))

    catalog.drop_view((ns, name))
    assert not catalog.view_exists((ns, name))
    with pytest.raises(NoSuchViewError):
        catalog.load_view((ns, name))
    with pytest.raises(NoSuchViewError):
        catalog.drop_view((ns, name))


def test_views_and_tables_share_names(catalog, ns):
    catalog.create_table((ns, "t"), schema=SCHEMA)
    with pytest.raises(ViewAlreadyExistsError):
        catalog.create_view((ns, "t"), schema=SCHEMA, view_version=_version(ns, "SELECT 1"))
    catalog.create_view((ns, "v"), schema=SCHEMA, view_version=_version(ns, "SELECT 1"))
    with pytest.raises(TableAlreadyExistsError):
        catalog.create_table((ns, "v"), schema=SCHEMA)
    assert catalog.list_views(ns) == [(ns, "v")]
    assert catalog.list_tables(ns) == [(ns, "t")]


def test_register_view_from_its_metadata_file(catalog, warehouse, ns):
    view = catalog.create_view((ns, "orig"), schema=SCHEMA, view_version=_version(ns, "SELECT 2"))
    metadata_location = _metadata_location(warehouse, ns, "orig")
    catalog.drop_view((ns, "orig"))
    back = catalog.register_view((ns, "back"), metadata_location)
    assert back.uuid() == view.uuid()
    assert back.current_version().representations[0].root.sql == "SELECT 2"
    assert catalog.list_views(ns) == [(ns, "back")]


def test_namespace_with_views_is_not_empty(catalog):
    from pyiceberg.exceptions import NamespaceNotEmptyError

    ns = unique("ns")
    catalog.create_namespace(ns)
    catalog.create_view((ns, "v"), schema=SCHEMA, view_version=_version(ns, "SELECT 3"))
    with pytest.raises(NamespaceNotEmptyError):
        catalog.drop_namespace(ns)
    catalog.drop_view((ns, "v"))
    catalog.drop_namespace(ns)


def _metadata_location(warehouse, ns: str, name: str) -> str:
    """PyIceberg's View does not keep the metadata location; ask the REST API directly."""
    prefix = warehouse.server.prefix(warehouse.name)
    r = warehouse.server.get(f"/v1/{prefix}/namespaces/{ns}/views/{name}")
    assert r.status_code == 200, r.text
    return r.json()["metadata-location"]


def test_view_endpoints_are_advertised(warehouse):
    r = warehouse.server.get("/v1/config", params={"warehouse": warehouse.name})
    assert r.status_code == 200, r.text
    endpoints = r.json()["endpoints"]
    for e in (
        "GET /v1/{prefix}/namespaces/{namespace}/views",
        "POST /v1/{prefix}/namespaces/{namespace}/views",
        "GET /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "HEAD /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "POST /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "DELETE /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "POST /v1/{prefix}/namespaces/{namespace}/register-view",
        "POST /v1/{prefix}/views/rename",
    ):
        assert e in endpoints, e


def test_soft_dropped_view_is_undropped_through_the_management_api(server):
    """On a warehouse with a soft delete profile, PyIceberg's drop_view hides the view, the
    deleted list shows it as a view, and undrop brings it back for the client."""
    from pyiceberg.catalog import load_catalog

    name = unique("softwh")
    root = server.data_dir / "extra-warehouses" / name
    root.mkdir(parents=True)
    r = server.post(
        "/management/v1/warehouse",
        json={
            "warehouse-name": name,
            "storage-profile": {"type": "file", "root": str(root)},
            "delete-profile": {"type": "soft", "expiration-seconds": 3600},
        },
    )
    assert r.status_code == 201, r.text
    wid = r.json()["warehouse-id"]
    catalog = load_catalog(
        "sluice-soft",
        type="rest",
        uri=server.base_url,
        credential=f"{server.key_id}:{server.secret}",
        warehouse=name,
    )
    ns = unique("ns")
    catalog.create_namespace(ns)
    view = catalog.create_view((ns, "v"), schema=SCHEMA, view_version=_version(ns, "SELECT 4"))
    catalog.drop_view((ns, "v"))
    assert not catalog.view_exists((ns, "v"))
    with pytest.raises(NoSuchViewError):
        catalog.load_view((ns, "v"))

    r = server.get(f"/management/v1/warehouse/{wid}/deleted-tables")
    assert r.status_code == 200, r.text
    [entry] = r.json()["tables"]
    assert (entry["kind"], entry["name"], entry["namespace"]) == ("view", "v", [ns])
    assert entry["table-id"] == str(view.uuid())

    # The name is free while the view is deleted; undrop then needs another name.
    catalog.create_table((ns, "v"), schema=SCHEMA)
    r = server.post(f"/management/v1/warehouse/{wid}/deleted-tables/{entry['table-id']}/undrop")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["type"] == "AlreadyExistsException"
    r = server.post(
        f"/management/v1/warehouse/{wid}/deleted-tables/{entry['table-id']}/undrop", json={"new-name": "v_back"}
    )
    assert r.status_code == 200, r.text
    back = catalog.load_view((ns, "v_back"))
    assert back.uuid() == view.uuid()
    assert back.current_version().representations[0].root.sql == "SELECT 4"
    assert catalog.list_views(ns) == [(ns, "v_back")]
