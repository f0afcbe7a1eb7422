-- PostgreSQL translation of migrations/sqlite/0001_init.sql. Conventions: ids are hyphenated
-- UUID text; timestamps are unix milliseconds (BIGINT); JSON columns hold serialized objects
-- the store treats as opaque (TEXT, so they round-trip byte for byte). Every text column uses
-- the "C" collation: keyset paging and the location-prefix range probes rely on bytewise
-- ordering, whatever the database's default collation is.

CREATE TABLE settings (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    email         TEXT,
    friendly_name TEXT,
    source        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE access_keys (
    access_key_id     TEXT COLLATE "C" PRIMARY KEY,
    user_id           TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_ciphertext BYTEA NOT NULL,
    created_at        BIGINT NOT NULL,
    last_used_at      BIGINT
);
CREATE INDEX access_keys_by_user ON access_keys (user_id);

CREATE TABLE warehouses (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    name               TEXT COLLATE "C" NOT NULL UNIQUE,
    storage_profile    TEXT NOT NULL,
    storage_credential BYTEA,
    delete_profile     TEXT NOT NULL,
    status             TEXT NOT NULL,
    location           TEXT COLLATE "C" NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- `name` is the full storage key (levels joined by U+001F).
CREATE TABLE namespaces (
    id           TEXT COLLATE "C" PRIMARY KEY,
    warehouse_id TEXT COLLATE "C" NOT NULL REFERENCES warehouses (id),
    name         TEXT COLLATE "C" NOT NULL,
    parent_id    TEXT COLLATE "C" REFERENCES namespaces (id),
    properties   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (warehouse_id, name)
);
CREATE INDEX namespaces_by_parent ON namespaces (parent_id, name);
CREATE INDEX namespaces_top_level ON namespaces (warehouse_id, name) WHERE parent_id IS NULL;

CREATE TABLE tables (
    id                TEXT COLLATE "C" PRIMARY KEY,
    warehouse_id      TEXT COLLATE "C" NOT NULL REFERENCES warehouses (id),
    namespace_id      TEXT COLLATE "C" NOT NULL REFERENCES namespaces (id),
    name              TEXT COLLATE "C" NOT NULL,
    location          TEXT COLLATE "C" NOT NULL,
    metadata_location TEXT COLLATE "C" NOT NULL,
    metadata_json     TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (namespace_id, name)
);
-- Queries must use exactly this expression for the planner to pick the index.
CREATE INDEX tables_by_location ON tables (warehouse_id, rtrim(location, '/'));
