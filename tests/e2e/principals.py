"""Users, groups, policies and access keys for the e2e suite: thin helpers over the management
API (`/management/v1`) used by the authorization and delegation tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import requests
from pyiceberg.catalog import load_catalog

from conftest import Server
from util import assert_error_shape

MGMT = "/management/v1"
WAREHOUSE = "default"
CATALOG_PREFIX = "sluice:catalog:::"


def principal_name(prefix: str) -> str:
    """A unique user/group/policy name. Those allow letters, digits and `._@+-=,` only, so unlike
    `conftest.unique` (used for namespaces) the separator is `-`."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def table_resource(namespace: str, table: str, warehouse: str = WAREHOUSE) -> str:
    return f"{CATALOG_PREFIX}warehouse/{warehouse}/namespace/{namespace}/table/{table}"


def namespace_resource(namespace: str, warehouse: str = WAREHOUSE) -> str:
    return f"{CATALOG_PREFIX}warehouse/{warehouse}/namespace/{namespace}"


@dataclass
class User:
    name: str
    key_id: str
    secret: str
    server: Server

    @property
    def auth(self) -> tuple[str, str]:
        return (self.key_id, self.secret)

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("auth", self.auth)
        kw.setdefault("timeout", 60)
        return requests.request(method, self.server.url(path), **kw)

    def catalog(self, warehouse: str = WAREHOUSE, **extra: str):
        return catalog_for(self.server, self.key_id, self.secret, warehouse, **extra)


def catalog_for(server: Server, key_id: str, secret: str, warehouse: str = WAREHOUSE, **extra: str):
    return load_catalog(
        "sluice",
        type="rest",
        uri=server.base_url,
        credential=f"{key_id}:{secret}",
        warehouse=warehouse,
        **extra,
    )


def admin(server: Server, method: str, path: str, **kw: Any) -> requests.Response:
    kw.setdefault("auth", server.auth)
    kw.setdefault("timeout", 60)
    return requests.request(method, server.url(path), **kw)


def expect(resp: requests.Response, status: int) -> requests.Response:
    assert resp.status_code == status, (
        f"{resp.request.method} {resp.request.url}: expected HTTP {status}, got {resp.status_code}: {resp.text}"
    )
    return resp


def create_user(server: Server, prefix: str, groups: tuple[str, ...] = (), policies: tuple[str, ...] = ()) -> User:
    """A new user (created by the admin) with one access key, in `groups`, with `policies`."""
    name = principal_name(prefix)
    expect(admin(server, "POST", f"{MGMT}/users", json={"name": name}), 201)
    for group in groups:
        expect(admin(server, "PUT", f"{MGMT}/groups/{group}/members/{name}"), 204)
    for policy in policies:
        expect(admin(server, "PUT", f"{MGMT}/users/{name}/policies/{policy}"), 204)
    key = expect(admin(server, "POST", f"{MGMT}/users/{name}/access-keys"), 201).json()
    assert key["user"] == name, key
    assert key["access-key-id"] and key["secret-access-key"], key
    return User(name, key["access-key-id"], key["secret-access-key"], server)


def create_policy(server: Server, prefix: str, statements: list[dict[str, Any]]) -> str:
    name = principal_name(prefix)
    body = {"name": name, "description": "e2e authz test", "statements": statements}
    expect(admin(server, "POST", f"{MGMT}/policies", json=body), 201)
    return name


def deny_namespace_statements(namespace: str, warehouse: str = WAREHOUSE) -> list[dict[str, Any]]:
    return [
        {"effect": "deny", "action": ["catalog:*"], "resource": namespace_resource(namespace, warehouse)},
        {"effect": "deny", "action": ["catalog:*"], "resource": namespace_resource(namespace, warehouse) + "/*"},
    ]


def audit_entries(server: Server, limit: int = 1000) -> list[dict[str, Any]]:
    r = expect(admin(server, "GET", f"{MGMT}/audit", params={"limit": limit}), 200)
    return r.json()["entries"]


def oauth_token(server: Server, key_id: str, secret: str) -> requests.Response:
    return requests.post(
        server.url("/v1/oauth/tokens"),
        data={"grant_type": "client_credentials", "client_id": key_id, "client_secret": secret},
        timeout=30,
    )


def assert_401(resp: requests.Response) -> None:
    assert_error_shape(resp, 401)
    assert resp.headers.get("WWW-Authenticate"), f"401 without WWW-Authenticate: {dict(resp.headers)}"
