"""S3 entity tags and object metadata through the gateway, on a file warehouse (sidecars under the
hidden `.sluice-meta/` tree) and on an S3 warehouse over s3s-fs (the store keeps both itself):
MD5 ETags for single-part PUTs, md5-of-part-md5s-N for multipart, the same value on HEAD, GET,
List and Copy; Content-Type & co. and x-amz-meta-* stored and returned; If-Match with them."""

from __future__ import annotations

import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from conftest import unique

META = {
    "ContentType": "text/csv; charset=utf-8",
    "ContentEncoding": "gzip",
    "ContentDisposition": 'attachment; filename="x.csv"',
    "ContentLanguage": "en",
    "CacheControl": "max-age=60",
    "Metadata": {"owner": "alice", "run-id": "42"},
}


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def multipart_etag(parts: list[bytes]) -> str:
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


def assert_meta(r: dict, want: dict = META) -> None:
    for k, v in want.items():
        assert r.get(k) == v, (k, r.get(k), v)


def listed_etag(s3, bucket: str, key: str) -> str:
    objs = s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]
    (o,) = [o for o in objs if o["Key"] == key]
    return o["ETag"].strip('"')


def code_of(call, *args, **kw) -> tuple[str, int]:
    with pytest.raises(ClientError) as e:
        call(*args, **kw)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(params=["file", "s3"])
def bucket(request) -> str:
    if request.param == "file":
        return "default"
    return request.getfixturevalue("s3_warehouse")


def test_single_part_etag_and_metadata_everywhere(bucket, admin_s3):
    s3 = admin_s3
    key = f"staging/{unique('etag')}.csv"
    body = os.urandom(70_000)
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, **META)
    assert put["ETag"] == f'"{md5(body)}"'
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ETag"] == put["ETag"]
    assert_meta(head)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == body
    assert got["ETag"] == put["ETag"]
    assert_meta(got)
    assert listed_etag(s3, bucket, key) == md5(body)
    # response-* query parameters override the stored headers.
    over = s3.get_object(Bucket=bucket, Key=key, ResponseContentType="application/json")
    assert over["ContentType"] == "application/json"

    # Conditions with the S3 ETag.
    assert s3.get_object(Bucket=bucket, Key=key, IfMatch=put["ETag"])["Body"].read() == body
    assert code_of(s3.get_object, Bucket=bucket, Key=key, IfMatch='"0123"')[1] == 412
    assert code_of(s3.get_object, Bucket=bucket, Key=key, IfNoneMatch=put["ETag"])[1] == 304
    assert code_of(s3.head_object, Bucket=bucket, Key=key, IfMatch='"0123"')[1] == 412
    ranged = s3.get_object(Bucket=bucket, Key=key, Range="bytes=10-19", IfMatch=put["ETag"])
    assert ranged["Body"].read() == body[10:20] and ranged["ETag"] == put["ETag"]
    # Conditional overwrite with If-Match.
    again = s3.put_object(Bucket=bucket, Key=key, Body=b"v2", IfMatch=put["ETag"])
    assert again["ETag"] == f'"{md5(b"v2")}"'
    assert code_of(s3.put_object, Bucket=bucket, Key=key, Body=b"v3", IfMatch=put["ETag"])[1] == 412
    # An overwrite without metadata has none left.
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ETag"] == again["ETag"] and head.get("Metadata") == {}
    assert head["ContentType"] == "application/octet-stream"


def test_multipart_etag_and_metadata(bucket, admin_s3):
    s3 = admin_s3
    key = f"staging/{unique('mpu-etag')}"
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(4321)]
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **META)["UploadId"]
    tags = [s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=i, Body=p)["ETag"] for i, p in enumerate(parts, 1)]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": i, "ETag": t} for i, t in enumerate(tags, 1)]},
    )
    want = multipart_etag(parts)
    assert done["ETag"] == f'"{want}"'
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ETag"] == done["ETag"]
    assert_meta(head)
    assert s3.get_object(Bucket=bucket, Key=key, IfMatch=done["ETag"])["ETag"] == done["ETag"]
    assert listed_etag(s3, bucket, key) == want


def test_copy_keeps_or_replaces_metadata(bucket, admin_s3):
    s3 = admin_s3
    src = f"staging/{unique('copy-src')}"
    body = b"copied bytes" * 1000
    put = s3.put_object(Bucket=bucket, Key=src, Body=body, **META)
    copied = s3.copy_object(Bucket=bucket, Key=src + ".kept", CopySource={"Bucket": bucket, "Key": src})
    assert copied["CopyObjectResult"]["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key=src + ".kept")
    assert head["ETag"] == put["ETag"]
    assert_meta(head)
    replaced = s3.copy_object(
        Bucket=bucket, Key=src + ".replaced", CopySource={"Bucket": bucket, "Key": src},
        MetadataDirective="REPLACE", ContentType="application/x-test", Metadata={"fresh": "yes"},
    )
    assert replaced["CopyObjectResult"]["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key=src + ".replaced")
    assert head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"fresh": "yes"}
    assert head.get("ContentDisposition") is None
    # Onto itself: allowed only with REPLACE, and only the metadata changes.
    assert code_of(s3.copy_object, Bucket=bucket, Key=src, CopySource={"Bucket": bucket, "Key": src})[0] == "InvalidRequest"
    s3.copy_object(Bucket=bucket, Key=src, CopySource={"Bucket": bucket, "Key": src}, MetadataDirective="REPLACE", Metadata={"v": "2"})
    head = s3.head_object(Bucket=bucket, Key=src)
    assert head["Metadata"] == {"v": "2"} and head["ETag"] == put["ETag"]
    assert s3.get_object(Bucket=bucket, Key=src)["Body"].read() == body


def test_copy_across_warehouses_keeps_etag_and_metadata(admin_s3, s3_warehouse):
    s3 = admin_s3
    src = f"staging/{unique('across')}"
    put = s3.put_object(Bucket=s3_warehouse, Key=src, Body=b"from s3s-fs", **META)
    s3.copy_object(Bucket="default", Key=src, CopySource={"Bucket": s3_warehouse, "Key": src})
    head = s3.head_object(Bucket="default", Key=src)
    assert head["ETag"] == put["ETag"]
    assert_meta(head)


def test_sidecars_are_hidden_and_follow_the_object(server, admin_s3, default_base):
    s3 = admin_s3
    root = server.data_dir / "warehouse"
    key = f"staging/{unique('side')}"
    put = s3.put_object(Bucket="default", Key=key, Body=b"tracked", Metadata={"a": "b"})
    sidecar = root / ".sluice-meta" / key
    assert sidecar.is_file()
    # Neither listed nor addressable.
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="default") for o in p.get("Contents", [])]
    assert key in keys and not [k for k in keys if k.startswith(".sluice-meta")]
    assert code_of(s3.get_object, Bucket="default", Key=f".sluice-meta/{key}")[1] == 403
    assert code_of(s3.put_object, Bucket="default", Key=f".sluice-meta/{key}", Body=b"x")[1] == 403

    # Rewritten behind the gateway's back (as an engine writes table data): the sidecar no longer
    # describes it, so the store's own tag is served, and it works for If-Match.
    (root / key).write_bytes(b"rewritten directly")
    head = s3.head_object(Bucket="default", Key=key)
    assert head["ETag"] != put["ETag"] and head.get("Metadata") == {}
    assert s3.get_object(Bucket="default", Key=key, IfMatch=head["ETag"])["Body"].read() == b"rewritten directly"
    assert listed_etag(s3, "default", key) == head["ETag"].strip('"')

    # Objects that never had a sidecar (written directly) work the same way.
    direct = f"staging/{unique('direct')}"
    (root / direct).parent.mkdir(parents=True, exist_ok=True)
    (root / direct).write_bytes(b"engine data")
    head = s3.head_object(Bucket="default", Key=direct)
    assert head["ETag"] and s3.get_object(Bucket="default", Key=direct, IfMatch=head["ETag"])["Body"].read() == b"engine data"

    # Deleting the object deletes its sidecar.
    s3.put_object(Bucket="default", Key=key, Body=b"tracked again")
    assert sidecar.is_file()
    s3.delete_object(Bucket="default", Key=key)
    assert not sidecar.exists()
    s3.put_object(Bucket="default", Key=key, Body=b"three")
    s3.delete_objects(Bucket="default", Delete={"Objects": [{"Key": key}]})
    assert not sidecar.exists()
