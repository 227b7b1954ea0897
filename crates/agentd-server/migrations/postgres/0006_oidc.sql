-- OIDC single sign-on (issue 15 layer 7; docs/accounts.md, "Single sign-on (OIDC)").
-- The other engine's migration is the same schema.

-- A sign-in started at the provider and not yet come back: the `state` it was sent with
-- (stored as SHA-256 hex), the nonce the ID token must carry and the PKCE verifier.
-- In the database so any instance can take the callback; a row is deleted when its
-- callback arrives (single use), and expired ones when new sign-ins start.
CREATE TABLE oidc_logins (
    state_hash    TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX oidc_logins_expires ON oidc_logins (expires_at);

-- The role a user provisioned by OIDC gets in this workspace (viewer, member or admin);
-- NULL: none (such users join by invitation).
ALTER TABLE workspaces ADD COLUMN oidc_default_role TEXT;
