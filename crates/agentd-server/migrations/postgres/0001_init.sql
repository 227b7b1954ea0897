-- agentd-server schema on PostgreSQL: the schema SQLite reaches after its migrations
-- 0001..0008 (migrations/sqlite), in one step. Ids are TEXT uuids; timestamps are BIGINT
-- unix milliseconds (server clock); counters BIGINT. Text columns use the "C" collation,
-- so ordering and id-prefix ranges (`id >= $1 AND id < $2`) compare bytes as SQLite's
-- BINARY does, whatever the database's locale, and LOWER() folds ASCII only, as
-- SQLite's does. A later change adds a migration here AND one in migrations/sqlite.

CREATE TABLE workspaces (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    repos       TEXT NOT NULL DEFAULT '[]',
    created_at  BIGINT NOT NULL,
    -- The prefix of its issue keys (`AGD` → `AGD-12`), unique on the server; `issue_seq`
    -- is the last issue number handed out (bumped in the issue's insert transaction).
    key         TEXT COLLATE "C",
    issue_seq   BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX workspaces_key ON workspaces (key);

-- kind: 'admin' | 'member' | 'daemon'. A token past expires_at or with revoked_at set is
-- refused. last_used_at is written at most once a minute per token.
CREATE TABLE api_tokens (
    id           TEXT COLLATE "C" PRIMARY KEY,
    token_hash   TEXT COLLATE "C" NOT NULL UNIQUE,
    name         TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    kind         TEXT COLLATE "C" NOT NULL DEFAULT 'member',
    created_by   TEXT COLLATE "C",
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_created_by ON api_tokens (created_by);

CREATE TABLE token_workspaces (
    token_id     TEXT COLLATE "C" NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, workspace_id)
);

CREATE TABLE runtimes (
    id             TEXT COLLATE "C" PRIMARY KEY,
    workspace_id   TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    daemon_id      TEXT COLLATE "C" NOT NULL,
    provider       TEXT COLLATE "C" NOT NULL,
    name           TEXT COLLATE "C" NOT NULL,
    version        TEXT NOT NULL DEFAULT '',
    device_name    TEXT NOT NULL DEFAULT '',
    status         TEXT COLLATE "C" NOT NULL,
    last_seen_at   BIGINT,
    created_at     BIGINT NOT NULL,
    owner_token_id TEXT COLLATE "C",
    sandbox        TEXT,
    UNIQUE (workspace_id, daemon_id, provider)
);
CREATE INDEX runtimes_daemon ON runtimes (daemon_id);

CREATE TABLE agents (
    id           TEXT COLLATE "C" PRIMARY KEY,
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    runtime_id   TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    instructions TEXT NOT NULL DEFAULT '',
    model        TEXT NOT NULL DEFAULT '',
    custom_args  TEXT NOT NULL DEFAULT '[]',
    custom_env   TEXT NOT NULL DEFAULT '{}',
    created_at   BIGINT NOT NULL
);

CREATE TABLE issues (
    id                TEXT COLLATE "C" PRIMARY KEY,
    workspace_id      TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    title             TEXT COLLATE "C" NOT NULL,
    description       TEXT COLLATE "C" NOT NULL DEFAULT '',
    status            TEXT COLLATE "C" NOT NULL,
    assignee_agent_id TEXT COLLATE "C",
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    number            BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX issues_workspace ON issues (workspace_id, created_at);
CREATE UNIQUE INDEX issues_number ON issues (workspace_id, number);

CREATE TABLE comments (
    id          TEXT COLLATE "C" PRIMARY KEY,
    issue_id    TEXT COLLATE "C" NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    author_type TEXT COLLATE "C" NOT NULL,
    author_id   TEXT COLLATE "C" NOT NULL,
    author_name TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX comments_issue ON comments (issue_id, created_at);

CREATE TABLE tasks (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    workspace_id       TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    issue_id           TEXT COLLATE "C" NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    agent_id           TEXT COLLATE "C" NOT NULL,
    runtime_id         TEXT COLLATE "C" NOT NULL,
    status             TEXT COLLATE "C" NOT NULL,
    claim_key          TEXT COLLATE "C",
    task_token_hash    TEXT COLLATE "C",
    trigger_comment_id TEXT COLLATE "C",
    output             TEXT,
    error              TEXT,
    failure_reason     TEXT COLLATE "C",
    session_id         TEXT,
    work_dir           TEXT,
    parent_task_id     TEXT COLLATE "C",
    created_at         BIGINT NOT NULL,
    dispatched_at      BIGINT,
    started_at         BIGINT,
    completed_at       BIGINT,
    branch_name        TEXT,
    -- Leases (docs/protocol.md): the claiming daemon and the lease's last renewal.
    daemon_id          TEXT COLLATE "C",
    held_at            BIGINT,
    late_report        TEXT,
    claimed_by         TEXT COLLATE "C",
    queued_by_kind     TEXT,
    queued_by_name     TEXT,
    cancelled_by_kind  TEXT,
    cancelled_by_name  TEXT,
    retry_task_id      TEXT COLLATE "C"
);
CREATE INDEX tasks_claim ON tasks (runtime_id, status, created_at);
CREATE INDEX tasks_issue ON tasks (issue_id, created_at);
CREATE INDEX tasks_daemon ON tasks (daemon_id) WHERE status IN ('dispatched', 'running');
CREATE UNIQUE INDEX tasks_token ON tasks (task_token_hash);

CREATE TABLE task_messages (
    task_id    TEXT COLLATE "C" NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    tool       TEXT,
    content    TEXT,
    input      TEXT,
    output     TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE task_usage (
    task_id            TEXT COLLATE "C" NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    provider           TEXT COLLATE "C" NOT NULL,
    model              TEXT COLLATE "C" NOT NULL,
    input_tokens       BIGINT NOT NULL DEFAULT 0,
    output_tokens      BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, provider, model)
);

CREATE TABLE forge_connections (
    workspace_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
    kind           TEXT COLLATE "C" NOT NULL,
    api_url        TEXT NOT NULL,
    repo           TEXT NOT NULL,
    repo_key       TEXT COLLATE "C" NOT NULL,
    token          TEXT NOT NULL,
    webhook_secret TEXT NOT NULL,
    poll           BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX forge_connections_repo ON forge_connections (kind, repo_key);

CREATE TABLE pull_requests (
    id           TEXT COLLATE "C" PRIMARY KEY,
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    issue_id     TEXT COLLATE "C" NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    task_id      TEXT COLLATE "C" NOT NULL,
    agent_id     TEXT COLLATE "C" NOT NULL,
    number       BIGINT NOT NULL,
    url          TEXT NOT NULL,
    state        TEXT COLLATE "C" NOT NULL,
    head_branch  TEXT COLLATE "C" NOT NULL,
    head_sha     TEXT NOT NULL DEFAULT '',
    base_branch  TEXT NOT NULL,
    review_state TEXT,
    checks_state TEXT,
    polled_at    BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (workspace_id, number)
);
CREATE INDEX pull_requests_issue ON pull_requests (issue_id, created_at);
CREATE INDEX pull_requests_branch ON pull_requests (workspace_id, head_branch, state);

CREATE TABLE forge_deliveries (
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    delivery_id  TEXT COLLATE "C" NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, delivery_id)
);

CREATE TABLE task_diffs (
    task_id      TEXT COLLATE "C" PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
    base_commit  TEXT NOT NULL,
    head_commit  TEXT NOT NULL,
    files        TEXT NOT NULL,
    files_count  BIGINT NOT NULL,
    additions    BIGINT NOT NULL,
    deletions    BIGINT NOT NULL,
    patch        TEXT NOT NULL,
    truncated    BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL
);

-- `seq` orders events of the same millisecond: an identity column (SQLite: INTEGER
-- PRIMARY KEY). BY DEFAULT, so `agentd server migrate-to` can copy SQLite's values.
CREATE TABLE issue_events (
    seq         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    issue_id    TEXT COLLATE "C" NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    detail      TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX issue_events_issue ON issue_events (issue_id, created_at);

CREATE TABLE signin_codes (
    code_hash  TEXT COLLATE "C" PRIMARY KEY,
    token_id   TEXT COLLATE "C" NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
