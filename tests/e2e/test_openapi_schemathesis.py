"""The served management OpenAPI document against the server itself, with schemathesis.

A server of its own (schemathesis creates and deletes users, groups, policies and
warehouses at random), driven with the admin key and every check schemathesis has
(`--checks all`): no 5xx, only documented statuses, JSON where JSON is documented, bodies
that match their schemas, requests that violate the document refused
(negative_data_rejection) and requests that match it accepted (positive_data_acceptance:
the document is exactly as strict as the server). Examples are bounded so the run takes a
few minutes; SCHEMATHESIS_MAX_EXAMPLES raises the bound for a longer run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import conftest
from conftest import ADMIN_KEY_ID, ADMIN_SECRET

# The one exception to `--checks all`. Creating a warehouse, changing its storage and
# replacing its credential probe the storage live (write, read, delete an object) before
# anything is stored, and a credential must fit its profile's type: no schema can tell a
# reachable bucket from an unreachable one, so a schema-valid request may rightly get 400
# there (each operation's description says so). For these three operations only, the
# positive_data_acceptance check also accepts 400; every other check stays as it is.
PROBED_OPERATIONS_CONFIG = """
[[operations]]
include-name = [
  "POST /management/v1/warehouse",
  "POST /management/v1/warehouse/{id}/storage",
  "POST /management/v1/warehouse/{id}/storage-credential",
]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]
"""


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sluice-schemathesis")
    data_dir = root / "data"
    data_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_") and not k.startswith("AWS_")}
    env.update(
        {
            "SLUICE_BOOTSTRAP_ACCESS_KEY_ID": ADMIN_KEY_ID,
            "SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY": ADMIN_SECRET,
            "SLUICE_LOG_LEVEL": "info",
            "SLUICE_AUTH_FAILURES_PER_MINUTE": "10000",
        }
    )
    peer, base, _port = conftest.start_sluice(
        "sluice-schemathesis",
        ["--s3-listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        root / "sluice.log",
        env,
    )
    try:
        yield base, peer
    finally:
        peer.stop()


@pytest.mark.timeout(600)
def test_management_api_conforms_to_its_openapi_document(fresh_server, tmp_path: Path) -> None:
    base, peer = fresh_server
    exe = Path(sys.executable).parent / "schemathesis"
    assert exe.exists(), f"schemathesis is not installed in {Path(sys.executable).parent} (tests/e2e/requirements.txt)"
    config = tmp_path / "schemathesis.toml"
    config.write_text(PROBED_OPERATIONS_CONFIG)
    cmd = [
        str(exe),
        "--config-file",
        str(config),
        "run",
        f"{base}/management/v1/openapi.json",
        "--url",
        base,
        "--auth",
        f"{ADMIN_KEY_ID}:{ADMIN_SECRET}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"),
        "--seed",
        os.environ.get("SCHEMATHESIS_SEED", "14"),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    # Keep schemathesis from writing its hypothesis database into the repository.
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=540)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"schemathesis found problems:\n{out[-20000:]}\n--- server log tail ---\n{peer.tail()}"
    # It must really have exercised the API (a schema that failed to load also exits early).
    assert "passed" in out.lower(), out[-5000:]
