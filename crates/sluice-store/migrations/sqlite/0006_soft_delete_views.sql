-- Soft-deleted views share deleted_tables with tables (a view row has exactly a table's
-- columns), so listing, undrop and the leased purge serve both. Existing rows are tables.
ALTER TABLE deleted_tables ADD COLUMN kind TEXT NOT NULL DEFAULT 'table'
    CHECK (kind IN ('table', 'view'));
