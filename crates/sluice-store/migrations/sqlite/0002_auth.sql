-- Identity and access: groups, memberships, policies, their attachments, and the audit log.
-- Same conventions as 0001 (hyphenated UUID text ids, unix-millisecond INTEGER timestamps).
--
-- Dependents cascade from their parents (the store connects with foreign_keys=ON), so
-- deleting a user, group or policy is a single atomic DELETE. SQLite looks dependents up by
-- the child column on every parent delete; each such column below is the leading column of
-- a primary key or index, so cascades are index probes rather than table scans.

CREATE TABLE groups (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
-- A user's groups (effective policies, list_user_groups) and the user-delete cascade.
CREATE INDEX group_members_by_user ON group_members (user_id, group_id);

CREATE TABLE policies (
    id              TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL UNIQUE,
    description     TEXT,
    -- Opaque to the store; parsed and validated by the auth layer.
    statements_json TEXT NOT NULL,
    builtin         INTEGER NOT NULL DEFAULT 0 CHECK (builtin IN (0, 1)),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- The primary key (user_id first) serves lookups by user and the user-delete cascade.
CREATE TABLE user_policies (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    policy_id TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, policy_id)
) WITHOUT ROWID;
-- The policy-delete cascade.
CREATE INDEX user_policies_by_policy ON user_policies (policy_id);

-- The primary key (group_id first) serves lookups by group and the group-delete cascade.
CREATE TABLE group_policies (
    group_id  TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    policy_id TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, policy_id)
) WITHOUT ROWID;
-- The policy-delete cascade.
CREATE INDEX group_policies_by_policy ON group_policies (policy_id);

-- Append-only. AUTOINCREMENT guarantees ids are never reused, even after the newest rows
-- are deleted (e.g. by future retention), so an id is a stable paging cursor. `id` is the
-- rowid, i.e. the table's own b-tree key: `WHERE id < ? ORDER BY id DESC LIMIT ?` (newest
-- first) is a backwards range scan of the table itself, with no sort and no extra index.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor_id   TEXT,
    actor_name TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    result     TEXT NOT NULL,
    detail     TEXT
);
