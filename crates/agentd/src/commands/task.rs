//! `agentd task …`: show, logs (follow with a closing line and exit codes), diff,
//! cancel, retry, push.

use std::time::Duration;

use agentd_proto::TaskDiff;
use agentd_proto::api::DiffStat;
use anyhow::Context as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::TaskCmd;
use super::client::{About, Client, enc, s};
use super::issue::{failure, pr_line, shortstat};
use super::render::{ago, between, duration, printable, printable_text, short};
use crate::error::{CliError, Kind};
use crate::style::Style;

const ENDED: [&str; 3] = ["completed", "failed", "cancelled"];

pub async fn run(c: Client, cmd: TaskCmd, shutdown: CancellationToken) -> anyhow::Result<()> {
    let st = Style::stdout();
    match cmd {
        TaskCmd::List {
            issue,
            workspace,
            status,
        } => list(&c, issue, workspace, status).await?,
        TaskCmd::Show { id } => {
            let v = c
                .get(&format!("/api/v1/tasks/{}", enc(&id)))
                .await
                .about(&[("task", &id)])?;
            c.print(&v, |v| render_task(v, st));
        }
        TaskCmd::Diff { id, stat } => {
            let v = c
                .get(&format!("/api/v1/tasks/{}/diff", enc(&id)))
                .await
                .about(&[("task", &id)])?;
            let diff: TaskDiff = serde_json::from_value(v.clone())
                .with_context(|| format!("the server's diff of task {id} is not a TaskDiff"))?;
            c.print(&v, |_| render_diff(&diff, stat));
        }
        TaskCmd::Cancel { id } => {
            let res = c
                .post(&format!("/api/v1/tasks/{}/cancel", enc(&id)), json!({}))
                .await
                .about(&[("task", &id)]);
            let v = match res {
                Ok(v) => v,
                Err(e) => return Err(already_ended(&c, &id, e).await),
            };
            c.print(&v, |v| {
                format!(
                    "cancelled task {} ({}{})",
                    short(&s(v, "id")),
                    s(v, "issue_key"),
                    match s(v, "agent_name") {
                        n if n.is_empty() => String::new(),
                        n => format!(", agent {n}"),
                    }
                )
            });
        }
        TaskCmd::Retry { id } => {
            let res = c
                .post(&format!("/api/v1/tasks/{}/retry", enc(&id)), json!({}))
                .await
                .about(&[("task", &id)]);
            let v = match res {
                Ok(v) => v,
                Err(e) => return Err(already_retried(&id, e)),
            };
            c.print(&v, |v| {
                let new = short(&s(v, "id"));
                format!(
                    "queued task {new}, a retry of {id} — follow it: agentd task logs {new} --follow"
                )
            });
        }
        TaskCmd::Push { id } => {
            let v = c
                .post(&format!("/api/v1/tasks/{}/push", enc(&id)), json!({}))
                .await
                .about(&[("task", &id)])?;
            c.print(&v, |v| {
                format!(
                    "task {}: push requested from its daemon",
                    short(&s(v, "id"))
                )
            });
        }
        TaskCmd::Logs {
            id,
            follow,
            after_seq,
            timestamps,
        } => logs(&c, &id, follow, after_seq, timestamps, shutdown).await?,
    }
    Ok(())
}

/// `agentd task list`: an issue's tasks, or the latest task of every issue.
async fn list(
    c: &Client,
    issue: Option<String>,
    workspace: Option<String>,
    status: Option<String>,
) -> anyhow::Result<()> {
    let st = Style::stdout();
    let mut tasks: Vec<Value> = match &issue {
        Some(i) => c
            .get(&format!("/api/v1/issues/{}", enc(i)))
            .await
            .about(&[("issue", i)])?["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        None => {
            let ws = workspace
                .filter(|w| !w.trim().is_empty())
                .or_else(|| c.settings.context_workspace.clone());
            let base = match &ws {
                Some(w) => format!("/api/v1/issues?limit=500&workspace_id={}", enc(w)),
                None => "/api/v1/issues?limit=500".to_string(),
            };
            let refs: Vec<(&str, &str)> = ws.iter().map(|w| ("workspace", w.as_str())).collect();
            let mut latest = Vec::new();
            let mut path = base.clone();
            loop {
                let page = c.get(&path).await.about(&refs)?;
                for i in page["issues"].as_array().into_iter().flatten() {
                    if i["latest_task"].is_object() {
                        latest.push(i["latest_task"].clone());
                    }
                }
                match page["next"].as_str() {
                    Some(next) => path = format!("{base}&after={}", enc(next)),
                    None => break,
                }
            }
            // Newest first.
            latest.sort_by_key(|t| std::cmp::Reverse(s(t, "created_at")));
            latest
        }
    };
    if let Some(want) = &status {
        tasks.retain(|t| s(t, "status") == *want);
    }
    c.print(&Value::Array(tasks), |v| {
        let list = v.as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            return match (&issue, &status) {
                (_, Some(_)) => "No tasks match.".into(),
                (Some(i), None) => {
                    format!(
                        "No tasks yet: {i} has never run — assign it: agentd issue assign {i} AGENT"
                    )
                }
                (None, None) => {
                    "No tasks yet — an issue assigned to an agent queues one: agentd issue create \
                     TITLE --assign AGENT"
                        .into()
                }
            };
        }
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|t| {
                let took = match (
                    s(t, "started_at").is_empty(),
                    s(t, "completed_at").is_empty(),
                ) {
                    (false, false) => took(t).map(duration).unwrap_or_default(),
                    (false, true) => {
                        between(&s(t, "started_at"), &jiff::Timestamp::now().to_string())
                            .map(|d| format!("{} so far", duration(d)))
                            .unwrap_or_default()
                    }
                    _ => "-".into(),
                };
                vec![
                    short(&s(t, "id")),
                    s(t, "issue_key"),
                    s(t, "agent_name"),
                    st.status(&s(t, "status")),
                    ago(&s(t, "created_at")),
                    took,
                ]
            })
            .collect();
        super::render::table(
            &["ID", "ISSUE", "AGENT", "STATUS", "CREATED", "DURATION"],
            &rows,
            st,
        )
    });
    Ok(())
}

/// A refused retry of a task already retried: names the retry and how to follow it.
fn already_retried(id: &str, e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<CliError>() {
        Ok(mut c) if c.code.as_deref() == Some(agentd_proto::ERROR_ALREADY_RETRIED) => {
            if let Some(m) = c.matches.first() {
                let retry = short(&m.id);
                c.message = format!("task {id} was already retried as {retry}");
                c.hint = Some(format!(
                    "follow the retry: agentd task logs {retry} --follow"
                ));
            }
            c.kind = Kind::Refused;
            c.into()
        }
        Ok(c) => c.into(),
        Err(e) => e,
    }
}

/// A refused cancel of a task that has ended: says how it ended.
async fn already_ended(client: &Client, id: &str, e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<CliError>() {
        Ok(mut c) if c.code.as_deref() == Some(agentd_proto::ERROR_ALREADY_ENDED) => {
            let status = client
                .get(&format!("/api/v1/tasks/{}", enc(id)))
                .await
                .map(|t| s(&t, "status"))
                .unwrap_or_default();
            c.message = match status.as_str() {
                "completed" => format!("task {id} already completed: nothing to cancel"),
                "failed" => format!("task {id} already failed: nothing to cancel"),
                "cancelled" => format!("task {id} was already cancelled"),
                _ => format!("task {id} has already ended: nothing to cancel"),
            };
            c.hint = Some(format!("see how it ended: agentd task show {id}"));
            c.kind = Kind::Refused;
            c.into()
        }
        Ok(c) => c.into(),
        Err(e) => e,
    }
}

/// How long a task ran: started (or created) → completed.
fn took(t: &Value) -> Option<i64> {
    let start = match s(t, "started_at") {
        x if x.is_empty() => s(t, "created_at"),
        x => x,
    };
    between(&start, &s(t, "completed_at"))
}

/// `agentd task show`'s text.
pub fn render_task(t: &Value, st: Style) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    let status = s(t, "status");
    rows.push(("status", st.status(&status)));
    if !s(t, "issue_key").is_empty() {
        rows.push(("issue", s(t, "issue_key")));
    }
    if !s(t, "agent_name").is_empty() {
        rows.push(("agent", s(t, "agent_name")));
    }
    rows.push(("created", ago(&s(t, "created_at"))));
    if !s(t, "started_at").is_empty() {
        rows.push(("started", ago(&s(t, "started_at"))));
    }
    if !s(t, "completed_at").is_empty() {
        let mut ended = ago(&s(t, "completed_at"));
        if let Some(d) = took(t) {
            ended.push_str(&format!(" (took {})", duration(d)));
        }
        rows.push(("ended", ended));
    } else if !s(t, "started_at").is_empty()
        && let Some(d) = between(&s(t, "started_at"), &jiff::Timestamp::now().to_string())
    {
        rows.push(("running for", duration(d)));
    }
    let f = failure(t);
    if !f.is_empty() {
        rows.push(("error", st.red(&f)));
    }
    if let Some(by) = t["cancelled_by"].as_object() {
        rows.push((
            "cancelled by",
            by.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ));
    }
    if !s(t, "parent_task_id").is_empty() {
        let mut retry_of = short(&s(t, "parent_task_id"));
        if let Some(by) = t["retried_by"]
            .as_object()
            .and_then(|b| b.get("name"))
            .and_then(Value::as_str)
        {
            retry_of.push_str(&format!(" (retried by {by})"));
        }
        rows.push(("retry of", retry_of));
    }
    if !s(t, "retry_task_id").is_empty() {
        rows.push(("retried as", short(&s(t, "retry_task_id"))));
    }
    if !s(t, "branch_name").is_empty() {
        rows.push(("branch", s(t, "branch_name")));
    }
    if let Ok(d) = serde_json::from_value::<DiffStat>(t["diffstat"].clone()) {
        rows.push(("changes", shortstat(&d)));
    }
    if t["pr"].is_object() {
        rows.push(("pull request", pr_line(&t["pr"])));
    }
    for u in t["usage"].as_array().into_iter().flatten() {
        let n = |k: &str| u[k].as_i64().unwrap_or(0);
        let mut line = format!("{} in, {} out", n("input_tokens"), n("output_tokens"));
        if n("cache_read_tokens") + n("cache_write_tokens") > 0 {
            line.push_str(&format!(
                ", cache {} read, {} written",
                n("cache_read_tokens"),
                n("cache_write_tokens")
            ));
        }
        let model = [s(u, "provider"), s(u, "model")]
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !model.is_empty() {
            line.push_str(&format!(" ({model})"));
        }
        rows.push(("tokens", line));
    }
    if !s(t, "session_id").is_empty() {
        rows.push(("session", s(t, "session_id")));
    }
    if !s(t, "work_dir").is_empty() {
        rows.push(("work dir", s(t, "work_dir")));
    }
    rows.push(("id", s(t, "id")));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = st.bold(&format!("Task {}", short(&s(t, "id"))));
    for (k, v) in rows {
        out.push_str(&format!("\n{:<width$} {v}", format!("{k}:")));
    }
    let output = s(t, "output");
    if !output.trim().is_empty() {
        out.push_str(&format!(
            "\n\n{}\n{}",
            st.bold("Output"),
            printable_text(output.trim_end())
        ));
    }
    out
}

/// A message's label and body for people.
fn message_parts(m: &Value) -> (&'static str, String) {
    let text = |k: &str| printable_text(&s(m, k));
    match m["type"].as_str().unwrap_or("") {
        "text" => ("agent", text("content")),
        "thinking" => ("thinking", text("content")),
        "tool_use" => {
            let input = if m["input"].is_null() {
                String::new()
            } else {
                let raw = m["input"].to_string();
                let cut: String = raw.chars().take(300).collect();
                if cut.len() < raw.len() {
                    format!(" {cut}…")
                } else {
                    format!(" {cut}")
                }
            };
            ("tool", format!("{}{}", s(m, "tool"), printable(&input)))
        }
        "tool_result" => {
            let out = [s(m, "output"), s(m, "content")]
                .into_iter()
                .find(|x| !x.is_empty())
                .unwrap_or_default();
            let lines: Vec<&str> = out.lines().collect();
            let mut body = lines
                .iter()
                .take(12)
                .map(|l| printable(l))
                .collect::<Vec<_>>()
                .join("\n");
            if lines.len() > 12 {
                body.push_str(&format!(
                    "\n… ({} more lines; --json shows all)",
                    lines.len() - 12
                ));
            }
            ("result", body)
        }
        "error" => (
            "error",
            [text("content"), text("output")]
                .into_iter()
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => (
            "event",
            [text("content"), text("output")]
                .into_iter()
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

/// One transcript message as text: a label column, then the body (continuation lines
/// indented under it).
pub fn message_text(m: &Value, stamp: Option<&str>, st: Style) -> String {
    let (label, body) = message_parts(m);
    let painted = match label {
        "agent" => st.bold(&format!("{label:<8}")),
        "error" => st.red(&format!("{label:<8}")),
        "tool" | "result" => st.cyan(&format!("{label:<8}")),
        _ => st.dim(&format!("{label:<8}")),
    };
    let prefix = stamp.map(|t| format!("{} ", st.dim(t))).unwrap_or_default();
    let indent = " ".repeat(stamp.map(|t| t.chars().count() + 1).unwrap_or(0) + 9);
    let mut lines = body.lines();
    let first = lines.next().unwrap_or("");
    let body = if label == "thinking" {
        st.dim(first)
    } else {
        first.to_string()
    };
    let mut out = format!("{prefix}{painted} {body}");
    for l in lines {
        out.push('\n');
        out.push_str(&indent);
        out.push_str(l);
    }
    out
}

async fn logs(
    c: &Client,
    id: &str,
    follow: bool,
    mut after_seq: i64,
    timestamps: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let st = Style::stdout();
    let mut last_text = String::new();
    let mut interrupted = false;
    loop {
        let page = c
            .get(&format!(
                "/api/v1/tasks/{}/messages?after_seq={after_seq}&limit=1000",
                enc(id)
            ))
            .await
            .about(&[("task", id)])?;
        let msgs = page["messages"].as_array().cloned().unwrap_or_default();
        for m in &msgs {
            if c.json {
                crate::outln!("{m}");
            } else {
                let stamp = timestamps.then(|| {
                    let at = s(m, "created_at");
                    let ts = super::render::parse_time(&at).unwrap_or_else(jiff::Timestamp::now);
                    ts.to_zoned_datetime(jiff::tz::TimeZone::system())
                        .strftime("%H:%M:%S")
                        .to_string()
                });
                crate::outln!("{}", message_text(m, stamp.as_deref(), st));
            }
            if m["type"] == "text" {
                last_text = s(m, "content");
            }
            after_seq = after_seq.max(m["seq"].as_i64().unwrap_or(after_seq));
        }
        let done = page["task_status"]
            .as_str()
            .is_some_and(|x| ENDED.contains(&x));
        // More pages stored now: fetch them at once, following or not.
        if page["next"].is_i64() {
            continue;
        }
        if !follow || (done && msgs.is_empty()) {
            break;
        }
        if msgs.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => { interrupted = true; break }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
    if !follow || interrupted {
        return Ok(());
    }
    let t = c
        .get(&format!("/api/v1/tasks/{}", enc(id)))
        .await
        .about(&[("task", id)])?;
    let status = s(&t, "status");
    let output = s(&t, "output");
    if !c.json && !output.trim().is_empty() && output.trim() != last_text.trim() {
        crate::outln!(
            "{}\n{}",
            st.bold("Output"),
            printable_text(output.trim_end())
        );
    }
    let took = took(&t).map(duration).unwrap_or_else(|| "?".into());
    let fancy = crate::style::stdout_fancy();
    let (ok, bad) = if fancy { ("✓", "✗") } else { ("--", "--") };
    let (line, err) = match status.as_str() {
        "completed" => (st.green(&format!("{ok} completed in {took}")), None),
        "failed" => {
            let f = failure(&t);
            // The closing line stays one line: a multi-line error (an agent's stderr)
            // is printed whole above it, and the line keeps its first line.
            let f = match f.trim_end().split_once('\n') {
                Some((first, _)) => {
                    if !c.json {
                        crate::outln!("{}\n{}", st.bold("Error"), f.trim_end());
                    }
                    format!("{first} (…)")
                }
                None => f,
            };
            let why = if f.is_empty() {
                String::new()
            } else {
                format!(": {f}")
            };
            let line = format!("{bad} failed after {took}{why}");
            (
                st.red(&line),
                Some((
                    Kind::TaskFailed,
                    format!("task {id} failed after {took}{why}"),
                )),
            )
        }
        _ => {
            let by = t["cancelled_by"]
                .as_object()
                .and_then(|b| b.get("name"))
                .and_then(Value::as_str)
                .map(|n| format!(" by {n}"))
                .unwrap_or_default();
            let line = format!("{bad} cancelled after {took}{by}");
            (
                st.yellow(&line),
                Some((
                    Kind::TaskCancelled,
                    format!("task {id} was cancelled after {took}{by}"),
                )),
            )
        }
    };
    if !c.json {
        crate::outln!("{line}");
    }
    match err {
        None => Ok(()),
        Some((kind, msg)) => {
            let mut e = CliError::new(kind, msg).code(if kind == Kind::TaskFailed {
                "task_failed"
            } else {
                "task_cancelled"
            });
            e.reported = true;
            Err(e.into())
        }
    }
}

/// `git diff --stat`-like: one ` path | +a -d` line per file (` | binary` for binary
/// files), the total, then (unless `stat_only`) the unified diff.
fn render_diff(d: &TaskDiff, stat_only: bool) -> String {
    let paths: Vec<String> = d.files.iter().map(|f| printable(&f.path)).collect();
    let width = paths
        .iter()
        .map(|p| p.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    let mut out = String::new();
    for (f, path) in d.files.iter().zip(&paths) {
        let change = if f.binary {
            "binary".to_string()
        } else {
            format!("+{} -{}", f.additions, f.deletions)
        };
        out.push_str(&format!(" {path:<width$} | {change}\n"));
    }
    out.push_str(&format!(
        " {}\n",
        shortstat(&DiffStat {
            files: d.files.len() as u64,
            additions: d.additions,
            deletions: d.deletions,
        })
    ));
    if d.truncated {
        out.push_str(" (cut: the diff was longer than the server keeps)\n");
    }
    if !stat_only && !d.patch.is_empty() {
        out.push('\n');
        for line in d.patch.lines() {
            out.push_str(&printable(line));
            out.push('\n');
        }
    }
    out.trim_end_matches('\n').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentd_proto::DiffFile;

    #[test]
    fn a_diff_renders_as_a_stat_then_the_patch() {
        let d = TaskDiff {
            files: vec![
                DiffFile {
                    path: "src/lib.rs".into(),
                    additions: 2,
                    deletions: 1,
                    binary: false,
                },
                DiffFile {
                    path: "logo.png".into(),
                    binary: true,
                    ..Default::default()
                },
            ],
            additions: 2,
            deletions: 1,
            patch: "diff --git a/src/lib.rs b/src/lib.rs\n-old\n+new \u{1b}[31mred\n".into(),
            ..Default::default()
        };
        assert_eq!(
            render_diff(&d, true),
            " src/lib.rs | +2 -1\n logo.png   | binary\n 2 files changed, +2 -1"
        );
        assert_eq!(
            render_diff(&d, false),
            " src/lib.rs | +2 -1\n logo.png   | binary\n 2 files changed, +2 -1\n\n\
             diff --git a/src/lib.rs b/src/lib.rs\n-old\n+new ?[31mred"
        );
    }

    #[test]
    fn messages_get_labels_not_wire_kinds() {
        let st = Style::new(false);
        let m = json!({"seq": 3, "type": "tool_use", "tool": "Bash", "input": {"command": "ls"}});
        assert_eq!(
            message_text(&m, None, st),
            "tool     Bash {\"command\":\"ls\"}"
        );
        let m = json!({"seq": 4, "type": "text", "content": "one\ntwo"});
        assert_eq!(
            message_text(&m, Some("12:00:00"), st),
            "12:00:00 agent    one\n                  two"
        );
    }
}
