"""Fixtures for the PyIceberg end-to-end suite.

Real peers only: one `sluice serve` process, one `s3s-fs` process and (for the delegation
tests) one `moto_server` process per test session, all on 127.0.0.1 with ephemeral ports, all
stopped at the end (also when something fails). Peers start lazily: a run that needs no moto
starts none.

Environment:
  SLUICE_BIN       path to the sluice binary (default: <repo>/target/debug/sluice)
  S3S_FS_BIN       path to s3s-fs (default: `s3s-fs` on PATH, then ~/.cargo/bin/s3s-fs)
  MOTO_SERVER_BIN  path to moto_server (default: <repo>/.venv-moto/bin/moto_server, then PATH)
  E2E_KEEP_TMP   set to 1 to print where the data dirs are (pytest keeps the last 3 runs anyway)
"""

from __future__ import annotations

import ctypes
import os as _os

# PyIceberg 0.12's FsspecFileIO installs the remote signer by unregister-then-register on an
# event emitter that fsspec shares across its worker threads; a request serialised in that
# gap goes out unsigned (apache/iceberg-python#3896). One worker avoids the client-side race;
# the server's signing is exercised the same way either way.
_os.environ.setdefault("PYICEBERG_MAX_WORKERS", "1")
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]

# Bootstrap admin key. The secret deliberately contains '/' and '+' so that form encoding
# (token endpoint) and Basic auth are exercised with the characters AWS-style secrets carry.
ADMIN_KEY_ID = "AKIATESTADMIN0000001"
ADMIN_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
assert len(ADMIN_KEY_ID) == 20 and len(ADMIN_SECRET) == 40

S3_ACCESS_KEY = "S3TESTACCESSKEY"
S3_SECRET_KEY = "s3test-secret-key-0123456789"
S3_BUCKET = "sluice-test"
# Keep bucket name and key prefixes short: s3s-fs stores a bookkeeping file per object whose name
# embeds base64(bucket) + base64(key), and file names are limited to 255 bytes.
S3_KEY_PREFIX = "wh1"
S3_REGION = "us-east-1"

HEALTH_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 80

# Logs of every peer started in this session, shown next to a failing test that uses the peer.
_PEER_LOGS: dict[str, Path] = {}
# Peer name -> the fixture that provides it (a test "uses" a peer when that fixture is among its
# fixtures, directly or through other fixtures).
_PEER_FIXTURES = {"sluice": "server", "s3s-fs": "s3", "moto": "moto"}


# --------------------------------------------------------------------------------------------
# process helpers
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_connect(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:
    """preexec_fn: have the kernel SIGTERM the child if pytest itself dies (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:  # pragma: no cover - best effort
        pass


def log_tail(path: Path, lines: int = LOG_TAIL_LINES, head: int = 0) -> str:
    """The last `lines` lines of a log (plus its first `head` lines when it is longer)."""
    try:
        all_lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    if len(all_lines) <= head + lines:
        return "\n".join(all_lines)
    skipped = len(all_lines) - head - lines
    return "\n".join(all_lines[:head] + [f"[... {skipped} lines ...]"] + all_lines[-lines:])


@dataclass
class Peer:
    name: str
    proc: subprocess.Popen
    log_path: Path
    _log_file: Any = field(repr=False, default=None)

    def tail(self, head: int = 0) -> str:
        return log_tail(self.log_path, head=head)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def start_peer(name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> Peer:
    log_file = open(log_path, "ab", buffering=0)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=_die_with_parent,
    )
    _PEER_LOGS[name] = log_path
    return Peer(name=name, proc=proc, log_path=log_path, _log_file=log_file)


def becomes_ready(peer: Peer, ready: Callable[[], bool], timeout: float) -> bool:
    """Whether `ready` holds within `timeout` while the peer runs; never stops the session."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and peer.proc.poll() is None:
        try:
            if ready():
                return True
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.1)
    return False


def wait_until(peer: Peer, ready: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for a peer to become ready. If it never does, stop the whole session: every test
    needs the peers, so one clear message beats a hundred identical setup errors."""
    if becomes_ready(peer, ready, timeout):
        return
    if peer.proc.poll() is not None:
        problem = f"{peer.name} exited with code {peer.proc.returncode} before {what}"
    else:
        problem = f"{peer.name}: timed out after {timeout:.0f}s waiting for {what}"
    peer.stop()
    pytest.exit(
        f"{problem}.\n--- {peer.name} log ({peer.log_path}) ---\n{peer.tail(head=60)}\n--- end of log ---",
        returncode=1,
    )


def _interrupt_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # CI and scripts/test.sh stop runs with SIGTERM; make that behave like Ctrl-C so the session
    # fixtures still stop sluice and s3s-fs (PR_SET_PDEATHSIG is only the last line of defence).
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)


# --------------------------------------------------------------------------------------------
# show peer logs next to failing tests
# --------------------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call", "teardown"):
        used = set(getattr(item, "fixturenames", ()))
        for name, path in _PEER_LOGS.items():
            if _PEER_FIXTURES.get(name, "server") in used:
                rep.sections.append((f"{name} log tail ({path})", log_tail(path)))


# --------------------------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------------------------


def _find_s3s_fs() -> str:
    if env := os.environ.get("S3S_FS_BIN"):
        return env
    if found := shutil.which("s3s-fs"):
        return found
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    candidate = cargo_home / "bin" / "s3s-fs"
    if candidate.exists():
        return str(candidate)
    pytest.fail(
        "s3s-fs not found (set S3S_FS_BIN or run `cargo install s3s-fs --version 0.14.1 --features binary --locked`)",
        pytrace=False,
    )


@dataclass
class S3Peer:
    endpoint: str
    data_dir: Path  # s3s-fs root; bucket = data_dir / bucket
    bucket: str
    access_key: str
    secret_key: str
    region: str

    def fs(self):
        """An fsspec S3 filesystem speaking to s3s-fs with the test key (SigV4 is verified)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key,
            secret=self.secret_key,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": self.region},
            config_kwargs={"s3": {"addressing_style": "path"}},
            use_listings_cache=False,
            skip_instance_cache=True,
        )

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` per ListObjectsV2 (s3fs' own find() is confused by s3s-fs'
        directory-backed listing, so page through the raw API)."""
        fs = self.fs()
        keys: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            page = fs.call_s3("list_objects_v2", **kwargs)
            keys += [obj["Key"] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(keys)
            kwargs["ContinuationToken"] = page["NextContinuationToken"]


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Peer]:
    root = tmp_path_factory.mktemp("s3s")
    data_dir = root / "data"
    (data_dir / S3_BUCKET).mkdir(parents=True)
    port = free_port()
    peer = start_peer(
        "s3s-fs",
        [
            _find_s3s_fs(),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--access-key", S3_ACCESS_KEY,
            "--secret-key", S3_SECRET_KEY,
            str(data_dir),
        ],
        root / "s3s-fs.log",
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # A TCP connect is enough (an unsigned HTTP probe would only add errors to its log).
        wait_until(peer, lambda: _can_connect(port), 15, "s3s-fs to listen")
        yield S3Peer(endpoint, data_dir, S3_BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION)
    finally:
        peer.stop()


# --------------------------------------------------------------------------------------------
# moto (S3 + IAM + STS) for vended credentials
# --------------------------------------------------------------------------------------------

MOTO_BUCKET = "sluice-vend"
MOTO_ACCOUNT = "123456789012"  # moto's default account
MOTO_USER = "sluice-catalog"
MOTO_ROLE = "sluice-vended"
# moto's own root-ish default key: accepted only while auth checks are off (set-up).
MOTO_SETUP_KEY = ("testing", "testing")


def _find_moto_server() -> str:
    if env := os.environ.get("MOTO_SERVER_BIN"):
        return env
    candidate = REPO_ROOT / ".venv-moto" / "bin" / "moto_server"
    if candidate.exists():
        return str(candidate)
    if found := shutil.which("moto_server"):
        return found
    pytest.fail(
        "moto_server not found (run scripts/test.sh, which installs it into .venv-moto, or set MOTO_SERVER_BIN)",
        pytrace=False,
    )


@dataclass
class MotoPeer:
    """moto_server with an IAM user (the warehouse's storage credential) allowed to do anything,
    and a role whose trust policy names that user's exact ARN (what sluice assumes to vend).
    Auth checks are ON once the fixture hands it out: every request must be SigV4-signed with a
    key moto issued (wrong secret, unknown key -> 403; bogus session token -> 400)."""

    endpoint: str
    bucket: str
    region: str
    user_arn: str
    access_key: str  # the IAM user's key (AKIA...)
    secret_key: str
    role_arn: str

    def client(self, service: str, key: str | None = None, secret: str | None = None, token: str | None = None):
        """A botocore client (botocore ships with PyIceberg's s3fs in the main venv; boto3 is not
        needed). Defaults to the IAM user's key."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=key if key is not None else self.access_key,
            aws_secret_access_key=secret if secret is not None else self.secret_key,
            aws_session_token=token,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def list_keys(self, prefix: str) -> list[str]:
        s3 = self.client("s3")
        keys: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            page = s3.list_objects_v2(**kwargs)
            keys += [obj["Key"] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(keys)
            kwargs["ContinuationToken"] = page["NextContinuationToken"]


def _moto_setup(endpoint: str, region: str) -> MotoPeer:
    """Bucket, IAM user + key, role; then auth checks on. Runs while moto accepts any key."""
    import botocore.session
    from botocore.config import Config

    def client(service: str):
        return botocore.session.get_session().create_client(
            service,
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=MOTO_SETUP_KEY[0],
            aws_secret_access_key=MOTO_SETUP_KEY[1],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    client("s3").create_bucket(Bucket=MOTO_BUCKET)
    iam = client("iam")
    user_arn = iam.create_user(UserName=MOTO_USER)["User"]["Arn"]
    iam.put_user_policy(
        UserName=MOTO_USER,
        PolicyName="everything",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName=MOTO_USER)["AccessKey"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole"}],
    }
    role_arn = iam.create_role(RoleName=MOTO_ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=MOTO_ROLE,
        PolicyName="bucket",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "s3:*",
                        "Resource": [f"arn:aws:s3:::{MOTO_BUCKET}", f"arn:aws:s3:::{MOTO_BUCKET}/*"],
                    }
                ],
            }
        ),
    )
    # The body is how many more requests pass unchecked ("inf" = checks off); text/plain matters.
    r = requests.post(
        endpoint + "/moto-api/reset-auth", data="0", headers={"Content-Type": "text/plain"}, timeout=10
    )
    assert r.status_code == 200, f"moto reset-auth: HTTP {r.status_code}: {r.text}"
    peer = MotoPeer(endpoint, MOTO_BUCKET, S3_REGION, user_arn, key["AccessKeyId"], key["SecretAccessKey"], role_arn)
    # Checks really are on: moto's set-up key no longer works, the user's key does.
    from botocore.exceptions import ClientError

    try:
        peer.client("s3", *MOTO_SETUP_KEY).list_objects_v2(Bucket=MOTO_BUCKET)
    except ClientError:
        pass
    else:
        raise AssertionError("moto auth checks did not turn on (the set-up key still works)")
    peer.list_keys("")
    return peer


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoPeer]:
    root = tmp_path_factory.mktemp("moto")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("MOTO_")}
    peer = start_peer(
        "moto",
        [_find_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
        root / "moto.log",
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            peer,
            lambda: requests.get(endpoint + "/moto-api/", timeout=2).status_code == 200,
            30,
            "GET /moto-api/ == 200",
        )
        yield _moto_setup(endpoint, S3_REGION)
    finally:
        peer.stop()


@dataclass
class Server:
    base_url: str
    port: int
    data_dir: Path
    key_id: str
    secret: str
    peer: Peer

    @property
    def auth(self) -> tuple[str, str]:
        return (self.key_id, self.secret)

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("auth", self.auth)
        kw.setdefault("timeout", 30)
        return requests.get(self.url(path), **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("auth", self.auth)
        kw.setdefault("timeout", 60)
        return requests.post(self.url(path), **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("auth", self.auth)
        kw.setdefault("timeout", 60)
        return requests.delete(self.url(path), **kw)

    def prefix(self, warehouse: str) -> str:
        r = self.get("/v1/config", params={"warehouse": warehouse})
        assert r.status_code == 200, r.text
        return r.json()["overrides"]["prefix"]


def _sluice_bin() -> str:
    path = os.environ.get("SLUICE_BIN") or str(REPO_ROOT / "target" / "debug" / "sluice")
    if not os.access(path, os.X_OK):
        pytest.fail(f"sluice binary not found or not executable: {path} (build it, or set SLUICE_BIN)", pytrace=False)
    return path


_SLUICE_LISTENING = re.compile(r"Sluice listening on http://127\.0\.0\.1:(\d+)")


def start_sluice(name: str, args: list[str], log_path: Path, env: dict[str, str]) -> tuple[Peer, str, int]:
    """`sluice serve --listen 127.0.0.1:0 <args>`, waited for until /health answers; returns
    the peer, its base URL and its port.

    The port comes from sluice's own startup log: a port picked here and passed in could be
    taken by another process (the Rust tests start many servers at once) before sluice binds
    it, and /health could then answer from that other server. The port in the log is one
    this sluice holds."""
    # start_peer appends to the log: a line from an earlier start there must not count.
    offset = log_path.stat().st_size if log_path.exists() else 0
    peer = start_peer(name, [_sluice_bin(), "serve", "--listen", "127.0.0.1:0", *args], log_path, env=env)
    port: list[int] = []

    def announced() -> bool:
        with open(log_path, "rb") as f:
            f.seek(offset)
            m = _SLUICE_LISTENING.search(f.read().decode(errors="replace"))
        if m:
            port.append(int(m.group(1)))
        return m is not None

    try:
        wait_until(peer, announced, HEALTH_TIMEOUT_S, "its 'Sluice listening on' log line")
        base = f"http://127.0.0.1:{port[0]}"
        wait_until(peer, lambda: requests.get(base + "/health", timeout=2).status_code == 200, HEALTH_TIMEOUT_S, "GET /health == 200")
    except BaseException:
        peer.stop()
        raise
    return peer, base, port[0]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("sluice")
    data_dir = root / "data"
    data_dir.mkdir()
    # The server reads its configuration from SLUICE_* variables, so pass none of the ambient
    # ones (e.g. SLUICE_BIN, set for this harness) - only what this fixture decides.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env = {
        **env,
        "SLUICE_BOOTSTRAP_ACCESS_KEY_ID": ADMIN_KEY_ID,
        "SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY": ADMIN_SECRET,
        "SLUICE_LOG_LEVEL": "info",
        # The suite fails authentication on purpose, all from 127.0.0.1: high enough that the
        # throttle runs without tripping (its own tests set a low limit).
        "SLUICE_AUTH_FAILURES_PER_MINUTE": "10000",
    }
    # Never let ambient AWS settings leak into the server under test.
    for k in list(env):
        if k.startswith("AWS_"):
            del env[k]
    if os.environ.get("E2E_KEEP_TMP"):
        print(f"sluice data dir: {data_dir}, log: {root / 'sluice.log'}")
    peer, base, port = start_sluice(
        "sluice",
        ["--s3-listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        root / "sluice.log",
        env,
    )
    try:
        yield Server(base, port, data_dir, ADMIN_KEY_ID, ADMIN_SECRET, peer)
    finally:
        peer.stop()
        if peer.proc.returncode not in (0, -signal.SIGTERM, None):
            print(f"sluice exited with code {peer.proc.returncode}; log tail:\n{peer.tail()}")


# --------------------------------------------------------------------------------------------
# warehouses and catalogs
# --------------------------------------------------------------------------------------------


@dataclass
class Warehouse:
    kind: str  # "file" | "s3"
    name: str
    server: Server
    client_props: dict[str, str]  # extra catalog properties the client needs for data access
    s3: S3Peer | None = None
    warehouse_id: str | None = None

    def catalog_props(self, **extra: str) -> dict[str, str]:
        return {
            "type": "rest",
            "uri": self.server.base_url,
            "credential": f"{self.server.key_id}:{self.server.secret}",
            "warehouse": self.name,
            **self.client_props,
            **extra,
        }

    def list_files(self, location: str) -> list[str]:
        """All objects/files stored under a table or namespace location (recursive)."""
        if self.kind == "file":
            from urllib.parse import unquote, urlparse

            parsed = urlparse(location)
            if parsed.scheme == "s3":
                # The embedded default is served through the S3 gateway: s3://default/<path>
                # is <data dir>/warehouse/<path> on the server's disk.
                assert parsed.netloc == self.name, location
                root = self.server.data_dir / "warehouse" / unquote(parsed.path).lstrip("/")
            else:
                assert parsed.scheme == "file", location
                root = Path(unquote(parsed.path))
            if not root.exists():
                return []
            return sorted(str(p) for p in root.rglob("*") if p.is_file())
        assert self.s3 is not None
        assert location.startswith(f"s3://{self.s3.bucket}/"), location
        key_prefix = location[len(f"s3://{self.s3.bucket}/"):].rstrip("/") + "/"
        return self.s3.list_keys(key_prefix)

    def list_files_on_disk(self, location: str) -> list[str]:
        """For S3: the regular files s3s-fs keeps under the location's directory."""
        assert self.kind == "s3" and self.s3 is not None
        key = location[len(f"s3://{self.s3.bucket}/"):].rstrip("/")
        root = self.s3.data_dir / self.s3.bucket / key
        if not root.exists():
            return []
        return sorted(str(p) for p in root.rglob("*") if p.is_file())


# Catalog property that sets PyIceberg's X-Iceberg-Access-Delegation header.
NO_DELEGATION_PROP = "header.X-Iceberg-Access-Delegation"


def s3_storage_profile(s3: S3Peer, key_prefix: str = S3_KEY_PREFIX, **overrides: Any) -> dict[str, Any]:
    profile = {
        "type": "s3",
        "bucket": s3.bucket,
        "key-prefix": key_prefix,
        "region": s3.region,
        "endpoint": s3.endpoint,
        "path-style-access": True,
        "flavor": "s3-compat",
        "sts-enabled": False,
    }
    profile.update(overrides)
    return profile


def s3_storage_credential(access_key: str, secret_key: str) -> dict[str, Any]:
    return {
        "type": "s3",
        "credential-type": "access-key",
        "aws-access-key-id": access_key,
        "aws-secret-access-key": secret_key,
    }


def s3_client_props(s3: S3Peer) -> dict[str, str]:
    """Catalog properties PyIceberg needs to reach data in an S3 warehouse on s3s-fs."""
    return {
        # The client brings its own S3 key, so it asks for no access delegation. PyIceberg sends
        # `X-Iceberg-Access-Delegation: vended-credentials` unless told otherwise, which sluice
        # answers on a warehouse without STS with remote signing; an empty value means "none",
        # so these clients use their own keys (test_delegation.py covers the default header).
        NO_DELEGATION_PROP: "",
        "s3.endpoint": s3.endpoint,
        "s3.access-key-id": s3.access_key,
        "s3.secret-access-key": s3.secret_key,
        "s3.region": s3.region,
        "s3.path-style-access": "true",
        # s3s-fs keeps per-object bookkeeping in files named after base64(bucket) + base64(key);
        # for a multipart upload the name also carries the upload id, which overflows the 255-byte
        # file-name limit once keys pass ~120 characters (and sluice's uuid-based table paths do).
        # PyArrow's S3 writer always starts a multipart upload; s3fs (fsspec) sends small files
        # with one PutObject, so use FsspecFileIO against this peer.
        "py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO",
    }


def create_warehouse(server: Server, body: dict[str, Any]) -> requests.Response:
    return server.post("/management/v1/warehouse", json=body)


@pytest.fixture(scope="session")
def file_warehouse(server: Server) -> Warehouse:
    return Warehouse(kind="file", name="default", server=server, client_props={})


@pytest.fixture(scope="session")
def s3_warehouse(server: Server, s3: S3Peer) -> Warehouse:
    name = "s3wh"
    r = create_warehouse(
        server,
        {
            "warehouse-name": name,
            "storage-profile": s3_storage_profile(s3),
            "storage-credential": s3_storage_credential(s3.access_key, s3.secret_key),
            "delete-profile": {"type": "hard"},
        },
    )
    assert r.status_code == 201, f"creating S3 warehouse: HTTP {r.status_code}: {r.text}"
    warehouse_id = r.json()["warehouse-id"]
    return Warehouse(kind="s3", name=name, server=server, client_props=s3_client_props(s3), s3=s3, warehouse_id=warehouse_id)


@pytest.fixture(scope="session", params=["file", "s3"])
def warehouse(request: pytest.FixtureRequest) -> Warehouse:
    return request.getfixturevalue(f"{request.param}_warehouse")


@pytest.fixture(scope="session")
def catalog(warehouse: Warehouse):
    from pyiceberg.catalog import load_catalog

    return load_catalog("sluice", **warehouse.catalog_props())


@pytest.fixture
def new_catalog(warehouse: Warehouse) -> Callable[[], Any]:
    """A factory for extra, independent catalog clients (own HTTP session and token)."""
    from pyiceberg.catalog import load_catalog

    return lambda: load_catalog("sluice", **warehouse.catalog_props())


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def ns(catalog) -> str:
    """A fresh, empty namespace for one test."""
    name = unique("ns")
    catalog.create_namespace(name)
    return name


# --------------------------------------------------------------------------------------------
# OIDC: the node oidc-provider peer and a second sluice configured for it
# (test_oidc_bearer.py). Both start only when a test asks for them.
# --------------------------------------------------------------------------------------------

OIDC_API_AUDIENCE = "urn:lakehouse:api"
OIDC_CLIENT = ("lake-client", "lake-secret")  # confidential client of the peer's server.mjs
_PEER_FIXTURES["oidc-provider"] = "oidc_provider"
_PEER_FIXTURES["sluice-oidc"] = "oidc_server"


def _oidc_peer_dir() -> Path:
    d = Path(os.environ.get("SLUICE_OIDC_PEER_DIR") or REPO_ROOT / ".peers" / "oidc")
    if not (d / "server.mjs").is_file() or not (d / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(
            f"the node oidc-provider peer is not installed in {d} "
            f"(run `tests/peers/oidc.sh install {d}`, or set SLUICE_OIDC_PEER_DIR)",
            pytrace=False,
        )
    if not shutil.which("node"):
        pytest.fail("node not found (the OIDC peer needs Node.js >= 18)", pytrace=False)
    return d


@dataclass
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str

    def client_credentials_token(self, scope: str = "lakehouse") -> str:
        """An RS256 JWT access token (aud urn:lakehouse:api) for the confidential client."""
        r = requests.post(
            self.issuer + "/token",
            auth=(self.client_id, self.client_secret),
            data={"grant_type": "client_credentials", "scope": scope},
            timeout=30,
        )
        assert r.status_code == 200, f"client_credentials at the provider: HTTP {r.status_code}: {r.text}"
        return r.json()["access_token"]


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    peer_dir = _oidc_peer_dir()
    root = tmp_path_factory.mktemp("oidc")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "JWKS_FILE"}
    env["PORT"] = str(port)
    issuer = f"http://127.0.0.1:{port}"

    def discovery() -> bool:
        return requests.get(issuer + "/.well-known/openid-configuration", timeout=2).status_code == 200

    # A node start now and then deadlocks before it listens (twice in about 10,000 starts on a
    # loaded machine; see crates/sluice-auth/tests/common/oidc_peer.rs): a hung start is
    # stopped and tried again on the same port; the last try reports through wait_until.
    for attempt in range(1, 4):
        peer = start_peer("oidc-provider", ["node", str(peer_dir / "server.mjs")], root / f"oidc-{attempt}.log", env=env)
        if attempt == 3 or becomes_ready(peer, discovery, 30) or peer.proc.poll() is not None:
            break
        peer.stop()
    try:
        wait_until(peer, discovery, 30, "GET /.well-known/openid-configuration == 200")
        yield OidcProvider(issuer, *OIDC_CLIENT)
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def oidc_server(tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider) -> Iterator[Server]:
    """A second `sluice serve` whose [oidc] section (TOML --config) trusts the provider's access
    tokens; users it has not seen are provisioned into Developers."""
    root = tmp_path_factory.mktemp("sluice-oidc")
    data_dir = root / "data"
    data_dir.mkdir()
    config = root / "sluice.toml"
    config.write_text(
        "[oidc]\n"
        f"url = {json.dumps(oidc_provider.issuer)}\n"
        f"client_id = {json.dumps(oidc_provider.client_id)}\n"
        f"client_secret = {json.dumps(oidc_provider.client_secret)}\n"
        f"allowed_audiences = [{json.dumps(OIDC_API_AUDIENCE)}]\n"
        'default_initial_groups = ["Developers"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_") and not k.startswith("AWS_")}
    env.update(
        {
            "SLUICE_BOOTSTRAP_ACCESS_KEY_ID": ADMIN_KEY_ID,
            "SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY": ADMIN_SECRET,
            "SLUICE_LOG_LEVEL": "info",
            "SLUICE_AUTH_FAILURES_PER_MINUTE": "10000",
        }
    )
    peer, base, port = start_sluice(
        "sluice-oidc",
        ["--config", str(config), "--s3-listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        root / "sluice.log",
        env,
    )
    try:
        yield Server(base, port, data_dir, ADMIN_KEY_ID, ADMIN_SECRET, peer)
    finally:
        peer.stop()
