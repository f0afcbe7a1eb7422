-- PostgreSQL translation of migrations/sqlite/0006_soft_delete_views.sql.
ALTER TABLE deleted_tables ADD COLUMN kind TEXT COLLATE "C" NOT NULL DEFAULT 'table'
    CHECK (kind IN ('table', 'view'));
