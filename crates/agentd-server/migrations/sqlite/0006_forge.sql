-- Forge connections and pull requests (issue 12; docs/api.md, "Forges and pull requests").
-- One connection per workspace. `token` is the forge API token (write-only through the
-- API; the database file is 0600). `webhook_secret` verifies webhook signatures.
-- `repo_key` is `repo` lowercased (GitHub owner/name are case-insensitive): webhooks find
-- their workspace by (kind, repo_key).
CREATE TABLE forge_connections (
    workspace_id   TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    api_url        TEXT NOT NULL,
    repo           TEXT NOT NULL,
    repo_key       TEXT NOT NULL,
    token          TEXT NOT NULL,
    webhook_secret TEXT NOT NULL,
    poll           BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX forge_connections_repo ON forge_connections (kind, repo_key);

-- A pull request the server opened (or adopted) for an issue's pushed branch. `task_id`
-- is the task whose push it last carried, `agent_id` the agent a review's follow-up goes
-- to. state: open | merged | closed.
CREATE TABLE pull_requests (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    issue_id     TEXT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    task_id      TEXT NOT NULL,
    agent_id     TEXT NOT NULL,
    number       INTEGER NOT NULL,
    url          TEXT NOT NULL,
    state        TEXT NOT NULL,
    head_branch  TEXT NOT NULL,
    head_sha     TEXT NOT NULL DEFAULT '',
    base_branch  TEXT NOT NULL,
    review_state TEXT,
    checks_state TEXT,
    polled_at    INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (workspace_id, number)
);
CREATE INDEX pull_requests_issue ON pull_requests (issue_id, created_at);
CREATE INDEX pull_requests_branch ON pull_requests (workspace_id, head_branch, state);

-- Webhook deliveries already applied (GitHub keeps `X-GitHub-Delivery` on a redelivery).
CREATE TABLE forge_deliveries (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    delivery_id  TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, delivery_id)
);
