"""Storage access delegation end to end: vended credentials (STS AssumeRole against moto) and
remote signing (against s3s-fs, which verifies SigV4 for real).

The PyIceberg clients here carry NO storage keys of their own (only uri/credential/warehouse),
and the ambient AWS credential chain is emptied, so every successful data access went through
what sluice handed out:
- moto runs with auth checks ON (see conftest.moto): unknown keys and bad session tokens are
  refused, so a successful read/write proves the client used valid vended ASIA credentials.
  moto ignores session policies, so read-only credentials are NOT proven read-only here; only
  that Viewers get their own (separately cached) credentials.
- s3s-fs verifies every signature with the warehouse key only sluice knows, so a successful
  read/write proves the requests were signed by sluice's sign endpoint.

Every test makes its own namespaces, tables and users (unique names).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, quote, urlparse

import pytest
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import BadRequestError, SignError
from pyiceberg.io import load_file_io

from conftest import (
    MOTO_ACCOUNT,
    MOTO_ROLE,
    NO_DELEGATION_PROP,
    S3_REGION,
    MotoPeer,
    S3Peer,
    Server,
    Warehouse,
    create_warehouse,
    s3_storage_credential,
    s3_storage_profile,
    unique,
)
from principals import create_policy, create_user, deny_namespace_statements, oauth_token
from util import SCHEMA, assert_error_shape, eventually, read_all, rows, sorted_pylist

DELEGATION_HEADER = "X-Iceberg-Access-Delegation"
VENDED = {DELEGATION_HEADER: "vended-credentials"}
SIGNING = {DELEGATION_HEADER: "remote-signing"}

VENDED_KEYS = (
    "s3.access-key-id",
    "s3.secret-access-key",
    "s3.session-token",
    "s3.session-token-expires-at-ms",
    "s3.region",
    "s3.endpoint",
    "s3.path-style-access",
)


# --------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_ambient_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the machine has (env keys, ~/.aws, instance metadata), the clients in this module
    must not find it: storage access has to come from sluice."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def vend_warehouse(server: Server, moto: MotoPeer) -> Warehouse:
    """An s3-compat warehouse on moto with STS: sluice assumes `moto.role_arn` with the IAM
    user's key (the warehouse credential). No `sts-endpoint`: it defaults to `endpoint`."""
    name = unique("vendwh")
    r = create_warehouse(
        server,
        {
            "warehouse-name": name,
            "storage-profile": {
                "type": "s3",
                "bucket": moto.bucket,
                "key-prefix": "vend",
                "region": moto.region,
                "endpoint": moto.endpoint,
                "path-style-access": True,
                "flavor": "s3-compat",
                "sts-enabled": True,
                "sts-role-arn": moto.role_arn,
            },
            "storage-credential": s3_storage_credential(moto.access_key, moto.secret_key),
            "delete-profile": {"type": "hard"},
        },
    )
    assert r.status_code == 201, f"creating the STS warehouse on moto: HTTP {r.status_code}: {r.text}"
    return Warehouse(kind="s3", name=name, server=server, client_props={}, warehouse_id=r.json()["warehouse-id"])


class StsRecorder:
    """A pass-through proxy in front of moto's STS that records every call's parameters (form
    body + query). moto ignores session policies, so the policy sluice SENDS is asserted here."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.calls: list[dict[str, str]] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                params = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                params.update({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
                with recorder._lock:
                    recorder.calls.append(params)
                # Forward as is, Host included: moto verifies the SigV4 signature sluice made for
                # this proxy's host.
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "connection")}
                r = requests.post(recorder.target + self.path, data=body, headers=headers, timeout=30)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def assume_role_calls(self) -> list[dict[str, str]]:
        with self._lock:
            return [c for c in self.calls if c.get("Action") == "AssumeRole"]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def sts_recorder(moto: MotoPeer) -> Iterator[StsRecorder]:
    recorder = StsRecorder(moto.endpoint)
    try:
        yield recorder
    finally:
        recorder.stop()


@pytest.fixture(scope="module")
def recorded_vend_warehouse(server: Server, moto: MotoPeer, sts_recorder: StsRecorder) -> Warehouse:
    """Like `vend_warehouse`, with an explicit `sts-endpoint`: the recording proxy."""
    name = unique("vendrec")
    r = create_warehouse(
        server,
        {
            "warehouse-name": name,
            "storage-profile": {
                "type": "s3",
                "bucket": moto.bucket,
                "key-prefix": "vendrec",
                "region": moto.region,
                "endpoint": moto.endpoint,
                "sts-endpoint": sts_recorder.url,
                "path-style-access": True,
                "flavor": "s3-compat",
                "sts-enabled": True,
                "sts-role-arn": moto.role_arn,
            },
            "storage-credential": s3_storage_credential(moto.access_key, moto.secret_key),
            "delete-profile": {"type": "hard"},
        },
    )
    assert r.status_code == 201, f"creating the STS warehouse with sts-endpoint: HTTP {r.status_code}: {r.text}"
    return Warehouse(kind="s3", name=name, server=server, client_props={}, warehouse_id=r.json()["warehouse-id"])


def allowed_actions(policy: dict[str, Any]) -> set[str]:
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    actions: set[str] = set()
    for st in statements:
        if st.get("Effect") == "Allow":
            a = st.get("Action", [])
            actions.update([a] if isinstance(a, str) else a)
    return actions


def object_resources(policy: dict[str, Any]) -> list[str]:
    """The object-level resources (arn:aws:s3:::bucket/...) of the Allow statements."""
    out: list[str] = []
    for st in policy.get("Statement", []):
        if st.get("Effect") != "Allow":
            continue
        res = st.get("Resource", [])
        out += [r for r in ([res] if isinstance(res, str) else res) if r.startswith("arn:aws:s3:::") and "/" in r]
    return out


@pytest.fixture(scope="module")
def sign_warehouse(server: Server, s3: S3Peer) -> Warehouse:
    """A warehouse on s3s-fs without STS and with the default push-s3-delete-disabled (true).

    A decoy warehouse on the same bucket and endpoint (other key prefix) is created first, with a
    name that sorts first: the unscoped sign endpoint must find a table's OWN warehouse, not the
    first one whose bucket matches (policies name warehouses)."""
    decoy = create_warehouse(
        server,
        {
            "warehouse-name": unique("aa_decoy"),
            "storage-profile": s3_storage_profile(s3, key_prefix="sd"),
            "storage-credential": s3_storage_credential(s3.access_key, s3.secret_key),
            "delete-profile": {"type": "hard"},
        },
    )
    assert decoy.status_code == 201, f"creating the decoy warehouse: HTTP {decoy.status_code}: {decoy.text}"
    name = unique("signwh")
    profile = s3_storage_profile(s3, key_prefix="sg")  # short: see conftest.S3_KEY_PREFIX
    assert "push-s3-delete-disabled" not in profile
    r = create_warehouse(
        server,
        {
            "warehouse-name": name,
            "storage-profile": profile,
            "storage-credential": s3_storage_credential(s3.access_key, s3.secret_key),
            "delete-profile": {"type": "hard"},
        },
    )
    assert r.status_code == 201, f"creating the signing warehouse: HTTP {r.status_code}: {r.text}"
    return Warehouse(kind="s3", name=name, server=server, client_props={}, s3=s3, warehouse_id=r.json()["warehouse-id"])


def keyless_catalog(server: Server, warehouse: str, key_id: str | None = None, secret: str | None = None, **extra: str):
    """A PyIceberg client with no storage keys: uri, credential and warehouse only (plus
    `extra`). Without `header.X-Iceberg-Access-Delegation` PyIceberg asks for vended credentials."""
    return load_catalog(
        "sluice",
        type="rest",
        uri=server.base_url,
        credential=f"{key_id or server.key_id}:{secret or server.secret}",
        warehouse=warehouse,
        **extra,
    )


def signing_catalog(server: Server, warehouse: str, key_id: str | None = None, secret: str | None = None):
    return keyless_catalog(server, warehouse, key_id, secret, **{NO_DELEGATION_PROP: "remote-signing"})


def key_prefix_of(location: str, bucket: str) -> str:
    assert location.startswith(f"s3://{bucket}/"), location
    return location[len(f"s3://{bucket}/"):].rstrip("/") + "/"


def http_uri(s3: S3Peer, location: str) -> str:
    """s3://bucket/key -> the path-style HTTP URL of that object on s3s-fs."""
    assert location.startswith(f"s3://{s3.bucket}/"), location
    key = location[len(f"s3://{s3.bucket}/"):]
    return f"{s3.endpoint}/{s3.bucket}/{quote(key, safe='/')}"


def load_raw(server: Server, warehouse: str, ns: str, table: str, headers: dict[str, str], auth: Any = None) -> requests.Response:
    prefix = server.prefix(warehouse)
    return requests.get(
        server.url(f"/v1/{prefix}/namespaces/{ns}/tables/{table}"),
        headers=headers,
        auth=auth or server.auth,
        timeout=60,
    )


def assert_vended_config(config: dict[str, str], moto: MotoPeer, what: str) -> None:
    missing = [k for k in VENDED_KEYS if not config.get(k)]
    assert not missing, f"{what}: vended config lacks {missing}: {sorted(config)}"
    assert config["s3.access-key-id"].startswith("ASIA"), f"{what}: not STS credentials: {config['s3.access-key-id']}"
    assert config["s3.access-key-id"] != moto.access_key, f"{what}: the warehouse's own key was handed out"
    assert config["s3.secret-access-key"] != moto.secret_key, f"{what}: the warehouse's own secret was handed out"
    assert config["s3.region"] == moto.region, config
    assert config["s3.endpoint"].rstrip("/") == moto.endpoint, config
    assert config["s3.path-style-access"] == "true", config
    expires_ms = int(config["s3.session-token-expires-at-ms"])
    now_ms = int(time.time() * 1000)
    assert now_ms + 5 * 60_000 < expires_ms <= now_ms + 13 * 3_600_000, (
        f"{what}: s3.session-token-expires-at-ms {expires_ms} is not a few minutes to hours ahead of {now_ms}"
    )


def assert_vended_response(body: dict[str, Any], moto: MotoPeer, location: str, what: str) -> dict[str, str]:
    """A load/create/register response carrying vended credentials: in `config` and in
    `storage-credentials` (one entry, prefix = table location, same keys). Returns the entry's
    config."""
    assert_vended_config(body.get("config", {}), moto, f"{what} config")
    creds = body.get("storage-credentials")
    assert isinstance(creds, list) and len(creds) == 1, f"{what}: storage-credentials: {creds}"
    entry = creds[0]
    assert entry["prefix"].rstrip("/") == location.rstrip("/"), f"{what}: prefix {entry['prefix']} != {location}"
    assert_vended_config(entry["config"], moto, f"{what} storage-credentials")
    for k in VENDED_KEYS:
        assert entry["config"][k] == body["config"][k], f"{what}: {k} differs between config and storage-credentials"
    return entry["config"]


def io_for(config: dict[str, str], impl: str = "pyiceberg.io.pyarrow.PyArrowFileIO", **override: str):
    return load_file_io({**config, "py-io-impl": impl, **override})


# --------------------------------------------------------------------------------------------
# no STS: the delegation header is a hint. Requests are served with what the warehouse can do
# (remote signing on S3), the outcome is named in X-Sluice-Delegation, and only /credentials
# (an explicit request for credentials) answers a clear 400.
# --------------------------------------------------------------------------------------------

OUTCOME_HEADER = "X-Sluice-Delegation"
KEY_MATERIAL = ("s3.access-key-id", "s3.secret-access-key", "s3.session-token")


def assert_no_key_material(body: dict[str, Any], what: str) -> None:
    config = body.get("config", {})
    assert not [k for k in KEY_MATERIAL if k in config], f"{what}: key material in config: {sorted(config)}"
    assert not body.get("storage-credentials"), f"{what}: storage-credentials: {body.get('storage-credentials')}"


def test_vended_credentials_hint_without_sts_is_served(server, s3_warehouse):
    """Formerly `test_vended_credentials_refused_without_sts` (load/create answered 400): the
    spec makes the header a hint, so the same requests now succeed without credentials."""
    cat = load_catalog("sluice", **s3_warehouse.catalog_props())  # own keys, no delegation
    ns = unique("nosts")
    cat.create_namespace(ns)
    cat.create_table((ns, "t"), schema=SCHEMA).append(rows(0, 2))
    prefix = server.prefix(s3_warehouse.name)

    # Load with vended-credentials: 200, remote signing instead (S3 has it), never keys.
    r = load_raw(server, s3_warehouse.name, ns, "t", VENDED)
    assert r.status_code == 200, r.text
    assert r.headers.get(OUTCOME_HEADER) == "remote-signing", r.headers
    body = r.json()
    assert_no_key_material(body, "load")
    assert_signing_config(body["config"], server, s3_warehouse, "load")
    assert s3_warehouse.s3.secret_key not in r.text

    # Create (and stage-create) asking for vended credentials succeed the same way.
    schema_json = json.loads(SCHEMA.model_dump_json())
    for name, staged in (("t2", False), ("t3", True)):
        r = server.post(
            f"/v1/{prefix}/namespaces/{ns}/tables",
            json={"name": name, "schema": schema_json, "stage-create": staged},
            headers=VENDED,
        )
        assert r.status_code == 200, r.text
        assert r.headers.get(OUTCOME_HEADER) == "remote-signing", r.headers
        assert_no_key_material(r.json(), f"create {name}")
    assert cat.table_exists((ns, "t2"))
    assert not cat.table_exists((ns, "t3"))

    # Register too (t2 dropped from the catalog, its files kept, and registered again).
    t2 = cat.load_table((ns, "t2"))
    cat.drop_table((ns, "t2"))
    r = server.post(
        f"/v1/{prefix}/namespaces/{ns}/register",
        json={"name": "t2", "metadata-location": t2.metadata_location},
        headers=VENDED,
    )
    assert r.status_code == 200, r.text
    assert r.headers.get(OUTCOME_HEADER) == "remote-signing", r.headers
    assert_no_key_material(r.json(), "register")

    # Asking /credentials explicitly gets a clear error naming the cause.
    r = server.get(f"/v1/{prefix}/namespaces/{ns}/tables/t/credentials")
    err = assert_error_shape(r, 400, "BadRequestException")
    assert "sts-enabled" in err["message"], err
    assert s3_warehouse.s3.secret_key not in r.text

    # No header, or an empty one, means no delegation: the table loads, with no credentials
    # and no outcome header.
    for headers in ({}, {DELEGATION_HEADER: ""}):
        r = load_raw(server, s3_warehouse.name, ns, "t", headers)
        assert r.status_code == 200, f"{headers}: {r.text}"
        assert OUTCOME_HEADER not in r.headers, r.headers
        body = r.json()
        assert "s3.remote-signing-enabled" not in body.get("config", {}), body.get("config")
        assert_no_key_material(body, f"{headers}")
        assert s3_warehouse.s3.secret_key not in r.text


def test_stock_pyiceberg_client_on_s3_without_sts(server, s3_warehouse):
    """PyIceberg with its default headers (it asks for vended credentials) against an S3
    warehouse without STS: once with no storage keys at all, once with its own keys. Both work
    end to end; the data path is remote signing (s3s-fs checks every signature)."""
    ns = unique("stock")
    keyless = keyless_catalog(server, s3_warehouse.name)
    keyless.create_namespace(ns)
    t = keyless.create_table((ns, "t"), schema=SCHEMA)
    t.append(rows(0, 3))
    t.append(rows(3, 2))
    t = keyless.load_table((ns, "t"))
    assert sorted_pylist(read_all(t)) == sorted_pylist(rows(0, 5))
    assert [s.summary.operation.value for s in t.snapshots()] == ["append", "append"]

    own_keys = {k: v for k, v in s3_warehouse.client_props.items() if k != NO_DELEGATION_PROP}
    with_keys = load_catalog("sluice", **{**s3_warehouse.catalog_props(), **{NO_DELEGATION_PROP: "vended-credentials"}, **own_keys})
    t2 = with_keys.create_table((ns, "t2"), schema=SCHEMA)
    t2.append(rows(10, 2))
    t2.overwrite(rows(20, 1))
    t2 = with_keys.load_table((ns, "t2"))
    assert sorted_pylist(read_all(t2)) == sorted_pylist(rows(20, 1))
    # Snapshots in the order they were written: the overwrite after the append it replaced.
    snaps = t2.snapshots()
    assert snaps[0].summary.operation.value == "append", snaps
    assert [s.sequence_number for s in snaps] == sorted(s.sequence_number for s in snaps), snaps
    assert sorted_pylist(read_all(keyless.load_table((ns, "t2")))) == sorted_pylist(rows(20, 1))
    with_keys.drop_table((ns, "t2"))
    keyless.drop_table((ns, "t"))


def test_no_sign_right_means_no_delegation_not_an_error(server, s3_warehouse):
    """A caller who may read a table but not sign for it asks (by default) for vended
    credentials from a warehouse without STS: the load is served with nothing, and the header
    says why."""
    ns = unique("nosign")
    cat = load_catalog("sluice", **s3_warehouse.catalog_props())
    cat.create_namespace(ns)
    cat.create_table((ns, "t"), schema=SCHEMA)
    no_sign = create_policy(
        server,
        "nosign",
        [{"effect": "deny", "action": ["storage:Sign"], "resource": f"sluice:catalog:::warehouse/{s3_warehouse.name}/*"}],
    )
    user = create_user(server, "nosign", groups=("Viewers",), policies=(no_sign,))
    r = requests.get(
        server.url(f"/v1/{server.prefix(s3_warehouse.name)}/namespaces/{ns}/tables/t"),
        headers=VENDED,
        auth=user.auth,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    outcome = r.headers.get(OUTCOME_HEADER, "")
    assert outcome.startswith("none; reason=") and "sts-enabled" in outcome and "storage:Sign" in outcome, outcome
    assert_no_key_material(r.json(), "viewer load")
    assert "s3.remote-signing-enabled" not in r.json().get("config", {})


# --------------------------------------------------------------------------------------------
# A. vended credentials (moto: S3 + IAM + STS, auth checks on)
# --------------------------------------------------------------------------------------------


def test_vended_credentials_round_trip(server, moto, vend_warehouse):
    cat = keyless_catalog(server, vend_warehouse.name)
    ns = unique("vend")
    ident = (ns, "t")
    cat.create_namespace(ns)

    table = cat.create_table(ident, schema=SCHEMA)
    location = table.location()
    assert location.startswith(f"s3://{moto.bucket}/vend/"), location
    assert_vended_config(table.io.properties, moto, "create_table io")
    created_key = table.io.properties["s3.access-key-id"]

    # Written and read back with nothing but the vended credentials.
    table.append(rows(0, 5))
    table.append(rows(5, 3))
    loaded = cat.load_table(ident)
    assert sorted_pylist(read_all(loaded)) == sorted_pylist(rows(0, 8))
    prefix_keys = moto.list_keys(key_prefix_of(location, moto.bucket))
    assert any(k.endswith(".parquet") for k in prefix_keys), prefix_keys

    # Cached per (warehouse, table, access level): the same credentials for every load.
    again = cat.load_table(ident)
    assert loaded.io.properties["s3.access-key-id"] == again.io.properties["s3.access-key-id"] == created_key

    # The raw load response: config + storage-credentials, and no trace of the warehouse key.
    prefix = server.prefix(vend_warehouse.name)
    r = load_raw(server, vend_warehouse.name, ns, "t", VENDED)
    assert r.status_code == 200, r.text
    vended = assert_vended_response(r.json(), moto, location, "load")
    assert vended["s3.access-key-id"] == created_key
    assert moto.secret_key not in r.text and moto.access_key not in r.text

    # GET .../credentials: the same (cached) credentials.
    r = server.get(f"/v1/{prefix}/namespaces/{ns}/tables/t/credentials")
    assert r.status_code == 200, r.text
    creds = r.json()["storage-credentials"]
    assert len(creds) == 1 and creds[0]["prefix"].rstrip("/") == location.rstrip("/"), creds
    assert_vended_config(creds[0]["config"], moto, "credentials endpoint")
    assert creds[0]["config"]["s3.access-key-id"] == created_key
    assert moto.secret_key not in r.text

    # They are credentials of the role sluice assumed (moto checks the signature and token).
    sts = moto.client("sts", vended["s3.access-key-id"], vended["s3.secret-access-key"], vended["s3.session-token"])
    arn = sts.get_caller_identity()["Arn"]
    assert arn.startswith(f"arn:aws:sts::{MOTO_ACCOUNT}:assumed-role/{MOTO_ROLE}/"), arn

    # moto really checks: a bogus key and a tampered session token are refused, so the reads and
    # writes above can only have used the real vended credentials.
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        moto.client("s3", "ASIABOGUSBOGUSBOGUS0", "bogus-secret", "bogus-token").list_objects_v2(Bucket=moto.bucket)
    with pytest.raises(ClientError):
        moto.client("s3", "AKIABOGUSBOGUSBOGUS0", "bogus-secret").list_objects_v2(Bucket=moto.bucket)
    metadata_location = again.metadata_location
    assert io_for(vended).new_input(metadata_location).open().read(1) == b"{"
    with pytest.raises(OSError):
        io_for(vended, **{"s3.session-token": "bogus"}).new_input(metadata_location).open().read()

    # Register hands out credentials too.
    cat.drop_table(ident)  # no purge: files stay
    assert moto.list_keys(key_prefix_of(location, moto.bucket)), "drop without purge removed files"
    registered = cat.register_table(ident, metadata_location)
    assert_vended_config(registered.io.properties, moto, "register_table io")
    assert sorted_pylist(read_all(registered)) == sorted_pylist(rows(0, 8))

    # Purge: the server removes the files with its own key.
    cat.purge_table(ident)
    assert not cat.table_exists(ident)

    def gone():
        left = moto.list_keys(key_prefix_of(location, moto.bucket))
        assert left == [], f"files left after purge: {left}"

    eventually(gone, timeout=20)


def test_vended_credentials_for_viewers_are_separate(server, moto, recorded_vend_warehouse, sts_recorder):
    """A Viewer gets credentials of the read-only access level, minted and cached apart from the
    read-write ones. moto does not enforce session policies, so the read-only part is checked
    on the policy sluice sends to STS (through the explicit `sts-endpoint`, a recording proxy)."""
    wh = recorded_vend_warehouse
    admin_cat = keyless_catalog(server, wh.name)
    ns = unique("vendview")
    admin_cat.create_namespace(ns)
    sts_recorder.clear()
    table = admin_cat.create_table((ns, "t"), schema=SCHEMA)
    location = table.location()
    table_key = key_prefix_of(location, moto.bucket).rstrip("/")
    table.append(rows(0, 4))
    admin_key = admin_cat.load_table((ns, "t")).io.properties["s3.access-key-id"]
    assert admin_key == table.io.properties["s3.access-key-id"]

    # One AssumeRole (create, append and load share the cached read-write credentials), of the
    # warehouse's role, with a session policy that allows writing under the table only.
    calls = sts_recorder.assume_role_calls()
    assert len(calls) == 1, f"expected one AssumeRole for the read-write credentials, got {calls}"
    rw = calls[0]
    assert rw.get("RoleArn") == moto.role_arn, rw
    assert "Policy" in rw, f"no session policy sent: {rw}"
    rw_policy = json.loads(rw["Policy"])
    assert {"s3:GetObject", "s3:PutObject"} <= allowed_actions(rw_policy), rw_policy
    resources = object_resources(rw_policy)
    assert resources, rw_policy
    assert all(r.startswith(f"arn:aws:s3:::{moto.bucket}/{table_key}") for r in resources), (table_key, rw_policy)

    viewer = create_user(server, "vendviewer", groups=("Viewers",))
    viewer_cat = keyless_catalog(server, wh.name, viewer.key_id, viewer.secret)
    sts_recorder.clear()
    seen = viewer_cat.load_table((ns, "t"))
    assert_vended_config(seen.io.properties, moto, "viewer load")
    viewer_key = seen.io.properties["s3.access-key-id"]
    assert viewer_key != admin_key, "a Viewer got the read-write credentials"
    assert sorted_pylist(read_all(seen)) == sorted_pylist(rows(0, 4))
    # Cached for the Viewer's level too.
    assert viewer_cat.load_table((ns, "t")).io.properties["s3.access-key-id"] == viewer_key
    prefix = server.prefix(wh.name)
    r = viewer.request("GET", f"/v1/{prefix}/namespaces/{ns}/tables/t/credentials")
    assert r.status_code == 200, r.text
    assert r.json()["storage-credentials"][0]["config"]["s3.access-key-id"] == viewer_key
    # ... and the admin's are still the cached read-write ones.
    assert admin_cat.load_table((ns, "t")).io.properties["s3.access-key-id"] == admin_key

    calls = sts_recorder.assume_role_calls()
    assert len(calls) == 1, f"expected one AssumeRole for the Viewer's credentials, got {calls}"
    ro_policy = json.loads(calls[0]["Policy"])
    ro_actions = allowed_actions(ro_policy)
    assert "s3:GetObject" in ro_actions, ro_policy
    writes = {a for a in ro_actions if "*" in a or "Put" in a or "Delete" in a or "Multipart" in a}
    assert not writes, f"read-only session policy allows {writes}: {ro_policy}"
    resources = object_resources(ro_policy)
    assert resources and all(r.startswith(f"arn:aws:s3:::{moto.bucket}/{table_key}") for r in resources), ro_policy

    # A user who cannot read the table gets neither the table nor credentials.
    policy = create_policy(server, "deny-vend", deny_namespace_statements(ns, wh.name))
    denied = create_user(server, "venddenied", groups=("Developers",), policies=(policy,))
    sts_recorder.clear()
    r = denied.request("GET", f"/v1/{prefix}/namespaces/{ns}/tables/t/credentials")
    assert_error_shape(r, 404, "NoSuchTableException")
    r = load_raw(server, wh.name, ns, "t", VENDED, auth=denied.auth)
    assert_error_shape(r, 404, "NoSuchTableException")
    assert sts_recorder.assume_role_calls() == []

    admin_cat.purge_table((ns, "t"))


def test_pyiceberg_load_credentials(server, moto, vend_warehouse):
    """PyIceberg's own `load_credentials` (it checks the server advertises the endpoint in
    /v1/config `endpoints`)."""
    cat = keyless_catalog(server, vend_warehouse.name)
    ns = unique("vendcreds")
    cat.create_namespace(ns)
    table = cat.create_table((ns, "t"), schema=SCHEMA)
    props = cat.load_credentials((ns, "t"), table.metadata_location)
    assert_vended_config(props, moto, "PyIceberg load_credentials")
    assert props["s3.access-key-id"] == table.io.properties["s3.access-key-id"]
    cat.purge_table((ns, "t"))


# --------------------------------------------------------------------------------------------
# B. remote signing (s3s-fs verifies every signature)
# --------------------------------------------------------------------------------------------


def assert_signing_config(config: dict[str, str], server: Server, warehouse: Warehouse, what: str) -> str:
    """The remote-signing config; returns s3.signer.endpoint."""
    assert config.get("s3.remote-signing-enabled") == "true", f"{what}: {config}"
    assert config.get("s3.signer") == "S3V4RestSigner", f"{what}: {config}"
    assert config.get("s3.signer.uri", "").rstrip("/") == server.base_url, f"{what}: {config}"
    prefix = server.prefix(warehouse.name)
    endpoint = config.get("s3.signer.endpoint", "")
    assert re.fullmatch(rf"v1/{re.escape(prefix)}/tables/[0-9a-fA-F-]{{36}}/sign", endpoint), f"{what}: {endpoint!r}"
    assert config.get("py-io-impl") == "pyiceberg.io.fsspec.FsspecFileIO", f"{what}: {config}"
    assert config.get("s3.delete-enabled") == "false", f"{what}: push-s3-delete-disabled is the default: {config}"
    for k in ("s3.access-key-id", "s3.secret-access-key", "s3.session-token"):
        assert k not in config, f"{what}: remote signing must not hand out {k}"
    return endpoint


def test_remote_signing_round_trip(server, s3, sign_warehouse):
    cat = signing_catalog(server, sign_warehouse.name)
    ns = unique("sign")
    ident = (ns, "t")
    cat.create_namespace(ns)

    table = cat.create_table(ident, schema=SCHEMA)
    location = table.location()
    assert location.startswith(f"s3://{s3.bucket}/sg/"), location
    endpoint = assert_signing_config(table.io.properties, server, sign_warehouse, "create_table io")
    assert type(table.io).__name__ == "FsspecFileIO", type(table.io)
    assert s3.secret_key not in str(table.io.properties)

    table.append(rows(0, 5))
    loaded = cat.load_table(ident)
    assert assert_signing_config(loaded.io.properties, server, sign_warehouse, "load_table io") == endpoint
    assert sorted_pylist(read_all(loaded)) == sorted_pylist(rows(0, 5))

    loaded.overwrite(rows(100, 3))
    loaded.append(rows(200, 1))
    data = read_all(cat.load_table(ident))
    assert sorted(data.column("id").to_pylist()) == [100, 101, 102, 200]
    keys = s3.list_keys(key_prefix_of(location, s3.bucket))
    assert sum(k.endswith(".parquet") for k in keys) >= 3, keys

    # The client is told not to delete objects; dropping with purge is the server's job.
    cat.purge_table(ident)
    assert not cat.table_exists(ident)

    def gone():
        left = s3.list_keys(key_prefix_of(location, s3.bucket))
        assert left == [], f"files left after purge: {left}"

    eventually(gone, timeout=20)


def test_remote_signing_for_a_staged_create(server, s3, sign_warehouse):
    """A create transaction (stage-create, data files written, then the assert-create
    commit): the staged table is not in the catalog while its files are written, so its
    signer endpoint carries a sealed grant for exactly that table."""
    cat = signing_catalog(server, sign_warehouse.name)
    ns = unique("staged")
    cat.create_namespace(ns)
    ident = (ns, "ctas")

    txn = cat.create_table_transaction(ident, schema=SCHEMA)
    staged = txn.table_metadata.location
    endpoint = txn._table.io.properties["s3.signer.endpoint"]
    prefix = server.prefix(sign_warehouse.name)
    assert re.fullmatch(rf"v1/{re.escape(prefix)}/staged-tables/[A-Za-z0-9_-]+/sign", endpoint), endpoint
    assert not cat.table_exists(ident)
    txn.append(rows(0, 4))
    txn.commit_transaction()
    table = cat.load_table(ident)
    assert table.location() == staged
    assert sorted_pylist(read_all(table)) == sorted_pylist(rows(0, 4))

    # The grant's rules, through the raw endpoint.
    txn2 = cat.create_table_transaction((ns, "second"), schema=SCHEMA)
    grant_path = "/" + txn2._table.io.properties["s3.signer.endpoint"]
    inside = http_uri(s3, f"{txn2.table_metadata.location}/data/x.parquet")
    put = execute(signed_ok(sign(server, grant_path, "PUT", inside), inside), "PUT", data=b"staged data")
    assert put.status_code == 200, f"signed PUT refused by s3s-fs: {put.status_code} {put.text}"
    # Outside the staged location, e.g. the committed table's files: refused.
    other = http_uri(s3, f"{staged}/data/y.parquet")
    assert_error_shape(sign(server, grant_path, "PUT", other), 403, "ForbiddenException")
    # A tampered or foreign grant: refused.
    assert_error_shape(sign(server, grant_path.replace("/sign", "x/sign"), "PUT", inside), 403, "ForbiddenException")
    assert_error_shape(sign(server, f"/v1/{prefix}/staged-tables/bm90LWEtZ3JhbnQ/sign", "PUT", inside), 403, "ForbiddenException")
    # A Viewer may not create tables, so it may not write a staged table's files.
    viewer = create_user(server, "stagedviewer", groups=("Viewers",))
    assert sign(server, grant_path, "PUT", inside, auth=viewer.auth).status_code in (403, 404)


def sign(server: Server, path: str, method: str, uri: str, auth: Any = None, headers: dict[str, list[str]] | None = None, bearer: str | None = None) -> requests.Response:
    body = {"method": method, "region": S3_REGION, "uri": uri, "headers": headers or {}}
    kw: dict[str, Any] = {"json": body, "timeout": 30}
    if bearer is not None:
        kw["headers"] = {"Authorization": f"Bearer {bearer}"}
    else:
        kw["auth"] = auth or server.auth
    return requests.post(server.url(path), **kw)


def signed_ok(resp: requests.Response, uri: str) -> dict[str, Any]:
    assert resp.status_code == 200, f"sign: HTTP {resp.status_code}: {resp.text}"
    assert resp.headers.get("Cache-Control", "").replace(" ", "") == "private,max-age=60", dict(resp.headers)
    body = resp.json()
    assert body["uri"] == uri, body
    assert isinstance(body["headers"], dict) and all(isinstance(v, list) for v in body["headers"].values()), body
    names = {k.lower() for k in body["headers"]}
    assert "authorization" in names, body
    return body


def execute(signed: dict[str, Any], method: str, data: bytes | None = None) -> requests.Response:
    headers = {k: ", ".join(v) for k, v in signed["headers"].items()}
    return requests.request(method, signed["uri"], headers=headers, data=data, timeout=30)


def test_sign_endpoint_rules(server, s3, sign_warehouse):
    admin_cat = signing_catalog(server, sign_warehouse.name)
    ns = unique("signrules")
    admin_cat.create_namespace(ns)
    t1 = admin_cat.create_table((ns, "t1"), schema=SCHEMA)
    t1.append(rows(0, 3))
    t2 = admin_cat.create_table((ns, "t2"), schema=SCHEMA)
    t2.append(rows(0, 2))

    r = load_raw(server, sign_warehouse.name, ns, "t1", SIGNING)
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body.get("storage-credentials"), body.get("storage-credentials")
    scoped = "/" + assert_signing_config(body["config"], server, sign_warehouse, "raw load")
    metadata_uri = http_uri(s3, body["metadata-location"])
    other_uri = http_uri(s3, admin_cat.load_table((ns, "t2")).metadata_location)
    t1_location = body["metadata"]["location"]

    # (1) A GET of the table's metadata file: signed, and s3s-fs accepts the signature.
    signed = signed_ok(sign(server, scoped, "GET", metadata_uri), metadata_uri)
    got = execute(signed, "GET")
    assert got.status_code == 200, f"signed GET refused by s3s-fs: {got.status_code} {got.text}"
    assert got.json()["location"] == t1_location
    # ... and a PUT by a writer (the admin), executed with an unsigned payload.
    probe_uri = http_uri(s3, f"{t1_location}/data/probe-{uuid.uuid4().hex[:8]}.txt")
    signed = signed_ok(sign(server, scoped, "PUT", probe_uri), probe_uri)
    put = execute(signed, "PUT", data=b"signed by sluice")
    assert put.status_code == 200, f"signed PUT refused by s3s-fs: {put.status_code} {put.text}"
    got = execute(signed_ok(sign(server, scoped, "GET", probe_uri), probe_uri), "GET")
    assert got.status_code == 200 and got.content == b"signed by sluice", got.text

    # (2) Another table's file through this table's endpoint.
    err = assert_error_shape(sign(server, scoped, "GET", other_uri), 403, "ForbiddenException")
    assert "outside" in err["message"] or "location" in err["message"], err
    # ... or a file of no table at all.
    stray = f"{s3.endpoint}/{s3.bucket}/sg/elsewhere/x.parquet"
    assert_error_shape(sign(server, scoped, "GET", stray), 403, "ForbiddenException")

    # (3) A Viewer (Bearer token): reads are signed, writes are not.
    viewer = create_user(server, "signviewer", groups=("Viewers",))
    tok = oauth_token(server, viewer.key_id, viewer.secret)
    assert tok.status_code == 200, tok.text
    token = tok.json()["access_token"]
    signed = signed_ok(sign(server, scoped, "GET", metadata_uri, bearer=token), metadata_uri)
    assert execute(signed, "GET").status_code == 200
    assert_error_shape(sign(server, scoped, "PUT", probe_uri, bearer=token), 403, "ForbiddenException")
    # Basic auth works for the sign endpoint as well.
    signed_ok(sign(server, scoped, "GET", metadata_uri, auth=viewer.auth), metadata_uri)
    # Through PyIceberg: the Viewer reads the table; its append dies at signing, before any
    # object is written.
    viewer_cat = signing_catalog(server, sign_warehouse.name, viewer.key_id, viewer.secret)
    seen = viewer_cat.load_table((ns, "t1"))
    assert sorted_pylist(read_all(seen)) == sorted_pylist(rows(0, 3))
    before = s3.list_keys(key_prefix_of(t1_location, s3.bucket))
    with pytest.raises(SignError, match="403"):
        seen.append(rows(50, 1))
    assert s3.list_keys(key_prefix_of(t1_location, s3.bucket)) == before
    assert read_all(admin_cat.load_table((ns, "t1"))).num_rows == 3

    # (4) DELETE: push-s3-delete-disabled is the default, so not even the admin gets one.
    err = assert_error_shape(sign(server, scoped, "DELETE", probe_uri), 403, "ForbiddenException")
    assert "delete" in err["message"].lower(), err

    # (5) The unscoped endpoint finds the table from the URI.
    signed = signed_ok(sign(server, "/v1/aws/s3/sign", "GET", metadata_uri), metadata_uri)
    assert execute(signed, "GET").status_code == 200
    signed_ok(sign(server, "/v1/aws/s3/sign", "GET", metadata_uri, bearer=token), metadata_uri)
    assert_error_shape(sign(server, "/v1/aws/s3/sign", "PUT", probe_uri, bearer=token), 403, "ForbiddenException")
    assert_error_shape(sign(server, "/v1/aws/s3/sign", "GET", stray), 403, "ForbiddenException")

    # (6) A user who cannot read the table: as if it did not exist.
    policy = create_policy(server, "deny-sign", deny_namespace_statements(ns, sign_warehouse.name))
    denied = create_user(server, "signdenied", groups=("Developers",), policies=(policy,))
    assert_error_shape(sign(server, scoped, "GET", metadata_uri, auth=denied.auth), 404)
    assert_error_shape(sign(server, "/v1/aws/s3/sign", "GET", metadata_uri, auth=denied.auth), 404)

    # No credentials, no signature.
    r = requests.post(server.url(scoped), json={"method": "GET", "region": S3_REGION, "uri": metadata_uri, "headers": {}}, timeout=30)
    assert_error_shape(r, 401)
