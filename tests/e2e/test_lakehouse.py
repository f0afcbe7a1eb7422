"""The embedded lakehouse: PyIceberg with only the catalog URI and a Sluice key (no S3
settings of its own) creates, appends, reads, overwrites, deletes and drops with purge on the
`default` warehouse, which `sluice serve` serves through its S3 gateway. The client talks to
127.0.0.1 as if remote: the table's files reach it only through the temporary gateway
credentials vended with each table.
"""

from __future__ import annotations

import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.expressions import EqualTo

from conftest import unique
from util import SCHEMA, read_all, rows, sorted_pylist


def _lake(server):
    # Nothing but where the catalog is and the key: no warehouse, no S3 endpoint or keys.
    return load_catalog("lake", type="rest", uri=server.base_url, credential=f"{server.key_id}:{server.secret}")


def _files_on_disk(server, location: str) -> list[str]:
    assert location.startswith("s3://default/"), location
    root = server.data_dir / "warehouse" / location[len("s3://default/"):]
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_pyiceberg_uses_the_embedded_default_with_only_uri_and_key(server):
    catalog = _lake(server)
    ns = unique("lake")
    catalog.create_namespace(ns)
    table = catalog.create_table((ns, "events"), schema=SCHEMA)
    assert table.location().startswith("s3://default/"), table.location()
    # The client's FileIO got the gateway, path style and temporary credentials.
    props = table.io.properties
    assert props["s3.access-key-id"].startswith("ASIA"), sorted(props)
    assert props["s3.endpoint"].startswith("http://127.0.0.1:"), props["s3.endpoint"]
    assert "s3.session-token" in props

    table.append(rows(0, 10))
    assert sorted_pylist(read_all(catalog.load_table((ns, "events")))) == sorted_pylist(rows(0, 10))

    table = catalog.load_table((ns, "events"))
    table.overwrite(rows(100, 5))
    assert sorted_pylist(read_all(catalog.load_table((ns, "events")))) == sorted_pylist(rows(100, 5))

    table = catalog.load_table((ns, "events"))
    table.delete(EqualTo("id", 100))
    got = sorted_pylist(read_all(catalog.load_table((ns, "events"))))
    assert [r["id"] for r in got] == [101, 102, 103, 104]

    # Data files landed on the server's disk under the table's directory.
    files = _files_on_disk(server, table.location())
    assert any(f.endswith(".parquet") for f in files), files
    assert any(f.endswith(".metadata.json") for f in files), files

    catalog.purge_table((ns, "events"))
    assert not catalog.table_exists((ns, "events"))
    assert _files_on_disk(server, table.location()) == []


def test_temporary_credentials_are_refused_outside_their_table(server):
    """The vended credentials work with another S3 client (PyArrow's S3 filesystem here) for
    their own table only: another table's files are neither listed nor readable, and
    unsigned requests are refused."""
    import pyarrow.fs as pafs

    catalog = _lake(server)
    ns = unique("lake")
    catalog.create_namespace(ns)
    a = catalog.create_table((ns, "a"), schema=SCHEMA)
    b = catalog.create_table((ns, "b"), schema=SCHEMA)
    a.append(rows(0, 3))
    b.append(rows(0, 3))
    a, b = catalog.load_table((ns, "a")), catalog.load_table((ns, "b"))
    props = a.io.properties
    fs = pafs.S3FileSystem(
        access_key=props["s3.access-key-id"],
        secret_key=props["s3.secret-access-key"],
        session_token=props["s3.session-token"],
        endpoint_override=props["s3.endpoint"],
        region=props["s3.region"],
        scheme="http",
    )
    a_path = "default/" + a.location()[len("s3://default/"):]
    b_path = "default/" + b.location()[len("s3://default/"):]
    a_files = [f for f in fs.get_file_info(pafs.FileSelector(a_path, recursive=True)) if f.is_file]
    assert any(f.path.endswith(".parquet") for f in a_files), a_files
    assert fs.get_file_info(pafs.FileSelector(b_path, recursive=True, allow_not_found=True)) == []
    b_data = b.inspect.files().column("file_path").to_pylist()[0]
    try:
        fs.open_input_file(b_data[len("s3://"):]).read()
        raise AssertionError("read table b with credentials for table a")
    except OSError as e:
        assert "ACCESS_DENIED" in str(e), e
    with fs.open_input_file(a_files[0].path) as f:
        assert len(f.read()) > 0

    # An unsigned request is refused with an S3 error.
    r = requests.get(f"{props['s3.endpoint']}/{a_files[0].path}", timeout=10)
    assert r.status_code == 403, r.text
