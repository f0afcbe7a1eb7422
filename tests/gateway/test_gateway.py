"""The S3 gateway with unmodified S3 clients: boto3 (default checksums, SigV4 and SigV2,
presigned URLs), the AWS CLI, DuckDB httpfs; authorization by the catalog's policies; bad input."""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import io
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import botocore
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.config import Config
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import (
    ADMIN_KEY,
    ADMIN_SECRET,
    MGMT,
    S3S_BUCKET,
    S3S_KEY,
    S3S_PREFIX,
    create_policy,
    create_table,
    create_user,
    client,
    unique,
    warehouse_key,
)


def error_of(call, *args, **kw) -> tuple[str, int]:
    with pytest.raises(ClientError) as e:
        call(*args, **kw)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def signed(server, method: str, path: str, body: bytes = b"", query: str = "") -> requests.Response:
    """A raw request signed with SigV4 by botocore's signer (for bodies no SDK would send)."""
    url = f"{server.s3}{path}" + (f"?{query}" if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()})
    S3SigV4Auth(Credentials(ADMIN_KEY, ADMIN_SECRET), "s3", "us-east-1").add_auth(req)
    return requests.request(method, url, data=body, headers=dict(req.headers), timeout=60)


# ------------------------------------------------------------------------------------- boto3


def test_buckets_are_the_warehouses(server, admin_s3):
    names = [b["Name"] for b in admin_s3.list_buckets()["Buckets"]]
    assert "default" in names
    admin_s3.head_bucket(Bucket="default")
    loc = admin_s3.get_bucket_location(Bucket="default")
    assert loc.get("LocationConstraint") in (None, "")
    assert error_of(admin_s3.head_bucket, Bucket="no-such-warehouse")[1] == 404
    assert error_of(admin_s3.list_objects_v2, Bucket="no-such-warehouse") == ("NoSuchBucket", 404)


def trailer_over_http(s3) -> None:
    """Has botocore send its default checksum as an aws-chunked trailer
    (STREAMING-UNSIGNED-PAYLOAD-TRAILER), as it does by default over HTTPS: the test gateway
    speaks plain HTTP on loopback, where botocore would put the checksum in a header instead."""

    def to_trailer(params, **_):
        alg = params.get("context", {}).get("checksum", {}).get("request_algorithm")
        if isinstance(alg, dict):
            alg["in"] = "trailer"

    s3.meta.events.register("before-call.s3.PutObject", to_trailer)
    s3.meta.events.register("before-call.s3.UploadPart", to_trailer)


def test_put_get_with_default_checksums_uses_the_trailer(server):
    admin_s3 = client(server)
    trailer_over_http(admin_s3)
    seen: list[str] = []
    admin_s3.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: seen.append(request.headers.get("x-amz-content-sha256", b""))
    )
    key = f"staging/{unique('obj')}.bin"
    body = os.urandom(300_000)
    put = admin_s3.put_object(Bucket="default", Key=key, Body=body)
    assert put["ETag"]
    assert any(b"STREAMING-UNSIGNED-PAYLOAD-TRAILER" in (s if isinstance(s, bytes) else s.encode()) for s in seen), seen
    got = admin_s3.get_object(Bucket="default", Key=key)
    assert got["Body"].read() == body
    assert got["ContentLength"] == len(body)
    head = admin_s3.head_object(Bucket="default", Key=key)
    assert head["ContentLength"] == len(body) and head["ETag"] == got["ETag"]
    # Ranged and conditional reads.
    r = admin_s3.get_object(Bucket="default", Key=key, Range="bytes=100-199")
    assert r["Body"].read() == body[100:200] and r["ContentRange"] == f"bytes 100-199/{len(body)}"
    assert admin_s3.get_object(Bucket="default", Key=key, Range="bytes=-10")["Body"].read() == body[-10:]
    assert error_of(admin_s3.get_object, Bucket="default", Key=key, IfNoneMatch=got["ETag"])[1] == 304
    assert error_of(admin_s3.get_object, Bucket="default", Key=key, IfMatch='"nope"')[1] == 412
    # Conditional create.
    assert error_of(admin_s3.put_object, Bucket="default", Key=key, Body=b"x", IfNoneMatch="*")[1] == 412
    admin_s3.delete_object(Bucket="default", Key=key)
    assert error_of(admin_s3.get_object, Bucket="default", Key=key) == ("NoSuchKey", 404)


def test_large_reads_of_a_file_warehouse_are_exact_and_outlive_a_delete(server, admin_s3):
    """GETs of a file warehouse go out with sendfile(2) from mappings of at most 64 MiB: a body
    over two of them, ranges across the seam, parallel ranged reads on pooled connections, and a
    read that goes on while the object is deleted and rewritten all return the stored bytes."""
    key = f"staging/{unique('big')}.bin"
    seam = 64 * 1024 * 1024
    body = os.urandom(seam + 4099)
    admin_s3.upload_fileobj(io.BytesIO(body), "default", key)
    got = admin_s3.get_object(Bucket="default", Key=key)
    assert got["ContentLength"] == len(body) and got["Body"].read() == body
    for first, last in ((0, 0), (seam - 10, seam + 10), (4095, 4097), (seam, len(body) - 1)):
        r = admin_s3.get_object(Bucket="default", Key=key, Range=f"bytes={first}-{last}")
        assert r["Body"].read() == body[first : last + 1], (first, last)
    assert admin_s3.get_object(Bucket="default", Key=key, Range="bytes=-5000")["Body"].read() == body[-5000:]

    def ranged(i: int) -> bool:
        first = i * 7_000_003
        last = min(first + 9_000_000, len(body) - 1)
        return admin_s3.get_object(Bucket="default", Key=key, Range=f"bytes={first}-{last}")["Body"].read() == body[first : last + 1]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(pool.map(ranged, range(10)))
    # The response keeps the file it started with open.
    streaming = admin_s3.get_object(Bucket="default", Key=key)["Body"]
    head = streaming.read(1 << 20)
    admin_s3.delete_object(Bucket="default", Key=key)
    admin_s3.put_object(Bucket="default", Key=key, Body=b"replaced")
    assert head + streaming.read() == body
    assert admin_s3.get_object(Bucket="default", Key=key)["Body"].read() == b"replaced"
    admin_s3.delete_object(Bucket="default", Key=key)


def test_content_md5_and_checksum_mismatch_store_nothing(server, admin_s3):
    key = f"staging/{unique('bad')}"
    code, status = error_of(admin_s3.put_object, Bucket="default", Key=key, Body=b"hello", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
    assert (code, status) == ("BadDigest", 400)
    code, status = error_of(admin_s3.put_object, Bucket="default", Key=key, Body=b"hello", ChecksumCRC32="AAAAAA==")
    assert status == 400, code
    assert error_of(admin_s3.head_object, Bucket="default", Key=key)[1] == 404


def test_sigv2_client(server):
    v2 = client(server, signature_version="s3")
    key = f"staging/{unique('v2')}"
    v2.put_object(Bucket="default", Key=key, Body=b"signed the old way")
    assert v2.get_object(Bucket="default", Key=key)["Body"].read() == b"signed the old way"
    v2.delete_object(Bucket="default", Key=key)
    url = v2.generate_presigned_url("get_object", Params={"Bucket": "default", "Key": "nope"}, ExpiresIn=60)
    assert "Signature=" in url
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url)
    assert e.value.code == 404


def test_presigned_get_and_put_with_plain_http(server, admin_s3):
    key = f"staging/{unique('presigned')}"
    put_url = admin_s3.generate_presigned_url("put_object", Params={"Bucket": "default", "Key": key}, ExpiresIn=300)
    r = requests.put(put_url, data=b"via presigned put", timeout=30)
    assert r.status_code == 200, r.text
    get_url = admin_s3.generate_presigned_url("get_object", Params={"Bucket": "default", "Key": key}, ExpiresIn=300)
    assert urllib.request.urlopen(get_url).read() == b"via presigned put"
    # curl, too, where the machine has it.
    curl = subprocess.run(["curl", "-sf", get_url], capture_output=True) if shutil_which("curl") else None
    if curl is not None:
        assert curl.returncode == 0 and curl.stdout == b"via presigned put"
    # A tampered URL and an expired one are refused.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(get_url.replace(key, key + "x"))
    assert e.value.code == 403
    expired = [
        c.generate_presigned_url("get_object", Params={"Bucket": "default", "Key": key}, ExpiresIn=1)
        for c in (admin_s3, client(server, signature_version="s3v4"))  # SigV2 and SigV4
    ]
    time.sleep(2.5)
    for url in expired:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url)
        assert e.value.code == 403, url
    # SigV4 presigned URLs live at most seven days, as on S3 (botocore presigns with SigV2
    # unless told otherwise).
    v4 = client(server, signature_version="s3v4")
    assert "X-Amz-Signature=" in v4.generate_presigned_url("get_object", Params={"Bucket": "default", "Key": key}, ExpiresIn=60)
    too_long = v4.generate_presigned_url("get_object", Params={"Bucket": "default", "Key": key}, ExpiresIn=604801)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(too_long)
    assert e.value.code == 400 and b"AuthorizationQueryParametersError" in e.value.read()
    week = v4.generate_presigned_url("get_object", Params={"Bucket": "default", "Key": key}, ExpiresIn=604800)
    assert urllib.request.urlopen(week).read() == b"via presigned put"


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def test_wrong_secret_and_unknown_key_are_403(server):
    assert error_of(client(server, secret="x" * 40).list_buckets) == ("SignatureDoesNotMatch", 403)
    assert error_of(client(server, key="AKIAAAAAAAAAAAAAAAAA").list_buckets) == ("InvalidAccessKeyId", 403)
    r = requests.get(server.s3 + "/default", timeout=10)
    assert r.status_code == 403 and b"AccessDenied" in r.content, r.text
    log = server.log_text()
    assert "S3 gateway request refused (403)" in log and ADMIN_KEY in log
    assert "unknown access key" in log and "AKIAAAAAAAAAAAAAAAAA" in log
    assert ADMIN_SECRET not in log


def test_delete_objects_reports_per_key(server, admin_s3):
    keys = [f"staging/del/{i}" for i in range(5)]
    for k in keys:
        admin_s3.put_object(Bucket="default", Key=k, Body=b"x")
    out = admin_s3.delete_objects(
        Bucket="default", Delete={"Objects": [{"Key": k} for k in keys] + [{"Key": "staging/../etc"}]}
    )
    assert sorted(d["Key"] for d in out["Deleted"]) == keys
    assert [e["Key"] for e in out["Errors"]] == ["staging/../etc"]
    assert "Contents" not in admin_s3.list_objects_v2(Bucket="default", Prefix="staging/del/")


def test_copy_within_and_across_warehouses(server, admin_s3, s3_warehouse):
    src = f"staging/{unique('src')}"
    admin_s3.put_object(Bucket="default", Key=src, Body=b"copy me")
    admin_s3.copy_object(Bucket="default", Key=src + ".copy", CopySource={"Bucket": "default", "Key": src})
    assert admin_s3.get_object(Bucket="default", Key=src + ".copy")["Body"].read() == b"copy me"
    admin_s3.copy_object(Bucket=s3_warehouse, Key="copied/x", CopySource={"Bucket": "default", "Key": src})
    assert admin_s3.get_object(Bucket=s3_warehouse, Key="copied/x")["Body"].read() == b"copy me"


def test_paginated_listing_over_2500_keys(server, admin_s3):
    prefix = f"staging/{unique('many')}/"
    keys = [f"{prefix}{i:05d}" for i in range(2500)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: admin_s3.put_object(Bucket="default", Key=k, Body=b""), keys))
    listed = []
    for page in admin_s3.get_paginator("list_objects_v2").paginate(Bucket="default", Prefix=prefix, PaginationConfig={"PageSize": 1000}):
        assert page["KeyCount"] <= 1000
        listed += [o["Key"] for o in page.get("Contents", [])]
    assert listed == keys
    v1 = []
    for page in admin_s3.get_paginator("list_objects").paginate(Bucket="default", Prefix=prefix):
        v1 += [o["Key"] for o in page.get("Contents", [])]
    assert v1 == keys
    after = admin_s3.list_objects_v2(Bucket="default", Prefix=prefix, StartAfter=keys[2489])
    assert [o["Key"] for o in after["Contents"]] == keys[2490:]
    top = admin_s3.list_objects_v2(Bucket="default", Prefix="staging/", Delimiter="/")
    assert {"Prefix": prefix} in top["CommonPrefixes"]
    enc = admin_s3.list_objects_v2(Bucket="default", Prefix=prefix, MaxKeys=1, EncodingType="url")
    assert enc["Contents"][0]["Key"] == keys[0]


def test_multipart_upload_with_boto3(server, admin_s3):
    key = f"staging/{unique('mpu')}"
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1234)]
    up = admin_s3.create_multipart_upload(Bucket="default", Key=key)["UploadId"]
    assert up in [u["UploadId"] for u in admin_s3.list_multipart_uploads(Bucket="default").get("Uploads", [])]
    etags = []
    for i, p in enumerate(parts, 1):
        etags.append(admin_s3.upload_part(Bucket="default", Key=key, UploadId=up, PartNumber=i, Body=p)["ETag"])
        assert etags[-1].strip('"') == hashlib.md5(p).hexdigest()
    listed = admin_s3.list_parts(Bucket="default", Key=key, UploadId=up)["Parts"]
    assert [p["PartNumber"] for p in listed] == [1, 2]
    code, _ = error_of(
        admin_s3.complete_multipart_upload,
        Bucket="default",
        Key=key,
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]},
    )
    assert code == "InvalidPart"
    admin_s3.complete_multipart_upload(
        Bucket="default", Key=key, UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": i, "ETag": t} for i, t in enumerate(etags, 1)]},
    )
    assert admin_s3.get_object(Bucket="default", Key=key)["Body"].read() == b"".join(parts)
    # Staging objects are neither listed nor left behind.
    assert not [o for o in admin_s3.list_objects_v2(Bucket="default").get("Contents", []) if ".sluice-uploads" in o["Key"]]
    assert error_of(admin_s3.get_object, Bucket="default", Key=f".sluice-uploads/{up}/key")[1] == 403
    up2 = admin_s3.create_multipart_upload(Bucket="default", Key=key + "2")["UploadId"]
    admin_s3.abort_multipart_upload(Bucket="default", Key=key + "2", UploadId=up2)
    assert error_of(admin_s3.list_parts, Bucket="default", Key=key + "2", UploadId=up2)[0] == "NoSuchUpload"


# ----------------------------------------------------------------------------------- AWS CLI


def aws(server, *args: str, key: str = ADMIN_KEY, secret: str = ADMIN_SECRET) -> subprocess.CompletedProcess:
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    cli = Path(sys.executable).parent / "aws"
    return subprocess.run([str(cli), "--endpoint-url", server.s3, "s3", *args], env=env, capture_output=True, text=True, timeout=600)


def test_aws_cli_cp_sync_ls_rm(server, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(1024 * 1024))
    prefix = f"staging/{unique('cli')}"
    r = aws(server, "cp", str(big), f"s3://default/{prefix}/big.bin")
    assert r.returncode == 0, r.stderr
    back = tmp_path / "back.bin"
    r = aws(server, "cp", f"s3://default/{prefix}/big.bin", str(back))
    assert r.returncode == 0, r.stderr
    assert hashlib.md5(back.read_bytes()).digest() == hashlib.md5(big.read_bytes()).digest()
    src = tmp_path / "tree"
    (src / "a" / "b").mkdir(parents=True)
    for n in ("a/1.txt", "a/b/2.txt", "3.txt"):
        (src / n).write_text(n)
    r = aws(server, "sync", str(src), f"s3://default/{prefix}/tree")
    assert r.returncode == 0, r.stderr
    r = aws(server, "ls", "--recursive", f"s3://default/{prefix}/")
    assert r.returncode == 0, r.stderr
    for n in ("tree/a/1.txt", "tree/a/b/2.txt", "tree/3.txt", "big.bin"):
        assert f"{prefix}/{n}" in r.stdout, r.stdout
    r = aws(server, "ls")
    assert "default" in r.stdout, r.stdout + r.stderr
    r = aws(server, "rm", "--recursive", f"s3://default/{prefix}/")
    assert r.returncode == 0, r.stderr
    r = aws(server, "ls", "--recursive", f"s3://default/{prefix}/")
    assert prefix not in r.stdout


# ------------------------------------------------------------------------------------ DuckDB


def test_duckdb_reads_and_writes_parquet_through_the_gateway(server, default_base):
    import duckdb

    ns = unique("duck").replace("-", "_")
    table_key = warehouse_key(create_table(server, "default", ns, "events"), default_base)
    ext_dir = Path(duckdb.__file__).parent
    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    httpfs = list(Path(__import__("duckdb_extension_httpfs").__file__).parent.rglob("httpfs.duckdb_extension"))
    assert httpfs, "httpfs extension file not found in its package"
    con.execute(f"LOAD '{httpfs[0]}'")
    host = server.s3.removeprefix("http://")
    con.execute(
        f"CREATE SECRET gw (TYPE s3, KEY_ID '{ADMIN_KEY}', SECRET '{ADMIN_SECRET}', REGION 'us-east-1', "
        f"ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)"
    )
    for part in range(2):
        con.execute(
            f"COPY (SELECT range AS x FROM range({part * 100}, {part * 100 + 100})) "
            f"TO 's3://default/{table_key}/data/part-{part}.parquet' (FORMAT parquet)"
        )
    n, total = con.execute(f"SELECT count(*), sum(x) FROM read_parquet('s3://default/{table_key}/data/*.parquet')").fetchone()
    assert (n, total) == (200, sum(range(200)))
    del ext_dir


def _duckdb_with(*extensions: str):
    """A DuckDB connection with the named extensions loaded from their Python packages'
    folders (no download, no autoinstall)."""
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    for name in extensions:
        files = list(Path(__import__(f"duckdb_extension_{name}").__file__).parent.rglob(f"{name}.duckdb_extension"))
        assert files, f"{name} extension file not found in its package"
        con.execute(f"LOAD '{files[0]}'")
    return con


def test_duckdb_iceberg_reads_and_inserts_into_the_embedded_default(server):
    """DuckDB's iceberg extension ATTACHes the REST catalog with an iceberg secret holding
    the Sluice key; the table's files come and go through the gateway with the temporary
    credentials vended with each table (DuckDB has no S3 settings of its own)."""
    ns = unique("duckice").replace("-", "_")
    create_table(server, "default", ns, "events")
    con = _duckdb_with("httpfs", "avro", "iceberg")
    con.execute(
        f"CREATE SECRET sluice (TYPE iceberg, CLIENT_ID '{ADMIN_KEY}', CLIENT_SECRET '{ADMIN_SECRET}', "
        f"OAUTH2_SERVER_URI '{server.api}/v1/oauth/tokens')"
    )
    con.execute(f"ATTACH 'default' AS lake (TYPE iceberg, SECRET sluice, ENDPOINT '{server.api}')")
    con.execute(f"INSERT INTO lake.{ns}.events SELECT range AS x FROM range(0, 100)")
    n, total = con.execute(f"SELECT count(*), sum(x) FROM lake.{ns}.events").fetchone()
    assert (n, total) == (100, sum(range(100)))
    con.execute(f"INSERT INTO lake.{ns}.events VALUES (1000)")
    assert con.execute(f"SELECT count(*), max(x) FROM lake.{ns}.events").fetchone() == (101, 1000)
    # The data files are on the server's disk, under the table's directory.
    loc = server.mgmt("GET", f"/v1/default/namespaces/{ns}/tables/events").json()["metadata"]["location"]
    root = server.data_dir / "warehouse" / loc.removeprefix("s3://default/")
    assert any(p.suffix == ".parquet" for p in root.rglob("*")), list(root.rglob("*"))


# ---------------------------------------------------------------------------- s3s-fs backed


def test_s3_warehouse_on_s3s_fs(server, admin_s3, s3_warehouse, s3s_fs):
    body = os.urandom(9 * 1024 * 1024 + 7)  # more than one part inside the gateway
    admin_s3.put_object(Bucket=s3_warehouse, Key="raw/blob.bin", Body=body)
    landed = s3s_fs.root / "lake" / S3S_PREFIX / "raw" / "blob.bin"
    assert landed.read_bytes() == body
    assert admin_s3.get_object(Bucket=s3_warehouse, Key="raw/blob.bin", Range="bytes=5-9")["Body"].read() == body[5:10]
    assert [o["Key"] for o in admin_s3.list_objects_v2(Bucket=s3_warehouse, Prefix="raw/")["Contents"]] == ["raw/blob.bin"]
    admin_s3.delete_object(Bucket=s3_warehouse, Key="raw/blob.bin")
    assert not landed.exists()


def test_gateway_fronted_s3_warehouse_vends_gateway_credentials(server, s3s_fs):
    """An S3 warehouse on s3s-fs with `"gateway": true`: tables are at s3://<warehouse>/…,
    vended credentials are temporary gateway credentials, and the bytes written with them
    land in s3s-fs under the warehouse's key prefix."""
    body = {
        "warehouse-name": "s3front",
        "storage-profile": {
            "type": "s3", "bucket": S3S_BUCKET, "key-prefix": "fronted", "region": "us-east-1",
            "endpoint": s3s_fs.endpoint, "path-style-access": True, "flavor": "s3-compat",
            "sts-enabled": False, "gateway": True,
        },
        "storage-credential": {
            "type": "s3", "credential-type": "access-key",
            "aws-access-key-id": S3S_KEY[0], "aws-secret-access-key": S3S_KEY[1],
        },
        "delete-profile": {"type": "hard"},
    }
    r = server.mgmt("POST", f"{MGMT}/warehouse", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["location"] == "s3://s3front", r.json()
    ns = unique("front").replace("-", "_")
    location = create_table(server, "s3front", ns, "t")
    assert location.startswith("s3://s3front/"), location
    r = server.mgmt(
        "GET", f"/v1/s3front/namespaces/{ns}/tables/t", headers={"X-Iceberg-Access-Delegation": "vended-credentials"}
    )
    assert r.status_code == 200, r.text
    cfg = r.json()["config"]
    assert cfg["s3.access-key-id"].startswith("ASIA"), cfg.keys()
    s3 = boto3.client(
        "s3",
        endpoint_url=cfg["s3.endpoint"],
        aws_access_key_id=cfg["s3.access-key-id"],
        aws_secret_access_key=cfg["s3.secret-access-key"],
        aws_session_token=cfg["s3.session-token"],
        region_name=cfg["s3.region"],
        config=Config(s3={"addressing_style": "path"}),
    )
    key = location.removeprefix("s3://s3front/") + "/data/f.bin"
    s3.put_object(Bucket="s3front", Key=key, Body=b"fronted bytes")
    assert s3.get_object(Bucket="s3front", Key=key)["Body"].read() == b"fronted bytes"
    assert (s3s_fs.root / S3S_BUCKET / "fronted" / key).read_bytes() == b"fronted bytes"
    code, status = error_of(s3.put_object, Bucket="s3front", Key="elsewhere/f.bin", Body=b"x")
    assert (code, status) == ("AccessDenied", 403)
    # The metadata file the server wrote through the same mapping is readable too.
    meta = r.json()["metadata-location"].removeprefix("s3://s3front/")
    assert b"format-version" in s3.get_object(Bucket="s3front", Key=meta)["Body"].read()


# ----------------------------------------------------------------------------- authorization


def test_viewer_reads_table_files_but_cannot_write(server, admin_s3, default_base):
    ns = unique("view").replace("-", "_")
    key = warehouse_key(create_table(server, "default", ns, "t"), default_base) + "/data/f.bin"
    admin_s3.put_object(Bucket="default", Key=key, Body=b"table data")
    viewer = create_user(server, "viewer", groups=("Viewers",))
    s3 = client(server, viewer.key, viewer.secret)
    assert "default" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_object(Bucket="default", Key=key)["Body"].read() == b"table data"
    assert error_of(s3.put_object, Bucket="default", Key=key, Body=b"x") == ("AccessDenied", 403)
    assert error_of(s3.delete_object, Bucket="default", Key=key) == ("AccessDenied", 403)
    # Outside every table a Viewer has no grant: reading the staging area is denied, and it is
    # not listed.
    admin_s3.put_object(Bucket="default", Key="staging/secret.txt", Body=b"s")
    assert error_of(s3.get_object, Bucket="default", Key="staging/secret.txt") == ("AccessDenied", 403)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="default").get("Contents", [])]
    assert key in listed and "staging/secret.txt" not in listed
    log = server.log_text()
    assert "S3 gateway request denied" in log and viewer.name in log and viewer.key in log
    assert viewer.secret not in log


def test_user_denied_table_b_cannot_list_or_read_it(server, admin_s3, default_base):
    ns = unique("deny").replace("-", "_")
    a = warehouse_key(create_table(server, "default", ns, "a"), default_base)
    b = warehouse_key(create_table(server, "default", ns, "b"), default_base)
    admin_s3.put_object(Bucket="default", Key=f"{a}/data/1", Body=b"a")
    admin_s3.put_object(Bucket="default", Key=f"{b}/data/1", Body=b"b")
    policy = create_policy(
        server,
        [
            {"effect": "allow", "action": ["catalog:*", "warehouse:Read", "warehouse:List"], "resource": "*"},
            {"effect": "deny", "action": ["catalog:*"], "resource": f"sluice:catalog:::warehouse/default/namespace/{ns}/table/b"},
            {"effect": "allow", "action": ["s3:PutObject", "s3:GetObject"], "resource": "sluice:catalog:::warehouse/default/object/scratch/*"},
        ],
    )
    user = create_user(server, "writer", policies=(policy,))
    s3 = client(server, user.key, user.secret)
    s3.put_object(Bucket="default", Key=f"{a}/data/2", Body=b"a2")
    assert error_of(s3.put_object, Bucket="default", Key=f"{b}/data/2", Body=b"x") == ("AccessDenied", 403)
    assert error_of(s3.get_object, Bucket="default", Key=f"{b}/data/1") == ("AccessDenied", 403)
    assert error_of(s3.put_object, Bucket="default", Key="elsewhere/x", Body=b"x") == ("AccessDenied", 403)
    s3.put_object(Bucket="default", Key="scratch/x", Body=b"x")
    # Table locations are <namespace-uuid>/<table-uuid>: list the namespace's directory.
    ns_dir = a.rsplit("/", 1)[0]
    assert b.rsplit("/", 1)[0] == ns_dir
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="default", Prefix=ns_dir).get("Contents", [])]
    assert f"{a}/data/1" in listed and f"{a}/data/2" in listed
    assert not [k for k in listed if k.startswith(b)], listed
    prefixes = [p["Prefix"] for p in s3.list_objects_v2(Bucket="default", Prefix=f"{ns_dir}/", Delimiter="/").get("CommonPrefixes", [])]
    assert f"{a}/" in prefixes and not [p for p in prefixes if p.startswith(b)], prefixes


# ------------------------------------------------------------------------------- bad input


def test_bad_keys_and_malformed_xml(server, admin_s3):
    assert error_of(admin_s3.put_object, Bucket="default", Key="a/../b", Body=b"x")[1] == 400
    assert error_of(admin_s3.put_object, Bucket="default", Key="k" * 1025, Body=b"x")[0] == "KeyTooLongError"
    r = signed(server, "PUT", "/default/nul%00key", b"x")
    assert r.status_code == 400, r.text
    r = signed(server, "POST", "/default", b"<Delete><Object><Key>x</Key>", query="delete=")
    assert r.status_code == 400 and b"MalformedXML" in r.content, r.text
    up = admin_s3.create_multipart_upload(Bucket="default", Key="staging/badxml")["UploadId"]
    r = signed(server, "POST", "/default/staging/badxml", b"<CompleteMultipartUpload><Part>", query=f"uploadId={up}")
    assert r.status_code == 400 and b"MalformedXML" in r.content, r.text
    r = signed(server, "GET", "/default", query="tagging=")
    assert r.status_code == 501 and b"NotImplemented" in r.content, r.text
    # A key holding a literal "%2F" is that key (the client sends %252F): not a '/'.
    admin_s3.put_object(Bucket="default", Key="staging/pct%2Fkey", Body=b"x")
    assert admin_s3.get_object(Bucket="default", Key="staging/pct%2Fkey")["Body"].read() == b"x"
    assert error_of(admin_s3.head_object, Bucket="default", Key="staging/pct/key")[1] == 404
    listed = [o["Key"] for o in admin_s3.list_objects_v2(Bucket="default", Prefix="staging/pct").get("Contents", [])]
    assert listed == ["staging/pct%2Fkey"]
    # The server kept serving, and nothing partial is visible.
    assert admin_s3.list_buckets()["Buckets"]
    assert error_of(admin_s3.head_object, Bucket="default", Key="staging/badxml")[1] == 404


# ------------------------------------------------------------------- signed aws-chunked body


def _hmac(key: bytes, msg: str) -> bytes:
    import hmac

    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def put_signed_chunks(server, key: str, chunks: list[bytes], tamper: int | None = None) -> requests.Response:
    """PUT with STREAMING-AWS4-HMAC-SHA256-PAYLOAD, the way the Java and Go SDKs stream uploads:
    the headers carry a seed signature (botocore's signer) and each chunk a signature chained to
    the previous one. With `tamper`, that chunk's bytes are changed after signing."""
    from botocore.auth import SigV4Auth

    url = f"{server.s3}/default/{key}"
    encoded_len = sum(len(f"{len(c):x};chunk-signature={'0' * 64}\r\n") + len(c) + 2 for c in chunks + [b""])
    headers = {
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(sum(map(len, chunks))),
        "content-length": str(encoded_len),
    }
    req = AWSRequest(method="PUT", url=url, headers=headers)
    SigV4Auth(Credentials(ADMIN_KEY, ADMIN_SECRET), "s3", "us-east-1").add_auth(req)
    amz_date = req.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    signing_key = _hmac(_hmac(_hmac(_hmac(("AWS4" + ADMIN_SECRET).encode(), amz_date[:8]), "us-east-1"), "s3"), "aws4_request")
    prev = req.headers["Authorization"].split("Signature=")[1]
    body = b""
    empty = hashlib.sha256(b"").hexdigest()
    for i, c in enumerate(chunks + [b""]):
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty, hashlib.sha256(c).hexdigest()])
        prev = _hmac(signing_key, to_sign).hex()
        data = bytes([c[0] ^ 1]) + c[1:] if tamper == i and c else c
        body += f"{len(c):x};chunk-signature={prev}\r\n".encode() + data + b"\r\n"
    assert len(body) == encoded_len
    return requests.put(url, data=body, headers=dict(req.headers), timeout=60)


def test_signed_chunks_and_a_tampered_chunk(server, admin_s3):
    key = f"staging/{unique('chunked')}"
    chunks = [os.urandom(64 * 1024), os.urandom(64 * 1024), os.urandom(100)]
    r = put_signed_chunks(server, key, chunks)
    assert r.status_code == 200, r.text
    assert admin_s3.get_object(Bucket="default", Key=key)["Body"].read() == b"".join(chunks)
    bad = key + "-tampered"
    r = put_signed_chunks(server, bad, chunks, tamper=1)
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content, r.text
    assert error_of(admin_s3.head_object, Bucket="default", Key=bad)[1] == 404


def test_deleted_key_is_refused_and_authz_check_explains_s3_actions(server):
    user = create_user(server, "gone")
    s3 = client(server, user.key, user.secret)
    s3.list_buckets()
    r = server.mgmt("DELETE", f"/management/v1/users/{user.name}/access-keys/{user.key}")
    assert r.status_code == 204, r.text
    assert error_of(s3.list_buckets) == ("InvalidAccessKeyId", 403)
    resource = "sluice:catalog:::warehouse/default/object/staging/x"
    r = server.mgmt("POST", "/management/v1/authz/check", json={"user": user.name, "action": "s3:GetObject", "resource": resource})
    assert r.status_code == 200 and r.json()["decision"] == "deny", r.text
    r = server.mgmt("POST", "/management/v1/authz/check", json={"user": "admin", "action": "s3:PutObject", "resource": resource})
    assert r.status_code == 200 and r.json()["decision"] == "allow", r.text
