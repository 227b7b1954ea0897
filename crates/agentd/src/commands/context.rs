//! The CLI context file, `$XDG_CONFIG_HOME/agentd/cli.toml` (else
//! `~/.config/agentd/cli.toml`): the server URL, token and workspace the CLI uses when
//! no flag or environment variable names them. `agentd up` writes it; `agentd context`
//! shows, sets and clears it. The directory is 0700, the file 0600, written atomically.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::error::{CliError, Kind};

/// What `cli.toml` holds. Unknown keys are an error (a typo must not be ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A workspace reference: its key, name or id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// The context file's path: `$XDG_CONFIG_HOME/agentd/cli.toml`, else
/// `$HOME/.config/agentd/cli.toml`; `None` when neither variable is set.
pub fn path() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".config"))
    })?;
    Some(base.join("agentd").join("cli.toml"))
}

/// The path for messages.
pub fn path_text() -> String {
    path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.config/agentd/cli.toml".into())
}

/// Reads the context file; a missing one is empty. A malformed one is an error naming
/// the file and the problem.
pub fn load() -> anyhow::Result<CliContext> {
    let Some(path) = path() else {
        return Ok(CliContext::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CliContext::default()),
        Err(e) => {
            return Err(CliError::new(
                Kind::Other,
                format!("cannot read the context file {}: {e}", path.display()),
            )
            .code("bad_context")
            .into());
        }
    };
    let ctx: CliContext = toml::from_str(&text).map_err(|e| {
        CliError::new(
            Kind::Other,
            format!(
                "the context file {} is malformed: {}",
                path.display(),
                e.to_string().trim()
            ),
        )
        .code("bad_context")
        .hint("fix it (keys: server_url, token, workspace), or remove it: agentd context clear")
    })?;
    Ok(ctx)
}

/// Writes `ctx` to the context file (directory 0700, file 0600, atomically).
pub fn save(ctx: &CliContext) -> anyhow::Result<PathBuf> {
    let path =
        path().context("neither XDG_CONFIG_HOME nor HOME is set: no place for the context file")?;
    let dir = path.parent().context("the context file has no directory")?;
    private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = format!(
        "# The agentd CLI's context (`agentd context show|set|clear`); written by `agentd up`.\n{}",
        toml::to_string(ctx).context("cannot encode the context")?
    );
    agentd_daemon::fsutil::write_atomic(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Creates `dir` (and its parents) and makes it owner-only (0700): it holds a token.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if std::fs::metadata(dir)?.permissions().mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Removes the context file; `Ok(false)` when there was none.
pub fn clear() -> anyhow::Result<bool> {
    let Some(path) = path() else { return Ok(false) };
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// A token for display: its first 8 characters and its length, never all of it.
pub fn mask(token: &str) -> String {
    let head: String = token.chars().take(8).collect();
    format!("{head}… ({} characters)", token.chars().count())
}
