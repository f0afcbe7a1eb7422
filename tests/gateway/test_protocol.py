"""Protocol paths beside the everyday ones: virtual-host style requests when `s3_domain` is set,
clock skew beyond 15 minutes, ListMultipartUploads paging."""

from __future__ import annotations

import datetime
import socket

import boto3
import botocore.auth
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ADMIN_KEY, ADMIN_SECRET, _stop, client, create_user, start_server, unique


@pytest.fixture
def localhost_names(monkeypatch):
    """`<bucket>.localhost` resolves to 127.0.0.1 in this process, as systemd-resolved and
    browsers resolve it (glibc's plain `files dns` does not)."""
    real = socket.getaddrinfo

    def resolve(host, *args, **kw):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def test_virtual_host_style(server, admin_s3, localhost_names):
    port = server.s3.rsplit(":", 1)[1]
    vh = boto3.client(
        "s3",
        endpoint_url=f"http://localhost:{port}",
        aws_access_key_id=ADMIN_KEY,
        aws_secret_access_key=ADMIN_SECRET,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1, "mode": "standard"}),
    )
    seen_hosts: list[str] = []
    vh.meta.events.register("before-send.s3", lambda request, **_: seen_hosts.append(request.url))
    key = f"staging/{unique('vhost')}"
    vh.put_object(Bucket="default", Key=key, Body=b"virtual")
    assert seen_hosts and seen_hosts[-1].startswith(f"http://default.localhost:{port}/staging/"), seen_hosts
    assert vh.get_object(Bucket="default", Key=key)["Body"].read() == b"virtual"
    assert [o["Key"] for o in vh.list_objects_v2(Bucket="default", Prefix=key)["Contents"]] == [key]
    vh.head_bucket(Bucket="default")
    # The same object path style.
    assert admin_s3.get_object(Bucket="default", Key=key)["Body"].read() == b"virtual"
    with pytest.raises(ClientError) as e:
        vh.get_object(Bucket="no-such-warehouse", Key="x")
    assert e.value.response["Error"]["Code"] == "NoSuchBucket"


def shifted_clock(monkeypatch, minutes: int) -> None:
    def now():
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(minutes=minutes)

    monkeypatch.setattr(botocore.auth, "get_current_datetime", now)


@pytest.mark.parametrize("minutes", [-20, 20])
def test_clock_skew_beyond_15_minutes_is_refused(server, monkeypatch, minutes):
    s3 = client(server)
    shifted_clock(monkeypatch, minutes)
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="default", MaxKeys=1)
    assert e.value.response["Error"]["Code"] == "RequestTimeTooSkewed"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_clock_skew_within_15_minutes_is_accepted(server, monkeypatch):
    s3 = client(server)
    shifted_clock(monkeypatch, -10)
    s3.list_objects_v2(Bucket="default", MaxKeys=1)


def test_list_multipart_uploads_pages(server, admin_s3):
    s3 = admin_s3
    prefix = f"staging/{unique('uploads')}/"
    made = []
    for key, n in (("a", 3), ("b", 1), ("c", 2)):
        for _ in range(n):
            made.append((prefix + key, s3.create_multipart_upload(Bucket="default", Key=prefix + key)["UploadId"]))
    try:
        # By key, then by initiation time (the order they were made here).
        first = s3.list_multipart_uploads(Bucket="default", Prefix=prefix, MaxUploads=2)
        assert first["IsTruncated"] is True and first["MaxUploads"] == 2
        assert [(u["Key"], u["UploadId"]) for u in first["Uploads"]] == made[:2]
        assert (first["NextKeyMarker"], first["NextUploadIdMarker"]) == made[1]
        paged = []
        for page in s3.get_paginator("list_multipart_uploads").paginate(
            Bucket="default", Prefix=prefix, PaginationConfig={"PageSize": 2}
        ):
            assert len(page.get("Uploads", [])) <= 2
            paged += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        assert sorted(paged) == sorted(made) and len(paged) == len(made)
        assert [k for k, _ in paged] == sorted(k for k, _ in made)
        # A key marker alone skips that key entirely; with an upload id it resumes after it.
        after_a = s3.list_multipart_uploads(Bucket="default", Prefix=prefix, KeyMarker=prefix + "a")
        assert [k for k, _ in ((u["Key"], u["UploadId"]) for u in after_a["Uploads"])] == [prefix + "b", prefix + "c", prefix + "c"]
        assert after_a["IsTruncated"] is False
        mid = s3.list_multipart_uploads(
            Bucket="default", Prefix=prefix, KeyMarker=made[0][0], UploadIdMarker=made[0][1]
        )
        assert [(u["Key"], u["UploadId"]) for u in mid["Uploads"]] == made[1:]
    finally:
        for key, up in made:
            s3.abort_multipart_upload(Bucket="default", Key=key, UploadId=up)


def test_failed_signatures_slow_down_that_key_only(tmp_path_factory):
    srv, proc = start_server(tmp_path_factory.mktemp("throttled"), {"SLUICE_AUTH_FAILURES_PER_MINUTE": "3"})
    try:
        victim = create_user(srv, "victim", groups=("Viewers",))
        bad = client(srv, victim.key, "x" * 40)
        codes = []
        for _ in range(5):
            with pytest.raises(ClientError) as e:
                bad.list_buckets()
            codes.append((e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]))
        assert codes[:3] == [("SignatureDoesNotMatch", 403)] * 3, codes
        assert codes[3:] == [("SlowDown", 503)] * 2, codes
        # Other keys from the same source are not slowed down; policy denials do not count.
        admin = client(srv)
        for _ in range(5):
            admin.list_buckets()
        log = srv.log_text()
        assert log.count("repeated failed signatures, answering SlowDown") == 1, log
        assert victim.secret not in log and "x" * 40 not in log
        other = create_user(srv, "other", groups=("Viewers",))
        other_s3 = client(srv, other.key, other.secret)
        for _ in range(5):
            with pytest.raises(ClientError) as e:
                other_s3.put_object(Bucket="default", Key=f"staging/{unique('denied')}", Body=b"x")
            assert e.value.response["Error"]["Code"] == "AccessDenied"
        other_s3.list_buckets()
    finally:
        _stop(proc)
