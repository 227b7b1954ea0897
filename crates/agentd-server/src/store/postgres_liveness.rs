//! The PostgreSQL implementation of [`LivenessStore`]: the statements of
//! [`super::sqlite_liveness`] (one write transaction per batch, the batch as one JSON
//! parameter), with `jsonb_array_elements` for `json_each` and `GREATEST` for the scalar
//! `max`.

use sqlx::AssertSqlSafe;

use super::postgres::PgStore;
use super::shared::RUNTIME_COLS;
use super::sqlite_liveness::{held_all_json, held_json, seen_json};
use super::*;

impl LivenessStore for PgStore {
    fn write_liveness(&self, batch: Vec<LivenessRow>) -> StoreFut<'_, LivenessWritten> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                if batch.is_empty() {
                    return Ok(LivenessWritten::default());
                }
                let seen = seen_json(&batch);
                let came_online = sqlx::query_as::<_, RuntimeRow>(AssertSqlSafe(format!(
                    "UPDATE runtimes SET status = 'online' WHERE status <> 'online' AND id IN \
                     (SELECT x->>0 FROM jsonb_array_elements($1::jsonb) x) \
                     RETURNING {RUNTIME_COLS}"
                )))
                .bind(&seen)
                .fetch_all(&mut **tx)
                .await?;
                let existing: std::collections::HashSet<String> = sqlx::query_scalar(
                    "UPDATE runtimes r SET last_seen_at = GREATEST(COALESCE(r.last_seen_at, 0), v.seen) \
                     FROM (SELECT x->>0 AS id, max((x->>1)::bigint) AS seen \
                           FROM jsonb_array_elements($1::jsonb) x GROUP BY 1) AS v \
                     WHERE r.id = v.id RETURNING r.id",
                )
                .bind(&seen)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .collect();
                if let Some(held) = held_json(&batch) {
                    sqlx::query(
                        "WITH v AS (SELECT x->>0 AS rid, x->>1 AS tid, (x->>2)::bigint AS t \
                                    FROM jsonb_array_elements($1::jsonb) x), \
                              h AS (SELECT v.tid AS tid, r.daemon_id AS d, r.owner_token_id AS o, v.t AS t \
                                    FROM v JOIN runtimes r ON r.id = v.rid) \
                         UPDATE tasks SET held_at = GREATEST(COALESCE(held_at, 0), \
                             (SELECT max(h.t) FROM h WHERE h.tid = tasks.id AND h.d = tasks.daemon_id \
                              AND (tasks.claimed_by IS NULL OR tasks.claimed_by = h.o))) \
                         WHERE status IN ('dispatched', 'running') AND EXISTS \
                             (SELECT 1 FROM h WHERE h.tid = tasks.id AND h.d = tasks.daemon_id \
                              AND (tasks.claimed_by IS NULL OR tasks.claimed_by = h.o))",
                    )
                    .bind(held)
                    .execute(&mut **tx)
                    .await?;
                }
                if let Some(all) = held_all_json(&batch) {
                    sqlx::query(
                        "WITH v AS (SELECT x->>0 AS rid, (x->>1)::bigint AS t \
                                    FROM jsonb_array_elements($1::jsonb) x), \
                              h AS (SELECT r.daemon_id AS d, r.owner_token_id AS o, v.t AS t \
                                    FROM v JOIN runtimes r ON r.id = v.rid) \
                         UPDATE tasks SET held_at = GREATEST(COALESCE(held_at, 0), \
                             (SELECT max(h.t) FROM h WHERE h.d = tasks.daemon_id \
                              AND (tasks.claimed_by IS NULL OR tasks.claimed_by = h.o))) \
                         WHERE status IN ('dispatched', 'running') AND EXISTS \
                             (SELECT 1 FROM h WHERE h.d = tasks.daemon_id \
                              AND (tasks.claimed_by IS NULL OR tasks.claimed_by = h.o))",
                    )
                    .bind(all)
                    .execute(&mut **tx)
                    .await?;
                }
                let mut missing: Vec<String> = batch
                    .iter()
                    .filter(|b| !existing.contains(&b.runtime_id))
                    .map(|b| b.runtime_id.clone())
                    .collect();
                missing.sort();
                missing.dedup();
                Ok(LivenessWritten {
                    came_online,
                    missing,
                })
            })
        }))
    }

    fn postgres_pool(&self) -> Option<sqlx::PgPool> {
        Some(self.pool.clone())
    }
}
