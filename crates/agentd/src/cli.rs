//! The command-line tree. `daemon` is defined here; the user-facing commands live in
//! `commands` and are flattened in.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "agentd",
    version,
    about = "Hand work to AI coding agents the way you hand it to a colleague.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `agentd_daemon=debug`. RUST_LOG wins.
    #[arg(long, global = true, env = "AGENTD_LOG", default_value = "info")]
    pub log: String,
    /// On errors, also print the request that failed (method, path, status).
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = concat!(
    "Examples:\n",
    "  agentd up                                   # server, daemon and board for you alone\n",
    "  agentd agent create my-agent --runtime 'Claude (laptop)'\n",
    "  agentd issue create \"Fix the flaky test\" --assign my-agent\n",
    "  agentd issue show AGD-1\n",
    "  agentd task logs 1a2b --follow\n",
    "\n",
    "The server URL, token and workspace come from flags, then AGENTD_SERVER_URL,\n",
    "AGENTD_TOKEN and AGENTD_WORKSPACE, then the context file `agentd up` writes\n",
    "(~/.config/agentd/cli.toml; see `agentd context show`). Colour only on a terminal;\n",
    "NO_COLOR turns it off, CLICOLOR_FORCE on. More: docs/cli.md.\n",
    "\n",
    "Exit codes:\n",
    "  0  ok\n",
    "  1  any other error\n",
    "  2  usage (a wrong flag or argument)\n",
    "  3  not found\n",
    "  4  ambiguous reference (the matches are listed)\n",
    "  5  refused for the object's state (already retried, already ended, ...)\n",
    "  6  authentication or permission (401/403, no token)\n",
    "  7  server unreachable or failing (5xx)\n",
    "  8  the followed task failed (task logs --follow)\n",
    "  9  the followed task was cancelled (task logs --follow)\n",
    "  141 stdout was closed by its reader (e.g. piped into head): stopped quietly"
);

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: register this machine's agent CLIs with a server and run tasks.
    #[command(
        after_help = "Examples:\n  agentd daemon --server-url https://agentd.example.com --token \"$DAEMON_TOKEN\"\n  agentd daemon --config ~/.config/agentd/daemon.toml --max-concurrent-tasks 4\n  agentd daemon detect          # which agent CLIs this machine has",
        args_conflicts_with_subcommands = true
    )]
    Daemon(DaemonArgs),
    /// (internal) The daemon's launcher for one sandboxed agent run: puts itself under
    /// the run's memory and process limits, then executes the rest of its arguments.
    #[command(hide = true)]
    SandboxExec(SandboxExecArgs),
    /// (internal) Runs inside an allow-list sandbox: relays 127.0.0.1:3128 to the
    /// daemon's egress proxy socket while it runs the agent CLI.
    #[command(hide = true)]
    SandboxRelay(SandboxRelayArgs),
    #[command(flatten)]
    Other(crate::commands::Command),
}

#[derive(Args, Debug, Clone)]
pub struct SandboxExecArgs {
    /// The run's name (its cgroups are `agentd-<run>`).
    #[arg(long)]
    pub run: String,
    /// Memory cap in bytes.
    #[arg(long)]
    pub memory: Option<u64>,
    /// Process cap.
    #[arg(long)]
    pub pids: Option<u64>,
    /// The program to execute and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug, Clone)]
pub struct SandboxRelayArgs {
    /// Where to listen inside the sandbox.
    #[arg(long, default_value = "127.0.0.1:3128")]
    pub listen: std::net::SocketAddr,
    /// The egress proxy's socket as bound into the sandbox.
    #[arg(long)]
    pub socket: PathBuf,
    /// The agent CLI and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

/// What `agentd daemon` does instead of running, when given a subcommand.
#[derive(Subcommand, Debug, Clone)]
pub enum DaemonAction {
    /// List every agent CLI agentd knows: found on this machine or not, its path and
    /// version, and why it would not be offered as a runtime.
    #[command(
        after_help = "Examples:\n  agentd daemon detect\n  agentd daemon detect --json\n  agentd daemon detect --config ~/.config/agentd/daemon.toml\n\nLooks where `agentd daemon` looks: PATH, the paths pinned under [agents.<provider>] and\nthe [agents.custom.NAME] profiles of the config file. Runs each CLI's version command.\nExit status 0 even when nothing is usable: see the STATE column (`usable` in JSON)."
    )]
    Detect(DetectArgs),
}

#[derive(Args, Debug, Clone)]
pub struct DetectArgs {
    /// Print a JSON array, one object per provider.
    #[arg(long)]
    pub json: bool,
    /// Config file (TOML). Default: `<config dir>/agentd/daemon.toml`, if it exists.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Flags of `agentd daemon`. Precedence: flag > environment > config file > default.
#[derive(Args, Debug, Default, Clone)]
pub struct DaemonArgs {
    #[command(subcommand)]
    pub action: Option<DaemonAction>,
    /// Config file (TOML). Default: `<config dir>/agentd/daemon.toml`, if it exists.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Control-plane server URL (http, https, ws or wss).
    #[arg(long, env = "AGENTD_SERVER_URL")]
    pub server_url: Option<String>,
    /// API token of the server.
    #[arg(long, env = "AGENTD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Heartbeat interval, e.g. `15s`.
    #[arg(long)]
    pub heartbeat_interval: Option<String>,
    /// Poll interval when no WebSocket wake-up arrives, e.g. `30s`.
    #[arg(long)]
    pub poll_interval: Option<String>,
    /// Port of the local health endpoint on 127.0.0.1 (0 picks a free one).
    #[arg(long)]
    pub health_port: Option<u16>,
    /// Tasks run at once at most.
    #[arg(long)]
    pub max_concurrent_tasks: Option<usize>,
    /// Name of this machine as the server shows it.
    #[arg(long)]
    pub device_name: Option<String>,
    /// Where the daemon keeps its identity and task directories.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A task run is stopped after this long, e.g. `2h`.
    #[arg(long)]
    pub agent_timeout: Option<String>,
    /// A run whose agent prints nothing for this long is stopped, e.g. `10m`.
    #[arg(long)]
    pub inactivity_timeout: Option<String>,
    /// Timeout of one HTTP request to the server, e.g. `30s`.
    #[arg(long)]
    pub http_timeout: Option<String>,
    /// Run agents in a bubblewrap sandbox (`bwrap`, the default) or not (`off`).
    #[arg(long, env = "AGENTD_SANDBOX", value_parser = clap::builder::PossibleValuesParser::new(["bwrap", "off"]))]
    pub sandbox: Option<String>,
    /// Agents' network: `open` (default) or `allowlist` (only the egress proxy).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new([
        clap::builder::PossibleValue::new("open"),
        clap::builder::PossibleValue::new("allowlist").alias("allow-list"),
    ]))]
    pub network: Option<String>,
    /// Clone `file://` URLs and local paths (single-user setups).
    #[arg(long)]
    pub allow_local_repos: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every visible command has an about and an example, and every argument a help line.
    #[test]
    fn every_command_and_argument_is_documented() {
        fn walk(cmd: &clap::Command, path: &str, problems: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name()).trim().to_string();
            if cmd.get_about().is_none() {
                problems.push(format!("`{path}` has no about"));
            }
            let examples = cmd
                .get_after_help()
                .is_some_and(|h| h.to_string().contains("Examples:"));
            if !examples {
                problems.push(format!("`{path}` has no \"Examples:\" in its after_help"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() {
                    problems.push(format!("`{path}`: argument `{id}` has no help"));
                }
            }
            for sub in cmd.get_subcommands() {
                if !sub.is_hide_set() && sub.get_name() != "help" {
                    walk(sub, &path, problems);
                }
            }
        }
        Cli::command().debug_assert();
        let mut problems = Vec::new();
        walk(&Cli::command(), "", &mut problems);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_help_lists_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        for code in [
            "3  not found",
            "4  ambiguous",
            "5  refused",
            "8  the followed task failed",
        ] {
            assert!(help.contains(code), "{code} missing from:\n{help}");
        }
    }
}
