-- The claim as one call (issue 13: claims/s). Before, a claim was four round trips:
-- BEGIN, lock the runtime's row, the claim UPDATE, COMMIT. As a function it is one
-- statement in autocommit. PL/pgSQL gives each statement of a VOLATILE function a fresh
-- snapshot, so the UPDATE sees every claim of this runtime that committed while this one
-- waited for the row lock (the "one task in flight per (issue, agent)" check needs that).
-- Claims of different runtimes run side by side; SKIP LOCKED keeps them off each other's
-- rows. The UPDATE is `store::shared::claim_sql` (SQLite runs that text; a unit test
-- checks the two agree): $1 runtime id, $2 now (ms), $3 idempotency key, $4 token hash.
CREATE FUNCTION agentd_claim(TEXT, BIGINT, TEXT, TEXT) RETURNS SETOF tasks
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    PERFORM 1 FROM runtimes WHERE id = $1 FOR UPDATE;
    RETURN QUERY
    UPDATE tasks SET
    status = CASE WHEN status = 'queued' THEN 'dispatched' ELSE status END,
    dispatched_at = CASE WHEN status = 'queued' THEN $2 ELSE dispatched_at END,
    claim_key = CASE WHEN status = 'queued' THEN $3 ELSE claim_key END,
    daemon_id = CASE WHEN status = 'queued'
    THEN (SELECT r.daemon_id FROM runtimes r WHERE r.id = $1) ELSE daemon_id END,
    claimed_by = CASE WHEN status = 'queued'
    THEN (SELECT r.owner_token_id FROM runtimes r WHERE r.id = $1) ELSE claimed_by END,
    task_token_hash = $4, held_at = $2
    WHERE id = COALESCE(
    (SELECT k.id FROM tasks k WHERE k.runtime_id = $1 AND k.claim_key = $3
    AND k.status IN ('dispatched', 'running') LIMIT 1),
    (SELECT q.id FROM tasks q WHERE q.runtime_id = $1 AND q.status = 'queued'
    AND NOT EXISTS (SELECT 1 FROM tasks a WHERE a.issue_id = q.issue_id
    AND a.agent_id = q.agent_id AND a.status IN ('dispatched', 'running'))
    ORDER BY q.created_at, q.id LIMIT 1 FOR UPDATE SKIP LOCKED))
    AND (status = 'queued' OR (runtime_id = $1 AND claim_key = $3
    AND status IN ('dispatched', 'running')))
    RETURNING *;
END
$fn$;
