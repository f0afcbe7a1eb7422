-- Soft deletion: a dropped table moves here (same id, full row) until its files are purged.
-- Same conventions as 0001 (hyphenated UUID text ids, unix-millisecond INTEGER timestamps).

CREATE TABLE deleted_tables (
    id                TEXT PRIMARY KEY NOT NULL,
    -- The warehouse cannot go while it still has deleted tables (their files still exist).
    warehouse_id      TEXT NOT NULL REFERENCES warehouses (id),
    -- The namespace id at drop time. Deliberately NO foreign key: soft-deleted tables must
    -- not block dropping their namespace. Undrop resolves the namespace again by
    -- (warehouse_id, namespace_name), so a dropped-and-recreated namespace is found under
    -- its new id.
    namespace_id      TEXT NOT NULL,
    -- The namespace's storage key (same encoding as namespaces.name).
    namespace_name    TEXT NOT NULL,
    name              TEXT NOT NULL,
    location          TEXT NOT NULL,
    metadata_location TEXT NOT NULL,
    metadata_json     TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    deleted_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    deleted_by        TEXT,
    purge_requested   INTEGER NOT NULL DEFAULT 0 CHECK (purge_requested IN (0, 1)),
    -- Set while a purge worker holds the row; the lease is held while now < lease_until, so
    -- a crashed worker's claim simply runs out.
    lease_until       INTEGER
);
-- Overlap checks: the same expression as tables_by_location, so the same probes apply. Also
-- serves the FK check when a warehouse row is deleted.
CREATE INDEX deleted_tables_by_location ON deleted_tables (warehouse_id, rtrim(location, '/'));
-- Listing a warehouse's deleted tables newest first: (deleted_at, id) is the paging key.
CREATE INDEX deleted_tables_by_deletion ON deleted_tables (warehouse_id, deleted_at, id);
-- Purge workers claim expired rows oldest expiry first, across warehouses.
CREATE INDEX deleted_tables_by_expiry ON deleted_tables (expires_at, id);

-- Mapping an object location back to its table, in any warehouse: equality probes on each
-- '/'-prefix of the location. Queries must use exactly this expression.
CREATE INDEX tables_by_location_any ON tables (rtrim(location, '/'));
