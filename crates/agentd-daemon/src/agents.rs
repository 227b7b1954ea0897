//! Agent CLI detection and version probing.
//!
//! Detection finds each known provider's CLI on a given PATH (or at a configured path);
//! probing runs the provider's version command (`<cli> --version`) under a timeout and
//! checks its minimum version. Both read the provider table
//! ([`crate::backend::provider`]). A missing or broken CLI is skipped with a warning
//! naming it, never fatal.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use crate::config::AgentEntry;

pub use crate::backend::provider::Semver;
use crate::backend::provider::{self, PROVIDERS};

/// Finds every known provider. `configured` maps provider → path from the config file
/// (a pinned path never falls back to PATH); others are looked up on `path_var`.
pub fn detect(path_var: Option<&OsStr>, configured: &[(String, PathBuf)]) -> Vec<AgentEntry> {
    let mut found = Vec::new();
    for info in PROVIDERS {
        let provider = info.name;
        let pinned = configured.iter().find(|(p, _)| p == provider);
        let hit = match pinned {
            Some((_, path)) => {
                let resolved = resolve(path, path_var);
                if resolved.is_none() {
                    tracing::warn!(provider, path = %path.display(), "configured agent CLI not found or not executable; skipping");
                }
                resolved
            }
            None => which(OsStr::new(info.binary), path_var),
        };
        if let Some(path) = hit {
            found.push(AgentEntry {
                provider: provider.to_string(),
                path,
            });
        }
    }
    for (provider, _) in configured {
        if provider::provider(provider).is_none() {
            tracing::warn!(provider, "unknown agent provider in config; skipping");
        }
    }
    found
}

/// Finds each custom CLI's command (a bare name on `path_var`, or a path); one not found
/// is skipped with a warning naming it.
pub fn detect_custom(
    path_var: Option<&OsStr>,
    custom: &[crate::backend::custom::CustomCli],
) -> Vec<AgentEntry> {
    custom
        .iter()
        .filter_map(|c| {
            let found = resolve(Path::new(&c.command), path_var);
            if found.is_none() {
                tracing::warn!(provider = c.name, command = %c.command, "custom agent CLI not found or not executable; skipping");
            }
            Some(AgentEntry {
                provider: c.name.to_string(),
                path: found?,
            })
        })
        .collect()
}

/// A command as configured: a path with a directory must be executable itself; a bare
/// name is looked up on `path_var`.
pub fn resolve(cmd: &Path, path_var: Option<&OsStr>) -> Option<PathBuf> {
    if cmd.components().count() > 1 {
        is_executable(cmd).then(|| cmd.to_path_buf())
    } else {
        which(cmd.as_os_str(), path_var)
    }
}

fn which(cmd: &OsStr, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let path_var = path_var?;
    std::env::split_paths(path_var)
        .map(|dir| dir.join(cmd))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Why a CLI was not offered as a runtime.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("`{path} --version` did not answer within {timeout:?}")]
    Timeout { path: String, timeout: Duration },
    #[error("`{path} --version` could not run: {message}")]
    Spawn { path: String, message: String },
    #[error("`{path} --version` exited with {status}: {stderr}")]
    Failed {
        path: String,
        status: String,
        stderr: String,
    },
    #[error("{provider} version {version:?} is below the minimum {min}")]
    TooOld {
        provider: String,
        version: String,
        min: String,
    },
    #[error("{provider} version {version:?} has no x.y.z number to compare")]
    Unparsable { provider: String, version: String },
}

pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Result<String, ProbeError>> + Send + 'a>>;

/// Answers an agent CLI's version. The real one runs the CLI; tests substitute a fixed
/// answer (as the seed's `stubAgentVersion` does).
pub trait VersionProbe: Send + Sync {
    fn probe<'a>(&'a self, agent: &'a AgentEntry) -> ProbeFuture<'a>;
}

/// Runs the CLI's version command (`<cli> --version` unless its provider row or custom
/// profile says otherwise) with stdin closed, under a timeout, and checks the minimum.
pub struct CommandProbe {
    pub timeout: Duration,
    /// Version arguments of custom CLIs, by provider name.
    pub custom: Vec<(String, Vec<String>)>,
}

impl VersionProbe for CommandProbe {
    fn probe<'a>(&'a self, agent: &'a AgentEntry) -> ProbeFuture<'a> {
        Box::pin(async move {
            let path = agent.path.display().to_string();
            let version_args: Vec<&str> = match provider::provider(&agent.provider) {
                Some(p) => p.version_args.to_vec(),
                None => match self.custom.iter().find(|(n, _)| *n == agent.provider) {
                    Some((_, args)) => args.iter().map(String::as_str).collect(),
                    None => vec!["--version"],
                },
            };
            let child = tokio::process::Command::new(&agent.path)
                .args(&version_args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .output();
            let out = match tokio::time::timeout(self.timeout, child).await {
                Err(_) => {
                    return Err(ProbeError::Timeout {
                        path,
                        timeout: self.timeout,
                    });
                }
                Ok(Err(e)) => {
                    return Err(ProbeError::Spawn {
                        path,
                        message: e.to_string(),
                    });
                }
                Ok(Ok(out)) => out,
            };
            if !out.status.success() {
                return Err(ProbeError::Failed {
                    path,
                    status: out.status.to_string(),
                    stderr: String::from_utf8_lossy(&out.stderr)
                        .chars()
                        .take(500)
                        .collect(),
                });
            }
            let version = version_line(&String::from_utf8_lossy(&out.stdout));
            check_min_version(&agent.provider, &version)?;
            Ok(version)
        })
    }
}

/// The first non-empty line holding an `x.y.z` number, else the trimmed output.
pub fn version_line(stdout: &str) -> String {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && parse_semver(l).is_some())
        .unwrap_or(stdout.trim())
        .to_string()
}

/// The first `major.minor.patch` in a string (an optional `v` prefix is allowed).
pub fn parse_semver(s: &str) -> Option<(u64, u64, u64)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()) {
            let rest = &s[i..];
            let mut parts = rest.splitn(3, '.');
            let a = parts.next().and_then(|p| p.parse::<u64>().ok());
            let b = parts.next().and_then(|p| p.parse::<u64>().ok());
            let c = parts.next().and_then(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u64>().ok()
            });
            if let (Some(a), Some(b), Some(c)) = (a, b, c) {
                return Some((a, b, c));
            }
        }
        i += 1;
    }
    None
}

pub fn check_min_version(provider: &str, version: &str) -> Result<(), ProbeError> {
    let Some(min) = provider::provider(provider).and_then(|p| p.min_version) else {
        return Ok(());
    };
    let Some(v) = parse_semver(version) else {
        return Err(ProbeError::Unparsable {
            provider: provider.into(),
            version: version.into(),
        });
    };
    if v < min {
        return Err(ProbeError::TooOld {
            provider: provider.into(),
            version: version.into(),
            min: format!("{}.{}.{}", min.0, min.1, min.2),
        });
    }
    Ok(())
}

/// What detection found for one provider, usable or not (`agentd daemon detect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The provider name (a custom profile's `NAME`).
    pub provider: String,
    /// What people call it; `custom` for a profile.
    pub display_name: String,
    pub custom: bool,
    /// Where it was found (`None`: not found).
    pub path: Option<PathBuf>,
    /// What its version command printed, when it ran.
    pub version: Option<String>,
    pub min_version: Option<String>,
    /// Why it is not offered as a runtime (`None`: it is).
    pub problem: Option<String>,
}

impl Detection {
    pub fn usable(&self) -> bool {
        self.path.is_some() && self.problem.is_none()
    }
}

/// Every provider of the table and every custom profile, in that order, with where it
/// was found (as [`detect`] and [`detect_custom`] look) and what its version probe says.
pub async fn survey(
    path_var: Option<&OsStr>,
    configured: &[(String, PathBuf)],
    custom: &[crate::backend::custom::CustomCli],
    probe: &dyn VersionProbe,
) -> Vec<Detection> {
    let found = detect(path_var, configured);
    let found_custom = detect_custom(path_var, custom);
    let mut rows = Vec::new();
    for info in PROVIDERS {
        let pinned = configured.iter().find(|(p, _)| p == info.name);
        let missing = match pinned {
            Some((_, path)) => format!(
                "the configured path {} is not found or not executable",
                path.display()
            ),
            None => format!("`{}` is not on PATH", info.binary),
        };
        rows.push((
            Detection {
                provider: info.name.to_string(),
                display_name: info.display_name.to_string(),
                custom: false,
                path: None,
                version: None,
                min_version: info.min_version_string(),
                problem: Some(missing),
            },
            found.iter().find(|a| a.provider == info.name),
        ));
    }
    for c in custom {
        rows.push((
            Detection {
                provider: c.name.to_string(),
                display_name: "custom".to_string(),
                custom: true,
                path: None,
                version: None,
                min_version: None,
                problem: Some(format!(
                    "the command `{}` is not found or not executable",
                    c.command
                )),
            },
            found_custom.iter().find(|a| a.provider == c.name),
        ));
    }
    let mut out = Vec::new();
    for (mut row, agent) in rows {
        if let Some(agent) = agent {
            row.path = Some(agent.path.clone());
            match probe.probe(agent).await {
                Ok(v) => {
                    row.version = Some(v);
                    row.problem = None;
                }
                Err(e) => {
                    if let ProbeError::TooOld { version, .. }
                    | ProbeError::Unparsable { version, .. } = &e
                    {
                        row.version = Some(version.clone());
                    }
                    row.problem = Some(e.to_string());
                }
            }
        }
        out.push(row);
    }
    out
}

/// A probe that answers one fixed version for every CLI (tests, benchmarks).
pub struct FixedVersion(pub String);

impl VersionProbe for FixedVersion {
    fn probe<'a>(&'a self, _agent: &'a AgentEntry) -> ProbeFuture<'a> {
        let v = self.0.clone();
        Box::pin(async move { Ok(v) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(parse_semver("2.1.330 (Claude Code)"), Some((2, 1, 330)));
        assert_eq!(parse_semver("codex-cli v0.169.0"), Some((0, 169, 0)));
        assert_eq!(parse_semver("1.2"), None);
        assert_eq!(version_line("\nwarming up\n0.61.0\n"), "0.61.0");
        assert!(check_min_version("claude", "1.9.9").is_err());
        assert!(check_min_version("claude", "2.0.0").is_ok());
        assert!(check_min_version("claude", "unknown").is_err());
        assert!(check_min_version("somethingelse", "x").is_ok());
    }

    #[tokio::test]
    async fn probes_real_commands_and_skips_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let good = write("claude", "echo '2.1.0 (Claude Code)'");
        let old = write("codex", "echo 'codex-cli 0.5.0'");
        let broken = write("gemini", "echo boom >&2; exit 3");
        let slow = write("opencode", "sleep 5; echo 1.2.3");
        let probe = CommandProbe {
            timeout: Duration::from_millis(300),
            custom: Vec::new(),
        };
        let entry = |p: &str, path: PathBuf| AgentEntry {
            provider: p.into(),
            path,
        };
        assert_eq!(
            probe.probe(&entry("claude", good)).await.unwrap(),
            "2.1.0 (Claude Code)"
        );
        assert!(matches!(
            probe.probe(&entry("codex", old)).await,
            Err(ProbeError::TooOld { .. })
        ));
        assert!(matches!(
            probe.probe(&entry("gemini", broken)).await,
            Err(ProbeError::Failed { .. })
        ));
        assert!(matches!(
            probe.probe(&entry("opencode", slow)).await,
            Err(ProbeError::Timeout { .. })
        ));
        let found = detect(Some(dir.path().as_os_str()), &[]);
        let providers: Vec<_> = found.iter().map(|a| a.provider.as_str()).collect();
        assert_eq!(providers, ["claude", "codex", "opencode", "gemini"]);
        let pinned = detect(
            Some(dir.path().as_os_str()),
            &[("claude".into(), PathBuf::from("/nonexistent/claude"))],
        );
        assert!(!pinned.iter().any(|a| a.provider == "claude"));

        // The survey lists every provider, usable or not, and why not.
        let custom = crate::backend::custom::CustomCli {
            name: "mine",
            command: "mine".into(),
            args: vec!["{prompt}".into()],
            output: crate::backend::custom::OutputFormat::Text,
            version_args: vec!["--version".into()],
            env: Vec::new(),
        };
        std::fs::remove_file(dir.path().join("opencode")).unwrap();
        let rows = survey(
            Some(dir.path().as_os_str()),
            &[],
            std::slice::from_ref(&custom),
            &probe,
        )
        .await;
        let names: Vec<_> = rows.iter().map(|r| r.provider.as_str()).collect();
        let expected: Vec<_> = provider::names().chain(["mine"]).collect();
        assert_eq!(
            names, expected,
            "the table's providers, then the custom ones"
        );
        assert!(rows[0].usable() && rows[0].version.as_deref() == Some("2.1.0 (Claude Code)"));
        assert_eq!(rows[1].version.as_deref(), Some("codex-cli 0.5.0"));
        assert!(
            rows[1]
                .problem
                .as_deref()
                .unwrap()
                .contains("below the minimum 0.100.0")
        );
        assert!(rows[2].path.is_none());
        assert_eq!(
            rows[2].problem.as_deref(),
            Some("`opencode` is not on PATH")
        );
        assert!(rows[3].path.is_some() && !rows[3].usable());
        let mine = rows.last().expect("the custom row");
        assert!(mine.custom && mine.problem.as_deref().unwrap().contains("`mine`"));
    }
}
