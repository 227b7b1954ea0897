-- What a task's run changed (issue 12), from the final report (complete or fail) that
-- ended the task: one row per task, written in the same transaction as that transition,
-- so a replayed report neither duplicates nor replaces it. `files` is the JSON array of
-- the proto's `DiffFile` (at most 5,000 entries); `files_count` counts every changed
-- file, also those cut from the list. `patch` is the unified diff, at most 256 KiB, cut
-- at a line with a marker when it was longer (`truncated`).
CREATE TABLE task_diffs (
    task_id      TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
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
