-- Task leases (docs/protocol.md, "Leases"): the daemon that claimed the task, and when
-- that daemon last said it still holds it (claim, a heartbeat listing it, any report).
-- A task whose lease is older than `offline_after` is failed by the sweeper.
ALTER TABLE tasks ADD COLUMN daemon_id TEXT;
ALTER TABLE tasks ADD COLUMN held_at INTEGER;
-- The first final report (complete or fail) that arrived after the task had already
-- ended, kept so a replay of it posts nothing twice.
ALTER TABLE tasks ADD COLUMN late_report TEXT;
