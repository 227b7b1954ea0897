//! The SQLite implementation of [`TaskStore`]: issues, comments, tasks (including the
//! exactly-once claim), messages and usage. Same conventions as [`super::sqlite`].

use agentd_proto::api::DiffStat;
use agentd_proto::{TaskDiff, UsageEntry};
use sqlx::{AssertSqlSafe, Row};

use super::shared::*;
use super::sqlite::{SqliteStore, insert_comment, insert_event, move_issue};
use super::*;

impl TaskStore for SqliteStore {
    fn create_issue(&self, i: IssueRow, events: Vec<EventRow>) -> StoreFut<'_, IssueRow> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                // The next number of the workspace, taken in this write transaction: two
                // creates never share one, and a number is never handed out twice.
                let (number, key): (i64, Option<String>) = sqlx::query_as(
                    "UPDATE workspaces SET issue_seq = issue_seq + 1 WHERE id = $1 \
                     RETURNING issue_seq, key",
                )
                .bind(&i.workspace_id)
                .fetch_one(&mut **tx)
                .await?;
                sqlx::query(
                    "INSERT INTO issues (id, workspace_id, title, description, status, \
                     assignee_agent_id, created_at, updated_at, number) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&i.id)
                .bind(&i.workspace_id)
                .bind(&i.title)
                .bind(&i.description)
                .bind(&i.status)
                .bind(&i.assignee_agent_id)
                .bind(i.created_at)
                .bind(i.updated_at)
                .bind(number)
                .execute(&mut **tx)
                .await?;
                for e in &events {
                    insert_event(tx, e).await?;
                }
                Ok(IssueRow {
                    number,
                    workspace_key: key.unwrap_or_default(),
                    run_count: 0,
                    ..i
                })
            })
        }))
    }

    fn get_issue(&self, id: String) -> StoreFut<'_, Option<IssueRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, IssueRow>(AssertSqlSafe(format!(
                "SELECT {ISSUE_COLS} FROM {ISSUE_FROM} WHERE i.id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn list_issues(
        &self,
        ids: Option<Vec<String>>,
        filter: IssueFilter,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> StoreFut<'_, Vec<IssueRow>> {
        Box::pin(async move {
            if ids.as_ref().is_some_and(Vec::is_empty) {
                return Ok(Vec::new());
            }
            let (after_at, after_id) = after.unwrap_or((i64::MIN, String::new()));
            // $1..$3 the page, then the filters' text values, then the workspaces.
            let mut texts: Vec<String> = Vec::new();
            let mut conds = String::new();
            let next = |v: String, texts: &mut Vec<String>| {
                texts.push(v);
                format!("${}", 3 + texts.len())
            };
            if let Some(st) = &filter.status {
                let p = next(st.clone(), &mut texts);
                conds.push_str(&format!(" AND i.status = {p}"));
            }
            match &filter.assignee {
                None => {}
                Some(None) => conds.push_str(" AND i.assignee_agent_id IS NULL"),
                Some(Some(a)) => {
                    let p = next(a.clone(), &mut texts);
                    conds.push_str(&format!(" AND i.assignee_agent_id = {p}"));
                }
            }
            if let Some(q) = &filter.q {
                let pattern = format!("%{}%", like_escape(&q.to_lowercase()));
                let p = next(pattern, &mut texts);
                conds.push_str(&format!(
                    " AND (LOWER(i.title) LIKE {p} ESCAPE '\\' \
                     OR LOWER(i.description) LIKE {p} ESCAPE '\\' \
                     OR LOWER(COALESCE(w.key, '') || '-' || CAST(i.number AS TEXT)) \
                     LIKE {p} ESCAPE '\\')"
                ));
            }
            let (in_workspaces, _) = in_clause("i.workspace_id", ids.as_deref(), 4 + texts.len());
            let sql = format!(
                "SELECT {ISSUE_COLS} FROM {ISSUE_FROM} \
                 WHERE (i.created_at > $1 OR (i.created_at = $1 AND i.id > $2)){conds} \
                 {in_workspaces} ORDER BY i.created_at, i.id LIMIT $3"
            );
            let mut q = sqlx::query_as::<_, IssueRow>(AssertSqlSafe(sql))
                .bind(after_at)
                .bind(after_id)
                .bind(limit);
            for t in texts {
                q = q.bind(t);
            }
            for id in ids.into_iter().flatten() {
                q = q.bind(id);
            }
            Ok(q.fetch_all(&self.pool).await?)
        })
    }

    fn update_issue(&self, i: IssueRow, events: Vec<EventRow>) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE issues SET title = $2, description = $3, status = $4, \
                     assignee_agent_id = $5, updated_at = $6 WHERE id = $1",
                )
                .bind(&i.id)
                .bind(&i.title)
                .bind(&i.description)
                .bind(&i.status)
                .bind(&i.assignee_agent_id)
                .bind(i.updated_at)
                .execute(&mut **tx)
                .await?;
                for e in &events {
                    insert_event(tx, e).await?;
                }
                Ok(())
            })
        }))
    }

    fn issue_events(&self, issue_id: String) -> StoreFut<'_, Vec<EventRow>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT issue_id, kind, actor_kind, actor_name, from_status, to_status, detail, \
                 created_at FROM issue_events WHERE issue_id = $1 ORDER BY created_at, seq",
            )
            .bind(issue_id)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| EventRow {
                    issue_id: r.get(0),
                    kind: r.get(1),
                    actor: stored_actor(r.get(2), r.get(3)).unwrap_or_default(),
                    from_status: r.get(4),
                    to_status: r.get(5),
                    detail: r.get(6),
                    created_at: r.get(7),
                })
                .collect())
        })
    }

    fn issues_by_ref(
        &self,
        workspace_ids: Option<Vec<String>>,
        only_issue: Option<String>,
        r: RefQuery,
    ) -> StoreFut<'_, Vec<IssueRow>> {
        Box::pin(async move {
            let (clause, n) = match &r {
                RefQuery::Prefix(_) => ("i.id >= $1 AND i.id < $2", 2),
                RefQuery::IssueKey(..) => ("w.key = $1 AND i.number = $2", 2),
                _ => return Ok(Vec::new()),
            };
            let (scope, used) = in_clause("i.workspace_id", workspace_ids.as_deref(), n + 1);
            let only = match &only_issue {
                Some(_) => format!(" AND i.id = ${}", n + 1 + used),
                None => String::new(),
            };
            let sql = format!(
                "SELECT {ISSUE_COLS} FROM {ISSUE_FROM} WHERE {clause}{scope}{only} \
                 ORDER BY i.created_at, i.id LIMIT {REF_CANDIDATES}"
            );
            let mut q = sqlx::query_as::<_, IssueRow>(AssertSqlSafe(sql));
            match &r {
                RefQuery::IssueKey(k, number) => q = q.bind(k.clone()).bind(*number),
                _ => {
                    for b in ref_binds(&r) {
                        q = q.bind(b);
                    }
                }
            }
            for id in workspace_ids.into_iter().flatten() {
                q = q.bind(id);
            }
            if let Some(id) = only_issue {
                q = q.bind(id);
            }
            Ok(q.fetch_all(&self.pool).await?)
        })
    }

    fn add_comment(&self, c: CommentRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| Box::pin(async move { insert_comment(tx, &c).await })))
    }

    fn get_comment(&self, id: String) -> StoreFut<'_, Option<CommentRow>> {
        Box::pin(async move {
            Ok(
                sqlx::query_as::<_, CommentRow>("SELECT * FROM comments WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?,
            )
        })
    }

    fn list_comments(&self, issue_id: String) -> StoreFut<'_, Vec<CommentRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, CommentRow>(
                "SELECT * FROM comments WHERE issue_id = $1 ORDER BY created_at, id",
            )
            .bind(issue_id)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn insert_task(&self, t: TaskRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| Box::pin(async move { insert_task(tx, &t).await })))
    }

    fn insert_retry(&self, t: TaskRow) -> StoreFut<'_, Result<(), String>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let parent = t.parent_task_id.clone().unwrap_or_default();
                // The guard: only the first retry sets the parent's retry_task_id (a row
                // lock and a re-check of the WHERE on PostgreSQL too).
                let first = sqlx::query(
                    "UPDATE tasks SET retry_task_id = $2 WHERE id = $1 AND retry_task_id IS NULL",
                )
                .bind(&parent)
                .bind(&t.id)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1;
                if !first {
                    let existing: Option<Option<String>> =
                        sqlx::query_scalar("SELECT retry_task_id FROM tasks WHERE id = $1")
                            .bind(&parent)
                            .fetch_optional(&mut **tx)
                            .await?;
                    return Ok(Err(existing.flatten().unwrap_or_default()));
                }
                insert_task(tx, &t).await?;
                Ok(Ok(()))
            })
        }))
    }

    fn task_labels(&self, task_ids: Vec<String>) -> StoreFut<'_, Vec<TaskLabel>> {
        Box::pin(async move {
            if task_ids.is_empty() {
                return Ok(Vec::new());
            }
            let sql = format!(
                "SELECT t.id, COALESCE(w.key, ''), i.number, COALESCE(a.name, '') FROM tasks t \
                 JOIN issues i ON i.id = t.issue_id JOIN workspaces w ON w.id = i.workspace_id \
                 LEFT JOIN agents a ON a.id = t.agent_id WHERE t.id IN ({})",
                placeholders(1, task_ids.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in task_ids {
                q = q.bind(id);
            }
            Ok(q.fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    let key: String = r.get(1);
                    let number: i64 = r.get(2);
                    TaskLabel {
                        task_id: r.get(0),
                        issue_key: format!("{key}-{number}"),
                        agent_name: r.get(3),
                    }
                })
                .collect())
        })
    }

    fn tasks_by_ref(
        &self,
        workspace_ids: Option<Vec<String>>,
        only_issue: Option<String>,
        r: RefQuery,
    ) -> StoreFut<'_, Vec<TaskRow>> {
        Box::pin(async move {
            if !matches!(r, RefQuery::Prefix(_)) {
                return Ok(Vec::new());
            }
            let (scope, used) = in_clause("workspace_id", workspace_ids.as_deref(), 3);
            let only = match &only_issue {
                Some(_) => format!(" AND issue_id = ${}", 3 + used),
                None => String::new(),
            };
            let sql = format!(
                "SELECT {TASK_COLS} FROM tasks WHERE id >= $1 AND id < $2{scope}{only} \
                 ORDER BY created_at, id LIMIT {REF_CANDIDATES}"
            );
            let mut q = sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(sql));
            for b in ref_binds(&r) {
                q = q.bind(b);
            }
            for id in workspace_ids.into_iter().flatten() {
                q = q.bind(id);
            }
            if let Some(id) = only_issue {
                q = q.bind(id);
            }
            task_all(q.fetch_all(&self.pool).await?)
        })
    }

    fn get_task(&self, id: String) -> StoreFut<'_, Option<TaskRow>> {
        Box::pin(async move {
            task_one(
                sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(format!(
                    "SELECT {TASK_COLS} FROM tasks WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
            )
        })
    }

    fn list_issue_tasks(&self, issue_id: String) -> StoreFut<'_, Vec<TaskRow>> {
        Box::pin(async move {
            task_all(
                sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(format!(
                    "SELECT {TASK_COLS} FROM tasks WHERE issue_id = $1 ORDER BY created_at, id"
                )))
                .bind(issue_id)
                .fetch_all(&self.pool)
                .await?,
            )
        })
    }

    fn latest_tasks(&self, issue_ids: Vec<String>) -> StoreFut<'_, Vec<TaskRow>> {
        Box::pin(async move {
            if issue_ids.is_empty() {
                return Ok(Vec::new());
            }
            // A task of the page's issues with no newer task on its issue (tasks_issue
            // index); portable SQL, no window function.
            let sql = format!(
                "SELECT {TASK_COLS} FROM tasks t WHERE issue_id IN ({}) AND NOT EXISTS \
                 (SELECT 1 FROM tasks n WHERE n.issue_id = t.issue_id AND \
                 (n.created_at > t.created_at OR (n.created_at = t.created_at AND n.id > t.id)))",
                placeholders(1, issue_ids.len())
            );
            let mut q = sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(sql));
            for id in issue_ids {
                q = q.bind(id);
            }
            task_all(q.fetch_all(&self.pool).await?)
        })
    }

    fn runtime_tasks(
        &self,
        runtime_id: String,
        statuses: Vec<TaskStatus>,
    ) -> StoreFut<'_, Vec<TaskRow>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {TASK_COLS} FROM tasks WHERE runtime_id = $1 AND status IN ({}) \
                 ORDER BY created_at, id",
                placeholders(2, statuses.len())
            );
            let mut q = sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(sql)).bind(runtime_id);
            for s in statuses {
                q = q.bind(s.as_str());
            }
            task_all(q.fetch_all(&self.pool).await?)
        })
    }

    fn claim_task(
        &self,
        runtime_id: String,
        claim_key: Option<String>,
        token_hash: String,
        now: i64,
        pool_agents: Vec<String>,
    ) -> StoreFut<'_, Option<TaskRow>> {
        let pool_agents = serde_json::to_string(&pool_agents).unwrap_or_else(|_| "[]".into());
        // One statement, no BEGIN/COMMIT: the single writer already serializes claims.
        Box::pin(self.write_one(move |conn| {
            Box::pin(async move {
                task_one(
                    sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(claim_sql("", SQLITE_POOL_IDS)))
                        .bind(&runtime_id)
                        .bind(now)
                        .bind(&claim_key)
                        .bind(&token_hash)
                        .bind(&pool_agents)
                        .fetch_optional(&mut *conn)
                        .await?,
                )
            })
        }))
    }

    fn claim_context(&self, task: TaskRow) -> StoreFut<'_, ClaimContext> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, ClaimContext>(CLAIM_CONTEXT_SQL)
                .bind(&task.agent_id)
                .bind(&task.issue_id)
                .bind(&task.workspace_id)
                .bind(&task.trigger_comment_id)
                .bind(&task.runtime_id)
                .bind(&task.id)
                .fetch_one(&self.pool)
                .await?)
        })
    }

    fn expired_leases(&self, cutoff: i64) -> StoreFut<'_, Vec<TaskRow>> {
        Box::pin(async move {
            task_all(
                sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(format!(
                    "SELECT {TASK_COLS} FROM tasks WHERE status IN ('dispatched', 'running') \
                     AND COALESCE(held_at, dispatched_at, created_at) < $1 ORDER BY created_at, id"
                )))
                .bind(cutoff)
                .fetch_all(&self.pool)
                .await?,
            )
        })
    }

    fn renew_leases(
        &self,
        runtime_id: String,
        task_ids: Option<Vec<String>>,
        now: i64,
    ) -> StoreFut<'_, u64> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                // Only the tasks claimed under the heartbeating runtime's owner token: a
                // token that registers another daemon's id renews none of its tasks.
                let base = "UPDATE tasks SET held_at = $1 WHERE status IN ('dispatched', 'running') \
                     AND daemon_id = (SELECT r.daemon_id FROM runtimes r WHERE r.id = $2) \
                     AND (claimed_by IS NULL \
                       OR claimed_by = (SELECT r.owner_token_id FROM runtimes r WHERE r.id = $2))";
                let done = match &task_ids {
                    None => sqlx::query(base).bind(now).bind(&runtime_id).execute(&mut **tx).await?,
                    Some(ids) if ids.is_empty() => return Ok(0),
                    Some(ids) => {
                        let sql = format!("{base} AND id IN ({})", placeholders(3, ids.len()));
                        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now).bind(&runtime_id);
                        for id in ids {
                            q = q.bind(id);
                        }
                        q.execute(&mut **tx).await?
                    }
                };
                Ok(done.rows_affected())
            })
        }))
    }

    fn take_due_retries(&self, now: i64) -> StoreFut<'_, Vec<TaskRow>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                task_all(
                    sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(format!(
                        "UPDATE tasks SET not_before = NULL WHERE status = 'queued' \
                         AND not_before IS NOT NULL AND not_before <= $1 RETURNING {TASK_COLS}"
                    )))
                    .bind(now)
                    .fetch_all(&mut **tx)
                    .await?,
                )
            })
        }))
    }

    fn renew_task_lease(&self, task_id: String, now: i64) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE tasks SET held_at = $2 WHERE id = $1 \
                     AND status IN ('dispatched', 'running')",
                )
                .bind(&task_id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn record_late_report(
        &self,
        task_id: String,
        report: String,
        comment: CommentRow,
    ) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let first = sqlx::query(
                    "UPDATE tasks SET late_report = $2 WHERE id = $1 AND late_report IS NULL",
                )
                .bind(&task_id)
                .bind(&report)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1;
                if first {
                    insert_comment(tx, &comment).await?;
                }
                Ok(first)
            })
        }))
    }

    fn find_task_by_token(&self, hash: String) -> StoreFut<'_, Option<TaskRow>> {
        Box::pin(async move {
            task_one(
                sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(format!(
                    "SELECT {TASK_COLS} FROM tasks WHERE task_token_hash = $1 \
                     AND status IN ('dispatched', 'running')"
                )))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?,
            )
        })
    }

    fn transition_task(&self, t: Transition) -> StoreFut<'_, Option<TaskRow>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let terminal = t.to.is_terminal();
                let sql = format!(
                    "UPDATE tasks SET status = $2, \
                     output = COALESCE($3, output), error = COALESCE($4, error), \
                     failure_reason = COALESCE($5, failure_reason), \
                     session_id = COALESCE($6, session_id), work_dir = COALESCE($7, work_dir), \
                     started_at = CASE WHEN $2 = 'running' THEN $8 ELSE started_at END, \
                     completed_at = CASE WHEN $9 THEN $8 ELSE completed_at END, \
                     branch_name = COALESCE($10, branch_name), \
                     cancelled_by_kind = COALESCE($11, cancelled_by_kind), \
                     cancelled_by_name = COALESCE($12, cancelled_by_name) \
                     WHERE id = $1 AND status IN ({}) RETURNING {TASK_COLS}",
                    placeholders(13, t.from.len())
                );
                let mut q = sqlx::query_as::<_, TaskRecord>(AssertSqlSafe(sql))
                    .bind(&t.task_id)
                    .bind(t.to.as_str())
                    .bind(&t.output)
                    .bind(&t.error)
                    .bind(t.failure_reason.map(reason_text))
                    .bind(&t.session_id)
                    .bind(&t.work_dir)
                    .bind(t.now)
                    .bind(terminal)
                    .bind(&t.branch_name)
                    .bind(t.cancelled_by.as_ref().map(|a| actor_kind_text(a.kind)))
                    .bind(t.cancelled_by.as_ref().map(|a| a.name.clone()));
                for s in &t.from {
                    q = q.bind(s.as_str());
                }
                let Some(row) = task_one(q.fetch_optional(&mut **tx).await?)? else {
                    return Ok(None);
                };
                if let Some(c) = &t.comment {
                    insert_comment(tx, c).await?;
                }
                if let Some(d) = &t.diff {
                    insert_diff(tx, &row.id, d).await?;
                }
                if let Some(status) = &t.issue_status {
                    move_issue(tx, &row.issue_id, status, t.now).await?;
                }
                Ok(Some(row))
            })
        }))
    }

    fn pin_session(
        &self,
        task_id: String,
        session_id: Option<String>,
        work_dir: Option<String>,
    ) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE tasks SET session_id = COALESCE($2, session_id), \
                     work_dir = COALESCE($3, work_dir) \
                     WHERE id = $1 AND status IN ('dispatched', 'running')",
                )
                .bind(&task_id)
                .bind(&session_id)
                .bind(&work_dir)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn upsert_messages(&self, messages: Vec<MessageRow>) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                for m in &messages {
                    sqlx::query(
                        "INSERT INTO task_messages (task_id, seq, kind, tool, content, input, \
                         output, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (task_id, seq) DO NOTHING",
                    )
                    .bind(&m.task_id)
                    .bind(m.seq)
                    .bind(&m.kind)
                    .bind(&m.tool)
                    .bind(&m.content)
                    .bind(&m.input)
                    .bind(&m.output)
                    .bind(m.created_at)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            })
        }))
    }

    fn list_messages(
        &self,
        task_id: String,
        after_seq: i64,
        limit: i64,
    ) -> StoreFut<'_, Vec<MessageRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, MessageRow>(
                "SELECT * FROM task_messages WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(task_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn list_usage(&self, task_id: String) -> StoreFut<'_, Vec<UsageEntry>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT provider, model, input_tokens, output_tokens, cache_read_tokens, \
                 cache_write_tokens FROM task_usage WHERE task_id = $1 ORDER BY provider, model",
            )
            .bind(task_id)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| UsageEntry {
                    provider: r.get(0),
                    model: r.get(1),
                    input_tokens: r.get(2),
                    output_tokens: r.get(3),
                    cache_read_tokens: r.get(4),
                    cache_write_tokens: r.get(5),
                })
                .collect())
        })
    }

    fn upsert_usage(&self, task_id: String, usage: Vec<UsageEntry>) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                for u in &usage {
                    sqlx::query(
                        "INSERT INTO task_usage (task_id, provider, model, input_tokens, \
                         output_tokens, cache_read_tokens, cache_write_tokens) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (task_id, provider, model) DO UPDATE SET \
                         input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, \
                         cache_read_tokens = excluded.cache_read_tokens, \
                         cache_write_tokens = excluded.cache_write_tokens",
                    )
                    .bind(&task_id)
                    .bind(&u.provider)
                    .bind(&u.model)
                    .bind(u.input_tokens)
                    .bind(u.output_tokens)
                    .bind(u.cache_read_tokens)
                    .bind(u.cache_write_tokens)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            })
        }))
    }

    fn get_task_diff(&self, task_id: String) -> StoreFut<'_, Option<DiffRow>> {
        Box::pin(async move {
            let Some(r) = sqlx::query(
                "SELECT base_commit, head_commit, files, files_count, additions, deletions, \
                 patch, truncated, created_at FROM task_diffs WHERE task_id = $1",
            )
            .bind(&task_id)
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(None);
            };
            let files: String = r.get(2);
            let files = serde_json::from_str(&files).map_err(|e| {
                StoreError::Corrupt(format!("the diff files of task {task_id}: {e}"))
            })?;
            Ok(Some(DiffRow {
                diff: TaskDiff {
                    base_commit: r.get(0),
                    head_commit: r.get(1),
                    files,
                    additions: count(r.get(4)),
                    deletions: count(r.get(5)),
                    patch: r.get(6),
                    truncated: r.get(7),
                },
                files_count: count(r.get(3)),
                created_at: r.get(8),
            }))
        })
    }

    fn diffstats(&self, task_ids: Vec<String>) -> StoreFut<'_, Vec<(String, DiffStat)>> {
        Box::pin(async move {
            if task_ids.is_empty() {
                return Ok(Vec::new());
            }
            let sql = format!(
                "SELECT task_id, files_count, additions, deletions FROM task_diffs \
                 WHERE task_id IN ({})",
                placeholders(1, task_ids.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in task_ids {
                q = q.bind(id);
            }
            Ok(q.fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    let stat = DiffStat {
                        files: count(r.get(1)),
                        additions: count(r.get(2)),
                        deletions: count(r.get(3)),
                    };
                    (r.get(0), stat)
                })
                .collect())
        })
    }
}

async fn insert_task(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    t: &TaskRow,
) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO tasks ({TASK_COLS}) VALUES ({})",
        placeholders(1, TASK_COLS_N)
    )))
    .bind(&t.id)
    .bind(&t.workspace_id)
    .bind(&t.issue_id)
    .bind(&t.agent_id)
    .bind(&t.runtime_id)
    .bind(t.status.as_str())
    .bind(&t.claim_key)
    .bind(&t.trigger_comment_id)
    .bind(&t.output)
    .bind(&t.error)
    .bind(t.failure_reason.map(reason_text))
    .bind(&t.session_id)
    .bind(&t.work_dir)
    .bind(&t.parent_task_id)
    .bind(t.created_at)
    .bind(t.dispatched_at)
    .bind(t.started_at)
    .bind(t.completed_at)
    .bind(&t.branch_name)
    .bind(&t.daemon_id)
    .bind(t.held_at)
    .bind(&t.late_report)
    .bind(&t.claimed_by)
    .bind(t.queued_by.as_ref().map(|a| actor_kind_text(a.kind)))
    .bind(t.queued_by.as_ref().map(|a| a.name.clone()))
    .bind(t.cancelled_by.as_ref().map(|a| actor_kind_text(a.kind)))
    .bind(t.cancelled_by.as_ref().map(|a| a.name.clone()))
    .bind(&t.retry_task_id)
    .bind(t.attempt)
    .bind(t.not_before)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores the diff of task `task_id`; a diff already stored for it is kept (the first
/// final report wins).
async fn insert_diff(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    task_id: &str,
    d: &DiffRow,
) -> Result<(), StoreError> {
    let files = serde_json::to_string(&d.diff.files)
        .map_err(|e| StoreError::Corrupt(format!("the diff files of task {task_id}: {e}")))?;
    sqlx::query(
        "INSERT INTO task_diffs (task_id, base_commit, head_commit, files, files_count, \
         additions, deletions, patch, truncated, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (task_id) DO NOTHING",
    )
    .bind(task_id)
    .bind(&d.diff.base_commit)
    .bind(&d.diff.head_commit)
    .bind(files)
    .bind(stored_count(d.files_count))
    .bind(stored_count(d.diff.additions))
    .bind(stored_count(d.diff.deletions))
    .bind(&d.diff.patch)
    .bind(d.diff.truncated)
    .bind(d.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
