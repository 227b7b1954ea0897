-- agentd-server schema. Ids are TEXT uuids; timestamps are INTEGER unix milliseconds
-- (server clock). Only portable SQL: the same schema runs on PostgreSQL with BIGINT/TEXT.

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    repos       TEXT NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    is_admin    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE token_workspaces (
    token_id     TEXT NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, workspace_id)
);

CREATE TABLE runtimes (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    daemon_id    TEXT NOT NULL,
    provider     TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL DEFAULT '',
    device_name  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL,
    last_seen_at INTEGER,
    created_at   INTEGER NOT NULL,
    UNIQUE (workspace_id, daemon_id, provider)
);

CREATE TABLE agents (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    runtime_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    instructions TEXT NOT NULL DEFAULT '',
    model        TEXT NOT NULL DEFAULT '',
    custom_args  TEXT NOT NULL DEFAULT '[]',
    custom_env   TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL
);

CREATE TABLE issues (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    title             TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL,
    assignee_agent_id TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX issues_workspace ON issues (workspace_id, created_at);

CREATE TABLE comments (
    id          TEXT PRIMARY KEY,
    issue_id    TEXT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    author_type TEXT NOT NULL,
    author_id   TEXT NOT NULL,
    author_name TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX comments_issue ON comments (issue_id, created_at);

CREATE TABLE tasks (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    issue_id           TEXT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    agent_id           TEXT NOT NULL,
    runtime_id         TEXT NOT NULL,
    status             TEXT NOT NULL,
    claim_key          TEXT,
    task_token_hash    TEXT,
    trigger_comment_id TEXT,
    output             TEXT,
    error              TEXT,
    failure_reason     TEXT,
    session_id         TEXT,
    work_dir           TEXT,
    parent_task_id     TEXT,
    created_at         INTEGER NOT NULL,
    dispatched_at      INTEGER,
    started_at         INTEGER,
    completed_at       INTEGER
);
CREATE INDEX tasks_claim ON tasks (runtime_id, status, created_at);
CREATE INDEX tasks_issue ON tasks (issue_id, created_at);
CREATE UNIQUE INDEX tasks_token ON tasks (task_token_hash);

CREATE TABLE task_messages (
    task_id    TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    tool       TEXT,
    content    TEXT,
    input      TEXT,
    output     TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE task_usage (
    task_id            TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    provider           TEXT NOT NULL,
    model              TEXT NOT NULL,
    input_tokens       BIGINT NOT NULL DEFAULT 0,
    output_tokens      BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, provider, model)
);
