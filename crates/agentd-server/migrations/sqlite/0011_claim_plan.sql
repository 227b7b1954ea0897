-- The claim reads each queue in claim order with no sort, the busy check and an agent's
-- in-flight count are ranges of one index, and a replayed claim is found by its key
-- (issue 13; PostgreSQL's 0005_claim_plan.sql, which says why).
DROP INDEX tasks_claim;
CREATE INDEX tasks_claim ON tasks (runtime_id, status, created_at, id);
DROP INDEX tasks_agent_status;
CREATE INDEX tasks_agent_status ON tasks (agent_id, status, issue_id);
CREATE INDEX tasks_claim_key ON tasks (runtime_id, claim_key) WHERE claim_key IS NOT NULL;
-- The sweeper finds the retries whose backoff has passed (`take_due_retries`).
CREATE INDEX tasks_due ON tasks (not_before) WHERE status = 'queued' AND not_before IS NOT NULL;
