"""The S3 gateway suite: real S3 clients (boto3 with its default checksums, the AWS CLI, DuckDB's
httpfs, plain urllib with presigned URLs) against a real `sluice serve`, whose gateway listens on
an ephemeral port announced in its startup log, and an s3s-fs peer behind an S3 warehouse. Every
process listens on 127.0.0.1 only."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
import requests
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "AKIAIOSFODNN7EXAMPLE"
ADMIN_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MGMT = "/management/v1"
S3S_BUCKET = "lake"
S3S_KEY = ("s3s-access-key", "s3s-secret-key-0123456789")
S3S_PREFIX = "gw/prefix"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except Exception:  # pragma: no cover - best effort
        pass


def _start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    f = open(log, "ab", buffering=0)
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
    )


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


def _sluice_bin() -> str:
    b = os.environ.get("SLUICE_BIN") or str(ROOT / "target" / "debug" / "sluice")
    if not Path(b).exists():
        pytest.exit(f"sluice binary not found at {b} (build it or set SLUICE_BIN)", returncode=1)
    return b


@dataclass
class Server:
    api: str
    s3: str
    log: Path
    data_dir: Path

    def mgmt(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("auth", (ADMIN_KEY, ADMIN_SECRET))
        kw.setdefault("timeout", 60)
        return requests.request(method, self.api + path, **kw)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _announced(log: Path, what: str) -> str | None:
    """The URL of `what` ("Sluice", "Sluice S3 gateway") from sluice's startup log."""
    m = re.search(rf"{what} listening on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
    return m.group(1) if m else None


def start_server(root: Path, extra_env: dict[str, str] | None = None) -> tuple[Server, subprocess.Popen]:
    """A `sluice serve` with its data under `root`, the API and the gateway on ephemeral ports.

    Both ports are sluice's own picks, read from its startup log: a port picked here and passed
    in could be taken by another process (the Rust tests start many servers at once) before
    sluice binds it, and /health could then answer from that other server."""
    data_dir = root / "data"
    log = root / "sluice.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(
        SLUICE_BOOTSTRAP_ACCESS_KEY_ID=ADMIN_KEY,
        SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY=ADMIN_SECRET,
        SLUICE_LOG_LEVEL="info",
        # Virtual-host style for <bucket>.localhost (test_virtual_host_style); path style
        # keeps working for every other test.
        SLUICE_S3_DOMAIN="localhost",
        # Tests of refused signatures are not throttled (test_failed_signatures_slow_down
        # starts a server of its own with a small limit).
        SLUICE_AUTH_FAILURES_PER_MINUTE="10000",
        HOME=str(root),
        NO_COLOR="1",
    )
    env.update(extra_env or {})
    proc = _start(
        [_sluice_bin(), "serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        log,
        env,
    )
    try:
        deadline = time.monotonic() + 60
        api = s3 = None
        while api is None or s3 is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.exit(f"sluice did not start:\n{log.read_text(errors='replace')}", returncode=1)
            api, s3 = _announced(log, "Sluice"), _announced(log, "Sluice S3 gateway")
            time.sleep(0.1)
        while True:
            try:
                if requests.get(api + "/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.exit(f"sluice API did not come up:\n{log.read_text(errors='replace')}", returncode=1)
            time.sleep(0.1)
    except BaseException:
        _stop(proc)
        raise
    return Server(api, s3, log, data_dir), proc


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv, proc = start_server(tmp_path_factory.mktemp("sluice"))
    try:
        yield srv
    finally:
        _stop(proc)


def client(server: Server, key: str = ADMIN_KEY, secret: str = ADMIN_SECRET, **config: Any):
    s3cfg = config.pop("s3", {"addressing_style": "path"})
    return boto3.client(
        "s3",
        endpoint_url=server.s3,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3=s3cfg, retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


@pytest.fixture(scope="session")
def admin_s3(server: Server):
    return client(server)


@dataclass
class User:
    name: str
    key: str
    secret: str


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_user(server: Server, prefix: str, groups: tuple[str, ...] = (), policies: tuple[str, ...] = ()) -> User:
    name = unique(prefix)
    assert server.mgmt("POST", f"{MGMT}/users", json={"name": name}).status_code == 201
    for g in groups:
        r = server.mgmt("PUT", f"{MGMT}/groups/{g}/members/{name}")
        assert r.status_code == 204, r.text
    for p in policies:
        r = server.mgmt("PUT", f"{MGMT}/users/{name}/policies/{p}")
        assert r.status_code == 204, r.text
    r = server.mgmt("POST", f"{MGMT}/users/{name}/access-keys")
    assert r.status_code == 201, r.text
    k = r.json()
    return User(name, k["access-key-id"], k["secret-access-key"])


def create_policy(server: Server, statements: list[dict[str, Any]]) -> str:
    name = unique("gw")
    r = server.mgmt("POST", f"{MGMT}/policies", json={"name": name, "description": "gateway test", "statements": statements})
    assert r.status_code == 201, r.text
    return name


def create_table(server: Server, warehouse: str, namespace: str, table: str) -> str:
    """Creates `namespace.table` over the Iceberg REST API; returns the table's location."""
    r = server.mgmt("POST", f"/v1/{warehouse}/namespaces", json={"namespace": [namespace]})
    assert r.status_code in (200, 409), r.text
    schema = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "x", "required": False, "type": "long"}]}
    r = server.mgmt("POST", f"/v1/{warehouse}/namespaces/{namespace}/tables", json={"name": table, "schema": schema})
    assert r.status_code == 200, r.text
    return r.json()["metadata"]["location"]


def warehouse_key(location: str, base: str) -> str:
    assert location.startswith(base + "/"), (location, base)
    return location[len(base) + 1 :]


@pytest.fixture(scope="session")
def default_base(server: Server) -> str:
    # The embedded default is served through the gateway: its tables live at s3://default/….
    return "s3://default"


@dataclass
class S3sFs:
    endpoint: str
    root: Path


@pytest.fixture(scope="session")
def s3s_fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3sFs]:
    binary = os.environ.get("S3S_FS_BIN") or shutil.which("s3s-fs")
    if not binary:
        pytest.fail("s3s-fs not found (set S3S_FS_BIN)", pytrace=False)
    root = tmp_path_factory.mktemp("s3s")
    (root / "data" / S3S_BUCKET).mkdir(parents=True)
    port = free_port()
    proc = _start(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--access-key", S3S_KEY[0], "--secret-key", S3S_KEY[1], str(root / "data")],
        root / "s3s-fs.log",
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.exit("s3s-fs did not start", returncode=1)
            time.sleep(0.1)
        yield S3sFs(f"http://127.0.0.1:{port}", root / "data")
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def s3_warehouse(server: Server, s3s_fs: S3sFs) -> str:
    """An S3 warehouse on s3s-fs; the gateway serves it as bucket `s3wh`."""
    body = {
        "warehouse-name": "s3wh",
        "storage-profile": {
            "type": "s3",
            "bucket": S3S_BUCKET,
            "key-prefix": S3S_PREFIX,
            "region": "us-east-1",
            "endpoint": s3s_fs.endpoint,
            "path-style-access": True,
            "flavor": "s3-compat",
            "sts-enabled": False,
        },
        "storage-credential": {
            "type": "s3",
            "credential-type": "access-key",
            "aws-access-key-id": S3S_KEY[0],
            "aws-secret-access-key": S3S_KEY[1],
        },
        "delete-profile": {"type": "hard"},
    }
    r = server.mgmt("POST", f"{MGMT}/warehouse", json=body)
    assert r.status_code == 201, r.text
    return "s3wh"
