//! Whether bubblewrap works on this machine, decided once at start by running it with the
//! exact namespace flags a task uses (a bare `bwrap true` misses failures that appear only
//! with `--unshare-net` or `--unshare-pid`), and why not, in words an operator can act on.

use std::path::Path;
use std::process::{Command, Stdio};

/// The bwrap version on success; otherwise the cause, with a remedy.
pub fn probe(bwrap: &Path) -> Result<String, String> {
    if !cfg!(target_os = "linux") {
        return Err(format!(
            "the bubblewrap sandbox needs Linux; this is {} (see docs/sandbox.md for what macOS would take)",
            std::env::consts::OS
        ));
    }
    let version = Command::new(bwrap)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "{} not found: install bubblewrap (Debian/Ubuntu: apt install bubblewrap; Fedora: dnf install bubblewrap)",
                bwrap.display()
            ),
            _ => format!("cannot run {}: {e}", bwrap.display()),
        })?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let out = Command::new(bwrap)
        .args(super::bwrap::probe_args())
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bwrap.display()))?;
    if out.status.success() {
        return Ok(version);
    }
    Err(classify(&String::from_utf8_lossy(&out.stderr)))
}

/// Turns bwrap's stderr into a cause an operator can act on.
pub fn classify(stderr: &str) -> String {
    let s = stderr.trim();
    let hint = if s.contains("No permissions to create new namespace")
        || s.contains("Operation not permitted") && s.contains("namespace")
    {
        "unprivileged user namespaces are refused (kernel.unprivileged_userns_clone=0, user.max_user_namespaces=0, or a container's seccomp policy)"
    } else if s.contains("setting up uid map") || s.contains("RTM_NEWADDR") {
        "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+): add an AppArmor profile granting userns to bwrap, or sysctl kernel.apparmor_restrict_unprivileged_userns=0"
    } else if s.contains("nesting depth") || s.contains("No space left on device") {
        "already inside a sandbox that disabled nested user namespaces"
    } else if s.contains("Can't mount proc") || s.contains("make / slave") {
        "this looks like an unprivileged container that masks /proc; run the daemon on the host or in a privileged container"
    } else {
        "bwrap could not create the sandbox"
    };
    if s.is_empty() {
        hint.to_string()
    } else {
        format!("{hint} (bwrap said: {s})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_name_a_remedy() {
        assert!(
            classify("bwrap: No permissions to create new namespace, likely because the kernel does not allow non-privileged user namespaces.")
                .contains("user namespaces are refused")
        );
        assert!(classify("bwrap: setting up uid map: Permission denied").contains("AppArmor"));
        assert!(
            classify("bwrap: loopback: Failed RTM_NEWADDR: Operation not permitted")
                .contains("AppArmor")
        );
        assert!(classify("").contains("could not create"));
    }

    #[test]
    fn a_missing_bwrap_is_named() {
        let err = probe(Path::new("/nonexistent/bwrap")).unwrap_err();
        assert!(
            err.contains("/nonexistent/bwrap") && err.contains("install"),
            "{err}"
        );
    }
}
