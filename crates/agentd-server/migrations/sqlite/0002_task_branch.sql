-- The branch the daemon committed the task's work on (from its complete report).
ALTER TABLE tasks ADD COLUMN branch_name TEXT;
