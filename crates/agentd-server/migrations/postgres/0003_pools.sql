-- Runtime pools and automatic retries (issue 14); SQLite's 0009_pools.sql.
ALTER TABLE runtimes ADD COLUMN capacity BIGINT;
ALTER TABLE runtimes ADD COLUMN labels TEXT COLLATE "C" NOT NULL DEFAULT '[]';
ALTER TABLE agents ADD COLUMN pool TEXT COLLATE "C";
ALTER TABLE agents ADD COLUMN max_retries BIGINT NOT NULL DEFAULT 2;
ALTER TABLE agents ADD COLUMN max_concurrency BIGINT;
ALTER TABLE tasks ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN not_before BIGINT;
CREATE INDEX tasks_agent_status ON tasks (agent_id, status);

-- The claim learns pools, capacity, per-agent caps and retry backoff: $5 is the JSON
-- array of the pool agents this runtime serves (see `store::shared::claim_sql`, which a
-- unit test checks this runs). Besides the runtime's row, the function locks the rows of
-- those pool agents (in id order, so claims never deadlock): claims that may hand out the
-- same agent's tasks take turns, so the per-(issue, agent) and per-agent checks hold
-- across the runtimes of a pool.
DROP FUNCTION agentd_claim(TEXT, BIGINT, TEXT, TEXT);
CREATE FUNCTION agentd_claim(TEXT, BIGINT, TEXT, TEXT, TEXT) RETURNS SETOF tasks
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    PERFORM 1 FROM runtimes WHERE id = $1 FOR UPDATE;
    PERFORM 1 FROM agents WHERE id IN (SELECT jsonb_array_elements_text($5::jsonb))
        ORDER BY id FOR UPDATE;
    RETURN QUERY
    UPDATE tasks
    SET status = CASE WHEN status = 'queued' THEN 'dispatched' ELSE status END, dispatched_at = CASE WHEN status = 'queued' THEN $2 ELSE dispatched_at END, claim_key = CASE WHEN status = 'queued' THEN $3 ELSE claim_key END, daemon_id = CASE WHEN status = 'queued' THEN (SELECT r.daemon_id FROM runtimes r
    WHERE r.id = $1) ELSE daemon_id END, claimed_by = CASE WHEN status = 'queued' THEN (SELECT r.owner_token_id FROM runtimes r
    WHERE r.id = $1) ELSE claimed_by END, runtime_id = $1, task_token_hash = $4, held_at = $2
    WHERE id = COALESCE( (SELECT k.id FROM tasks k
    WHERE k.runtime_id = $1
    AND k.claim_key = $3
    AND k.status IN ('dispatched', 'running') LIMIT 1), (SELECT o.id FROM tasks o
    WHERE o.id IN ((SELECT q.id FROM tasks q
    WHERE q.status = 'queued'
    AND q.runtime_id = $1
    AND (q.not_before IS NULL OR q.not_before <= $2)
    AND NOT EXISTS (SELECT 1 FROM tasks a
    WHERE a.issue_id = q.issue_id
    AND a.agent_id = q.agent_id
    AND a.status IN ('dispatched', 'running'))
    AND (SELECT COUNT(*) FROM tasks f
    WHERE f.runtime_id = $1
    AND f.status IN ('dispatched', 'running')) < COALESCE((SELECT r.capacity FROM runtimes r
    WHERE r.id = $1), 1000000)
    AND (SELECT COUNT(*) FROM tasks g
    WHERE g.agent_id = q.agent_id
    AND g.status IN ('dispatched', 'running')) < COALESCE((SELECT c.max_concurrency FROM agents c
    WHERE c.id = q.agent_id), 1000000)
    ORDER BY q.created_at, q.id LIMIT 1 FOR UPDATE SKIP LOCKED), (SELECT q.id FROM tasks q
    WHERE q.status = 'queued'
    AND q.runtime_id = ''
    AND q.agent_id IN (SELECT jsonb_array_elements_text($5::jsonb))
    AND (q.not_before IS NULL OR q.not_before <= $2)
    AND NOT EXISTS (SELECT 1 FROM tasks a
    WHERE a.issue_id = q.issue_id
    AND a.agent_id = q.agent_id
    AND a.status IN ('dispatched', 'running'))
    AND (SELECT COUNT(*) FROM tasks f
    WHERE f.runtime_id = $1
    AND f.status IN ('dispatched', 'running')) < COALESCE((SELECT r.capacity FROM runtimes r
    WHERE r.id = $1), 1000000)
    AND (SELECT COUNT(*) FROM tasks g
    WHERE g.agent_id = q.agent_id
    AND g.status IN ('dispatched', 'running')) < COALESCE((SELECT c.max_concurrency FROM agents c
    WHERE c.id = q.agent_id), 1000000)
    ORDER BY q.created_at, q.id LIMIT 1 FOR UPDATE SKIP LOCKED))
    ORDER BY o.created_at, o.id LIMIT 1))
    AND (status = 'queued' OR (runtime_id = $1
    AND claim_key = $3
    AND status IN ('dispatched', 'running')))
    RETURNING *;
END
$fn$;
