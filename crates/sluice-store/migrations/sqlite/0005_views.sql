-- Iceberg views: like tables, a pointer to the current metadata file plus a copy of that
-- metadata, so loading a view never reads object storage. Same conventions as 0001.
--
-- Views and tables share one name space per namespace. A UNIQUE constraint cannot span two
-- tables, so the store checks the other table inside the write transaction that claims a
-- name (create, rename, undrop), under the writer lock.

CREATE TABLE views (
    id                TEXT PRIMARY KEY NOT NULL,
    warehouse_id      TEXT NOT NULL REFERENCES warehouses (id),
    namespace_id      TEXT NOT NULL REFERENCES namespaces (id),
    name              TEXT NOT NULL,
    location          TEXT NOT NULL,
    metadata_location TEXT NOT NULL,
    metadata_json     TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    -- Also the index for listing a namespace's views by name.
    UNIQUE (namespace_id, name)
);
-- The FK check SQLite runs when a warehouse row is deleted.
CREATE INDEX views_by_warehouse ON views (warehouse_id);
