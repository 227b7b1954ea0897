//! The provider table: everything agentd knows about each agent CLI it supports, one row
//! per CLI. Detection, the version probe, the backend, the sandbox's state dirs, the
//! environment allow-list and the egress allow-list all read this table, so adding a CLI
//! means one [`ProviderInfo`] row plus its backend module and fixtures.
//!
//! Order matters where it shows: detection lists providers in table order.

use std::path::{Path, PathBuf};

use super::{
    Backend, Claude, Codex, ContinueCli, Copilot, Droid, Gemini, Hermes, Kilo, MiniSwe, OpenCode,
    Pi, Qwen,
};

/// A `major.minor.patch` version.
pub type Semver = (u64, u64, u64);

/// A directory a CLI writes its state to (sessions, logins, caches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateDir {
    /// An environment variable that moves the directory (e.g. `CODEX_HOME`); its value,
    /// when the agent's environment sets it, replaces [`StateDir::home_relative`].
    pub env_override: Option<&'static str>,
    /// The directory relative to HOME.
    pub home_relative: &'static str,
}

impl StateDir {
    const fn home(rel: &'static str) -> StateDir {
        StateDir {
            env_override: None,
            home_relative: rel,
        }
    }

    const fn env_or_home(var: &'static str, rel: &'static str) -> StateDir {
        StateDir {
            env_override: Some(var),
            home_relative: rel,
        }
    }
}

/// One agent CLI agentd supports.
#[derive(Debug, Clone, Copy)]
pub struct ProviderInfo {
    /// The provider name, as in `RuntimeSpec::provider`, `UsageEntry::provider` and
    /// `[agents.<name>]` in the daemon's config file.
    pub name: &'static str,
    /// What people call it (docs, `agentd daemon detect`).
    pub display_name: &'static str,
    /// The executable looked up on PATH.
    pub binary: &'static str,
    /// Arguments of the version probe (`<binary> <args>` prints the version).
    pub version_args: &'static [&'static str],
    /// The oldest version agentd runs (`None`: any).
    pub min_version: Option<Semver>,
    /// The backend: argv of a run and the stdout parser.
    pub backend: fn() -> Box<dyn Backend>,
    /// Where the CLI keeps state under HOME; writable inside the sandbox.
    pub state_dirs: &'static [StateDir],
    /// The CLI's documented environment variables, passed from the daemon's environment
    /// to the agent: a pattern ending in `_` is a prefix, anything else an exact key.
    pub env_keys: &'static [&'static str],
    /// Hosts the CLI talks to by default (model API, model catalogue), allowed by the
    /// egress proxy in allow-list network mode.
    pub api_hosts: &'static [&'static str],
    /// The backend resumes a prior session (`task.prior_session_id`).
    pub resume: bool,
}

/// Every provider agentd knows, in detection order.
pub const PROVIDERS: &[ProviderInfo] = &[
    ProviderInfo {
        name: "claude",
        display_name: "Claude Code",
        binary: "claude",
        version_args: &["--version"],
        min_version: Some((2, 0, 0)),
        backend: || Box::new(Claude),
        state_dirs: &[StateDir::env_or_home("CLAUDE_CONFIG_DIR", ".claude")],
        env_keys: &[
            "ANTHROPIC_",
            "CLAUDE_CODE_",
            "CLAUDE_CONFIG_DIR",
            "DISABLE_AUTOUPDATER",
            "DISABLE_TELEMETRY",
            "DISABLE_ERROR_REPORTING",
            "DISABLE_NON_ESSENTIAL_MODEL_CALLS",
            "MAX_THINKING_TOKENS",
            "IS_SANDBOX",
        ],
        api_hosts: &["api.anthropic.com"],
        resume: true,
    },
    ProviderInfo {
        name: "codex",
        display_name: "Codex CLI",
        binary: "codex",
        version_args: &["--version"],
        min_version: Some((0, 100, 0)),
        backend: || Box::new(Codex),
        state_dirs: &[StateDir::env_or_home("CODEX_HOME", ".codex")],
        env_keys: &["OPENAI_", "CODEX_"],
        api_hosts: &["api.openai.com", "chatgpt.com"],
        resume: true,
    },
    ProviderInfo {
        name: "opencode",
        display_name: "OpenCode",
        binary: "opencode",
        version_args: &["--version"],
        min_version: Some((1, 0, 0)),
        backend: || Box::new(OpenCode),
        state_dirs: &[
            StateDir::home(".config/opencode"),
            StateDir::home(".local/share/opencode"),
            StateDir::home(".cache/opencode"),
            StateDir::home(".local/state/opencode"),
        ],
        env_keys: &["OPENCODE_", "OPENAI_", "ANTHROPIC_", "npm_config_"],
        api_hosts: &["models.dev"],
        resume: true,
    },
    ProviderInfo {
        name: "gemini",
        display_name: "Gemini CLI",
        binary: "gemini",
        version_args: &["--version"],
        min_version: Some((0, 20, 0)),
        backend: || Box::new(Gemini),
        state_dirs: &[StateDir::home(".gemini")],
        env_keys: &["GEMINI_", "GOOGLE_"],
        api_hosts: &["generativelanguage.googleapis.com"],
        resume: true,
    },
    ProviderInfo {
        name: "qwen",
        display_name: "Qwen Code",
        binary: "qwen",
        version_args: &["--version"],
        min_version: Some((0, 20, 0)),
        backend: || Box::new(Qwen),
        state_dirs: &[StateDir::home(".qwen")],
        env_keys: &["QWEN_", "OPENAI_", "DASHSCOPE_"],
        api_hosts: &[
            "dashscope.aliyuncs.com",
            "coding.dashscope.aliyuncs.com",
            "coding-intl.dashscope.aliyuncs.com",
        ],
        resume: true,
    },
    ProviderInfo {
        name: "pi",
        display_name: "Pi",
        binary: "pi",
        version_args: &["--version"],
        min_version: Some((0, 70, 0)),
        backend: || Box::new(Pi),
        state_dirs: &[StateDir::env_or_home("PI_CODING_AGENT_DIR", ".pi/agent")],
        env_keys: &["PI_", "ANTHROPIC_", "OPENAI_", "GEMINI_"],
        api_hosts: &[
            "api.anthropic.com",
            "api.openai.com",
            "generativelanguage.googleapis.com",
        ],
        resume: true,
    },
    ProviderInfo {
        name: "kilo",
        display_name: "Kilo Code CLI",
        binary: "kilo",
        version_args: &["--version"],
        min_version: Some((7, 0, 0)),
        backend: || Box::new(Kilo),
        state_dirs: &[
            StateDir::home(".config/kilo"),
            StateDir::home(".local/share/kilo"),
            StateDir::home(".cache/kilo"),
            StateDir::home(".local/state/kilo"),
            StateDir::home(".local/state/kilo-sandbox-policy"),
        ],
        env_keys: &["KILO_", "OPENAI_", "ANTHROPIC_", "npm_config_"],
        api_hosts: &["api.kilo.ai", "models.dev"],
        resume: true,
    },
    ProviderInfo {
        name: "continue",
        display_name: "Continue CLI",
        binary: "cn",
        version_args: &["--version"],
        min_version: Some((1, 5, 0)),
        backend: || Box::new(ContinueCli),
        state_dirs: &[StateDir::env_or_home("CONTINUE_GLOBAL_DIR", ".continue")],
        env_keys: &["CONTINUE_", "OPENAI_", "ANTHROPIC_"],
        api_hosts: &["api.continue.dev"],
        resume: false,
    },
    ProviderInfo {
        name: "hermes",
        display_name: "Hermes Agent",
        binary: "hermes",
        version_args: &["--version"],
        min_version: Some((0, 19, 0)),
        backend: || Box::new(Hermes),
        state_dirs: &[StateDir::env_or_home("HERMES_HOME", ".hermes")],
        env_keys: &["HERMES_", "OPENAI_", "OPENROUTER_", "NOUS_"],
        api_hosts: &["openrouter.ai", "inference-api.nousresearch.com"],
        resume: true,
    },
    ProviderInfo {
        name: "mini",
        display_name: "mini-swe-agent",
        binary: "mini",
        version_args: &["--help"],
        min_version: Some((2, 0, 0)),
        backend: || Box::new(MiniSwe),
        state_dirs: &[StateDir::env_or_home(
            "MSWEA_GLOBAL_CONFIG_DIR",
            ".config/mini-swe-agent",
        )],
        env_keys: &[
            "MSWEA_",
            "LITELLM_",
            "OPENAI_",
            "ANTHROPIC_",
            "GEMINI_",
            "OPENROUTER_",
        ],
        api_hosts: &["api.openai.com", "api.anthropic.com", "openrouter.ai"],
        resume: false,
    },
    ProviderInfo {
        name: "copilot",
        display_name: "GitHub Copilot CLI",
        binary: "copilot",
        version_args: &["--version"],
        min_version: Some((1, 0, 0)),
        backend: || Box::new(Copilot),
        // `~/.cache/copilot`: the CLI unpacks its own bundle there on first run.
        state_dirs: &[
            StateDir::env_or_home("COPILOT_HOME", ".copilot"),
            StateDir::home(".cache/copilot"),
        ],
        env_keys: &["COPILOT_", "GH_TOKEN", "GITHUB_TOKEN"],
        api_hosts: &["api.githubcopilot.com", "api.github.com", "github.com"],
        resume: true,
    },
    ProviderInfo {
        name: "droid",
        display_name: "Factory Droid",
        binary: "droid",
        version_args: &["--version"],
        min_version: Some((0, 200, 0)),
        backend: || Box::new(Droid),
        state_dirs: &[StateDir::home(".factory")],
        env_keys: &["FACTORY_", "DROID_"],
        api_hosts: &["api.factory.ai", "app.factory.ai"],
        // `droid exec -s` fetches the session from Factory's cloud, even for BYOK models.
        resume: false,
    },
];

/// The row of a provider name, if agentd knows it.
pub fn provider(name: &str) -> Option<&'static ProviderInfo> {
    PROVIDERS.iter().find(|p| p.name == name)
}

/// The provider names, in table order.
pub fn names() -> impl Iterator<Item = &'static str> {
    PROVIDERS.iter().map(|p| p.name)
}

impl ProviderInfo {
    /// The state directories for one run: each [`StateDir`] under `home`, or where the
    /// run's environment `env` moves it (the last value of a key wins).
    pub fn state_dirs_in(&self, home: &Path, env: &[(String, String)]) -> Vec<PathBuf> {
        self.state_dirs
            .iter()
            .map(|d| {
                d.env_override
                    .and_then(|k| env.iter().rev().find(|(ek, _)| ek == k))
                    .map(|(_, v)| PathBuf::from(v))
                    .unwrap_or_else(|| home.join(d.home_relative))
            })
            .collect()
    }

    /// `min_version` as `x.y.z`.
    pub fn min_version_string(&self) -> Option<String> {
        self.min_version.map(|(a, b, c)| format!("{a}.{b}.{c}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_consistent() {
        let mut seen = std::collections::BTreeSet::new();
        for p in PROVIDERS {
            assert!(seen.insert(p.name), "{} listed twice", p.name);
            let b = (p.backend)();
            assert_eq!(b.provider(), p.name, "backend of row {}", p.name);
            assert!(
                !p.version_args.is_empty(),
                "{} has no version probe",
                p.name
            );
            assert!(!p.state_dirs.is_empty(), "{} has no state dir", p.name);
        }
        assert!(provider("claude").is_some());
        assert!(provider("cursor").is_none());
    }

    #[test]
    fn state_dirs_follow_env_overrides() {
        let home = Path::new("/home/u");
        let codex = provider("codex").unwrap();
        assert_eq!(codex.state_dirs_in(home, &[]), [home.join(".codex")]);
        let env = [
            ("CODEX_HOME".to_string(), "/a".to_string()),
            ("CODEX_HOME".to_string(), "/b".to_string()),
        ];
        assert_eq!(codex.state_dirs_in(home, &env), [PathBuf::from("/b")]);
        assert_eq!(
            provider("opencode").unwrap().state_dirs_in(home, &[]).len(),
            4
        );
    }
}
