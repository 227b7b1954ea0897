//! User-facing commands: `server`, `up`, and the HTTP clients `workspace`, `token`,
//! `admin`, `runtime`, `agent`, `issue`, `task`, `forge`. Every client command takes `--server-url`
//! (`AGENTD_SERVER_URL`), `--token` (`AGENTD_TOKEN`) and `--json`.

mod client;
mod server;

use std::time::Duration;

use agentd_proto::TaskDiff;
use agentd_proto::api::DiffStat;
use anyhow::Context;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use client::{Client, ClientArgs, s};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run the control-plane server.
    Server(server::ServerArgs),
    /// Run a server and a daemon in one process for this machine.
    Up(server::UpArgs),
    /// Workspaces.
    Workspace(Group<WorkspaceCmd>),
    /// API tokens: list, create (member or daemon, with an expiry), revoke.
    Token(Group<TokenCmd>),
    /// Server administration with the admin token.
    Admin(Group<AdminCmd>),
    /// Runtimes (agent CLIs registered by daemons).
    Runtime(Group<RuntimeCmd>),
    /// Agents.
    Agent(Group<AgentCmd>),
    /// Issues and comments.
    Issue(Group<IssueCmd>),
    /// Tasks (runs of an agent on an issue).
    Task(Group<TaskCmd>),
    /// A workspace's forge (GitHub, Gitea/Forgejo): where pull requests are opened.
    Forge(Group<ForgeCmd>),
}

#[derive(clap::Subcommand, Debug)]
pub enum ForgeCmd {
    /// Connect the workspace to a forge (or change its connection). Prints the webhook
    /// secret when one is made (first connection, or `--rotate-webhook-secret`).
    Set {
        #[arg(long)]
        workspace: String,
        /// `github` or `gitea` (Forgejo is `gitea`).
        #[arg(long)]
        kind: String,
        /// The repository, `owner/name`.
        #[arg(long)]
        repo: String,
        /// A file holding the forge API token (`-`: standard input). Never a flag value,
        /// so it stays out of shell history and process lists.
        #[arg(long)]
        token_file: std::path::PathBuf,
        /// API base URL: default `https://api.github.com` for github; for gitea
        /// `https://HOST/api/v1`.
        #[arg(long)]
        api_url: Option<String>,
        /// Do not poll the forge for open pull requests (webhooks only).
        #[arg(long)]
        no_poll: bool,
        /// Make a new webhook secret (the old one stops working).
        #[arg(long)]
        rotate_webhook_secret: bool,
    },
    /// Show the workspace's forge connection (the token masked).
    Show {
        #[arg(long)]
        workspace: String,
    },
    /// Disconnect the workspace from its forge.
    Remove {
        #[arg(long)]
        workspace: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct Group<C: clap::Subcommand> {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    cmd: C,
}

#[derive(clap::Subcommand, Debug)]
pub enum WorkspaceCmd {
    /// Create a workspace.
    Create {
        name: String,
        /// A repository URL tasks may check out (repeatable).
        #[arg(long = "repo")]
        repos: Vec<String>,
    },
    /// List the workspaces the token can see.
    List,
}

#[derive(clap::Subcommand, Debug)]
pub enum TokenCmd {
    /// Tokens you can see: your own and those you created (the admin sees all).
    List,
    /// Create a token scoped to workspaces; it is printed once. A member token (default)
    /// calls the user API; a daemon token (`--daemon`) is for `agentd daemon` on a machine.
    Create {
        /// Workspace id (repeatable).
        #[arg(long, required = true)]
        workspace: Vec<String>,
        #[arg(long, default_value = "")]
        name: String,
        /// A daemon token (for a machine running `agentd daemon`).
        #[arg(long)]
        daemon: bool,
        /// Expire after this long, e.g. `30d`, `12h`, `90m` (default: never).
        #[arg(long, value_parser = parse_expires_in)]
        expires_in: Option<u64>,
    },
    /// Revoke a token: it stops working at once.
    Revoke { id: String },
}

#[derive(clap::Subcommand, Debug)]
pub enum AdminCmd {
    /// Replace the admin token: prints the new one (also written to the server's
    /// `admin-token` file); the old one stops working.
    RotateToken,
}

/// `30d`, `12h`, `90m`, `45s` or plain seconds → seconds.
fn parse_expires_in(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit (s, m, h, d), e.g. 30d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit is one of s, m, h, d")),
    };
    match n.checked_mul(mult) {
        Some(0) | None => Err(format!("{s:?}: must be positive")),
        Some(secs) => Ok(secs),
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum RuntimeCmd {
    List {
        #[arg(long)]
        workspace: String,
    },
    /// Delete a runtime; its daemon re-registers it under a new id.
    Delete { id: String },
}

#[derive(clap::Subcommand, Debug)]
pub enum AgentCmd {
    Create {
        name: String,
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        runtime: String,
        #[arg(long, default_value = "")]
        instructions: String,
        #[arg(long, default_value = "")]
        model: String,
        /// Extra CLI argument for the agent (repeatable).
        #[arg(long = "arg", allow_hyphen_values = true)]
        args: Vec<String>,
        /// Extra environment variable KEY=VALUE (repeatable).
        #[arg(long = "env")]
        env: Vec<String>,
    },
    List {
        #[arg(long)]
        workspace: String,
    },
    /// Change an agent; `--runtime` also moves its queued tasks there.
    Update {
        id: String,
        #[arg(long)]
        runtime: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        instructions: Option<String>,
        #[arg(long)]
        model: Option<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum IssueCmd {
    Create {
        title: String,
        #[arg(long)]
        workspace: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Agent id to assign (queues a task).
        #[arg(long)]
        assign: Option<String>,
        #[arg(long)]
        status: Option<String>,
    },
    List {
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Status, tasks and comments of an issue.
    Show {
        id: String,
    },
    Comment {
        id: String,
        text: String,
    },
    /// Set the status: backlog, todo, in_progress, in_review, done, cancelled.
    Status {
        id: String,
        status: String,
    },
    /// Assign to an agent (cancels the previous agent's tasks, queues one).
    Assign {
        id: String,
        agent: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum TaskCmd {
    Show {
        id: String,
    },
    /// Print a task's transcript; `--follow` keeps printing until the task ends.
    Logs {
        id: String,
        #[arg(long, short)]
        follow: bool,
        #[arg(long, default_value_t = 0)]
        after_seq: i64,
    },
    /// What a task's run changed: the diffstat, then the unified diff (`--json`: the
    /// whole `TaskDiff`).
    Diff {
        id: String,
        /// Only the diffstat.
        #[arg(long)]
        stat: bool,
    },
    Cancel {
        id: String,
    },
    /// Queue a new run of a failed or cancelled task.
    Retry {
        id: String,
    },
    /// Ask the daemon to push a `push_failed` task's branch again.
    Push {
        id: String,
    },
}

pub async fn run(cmd: Command, shutdown: CancellationToken) -> anyhow::Result<()> {
    match cmd {
        Command::Server(a) => server::server(a, shutdown).await,
        Command::Up(a) => server::up(a, shutdown).await,
        Command::Workspace(g) => workspace(Client::new(&g.client)?, g.cmd).await,
        Command::Token(g) => token(Client::new(&g.client)?, g.cmd).await,
        Command::Admin(g) => admin(Client::new(&g.client)?, g.cmd).await,
        Command::Runtime(g) => runtime(Client::new(&g.client)?, g.cmd).await,
        Command::Agent(g) => agent(Client::new(&g.client)?, g.cmd).await,
        Command::Issue(g) => issue(Client::new(&g.client)?, g.cmd).await,
        Command::Task(g) => task(Client::new(&g.client)?, g.cmd, shutdown).await,
        Command::Forge(g) => forge(Client::new(&g.client)?, g.cmd).await,
    }
}

fn forge_line(v: &Value) -> String {
    let mut out = format!(
        "{}\t{}\t{}\ttoken {}\tpoll {}\twebhook {}",
        s(v, "kind"),
        s(v, "repo"),
        s(v, "api_url"),
        s(v, "token"),
        s(v, "poll"),
        s(v, "webhook_path")
    );
    if let Some(secret) = v["webhook_secret"].as_str() {
        out.push_str(&format!(
            "\nwebhook secret (shown once; give it to the forge's webhook): {secret}"
        ));
    }
    out
}

async fn forge(c: Client, cmd: ForgeCmd) -> anyhow::Result<()> {
    match cmd {
        ForgeCmd::Set {
            workspace,
            kind,
            repo,
            token_file,
            api_url,
            no_poll,
            rotate_webhook_secret,
        } => {
            let token = if token_file.as_os_str() == "-" {
                let mut t = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
                    .context("cannot read the token from standard input")?;
                t
            } else {
                std::fs::read_to_string(&token_file)
                    .with_context(|| format!("cannot read {}", token_file.display()))?
            };
            let mut body = json!({"kind": kind, "repo": repo, "token": token.trim(),
                                  "poll": !no_poll,
                                  "rotate_webhook_secret": rotate_webhook_secret});
            if let Some(u) = api_url {
                body["api_url"] = json!(u);
            }
            let v = c
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/v1/workspaces/{workspace}/forge"),
                    Some(body),
                )
                .await?;
            c.print(&v, forge_line);
        }
        ForgeCmd::Show { workspace } => {
            let v = c
                .get(&format!("/api/v1/workspaces/{workspace}/forge"))
                .await?;
            c.print(&v, forge_line);
        }
        ForgeCmd::Remove { workspace } => {
            let v = c
                .delete(&format!("/api/v1/workspaces/{workspace}/forge"))
                .await?;
            c.print(&v, |_| format!("workspace {workspace}: forge removed"));
        }
    }
    Ok(())
}

/// `#N state url (review …, checks …)` of a `PullRequestInfo`.
fn pr_line(pr: &Value) -> String {
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

fn lines(v: &Value, f: impl Fn(&Value) -> String) -> String {
    v.as_array()
        .map(|a| a.iter().map(f).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

async fn workspace(c: Client, cmd: WorkspaceCmd) -> anyhow::Result<()> {
    match cmd {
        WorkspaceCmd::Create { name, repos } => {
            let v = c
                .post("/api/v1/workspaces", json!({"name": name, "repos": repos}))
                .await?;
            c.print(&v, |v| format!("{}\t{}", s(v, "id"), s(v, "name")));
        }
        WorkspaceCmd::List => {
            let v = c.get("/api/v1/workspaces").await?;
            c.print(&v, |v| {
                lines(v, |w| format!("{}\t{}", s(w, "id"), s(w, "name")))
            });
        }
    }
    Ok(())
}

async fn token(c: Client, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::List => {
            let v = c.get("/api/v1/tokens").await?;
            // id, kind, name, created, last used, expires, revoked (tab-separated).
            c.print(&v, |v| {
                lines(v, |t| {
                    let or = |k: &str, none: &str| match s(t, k) {
                        x if x.is_empty() => none.to_string(),
                        x => x,
                    };
                    let me = if t["current"] == true {
                        " (this token)"
                    } else {
                        ""
                    };
                    format!(
                        "{}\t{}\t{}{me}\t{}\t{}\t{}\t{}",
                        s(t, "id"),
                        s(t, "kind"),
                        s(t, "name"),
                        s(t, "created_at"),
                        or("last_used_at", "never"),
                        or("expires_at", "never"),
                        or("revoked_at", "-"),
                    )
                })
            });
        }
        TokenCmd::Create {
            workspace,
            name,
            daemon,
            expires_in,
        } => {
            let mut body = json!({
                "name": name,
                "kind": if daemon { "daemon" } else { "member" },
                "workspace_ids": workspace,
            });
            if let Some(secs) = expires_in {
                body["expires_in_secs"] = json!(secs);
            }
            let v = c.post("/api/v1/tokens", body).await?;
            c.print(&v, |v| {
                format!(
                    "{}\n(a {} token, id {}; shown once: the server keeps only its hash)",
                    s(v, "token"),
                    s(v, "kind"),
                    s(v, "id")
                )
            });
        }
        TokenCmd::Revoke { id } => {
            let v = c.delete(&format!("/api/v1/tokens/{id}")).await?;
            c.print(&v, |v| {
                format!("revoked token {} ({})", s(v, "id"), s(v, "name"))
            });
        }
    }
    Ok(())
}

async fn admin(c: Client, cmd: AdminCmd) -> anyhow::Result<()> {
    let AdminCmd::RotateToken = cmd;
    let v = c.post("/api/v1/admin/rotate-token", json!({})).await?;
    c.print(&v, |v| {
        format!(
            "{}\n(the new admin token, also in the server's admin-token file; the old one no \
             longer works)",
            s(v, "token")
        )
    });
    Ok(())
}

async fn runtime(c: Client, cmd: RuntimeCmd) -> anyhow::Result<()> {
    match cmd {
        RuntimeCmd::List { workspace } => {
            let v = c
                .get(&format!("/api/v1/workspaces/{workspace}/runtimes"))
                .await?;
            c.print(&v, |v| {
                let rows = lines(v, |r| {
                    let sandbox = match s(r, "sandbox") {
                        x if x.is_empty() => "-".to_string(),
                        x => x,
                    };
                    format!(
                        "{}\t{}\t{}\t{sandbox}\t{}",
                        s(r, "id"),
                        s(r, "provider"),
                        s(r, "status"),
                        s(r, "name")
                    )
                });
                format!("ID\tPROVIDER\tSTATUS\tSANDBOX\tNAME\n{rows}")
            });
        }
        RuntimeCmd::Delete { id } => {
            let v = c.delete(&format!("/api/v1/runtimes/{id}")).await?;
            c.print(&v, |_| format!("deleted runtime {id}"));
        }
    }
    Ok(())
}

async fn agent(c: Client, cmd: AgentCmd) -> anyhow::Result<()> {
    match cmd {
        AgentCmd::Create {
            name,
            workspace,
            runtime,
            instructions,
            model,
            args,
            env,
        } => {
            let mut env_map = serde_json::Map::new();
            for kv in env {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--env {kv:?}: expected KEY=VALUE"))?;
                env_map.insert(k.to_string(), Value::String(v.to_string()));
            }
            let v = c
                .post(
                    &format!("/api/v1/workspaces/{workspace}/agents"),
                    json!({"name": name, "runtime_id": runtime, "instructions": instructions,
                           "model": model, "custom_args": args, "custom_env": env_map}),
                )
                .await?;
            c.print(&v, |v| format!("{}\t{}", s(v, "id"), s(v, "name")));
        }
        AgentCmd::List { workspace } => {
            let v = c
                .get(&format!("/api/v1/workspaces/{workspace}/agents"))
                .await?;
            c.print(&v, |v| {
                lines(v, |a| {
                    format!("{}\t{}\t{}", s(a, "id"), s(a, "name"), s(a, "runtime_id"))
                })
            });
        }
        AgentCmd::Update {
            id,
            runtime,
            name,
            instructions,
            model,
        } => {
            let mut body = json!({});
            for (k, v) in [
                ("runtime_id", runtime),
                ("name", name),
                ("instructions", instructions),
                ("model", model),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            let v = c.patch(&format!("/api/v1/agents/{id}"), body).await?;
            c.print(&v, |v| {
                format!("{}\t{}\t{}", s(v, "id"), s(v, "name"), s(v, "runtime_id"))
            });
        }
    }
    Ok(())
}

async fn issue(c: Client, cmd: IssueCmd) -> anyhow::Result<()> {
    let one = |v: &Value| format!("{}\t{}\t{}", s(v, "id"), s(v, "status"), s(v, "title"));
    match cmd {
        IssueCmd::Create {
            title,
            workspace,
            description,
            assign,
            status,
        } => {
            let mut body = json!({"title": title, "description": description});
            let assigned = assign.is_some();
            if let Some(a) = assign {
                body["assignee_agent_id"] = json!(a);
            }
            let backlog = status.as_deref() == Some("backlog");
            if let Some(st) = status {
                body["status"] = json!(st);
            }
            let v = c
                .post(&format!("/api/v1/workspaces/{workspace}/issues"), body)
                .await?;
            c.print(&v, one);
            if backlog && assigned {
                // Never silence: an assigned issue in Backlog queues no task.
                eprintln!(
                    "note: the issue is in backlog, so its agent does not start yet; \
                     `agentd issue status {} todo` starts it",
                    v["id"].as_str().unwrap_or("ID")
                );
            }
        }
        IssueCmd::List { workspace } => {
            // Every page, following `next`; printed as one list.
            let base = match workspace {
                Some(w) => format!("/api/v1/issues?workspace_id={w}&limit=500"),
                None => "/api/v1/issues?limit=500".into(),
            };
            let mut issues = Vec::new();
            let mut path = base.clone();
            loop {
                let page = c.get(&path).await?;
                issues.extend(page["issues"].as_array().cloned().unwrap_or_default());
                match page["next"].as_str() {
                    Some(next) => path = format!("{base}&after={next}"),
                    None => break,
                }
            }
            c.print(&Value::Array(issues), |v| lines(v, one));
        }
        IssueCmd::Show { id } => {
            let v = c.get(&format!("/api/v1/issues/{id}")).await?;
            c.print(&v, |v| {
                let i = &v["issue"];
                let mut out = format!(
                    "{}\n{}\nstatus: {}\nassignee: {}\n\n{}\n",
                    s(i, "title"),
                    s(i, "id"),
                    s(i, "status"),
                    s(i, "assignee_agent_id"),
                    s(i, "description")
                );
                if !i["pr"].is_null() {
                    out.push_str(&format!("\npull request: {}\n", pr_line(&i["pr"])));
                }
                out.push_str("\ntasks:\n");
                out.push_str(&lines(&v["tasks"], |t| {
                    let changed = serde_json::from_value::<DiffStat>(t["diffstat"].clone())
                        .map(|d| format!("\t{}", shortstat(&d)))
                        .unwrap_or_default();
                    format!(
                        "  {}\t{}\t{}{changed}",
                        s(t, "id"),
                        s(t, "status"),
                        s(t, "created_at")
                    )
                }));
                out.push_str("\n\ncomments:\n");
                out.push_str(&lines(&v["comments"], |cm| {
                    format!(
                        "  [{} {}] {}",
                        s(cm, "author_type"),
                        s(cm, "author_name"),
                        s(cm, "body")
                    )
                }));
                out
            });
        }
        IssueCmd::Comment { id, text } => {
            let v = c
                .post(
                    &format!("/api/v1/issues/{id}/comments"),
                    json!({"body": text}),
                )
                .await?;
            c.print(&v, |v| format!("comment {}", s(v, "id")));
        }
        IssueCmd::Status { id, status } => {
            let v = c
                .patch(&format!("/api/v1/issues/{id}"), json!({"status": status}))
                .await?;
            c.print(&v, one);
        }
        IssueCmd::Assign { id, agent } => {
            let v = c
                .patch(
                    &format!("/api/v1/issues/{id}"),
                    json!({"assignee_agent_id": agent}),
                )
                .await?;
            c.print(&v, one);
        }
    }
    Ok(())
}

fn message_line(m: &Value) -> String {
    let body = [s(m, "content"), s(m, "output")]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let tool = s(m, "tool");
    let input = if m["input"].is_null() {
        String::new()
    } else {
        m["input"].to_string()
    };
    format!("#{} {} {tool} {input} {body}", s(m, "seq"), s(m, "type"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

async fn task(c: Client, cmd: TaskCmd, shutdown: CancellationToken) -> anyhow::Result<()> {
    let one = |v: &Value| format!("{}\t{}", s(v, "id"), s(v, "status"));
    match cmd {
        TaskCmd::Show { id } => {
            let v = c.get(&format!("/api/v1/tasks/{id}")).await?;
            c.print(&v, one);
        }
        TaskCmd::Diff { id, stat } => {
            let v = c.get(&format!("/api/v1/tasks/{id}/diff")).await?;
            let diff: TaskDiff = serde_json::from_value(v.clone())
                .with_context(|| format!("the server's diff of task {id} is not a TaskDiff"))?;
            c.print(&v, |_| render_diff(&diff, stat));
        }
        TaskCmd::Cancel { id } => {
            let v = c
                .post(&format!("/api/v1/tasks/{id}/cancel"), json!({}))
                .await?;
            c.print(&v, one);
        }
        TaskCmd::Retry { id } => {
            let v = c
                .post(&format!("/api/v1/tasks/{id}/retry"), json!({}))
                .await?;
            c.print(&v, one);
        }
        TaskCmd::Push { id } => {
            let v = c
                .post(&format!("/api/v1/tasks/{id}/push"), json!({}))
                .await?;
            c.print(&v, |v| {
                format!("{}\tpush requested from its daemon", s(v, "id"))
            });
        }
        TaskCmd::Logs {
            id,
            follow,
            mut after_seq,
        } => loop {
            let page = c
                .get(&format!(
                    "/api/v1/tasks/{id}/messages?after_seq={after_seq}&limit=1000"
                ))
                .await?;
            let msgs = page["messages"].as_array().cloned().unwrap_or_default();
            for m in &msgs {
                if c.json {
                    println!("{m}");
                } else {
                    println!("{}", message_line(m));
                }
                after_seq = after_seq.max(m["seq"].as_i64().unwrap_or(after_seq));
            }
            let done = matches!(
                page["task_status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            );
            // More pages stored now: fetch them at once, following or not.
            if page["next"].is_i64() {
                continue;
            }
            if !follow || (done && msgs.is_empty()) {
                break;
            }
            if msgs.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        },
    }
    Ok(())
}

/// `2 files changed, +10 -3`.
fn shortstat(d: &DiffStat) -> String {
    let plural = if d.files == 1 { "" } else { "s" };
    format!(
        "{} file{plural} changed, +{} -{}",
        d.files, d.additions, d.deletions
    )
}

/// Text from the server made safe for a terminal: control characters other than tab
/// (escape sequences in a patch or a path are the agent's, not ours to run) become `?`.
fn printable(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
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
}
