-- Accounts, sign-in, roles, invitations and the audit log (issue 15; docs/accounts.md).
-- SQLite's 0010_accounts.sql is the same schema (see the comments there).

CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    email         TEXT COLLATE "C" NOT NULL UNIQUE,
    name          TEXT COLLATE "C" NOT NULL DEFAULT '',
    password_hash TEXT COLLATE "C",
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE memberships (
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role         TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE sessions (
    id_hash     TEXT COLLATE "C" PRIMARY KEY,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token  TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE invitations (
    id           TEXT COLLATE "C" PRIMARY KEY,
    token_hash   TEXT COLLATE "C" NOT NULL UNIQUE,
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    role         TEXT COLLATE "C" NOT NULL,
    email        TEXT COLLATE "C",
    created_by   TEXT COLLATE "C",
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    used_by      TEXT COLLATE "C",
    revoked_at   BIGINT
);
CREATE INDEX invitations_workspace ON invitations (workspace_id);

CREATE TABLE audit_log (
    id           TEXT COLLATE "C" PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor_kind   TEXT COLLATE "C" NOT NULL,
    actor_id     TEXT COLLATE "C",
    actor_name   TEXT COLLATE "C" NOT NULL DEFAULT '',
    action       TEXT COLLATE "C" NOT NULL,
    workspace_id TEXT COLLATE "C",
    target       TEXT COLLATE "C" NOT NULL DEFAULT '',
    source_ip    TEXT COLLATE "C" NOT NULL DEFAULT '',
    detail       TEXT COLLATE "C" NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX audit_log_workspace ON audit_log (workspace_id, at);
CREATE INDEX audit_log_action_target ON audit_log (action, target, at);
CREATE INDEX audit_log_action_ip ON audit_log (action, source_ip, at);
CREATE FUNCTION agentd_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$fn$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION agentd_audit_append_only();

ALTER TABLE api_tokens ADD COLUMN owner_user_id TEXT COLLATE "C" REFERENCES users(id) ON DELETE SET NULL;
CREATE INDEX api_tokens_owner ON api_tokens (owner_user_id);

INSERT INTO users (id, email, name, password_hash, is_admin, disabled, created_at)
SELECT '00000000-0000-4000-8000-000000000001', 'admin@agentd.invalid', 'Upgraded admin',
       NULL, TRUE, FALSE, COALESCE(MIN(created_at), 0)
FROM api_tokens WHERE kind <> 'admin' HAVING COUNT(*) > 0;
UPDATE api_tokens SET owner_user_id = '00000000-0000-4000-8000-000000000001'
WHERE kind <> 'admin'
  AND EXISTS (SELECT 1 FROM users WHERE id = '00000000-0000-4000-8000-000000000001');
