-- Access (Art. 13): users with roles granted over a region subtree, bearer tokens
-- (stored as SHA-256 hashes only), and an append-only audit log.

CREATE TABLE users (
    name          text PRIMARY KEY,
    -- argon2id PHC string; NULL for accounts that only ever use issued tokens.
    password_hash text,
    created_at    text NOT NULL
);

CREATE TABLE user_grants (
    user_name  text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('city_admin', 'planner', 'dispatcher',
                 'grid_member', 'department_handler', 'auditor')),
    scope_code text NOT NULL,
    PRIMARY KEY (user_name, role, scope_code)
);

CREATE TABLE tokens (
    hash       text PRIMARY KEY,
    user_name  text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    label      text NOT NULL,
    created_at text NOT NULL,
    expires_at text NOT NULL,
    revoked_at text
);
CREATE INDEX tokens_user ON tokens (user_name);

-- Every read of unmasked personal data and every write. scope_code is the region or
-- grid the data belongs to, so an auditor sees the entries of their jurisdiction.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         text NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    resource   text NOT NULL,
    scope_code text NOT NULL,
    detail     text NOT NULL
);
CREATE INDEX audit_log_scope ON audit_log (scope_code, at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
