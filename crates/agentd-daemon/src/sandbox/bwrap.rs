//! The bubblewrap command line of one agent run (see `docs/sandbox.md` for the layout and
//! `../shared/guides/sandbox.md`'s facts behind it).
//!
//! Mounts apply in argv order, later over earlier: the host read-only, a fresh `/dev`
//! and `/proc`, tmpfs over everything hidden (`/tmp`, `/var/tmp`, `/run`, the real
//! HOME, the daemon's data and config dirs, configured extras), then the writable holes
//! (the task's work dir, the provider's state dirs), then read-only re-binds of what
//! must stay usable under a hidden tree (`PATH` entries, the CLI's install dir), and
//! last the work dir's `.git/hooks` and `.git/config` read-only, since the daemon runs
//! git there after the agent.
//!
//! Namespaces: all (user, ipc, pid, net, uts, cgroup), the network shared back only in
//! open mode; `--die-with-parent` and a PID namespace, so nothing the agent starts
//! outlives its run or the daemon; `--new-session` (no terminal to inject keys into);
//! `--cap-drop ALL` (a root daemon's sandbox keeps no capability).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The namespace flags and base mounts every run starts with (the network is shared
/// back after them in open mode); the start-up probe runs exactly these.
const BASE_ARGS: &[&str] = &[
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
];

/// bwrap's arguments for the start-up probe (up to `--`; append the command).
pub fn probe_args() -> Vec<&'static str> {
    let mut a = BASE_ARGS.to_vec();
    a.push("--");
    a
}

/// Where the egress proxy's socket appears inside the sandbox.
pub const EGRESS_SOCKET: &str = "/run/agentd/egress.sock";

/// What one run's sandbox shows.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The agent's cwd: writable.
    pub workdir: PathBuf,
    /// Hidden behind an empty tmpfs (directories) or `/dev/null` (files).
    pub hidden: Vec<PathBuf>,
    /// Writable (the provider's state dirs, configured extras).
    pub writable: Vec<PathBuf>,
    /// Visible read-only even when under a hidden tree.
    pub read_only: Vec<PathBuf>,
    /// Share the host's network (open mode).
    pub share_net: bool,
    /// The host path of this run's egress proxy socket (allow-list mode).
    pub egress_socket: Option<PathBuf>,
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

fn under(p: &Path, root: &Path) -> bool {
    p.starts_with(root)
}

/// The directories the default layout hides: the system temp dirs, `/run` (docker,
/// D-Bus and agent sockets) and the daemon user's HOME.
pub fn default_hidden(home: Option<&Path>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["/tmp", "/var/tmp", "/run"]
        .iter()
        .map(PathBuf::from)
        .collect();
    v.extend(home.map(Path::to_path_buf));
    v
}

/// The state dirs a provider's CLI writes under HOME (created if missing), so that it
/// can run and resume sessions: the provider table's
/// [`state_dirs`](crate::backend::ProviderInfo::state_dirs), moved where `env` says
/// (e.g. `$CODEX_HOME`). An unknown provider has none.
pub fn state_dirs(provider: &str, home: &Path, env: &[(String, String)]) -> Vec<PathBuf> {
    crate::backend::provider::provider(provider)
        .map(|p| p.state_dirs_in(home, env))
        .unwrap_or_default()
}

/// Everything an agent CLI needs to run, to re-bind read-only when it lies in a hidden
/// tree: [`install_dir`], plus, for a Python virtualenv's script (`<venv>/bin/<cli>` next
/// to `<venv>/pyvenv.cfg`, as the PyPI CLIs are installed), the venv itself and the
/// base interpreter's prefix it names (`home = <prefix>/bin`: the interpreter and its
/// standard library, e.g. under a pyenv in a hidden HOME).
pub fn install_dirs(exe: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = install_dir(exe).into_iter().collect();
    let venv = std::fs::canonicalize(exe)
        .ok()
        .and_then(|real| real.parent()?.parent().map(Path::to_path_buf))
        .filter(|v| v.join("pyvenv.cfg").is_file());
    if let Some(venv) = venv {
        let base = std::fs::read_to_string(venv.join("pyvenv.cfg"))
            .ok()
            .and_then(|cfg| {
                cfg.lines()
                    .filter_map(|l| l.split_once('='))
                    .find(|(k, _)| k.trim() == "home")
                    .map(|(_, v)| PathBuf::from(v.trim()))
            })
            .and_then(|bin| bin.parent().map(Path::to_path_buf))
            .filter(|p| p.is_absolute() && p.parent().is_some());
        dirs.push(venv);
        dirs.extend(base);
    }
    dirs
}

/// Where an agent CLI is installed, to re-bind read-only when it lies in a hidden tree:
/// the `node_modules` dir of an npm install, else the executable's directory.
pub fn install_dir(exe: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(exe).ok()?;
    real.ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "node_modules"))
        .map(Path::to_path_buf)
        .or_else(|| real.parent().map(Path::to_path_buf))
}

/// bwrap's arguments (up to and including `--`) for `layout`.
pub fn args(layout: &Layout) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    a.extend(BASE_ARGS.iter().map(OsString::from));
    if layout.share_net {
        a.push("--share-net".into());
    }

    // Hidden trees: outermost only (a tmpfs inside a tmpfs hides nothing more), never
    // `/` itself, only paths that exist (bwrap cannot create a mount point on the
    // read-only root).
    let mut hidden: Vec<&PathBuf> = layout
        .hidden
        .iter()
        .filter(|p| p.is_absolute() && p.parent().is_some() && p.exists())
        .collect();
    hidden.sort_by_key(|p| depth(p));
    hidden.dedup();
    let mut kept: Vec<&PathBuf> = Vec::new();
    for h in hidden {
        if !kept.iter().any(|k| under(h, k)) {
            kept.push(h);
        }
    }
    // Hides, writable holes and read-only re-binds, shallowest first (a hide before a
    // bind at the same depth), so a deeper mount lands on top of the one around it: a
    // hidden dir inside a writable one stays hidden, a work dir inside a hidden one is
    // visible again.
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Mount {
        Hide,
        Writable,
        ReadOnly,
    }
    let mut mounts: Vec<(&Path, Mount)> = kept.iter().map(|h| (h.as_path(), Mount::Hide)).collect();
    mounts.push((&layout.workdir, Mount::Writable));
    mounts.extend(
        layout
            .writable
            .iter()
            .map(|p| (p.as_path(), Mount::Writable)),
    );
    mounts.extend(
        layout
            .read_only
            .iter()
            // Re-binding matters only under a hidden tree; elsewhere the path is
            // already visible read-only.
            .filter(|p| kept.iter().any(|k| under(p, k)))
            .map(|p| (p.as_path(), Mount::ReadOnly)),
    );
    mounts.retain(|(p, _)| p.is_absolute() && p.exists());
    mounts.sort_by_key(|(p, m)| (depth(p), *m));
    mounts.dedup_by(|x, y| x.0 == y.0);
    for (p, m) in mounts {
        match m {
            Mount::Hide if p.is_dir() => a.push("--tmpfs".into()),
            Mount::Hide => {
                a.push("--ro-bind".into());
                a.push("/dev/null".into());
            }
            Mount::Writable => {
                a.push("--bind".into());
                a.push(p.as_os_str().to_owned());
            }
            Mount::ReadOnly => {
                a.push("--ro-bind".into());
                a.push(p.as_os_str().to_owned());
            }
        }
        a.push(p.as_os_str().to_owned());
    }
    // The daemon runs git in the work dir after the agent: hooks and config stay as the
    // daemon made them.
    let git = layout.workdir.join(".git");
    for sub in ["hooks", "config"] {
        let p = git.join(sub);
        if p.exists() {
            a.push("--ro-bind".into());
            a.push(p.as_os_str().to_owned());
            a.push(p.as_os_str().to_owned());
        }
    }
    if let Some(sock) = &layout.egress_socket {
        a.push("--bind".into());
        a.push(sock.as_os_str().to_owned());
        a.push(EGRESS_SOCKET.into());
    }
    a.push("--chdir".into());
    a.push(layout.workdir.as_os_str().to_owned());
    a.push("--".into());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(a: &[OsString]) -> Vec<String> {
        a.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn a_python_venv_script_brings_its_venv_and_base_interpreter() {
        let root = tempfile::tempdir().unwrap();
        let venv = root.path().join("venv-x");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/x"), "#!/bin/sh\n").unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            "home = /opt/py/3.11/bin\nversion = 3.11.7\n",
        )
        .unwrap();
        let venv = venv.canonicalize().unwrap();
        assert_eq!(
            install_dirs(&venv.join("bin/x")),
            [
                venv.join("bin"),
                venv.clone(),
                PathBuf::from("/opt/py/3.11")
            ]
        );
        // Not a venv: the install dir alone.
        std::fs::remove_file(venv.join("pyvenv.cfg")).unwrap();
        assert_eq!(install_dirs(&venv.join("bin/x")), [venv.join("bin")]);
    }

    #[test]
    fn hides_outermost_trees_then_rebinds_holes_in_depth_order() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in [
            "home/.claude",
            "home/bin",
            "data/tasks/t1/work/.git/hooks",
            "cfg",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("data/tasks/t1/work/.git/config"), "").unwrap();
        let layout = Layout {
            workdir: r.join("data/tasks/t1/work"),
            hidden: vec![
                r.join("home"),
                r.join("data"),
                r.join("data/tasks"),
                r.join("cfg"),
                r.join("missing"),
            ],
            writable: vec![r.join("home/.claude")],
            read_only: vec![r.join("home/bin"), PathBuf::from("/usr/bin")],
            share_net: true,
            egress_socket: None,
        };
        let a = strs(&args(&layout));
        let s = |p: &str| r.join(p).display().to_string();
        let pos = |needle: &str| {
            a.iter()
                .position(|x| x == needle)
                .unwrap_or_else(|| panic!("{needle} not in {a:?}"))
        };
        assert!(a.contains(&"--share-net".to_string()));
        // `data/tasks` is inside `data`: one tmpfs; a missing path is skipped.
        assert_eq!(a.iter().filter(|x| *x == "--tmpfs").count(), 3, "{a:?}");
        assert!(!a.contains(&s("missing")));
        // Holes come after the tmpfs that covers them; hooks and config last.
        assert!(pos(&s("home/.claude")) > pos(&s("home")));
        assert!(pos(&s("data/tasks/t1/work")) > pos(&s("data")));
        assert!(pos(&s("data/tasks/t1/work/.git/hooks")) > pos(&s("data/tasks/t1/work")));
        assert!(
            a.contains(&s("home/bin")),
            "a PATH entry under a hidden tree is re-bound"
        );
        assert!(
            !a.contains(&"/usr/bin".to_string()),
            "visible paths need no re-bind"
        );
        assert_eq!(a.last().map(String::as_str), Some("--"));
    }

    #[test]
    fn a_hidden_dir_inside_a_writable_one_stays_hidden() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("shared/daemon/tasks/t/work")).unwrap();
        let a = strs(&args(&Layout {
            workdir: r.join("shared/daemon/tasks/t/work"),
            hidden: vec![r.join("shared/daemon")],
            writable: vec![r.join("shared")],
            ..Layout::default()
        }));
        let s = |p: &str| r.join(p).display().to_string();
        let pos = |needle: &str| a.iter().position(|x| x == needle).unwrap();
        assert!(pos(&s("shared/daemon")) > pos(&s("shared")), "{a:?}");
        assert!(
            pos(&s("shared/daemon/tasks/t/work")) > pos(&s("shared/daemon")),
            "{a:?}"
        );
    }

    #[test]
    fn allow_list_mode_has_no_network_but_the_proxy_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("egress.sock");
        std::fs::write(&sock, "").unwrap();
        let a = strs(&args(&Layout {
            workdir: dir.path().to_path_buf(),
            egress_socket: Some(sock.clone()),
            ..Layout::default()
        }));
        assert!(!a.contains(&"--share-net".to_string()));
        let i = a
            .iter()
            .position(|x| *x == sock.display().to_string())
            .unwrap();
        assert_eq!(a[i + 1], EGRESS_SOCKET);
    }
}
