-- PostgreSQL translation of migrations/sqlite/0002_auth.sql (same conventions as 0001).

CREATE TABLE groups (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    description TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT COLLATE "C" NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_by_user ON group_members (user_id, group_id);

CREATE TABLE policies (
    id              TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT COLLATE "C" NOT NULL UNIQUE,
    description     TEXT,
    statements_json TEXT NOT NULL,
    builtin         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE user_policies (
    user_id   TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    policy_id TEXT COLLATE "C" NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, policy_id)
);
CREATE INDEX user_policies_by_policy ON user_policies (policy_id);

CREATE TABLE group_policies (
    group_id  TEXT COLLATE "C" NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    policy_id TEXT COLLATE "C" NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, policy_id)
);
CREATE INDEX group_policies_by_policy ON group_policies (policy_id);

-- Append-only; ids come from an identity sequence (never reused), so an id is a stable
-- paging cursor.
CREATE TABLE audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor_id   TEXT,
    actor_name TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    result     TEXT NOT NULL,
    detail     TEXT
);
