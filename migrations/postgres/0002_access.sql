-- Access (Art. 13): users with roles granted over a region subtree, bearer tokens
-- (stored as SHA-256 hashes only), and an append-only audit log.

CREATE TABLE users (
    name          text PRIMARY KEY,
    -- argon2id PHC string; NULL for accounts that only ever use issued tokens.
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now()
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
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX tokens_user ON tokens (user_name);

-- Every read of unmasked personal data and every write. scope_code is the region or
-- grid the data belongs to, so an auditor sees the entries of their jurisdiction.
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    resource   text NOT NULL,
    scope_code text NOT NULL,
    detail     jsonb NOT NULL
);
CREATE INDEX audit_log_scope ON audit_log (scope_code, at);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
