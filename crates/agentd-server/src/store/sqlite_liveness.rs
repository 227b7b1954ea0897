//! The SQLite implementation of [`LivenessStore`]: a batch of liveness in one write
//! transaction (at most four statements, whatever the batch's size). The batch travels as
//! one JSON parameter read with `json_each`, so its size is never limited by SQLite's
//! number of bound parameters.

use sqlx::AssertSqlSafe;

use super::shared::RUNTIME_COLS;
use super::sqlite::SqliteStore;
use super::*;

/// The batch's runtimes and times as a JSON array of `[id, seen_at]`.
pub(super) fn seen_json(batch: &[LivenessRow]) -> String {
    serde_json::Value::Array(
        batch
            .iter()
            .map(|b| serde_json::json!([b.runtime_id, b.seen_at]))
            .collect(),
    )
    .to_string()
}

/// The renewals naming tasks, as a JSON array of `[runtime id, task id, time]`.
pub(super) fn held_json(batch: &[LivenessRow]) -> Option<String> {
    let rows: Vec<serde_json::Value> = batch
        .iter()
        .flat_map(|b| {
            b.held
                .iter()
                .map(|(tid, t)| serde_json::json!([b.runtime_id, tid, t]))
        })
        .collect();
    (!rows.is_empty()).then(|| serde_json::Value::Array(rows).to_string())
}

/// The renewals of every in-flight task, as a JSON array of `[runtime id, time]`.
pub(super) fn held_all_json(batch: &[LivenessRow]) -> Option<String> {
    let rows: Vec<serde_json::Value> = batch
        .iter()
        .filter_map(|b| b.held_all.map(|t| serde_json::json!([b.runtime_id, t])))
        .collect();
    (!rows.is_empty()).then(|| serde_json::Value::Array(rows).to_string())
}

impl LivenessStore for SqliteStore {
    fn write_liveness(&self, batch: Vec<LivenessRow>) -> StoreFut<'_, LivenessWritten> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                if batch.is_empty() {
                    return Ok(LivenessWritten::default());
                }
                let seen = seen_json(&batch);
                let came_online = sqlx::query_as::<_, RuntimeRow>(AssertSqlSafe(format!(
                    "UPDATE runtimes SET status = 'online' WHERE status <> 'online' AND id IN \
                     (SELECT json_extract(value, '$[0]') FROM json_each($1)) \
                     RETURNING {RUNTIME_COLS}"
                )))
                .bind(&seen)
                .fetch_all(&mut **tx)
                .await?;
                let existing: std::collections::HashSet<String> = sqlx::query_scalar(
                    "UPDATE runtimes SET last_seen_at = max(COALESCE(last_seen_at, 0), v.seen) \
                     FROM (SELECT json_extract(value, '$[0]') AS id, \
                                  max(json_extract(value, '$[1]')) AS seen \
                           FROM json_each($1) GROUP BY 1) AS v \
                     WHERE runtimes.id = v.id RETURNING runtimes.id",
                )
                .bind(&seen)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .collect();
                if let Some(held) = held_json(&batch) {
                    // Only tasks claimed by the runtime's daemon under its owner token (as
                    // `renew_leases`); several runtimes of one daemon list the same tasks,
                    // so each task takes the latest time any of them said it.
                    sqlx::query(
                        "WITH v AS (SELECT json_extract(value, '$[0]') AS rid, \
                                           json_extract(value, '$[1]') AS tid, \
                                           json_extract(value, '$[2]') AS t FROM json_each($1)), \
                              h AS (SELECT v.tid AS tid, r.daemon_id AS d, r.owner_token_id AS o, v.t AS t \
                                    FROM v JOIN runtimes r ON r.id = v.rid) \
                         UPDATE tasks SET held_at = max(COALESCE(held_at, 0), \
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
                        "WITH v AS (SELECT json_extract(value, '$[0]') AS rid, \
                                           json_extract(value, '$[1]') AS t FROM json_each($1)), \
                              h AS (SELECT r.daemon_id AS d, r.owner_token_id AS o, v.t AS t \
                                    FROM v JOIN runtimes r ON r.id = v.rid) \
                         UPDATE tasks SET held_at = max(COALESCE(held_at, 0), \
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
}
