-- Runtime pools and automatic retries (issue 14).
-- A runtime says how many tasks its daemon runs at once (NULL: it did not say) and its
-- labels (JSON array of strings, e.g. ["gpu", "os=linux"]).
ALTER TABLE runtimes ADD COLUMN capacity INTEGER;
ALTER TABLE runtimes ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
-- An agent's pool (JSON {"runtime_ids": [...], "provider": "...", "labels": [...]}); NULL:
-- the agent runs on `runtime_id` alone, as before. Retries of transient failures per task
-- chain, and a cap on its tasks in flight (NULL: no cap beyond the runtimes' capacity).
ALTER TABLE agents ADD COLUMN pool TEXT;
ALTER TABLE agents ADD COLUMN max_retries INTEGER NOT NULL DEFAULT 2;
ALTER TABLE agents ADD COLUMN max_concurrency INTEGER;
-- A task's attempt (1 for the first run; a retry is parent's + 1) and the time before
-- which no runtime may claim it (a retry's backoff). A pool agent's queued task has
-- runtime_id '' until a runtime of the pool claims it.
ALTER TABLE tasks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN not_before INTEGER;
CREATE INDEX tasks_agent_status ON tasks (agent_id, status);
