-- PostgreSQL translation of migrations/sqlite/0004_external_identities.sql.

CREATE TABLE external_identities (
    source     TEXT COLLATE "C" NOT NULL,
    subject    TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (source, subject)
);
CREATE INDEX external_identities_by_user ON external_identities (user_id, source, subject);
