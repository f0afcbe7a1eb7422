"""ADLS Gen2 warehouses end to end: PyIceberg (FsspecFileIO → adlfs) against a real Azurite,
with NO account key on the client: every data access uses the SAS token sluice vends.

Azurite enforces SAS signatures, permissions and expiry, but has no hierarchical namespace,
so it cannot scope a SAS to one table's directory (`sr=d`). The warehouse here therefore opts
in to container-wide SAS tokens (`allow-container-wide-sas`); the directory-SAS path and the
refusal without the opt-in are covered by the Rust tests (crates/sluice-storage/tests/
adls_storage.rs, crates/sluice-server/tests/adls.rs).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs

import pytest
from pyiceberg.catalog import load_catalog

import conftest
from conftest import REPO_ROOT, Server, create_warehouse, free_port, start_peer, unique, wait_until
from principals import create_user
from util import SCHEMA, read_all, rows, sorted_pylist

ACCOUNT = "devstoreaccount1"
# Azurite's well-known account key (public, documented by Microsoft).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
FILESYSTEM = "lake"

conftest._PEER_FIXTURES["azurite"] = "azurite"


class AzuritePeer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.blob_endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"

    def container(self):
        from azure.storage.blob import ContainerClient

        return ContainerClient(self.blob_endpoint, FILESYSTEM, credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY})

    def list_blobs(self, prefix: str) -> list[str]:
        return sorted(b.name for b in self.container().list_blobs(name_starts_with=prefix))


def _azurite_bin() -> str:
    folder = Path(os.environ.get("SLUICE_AZURITE_DIR") or REPO_ROOT / ".peers" / "azurite")
    path = folder / "node_modules" / ".bin" / "azurite-blob"
    if not path.exists():
        pytest.fail(f"Azurite not found at {path} (bash tests/peers/azurite.sh install)", pytrace=False)
    return str(path)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuritePeer]:
    root = tmp_path_factory.mktemp("azurite")
    port = free_port()
    peer = start_peer(
        "azurite",
        [_azurite_bin(), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(root / "data"),
         "--disableTelemetry", "--skipApiVersionCheck"],
        root / "azurite.log",
    )
    try:
        az = AzuritePeer(port)
        wait_until(peer, lambda: conftest._can_connect(port), 30.0, "the blob port to accept connections")
        az.container().create_container()
        yield az
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def adls_warehouse(server: Server, azurite: AzuritePeer) -> str:
    name = "adlswh"
    r = create_warehouse(
        server,
        {
            "warehouse-name": name,
            "storage-profile": {
                "type": "adls",
                "account-name": ACCOUNT,
                "filesystem": FILESYSTEM,
                "key-prefix": "wh",
                "host": azurite.host,
                "allow-container-wide-sas": True,
            },
            "storage-credential": {"type": "az", "credential-type": "shared-access-key", "key": ACCOUNT_KEY},
            "delete-profile": {"type": "hard"},
        },
    )
    assert r.status_code == 201, f"creating ADLS warehouse: HTTP {r.status_code}: {r.text}"
    assert ACCOUNT_KEY not in r.text
    return name


def keyless_catalog(server: Server, warehouse: str, key_id: str, secret: str):
    """uri, credential and warehouse only; PyIceberg asks for vended credentials by default."""
    return load_catalog("sluice", type="rest", uri=server.base_url, credential=f"{key_id}:{secret}", warehouse=warehouse)


def sas_of(props: dict[str, str], azurite: AzuritePeer) -> str:
    sas = props[f"adls.sas-token.{ACCOUNT}.{azurite.host}"]
    assert props["adls.sas-token"] == sas
    assert int(props[f"adls.sas-token-expires-at-ms.{ACCOUNT}.{azurite.host}"]) > 0
    assert not any(isinstance(v, str) and ACCOUNT_KEY in v for v in props.values()), "the account key reached the client"
    return sas


def test_pyiceberg_round_trip_with_vended_sas(server: Server, azurite: AzuritePeer, adls_warehouse: str):
    cat = keyless_catalog(server, adls_warehouse, server.key_id, server.secret)
    ns = unique("ns")
    cat.create_namespace(ns)
    table = cat.create_table((ns, "t"), schema=SCHEMA)
    assert table.location().startswith(f"abfss://{FILESYSTEM}@{ACCOUNT}.{azurite.host}/wh/"), table.location()
    sas = sas_of(table.io.properties, azurite)
    assert parse_qs(sas)["sp"] == ["racwdl"], sas

    table.append(rows(0, 10))
    table.append(rows(10, 5))
    again = keyless_catalog(server, adls_warehouse, server.key_id, server.secret).load_table((ns, "t"))
    assert sorted_pylist(read_all(again)) == sorted_pylist(rows(0, 15))

    # The files really are in Azurite, below the table's location.
    key_prefix = table.location().split(f"{azurite.host}/", 1)[1] + "/"
    blobs = azurite.list_blobs(key_prefix)
    assert any(b.endswith(".parquet") for b in blobs), blobs
    assert any(b.endswith(".metadata.json") for b in blobs), blobs

    # Dropping with purge (hard delete profile) removes them.
    cat.purge_table((ns, "t"))
    deadline = time.monotonic() + 20
    while azurite.list_blobs(key_prefix) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert azurite.list_blobs(key_prefix) == []


def test_reader_sas_cannot_write(server: Server, azurite: AzuritePeer, adls_warehouse: str):
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import ContainerClient

    admin = keyless_catalog(server, adls_warehouse, server.key_id, server.secret)
    ns = unique("ns")
    admin.create_namespace(ns)
    admin.create_table((ns, "t"), schema=SCHEMA).append(rows(0, 3))

    viewer = create_user(server, "adlsviewer", groups=("Viewers",))
    vcat = keyless_catalog(server, adls_warehouse, viewer.key_id, viewer.secret)
    seen = vcat.load_table((ns, "t"))
    sas = sas_of(seen.io.properties, azurite)
    assert parse_qs(sas)["sp"] == ["rl"], sas
    # Reads work with the read-only SAS …
    assert sorted_pylist(read_all(seen)) == sorted_pylist(rows(0, 3))
    # … writes are refused by the storage itself (the catalog would refuse the commit too,
    # but the point here is that the vended token cannot write data files).
    client = ContainerClient(azurite.blob_endpoint, FILESYSTEM, credential=sas)
    location_key = seen.location().split(f"{azurite.host}/", 1)[1]
    with pytest.raises(HttpResponseError) as e:
        client.upload_blob(f"{location_key}/data/evil.parquet", b"PAR1", overwrite=True)
    assert e.value.status_code == 403
    assert azurite.list_blobs(f"{location_key}/data/evil") == []
