-- Token kinds and lifecycle (issue 11, part 4; docs/api.md, "Tokens").
-- kind: 'admin' (the server's admin token), 'member' (a person: the user API) or
-- 'daemon' (a machine: the daemon API, and only on the runtimes it registered).
ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'member';
UPDATE api_tokens SET kind = 'admin' WHERE is_admin;
ALTER TABLE api_tokens DROP COLUMN is_admin;
-- The token that created this one (NULL: the server itself, e.g. the admin token).
ALTER TABLE api_tokens ADD COLUMN created_by TEXT;
-- Unix ms; NULL = never. A token past expires_at or with revoked_at set is refused (401).
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
-- When the token was last accepted, written at most once a minute per token.
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
CREATE INDEX api_tokens_created_by ON api_tokens (created_by);

-- The token that registered the runtime (its owner): a daemon token acts only on the
-- runtimes it owns and their tasks. NULL: registered before owners were recorded (the
-- next register adopts it).
ALTER TABLE runtimes ADD COLUMN owner_token_id TEXT;
-- The owner of the claiming runtime when the task was claimed: that token may keep
-- reporting about the task even after its runtime was deleted and re-registered.
ALTER TABLE tasks ADD COLUMN claimed_by TEXT;
