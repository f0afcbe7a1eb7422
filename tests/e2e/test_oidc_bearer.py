"""OIDC bearer tokens through PyIceberg: a `sluice serve` configured (TOML `--config`, section
[oidc]) to trust the node oidc-provider peer, and a PyIceberg client that authenticates with
nothing but an access token the provider issued (`token=<jwt>`, no Sluice credentials).

The provider's confidential client gets a client_credentials token (RS256 JWT, aud
urn:lakehouse:api, sub = the client id); Sluice provisions its user on first sight with
default_initial_groups = ["Developers"], so the client may create namespaces and tables.
"""

from __future__ import annotations

import pytest
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import NoSuchNamespaceError

from conftest import unique
from util import SCHEMA, read_all, rows, sorted_pylist

WAREHOUSE = "default"  # the server's file warehouse


def oidc_catalog(server, token: str):
    return load_catalog("oidc", type="rest", uri=server.base_url, token=token, warehouse=WAREHOUSE)


def whoami(server, token: str) -> dict:
    r = requests.get(server.url("/management/v1/whoami"), headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, f"HTTP {r.status_code}: {r.text}"
    return r.json()


def test_provider_token_is_provisioned_as_oidc_developer(oidc_server, oidc_provider):
    token = oidc_provider.client_credentials_token()
    me = whoami(oidc_server, token)
    assert me["name"] == oidc_provider.client_id
    assert me["source"] == "oidc"
    assert me["access-key-id"] is None
    assert me["groups"] == ["Developers"]
    # A second token of the same client is the same user.
    assert whoami(oidc_server, oidc_provider.client_credentials_token())["user-id"] == me["user-id"]
    # The admin sees it as an OIDC user.
    r = oidc_server.get(f"/management/v1/users/{oidc_provider.client_id}")
    assert r.status_code == 200, r.text
    assert r.json()["source"] == "oidc"


def test_pyiceberg_with_provider_token_creates_namespace_and_table(oidc_server, oidc_provider):
    catalog = oidc_catalog(oidc_server, oidc_provider.client_credentials_token())
    ns = unique("oidc")
    catalog.create_namespace(ns, properties={"owner": "oidc"})
    assert (ns,) in catalog.list_namespaces()
    assert catalog.load_namespace_properties(ns)["owner"] == "oidc"

    table = catalog.create_table((ns, "events"), schema=SCHEMA)
    table.append(rows(0, 5))
    table.append(rows(5, 3))
    assert (ns, "events") in catalog.list_tables(ns)

    # Another client with a fresh token reads what the first one wrote.
    reader = oidc_catalog(oidc_server, oidc_provider.client_credentials_token())
    loaded = reader.load_table((ns, "events"))
    got = sorted_pylist(read_all(loaded))
    assert got == sorted_pylist(rows(0, 8))
    assert len(loaded.snapshots()) == 2

    # The admin (access key) sees the same catalog.
    admin = load_catalog(
        "admin", type="rest", uri=oidc_server.base_url, credential=f"{oidc_server.key_id}:{oidc_server.secret}", warehouse=WAREHOUSE
    )
    assert (ns, "events") in admin.list_tables(ns)

    catalog.drop_table((ns, "events"))
    catalog.drop_namespace(ns)
    with pytest.raises(NoSuchNamespaceError):
        catalog.load_namespace_properties(ns)


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
def test_invalid_bearer_is_refused(oidc_server, token):
    r = requests.get(
        oidc_server.url("/v1/config"), params={"warehouse": WAREHOUSE}, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert r.status_code == 401, r.text
    assert "www-authenticate" in {k.lower() for k in r.headers}


def test_tampered_provider_token_is_refused(oidc_server, oidc_provider):
    token = oidc_provider.client_credentials_token()
    head, claims, sig = token.split(".")
    tampered = ".".join([head, claims, ("A" if sig[0] != "A" else "B") + sig[1:]])
    r = requests.get(
        oidc_server.url("/management/v1/whoami"), headers={"Authorization": f"Bearer {tampered}"}, timeout=30
    )
    assert r.status_code == 401, r.text


def test_metadata_advertises_the_provider(oidc_server, oidc_provider):
    r = requests.get(oidc_server.url("/.well-known/oauth-authorization-server"), timeout=30)
    assert r.status_code == 200, r.text
    oidc = r.json()["oidc"]
    assert oidc["issuer"] == oidc_provider.issuer
    assert oidc["token_endpoint"] == oidc_provider.issuer + "/token"
    assert oidc["authorization_endpoint"] == oidc_provider.issuer + "/auth"
    assert oidc["device_authorization_endpoint"] == oidc_provider.issuer + "/device/auth"
    assert oidc["client_id"] == oidc_provider.client_id
    assert oidc["audience"] == "urn:lakehouse:api"
