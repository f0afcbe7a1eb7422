"""Authorization end to end: users, groups, policies and access keys seen through PyIceberg and
the management API.

All catalog checks run against the file warehouse `default`. Every test creates its own users,
policies and namespaces (unique names), so the tests are independent of each other and of the
rest of the suite sharing the server.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import (
    ForbiddenError,
    NoSuchNamespaceError,
    NoSuchTableError,
    OAuthError,
)

from conftest import unique
from principals import (
    MGMT,
    WAREHOUSE,
    User,
    admin,
    assert_401,
    audit_entries,
    create_policy,
    create_user,
    deny_namespace_statements,
    expect,
    namespace_resource,
    oauth_token,
    principal_name,
    table_resource,
)
from util import SCHEMA, assert_error_shape, read_all, rows, sorted_pylist


@pytest.fixture(scope="module")
def admin_catalog(file_warehouse):
    return load_catalog("sluice", **file_warehouse.catalog_props())


@pytest.fixture
def admin_table(admin_catalog):
    """A namespace and a table with 5 rows, created by the admin: (namespace, table name)."""
    ns = unique("authz")
    admin_catalog.create_namespace(ns)
    table = admin_catalog.create_table((ns, "t"), schema=SCHEMA)
    table.append(rows(0, 5))
    return ns, "t"


@dataclass
class DeniedNamespace:
    user: User  # a Developer with the deny policy attached
    policy: str
    secret_ns: str  # denied; holds table "t"
    open_ns: str  # not denied; holds table "t"


@pytest.fixture
def denied_namespace(server, admin_catalog) -> DeniedNamespace:
    secret_ns = unique("secret")
    open_ns = unique("open")
    for ns in (secret_ns, open_ns):
        admin_catalog.create_namespace(ns, properties={"owner": "admin"})
        admin_catalog.create_table((ns, "t"), schema=SCHEMA).append(rows(0, 3))
    policy = create_policy(server, "deny-secret", deny_namespace_statements(secret_ns))
    user = create_user(server, "dev", groups=("Developers",), policies=(policy,))
    return DeniedNamespace(user, policy, secret_ns, open_ns)


# --------------------------------------------------------------------------------------------
# 1. Viewers read, never write
# --------------------------------------------------------------------------------------------


def test_viewer_can_read_but_not_write(server, admin_catalog, admin_table):
    ns, tname = admin_table
    viewer = create_user(server, "viewer", groups=("Viewers",))
    cat = viewer.catalog()

    assert (ns,) in cat.list_namespaces()
    assert (ns, tname) in cat.list_tables(ns)
    assert cat.load_namespace_properties(ns) is not None

    table = cat.load_table((ns, tname))
    assert sorted_pylist(read_all(table)) == sorted_pylist(rows(0, 5))

    with pytest.raises(ForbiddenError):
        cat.create_table((ns, "viewer_made"), schema=SCHEMA)
    with pytest.raises(ForbiddenError):
        cat.create_namespace(unique("viewer_ns"))
    # The embedded default is served through the S3 gateway: the viewer's vended credentials
    # are read-only, so the data file itself is refused, before any commit is attempted.
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        table.append(rows(100, 2))
    with pytest.raises(ForbiddenError):
        cat.drop_table((ns, tname))

    # The raw error body is an Iceberg ForbiddenException.
    prefix = server.prefix(WAREHOUSE)
    r = viewer.request("DELETE", f"/v1/{prefix}/namespaces/{ns}/tables/{tname}")
    assert_error_shape(r, 403, "ForbiddenException")

    # Nothing changed.
    assert not admin_catalog.table_exists((ns, "viewer_made"))
    after = admin_catalog.load_table((ns, tname))
    assert sorted_pylist(read_all(after)) == sorted_pylist(rows(0, 5))
    assert after.metadata.current_snapshot_id == table.metadata.current_snapshot_id


# --------------------------------------------------------------------------------------------
# 2. Developers write tables but do not administer warehouses
# --------------------------------------------------------------------------------------------


def test_developer_writes_tables_but_cannot_create_warehouse(server, admin_catalog):
    dev = create_user(server, "dev", groups=("Developers",))
    cat = dev.catalog()

    ns = unique("devns")
    cat.create_namespace(ns)
    table = cat.create_table((ns, "t"), schema=SCHEMA)
    table.append(rows(0, 4))
    table.append(rows(4, 3))
    assert sorted_pylist(read_all(cat.load_table((ns, "t")))) == sorted_pylist(rows(0, 7))
    # The admin sees the developer's work.
    assert sorted_pylist(read_all(admin_catalog.load_table((ns, "t")))) == sorted_pylist(rows(0, 7))

    wh_name = principal_name("devwh")
    root = server.data_dir / "extra-warehouses" / wh_name
    root.mkdir(parents=True)
    r = dev.request(
        "POST",
        f"{MGMT}/warehouse",
        json={
            "warehouse-name": wh_name,
            "storage-profile": {"type": "file", "root": str(root)},
            "delete-profile": {"type": "hard"},
        },
    )
    assert_error_shape(r, 403, "ForbiddenException")
    listed = expect(admin(server, "GET", f"{MGMT}/warehouse"), 200).json()["warehouses"]
    assert wh_name not in {w["name"] for w in listed}


def test_developer_stages_a_table_and_writes_its_data_before_the_create_commits(server, admin_catalog):
    # PyIceberg's create-table transaction stages the table, writes the data files through the
    # gateway while no table holds their keys yet, then commits with assert-create. The
    # temporary credentials of a staged table carry the right to create it, so a Developer
    # (no s3:PutObject anywhere) can do this; a Viewer's staged create is refused up front.
    dev = create_user(server, "stager", groups=("Developers",))
    cat = dev.catalog()
    ns = unique("stagens")
    cat.create_namespace(ns)
    with cat.create_table_transaction((ns, "ctas"), schema=SCHEMA) as txn:
        txn.append(rows(0, 6))
    assert sorted_pylist(read_all(cat.load_table((ns, "ctas")))) == sorted_pylist(rows(0, 6))
    assert sorted_pylist(read_all(admin_catalog.load_table((ns, "ctas")))) == sorted_pylist(rows(0, 6))

    viewer = create_user(server, "stageviewer", groups=("Viewers",))
    with pytest.raises(ForbiddenError):
        with viewer.catalog().create_table_transaction((ns, "nope"), schema=SCHEMA) as txn:
            txn.append(rows(0, 1))
    assert not admin_catalog.table_exists((ns, "nope"))


# --------------------------------------------------------------------------------------------
# 3. A deny on one namespace hides it completely
# --------------------------------------------------------------------------------------------


def test_denied_namespace_is_invisible(server, admin_catalog, denied_namespace):
    d = denied_namespace
    cat = d.user.catalog()

    listed = cat.list_namespaces()
    assert (d.secret_ns,) not in listed
    assert (d.open_ns,) in listed

    # The open namespace works as for any developer.
    assert sorted_pylist(read_all(cat.load_table((d.open_ns, "t")))) == sorted_pylist(rows(0, 3))

    with pytest.raises(NoSuchTableError):
        cat.load_table((d.secret_ns, "t"))
    with pytest.raises(NoSuchNamespaceError):
        cat.load_namespace_properties(d.secret_ns)
    assert not cat.namespace_exists(d.secret_ns)

    # Same answer as for things that do not exist at all.
    prefix = server.prefix(WAREHOUSE)
    hidden = d.user.request("GET", f"/v1/{prefix}/namespaces/{d.secret_ns}/tables/t")
    missing = d.user.request("GET", f"/v1/{prefix}/namespaces/{d.open_ns}/tables/{unique('nope')}")
    assert_error_shape(hidden, 404, "NoSuchTableException")
    assert_error_shape(missing, 404, "NoSuchTableException")
    hidden_ns = d.user.request("GET", f"/v1/{prefix}/namespaces/{d.secret_ns}")
    missing_ns = d.user.request("GET", f"/v1/{prefix}/namespaces/{unique('nope')}")
    assert_error_shape(hidden_ns, 404, "NoSuchNamespaceException")
    assert_error_shape(missing_ns, 404, "NoSuchNamespaceException")

    # The admin still sees everything.
    assert (d.secret_ns,) in admin_catalog.list_namespaces()
    assert admin_catalog.load_namespace_properties(d.secret_ns).get("owner") == "admin"
    assert sorted_pylist(read_all(admin_catalog.load_table((d.secret_ns, "t")))) == sorted_pylist(rows(0, 3))


# --------------------------------------------------------------------------------------------
# 4. Deleting a key revokes it everywhere
# --------------------------------------------------------------------------------------------


def test_deleted_key_is_refused(server):
    dev = create_user(server, "revoked", groups=("Developers",))
    cat = dev.catalog()
    ns = unique("revns")
    cat.create_namespace(ns)
    assert (ns,) in cat.list_namespaces()

    token_resp = oauth_token(server, dev.key_id, dev.secret)
    assert token_resp.status_code == 200, token_resp.text
    token = token_resp.json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    r = requests.get(server.url("/v1/config"), params={"warehouse": WAREHOUSE}, headers=bearer, timeout=30)
    assert r.status_code == 200, r.text
    expect(dev.request("GET", f"{MGMT}/whoami"), 200)

    expect(admin(server, "DELETE", f"{MGMT}/users/{dev.name}/access-keys/{dev.key_id}"), 204)
    keys = expect(admin(server, "GET", f"{MGMT}/users/{dev.name}/access-keys"), 200).json()["access-keys"]
    assert dev.key_id not in {k["access-key-id"] for k in keys}

    # Basic auth with the deleted key.
    assert_401(dev.request("GET", "/v1/config", params={"warehouse": WAREHOUSE}))
    assert_401(dev.request("GET", f"{MGMT}/whoami"))
    # The token issued for it before the deletion.
    assert_401(requests.get(server.url("/v1/config"), params={"warehouse": WAREHOUSE}, headers=bearer, timeout=30))
    assert_401(requests.get(server.url(f"{MGMT}/whoami"), headers=bearer, timeout=30))
    # No new token for it.
    r = oauth_token(server, dev.key_id, dev.secret)
    assert r.status_code == 401, r.text
    assert r.json().get("error") == "invalid_client", r.text
    # PyIceberg's token exchange fails with the OAuth error (401 from the token endpoint).
    with pytest.raises(OAuthError):
        dev.catalog()
    # The catalog created before: its token is refused (401), PyIceberg refreshes the token with
    # the same key, and that exchange fails the same way.
    with pytest.raises(OAuthError):
        cat.list_namespaces()


# --------------------------------------------------------------------------------------------
# 5. No privilege escalation through the management API
# --------------------------------------------------------------------------------------------


def test_developer_cannot_escalate(server):
    dev = create_user(server, "climber", groups=("Developers",))
    other = create_user(server, "bystander", groups=("Viewers",))

    policy_name = principal_name("mine")
    r = dev.request(
        "POST",
        f"{MGMT}/policies",
        json={"name": policy_name, "statements": [{"effect": "allow", "action": ["*"], "resource": "*"}]},
    )
    assert_error_shape(r, 403, "ForbiddenException")
    assert_error_shape(admin(server, "GET", f"{MGMT}/policies/{policy_name}"), 404)

    assert_error_shape(dev.request("PUT", f"{MGMT}/users/{dev.name}/policies/FullAccess"), 403, "ForbiddenException")
    assert_error_shape(dev.request("PUT", f"{MGMT}/groups/Admins/members/{dev.name}"), 403, "ForbiddenException")
    assert_error_shape(dev.request("POST", f"{MGMT}/users/{other.name}/access-keys"), 403, "ForbiddenException")

    # Nothing stuck.
    groups = expect(admin(server, "GET", f"{MGMT}/users/{dev.name}/groups"), 200).json()["groups"]
    assert sorted(g["name"] for g in groups) == ["Developers"]
    members = expect(admin(server, "GET", f"{MGMT}/groups/Admins/members"), 200).json()["users"]
    assert dev.name not in {u["name"] for u in members}
    other_keys = expect(admin(server, "GET", f"{MGMT}/users/{other.name}/access-keys"), 200).json()["access-keys"]
    assert [k["access-key-id"] for k in other_keys] == [other.key_id]
    whoami = expect(dev.request("GET", f"{MGMT}/whoami"), 200).json()
    assert whoami["name"] == dev.name
    assert "Admins" not in whoami.get("groups", [])

    # Self-service on one's own keys works.
    new = expect(dev.request("POST", f"{MGMT}/users/{dev.name}/access-keys"), 201).json()
    assert new["user"] == dev.name
    keys = expect(dev.request("GET", f"{MGMT}/users/{dev.name}/access-keys"), 200).json()["access-keys"]
    assert {k["access-key-id"] for k in keys} == {dev.key_id, new["access-key-id"]}
    assert all("secret-access-key" not in k for k in keys), keys
    # The new key authenticates as the same user.
    r = requests.get(server.url(f"{MGMT}/whoami"), auth=(new["access-key-id"], new["secret-access-key"]), timeout=30)
    assert r.status_code == 200 and r.json()["name"] == dev.name, r.text
    expect(dev.request("DELETE", f"{MGMT}/users/{dev.name}/access-keys/{new['access-key-id']}"), 204)
    keys = expect(dev.request("GET", f"{MGMT}/users/{dev.name}/access-keys"), 200).json()["access-keys"]
    assert [k["access-key-id"] for k in keys] == [dev.key_id]
    # ... but not on someone else's.
    assert_error_shape(dev.request("GET", f"{MGMT}/users/{other.name}/access-keys"), 403, "ForbiddenException")
    assert_error_shape(
        dev.request("DELETE", f"{MGMT}/users/{other.name}/access-keys/{other.key_id}"), 403, "ForbiddenException"
    )

    # The audit log records every refused attempt, attributed to the developer.
    entries = audit_entries(server)
    denied = [e for e in entries if e["actor"] == dev.name and e["result"] == "denied"]
    denied_actions = sorted(e["action"] for e in denied)
    for action in (
        "auth:CreatePolicy",
        "auth:AttachPolicy",
        "auth:AddGroupMember",
        "auth:CreateCredentials",
        "auth:DeleteCredentials",
    ):
        assert action in denied_actions, f"no denied {action} by {dev.name} in the audit log: {denied}"
    by_action = {e["action"]: e for e in denied}
    assert policy_name in by_action["auth:CreatePolicy"]["target"], by_action["auth:CreatePolicy"]
    assert "FullAccess" in by_action["auth:AttachPolicy"]["target"], by_action["auth:AttachPolicy"]
    assert "Admins" in by_action["auth:AddGroupMember"]["target"], by_action["auth:AddGroupMember"]
    assert other.name in by_action["auth:CreateCredentials"]["target"], by_action["auth:CreateCredentials"]
    # The self-service key operations were successes, not denials.
    mine = [e for e in entries if e["actor"] == dev.name and e["result"] == "success"]
    assert {"auth:CreateCredentials", "auth:DeleteCredentials"} <= {e["action"] for e in mine}, mine


# --------------------------------------------------------------------------------------------
# 6. The explain endpoint names the deciding policy
# --------------------------------------------------------------------------------------------


def test_check_explains_decisions(server, denied_namespace):
    d = denied_namespace
    r = expect(
        admin(
            server,
            "POST",
            f"{MGMT}/authz/check",
            json={"user": d.user.name, "action": "catalog:ReadTable", "resource": table_resource(d.secret_ns, "t")},
        ),
        200,
    )
    body = r.json()
    assert body["decision"] == "deny", body
    assert body["statement"]["policy"] == d.policy, body
    assert body["statement"]["effect"] == "deny", body
    assert isinstance(body["reason"], str) and body["reason"], body

    # The namespace itself is covered too (the first statement).
    r = expect(
        admin(
            server,
            "POST",
            f"{MGMT}/authz/check",
            json={"user": d.user.name, "action": "catalog:ReadNamespace", "resource": namespace_resource(d.secret_ns)},
        ),
        200,
    )
    body = r.json()
    assert body["decision"] == "deny" and body["statement"]["policy"] == d.policy, body

    r = expect(
        admin(
            server,
            "POST",
            f"{MGMT}/authz/check",
            json={"user": d.user.name, "action": "catalog:ReadTable", "resource": table_resource(d.open_ns, "t")},
        ),
        200,
    )
    body = r.json()
    assert body["decision"] == "allow", body
    assert body["statement"]["policy"] == "CatalogReadWrite", body
    assert body["statement"]["effect"] == "allow", body
    assert isinstance(body["reason"], str) and body["reason"], body

    # A user in no group: implicit deny, no deciding statement.
    nobody = create_user(server, "nobody")
    r = expect(
        admin(
            server,
            "POST",
            f"{MGMT}/authz/check",
            json={"user": nobody.name, "action": "catalog:ReadTable", "resource": table_resource(d.open_ns, "t")},
        ),
        200,
    )
    body = r.json()
    assert body["decision"] == "deny", body
    assert body.get("statement") is None, body


# --------------------------------------------------------------------------------------------
# 7. Bad input is rejected and leaves nothing behind
# --------------------------------------------------------------------------------------------


BAD_POLICIES = {
    "unknown-action": ([{"effect": "allow", "action": ["catalog:Fly"], "resource": "*"}], "catalog:Fly"),
    "malformed-resource": (
        [{"effect": "allow", "action": ["catalog:ReadTable"], "resource": "warehouse/x"}],
        "warehouse/x",
    ),
    "invalid-effect": ([{"effect": "maybe", "action": ["catalog:ReadTable"], "resource": "*"}], "maybe"),
    "empty-statements": ([], None),
}


@pytest.mark.parametrize("case", list(BAD_POLICIES))
def test_invalid_policy_is_rejected(server, case):
    statements, needle = BAD_POLICIES[case]
    name = principal_name(f"bad-{case}")
    r = admin(server, "POST", f"{MGMT}/policies", json={"name": name, "statements": statements})
    err = assert_error_shape(r, 400)
    if needle is not None:
        assert needle in err["message"], f"message does not name the problem ({needle!r}): {err}"
    assert_error_shape(admin(server, "GET", f"{MGMT}/policies/{name}"), 404)
    listed = expect(admin(server, "GET", f"{MGMT}/policies"), 200).json()["policies"]
    assert name not in {p["name"] for p in listed}


def test_duplicates_and_bad_names(server):
    user = principal_name("dup")
    expect(admin(server, "POST", f"{MGMT}/users", json={"name": user}), 201)
    assert_error_shape(admin(server, "POST", f"{MGMT}/users", json={"name": user}), 409)

    group = principal_name("dupgroup")
    expect(admin(server, "POST", f"{MGMT}/groups", json={"name": group}), 201)
    assert_error_shape(admin(server, "POST", f"{MGMT}/groups", json={"name": group}), 409)

    policy = create_policy(server, "duppolicy", [{"effect": "allow", "action": ["catalog:ReadTable"], "resource": "*"}])
    r = admin(
        server,
        "POST",
        f"{MGMT}/policies",
        json={"name": policy, "statements": [{"effect": "deny", "action": ["catalog:ReadTable"], "resource": "*"}]},
    )
    assert_error_shape(r, 409)
    # The original survived the attempt.
    got = expect(admin(server, "GET", f"{MGMT}/policies/{policy}"), 200).json()
    assert [s["effect"] for s in got["statements"]] == ["allow"], got

    # Names outside the allowed alphabet.
    for bad in ("has space", "slash/inside", ""):
        r = admin(server, "POST", f"{MGMT}/users", json={"name": bad})
        assert_error_shape(r, 400)
    users = expect(admin(server, "GET", f"{MGMT}/users"), 200).json()["users"]
    names = {u["name"] for u in users}
    assert user in names
    assert not names & {"has space", "slash/inside", ""}
