"""Fixtures for the web console's browser suite.

Real peers only, on 127.0.0.1 with ephemeral ports, started once per session and stopped at
the end: OpenLDAP slapd (tests/peers/slapd), the node oidc-provider (tests/peers/oidc, installed
into .peers/oidc), s3s-fs, and one `sluice serve` configured for LDAP and OIDC. Each test gets
a fresh headless Chromium (Debian's `chromium` + `chromedriver`) driven over WebDriver.

Environment:
  SLUICE_BIN            the sluice binary (default: <repo>/target/debug/sluice)
  S3S_FS_BIN            s3s-fs (default: on PATH)
  SLUICE_OIDC_PEER_DIR  the installed OIDC peer (default: <repo>/.peers/oidc)
  CHROMIUM_BIN / CHROMEDRIVER_BIN   default /usr/bin/chromium, /usr/bin/chromedriver
  CONSOLE_OUT_DIR       screenshots (default: <repo>/target/test-logs/console)
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = Path(os.environ.get("CONSOLE_OUT_DIR") or REPO_ROOT / "target" / "test-logs" / "console")

ADMIN_KEY_ID = "AKIACONSOLEADMIN0001"
ADMIN_SECRET = "cOnsole/Admin+Secret0123456789abcdefghij"
assert len(ADMIN_KEY_ID) == 20 and len(ADMIN_SECRET) == 40

S3_ACCESS_KEY = "S3CONSOLEACCESSKEY"
S3_SECRET_KEY = "s3console-secret-key-0123456789"
S3_BUCKET = "console"
OIDC_CLIENT = ("lake-client", "lake-secret")
OIDC_AUDIENCE = "urn:lakehouse:api"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_connect(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover
        pass


class Proc:
    def __init__(self, name: str, argv: list[str], log: Path, env: dict | None = None, cwd: Path | None = None):
        self.name, self.log = name, log
        self._f = open(log, "ab", buffering=0)
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._f, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, preexec_fn=_die_with_parent,
        )

    def becomes_ready(self, ready: Callable[[], bool], timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if ready():
                    return True
            except (requests.RequestException, OSError):
                pass
            time.sleep(0.1)
        return False

    def wait_ready(self, ready: Callable[[], bool], timeout: float = 30) -> None:
        if self.becomes_ready(ready, timeout):
            return
        self.stop()
        pytest.exit(f"{self.name} did not start; log {self.log}:\n{self.log.read_text(errors='replace')[-4000:]}", 1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._f.close()


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    OUT_DIR.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="sluice-console-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def slapd(tmp_root: Path) -> Iterator[str]:
    data = tmp_root / "slapd"
    script = REPO_ROOT / "tests" / "peers" / "slapd"
    # The port picked can be taken before slapd binds it (start.sh then fails): a new one.
    failures = []
    for _ in range(3):
        port = free_port()
        out = subprocess.run(["bash", str(script / "start.sh"), str(data), str(port)], capture_output=True, text=True)
        if out.returncode == 0:
            break
        failures.append(f"port {port}: {out.stdout}\n{out.stderr}")
        subprocess.run(["bash", str(script / "stop.sh"), str(data)], capture_output=True)
    else:
        pytest.exit("slapd did not start:\n" + "\n".join(failures), 1)
    yield f"ldap://127.0.0.1:{port}/"
    subprocess.run(["bash", str(script / "stop.sh"), str(data)], capture_output=True)


@pytest.fixture(scope="session")
def oidc(tmp_root: Path) -> Iterator[str]:
    peer_dir = Path(os.environ.get("SLUICE_OIDC_PEER_DIR") or REPO_ROOT / ".peers" / "oidc")
    if not (peer_dir / "node_modules" / "oidc-provider").is_dir():
        pytest.exit(f"OIDC peer not installed in {peer_dir} (bash tests/peers/oidc.sh install {peer_dir})", 1)
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    env.pop("JWKS_FILE", None)
    issuer = f"http://127.0.0.1:{port}"

    def discovery() -> bool:
        return requests.get(issuer + "/.well-known/openid-configuration", timeout=2).ok

    # A node start now and then deadlocks before it listens (twice in about 10,000 starts on a
    # loaded machine; see crates/sluice-auth/tests/common/oidc_peer.rs): stop it and try again.
    for attempt in range(1, 4):
        p = Proc("oidc-provider", ["node", str(peer_dir / "server.mjs")], tmp_root / f"oidc-{attempt}.log", env=env, cwd=peer_dir)
        if attempt == 3 or p.becomes_ready(discovery) or p.proc.poll() is not None:
            break
        p.stop()
    p.wait_ready(discovery)
    yield issuer
    p.stop()


@dataclass
class S3:
    endpoint: str
    bucket: str


@pytest.fixture(scope="session")
def s3(tmp_root: Path) -> Iterator[S3]:
    data = tmp_root / "s3"
    (data / S3_BUCKET).mkdir(parents=True)
    port = free_port()
    binary = os.environ.get("S3S_FS_BIN") or shutil.which("s3s-fs") or str(Path.home() / ".cargo/bin/s3s-fs")
    p = Proc("s3s-fs", [binary, "--host", "127.0.0.1", "--port", str(port), "--access-key", S3_ACCESS_KEY,
                        "--secret-key", S3_SECRET_KEY, str(data)], tmp_root / "s3s-fs.log")
    p.wait_ready(lambda: _can_connect(port), 15)
    yield S3(f"http://127.0.0.1:{port}", S3_BUCKET)
    p.stop()


@dataclass
class Server:
    base: str
    log: Path
    data_dir: Path

    def local_path(self, location: str) -> Path:
        """Where a location of the embedded default lies on the server's disk: that warehouse
        is served through the S3 gateway (`s3://default/<path>` is `<data_dir>/warehouse/<path>`)."""
        prefix = "s3://default/"
        assert location.startswith(prefix), location
        return self.data_dir / "warehouse" / location[len(prefix):]

    def api(self, method: str, path: str, auth=(ADMIN_KEY_ID, ADMIN_SECRET), **kw) -> requests.Response:
        return requests.request(method, self.base + path, auth=auth, timeout=30, **kw)


_SLUICE_LISTENING = re.compile(r"Sluice listening on (http://127\.0\.0\.1:\d+)")


def start_sluice(args: list[str], log: Path, env: dict[str, str]) -> tuple[Proc, str]:
    """`sluice serve --listen 127.0.0.1:0 <args>`, waited for until /health answers; returns
    the process and its base URL.

    The port comes from sluice's own startup log: a port picked here and passed in could be
    taken by another process (the Rust tests start many servers at once) before sluice binds
    it, and /health could then answer from that other server. The port in the log is one
    this sluice holds."""
    binary = os.environ.get("SLUICE_BIN") or str(REPO_ROOT / "target" / "debug" / "sluice")
    # Proc appends to the log: a line from an earlier start there must not count.
    offset = log.stat().st_size if log.exists() else 0
    p = Proc("sluice", [binary, "serve", "--listen", "127.0.0.1:0", *args], log, env=env)
    base: list[str] = []

    def announced() -> bool:
        with open(log, "rb") as f:
            f.seek(offset)
            m = _SLUICE_LISTENING.search(f.read().decode(errors="replace"))
        if m:
            base.append(m.group(1))
        return m is not None

    p.wait_ready(announced)
    p.wait_ready(lambda: requests.get(base[0] + "/health", timeout=2).ok)
    return p, base[0]


@pytest.fixture(scope="session")
def server(tmp_root: Path, slapd: str, oidc: str, s3: S3) -> Iterator[Server]:
    data = tmp_root / "sluice"
    data.mkdir()
    config = tmp_root / "server.toml"
    config.write_text(
        f"""
[ldap]
server_endpoint = "{slapd}"
bind_dn = "cn=svc,dc=example,dc=org"
bind_password = "svcpass"
user_base_dn = "ou=people,dc=example,dc=org"
user_filter = "(objectClass=inetOrgPerson)"
default_user_group = "Viewers"
connection_timeout_seconds = 10
request_timeout_seconds = 10

[oidc]
url = "{oidc}"
client_id = "{OIDC_CLIENT[0]}"
client_secret = "{OIDC_CLIENT[1]}"
allowed_audiences = ["{OIDC_AUDIENCE}"]
initial_groups_claim_name = "groups"
default_initial_groups = ["Viewers"]
scopes = ["openid", "profile", "email", "groups"]
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICE_", "AWS_"))}
    env.update({
        "SLUICE_CONFIG": str(config),
        "SLUICE_BOOTSTRAP_ACCESS_KEY_ID": ADMIN_KEY_ID,
        "SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY": ADMIN_SECRET,
        "SLUICE_AUTH_FAILURES_PER_MINUTE": "10000",
    })
    p, base = start_sluice(["--s3-listen", "127.0.0.1:0", "--data-dir", str(data)], tmp_root / "sluice.log", env)
    yield Server(base, p.log, data)
    p.stop()


# --------------------------------------------------------------------------------------------
# the browser
# --------------------------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator["object"]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    # The machine's network is closed: no background connections, no GPU, a fresh profile.
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,800", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"),
                      log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
