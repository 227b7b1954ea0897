//! Reading the daemon's configuration: TOML file < environment < flags, into
//! [`agentd_daemon::DaemonConfig`]. Errors name the file, the key and what was wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::cli::DaemonArgs;

pub const DEFAULT_HEALTH_PORT: u16 = 19514;

/// The daemon's TOML config file. Unknown keys are an error (a typo must not be ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server_url: Option<String>,
    pub token: Option<String>,
    pub heartbeat_interval: Option<String>,
    pub poll_interval: Option<String>,
    pub health_port: Option<u16>,
    pub max_concurrent_tasks: Option<usize>,
    pub device_name: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub shutdown_grace: Option<String>,
    pub agent_timeout: Option<String>,
    pub inactivity_timeout: Option<String>,
    pub http_timeout: Option<String>,
    pub kill_grace: Option<String>,
    pub gc_interval: Option<String>,
    pub gc_ttl: Option<String>,
    pub gc_orphan_ttl: Option<String>,
    /// `"bwrap"` (default) or `"off"`.
    pub sandbox: Option<String>,
    /// `"open"` (default) or `"allowlist"`: the network of agents without their own.
    pub network: Option<String>,
    /// Extra hosts the egress proxy allows in allow-list mode.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Extra paths hidden from agents.
    #[serde(default)]
    pub hide_paths: Vec<PathBuf>,
    /// Extra paths agents may read even under a hidden tree (e.g. `~/.rustup`).
    #[serde(default)]
    pub read_only_paths: Vec<PathBuf>,
    /// Extra paths agents may write.
    #[serde(default)]
    pub writable_paths: Vec<PathBuf>,
    /// Memory cap of one agent run, e.g. `"4G"`.
    pub memory_limit: Option<String>,
    /// Process cap of one agent run.
    pub process_limit: Option<u64>,
    /// Keys of the daemon's environment passed to agents beyond the allow-list.
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// `custom_env` keys agents may set although they redirect (base URLs, proxies…).
    #[serde(default)]
    pub custom_env_allow: Vec<String>,
    /// Clone `file://` URLs and local paths.
    pub allow_local_repos: Option<bool>,
    /// The bubblewrap binary (default `/usr/bin/bwrap`).
    pub bwrap_path: Option<PathBuf>,
    /// `[agents.claude] path = "/opt/claude/bin/claude"`
    #[serde(default)]
    pub agents: BTreeMap<String, AgentFileEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFileEntry {
    pub path: Option<PathBuf>,
    /// `"open"` or `"allowlist"` for this provider's runs.
    pub network: Option<String>,
}

fn parse_network(what: &str, s: &str) -> anyhow::Result<agentd_daemon::sandbox::NetworkMode> {
    use agentd_daemon::sandbox::NetworkMode;
    match s.trim() {
        "open" => Ok(NetworkMode::Open),
        "allowlist" | "allow-list" => Ok(NetworkMode::AllowList),
        other => bail!("{what}: network {other:?} must be \"open\" or \"allowlist\""),
    }
}

/// The sandbox settings from flags and the file; `where_` names the file in errors.
fn sandbox_config(
    args: &DaemonArgs,
    file: &FileConfig,
    file_path: Option<&Path>,
    where_: &str,
) -> anyhow::Result<agentd_daemon::sandbox::SandboxConfig> {
    use agentd_daemon::sandbox::{SandboxConfig, SandboxMode};
    let mut sb = SandboxConfig {
        bwrap: file
            .bwrap_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("/usr/bin/bwrap")),
        ..SandboxConfig::default()
    };
    sb.mode = match args
        .sandbox
        .as_deref()
        .or(file.sandbox.as_deref())
        .map(str::trim)
    {
        None | Some("bwrap") => SandboxMode::Bwrap,
        Some("off") => SandboxMode::Off,
        Some(other) => bail!("{where_}: sandbox {other:?} must be \"bwrap\" or \"off\""),
    };
    if let Some(n) = args.network.as_deref().or(file.network.as_deref()) {
        sb.network = parse_network(where_, n)?;
    }
    for (provider, entry) in &file.agents {
        if let Some(n) = &entry.network {
            let mode = parse_network(&format!("{where_} [agents.{provider}]"), n)?;
            sb.network_by_provider.push((provider.clone(), mode));
        }
    }
    sb.allow_hosts = file.allow_hosts.clone();
    sb.hidden = file.hide_paths.clone();
    // The daemon's config (its token may be in it) is never the agent's to read: the
    // default config dir, and the file itself wherever it is.
    if let Some(dir) = default_config_path().and_then(|p| p.parent().map(Path::to_path_buf)) {
        sb.hidden.push(dir);
    }
    if let Some(p) = file_path {
        sb.hidden
            .push(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    }
    sb.read_only = file.read_only_paths.clone();
    sb.writable = file.writable_paths.clone();
    if let Some(m) = &file.memory_limit {
        sb.limits.memory_bytes = Some(
            agentd_daemon::sandbox::limits::parse_bytes(m)
                .map_err(|e| anyhow::anyhow!("{where_}: memory_limit {e}"))?,
        );
    }
    if let Some(p) = file.process_limit {
        if p == 0 {
            bail!("{where_}: process_limit must be at least 1");
        }
        sb.limits.max_processes = Some(p);
    }
    sb.pass_env = file.pass_env.clone();
    sb.custom_env_allow = file.custom_env_allow.clone();
    Ok(sb)
}

fn strategy() -> Option<impl etcetera::AppStrategy> {
    etcetera::choose_app_strategy(etcetera::AppStrategyArgs {
        top_level_domain: "dev".into(),
        author: "agentd".into(),
        app_name: "agentd".into(),
    })
    .ok()
}

pub fn default_config_path() -> Option<PathBuf> {
    use etcetera::AppStrategy;
    strategy().map(|s| s.config_dir().join("daemon.toml"))
}

pub fn default_data_dir() -> PathBuf {
    use etcetera::AppStrategy;
    strategy()
        .map(|s| s.data_dir())
        .unwrap_or_else(|| PathBuf::from(".agentd"))
}

/// Loads a config file. A missing file is an error only when it was named explicitly.
pub fn load_file(path: Option<&Path>) -> anyhow::Result<(FileConfig, Option<PathBuf>)> {
    let (path, explicit) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => match default_config_path() {
            Some(p) => (p, false),
            None => return Ok((FileConfig::default(), None)),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let cfg: FileConfig = toml::from_str(&text)
                .with_context(|| format!("config file {} is invalid", path.display()))?;
            Ok((cfg, Some(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok((FileConfig::default(), Some(path)))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read config file {}", path.display())),
    }
}

/// Parses `500ms`, `15s`, `2m`, `1h`, `1d`, or a bare number of seconds.
pub fn parse_duration(what: &str, s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("{what}: invalid duration {s:?} (use e.g. 15s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => bail!("{what}: invalid duration {s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"),
    };
    if !secs.is_finite() || !(0.0..=365.0 * 86400.0).contains(&secs) {
        bail!("{what}: duration {s:?} is out of range");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "local-machine".into())
}

fn timezone() -> String {
    let valid = |s: &str| s == "UTC" || s.contains('/');
    if let Ok(tz) = std::env::var("TZ")
        && valid(tz.trim())
    {
        return tz.trim().to_string();
    }
    if let Ok(tz) = std::fs::read_to_string("/etc/timezone")
        && valid(tz.trim())
    {
        return tz.trim().to_string();
    }
    "UTC".into()
}

/// Builds the daemon's config from flags/env (already merged by clap) and the file.
pub fn daemon_config(args: &DaemonArgs) -> anyhow::Result<agentd_daemon::DaemonConfig> {
    let (file, file_path) = load_file(args.config.as_deref())?;
    let where_ = file_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<config dir>/agentd/daemon.toml".into());
    let token = args
        .token
        .clone()
        .or(file.token.clone())
        .filter(|t| !t.trim().is_empty());
    let Some(token) = token else {
        bail!(
            "no API token: pass --token, set AGENTD_TOKEN, or put `token = \"...\"` in {where_} \
             (create one with `agentd token create --workspace ID` on the server)"
        );
    };
    let server_url = args
        .server_url
        .clone()
        .or(file.server_url.clone())
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let server_url = agentd_daemon::config::normalize_server_url(&server_url)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir.clone())
        .unwrap_or_else(default_data_dir);
    let mut cfg = agentd_daemon::DaemonConfig::new(&server_url, token.trim(), data_dir.clone());
    if let Some(s) = args
        .heartbeat_interval
        .as_ref()
        .or(file.heartbeat_interval.as_ref())
    {
        cfg.heartbeat_interval = parse_duration("heartbeat_interval", s)?;
        if cfg.heartbeat_interval.is_zero() {
            bail!("heartbeat_interval must be greater than zero");
        }
    }
    if let Some(s) = args.poll_interval.as_ref().or(file.poll_interval.as_ref()) {
        cfg.poll_interval = parse_duration("poll_interval", s)?;
    }
    let durations: [(&str, Option<&String>, &mut std::time::Duration); 7] = [
        (
            "shutdown_grace",
            file.shutdown_grace.as_ref(),
            &mut cfg.shutdown_grace,
        ),
        (
            "agent_timeout",
            args.agent_timeout.as_ref().or(file.agent_timeout.as_ref()),
            &mut cfg.task_timeout,
        ),
        (
            "inactivity_timeout",
            args.inactivity_timeout
                .as_ref()
                .or(file.inactivity_timeout.as_ref()),
            &mut cfg.inactivity_timeout,
        ),
        ("kill_grace", file.kill_grace.as_ref(), &mut cfg.kill_grace),
        (
            "gc_interval",
            file.gc_interval.as_ref(),
            &mut cfg.gc_interval,
        ),
        ("gc_ttl", file.gc_ttl.as_ref(), &mut cfg.gc_ttl),
        (
            "gc_orphan_ttl",
            file.gc_orphan_ttl.as_ref(),
            &mut cfg.gc_orphan_ttl,
        ),
    ];
    for (key, value, slot) in durations {
        if let Some(s) = value {
            *slot = parse_duration(key, s)?;
        }
    }
    if let Some(s) = args.http_timeout.as_ref().or(file.http_timeout.as_ref()) {
        cfg.http_timeout = parse_duration("http_timeout", s)?;
        if cfg.http_timeout.is_zero() {
            bail!("http_timeout must be greater than zero");
        }
    }
    if let Some(n) = args.max_concurrent_tasks.or(file.max_concurrent_tasks) {
        if n == 0 {
            bail!("max_concurrent_tasks must be at least 1");
        }
        cfg.max_concurrent_tasks = n;
    }
    let port = args
        .health_port
        .or(file.health_port)
        .unwrap_or(DEFAULT_HEALTH_PORT);
    cfg.health_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    cfg.device_name = args
        .device_name
        .clone()
        .or(file.device_name.clone())
        .unwrap_or_else(hostname);
    cfg.timezone = timezone();
    cfg.launched_by = std::env::var("AGENTD_LAUNCHED_BY").unwrap_or_default();
    cfg.agentd_exe = std::env::current_exe().ok();

    cfg.sandbox = sandbox_config(args, &file, file_path.as_deref(), &where_)?;
    cfg.allow_local_repos = args.allow_local_repos || file.allow_local_repos.unwrap_or(false);
    let configured: Vec<(String, PathBuf)> = file
        .agents
        .iter()
        .filter_map(|(p, e)| Some((p.clone(), e.path.clone()?)))
        .collect();
    let path_var = std::env::var_os("PATH");
    cfg.agents = agentd_daemon::agents::detect(path_var.as_deref(), &configured);
    if cfg.agents.is_empty() {
        let known: Vec<&str> = agentd_daemon::backend::provider::names().collect();
        bail!(
            "no agent CLI found: install one of {} on PATH, \
             or set [agents.<provider>] path = \"...\" in {where_}",
            known.join(", ")
        );
    }
    cfg.daemon_id = agentd_daemon::identity::load_or_create_daemon_id(&data_dir)?;
    let host = hostname();
    let stripped = host.trim_end_matches(".local").to_string();
    cfg.legacy_daemon_ids = vec![stripped.clone(), format!("{stripped}.local")];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("x", "15s").unwrap(), Duration::from_secs(15));
        assert_eq!(
            parse_duration("x", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("x", "2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("x", "30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("x", "5 parsecs").is_err());
        assert!(parse_duration("x", "abc").is_err());
    }

    #[test]
    fn http_timeout_comes_from_the_flag_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("daemon.toml");
        // A daemon needs an agent CLI: a stand-in claude that prints a supported version.
        let claude = dir.path().join("claude");
        std::fs::write(&claude, "#!/bin/sh\necho '2.1.0 (Claude Code)'\n").unwrap();
        std::fs::set_permissions(&claude, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(
            &p,
            format!(
                "token = \"t\"\nhttp_timeout = \"7s\"\n[agents.claude]\npath = {:?}\n",
                claude.display().to_string()
            ),
        )
        .unwrap();
        let mut args = DaemonArgs {
            config: Some(p),
            data_dir: Some(dir.path().join("data")),
            ..DaemonArgs::default()
        };
        let default =
            agentd_daemon::DaemonConfig::new("http://x", "t", dir.path().into()).http_timeout;
        assert_eq!(default, Duration::from_secs(30));
        assert_eq!(
            daemon_config(&args).unwrap().http_timeout,
            Duration::from_secs(7)
        );
        args.http_timeout = Some("1500ms".into());
        assert_eq!(
            daemon_config(&args).unwrap().http_timeout,
            Duration::from_millis(1500)
        );
        args.http_timeout = Some("0s".into());
        let err = format!("{:#}", daemon_config(&args).unwrap_err());
        assert!(err.contains("http_timeout"), "{err}");
    }

    #[test]
    fn config_file_rejects_unknown_keys_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("daemon.toml");
        std::fs::write(
            &p,
            "server_url = \"http://x\"\nheartbeat_intervall = \"1s\"\n",
        )
        .unwrap();
        let err = format!("{:#}", load_file(Some(&p)).unwrap_err());
        assert!(
            err.contains("daemon.toml") && err.contains("heartbeat_intervall"),
            "{err}"
        );
        let missing = dir.path().join("nope.toml");
        assert!(load_file(Some(&missing)).is_err());
    }
}
