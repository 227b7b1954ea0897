-- Issue 16: issue keys, who did what (activity), one retry per task, board sign-in codes.

-- A workspace's `key` prefixes its issue keys (`AGD` → `AGD-12`): unique on the server.
-- Existing workspaces get theirs when the server opens the database (derived from the
-- name in Rust: `service::workspace::backfill_keys`). `issue_seq` is the last issue
-- number handed out, bumped in the transaction that inserts an issue, so numbers are
-- never reused and concurrent creates never share one.
ALTER TABLE workspaces ADD COLUMN key TEXT;
ALTER TABLE workspaces ADD COLUMN issue_seq INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX workspaces_key ON workspaces (key);

-- An issue's number in its workspace: 1, 2, … in creation order (existing issues by
-- (created_at, id)).
ALTER TABLE issues ADD COLUMN number INTEGER NOT NULL DEFAULT 0;
UPDATE issues SET number = (
    SELECT COUNT(*) FROM issues o WHERE o.workspace_id = issues.workspace_id
    AND (o.created_at < issues.created_at OR (o.created_at = issues.created_at AND o.id <= issues.id))
);
UPDATE workspaces SET issue_seq = (
    SELECT COALESCE(MAX(i.number), 0) FROM issues i WHERE i.workspace_id = workspaces.id
);
CREATE UNIQUE INDEX issues_number ON issues (workspace_id, number);

-- Who queued a task (a member's create, comment or retry; a reviewer; NULL: the server)
-- and who cancelled it, as an actor: kind (`member`, `admin`, `agent`, `system`,
-- `forge`) and name. `retry_task_id` is the task's retry: set once, by a guarded update in
-- the retry's own transaction, so a task is retried at most once. Existing retries: the
-- oldest task whose parent it is.
ALTER TABLE tasks ADD COLUMN queued_by_kind TEXT;
ALTER TABLE tasks ADD COLUMN queued_by_name TEXT;
ALTER TABLE tasks ADD COLUMN cancelled_by_kind TEXT;
ALTER TABLE tasks ADD COLUMN cancelled_by_name TEXT;
ALTER TABLE tasks ADD COLUMN retry_task_id TEXT;
UPDATE tasks SET retry_task_id = (
    SELECT r.id FROM tasks r WHERE r.parent_task_id = tasks.id ORDER BY r.created_at, r.id LIMIT 1
);

-- What happened to an issue that its rows do not say: its creation, status changes,
-- (re)assignments and edits, each with who did it. Written in the transaction of the
-- change. Comments and runs are read from their own rows. `seq` orders events of the
-- same millisecond (INTEGER PRIMARY KEY: SQLite's rowid; an identity column elsewhere).
CREATE TABLE issue_events (
    seq         INTEGER PRIMARY KEY,
    issue_id    TEXT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    detail      TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX issue_events_issue ON issue_events (issue_id, created_at);

-- One-time board sign-in codes: only the SHA-256 of the code is kept. `token_id` is the
-- token that made it; `used_at` is set by the one exchange that consumes it.
CREATE TABLE signin_codes (
    code_hash  TEXT PRIMARY KEY,
    token_id   TEXT NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
