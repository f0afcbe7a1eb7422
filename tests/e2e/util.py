"""Shared schemas, data and assertions for the e2e suite."""

from __future__ import annotations

import time
from typing import Any, Callable

import pyarrow as pa
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import DoubleType, LongType, NestedField, StringType

SCHEMA = Schema(
    NestedField(field_id=1, name="id", field_type=LongType(), required=False),
    NestedField(field_id=2, name="category", field_type=StringType(), required=False),
    NestedField(field_id=3, name="value", field_type=DoubleType(), required=False),
)

ARROW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=True),
        pa.field("category", pa.string(), nullable=True),
        pa.field("value", pa.float64(), nullable=True),
    ]
)

PARTITION_BY_CATEGORY = PartitionSpec(
    PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="category")
)

SORT_BY_ID = SortOrder(SortField(source_id=1, transform=IdentityTransform()))

# Keep commits fast and deterministic in tests that expect a conflict to surface.
NO_RETRY = {"commit.retry.num-retries": "0"}


def rows(start: int, n: int, categories: tuple[str, ...] = ("a", "b")) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.Table.from_pydict(
        {
            "id": ids,
            "category": [categories[i % len(categories)] for i in ids],
            "value": [i * 1.5 for i in ids],
        },
        schema=ARROW_SCHEMA,
    )


def sorted_pylist(table: pa.Table, key: str = "id") -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: r[key])


def read_all(table) -> pa.Table:
    return table.scan().to_arrow()


def eventually(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.2) -> Any:
    """Retry `check` (an assertion function) until it passes or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(interval)


def assert_error_shape(resp, status: int | tuple[int, ...], err_type: str | None = None) -> dict[str, Any]:
    """Assert an Iceberg REST error body: {"error": {"message", "type", "code"}}."""
    statuses = (status,) if isinstance(status, int) else status
    assert resp.status_code in statuses, f"expected HTTP {statuses}, got {resp.status_code}: {resp.text}"
    try:
        body = resp.json()
    except ValueError as e:  # pragma: no cover - reported as failure
        raise AssertionError(f"error body is not JSON: {resp.text!r}") from e
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), f"not an error model: {body}"
    err = body["error"]
    assert isinstance(err.get("message"), str) and err["message"], f"error.message missing: {body}"
    assert isinstance(err.get("type"), str) and err["type"], f"error.type missing: {body}"
    assert err.get("code") == resp.status_code, f"error.code {err.get('code')} != HTTP {resp.status_code}: {body}"
    if err_type is not None:
        assert err["type"] == err_type, f"expected error type {err_type}, got {err['type']}: {body}"
    return err
