-- Conventions: ids are hyphenated UUID text; timestamps are unix milliseconds (INTEGER), so
-- they sort numerically and round-trip exactly through chrono at millisecond precision;
-- JSON columns hold serialized objects the store treats as opaque.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL UNIQUE,
    email         TEXT,
    friendly_name TEXT,
    source        TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE access_keys (
    access_key_id     TEXT PRIMARY KEY NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_ciphertext BLOB NOT NULL,
    created_at        INTEGER NOT NULL,
    last_used_at      INTEGER
);
CREATE INDEX access_keys_by_user ON access_keys (user_id);

CREATE TABLE warehouses (
    id                 TEXT PRIMARY KEY NOT NULL,
    name               TEXT NOT NULL UNIQUE,
    storage_profile    TEXT NOT NULL,
    storage_credential BLOB,
    delete_profile     TEXT NOT NULL,
    status             TEXT NOT NULL,
    location           TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- `name` is the full storage key (levels joined by U+001F). Siblings share the prefix
-- "<parent key>\x1f", so ordering by the full key orders siblings by their last level.
CREATE TABLE namespaces (
    id           TEXT PRIMARY KEY NOT NULL,
    warehouse_id TEXT NOT NULL REFERENCES warehouses (id),
    name         TEXT NOT NULL,
    parent_id    TEXT REFERENCES namespaces (id),
    properties   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (warehouse_id, name)
);
-- Child listing, and the FK check SQLite runs when a namespace row is deleted.
CREATE INDEX namespaces_by_parent ON namespaces (parent_id, name);
-- Top-level listing without walking every nested namespace of the warehouse.
CREATE INDEX namespaces_top_level ON namespaces (warehouse_id, name) WHERE parent_id IS NULL;

CREATE TABLE tables (
    id                TEXT PRIMARY KEY NOT NULL,
    warehouse_id      TEXT NOT NULL REFERENCES warehouses (id),
    namespace_id      TEXT NOT NULL REFERENCES namespaces (id),
    name              TEXT NOT NULL,
    location          TEXT NOT NULL,
    metadata_location TEXT NOT NULL,
    metadata_json     TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    -- Also the index for listing a namespace's tables by name.
    UNIQUE (namespace_id, name)
);
-- Overlap checks compare locations without trailing slashes; queries must use exactly this
-- expression for the planner to pick the index.
CREATE INDEX tables_by_location ON tables (warehouse_id, rtrim(location, '/'));
