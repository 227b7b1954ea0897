//! User-facing commands: `server`, `up`, `context`, and the HTTP clients `workspace`,
//! `token`, `admin`, `runtime`, `agent`, `issue`, `task`, `forge`. Every client command
//! takes `--server-url` (`AGENTD_SERVER_URL`), `--token` (`AGENTD_TOKEN`) and `--json`;
//! what they leave out comes from the context file (`context.rs`). References (ids,
//! unique id prefixes, issue keys, names) are passed to the server as typed: it
//! resolves them.

mod client;
mod context;
mod issue;
pub(crate) mod render;
mod server;
mod task;

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::style::Style;
use client::{About, Client, ClientArgs, enc, s};
use render::{ago, short, table};

pub use client::check_server_url;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run the control-plane server (API, daemon hub and web board on one port).
    #[command(
        after_help = "Examples:\n  agentd server\n  agentd server --listen 0.0.0.0:8080 --public-url https://agentd.example.com"
    )]
    Server(server::ServerArgs),
    /// Run a server and a daemon in one process for this machine, and save the CLI's
    /// context so every other command works in a new shell.
    #[command(
        after_help = "Examples:\n  cd ~/src/myproject && agentd up\n  agentd up --repo ~/src/other --data-dir ~/.local/share/agentd-other --listen 127.0.0.1:8081"
    )]
    Up(server::UpArgs),
    /// Sign in with your email and password: the server makes you an API token (yours,
    /// with your role in each of your workspaces), saved in the CLI's context. With
    /// `--web` (single sign-on, or no password): the board's token page opens in your
    /// browser, and the token you make there is pasted back here.
    #[command(
        after_help = "Examples:\n  echo \"$PASSWORD\" | agentd login --server-url https://agentd.example.com --email ann@example.com --password-stdin\n  AGENTD_PASSWORD=... agentd login --server-url http://127.0.0.1:8080 --email ann@example.com --name laptop\n  agentd login --server-url https://agentd.example.com --web"
    )]
    Login(LoginArgs),
    /// The CLI's context (server URL, token, default workspace): show, set, clear.
    #[command(
        after_help = "Examples:\n  agentd context show\n  agentd context set --workspace AGD\n  agentd context clear"
    )]
    Context(ContextArgs),
    /// Workspaces: create, list.
    #[command(
        after_help = "Examples:\n  agentd workspace list\n  agentd workspace create widgets --key WID --repo https://github.com/acme/widgets"
    )]
    Workspace(Group<WorkspaceCmd>),
    /// API tokens: list, create (member or daemon, with an expiry), revoke.
    #[command(
        after_help = "Examples:\n  agentd token list\n  agentd token create --daemon --name laptop --expires-in 90d"
    )]
    Token(Group<TokenCmd>),
    /// Users (people who sign in to the board): create, list, update.
    #[command(
        after_help = "Examples:\n  echo \"$PASSWORD\" | agentd user create --email ann@example.com --admin --password-stdin\n  agentd user list --json"
    )]
    User(Group<UserCmd>),
    /// The audit log: who signed in, changed tokens, members, agents, runtimes, forges.
    #[command(
        after_help = "Examples:\n  agentd audit list\n  agentd audit list --action signin.failed --json"
    )]
    Audit(Group<AuditCmd>),
    /// Server administration with the admin token.
    #[command(
        after_help = "Examples:\n  agentd admin rotate-token --token \"$(cat ~/.local/share/agentd/server/admin-token)\""
    )]
    Admin(Group<AdminCmd>),
    /// Runtimes (agent CLIs registered by daemons): list, delete.
    #[command(
        after_help = "Examples:\n  agentd runtime list\n  agentd runtime delete 'Claude (laptop)'"
    )]
    Runtime(Group<RuntimeCmd>),
    /// Agents (a runtime with instructions and a model): create, list, update.
    #[command(
        after_help = "Examples:\n  agentd agent create my-agent --runtime claude\n  agentd agent list"
    )]
    Agent(Group<AgentCmd>),
    /// Issues: create, list, show, comment, set status, assign.
    #[command(
        after_help = "Examples:\n  agentd issue create \"Fix the flaky test\" --assign my-agent\n  agentd issue list --status todo\n  agentd issue show AGD-3"
    )]
    Issue(Group<IssueCmd>),
    /// Tasks (runs of an agent on an issue): list, show, logs, diff, cancel, retry, push.
    #[command(
        after_help = "Examples:\n  agentd task list --issue AGD-3\n  agentd task show 1a2b\n  agentd task logs 1a2b --follow\n  agentd task retry 1a2b"
    )]
    Task(Group<TaskCmd>),
    /// A workspace's forge (GitHub, Gitea/Forgejo): where pull requests are opened.
    #[command(
        after_help = "Examples:\n  agentd forge set --kind github --repo acme/widgets --token-file ~/.gh-token\n  agentd forge show"
    )]
    Forge(Group<ForgeCmd>),
}

impl Command {
    /// Whether the command serves until it is stopped (`server`, `up`): a closed stdout
    /// must not end it.
    pub fn runs_until_stopped(&self) -> bool {
        matches!(self, Command::Server(_) | Command::Up(_))
    }

    /// Whether the user asked for JSON (errors are then JSON on stderr too).
    pub fn wants_json(&self) -> bool {
        match self {
            Command::Server(a) => a.json,
            Command::Up(a) => a.json,
            Command::Login(a) => a.json,
            Command::Context(a) => match &a.cmd {
                ContextCmd::Show { client } => client.json,
                ContextCmd::Set { json, .. } | ContextCmd::Clear { json } => *json,
            },
            Command::Workspace(g) => g.client.json,
            Command::Token(g) => g.client.json,
            Command::Admin(g) => g.client.json,
            Command::User(g) => g.client.json,
            Command::Audit(g) => g.client.json,
            Command::Runtime(g) => g.client.json,
            Command::Agent(g) => g.client.json,
            Command::Issue(g) => g.client.json,
            Command::Task(g) => g.client.json,
            Command::Forge(g) => g.client.json,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Group<C: clap::Subcommand> {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    cmd: C,
}

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// The server's URL [default: the context's].
    #[arg(long, env = "AGENTD_SERVER_URL")]
    server_url: Option<String>,
    /// Your email.
    #[arg(long, required_unless_present = "web")]
    email: Option<String>,
    /// Sign in in the browser instead (single sign-on, or an account without a password):
    /// opens the board's token page (prints its address when no browser opens); paste
    /// the token you make there on standard input.
    #[arg(long, conflicts_with_all = ["email", "password_stdin", "name"])]
    web: bool,
    /// Read the password from standard input (else AGENTD_PASSWORD).
    #[arg(long)]
    password_stdin: bool,
    /// The new token's name [default: `cli on HOSTNAME`].
    #[arg(long)]
    name: Option<String>,
    /// Print `{"server_url","token_id","workspace_ids","context_file"}` instead of a sentence.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ContextArgs {
    #[command(subcommand)]
    cmd: ContextCmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum ContextCmd {
    /// Show the server URL, token (masked) and workspace the CLI would use, and where
    /// each comes from (flag, environment, context file or default).
    #[command(
        after_help = "Examples:\n  agentd context show\n  AGENTD_WORKSPACE=OPS agentd context show --json"
    )]
    Show {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change the context file: only the given values change.
    #[command(
        after_help = "Examples:\n  agentd context set --workspace AGD\n  agentd context set --server-url https://agentd.example.com --token -   # the token from stdin"
    )]
    Set {
        /// The server URL, e.g. `http://127.0.0.1:8080`.
        #[arg(long)]
        server_url: Option<String>,
        /// The token; `-` reads it from standard input (keeps it out of shell history).
        #[arg(long)]
        token: Option<String>,
        /// The default workspace: its key, name or id.
        #[arg(long)]
        workspace: Option<String>,
        /// Forget the default workspace.
        #[arg(long, conflicts_with = "workspace")]
        no_workspace: bool,
        /// Print the new context as JSON (the token masked).
        #[arg(long)]
        json: bool,
    },
    /// Remove the context file.
    #[command(after_help = "Examples:\n  agentd context clear")]
    Clear {
        /// Print `{"removed": PATH|null}`.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum ForgeCmd {
    /// Connect the workspace to a forge (or change its connection). Prints the webhook
    /// secret when one is made (first connection, or `--rotate-webhook-secret`).
    #[command(
        after_help = "Examples:\n  agentd forge set --kind github --repo acme/widgets --token-file ~/.gh-token\n  agentd forge set --kind gitea --repo team/app --api-url https://git.example.com/api/v1 --token-file -"
    )]
    Set {
        /// The workspace (key, name or id) [default: the context's, or the only one].
        #[arg(long, env = "AGENTD_WORKSPACE")]
        workspace: Option<String>,
        /// The forge's kind (Forgejo is `gitea`).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["github", "gitea", "forgejo"]))]
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
    #[command(after_help = "Examples:\n  agentd forge show\n  agentd forge show --workspace AGD")]
    Show {
        /// The workspace (key, name or id) [default: the context's, or the only one].
        #[arg(long, env = "AGENTD_WORKSPACE")]
        workspace: Option<String>,
    },
    /// Disconnect the workspace from its forge.
    #[command(after_help = "Examples:\n  agentd forge remove --workspace AGD")]
    Remove {
        /// The workspace (key, name or id) [default: the context's, or the only one].
        #[arg(long, env = "AGENTD_WORKSPACE")]
        workspace: Option<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum WorkspaceCmd {
    /// Create a workspace.
    #[command(
        after_help = "Examples:\n  agentd workspace create widgets\n  agentd workspace create widgets --key WID --repo https://github.com/acme/widgets"
    )]
    Create {
        /// Its name.
        name: String,
        /// A repository URL tasks may check out (repeatable).
        #[arg(long = "repo")]
        repos: Vec<String>,
        /// The prefix of its issue keys (2–6 letters or digits, e.g. `AGD` gives AGD-1)
        /// [default: derived from the name].
        #[arg(long)]
        key: Option<String>,
    },
    /// List the workspaces the token can see (`*` marks the default one).
    #[command(after_help = "Examples:\n  agentd workspace list\n  agentd workspace list --json")]
    List,
    /// Show or change a workspace's account settings: the role users who first sign in
    /// with OIDC get here (`none`: they join by invitation). Changing it needs the admin
    /// role; it is audited.
    #[command(
        after_help = "Examples:\n  agentd workspace settings\n  agentd workspace settings --workspace AGD --oidc-default-role member\n  agentd workspace settings --oidc-default-role none"
    )]
    Settings {
        /// The workspace (key, name or id) [default: the context's, or the only one].
        #[arg(long)]
        workspace: Option<String>,
        /// viewer, member, admin or none.
        #[arg(long, value_parser = ["none", "viewer", "member", "admin"])]
        oidc_default_role: Option<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum TokenCmd {
    /// Tokens you can see: your own and those you created (the admin sees all).
    #[command(after_help = "Examples:\n  agentd token list")]
    List,
    /// Create a token scoped to workspaces; it is printed once. A member token (default)
    /// calls the user API; a daemon token (`--daemon`) is for `agentd daemon` on a machine.
    #[command(
        after_help = "Examples:\n  agentd token create --name alice\n  agentd token create --daemon --workspace AGD --expires-in 90d"
    )]
    Create {
        /// A workspace (key, name or id; repeatable) [default: the context's, or the only one].
        #[arg(long)]
        workspace: Vec<String>,
        /// The token's name (what activity entries call its holder).
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
    #[command(after_help = "Examples:\n  agentd token revoke 3f2a9c1d")]
    Revoke {
        /// The token's id (or a unique prefix of it, as `token list` shows).
        id: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum UserCmd {
    /// Create a local account (server admins: the admin token or an admin user). The
    /// password is read from standard input (`--password-stdin`) or AGENTD_PASSWORD.
    #[command(
        after_help = "Examples:\n  echo \"$PASSWORD\" | agentd user create --email ann@example.com --admin --password-stdin\n  AGENTD_PASSWORD=... agentd user create --email bo@example.com --name Bo"
    )]
    Create {
        /// The email the user signs in with.
        #[arg(long)]
        email: String,
        /// The name the board shows.
        #[arg(long, default_value = "")]
        name: String,
        /// A server admin: every workspace, every route.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (else AGENTD_PASSWORD).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Every user (server admins).
    #[command(after_help = "Examples:\n  agentd user list\n  agentd user list --json")]
    List,
    /// Change a user's email, name or password (server admins), e.g. to take over the
    /// `admin@agentd.invalid` user an upgrade made (docs/accounts.md).
    #[command(
        after_help = "Examples:\n  echo \"$PASSWORD\" | agentd user update admin@agentd.invalid --email me@example.com --password-stdin"
    )]
    Update {
        /// The user's email or id.
        user: String,
        /// The new email.
        #[arg(long)]
        email: Option<String>,
        /// The new name.
        #[arg(long)]
        name: Option<String>,
        /// Read a new password from standard input (else AGENTD_PASSWORD, if set).
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum AuditCmd {
    /// Audit entries, newest first (server admins see all; workspace admins theirs).
    #[command(
        after_help = "Examples:\n  agentd audit list\n  agentd audit list --workspace AGD --limit 50\n  agentd audit list --action signin.failed --json"
    )]
    List {
        /// Only this workspace's entries (key, name or id).
        #[arg(long)]
        workspace: Option<String>,
        /// Only this action, e.g. `signin`, `signin.failed`, `token.create`.
        #[arg(long)]
        action: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum AdminCmd {
    /// Replace the admin token: prints the new one (also written to the server's
    /// `admin-token` file); the old one stops working.
    #[command(
        after_help = "Examples:\n  agentd admin rotate-token --token \"$(cat DATA_DIR/server/admin-token)\""
    )]
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
    /// List the workspace's runtimes and whether each is online.
    #[command(
        after_help = "Examples:\n  agentd runtime list\n  agentd runtime list --workspace AGD --json"
    )]
    List {
        /// The workspace (key, name or id) [default: the context's, or the only one].
        #[arg(long, env = "AGENTD_WORKSPACE")]
        workspace: Option<String>,
    },
    /// Delete a runtime; its daemon re-registers it under a new id.
    #[command(
        after_help = "Examples:\n  agentd runtime delete 'Claude (laptop)'\n  agentd runtime delete 5e6f"
    )]
    Delete {
        /// The runtime: its name, id or a unique id prefix.
        id: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum AgentCmd {
    /// Create an agent on a runtime, or on a pool of runtimes.
    #[command(
        after_help = "Examples:\n  agentd agent create my-agent --runtime claude\n  agentd agent create reviewer --runtime codex --model o4 --instructions \"Review only\"\n  agentd agent create anywhere --pool-provider claude\n  agentd agent create trainer --pool-provider claude --pool-label gpu --max-retries 3\n  agentd agent create pair --pool-runtime 'Claude (laptop)' --pool-runtime 'Claude (buildbox)'"
    )]
    Create {
        /// Its name (unique in the workspace; issues are assigned to it by name).
        name: String,
        /// The workspace (key, name or id) [default: the context's, or the only one].
        #[arg(long, env = "AGENTD_WORKSPACE")]
        workspace: Option<String>,
        /// The runtime it runs on: its name, id or a unique id prefix (`agentd runtime list`).
        /// Not needed with a pool.
        #[arg(long, required_unless_present_any = ["pool_runtime", "pool_provider"])]
        runtime: Option<String>,
        #[command(flatten)]
        pool: PoolArgs,
        /// Standing instructions added to every prompt.
        #[arg(long, default_value = "")]
        instructions: String,
        /// The model to ask the CLI for (default: the CLI's own).
        #[arg(long, default_value = "")]
        model: String,
        /// Extra CLI argument for the agent (repeatable).
        #[arg(long = "arg", allow_hyphen_values = true)]
        args: Vec<String>,
        /// Extra environment variable KEY=VALUE (repeatable; values are write-only).
        #[arg(long = "env")]
        env: Vec<String>,
    },
    /// List the workspace's agents.
    #[command(after_help = "Examples:\n  agentd agent list\n  agentd agent list --workspace AGD")]
    List {
        /// The workspace (key, name or id) [default: the context's, or the only one].
        #[arg(long, env = "AGENTD_WORKSPACE")]
        workspace: Option<String>,
    },
    /// Change an agent; `--runtime` also moves its queued tasks there.
    #[command(
        after_help = "Examples:\n  agentd agent update my-agent --runtime claude\n  agentd agent update my-agent --model sonnet"
    )]
    Update {
        /// The agent: its name, id or a unique id prefix.
        id: String,
        /// Its new runtime (name, id or unique id prefix).
        #[arg(long)]
        runtime: Option<String>,
        /// Its new name.
        #[arg(long)]
        name: Option<String>,
        /// Its new instructions.
        #[arg(long)]
        instructions: Option<String>,
        /// Its new model.
        #[arg(long)]
        model: Option<String>,
        /// A new pool (replaces the old one).
        #[command(flatten)]
        pool: PoolArgs,
        /// Remove its pool (it then needs `--runtime`).
        #[arg(long, conflicts_with_all = ["pool_runtime", "pool_provider", "pool_label"])]
        no_pool: bool,
    },
}

/// An agent's runtime pool and retry settings (`agent create`, `agent update`).
#[derive(clap::Args, Debug, Default)]
pub struct PoolArgs {
    /// A runtime of its pool: name, id or unique id prefix (repeatable). Its tasks go to
    /// whichever runtime of the pool is online with free capacity.
    #[arg(long, value_name = "RUNTIME")]
    pub pool_runtime: Vec<String>,
    /// Any runtime of this provider in the workspace belongs to its pool (`claude`, …).
    #[arg(long, value_name = "PROVIDER")]
    pub pool_provider: Option<String>,
    /// Only runtimes carrying this label (a daemon's `--label`; repeatable: all of them).
    #[arg(long, value_name = "LABEL", requires = "pool_provider")]
    pub pool_label: Vec<String>,
    /// Automatic retries of a task that failed transiently (runtime gone, model API
    /// overloaded) [default: 2].
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Most of its tasks running at once (0: no cap of its own).
    #[arg(long)]
    pub max_concurrency: Option<u32>,
}

impl PoolArgs {
    /// The request fields these flags set.
    fn apply(&self, body: &mut Value) {
        if !self.pool_runtime.is_empty() || self.pool_provider.is_some() {
            body["pool"] = json!({"runtime_ids": self.pool_runtime,
                                  "provider": self.pool_provider, "labels": self.pool_label});
        }
        if let Some(n) = self.max_retries {
            body["max_retries"] = json!(n);
        }
        if let Some(n) = self.max_concurrency {
            body["max_concurrency"] = json!(n);
        }
    }
}

/// How an agent's runtime reads in a table: its runtime's name, or its pool.
fn agent_runtime(a: &Value, names: &std::collections::HashMap<String, String>) -> String {
    let Some(pool) = a.get("pool").filter(|p| p.is_object()) else {
        let rid = s(a, "runtime_id");
        return names.get(&rid).cloned().unwrap_or_else(|| short(&rid));
    };
    let mut what: Vec<String> = Vec::new();
    if let Some(p) = pool["provider"].as_str() {
        what.push(format!("any {p}"));
    }
    for l in pool["labels"].as_array().into_iter().flatten() {
        what.push(format!("+{}", l.as_str().unwrap_or_default()));
    }
    let n = a["pool_runtimes"].as_array().map_or(0, Vec::len);
    if pool["runtime_ids"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
    {
        what.push("listed".into());
    }
    match a["problem"].as_str() {
        Some(problem) => format!("pool ({}): {problem}", what.join(" ")),
        None => format!(
            "pool ({}): {n} runtime{}",
            what.join(" "),
            if n == 1 { "" } else { "s" }
        ),
    }
}

/// `--status` values of issues.
fn issue_status() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(agentd_proto::api::ISSUE_STATUSES.iter().copied())
}

#[derive(clap::Subcommand, Debug)]
pub enum IssueCmd {
    /// Create an issue; assigned to an agent (and not in backlog), it queues a task.
    #[command(
        after_help = "Examples:\n  agentd issue create \"Fix the flaky test\" --assign my-agent\n  agentd issue create \"Later\" --status backlog --description \"when there is time\""
    )]
    Create {
        /// Its title.
        title: String,
        /// The workspace (key, name or id) [default: the context's, or the only one].
        #[arg(long, env = "AGENTD_WORKSPACE")]
        workspace: Option<String>,
        /// Its description (what the agent is asked to do, in detail).
        #[arg(long, default_value = "")]
        description: String,
        /// The agent to assign (name, id or unique id prefix): queues a task.
        #[arg(long)]
        assign: Option<String>,
        /// Its first status [default: todo].
        #[arg(long, value_parser = issue_status())]
        status: Option<String>,
    },
    /// List issues: the workspace's (or every visible one's when none is set).
    #[command(
        after_help = "Examples:\n  agentd issue list\n  agentd issue list --status in_progress --assignee my-agent\n  agentd issue list -q flaky"
    )]
    List {
        /// The workspace (key, name or id) [default: the context's; else every workspace].
        #[arg(long, env = "AGENTD_WORKSPACE")]
        workspace: Option<String>,
        /// Only issues with this status.
        #[arg(long, value_parser = issue_status())]
        status: Option<String>,
        /// Only issues assigned to this agent (name, id or prefix), or `none`.
        #[arg(long)]
        assignee: Option<String>,
        /// Only issues whose title, description or key contains this text (any case).
        #[arg(long, short = 'q')]
        search: Option<String>,
    },
    /// An issue: status, assignee, description, runs and what happened when.
    #[command(
        after_help = "Examples:\n  agentd issue show AGD-3\n  agentd issue show AGD-3 --json"
    )]
    Show {
        /// The issue: its key (AGD-3), id or a unique id prefix.
        id: String,
    },
    /// Comment on an issue.
    #[command(after_help = "Examples:\n  agentd issue comment AGD-3 \"Use the new API\"")]
    Comment {
        /// The issue: its key, id or a unique id prefix.
        id: String,
        /// The comment.
        text: String,
    },
    /// Set an issue's status.
    #[command(
        after_help = "Examples:\n  agentd issue status AGD-3 todo\n  agentd issue status AGD-3 done"
    )]
    Status {
        /// The issue: its key, id or a unique id prefix.
        id: String,
        /// The new status.
        #[arg(value_parser = issue_status())]
        status: String,
    },
    /// Assign an issue to an agent (cancels the previous agent's tasks, queues one), or
    /// unassign it with `none`.
    #[command(
        after_help = "Examples:\n  agentd issue assign AGD-3 my-agent\n  agentd issue assign AGD-3 none"
    )]
    Assign {
        /// The issue: its key, id or a unique id prefix.
        id: String,
        /// The agent: its name, id or a unique id prefix; `none` unassigns.
        agent: String,
    },
}

/// `--status` values of tasks.
fn task_status() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new([
        "queued",
        "dispatched",
        "running",
        "completed",
        "failed",
        "cancelled",
    ])
}

#[derive(clap::Subcommand, Debug)]
pub enum TaskCmd {
    /// List tasks: every run of one issue (`--issue`), or the latest run of each issue
    /// of the workspace.
    #[command(
        after_help = "Examples:\n  agentd task list --issue AGD-3\n  agentd task list --status failed"
    )]
    List {
        /// Every run of this issue (its key, id or a unique id prefix).
        #[arg(long)]
        issue: Option<String>,
        /// The workspace (key, name or id) [default: the context's; else every workspace];
        /// not used with `--issue`.
        #[arg(long, env = "AGENTD_WORKSPACE")]
        workspace: Option<String>,
        /// Only tasks with this status.
        #[arg(long, value_parser = task_status())]
        status: Option<String>,
    },
    /// A task: its issue, agent, status, times, error, branch, session and work dir.
    #[command(after_help = "Examples:\n  agentd task show 1a2b\n  agentd task show 1a2b --json")]
    Show {
        /// The task: its id or a unique id prefix (≥ 4 characters).
        id: String,
    },
    /// Print a task's transcript; `--follow` keeps printing until the task ends, then
    /// prints how it ended and exits 0 (completed), 8 (failed) or 9 (cancelled).
    #[command(
        after_help = "Examples:\n  agentd task logs 1a2b\n  agentd task logs 1a2b --follow --timestamps"
    )]
    Logs {
        /// The task: its id or a unique id prefix.
        id: String,
        /// Keep printing until the task ends.
        #[arg(long, short)]
        follow: bool,
        /// Only messages after this sequence number.
        #[arg(long, default_value_t = 0)]
        after_seq: i64,
        /// Prefix each line with its time (when the CLI received it: the server keeps no
        /// time per message).
        #[arg(long, short)]
        timestamps: bool,
    },
    /// What a task's run changed: the diffstat, then the unified diff (`--json`: the
    /// whole `TaskDiff`).
    #[command(after_help = "Examples:\n  agentd task diff 1a2b\n  agentd task diff 1a2b --stat")]
    Diff {
        /// The task: its id or a unique id prefix.
        id: String,
        /// Only the diffstat.
        #[arg(long)]
        stat: bool,
    },
    /// Cancel a queued or running task (its agent is stopped).
    #[command(after_help = "Examples:\n  agentd task cancel 1a2b")]
    Cancel {
        /// The task: its id or a unique id prefix.
        id: String,
    },
    /// Queue a new run of a failed or cancelled task (a task is retried at most once).
    #[command(after_help = "Examples:\n  agentd task retry 1a2b\n  agentd task retry 1a2b --json")]
    Retry {
        /// The task: its id or a unique id prefix.
        id: String,
    },
    /// Ask the daemon to push a `push_failed` task's branch again.
    #[command(after_help = "Examples:\n  agentd task push 1a2b")]
    Push {
        /// The task: its id or a unique id prefix.
        id: String,
    },
}

pub async fn run(cmd: Command, shutdown: CancellationToken) -> anyhow::Result<()> {
    match cmd {
        Command::Server(a) => server::server(a, shutdown).await,
        Command::Up(a) => server::up(a, shutdown).await,
        Command::Login(a) => login(a).await,
        Command::Context(a) => context_cmd(a.cmd).await,
        Command::Workspace(g) => workspace(Client::new(&g.client)?, g.cmd).await,
        Command::Token(g) => token(Client::new(&g.client)?, g.cmd).await,
        Command::Admin(g) => admin(Client::new(&g.client)?, g.cmd).await,
        Command::User(g) => user(Client::new(&g.client)?, g.cmd).await,
        Command::Audit(g) => audit(Client::new(&g.client)?, g.cmd).await,
        Command::Runtime(g) => runtime(Client::new(&g.client)?, g.cmd).await,
        Command::Agent(g) => agent(Client::new(&g.client)?, g.cmd).await,
        Command::Issue(g) => issue::run(Client::new(&g.client)?, g.cmd).await,
        Command::Task(g) => task::run(Client::new(&g.client)?, g.cmd, shutdown).await,
        Command::Forge(g) => forge(Client::new(&g.client)?, g.cmd).await,
    }
}

/// `agentd login`: a session from the email and password, a member token for every
/// workspace the user has a role in (or, for a server admin, every workspace) made with
/// it, the session ended, and the token saved in the CLI's context with the server URL.
async fn login(a: LoginArgs) -> anyhow::Result<()> {
    let saved = context::load().unwrap_or_default();
    let url = a
        .server_url
        .clone()
        .or(saved.server_url.clone())
        .context("no server: pass --server-url (or set AGENTD_SERVER_URL)")?;
    let url = url.trim_end_matches('/').to_string();
    check_server_url(&url)?;
    if a.web {
        return login_web(&url, saved, a.json).await;
    }
    let email = a.email.clone().unwrap_or_default();
    let password = read_password(a.password_stdin, true)?.unwrap_or_default();
    let http = reqwest::Client::new();
    let fail = |what: &str, status: reqwest::StatusCode, body: &Value| {
        let msg = body["error"].as_str().unwrap_or("").to_string();
        let kind = if status == 401 || status == 403 || status == 429 {
            crate::error::Kind::Auth
        } else {
            crate::error::Kind::Other
        };
        crate::error::CliError::new(kind, format!("{what}: {msg} ({status})"))
    };
    let resp = http
        .post(format!("{url}/api/v1/session"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let cookie = resp
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string();
    let session: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(fail("sign-in refused", status, &session).into());
    }
    let csrf = s(&session, "csrf_token");
    let mut workspace_ids = field_of_each(&session["memberships"], "workspace_id");
    if session["user"]["is_admin"] == true {
        let all: Value = http
            .get(format!("{url}/api/v1/workspaces"))
            .header(reqwest::header::COOKIE, &cookie)
            .send()
            .await?
            .json()
            .await?;
        workspace_ids = field_of_each(&all, "id");
    }
    let end_session = || async {
        let _ = http
            .delete(format!("{url}/api/v1/session"))
            .header(reqwest::header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .send()
            .await;
    };
    if workspace_ids.is_empty() {
        end_session().await;
        anyhow::bail!(
            "{email} has no workspace on this server yet: ask an admin for an invitation"
        );
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let name = a.name.clone().unwrap_or_else(|| match host.as_str() {
        "" => "cli".into(),
        h => format!("cli on {h}"),
    });
    let resp = http
        .post(format!("{url}/api/v1/tokens"))
        .header(reqwest::header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": name, "workspace_ids": workspace_ids}))
        .send()
        .await?;
    let status = resp.status();
    let tok: Value = resp.json().await.unwrap_or(Value::Null);
    end_session().await;
    if !status.is_success() {
        return Err(fail("cannot make a token", status, &tok).into());
    }
    let file = save_login(&url, s(&tok, "token"), saved)?;
    if a.json {
        crate::outln!(
            "{}",
            json!({"server_url": url, "token_id": s(&tok, "id"), "workspace_ids": workspace_ids,
                   "context_file": file.display().to_string()})
        );
    } else {
        crate::outln!(
            "signed in as {}: token {} ({}) for {} workspace(s) saved in {}",
            email,
            short(&s(&tok, "id")),
            name,
            workspace_ids.len(),
            file.display()
        );
    }
    Ok(())
}

/// `agentd login --web`: the board's token page (where a signed-in person — password or
/// single sign-on — makes a token of their own and sees it once) is opened in the browser
/// (`$BROWSER`, else `xdg-open`; its address is printed either way), the token is read
/// from standard input, checked against the server and saved in the context.
async fn login_web(url: &str, saved: context::CliContext, json_out: bool) -> anyhow::Result<()> {
    let page = format!("{url}/#/tokens");
    eprintln!(
        "Open {page} , sign in, make a token (\"New token\") and paste it here, then press Enter:"
    );
    let opener = std::env::var("BROWSER").unwrap_or_else(|_| "xdg-open".into());
    let _ = std::process::Command::new(&opener)
        .arg(&page)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the token from standard input")?;
    let token = line.trim().to_string();
    if token.is_empty() {
        anyhow::bail!("no token was pasted: nothing saved");
    }
    let resp = reqwest::Client::new()
        .get(format!("{url}/api/v1/workspaces"))
        .bearer_auth(&token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = body["error"].as_str().unwrap_or("").to_string();
        return Err(crate::error::CliError::new(
            crate::error::Kind::Auth,
            format!("the server refused that token: {msg} ({status}); nothing saved"),
        )
        .into());
    }
    let workspace_ids = field_of_each(&body, "id");
    let file = save_login(url, token, saved)?;
    if json_out {
        crate::outln!(
            "{}",
            json!({"server_url": url, "workspace_ids": workspace_ids,
                   "context_file": file.display().to_string()})
        );
    } else {
        crate::outln!(
            "signed in: the token for {} workspace(s) is saved in {}",
            workspace_ids.len(),
            file.display()
        );
    }
    Ok(())
}

/// `field` of each object of the JSON array `list` (none when it is not an array).
fn field_of_each(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .map(|items| items.iter().map(|i| s(i, field)).collect())
        .unwrap_or_default()
}

/// Saves a signed-in server and token as the CLI's context; the chosen workspace is kept
/// only when the server is the one it was chosen on. Returns the context file.
fn save_login(
    url: &str,
    token: String,
    saved: context::CliContext,
) -> anyhow::Result<std::path::PathBuf> {
    let ctx = context::CliContext {
        server_url: Some(url.to_string()),
        token: Some(token),
        workspace: saved
            .workspace
            .filter(|_| saved.server_url.as_deref() == Some(url)),
    };
    context::save(&ctx)
}

fn read_stdin_trimmed(what: &str) -> anyhow::Result<String> {
    let mut t = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
        .with_context(|| format!("cannot read {what} from standard input"))?;
    Ok(t.trim().to_string())
}

async fn context_cmd(cmd: ContextCmd) -> anyhow::Result<()> {
    match cmd {
        ContextCmd::Show { client } => {
            let st = client::settings(&client)?;
            let file = context::path_text();
            let exists = context::path().is_some_and(|p| p.exists());
            let (ws, ws_src) = match std::env::var("AGENTD_WORKSPACE")
                .ok()
                .filter(|w| !w.is_empty())
            {
                Some(w) => (Some(w), "environment"),
                None => match &st.context_workspace {
                    Some(w) => (Some(w.clone()), "context file"),
                    None => (None, "none: the only workspace the token sees"),
                },
            };
            if client.json {
                let v = json!({
                    "file": file, "file_exists": exists,
                    "server_url": st.server_url, "server_url_from": st.server_source.describe(),
                    "token": st.token.as_deref().map(context::mask),
                    "token_from": st.token.as_ref().map(|_| st.token_source.describe()),
                    "workspace": ws, "workspace_from": ws_src,
                });
                crate::outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let sty = Style::stdout();
                let from = |s: &str| sty.dim(&format!("({s})"));
                crate::outln!(
                    "context file: {file}{}",
                    if exists { "" } else { " (none yet)" }
                );
                crate::outln!(
                    "server:       {} {}",
                    st.server_url,
                    from(st.server_source.describe())
                );
                match &st.token {
                    Some(t) => crate::outln!(
                        "token:        {} {}",
                        context::mask(t),
                        from(st.token_source.describe())
                    ),
                    None => crate::outln!(
                        "token:        none — run `agentd up`, or `agentd context set --token -`"
                    ),
                }
                match ws {
                    Some(w) => crate::outln!("workspace:    {w} {}", from(ws_src)),
                    None => crate::outln!("workspace:    {}", sty.dim(&format!("({ws_src})"))),
                }
            }
        }
        ContextCmd::Set {
            server_url,
            token,
            workspace,
            no_workspace,
            json,
        } => {
            if server_url.is_none() && token.is_none() && workspace.is_none() && !no_workspace {
                anyhow::bail!(
                    "nothing to set: pass --server-url, --token, --workspace or --no-workspace"
                );
            }
            let mut ctx = context::load()?;
            if let Some(u) = server_url {
                check_server_url(u.trim())?;
                ctx.server_url = Some(u.trim().trim_end_matches('/').to_string());
            }
            if let Some(t) = token {
                let t = if t == "-" {
                    read_stdin_trimmed("the token")?
                } else {
                    t.trim().to_string()
                };
                anyhow::ensure!(!t.is_empty(), "--token: the token is empty");
                ctx.token = Some(t);
            }
            if let Some(w) = workspace {
                ctx.workspace = Some(w.trim().to_string());
            }
            if no_workspace {
                ctx.workspace = None;
            }
            let path = context::save(&ctx)?;
            if json {
                let v = json!({"file": path, "server_url": ctx.server_url,
                               "token": ctx.token.as_deref().map(context::mask),
                               "workspace": ctx.workspace});
                crate::outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                crate::outln!("saved {}", path.display());
            }
        }
        ContextCmd::Clear { json } => {
            let removed = context::clear()?;
            if json {
                crate::outln!("{}", json!({"removed": removed.then(context::path_text)}));
            } else if removed {
                crate::outln!("removed {}", context::path_text());
            } else {
                crate::outln!("no context file ({})", context::path_text());
            }
        }
    }
    Ok(())
}

/// A forge connection for people.
fn forge_text(v: &Value) -> String {
    let mut out = format!(
        "forge:    {} {}\napi:      {}\ntoken:    {}\npolling:  {}\nwebhook:  {} (on the \
         server's public URL)",
        s(v, "kind"),
        s(v, "repo"),
        s(v, "api_url"),
        s(v, "token"),
        if v["poll"] == true {
            "on (open pull requests are read every minute)"
        } else {
            "off (webhooks only)"
        },
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
                read_stdin_trimmed("the token")?
            } else {
                std::fs::read_to_string(&token_file)
                    .with_context(|| format!("cannot read {}", token_file.display()))?
            };
            let ws = c.workspace(workspace).await?;
            let mut body = json!({"kind": kind, "repo": repo, "token": token.trim(),
                                  "poll": !no_poll,
                                  "rotate_webhook_secret": rotate_webhook_secret});
            if let Some(u) = api_url {
                body["api_url"] = json!(u);
            }
            let v = c
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/v1/workspaces/{}/forge", enc(&ws)),
                    Some(body),
                )
                .await
                .about(&[("workspace", &ws)])?;
            c.print(&v, forge_text);
        }
        ForgeCmd::Show { workspace } => {
            let ws = c.workspace(workspace).await?;
            let v = c
                .get(&format!("/api/v1/workspaces/{}/forge", enc(&ws)))
                .await
                .about(&[("workspace", &ws)])?;
            c.print(&v, forge_text);
        }
        ForgeCmd::Remove { workspace } => {
            let ws = c.workspace(workspace).await?;
            let v = c
                .delete(&format!("/api/v1/workspaces/{}/forge", enc(&ws)))
                .await
                .about(&[("workspace", &ws)])?;
            c.print(&v, |_| format!("workspace {ws}: forge removed"));
        }
    }
    Ok(())
}

async fn workspace(c: Client, cmd: WorkspaceCmd) -> anyhow::Result<()> {
    let st = Style::stdout();
    match cmd {
        WorkspaceCmd::Create { name, repos, key } => {
            let mut body = json!({"name": name, "repos": repos});
            if let Some(k) = key {
                body["key"] = json!(k);
            }
            let v = c.post("/api/v1/workspaces", body).await?;
            c.print(&v, |v| {
                let key = s(v, "key");
                if key.is_empty() {
                    return format!(
                        "created workspace {} (id {})\nmake it the default: agentd context set \
                         --workspace {}",
                        s(v, "name"),
                        s(v, "id"),
                        s(v, "id")
                    );
                }
                format!(
                    "created workspace {} (key {}: issues are {key}-1, {key}-2, …)\n\
                     make it the default: agentd context set --workspace {key}",
                    s(v, "name"),
                    st.bold(&key),
                )
            });
        }
        WorkspaceCmd::Settings {
            workspace,
            oidc_default_role,
        } => {
            let ws = c.workspace(workspace).await?;
            let path = format!("/api/v1/workspaces/{}/settings", enc(&ws));
            let v = match oidc_default_role {
                Some(r) => {
                    let role = if r == "none" { json!(null) } else { json!(r) };
                    c.call(
                        reqwest::Method::PUT,
                        &path,
                        Some(json!({"oidc_default_role": role})),
                    )
                    .await
                }
                None => c.get(&path).await,
            }
            .about(&[("workspace", &ws)])?;
            c.print(&v, |v| {
                let role = v["oidc_default_role"].as_str().unwrap_or("none");
                format!("workspace {ws}: OIDC default role {role}")
            });
        }
        WorkspaceCmd::List => {
            let v = c.get("/api/v1/workspaces").await?;
            let default = c.settings.context_workspace.clone().unwrap_or_default();
            c.print(&v, |v| {
                let list = v.as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    return "No workspaces yet — create one: agentd workspace create NAME".into();
                }
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|w| {
                        let is_default = [s(w, "key"), s(w, "name"), s(w, "id")]
                            .iter()
                            .any(|x| !x.is_empty() && *x == default);
                        let repos: Vec<String> = w["repos"]
                            .as_array()
                            .map(|a| a.iter().map(|r| s(r, "url")).collect())
                            .unwrap_or_default();
                        let key = match s(w, "key") {
                            k if k.is_empty() => short(&s(w, "id")),
                            k => k,
                        };
                        vec![
                            format!("{key}{}", if is_default { " *" } else { "" }),
                            s(w, "name"),
                            ago(&s(w, "created_at")),
                            repos.join(", "),
                        ]
                    })
                    .collect();
                table(&["KEY", "NAME", "CREATED", "REPOS"], &rows, st)
            });
        }
    }
    Ok(())
}

async fn token(c: Client, cmd: TokenCmd) -> anyhow::Result<()> {
    let st = Style::stdout();
    match cmd {
        TokenCmd::List => {
            let v = c.get("/api/v1/tokens").await?;
            c.print(&v, |v| {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        let me = if t["current"] == true {
                            " (this token)"
                        } else {
                            ""
                        };
                        let when = |k: &str, none: &str| match s(t, k) {
                            x if x.is_empty() => none.to_string(),
                            x => ago(&x),
                        };
                        let expires = match s(t, "expires_at") {
                            x if x.is_empty() => "never".to_string(),
                            x => x.get(..10).unwrap_or(&x).to_string(),
                        };
                        vec![
                            short(&s(t, "id")),
                            s(t, "kind"),
                            when("created_at", ""),
                            when("last_used_at", "never"),
                            expires,
                            when("revoked_at", "-"),
                            format!("{}{me}", s(t, "name")),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    return "No tokens.".into();
                }
                table(
                    &[
                        "ID",
                        "KIND",
                        "CREATED",
                        "LAST USED",
                        "EXPIRES",
                        "REVOKED",
                        "NAME",
                    ],
                    &rows,
                    st,
                )
            });
        }
        TokenCmd::Create {
            workspace,
            name,
            daemon,
            expires_in,
        } => {
            let workspaces = if workspace.is_empty() {
                vec![c.workspace(None).await?]
            } else {
                workspace
            };
            let mut body = json!({
                "name": name,
                "kind": if daemon { "daemon" } else { "member" },
                "workspace_ids": workspaces,
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
                    short(&s(v, "id"))
                )
            });
        }
        TokenCmd::Revoke { id } => {
            let v = c
                .delete(&format!("/api/v1/tokens/{}", enc(&id)))
                .await
                .about(&[("token", &id)])?;
            c.print(&v, |v| {
                format!("revoked token {} ({})", short(&s(v, "id")), s(v, "name"))
            });
        }
    }
    Ok(())
}

/// The password of `user create|update`: standard input with `--password-stdin`, else
/// AGENTD_PASSWORD (`None` if neither and `required` is false).
fn read_password(stdin: bool, required: bool) -> anyhow::Result<Option<String>> {
    if stdin {
        return Ok(Some(read_stdin_trimmed("the password")?));
    }
    match std::env::var("AGENTD_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(Some(p)),
        _ if required => {
            anyhow::bail!("no password: pipe it in with --password-stdin, or set AGENTD_PASSWORD")
        }
        _ => Ok(None),
    }
}

async fn user(c: Client, cmd: UserCmd) -> anyhow::Result<()> {
    let st = Style::stdout();
    let line = |u: &Value| {
        format!(
            "{} {}{}{}",
            short(&s(u, "id")),
            s(u, "email"),
            if u["is_admin"] == true {
                " (admin)"
            } else {
                ""
            },
            if u["disabled"] == true {
                " (disabled)"
            } else {
                ""
            },
        )
    };
    match cmd {
        UserCmd::Create {
            email,
            name,
            admin,
            password_stdin,
        } => {
            let password = read_password(password_stdin, true)?.unwrap_or_default();
            let v = c
                .post(
                    "/api/v1/users",
                    json!({"email": email, "name": name, "password": password, "is_admin": admin}),
                )
                .await?;
            c.print(&v, |v| format!("created user {}", line(v)));
        }
        UserCmd::List => {
            let v = c.get("/api/v1/users").await?;
            c.print(&v, |v| {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|u| {
                        vec![
                            short(&s(u, "id")),
                            s(u, "email"),
                            s(u, "name"),
                            if u["is_admin"] == true {
                                "admin"
                            } else {
                                "user"
                            }
                            .into(),
                            if u["has_password"] == true {
                                "yes"
                            } else {
                                "no"
                            }
                            .into(),
                            if u["disabled"] == true { "yes" } else { "" }.into(),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    return "No users.".into();
                }
                table(
                    &["ID", "EMAIL", "NAME", "KIND", "PASSWORD", "DISABLED"],
                    &rows,
                    st,
                )
            });
        }
        UserCmd::Update {
            user,
            email,
            name,
            password_stdin,
        } => {
            let users = c.get("/api/v1/users").await?;
            let wanted = user.trim().to_lowercase();
            let found = users
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .find(|u| s(u, "id") == user || s(u, "email") == wanted)
                .with_context(|| format!("no user {user:?} (see `agentd user list`)"))?;
            let mut body = json!({});
            if let Some(e) = email {
                body["email"] = json!(e);
            }
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(p) = read_password(password_stdin, false)? {
                body["password"] = json!(p);
            }
            let v = c
                .patch(&format!("/api/v1/users/{}", enc(&s(&found, "id"))), body)
                .await?;
            c.print(&v, |v| format!("updated user {}", line(v)));
        }
    }
    Ok(())
}

async fn audit(c: Client, cmd: AuditCmd) -> anyhow::Result<()> {
    let st = Style::stdout();
    let AuditCmd::List {
        workspace,
        action,
        limit,
    } = cmd;
    let mut path = format!("/api/v1/audit?limit={limit}");
    if let Some(w) = workspace {
        let ws = c.get(&format!("/api/v1/workspaces/{}", enc(&w))).await?;
        path.push_str(&format!("&workspace_id={}", enc(&s(&ws, "id"))));
    }
    if let Some(a) = action {
        path.push_str(&format!("&action={}", enc(&a)));
    }
    let v = c.get(&path).await?;
    c.print(&v["entries"], |v| {
        let rows: Vec<Vec<String>> = v
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let at = e["at"].as_i64().unwrap_or_default();
                let when = jiff::Timestamp::from_millisecond(at)
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                vec![
                    when.get(..19).unwrap_or(&when).replace('T', " "),
                    s(e, "action"),
                    match s(e, "actor_name") {
                        n if n.is_empty() => s(e, "actor_kind"),
                        n => n,
                    },
                    s(e, "target"),
                    s(e, "source_ip"),
                ]
            })
            .collect();
        if rows.is_empty() {
            return "No audit entries.".into();
        }
        table(
            &["TIME (UTC)", "ACTION", "ACTOR", "TARGET", "IP"],
            &rows,
            st,
        )
    });
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

/// The hint printed when no runtime of the workspace is online.
pub const START_DAEMON_HINT: &str = "no runtime of the workspace is online: start the daemon where your agent CLIs are \
     (`agentd up` on this machine, or `agentd daemon --server-url URL --token DAEMON_TOKEN`)";

/// The workspace's runtimes (`[]` when they cannot be read).
async fn runtimes_of(c: &Client, ws: &str) -> Vec<Value> {
    c.get(&format!("/api/v1/workspaces/{}/runtimes", enc(ws)))
        .await
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

async fn runtime(c: Client, cmd: RuntimeCmd) -> anyhow::Result<()> {
    let st = Style::stdout();
    match cmd {
        RuntimeCmd::List { workspace } => {
            let ws = c.workspace(workspace).await?;
            let v = c
                .get(&format!("/api/v1/workspaces/{}/runtimes", enc(&ws)))
                .await
                .about(&[("workspace", &ws)])?;
            c.print(&v, |v| {
                let list = v.as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    return format!(
                        "No runtimes yet — they appear when a daemon runs with an agent CLI \
                         installed: `agentd up` on this machine, or `agentd daemon`.\n{}",
                        st.dim("(claude, codex, opencode and gemini are detected on PATH)")
                    );
                }
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|r| {
                        vec![
                            short(&s(r, "id")),
                            s(r, "provider"),
                            st.status(&s(r, "status")),
                            render::or(r, "sandbox", "-"),
                            ago(&s(r, "last_seen_at")),
                            s(r, "name"),
                        ]
                    })
                    .collect();
                let mut out = table(
                    &["ID", "PROVIDER", "STATUS", "SANDBOX", "SEEN", "NAME"],
                    &rows,
                    st,
                );
                if !list.iter().any(|r| r["status"] == "online") {
                    out.push_str(&format!("\n\n{} {START_DAEMON_HINT}", st.dim("hint:")));
                }
                out
            });
        }
        RuntimeCmd::Delete { id } => {
            let v = c
                .delete(&format!("/api/v1/runtimes/{}", enc(&id)))
                .await
                .about(&[("runtime", &id)])?;
            c.print(&v, |_| {
                format!("deleted runtime {id} (its daemon registers it again under a new id)")
            });
        }
    }
    Ok(())
}

/// A runtime that was not found: the hint names the workspace's runtimes.
async fn with_runtime_names(c: &Client, ws: &str, r: &str, e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<crate::error::CliError>() {
        Ok(mut err)
            if err.kind == crate::error::Kind::NotFound && err.message.contains("runtime") =>
        {
            let names: Vec<String> = runtimes_of(c, ws)
                .await
                .iter()
                .map(|rt| {
                    format!(
                        "{:?} ({}, {})",
                        s(rt, "name"),
                        s(rt, "provider"),
                        s(rt, "status")
                    )
                })
                .collect();
            err.hint = Some(if names.is_empty() {
                format!("the workspace has no runtimes yet ({r:?} names none): {START_DAEMON_HINT}")
            } else {
                format!("the workspace's runtimes: {}", names.join(", "))
            });
            err.into()
        }
        Ok(err) => err.into(),
        Err(e) => e,
    }
}

/// `runtime id → name` of the workspace.
fn runtime_names(runtimes: &[Value]) -> std::collections::HashMap<String, String> {
    runtimes
        .iter()
        .map(|r| (s(r, "id"), s(r, "name")))
        .collect()
}

async fn agent(c: Client, cmd: AgentCmd) -> anyhow::Result<()> {
    let st = Style::stdout();
    match cmd {
        AgentCmd::Create {
            name,
            workspace,
            runtime,
            pool,
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
            let ws = c.workspace(workspace).await?;
            let mut body = json!({"name": name, "runtime_id": runtime.clone().unwrap_or_default(),
                                  "instructions": instructions,
                                  "model": model, "custom_args": args, "custom_env": env_map});
            pool.apply(&mut body);
            let runtime = runtime
                .or_else(|| pool.pool_runtime.first().cloned())
                .unwrap_or_default();
            let res = c
                .post(&format!("/api/v1/workspaces/{}/agents", enc(&ws)), body)
                .await
                .about(&[("runtime", &runtime), ("workspace", &ws)]);
            let v = match res {
                Ok(v) => v,
                Err(e) => return Err(with_runtime_names(&c, &ws, &runtime, e).await),
            };
            let runtimes = if c.json {
                Vec::new()
            } else {
                runtimes_of(&c, &ws).await
            };
            c.print(&v, |v| {
                let names = runtime_names(&runtimes);
                let on = if v.get("pool").is_some_and(Value::is_object) {
                    agent_runtime(v, &names)
                } else {
                    let rt = names
                        .get(&s(v, "runtime_id"))
                        .cloned()
                        .unwrap_or_else(|| runtime.clone());
                    format!("runtime {rt}")
                };
                format!(
                    "created agent {} on {on}\nassign it an issue: agentd issue create \
                     TITLE --assign {}",
                    st.bold(&s(v, "name")),
                    s(v, "name")
                )
            });
        }
        AgentCmd::List { workspace } => {
            let ws = c.workspace(workspace).await?;
            let v = c
                .get(&format!("/api/v1/workspaces/{}/agents", enc(&ws)))
                .await
                .about(&[("workspace", &ws)])?;
            let runtimes = if c.json {
                Vec::new()
            } else {
                runtimes_of(&c, &ws).await
            };
            c.print(&v, |v| {
                let list = v.as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    return "No agents yet — create one: agentd agent create NAME --runtime RUNTIME\n\
                            (see the runtimes: agentd runtime list)"
                        .into();
                }
                let names = runtime_names(&runtimes);
                let status: std::collections::HashMap<String, String> = runtimes
                    .iter()
                    .map(|r| (s(r, "id"), s(r, "status")))
                    .collect();
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|a| {
                        let rid = s(a, "runtime_id");
                        let online = a["pool_runtimes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|r| {
                                status.get(r.as_str().unwrap_or_default()).map(String::as_str)
                                    == Some("online")
                            })
                            .count();
                        let state = if a.get("pool").is_some_and(Value::is_object) {
                            if online > 0 { "online" } else { "offline" }
                        } else {
                            status.get(&rid).map(String::as_str).unwrap_or("gone")
                        };
                        vec![
                            s(a, "name"),
                            agent_runtime(a, &names),
                            st.status(state),
                            render::or(a, "model", "-"),
                            ago(&s(a, "created_at")),
                        ]
                    })
                    .collect();
                table(&["NAME", "RUNTIME", "RUNTIME STATUS", "MODEL", "CREATED"], &rows, st)
            });
        }
        AgentCmd::Update {
            id,
            runtime,
            name,
            instructions,
            model,
            pool,
            no_pool,
        } => {
            let mut body = json!({});
            pool.apply(&mut body);
            if no_pool {
                body["pool"] = json!({});
            }
            let mut refs: Vec<(&str, String)> = vec![("agent", id.clone())];
            if let Some(r) = &runtime {
                refs.push(("runtime", r.clone()));
            }
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
            let refs: Vec<(&str, &str)> = refs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let v = c
                .patch(&format!("/api/v1/agents/{}", enc(&id)), body)
                .await
                .about(&refs)?;
            c.print(&v, |v| {
                let model = match s(v, "model") {
                    m if m.is_empty() => "the CLI's default model".to_string(),
                    m => format!("model {m}"),
                };
                format!("updated agent {} ({model})", st.bold(&s(v, "name")))
            });
        }
    }
    Ok(())
}
