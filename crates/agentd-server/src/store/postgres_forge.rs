//! [`ForgeStore`] on PostgreSQL: forge connections, pull requests, webhook deliveries.
//! The same statements as [`super::sqlite_forge`]; `update_pull` locks the row it
//! compares (`FOR UPDATE`), since no process-wide writer lock orders writers here.

use sqlx::AssertSqlSafe;

use super::postgres::{PgStore, insert_comment, move_issue, nn};
use super::shared::{FORGE_COLS, PULL_COLS, TASK_COLS, TaskRecord, placeholders, task_one};
use super::*;

impl ForgeStore for PgStore {
    fn set_forge(&self, r: ForgeRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO forge_connections ({FORGE_COLS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (workspace_id) DO UPDATE SET kind = excluded.kind, \
                     api_url = excluded.api_url, repo = excluded.repo, \
                     repo_key = excluded.repo_key, token = excluded.token, \
                     webhook_secret = excluded.webhook_secret, poll = excluded.poll, \
                     updated_at = excluded.updated_at"
                )))
                .bind(nn(&r.workspace_id))
                .bind(nn(&r.kind))
                .bind(nn(&r.api_url))
                .bind(nn(&r.repo))
                .bind(nn(&r.repo_key))
                .bind(nn(&r.token))
                .bind(nn(&r.webhook_secret))
                .bind(r.poll)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn get_forge(&self, workspace_id: String) -> StoreFut<'_, Option<ForgeRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, ForgeRow>(AssertSqlSafe(format!(
                "SELECT {FORGE_COLS} FROM forge_connections WHERE workspace_id = $1"
            )))
            .bind(nn(workspace_id))
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn delete_forge(&self, workspace_id: String) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let done = sqlx::query("DELETE FROM forge_connections WHERE workspace_id = $1")
                    .bind(nn(&workspace_id))
                    .execute(&mut **tx)
                    .await?;
                Ok(done.rows_affected() > 0)
            })
        }))
    }

    fn forges_by_repo(&self, kind: String, repo_key: String) -> StoreFut<'_, Vec<ForgeRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, ForgeRow>(AssertSqlSafe(format!(
                "SELECT {FORGE_COLS} FROM forge_connections WHERE kind = $1 AND repo_key = $2 \
                 ORDER BY created_at, workspace_id"
            )))
            .bind(nn(kind))
            .bind(nn(repo_key))
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn insert_pull(&self, r: PullRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                // The same PR adopted again (a duplicate answer) keeps its row.
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO pull_requests ({PULL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, \
                     $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                     ON CONFLICT (workspace_id, number) DO UPDATE SET \
                     task_id = excluded.task_id, head_sha = excluded.head_sha, \
                     state = excluded.state, updated_at = excluded.updated_at"
                )))
                .bind(nn(&r.id))
                .bind(nn(&r.workspace_id))
                .bind(nn(&r.issue_id))
                .bind(nn(&r.task_id))
                .bind(nn(&r.agent_id))
                .bind(r.number)
                .bind(nn(&r.url))
                .bind(nn(&r.state))
                .bind(nn(&r.head_branch))
                .bind(nn(&r.head_sha))
                .bind(nn(&r.base_branch))
                .bind(nn(&r.review_state))
                .bind(nn(&r.checks_state))
                .bind(r.polled_at)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn get_pull(&self, workspace_id: String, number: i64) -> StoreFut<'_, Option<PullRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, PullRow>(AssertSqlSafe(format!(
                "SELECT {PULL_COLS} FROM pull_requests WHERE workspace_id = $1 AND number = $2"
            )))
            .bind(nn(workspace_id))
            .bind(number)
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn open_pull_for_branch(
        &self,
        workspace_id: String,
        branch: String,
    ) -> StoreFut<'_, Option<PullRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, PullRow>(AssertSqlSafe(format!(
                "SELECT {PULL_COLS} FROM pull_requests WHERE workspace_id = $1 \
                 AND head_branch = $2 AND state = 'open' ORDER BY created_at DESC LIMIT 1"
            )))
            .bind(nn(workspace_id))
            .bind(nn(branch))
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn issue_pulls(&self, issue_id: String) -> StoreFut<'_, Vec<PullRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, PullRow>(AssertSqlSafe(format!(
                "SELECT {PULL_COLS} FROM pull_requests WHERE issue_id = $1 \
                 ORDER BY created_at, id"
            )))
            .bind(nn(issue_id))
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn latest_pulls(&self, issue_ids: Vec<String>) -> StoreFut<'_, Vec<PullRow>> {
        Box::pin(async move {
            if issue_ids.is_empty() {
                return Ok(Vec::new());
            }
            let sql = format!(
                "SELECT {PULL_COLS} FROM pull_requests p WHERE issue_id IN ({}) AND NOT EXISTS \
                 (SELECT 1 FROM pull_requests q WHERE q.issue_id = p.issue_id AND \
                 (q.created_at > p.created_at OR (q.created_at = p.created_at AND q.id > p.id)))",
                placeholders(1, issue_ids.len())
            );
            let mut q = sqlx::query_as::<_, PullRow>(AssertSqlSafe(sql));
            for id in &issue_ids {
                q = q.bind(nn(id));
            }
            Ok(q.fetch_all(&self.pool).await?)
        })
    }

    fn update_pull(&self, u: PullUpdate) -> StoreFut<'_, Option<(PullRow, bool)>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let before: Option<String> =
                    sqlx::query_scalar("SELECT state FROM pull_requests WHERE id = $1 FOR UPDATE")
                        .bind(nn(&u.pull_id))
                        .fetch_optional(&mut **tx)
                        .await?;
                let Some(before) = before else {
                    return Ok(None);
                };
                let row = sqlx::query_as::<_, PullRow>(AssertSqlSafe(format!(
                    "UPDATE pull_requests SET state = COALESCE($2, state), \
                     review_state = COALESCE($3, review_state), \
                     checks_state = COALESCE($4, checks_state), \
                     head_sha = COALESCE($5, head_sha), task_id = COALESCE($6, task_id), \
                     polled_at = COALESCE($7, polled_at), updated_at = $8 \
                     WHERE id = $1 RETURNING {PULL_COLS}"
                )))
                .bind(nn(&u.pull_id))
                .bind(nn(&u.state))
                .bind(nn(&u.review_state))
                .bind(nn(&u.checks_state))
                .bind(nn(&u.head_sha))
                .bind(nn(&u.task_id))
                .bind(u.polled_at)
                .bind(u.now)
                .fetch_one(&mut **tx)
                .await?;
                let changed = row.state != before;
                // Side effects belong to the change: a repeated event posts nothing twice.
                if changed || u.state.is_none() {
                    if let Some(status) = &u.issue_status {
                        move_issue(tx, &row.issue_id, status, u.now).await?;
                    }
                    if let Some(c) = &u.comment {
                        insert_comment(tx, c).await?;
                    }
                }
                Ok(Some((row, changed)))
            })
        }))
    }

    fn pulls_to_poll(&self, before: i64) -> StoreFut<'_, Vec<PullRow>> {
        Box::pin(async move {
            let cols = PULL_COLS
                .split(", ")
                .map(|c| format!("p.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ");
            Ok(sqlx::query_as::<_, PullRow>(AssertSqlSafe(format!(
                "SELECT {cols} FROM pull_requests p JOIN forge_connections f \
                 ON f.workspace_id = p.workspace_id WHERE p.state = 'open' AND f.poll \
                 AND COALESCE(p.polled_at, p.created_at) <= $1 ORDER BY p.created_at, p.id"
            )))
            .bind(before)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn record_delivery(
        &self,
        workspace_id: String,
        delivery_id: String,
        now: i64,
    ) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let done = sqlx::query(
                    "INSERT INTO forge_deliveries (workspace_id, delivery_id, received_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (workspace_id, delivery_id) DO NOTHING",
                )
                .bind(nn(&workspace_id))
                .bind(nn(&delivery_id))
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(done.rows_affected() > 0)
            })
        }))
    }

    fn complete_pushed(
        &self,
        task_id: String,
        branch: String,
        comment: CommentRow,
        issue_status: Option<String>,
        now: i64,
    ) -> StoreFut<'_, Option<TaskRow>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let row = task_one(
                    sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(format!(
                        "UPDATE tasks SET status = 'completed', error = NULL, \
                         failure_reason = NULL, branch_name = $2, completed_at = $3 \
                         WHERE id = $1 AND status = 'failed' AND failure_reason = 'push_failed' \
                         RETURNING {TASK_COLS}"
                    )))
                    .bind(nn(&task_id))
                    .bind(nn(&branch))
                    .bind(now)
                    .fetch_optional(&mut **tx)
                    .await?,
                )?;
                let Some(row) = row else {
                    return Ok(None);
                };
                insert_comment(tx, &comment).await?;
                if let Some(status) = &issue_status {
                    move_issue(tx, &row.issue_id, status, now).await?;
                }
                Ok(Some(row))
            })
        }))
    }
}
