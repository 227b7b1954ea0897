-- Accounts, sign-in, roles, invitations and the audit log (issue 15; docs/accounts.md).
-- PostgreSQL's 0004_accounts.sql is the same schema.

-- A person. `email` is stored lowercased and trimmed (the sign-in key).
-- `password_hash`: argon2id PHC string; NULL = cannot sign in with a password (an
-- OIDC-provisioned user, or the upgrade's admin before someone takes it over).
-- `is_admin`: server admin (every workspace, every route, like the admin token).
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    INTEGER NOT NULL
);

-- A user's role in a workspace: owner, admin, member or viewer.
CREATE TABLE memberships (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- A board session: the cookie holds a random id, stored here as SHA-256 hex. The CSRF
-- token is the synchronizer token state-changing cookie requests must echo.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id);

-- A single-use invitation link to a workspace with a role; the link's secret is stored
-- as SHA-256 hex.
CREATE TABLE invitations (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    email        TEXT,
    created_by   TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER,
    used_by      TEXT,
    revoked_at   INTEGER
);
CREATE INDEX invitations_workspace ON invitations (workspace_id);

-- Append-only: no API edits it, and the triggers below refuse UPDATE and DELETE.
-- actor_kind: user, token, system or anonymous (a failed sign-in). No foreign keys, so
-- a deleted workspace or user leaves its history. `detail` is a JSON object.
CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY,
    at           INTEGER NOT NULL,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT,
    actor_name   TEXT NOT NULL DEFAULT '',
    action       TEXT NOT NULL,
    workspace_id TEXT,
    target       TEXT NOT NULL DEFAULT '',
    source_ip    TEXT NOT NULL DEFAULT '',
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX audit_log_workspace ON audit_log (workspace_id, at);
-- Failed sign-ins are counted per account (target) and per source IP.
CREATE INDEX audit_log_action_target ON audit_log (action, target, at);
CREATE INDEX audit_log_action_ip ON audit_log (action, source_ip, at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- Tokens are owned by a user: a token acts with its owner's role in each of its
-- workspaces. NULL: the server's own admin token.
ALTER TABLE api_tokens ADD COLUMN owner_user_id TEXT REFERENCES users(id) ON DELETE SET NULL;
CREATE INDEX api_tokens_owner ON api_tokens (owner_user_id);

-- Upgrade: a server that already has tokens gets an admin user that owns all its
-- non-admin tokens, so they keep working. It has no password; docs/accounts.md says how
-- to take it over (`agentd user take-over`).
INSERT INTO users (id, email, name, password_hash, is_admin, disabled, created_at)
SELECT '00000000-0000-4000-8000-000000000001', 'admin@agentd.invalid', 'Upgraded admin',
       NULL, TRUE, FALSE, COALESCE(MIN(created_at), 0)
FROM api_tokens WHERE kind <> 'admin' HAVING COUNT(*) > 0;
UPDATE api_tokens SET owner_user_id = '00000000-0000-4000-8000-000000000001'
WHERE kind <> 'admin'
  AND EXISTS (SELECT 1 FROM users WHERE id = '00000000-0000-4000-8000-000000000001');
