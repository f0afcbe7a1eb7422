-- PostgreSQL translation of migrations/sqlite/0005_views.sql (same conventions as 0001).
-- Names are shared with tables: every name claim (table or view create, rename, undrop)
-- takes the warehouse's location advisory lock first, so the cross-table check cannot race.

CREATE TABLE views (
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
CREATE INDEX views_by_warehouse ON views (warehouse_id);
