-- The claim's plan no longer depends on fresh statistics (issue 13). During a burst of
-- claims the planner's statistics still say "no task is in flight" until autovacuum
-- analyzes, so it hashed every in-flight task for each claim, picked the partial index
-- tasks_daemon for lookups by runtime or agent, and sorted a runtime's whole queue:
-- a claim cost 12,000 buffer reads at 500 tasks in flight. Now
-- - tasks_claim ends in (created_at, id): the queue is read in claim order, no sort;
-- - tasks_agent_status also holds issue_id: the busy check and the agent's in-flight
--   count are both ranges of it;
-- - tasks_daemon's predicate names daemon_id, so only lookups by daemon can use it;
-- - tasks_claim_key finds a replayed claim by its key, not by reading every task the
--   runtime has in flight;
-- - agentd_claim runs the new `store::shared::claim_sql` (a unit test checks this file
--   against it): the busy check stays a per-candidate lookup, and the in-flight counts
--   run only for a runtime with a capacity or an agent with a max_concurrency.
DROP INDEX tasks_claim;
CREATE INDEX tasks_claim ON tasks (runtime_id, status, created_at, id);
DROP INDEX tasks_agent_status;
CREATE INDEX tasks_agent_status ON tasks (agent_id, status, issue_id);
DROP INDEX tasks_daemon;
CREATE INDEX tasks_daemon ON tasks (daemon_id)
    WHERE daemon_id IS NOT NULL AND status IN ('dispatched', 'running');
CREATE INDEX tasks_claim_key ON tasks (runtime_id, claim_key) WHERE claim_key IS NOT NULL;

-- Its statements run on generic plans, planned once per connection: planning each call
-- anew (custom plans) cost a quarter of a claim (pgbench on the function: 1,565-1,891
-- claims/s with custom plans, 1,976-2,493/s with generic), and the plan above does not
-- depend on the values.
CREATE OR REPLACE FUNCTION agentd_claim(TEXT, BIGINT, TEXT, TEXT, TEXT) RETURNS SETOF tasks
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $fn$
BEGIN
    PERFORM 1 FROM runtimes WHERE id = $1 FOR UPDATE;
    PERFORM 1 FROM agents WHERE id IN (SELECT jsonb_array_elements_text($5::jsonb))
        ORDER BY id FOR UPDATE;
    RETURN QUERY
    UPDATE tasks
    SET status = CASE WHEN status = 'queued' THEN 'dispatched' ELSE status END,
        dispatched_at = CASE WHEN status = 'queued' THEN $2 ELSE dispatched_at END,
        claim_key = CASE WHEN status = 'queued' THEN $3 ELSE claim_key END,
        daemon_id = CASE WHEN status = 'queued' THEN (SELECT r.daemon_id FROM runtimes r WHERE r.id = $1) ELSE daemon_id END,
        claimed_by = CASE WHEN status = 'queued' THEN (SELECT r.owner_token_id FROM runtimes r WHERE r.id = $1) ELSE claimed_by END,
        runtime_id = $1, task_token_hash = $4, held_at = $2
    WHERE id = COALESCE(
    (SELECT k.id FROM tasks k WHERE k.runtime_id = $1 AND k.claim_key = $3 AND k.status IN ('dispatched', 'running') LIMIT 1),
    (SELECT o.id FROM tasks o WHERE o.id IN ((SELECT q.id FROM tasks q WHERE q.status = 'queued' AND q.runtime_id = $1
    AND (q.not_before IS NULL OR q.not_before <= $2)
    AND NOT EXISTS (SELECT 1 FROM tasks a WHERE a.issue_id = q.issue_id AND a.agent_id = q.agent_id
        AND a.status IN ('dispatched', 'running') LIMIT 1 OFFSET 0)
    AND NOT EXISTS (SELECT 1 FROM runtimes r WHERE r.id = $1 AND CASE WHEN r.capacity IS NULL THEN FALSE
        ELSE (SELECT COUNT(*) FROM tasks f WHERE f.runtime_id = $1 AND f.status IN ('dispatched', 'running')) >= r.capacity END)
    AND NOT EXISTS (SELECT 1 FROM agents c WHERE c.id = q.agent_id AND CASE WHEN c.max_concurrency IS NULL THEN FALSE
        ELSE (SELECT COUNT(*) FROM tasks g WHERE g.agent_id = q.agent_id AND g.status IN ('dispatched', 'running')) >= c.max_concurrency END)
    ORDER BY q.created_at, q.id LIMIT 1 FOR UPDATE SKIP LOCKED),
    (SELECT q.id FROM tasks q WHERE q.status = 'queued' AND q.runtime_id = ''
    AND q.agent_id IN (SELECT jsonb_array_elements_text($5::jsonb))
    AND (q.not_before IS NULL OR q.not_before <= $2)
    AND NOT EXISTS (SELECT 1 FROM tasks a WHERE a.issue_id = q.issue_id AND a.agent_id = q.agent_id
        AND a.status IN ('dispatched', 'running') LIMIT 1 OFFSET 0)
    AND NOT EXISTS (SELECT 1 FROM runtimes r WHERE r.id = $1 AND CASE WHEN r.capacity IS NULL THEN FALSE
        ELSE (SELECT COUNT(*) FROM tasks f WHERE f.runtime_id = $1 AND f.status IN ('dispatched', 'running')) >= r.capacity END)
    AND NOT EXISTS (SELECT 1 FROM agents c WHERE c.id = q.agent_id AND CASE WHEN c.max_concurrency IS NULL THEN FALSE
        ELSE (SELECT COUNT(*) FROM tasks g WHERE g.agent_id = q.agent_id AND g.status IN ('dispatched', 'running')) >= c.max_concurrency END)
    ORDER BY q.created_at, q.id LIMIT 1 FOR UPDATE SKIP LOCKED))
    ORDER BY o.created_at, o.id LIMIT 1))
    AND (status = 'queued' OR (runtime_id = $1 AND claim_key = $3 AND status IN ('dispatched', 'running')))
    RETURNING *;
END
$fn$;
-- The sweeper finds the retries whose backoff has passed (`take_due_retries`).
CREATE INDEX tasks_due ON tasks (not_before) WHERE status = 'queued' AND not_before IS NOT NULL;
