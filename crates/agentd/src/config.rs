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
    /// This machine's labels, for agents bound to a pool with labels.
    pub labels: Option<Vec<String>>,
    pub device_name: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `"auto"` (default: agentd's server says so in its register answer, anything else is
    /// served like Multica), `"agentd"` or `"multica"`.
    pub server_kind: Option<String>,
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
    /// `[agents.claude] path = "/opt/claude/bin/claude"`, `[agents.custom.NAME] …`
    #[serde(default)]
    pub agents: AgentsFile,
}

/// The `[agents]` table: one entry per known provider, and `custom` profiles.
#[derive(Debug, Default, Deserialize)]
pub struct AgentsFile {
    /// `[agents.custom.NAME]`: CLIs agentd has no row for, checked by [`custom_clis`] so
    /// that errors name the key.
    #[serde(default)]
    pub custom: BTreeMap<String, toml::Table>,
    /// `[agents.<provider>]`.
    #[serde(flatten)]
    pub providers: BTreeMap<String, AgentFileEntry>,
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
    for (provider, entry) in &file.agents.providers {
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

/// `[agents.<provider>] path = …`: provider → pinned path.
pub fn pinned_agent_paths(file: &FileConfig) -> Vec<(String, PathBuf)> {
    file.agents
        .providers
        .iter()
        .filter_map(|(p, e)| Some((p.clone(), e.path.clone()?)))
        .collect()
}

/// The keys of an `[agents.custom.NAME]` profile.
const CUSTOM_KEYS: &[&str] = &["command", "args", "output", "version", "env"];

/// The `[agents.custom.NAME]` profiles of `file`, checked. Errors name the file
/// (`where_`) and the key (`agents.custom.NAME.output`) and say what is valid.
///
/// A profile's name becomes a provider name for the daemon's lifetime (the backend
/// interface takes `&'static str` names), so it is leaked once per profile.
pub fn custom_clis(
    file: &FileConfig,
    where_: &str,
) -> anyhow::Result<Vec<agentd_daemon::backend::custom::CustomCli>> {
    use agentd_daemon::backend::custom::{CustomCli, OutputFormat};
    let mut out = Vec::new();
    for (name, table) in &file.agents.custom {
        let key = format!("agents.custom.{name}");
        CustomCli::check_name(name).map_err(|e| anyhow::anyhow!("{where_}: {key}: {e}"))?;
        for k in table.keys() {
            if !CUSTOM_KEYS.contains(&k.as_str()) {
                bail!(
                    "{where_}: {key}.{k}: unknown key; valid keys: {}",
                    CUSTOM_KEYS.join(", ")
                );
            }
        }
        let string = |k: &str| -> anyhow::Result<Option<String>> {
            match table.get(k) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => bail!(
                    "{where_}: {key}.{k}: must be a string, not {}",
                    other.type_str()
                ),
            }
        };
        let strings = |k: &str| -> anyhow::Result<Option<Vec<String>>> {
            let Some(v) = table.get(k) else {
                return Ok(None);
            };
            let items = v.as_array().and_then(|a| {
                a.iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            });
            match items {
                Some(items) => Ok(Some(items)),
                None => bail!("{where_}: {key}.{k}: must be an array of strings"),
            }
        };
        let command = string("command")?
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{where_}: {key}.command: missing (the CLI to run: a name on PATH or a path)"
                )
            })?;
        let args = strings("args")?.unwrap_or_else(|| vec!["{prompt}".to_string()]);
        if !args.iter().any(|a| a.contains("{prompt}")) {
            bail!(
                "{where_}: {key}.args: no argument holds {{prompt}}, so the CLI would never see the task"
            );
        }
        let output = match string("output")? {
            None => OutputFormat::Text,
            Some(o) => OutputFormat::parse(&o)
                .map_err(|e| anyhow::anyhow!("{where_}: {key}.output: {e}"))?,
        };
        let version_args = strings("version")?.unwrap_or_else(|| vec!["--version".to_string()]);
        let env = match table.get("env") {
            None => Vec::new(),
            Some(toml::Value::Table(t)) => t
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(v) => Ok((k.clone(), v.to_string())),
                    None => bail!("{where_}: {key}.env.{k}: must be a string"),
                })
                .collect::<anyhow::Result<_>>()?,
            Some(_) => bail!("{where_}: {key}.env: must be a table of strings"),
        };
        out.push(CustomCli {
            name: Box::leak(name.clone().into_boxed_str()),
            command,
            args,
            output,
            version_args,
            env,
        });
    }
    Ok(out)
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
    let labels = if args.label.is_empty() {
        file.labels.clone().unwrap_or_default()
    } else {
        args.label.clone()
    };
    for l in &labels {
        if l.trim().is_empty() || l.len() > 64 || l.chars().any(char::is_whitespace) {
            bail!("labels: {l:?} is not a label (1 to 64 characters, no spaces)");
        }
    }
    cfg.labels = labels;
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
    let kind = std::env::var("AGENTD_SERVER_KIND")
        .ok()
        .or(file.server_kind.clone());
    cfg.server_kind = match kind.as_deref().map(str::trim) {
        None | Some("") | Some("auto") => None,
        Some("agentd") => Some(agentd_proto::ServerKind::Agentd),
        Some("multica") => Some(agentd_proto::ServerKind::Multica),
        Some(other) => {
            bail!("{where_}: server_kind {other:?} must be \"auto\", \"agentd\" or \"multica\"")
        }
    };
    let configured = pinned_agent_paths(&file);
    let path_var = std::env::var_os("PATH");
    cfg.agents = agentd_daemon::agents::detect(path_var.as_deref(), &configured);
    cfg.custom_agents = custom_clis(&file, &where_)?;
    cfg.agents.extend(agentd_daemon::agents::detect_custom(
        path_var.as_deref(),
        &cfg.custom_agents,
    ));
    if cfg.agents.is_empty() {
        // The executables looked for (`cn` is Continue's).
        let known: Vec<&str> = agentd_daemon::backend::PROVIDERS
            .iter()
            .map(|p| p.binary)
            .collect();
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
    fn server_kind_is_auto_unless_the_file_fixes_it() {
        let dir = tempfile::tempdir().unwrap();
        let claude = dir.path().join("claude");
        std::fs::write(&claude, "#!/bin/sh\necho '2.1.0 (Claude Code)'\n").unwrap();
        std::fs::set_permissions(&claude, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let p = dir.path().join("daemon.toml");
        let with = |kind: Option<&str>| {
            let line = kind
                .map(|k| format!("server_kind = {k:?}\n"))
                .unwrap_or_default();
            std::fs::write(
                &p,
                format!(
                    "token = \"t\"\n{line}[agents.claude]\npath = {:?}\n",
                    claude.display().to_string()
                ),
            )
            .unwrap();
            daemon_config(&DaemonArgs {
                config: Some(p.clone()),
                data_dir: Some(dir.path().join("data")),
                ..DaemonArgs::default()
            })
        };
        use agentd_proto::ServerKind;
        assert_eq!(with(None).unwrap().server_kind, None);
        assert_eq!(with(Some("auto")).unwrap().server_kind, None);
        assert_eq!(
            with(Some("multica")).unwrap().server_kind,
            Some(ServerKind::Multica)
        );
        assert_eq!(
            with(Some("agentd")).unwrap().server_kind,
            Some(ServerKind::Agentd)
        );
        let err = format!("{:#}", with(Some("gitlab")).unwrap_err());
        assert!(
            err.contains("server_kind") && err.contains("gitlab"),
            "{err}"
        );
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

    fn file_with(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn custom_profiles_parse_with_defaults() {
        let file = file_with(
            r#"
[agents.claude]
path = "/opt/claude"
[agents.custom.mine]
command = "my-agent"
args = ["run", "--model={model}", "{prompt}"]
output = "codex"
version = ["version", "--short"]
env = { MY_AGENT_MODE = "batch" }
[agents.custom.plain]
command = "/opt/plain/bin/plain"
"#,
        );
        assert_eq!(
            file.agents.providers["claude"].path.as_deref(),
            Some(Path::new("/opt/claude"))
        );
        let clis = custom_clis(&file, "daemon.toml").unwrap();
        assert_eq!(clis.len(), 2);
        let mine = &clis[0];
        assert_eq!((mine.name, mine.command.as_str()), ("mine", "my-agent"));
        assert_eq!(mine.args, ["run", "--model={model}", "{prompt}"]);
        use agentd_daemon::backend::custom::OutputFormat;
        assert_eq!(mine.output, OutputFormat::Dialect("codex"));
        assert_eq!(mine.version_args, ["version", "--short"]);
        assert_eq!(
            mine.env,
            [("MY_AGENT_MODE".to_string(), "batch".to_string())]
        );
        let plain = &clis[1];
        assert_eq!(plain.args, ["{prompt}"]);
        assert_eq!(plain.output, OutputFormat::Text);
        assert_eq!(plain.version_args, ["--version"]);
    }

    #[test]
    fn custom_profile_errors_name_the_key() {
        let cases = [
            (
                "command = \"x\"\noutput = \"xml\"",
                &[
                    "daemon.toml: agents.custom.mine.output",
                    "\"xml\"",
                    "text, claude, codex, opencode, gemini",
                ][..],
            ),
            (
                "output = \"text\"",
                &["agents.custom.mine.command: missing"][..],
            ),
            (
                "command = 3",
                &["agents.custom.mine.command: must be a string, not integer"][..],
            ),
            (
                "command = \"x\"\nargs = \"{prompt}\"",
                &["agents.custom.mine.args: must be an array of strings"][..],
            ),
            (
                "command = \"x\"\nargs = [\"--fast\"]",
                &["agents.custom.mine.args", "{prompt}"][..],
            ),
            (
                "command = \"x\"\nversion = [1]",
                &["agents.custom.mine.version: must be an array"][..],
            ),
            (
                "command = \"x\"\nenv = { A = 1 }",
                &["agents.custom.mine.env.A: must be a string"][..],
            ),
            (
                "command = \"x\"\nouput = \"text\"",
                &["agents.custom.mine.ouput: unknown key", "output"][..],
            ),
        ];
        for (body, wanted) in cases {
            let file = file_with(&format!("[agents.custom.mine]\n{body}\n"));
            let err = format!("{:#}", custom_clis(&file, "daemon.toml").unwrap_err());
            for w in wanted {
                assert!(err.contains(w), "{body:?}: {err:?} lacks {w:?}");
            }
        }
        let file = file_with("[agents.custom.claude]\ncommand = \"x\"\n");
        let err = format!("{:#}", custom_clis(&file, "daemon.toml").unwrap_err());
        assert!(
            err.contains("agents.custom.claude") && err.contains("built-in"),
            "{err}"
        );
    }

    #[test]
    fn the_daemon_config_offers_a_custom_cli_and_refuses_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("daemon.toml");
        let script = dir.path().join("my-agent");
        std::fs::write(&script, "#!/bin/sh\necho 1.0.0\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let args = DaemonArgs {
            config: Some(p.clone()),
            data_dir: Some(dir.path().join("data")),
            ..DaemonArgs::default()
        };
        std::fs::write(
            &p,
            format!(
                "token = \"t\"\n[agents.custom.mine]\ncommand = {:?}\n",
                script.display().to_string()
            ),
        )
        .unwrap();
        let cfg = daemon_config(&args).unwrap();
        let mine = cfg.agents.iter().find(|a| a.provider == "mine").unwrap();
        assert_eq!(mine.path, script);
        assert_eq!(cfg.custom_agents[0].name, "mine");

        std::fs::write(
            &p,
            format!(
                "token = \"t\"\n[agents.custom.mine]\ncommand = {:?}\noutput = \"yaml\"\n",
                script.display().to_string()
            ),
        )
        .unwrap();
        let err = format!("{:#}", daemon_config(&args).unwrap_err());
        assert!(
            err.contains("daemon.toml: agents.custom.mine.output") && err.contains("valid: text"),
            "{err}"
        );
    }
}
