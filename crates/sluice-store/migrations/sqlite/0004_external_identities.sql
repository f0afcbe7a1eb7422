-- Links from identities in external systems (OIDC, LDAP, AWS IAM, web identity) to users.
-- Same conventions as 0001 (hyphenated UUID text ids, unix-millisecond INTEGER timestamps).
--
-- One identity maps to at most one user (the primary key); a user may have several. The
-- primary key is what makes concurrent first logins of the same identity end with a single
-- user: the loser's insert fails and its whole transaction rolls back.

CREATE TABLE external_identities (
    source     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (source, subject)
) WITHOUT ROWID;
-- A user's links in (source, subject) order without a sort, and the user-delete cascade.
CREATE INDEX external_identities_by_user ON external_identities (user_id, source, subject);
