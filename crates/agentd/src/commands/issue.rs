//! `agentd issue …`: create, list, show, comment, status, assign.

use std::collections::HashMap;

use agentd_proto::api::DiffStat;
use serde_json::{Value, json};

use super::client::{About, Client, enc, s};
use super::render::{ago, between, cut, duration, printable, printable_text, short, table};
use super::{IssueCmd, START_DAEMON_HINT, runtimes_of};
use crate::style::Style;

/// `2 files changed, +10 -3`.
pub fn shortstat(d: &DiffStat) -> String {
    let plural = if d.files == 1 { "" } else { "s" };
    format!(
        "{} file{plural} changed, +{} -{}",
        d.files, d.additions, d.deletions
    )
}

/// `#N state url (review …, checks …)` of a `PullRequestInfo`.
pub fn pr_line(pr: &Value) -> String {
    let mut out = format!("#{} {} {}", s(pr, "number"), s(pr, "state"), s(pr, "url"));
    for key in ["review_state", "checks_state"] {
        if !pr[key].is_null() {
            out.push_str(&format!(
                " {}: {}",
                key.trim_end_matches("_state"),
                s(pr, key)
            ));
        }
    }
    out
}

/// The board's page of an issue.
pub fn board_url(c: &Client, issue_id: &str) -> String {
    format!("{}/#/issues/{issue_id}", c.base)
}

/// The agents of the workspaces in `ws_ids`: id → name.
async fn agent_names(c: &Client, ws_ids: &[String]) -> HashMap<String, String> {
    let mut names = HashMap::new();
    for ws in ws_ids {
        if let Ok(v) = c
            .get(&format!("/api/v1/workspaces/{}/agents", enc(ws)))
            .await
        {
            for a in v.as_array().into_iter().flatten() {
                names.insert(s(a, "id"), s(a, "name"));
            }
        }
    }
    names
}

/// An issue's label in one line: `AGD-3 (todo) Title`.
fn one(v: &Value) -> String {
    let key = match s(v, "key") {
        k if k.is_empty() => short(&s(v, "id")),
        k => k,
    };
    format!("{key} ({}) {}", s(v, "status"), s(v, "title"))
}

pub async fn run(c: Client, cmd: IssueCmd) -> anyhow::Result<()> {
    let st = Style::stdout();
    match cmd {
        IssueCmd::Create {
            title,
            workspace,
            description,
            assign,
            status,
        } => {
            let ws = c.workspace(workspace).await?;
            let mut body = json!({"title": title, "description": description});
            if let Some(a) = &assign {
                body["assignee_agent_id"] = json!(a);
            }
            if let Some(st) = &status {
                body["status"] = json!(st);
            }
            let mut refs = vec![("workspace", ws.as_str())];
            if let Some(a) = &assign {
                refs.insert(0, ("agent", a.as_str()));
            }
            let v = c
                .post(&format!("/api/v1/workspaces/{}/issues", enc(&ws)), body)
                .await
                .about(&refs)?;
            if c.json {
                c.print(&v, |_| String::new());
                return Ok(());
            }
            let id = s(&v, "id");
            let key = match s(&v, "key") {
                k if k.is_empty() => short(&id),
                k => k,
            };
            let mut out = format!(
                "created {} {} ({})",
                st.bold(&key),
                s(&v, "title"),
                s(&v, "status")
            );
            let detail = c
                .get(&format!("/api/v1/issues/{}", enc(&id)))
                .await
                .unwrap_or(Value::Null);
            let queued = detail["tasks"]
                .as_array()
                .and_then(|t| t.last().cloned())
                .filter(|t| {
                    matches!(
                        t["status"].as_str(),
                        Some("queued" | "dispatched" | "running")
                    )
                });
            match (&queued, v["assignee_agent_id"].is_string(), s(&v, "status").as_str()) {
                (Some(t), _, _) => {
                    let tid = short(&s(t, "id"));
                    let agent = match s(t, "agent_name") {
                        n if n.is_empty() => assign.clone().unwrap_or_default(),
                        n => n,
                    };
                    out.push_str(&format!(
                        "\nqueued task {tid} for agent {agent} — follow it: agentd task logs {tid} --follow"
                    ));
                    let runtimes = runtimes_of(&c, &ws).await;
                    if !runtimes.iter().any(|r| r["status"] == "online") {
                        out.push_str(&format!("\n{} {START_DAEMON_HINT}", st.dim("hint:")));
                    }
                }
                (None, true, "backlog") => out.push_str(&format!(
                    "\nnothing queued: the issue is in backlog, so its agent does not start yet; \
                     start it: agentd issue status {key} todo"
                )),
                (None, false, _) => out.push_str(&format!(
                    "\nnothing queued: no agent is assigned; assign one: agentd issue assign {key} AGENT"
                )),
                (None, true, status) => out.push_str(&format!(
                    "\nnothing queued: the issue's status is {status}"
                )),
            }
            out.push_str(&format!("\nboard: {}", board_url(&c, &id)));
            crate::outln!("{out}");
        }
        IssueCmd::List {
            workspace,
            status,
            assignee,
            search,
        } => {
            // The workspace given or in the context; none: every visible workspace.
            let ws = workspace
                .filter(|w| !w.trim().is_empty())
                .or_else(|| c.settings.context_workspace.clone());
            let mut base = String::from("/api/v1/issues?limit=500");
            for (k, v) in [
                ("workspace_id", &ws),
                ("status", &status),
                ("assignee", &assignee),
                ("q", &search),
            ] {
                if let Some(v) = v {
                    base.push_str(&format!("&{k}={}", enc(v)));
                }
            }
            let mut refs = Vec::new();
            if let Some(w) = &ws {
                refs.push(("workspace", w.as_str()));
            }
            if let Some(a) = &assignee {
                refs.push(("agent", a.as_str()));
            }
            // Every page, following `next`; printed as one list.
            let mut issues = Vec::new();
            let mut path = base.clone();
            loop {
                let page = c.get(&path).await.about(&refs)?;
                issues.extend(page["issues"].as_array().cloned().unwrap_or_default());
                match page["next"].as_str() {
                    Some(next) => path = format!("{base}&after={}", enc(next)),
                    None => break,
                }
            }
            let names = if c.json {
                HashMap::new()
            } else {
                let mut ws_ids: Vec<String> = issues.iter().map(|i| s(i, "workspace_id")).collect();
                ws_ids.sort();
                ws_ids.dedup();
                agent_names(&c, &ws_ids).await
            };
            let filtered = status.is_some() || assignee.is_some() || search.is_some();
            c.print(&Value::Array(issues), |v| {
                let list = v.as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    return if filtered {
                        "No issues match.".into()
                    } else {
                        "No issues yet — create one: agentd issue create TITLE --assign AGENT"
                            .into()
                    };
                }
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|i| {
                        let aid = s(i, "assignee_agent_id");
                        let agent = if aid.is_empty() {
                            "-".to_string()
                        } else {
                            names.get(&aid).cloned().unwrap_or_else(|| short(&aid))
                        };
                        let key = match s(i, "key") {
                            k if k.is_empty() => short(&s(i, "id")),
                            k => k,
                        };
                        vec![
                            key,
                            st.status(&s(i, "status")),
                            cut(&printable(&s(i, "title")), 60),
                            agent,
                            s(i, "run_count"),
                            ago(&s(i, "created_at")),
                        ]
                    })
                    .collect();
                table(
                    &["KEY", "STATUS", "TITLE", "AGENT", "RUNS", "AGE"],
                    &rows,
                    st,
                )
            });
        }
        IssueCmd::Show { id } => {
            let mut v = c
                .get(&format!("/api/v1/issues/{}", enc(&id)))
                .await
                .about(&[("issue", &id)])?;
            if c.json {
                c.print(&v, |_| String::new());
                return Ok(());
            }
            // Where each run ran: its runtime's name (a pool agent's runs may differ).
            let ws = s(&v["issue"], "workspace_id");
            if let Ok(rts) = c
                .get(&format!("/api/v1/workspaces/{}/runtimes", enc(&ws)))
                .await
            {
                for t in v["tasks"].as_array_mut().into_iter().flatten() {
                    let rid = s(t, "runtime_id");
                    if let Some(r) = rts
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|r| s(r, "id") == rid)
                    {
                        t["runtime_name"] = r["name"].clone();
                    }
                }
            }
            let aid = s(&v["issue"], "assignee_agent_id");
            let assignee = if aid.is_empty() {
                String::new()
            } else {
                let from_tasks = v["tasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| s(t, "agent_id") == aid && !s(t, "agent_name").is_empty())
                    .map(|t| s(t, "agent_name"));
                match from_tasks {
                    Some(n) => n,
                    None => c
                        .get(&format!("/api/v1/agents/{}", enc(&aid)))
                        .await
                        .map(|a| s(&a, "name"))
                        .unwrap_or_else(|_| short(&aid)),
                }
            };
            crate::outln!(
                "{}",
                render_issue(&v, &assignee, &board_url(&c, &s(&v["issue"], "id")), st)
            );
        }
        IssueCmd::Comment { id, text } => {
            let v = c
                .post(
                    &format!("/api/v1/issues/{}/comments", enc(&id)),
                    json!({"body": text}),
                )
                .await
                .about(&[("issue", &id)])?;
            c.print(&v, |_| format!("commented on {id}"));
        }
        IssueCmd::Status { id, status } => {
            let v = c
                .patch(
                    &format!("/api/v1/issues/{}", enc(&id)),
                    json!({"status": status}),
                )
                .await
                .about(&[("issue", &id)])?;
            c.print(&v, |v| {
                format!(
                    "{} is now {} ({})",
                    match s(v, "key") {
                        k if k.is_empty() => id.clone(),
                        k => k,
                    },
                    st.status(&s(v, "status")),
                    s(v, "title")
                )
            });
        }
        IssueCmd::Assign { id, agent } => {
            let v = c
                .patch(
                    &format!("/api/v1/issues/{}", enc(&id)),
                    json!({"assignee_agent_id": agent}),
                )
                .await
                .about(&[("issue", &id), ("agent", &agent)])?;

            c.print(&v, |v| {
                if v["assignee_agent_id"].is_string() {
                    format!("{} — assigned to {agent}", one(v))
                } else {
                    format!("{} — unassigned", one(v))
                }
            });
        }
    }
    Ok(())
}

/// Who did it, for people.
fn actor(e: &Value) -> String {
    match s(&e["actor"], "name") {
        n if n.is_empty() => "agentd".to_string(),
        n => n,
    }
}

/// `completed`, `took 12s`: a run's outcome and how long it took (or has been running).
fn run_timing(t: &Value) -> String {
    let started = s(t, "started_at");
    let ended = s(t, "completed_at");
    match (started.is_empty(), ended.is_empty()) {
        (false, false) => between(&started, &ended)
            .map(|d| format!("took {}", duration(d)))
            .unwrap_or_default(),
        (false, true) => between(&started, &jiff::Timestamp::now().to_string())
            .map(|d| format!("running for {}", duration(d)))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// `reason: error` of a failed task.
pub fn failure(t: &Value) -> String {
    let (reason, error) = (s(t, "failure_reason"), s(t, "error"));
    match (reason.is_empty(), error.is_empty()) {
        (false, false) => format!("{reason}: {}", printable_text(&error)),
        (false, true) => reason,
        (true, false) => printable_text(&error),
        _ => String::new(),
    }
}

fn render_run(t: &Value, st: Style) -> String {
    let mut head = vec![short(&s(t, "id")), st.status(&s(t, "status"))];
    if !s(t, "agent_name").is_empty() {
        head.push(format!("by {}", s(t, "agent_name")));
    }
    head.push(ago(&s(t, "created_at")));
    if !s(t, "runtime_name").is_empty() {
        head.push(format!("on {}", s(t, "runtime_name")));
    }
    if t["attempt"].as_u64().is_some_and(|a| a > 1) {
        head.push(format!("attempt {}", t["attempt"]));
    }
    let timing = run_timing(t);
    if !timing.is_empty() {
        head.push(timing);
    }
    let mut out = format!("  {}", head.join("  "));
    let pad = "      ";
    if s(t, "status") == "queued" && s(t, "runtime_id").is_empty() {
        out.push_str(&format!(
            "\n{pad}waiting for a runtime of the agent's pool with free capacity"
        ));
    }
    let f = failure(t);
    if !f.is_empty() {
        out.push_str(&format!("\n{pad}{} {f}", st.red("error:")));
    }
    if let Some(by) = t["cancelled_by"].as_object() {
        out.push_str(&format!(
            "\n{pad}cancelled by {}",
            by.get("name").and_then(Value::as_str).unwrap_or("someone")
        ));
    }
    let branch = s(t, "branch_name");
    let stat = serde_json::from_value::<DiffStat>(t["diffstat"].clone()).ok();
    match (branch.is_empty(), stat) {
        (false, Some(d)) => out.push_str(&format!("\n{pad}branch {branch}: {}", shortstat(&d))),
        (false, None) => out.push_str(&format!("\n{pad}branch {branch}")),
        (true, Some(d)) => out.push_str(&format!("\n{pad}{}", shortstat(&d))),
        (true, None) => {}
    }
    if t["pr"].is_object() {
        out.push_str(&format!("\n{pad}pull request: {}", pr_line(&t["pr"])));
    }
    if !s(t, "retry_task_id").is_empty() {
        out.push_str(&format!(
            "\n{pad}retried as {}",
            short(&s(t, "retry_task_id"))
        ));
    }
    out
}

fn render_activity(e: &Value) -> String {
    let who = actor(e);
    let task = |e: &Value| short(&s(&e["task"], "id"));
    let kind = s(e, "kind");
    match kind.as_str() {
        "created" => match s(e, "to_status") {
            st if st.is_empty() => format!("{who} created the issue"),
            st => format!("{who} created the issue in {st}"),
        },
        "comment" => format!(
            "{who} commented: {}",
            cut(&printable(&s(&e["comment"], "body")), 100)
        ),
        "status_changed" => format!(
            "{who} moved it from {} to {}",
            s(e, "from_status"),
            s(e, "to_status")
        ),
        "assigned" => match s(e, "detail") {
            d if d.is_empty() => format!("{who} unassigned it"),
            d => format!("{who} assigned it to {d}"),
        },
        "edited" => match s(e, "detail") {
            d if d.is_empty() => format!("{who} edited it"),
            d => format!("{who} edited the {d}"),
        },
        "task_queued" => format!("{who} queued run {}", task(e)),
        "task_started" => format!("{who} started run {}", task(e)),
        "task_completed" => format!("run {} completed", task(e)),
        "task_failed" => match failure(&e["task"]) {
            f if f.is_empty() => format!("run {} failed", task(e)),
            f => format!("run {} failed: {}", task(e), cut(&f, 120)),
        },
        "task_cancelled" => format!("{who} cancelled run {}", task(e)),
        "task_retried" => format!("{who} retried it as run {}", task(e)),
        other => format!("{who}: {other}"),
    }
}

/// `agentd issue show`'s text.
pub fn render_issue(v: &Value, assignee: &str, board: &str, st: Style) -> String {
    let i = &v["issue"];
    let key = match s(i, "key") {
        k if k.is_empty() => short(&s(i, "id")),
        k => k,
    };
    let mut head = vec![format!(
        "{}  {}",
        st.bold(&key),
        st.bold(&printable(&s(i, "title")))
    )];
    head.push(format!("status:    {}", st.status(&s(i, "status"))));
    head.push(format!(
        "assignee:  {}",
        if assignee.is_empty() {
            "nobody"
        } else {
            assignee
        }
    ));
    let (created, updated) = (s(i, "created_at"), s(i, "updated_at"));
    let mut when = format!("created:   {}", ago(&created));
    if !updated.is_empty() && ago(&updated) != ago(&created) {
        when.push_str(&format!(", updated {}", ago(&updated)));
    }
    head.push(when);
    if i["pr"].is_object() {
        head.push(format!("pull request: {}", pr_line(&i["pr"])));
    }
    head.push(format!("board:     {board}"));
    let mut sections = vec![head.join("\n")];
    let description = s(i, "description");
    if !description.trim().is_empty() {
        sections.push(printable_text(description.trim_end()));
    }
    let tasks = v["tasks"].as_array().cloned().unwrap_or_default();
    if tasks.is_empty() {
        sections.push(format!("{}\n  none yet", st.bold("Runs")));
    } else {
        let runs: Vec<String> = tasks.iter().map(|t| render_run(t, st)).collect();
        sections.push(format!(
            "{}\n{}",
            st.bold(&format!("Runs ({})", tasks.len())),
            runs.join("\n")
        ));
    }
    let activity = v["activity"].as_array().cloned().unwrap_or_default();
    if !activity.is_empty() {
        let rows: Vec<String> = activity
            .iter()
            .map(|e| {
                format!(
                    "  {}  {}",
                    st.dim(&format!("{:>8}", ago(&s(e, "at")))),
                    render_activity(e)
                )
            })
            .collect();
        sections.push(format!("{}\n{}", st.bold("Activity"), rows.join("\n")));
    } else if let Some(comments) = v["comments"].as_array().filter(|c| !c.is_empty()) {
        let rows: Vec<String> = comments
            .iter()
            .map(|cm| {
                format!(
                    "  {}  {}: {}",
                    st.dim(&format!("{:>8}", ago(&s(cm, "created_at")))),
                    s(cm, "author_name"),
                    printable_text(&s(cm, "body"))
                )
            })
            .collect();
        sections.push(format!("{}\n{}", st.bold("Comments"), rows.join("\n")));
    }
    sections.join("\n\n")
}
