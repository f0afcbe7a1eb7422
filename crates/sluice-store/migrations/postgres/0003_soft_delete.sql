-- PostgreSQL translation of migrations/sqlite/0003_soft_delete.sql (same conventions as 0001).

CREATE TABLE deleted_tables (
    id                TEXT COLLATE "C" PRIMARY KEY,
    warehouse_id      TEXT COLLATE "C" NOT NULL REFERENCES warehouses (id),
    -- Deliberately NO foreign key (see the SQLite migration).
    namespace_id      TEXT COLLATE "C" NOT NULL,
    namespace_name    TEXT COLLATE "C" NOT NULL,
    name              TEXT COLLATE "C" NOT NULL,
    location          TEXT COLLATE "C" NOT NULL,
    metadata_location TEXT COLLATE "C" NOT NULL,
    metadata_json     TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    deleted_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    deleted_by        TEXT,
    purge_requested   BOOLEAN NOT NULL DEFAULT FALSE,
    lease_until       BIGINT
);
CREATE INDEX deleted_tables_by_location ON deleted_tables (warehouse_id, rtrim(location, '/'));
CREATE INDEX deleted_tables_by_deletion ON deleted_tables (warehouse_id, deleted_at, id);
CREATE INDEX deleted_tables_by_expiry ON deleted_tables (expires_at, id);

CREATE INDEX tables_by_location_any ON tables (rtrim(location, '/'));
