"""Namespaces through PyIceberg, for every warehouse kind."""

from __future__ import annotations

import pytest
from pyiceberg.exceptions import (
    NamespaceAlreadyExistsError,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
)

from conftest import unique
from util import SCHEMA


def test_create_and_load_properties(catalog):
    name = unique("ns")
    catalog.create_namespace(name, properties={"owner": "alice", "comment": "hello world"})
    props = catalog.load_namespace_properties(name)
    assert props.get("owner") == "alice"
    assert props.get("comment") == "hello world"
    assert catalog.namespace_exists(name)
    assert (name,) in catalog.list_namespaces()


def test_create_duplicate_namespace(catalog):
    name = unique("ns")
    catalog.create_namespace(name)
    with pytest.raises(NamespaceAlreadyExistsError):
        catalog.create_namespace(name)


def test_nested_namespaces_and_listing(catalog):
    parent = unique("ns")
    catalog.create_namespace((parent,))
    catalog.create_namespace((parent, "b"), properties={"level": "2"})
    catalog.create_namespace((parent, "c"))

    top = catalog.list_namespaces()
    assert (parent,) in top
    assert (parent, "b") not in top, "list without parent must only return top-level namespaces"

    children = catalog.list_namespaces((parent,))
    assert sorted(children) == [(parent, "b"), (parent, "c")]

    assert catalog.list_namespaces((parent, "b")) == []
    assert catalog.namespace_exists((parent, "b"))
    assert catalog.load_namespace_properties((parent, "b")).get("level") == "2"


def test_list_children_of_missing_namespace(catalog):
    with pytest.raises(NoSuchNamespaceError):
        catalog.list_namespaces((unique("missing"),))


def test_update_properties(catalog):
    name = unique("ns")
    catalog.create_namespace(name, properties={"k1": "v1", "k2": "v2"})
    summary = catalog.update_namespace_properties(
        name, removals={"k1", "not-there"}, updates={"k2": "v2b", "k3": "v3"}
    )
    assert sorted(summary.removed) == ["k1"]
    assert sorted(summary.updated) == ["k2", "k3"]
    assert sorted(summary.missing) == ["not-there"]

    props = catalog.load_namespace_properties(name)
    assert "k1" not in props
    assert props.get("k2") == "v2b"
    assert props.get("k3") == "v3"


def test_update_properties_of_missing_namespace(catalog):
    with pytest.raises(NoSuchNamespaceError):
        catalog.update_namespace_properties(unique("missing"), updates={"a": "b"})


def test_load_missing_namespace(catalog):
    name = unique("missing")
    assert not catalog.namespace_exists(name)
    with pytest.raises(NoSuchNamespaceError):
        catalog.load_namespace_properties(name)


def test_drop_non_empty_namespace(catalog):
    name = unique("ns")
    catalog.create_namespace(name)
    catalog.create_table((name, "t"), schema=SCHEMA)
    with pytest.raises(NamespaceNotEmptyError):
        catalog.drop_namespace(name)
    assert catalog.namespace_exists(name)
    assert catalog.table_exists((name, "t"))


def test_drop_empty_namespace(catalog):
    name = unique("ns")
    catalog.create_namespace(name, properties={"a": "b"})
    catalog.drop_namespace(name)
    assert not catalog.namespace_exists(name)
    assert (name,) not in catalog.list_namespaces()
    with pytest.raises(NoSuchNamespaceError):
        catalog.load_namespace_properties(name)
    with pytest.raises(NoSuchNamespaceError):
        catalog.drop_namespace(name)
    # The name is free again.
    catalog.create_namespace(name)
    assert catalog.load_namespace_properties(name).get("a") is None


def test_drop_namespace_after_its_tables_are_dropped(catalog):
    name = unique("ns")
    catalog.create_namespace(name)
    catalog.create_table((name, "t"), schema=SCHEMA)
    catalog.drop_table((name, "t"))
    catalog.drop_namespace(name)
    assert not catalog.namespace_exists(name)
