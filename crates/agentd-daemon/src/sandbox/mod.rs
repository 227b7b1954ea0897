//! Where agents run: what an agent process can see, reach and keep running.
//!
//! Every agent run gets an environment built from an allow-list ([`env`]), never the
//! daemon's own. With `sandbox = "bwrap"` (the default on Linux) the run is wrapped in
//! bubblewrap ([`bwrap`]): a read-only system, the task's work dir and the provider's
//! state dir writable, a private `/tmp`, the daemon's data and config dirs (and under
//! `agentd up` the server's) hidden, a fresh PID namespace that dies with the task, and,
//! in allow-list network mode, no route out but the daemon's egress proxy ([`egress`],
//! reached through [`relay`]). [`probe`] decides at start whether bwrap works here;
//! [`limits`] applies memory and process caps.
//!
//! **Architecture Invariant:** when the sandbox is configured but cannot start, the
//! daemon claims no task (it says why in `/health` and in each runtime's registration);
//! only an explicit `sandbox = "off"` runs agents unsandboxed.

pub mod bwrap;
pub mod egress;
pub mod env;
pub mod limits;
pub mod probe;
pub mod relay;

use std::path::PathBuf;

use agentd_proto::SandboxState;

/// `sandbox = "bwrap" | "off"` in the daemon config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Wrap every agent run in bubblewrap; refuse tasks when it cannot start.
    #[default]
    Bwrap,
    /// Run agents as plain child processes (the operator's explicit choice).
    Off,
}

/// How an agent run may use the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// The host's network, as the daemon has it.
    #[default]
    Open,
    /// No route out: only the daemon's egress proxy, which allows the provider's model
    /// API, the workspace's git hosts, the agentd server and the configured extras.
    AllowList,
}

/// Memory and process caps for one agent run (`None` = no cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub max_processes: Option<u64>,
}

/// The sandbox settings of a daemon (plain data, built by the binary).
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    pub mode: SandboxMode,
    /// The network mode of providers without their own setting.
    pub network: NetworkMode,
    /// Per-provider network modes (`[agents.claude] network = "allowlist"`).
    pub network_by_provider: Vec<(String, NetworkMode)>,
    /// Extra hosts the egress proxy allows (`example.com`, `*.example.com`, `host:port`).
    pub allow_hosts: Vec<String>,
    /// Paths the agent must not see beyond the defaults (the config file's directory,
    /// under `agentd up` the server's data dir).
    pub hidden: Vec<PathBuf>,
    /// Extra paths made visible read-only (e.g. a toolchain under the hidden HOME).
    pub read_only: Vec<PathBuf>,
    /// Extra paths made writable (e.g. a shared build cache the operator chose).
    pub writable: Vec<PathBuf>,
    pub limits: Limits,
    /// `custom_env` keys the operator allows although they redirect the agent
    /// (base URLs, proxies, `GIT_*`, `XDG_*`, …).
    pub custom_env_allow: Vec<String>,
    /// Keys of the daemon's own environment passed to every agent beyond the
    /// allow-list (e.g. the variable a custom model provider reads its key from).
    pub pass_env: Vec<String>,
    /// The bwrap binary (a fixed path, never one found in a work dir).
    pub bwrap: PathBuf,
}

impl SandboxConfig {
    pub fn network_for(&self, provider: &str) -> NetworkMode {
        self.network_by_provider
            .iter()
            .find(|(p, _)| p == provider)
            .map(|(_, m)| *m)
            .unwrap_or(self.network)
    }
}

/// What the daemon found at start: whether its runs are sandboxed, and if not why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxStatus {
    pub state: SandboxState,
    /// Why the sandbox is unavailable (with a remedy), or the bwrap version.
    pub detail: String,
}

impl SandboxStatus {
    /// Whether tasks may be claimed: sandboxed, or explicitly unsandboxed.
    pub fn may_run(&self) -> bool {
        matches!(self.state, SandboxState::Bwrap | SandboxState::Off)
    }
}

/// Decides the daemon's sandbox status for `cfg` (probing bwrap when it is wanted).
pub fn status(cfg: &SandboxConfig) -> SandboxStatus {
    match cfg.mode {
        SandboxMode::Off => SandboxStatus {
            state: SandboxState::Off,
            detail: "sandbox = \"off\" in the daemon config: agents run unsandboxed".into(),
        },
        SandboxMode::Bwrap => match probe::probe(&cfg.bwrap) {
            Ok(version) => SandboxStatus {
                state: SandboxState::Bwrap,
                detail: version,
            },
            Err(cause) => SandboxStatus {
                state: SandboxState::Unavailable,
                detail: format!(
                    "sandbox unavailable: {cause}; refusing tasks (set sandbox = \"off\" in the daemon config to run agents unsandboxed)"
                ),
            },
        },
    }
}
