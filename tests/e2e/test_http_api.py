"""Raw HTTP checks: config, auth, error bodies and the management API."""

from __future__ import annotations

import uuid

import pytest
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import RESTError

from conftest import (
    S3_KEY_PREFIX,
    create_warehouse,
    s3_client_props,
    s3_storage_credential,
    s3_storage_profile,
    unique,
)
from util import assert_error_shape

# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------


def test_health(server):
    r = requests.get(server.url("/health"), timeout=10)
    assert r.status_code == 200


def test_config_returns_prefix(catalog, warehouse):
    r = warehouse.server.get("/v1/config", params={"warehouse": warehouse.name})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body.get("defaults", {}), dict)
    prefix = body["overrides"]["prefix"]
    assert isinstance(prefix, str) and prefix
    # PyIceberg adopted it.
    assert catalog.properties.get("prefix") == prefix


def test_config_prefixes_differ_per_warehouse(server, file_warehouse, s3_warehouse):
    assert server.prefix(file_warehouse.name) != server.prefix(s3_warehouse.name)


def test_config_unknown_warehouse(server):
    r = server.get("/v1/config", params={"warehouse": "nope"})
    assert_error_shape(r, (400, 404))


def test_pyiceberg_unknown_warehouse(warehouse):
    with pytest.raises(RESTError):
        load_catalog("sluice", **warehouse.catalog_props(warehouse="nope-" + uuid.uuid4().hex[:6]))


# --------------------------------------------------------------------------------------------
# authentication
# --------------------------------------------------------------------------------------------


def test_no_auth_is_401(server):
    r = requests.get(server.url("/v1/config"), params={"warehouse": "default"}, timeout=10)
    assert_error_shape(r, 401)
    prefix = server.prefix("default")
    r = requests.get(server.url(f"/v1/{prefix}/namespaces"), timeout=10)
    assert_error_shape(r, 401)
    r = requests.get(server.url("/management/v1/warehouse"), timeout=10)
    assert_error_shape(r, 401)


def test_wrong_basic_secret_is_401(server):
    r = requests.get(
        server.url("/v1/config"), params={"warehouse": "default"}, auth=(server.key_id, "x" * 40), timeout=10
    )
    assert_error_shape(r, 401)
    r = requests.get(
        server.url("/v1/config"), params={"warehouse": "default"}, auth=("AKIAUNKNOWN000000000", server.secret), timeout=10
    )
    assert_error_shape(r, 401)


def test_bogus_bearer_is_401(server):
    r = requests.get(
        server.url("/v1/config"),
        params={"warehouse": "default"},
        headers={"Authorization": "Bearer not-a-real-token"},
        timeout=10,
    )
    assert_error_shape(r, 401)


def test_oauth_token_endpoint(server):
    r = requests.post(
        server.url("/v1/oauth/tokens"),
        data={"grant_type": "client_credentials", "client_id": server.key_id, "client_secret": server.secret},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body.get("access_token"), str) and body["access_token"]
    assert body.get("token_type", "").lower() == "bearer"
    assert isinstance(body.get("expires_in"), int) and body["expires_in"] > 0

    r = requests.get(
        server.url("/v1/config"),
        params={"warehouse": "default"},
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["overrides"]["prefix"]


def test_oauth_wrong_secret(server):
    r = requests.post(
        server.url("/v1/oauth/tokens"),
        data={"grant_type": "client_credentials", "client_id": server.key_id, "client_secret": "wrong" * 8},
        timeout=10,
    )
    assert r.status_code == 401, r.text
    body = r.json()
    assert body.get("error") == "invalid_client", body


def test_oauth_unknown_client(server):
    r = requests.post(
        server.url("/v1/oauth/tokens"),
        data={"grant_type": "client_credentials", "client_id": "AKIAUNKNOWN000000000", "client_secret": server.secret},
        timeout=10,
    )
    assert r.status_code == 401, r.text
    assert r.json().get("error") == "invalid_client"


def test_oauth_unsupported_grant(server):
    r = requests.post(
        server.url("/v1/oauth/tokens"),
        data={"grant_type": "password", "username": "a", "password": "b"},
        timeout=10,
    )
    assert r.status_code == 400, r.text
    assert r.json().get("error") in ("unsupported_grant_type", "invalid_request"), r.text


# --------------------------------------------------------------------------------------------
# Iceberg error bodies
# --------------------------------------------------------------------------------------------


def test_malformed_json_create_namespace(server):
    prefix = server.prefix("default")
    r = server.post(
        f"/v1/{prefix}/namespaces",
        data=b'{"namespace": ["broken"',
        headers={"Content-Type": "application/json"},
    )
    assert_error_shape(r, 400)


def test_wrong_json_shape_create_namespace(server):
    prefix = server.prefix("default")
    r = server.post(f"/v1/{prefix}/namespaces", json={"namespace": "not-a-list"})
    assert_error_shape(r, 400)


def test_error_types(server):
    prefix = server.prefix("default")
    missing = unique("missing")

    r = server.get(f"/v1/{prefix}/namespaces/{missing}")
    assert_error_shape(r, 404, "NoSuchNamespaceException")

    name = unique("ns")
    r = server.post(f"/v1/{prefix}/namespaces", json={"namespace": [name], "properties": {}})
    assert r.status_code == 200, r.text
    assert r.json()["namespace"] == [name]
    r = server.post(f"/v1/{prefix}/namespaces", json={"namespace": [name], "properties": {}})
    assert_error_shape(r, 409, "AlreadyExistsException")

    r = server.get(f"/v1/{prefix}/namespaces/{name}/tables/nope")
    assert_error_shape(r, 404, "NoSuchTableException")

    r = server.delete(f"/v1/{prefix}/namespaces/{missing}")
    assert_error_shape(r, 404, "NoSuchNamespaceException")

    r = server.delete(f"/v1/{prefix}/namespaces/{name}")
    assert r.status_code == 204, r.text


def test_unknown_prefix(server):
    r = server.get("/v1/not-a-warehouse-prefix/namespaces")
    assert_error_shape(r, (400, 404))


# --------------------------------------------------------------------------------------------
# management API
# --------------------------------------------------------------------------------------------


def _warehouses(server) -> dict[str, dict]:
    r = server.get("/management/v1/warehouse")
    assert r.status_code == 200, r.text
    return {w["name"]: w for w in r.json()["warehouses"]}


def test_list_and_get_warehouses(server, s3_warehouse):
    listed = _warehouses(server)
    assert "default" in listed and "s3wh" in listed
    for w in listed.values():
        for key in ("warehouse-id", "name", "storage-profile", "delete-profile", "status"):
            assert key in w, f"{key} missing in {w}"
    assert listed["default"]["storage-profile"]["type"] == "file"
    s3wh = listed["s3wh"]
    assert s3wh["warehouse-id"] == s3_warehouse.warehouse_id
    assert s3wh["storage-profile"]["type"] == "s3"
    assert s3wh["storage-profile"]["bucket"] == s3_warehouse.s3.bucket
    assert s3wh["storage-profile"]["key-prefix"] == S3_KEY_PREFIX
    # Secrets are never echoed back.
    assert s3_warehouse.s3.secret_key not in str(listed)

    r = server.get(f"/management/v1/warehouse/{s3_warehouse.warehouse_id}")
    assert r.status_code == 200, r.text
    one = r.json()
    assert one["warehouse-id"] == s3_warehouse.warehouse_id
    assert one["name"] == "s3wh"
    assert s3_warehouse.s3.secret_key not in r.text

    r = server.get(f"/management/v1/warehouse/{uuid.uuid4()}")
    assert_error_shape(r, 404)


def test_create_s3_warehouse_with_bad_endpoint(server, s3):
    from conftest import free_port

    body = {
        "warehouse-name": unique("bad_endpoint"),
        "storage-profile": s3_storage_profile(s3, endpoint=f"http://127.0.0.1:{free_port()}"),
        "storage-credential": s3_storage_credential(s3.access_key, s3.secret_key),
        "delete-profile": {"type": "hard"},
    }
    r = create_warehouse(server, body)
    assert_error_shape(r, 400)
    assert body["warehouse-name"] not in _warehouses(server)


def test_create_s3_warehouse_with_bad_credential(server, s3):
    body = {
        "warehouse-name": unique("bad_cred"),
        "storage-profile": s3_storage_profile(s3, key_prefix="badcred"),
        "storage-credential": s3_storage_credential(s3.access_key, "not-the-secret"),
        "delete-profile": {"type": "hard"},
    }
    r = create_warehouse(server, body)
    err = assert_error_shape(r, 400)
    assert "not-the-secret" not in r.text, err
    assert body["warehouse-name"] not in _warehouses(server)


def test_create_warehouse_with_malformed_body(server):
    r = server.post(
        "/management/v1/warehouse", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error_shape(r, 400)
    r = server.post("/management/v1/warehouse", json={"warehouse-name": "x", "storage-profile": {"type": "ftp"}})
    assert_error_shape(r, (400, 422))


def test_duplicate_warehouse_name(server, s3_warehouse, s3):
    body = {
        "warehouse-name": "s3wh",
        "storage-profile": s3_storage_profile(s3, key_prefix="dupe"),
        "storage-credential": s3_storage_credential(s3.access_key, s3.secret_key),
        "delete-profile": {"type": "hard"},
    }
    assert_error_shape(create_warehouse(server, body), (400, 409))


def test_file_warehouse_lifecycle(server):
    name = unique("filewh")
    root = server.data_dir / "extra-warehouses" / name
    root.mkdir(parents=True)
    r = create_warehouse(
        server,
        {"warehouse-name": name, "storage-profile": {"type": "file", "root": str(root)}, "delete-profile": {"type": "hard"}},
    )
    assert r.status_code == 201, r.text
    wid = r.json()["warehouse-id"]
    uuid.UUID(wid)
    assert name in _warehouses(server)

    # Usable through the Iceberg API, and it refuses deletion while it holds a namespace.
    prefix = server.prefix(name)
    r = server.post(f"/v1/{prefix}/namespaces", json={"namespace": ["inside"], "properties": {}})
    assert r.status_code == 200, r.text
    r = server.delete(f"/management/v1/warehouse/{wid}")
    assert_error_shape(r, 409)
    assert name in _warehouses(server)

    r = server.delete(f"/v1/{prefix}/namespaces/inside")
    assert r.status_code == 204, r.text
    r = server.delete(f"/management/v1/warehouse/{wid}")
    assert r.status_code in (200, 204), r.text
    assert name not in _warehouses(server)
    assert_error_shape(server.get(f"/management/v1/warehouse/{wid}"), 404)
    assert_error_shape(server.get("/v1/config", params={"warehouse": name}), (400, 404))


def test_s3_warehouse_lifecycle_through_pyiceberg(server, s3):
    """A second S3 warehouse on another key prefix: usable, isolated, deletable once empty."""
    name = unique("s3wh2")
    key_prefix = "wh2"  # short on purpose, see S3_KEY_PREFIX
    r = create_warehouse(
        server,
        {
            "warehouse-name": name,
            "storage-profile": s3_storage_profile(s3, key_prefix=key_prefix),
            "storage-credential": s3_storage_credential(s3.access_key, s3.secret_key),
            "delete-profile": {"type": "hard"},
        },
    )
    assert r.status_code == 201, r.text
    wid = r.json()["warehouse-id"]
    # The probe object must not be left behind.
    assert s3.list_keys(f"{key_prefix}/") == [], "validation probe left objects behind"

    cat = load_catalog(
        "sluice",
        **{
            "type": "rest",
            "uri": server.base_url,
            "credential": f"{server.key_id}:{server.secret}",
            "warehouse": name,
            **s3_client_props(s3),
        },
    )
    from util import SCHEMA, rows

    cat.create_namespace("only_here")
    table = cat.create_table(("only_here", "t"), schema=SCHEMA)
    assert table.location().startswith(f"s3://{s3.bucket}/{key_prefix}/"), table.location()
    table.append(rows(0, 2))
    assert cat.load_table(("only_here", "t")).scan().to_arrow().num_rows == 2

    # Namespaces are per warehouse.
    other = load_catalog(
        "sluice",
        **{"type": "rest", "uri": server.base_url, "credential": f"{server.key_id}:{server.secret}", "warehouse": "default"},
    )
    assert ("only_here",) not in other.list_namespaces()

    assert_error_shape(server.delete(f"/management/v1/warehouse/{wid}"), 409)
    cat.purge_table(("only_here", "t"))
    cat.drop_namespace("only_here")
    r = server.delete(f"/management/v1/warehouse/{wid}")
    assert r.status_code in (200, 204), r.text
