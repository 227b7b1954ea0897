//! Execution environments: a directory per task under `<data_dir>/tasks/<task_id>`, a git
//! working copy in it on a branch named after the issue, the agent's instructions and
//! skills written where the provider reads them, and the agent's environment.
//!
//! Repositories come from a cache of bare mirrors, one per workspace and URL
//! (`<data_dir>/repos/<workspace>/<name>.git`, so one workspace's tasks can never read
//! or poison another's), fetched under a per-mirror lock so concurrent tasks never
//! corrupt it. Each task gets its own repository fetched from the mirror (objects
//! copied, not shared: nothing the agent does in its `.git` reaches the mirror), with
//! `origin` pointing at the real URL. Git is driven through its CLI (it refuses to
//! clobber work and is what users debug with), always with URLs after `--`, a protocol
//! allow-list (https and ssh; `file` and local paths only when the daemon allows local
//! repositories), hooks and fsmonitor off, and a timeout. A URL outside the workspace's
//! allow-list is refused, no path from the server may escape the task directory, and the
//! instruction files are written without following symlinks.
//!
//! A follow-up task (the server names the previous run's `prior_work_dir`) runs in that
//! checkout when it is still on this machine, on the task's branch and used by no other
//! run ([`Continuation::Reused`]): the agent sees its earlier changes and its session
//! resumes where it was made. Otherwise it gets a fresh checkout of the *task's* branch
//! (the one the server names, else the previous checkout's, derived from its path), and
//! the reason is said ([`Continuation::Fresh`]).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use agentd_proto::{DiffFile, Task, TaskDiff};

use crate::fsutil::lock;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("repository {0} is not in the workspace's allow-list")]
    RepoNotAllowed(String),
    #[error("path {0:?} from the server escapes the task directory")]
    PathEscape(String),
    #[error("task id {0:?} is not a safe directory name")]
    BadTaskId(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("git {args}: {stderr}")]
    Git { args: String, stderr: String },
}

impl EnvError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EnvError {
        let what = what.into();
        move |source| EnvError::Io { what, source }
    }

    /// The disk (or quota) is full — reported as `disk_full` to the server: ENOSPC or
    /// EDQUOT from our own I/O, or a git subprocess that said so (git reports ENOSPC as
    /// text on stderr).
    pub fn is_disk_full(&self) -> bool {
        const ENOSPC: i32 = 28;
        const EDQUOT: i32 = 122;
        match self {
            EnvError::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(ENOSPC) | Some(EDQUOT))
            }
            EnvError::Git { stderr, .. } => {
                stderr.contains("No space left on device") || stderr.contains("Disk quota exceeded")
            }
            _ => false,
        }
    }
}

/// A prepared environment.
#[derive(Debug, Clone)]
pub struct TaskEnv {
    /// `<data_dir>/tasks/<task_id>`.
    pub dir: PathBuf,
    /// The agent's working directory (a git working copy).
    pub workdir: PathBuf,
    pub branch: String,
    /// The commit the task started from (`None`: a fresh repository without a repo).
    pub base_commit: Option<String>,
    /// The workspace repository the task checked out, and the daemon's mirror of it.
    pub repo: Option<RepoCheckout>,
    /// Whether a follow-up continues in the previous run's checkout.
    pub continuation: Continuation,
    /// The directory holding the checkout (`dir`, or the previous run's task directory
    /// when it is reused): its `.done` marker is rewritten when the run ends, so GC keeps
    /// it for the TTL after the *last* run that used it.
    pub checkout_dir: PathBuf,
}

/// How a task's checkout relates to the previous run's (`prior_work_dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continuation {
    /// Not a follow-up: the server named no previous checkout.
    NotFollowUp,
    /// The previous run's checkout, on the task's branch: its session may be resumed.
    Reused,
    /// A fresh checkout of the task's branch; the previous one could not be used, for the
    /// reason given (the session starts anew).
    Fresh(String),
}

/// Where a task's repository came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepoCheckout {
    /// The repository's URL as the workspace names it (where the branch is pushed).
    pub url: String,
    /// The daemon's bare mirror of it (trusted: only the daemon writes it).
    pub mirror: PathBuf,
    /// `file://`, local paths and plain http may be used.
    pub allow_local: bool,
}

/// Bare mirrors by (workspace, URL), each behind its own lock.
///
/// **Invariant:** the map only hands out locks; git runs while holding a repository's
/// async lock, never the map's std mutex.
#[derive(Default)]
pub struct RepoCache {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RepoCache {
    fn lock_for(&self, key: &Path) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(
            lock(&self.locks)
                .entry(key.display().to_string())
                .or_default(),
        )
    }
}

/// The longest any one git command may run (a clone of a large repository over a slow
/// link included); past it git is killed and the task fails with `environment_error`.
pub const GIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Settings on every git call: no hooks or fsmonitor from any repository's config
/// (agent-written config must never run code in the daemon), and no transport but
/// https and ssh unless a call allows more.
const GIT_SAFETY: &[&str] = &[
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "protocol.allow=never",
    "-c",
    "protocol.https.allow=always",
    "-c",
    "protocol.ssh.allow=always",
];

/// The `-c` settings for the transports [`GIT_SAFETY`] leaves out: `file` (and local
/// paths) and plain `http`, allowed only with `allow_local`.
fn local_protocols(allow_local: bool) -> [&'static str; 4] {
    if allow_local {
        [
            "-c",
            "protocol.file.allow=always",
            "-c",
            "protocol.http.allow=always",
        ]
    } else {
        [
            "-c",
            "protocol.file.allow=never",
            "-c",
            "protocol.http.allow=never",
        ]
    }
}

/// Whether `id` is a task id the daemon may use as a directory and ref name.
pub fn valid_task_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

async fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, EnvError> {
    git_with(dir, &[], args).await
}

/// `git` with `extra` settings (`-c k=v` pairs) after [`GIT_SAFETY`].
async fn git_with(dir: Option<&Path>, extra: &[&str], args: &[&str]) -> Result<String, EnvError> {
    run_git(&[], dir, extra, args).await
}

/// `git`, run through `wrap` (a sandbox's argv up to `--`) when it is not empty: then
/// with only `PATH` and git's own switches from the daemon's environment, so nothing a
/// repository makes git run can read the daemon's secrets.
async fn run_git(
    wrap: &[OsString],
    dir: Option<&Path>,
    extra: &[&str],
    args: &[&str],
) -> Result<String, EnvError> {
    let mut cmd = match wrap.split_first() {
        Some((program, rest)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(rest).arg("git").env_clear();
            if let Some(path) = std::env::var_os("PATH") {
                c.env("PATH", path);
            }
            c
        }
        None => tokio::process::Command::new("git"),
    };
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(GIT_SAFETY)
        .args(extra)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PROTOCOL_FROM_USER", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // `kill_on_drop`: a timeout, or a task stopped while preparing (the future is
    // dropped), kills git instead of leaving it running.
    let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| EnvError::Git {
            args: args.join(" "),
            stderr: format!("timed out after {GIT_TIMEOUT:?}"),
        })?
        .map_err(EnvError::io("run git"))?;
    if !out.status.success() {
        return Err(EnvError::Git {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A stable directory name for a repository URL.
fn mirror_name(url: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in url.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    let tail: String = url
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect();
    format!("{tail}-{h:016x}.git")
}

/// Writes `bytes` to `base/rel` without following a symlink anywhere below `base`: each
/// directory on the way must be a real directory (missing ones are made), and the file
/// itself is opened with `O_NOFOLLOW`. A repository that ships a symlink where the daemon
/// writes gets `PathEscape`, not a write outside the work dir.
fn write_under(base: &Path, rel: &Path, bytes: &[u8]) -> Result<(), EnvError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let escape = || EnvError::PathEscape(rel.display().to_string());
    let mut dir = base.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    let Some((file, parents)) = parts.split_last() else {
        return Err(escape());
    };
    for c in parents {
        let Component::Normal(name) = c else {
            return Err(escape());
        };
        dir.push(name);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(escape()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&dir)
                .map_err(EnvError::io(format!("create {}", dir.display())))?,
            Err(e) => return Err(EnvError::io(format!("inspect {}", dir.display()))(e)),
        }
    }
    let path = dir.join(file.as_os_str());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                escape()
            } else {
                EnvError::io(format!("write {}", path.display()))(e)
            }
        })?;
    f.write_all(bytes)
        .map_err(EnvError::io(format!("write {}", path.display())))
}

/// Joins a relative path from the server under `base`, refusing anything that escapes.
pub fn safe_join(base: &Path, rel: &str) -> Result<PathBuf, EnvError> {
    let p = Path::new(rel);
    if rel.is_empty()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(EnvError::PathEscape(rel.to_string()));
    }
    Ok(base.join(p))
}

fn short(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect()
}

/// Whether `name` may be used as a branch the server asked for: what `git
/// check-ref-format --branch` accepts, kept to a plain character set (no option-like or
/// odd names from a server reach git).
pub fn valid_branch(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// The branch a task works on: the one the server asked it to continue on (an open pull
/// request's), else one named after the issue (and the task, so two tasks of one issue
/// never fight over a checked-out branch).
///
/// A follow-up whose server names no branch continues on the previous run's: the name
/// that run got, from the task id in its work dir (a reused checkout keeps its first
/// run's directory, so a chain of follow-ups stays on one branch).
pub fn branch_name(task: &Task) -> String {
    if let Some(b) = task.branch.as_deref().filter(|b| valid_branch(b)) {
        return b.to_string();
    }
    let issue = if task.issue_id.is_empty() {
        "chat".to_string()
    } else {
        short(&task.issue_id)
    };
    let run = prior_task_id(&task.prior_work_dir).unwrap_or_else(|| task.id.clone());
    format!("agentd/issue-{issue}-{}", short(&run))
}

/// How a repository URL would be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoUrl {
    /// `https://…`, `ssh://…` or scp-like `user@host:path`.
    Remote,
    /// `http://…`: cleartext, allowed only with local repositories.
    PlainHttp,
    /// `file://…` or an absolute path on this machine.
    Local,
}

/// Classifies `url`, refusing anything git could mistake for an option or that uses a
/// transport other than https, ssh, http and local files.
pub fn classify_url(url: &str) -> Result<RepoUrl, String> {
    if url.is_empty() {
        return Err("the URL is empty".into());
    }
    if url.starts_with('-') {
        return Err("a URL may not start with '-'".into());
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a URL may not contain whitespace or control characters".into());
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("ssh://") {
        return Ok(RepoUrl::Remote);
    }
    if lower.starts_with("http://") {
        return Ok(RepoUrl::PlainHttp);
    }
    if lower.starts_with("file://") || url.starts_with('/') {
        return Ok(RepoUrl::Local);
    }
    if lower.contains("://") || lower.contains("::") {
        return Err("only https, ssh and (where allowed) local repositories are fetched".into());
    }
    // scp-like `[user@]host:path`: a host before the first ':' and no '/' before it.
    match url.split_once(':') {
        Some((host, path)) if !host.is_empty() && !host.contains('/') && !path.is_empty() => {
            Ok(RepoUrl::Remote)
        }
        _ => Err("not an https, ssh or user@host:path URL".into()),
    }
}

/// A directory name safe for any workspace id.
fn dir_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    if safe.is_empty() {
        "default".into()
    } else {
        safe
    }
}

/// Which repositories a task may check out.
#[derive(Debug, Clone, Copy)]
pub struct Repos<'a> {
    /// The task's workspace: its mirrors live apart from every other workspace's.
    pub workspace: &'a str,
    /// The workspace's repo allow-list.
    pub allowed: &'a [String],
    /// `file://` URLs, local paths and plain http are fetched too.
    pub allow_local: bool,
}

/// Prepares the task's directory and working copy.
///
/// `claim` is asked before a previous run's checkout is reused (by its task directory's
/// name): `false` (another run uses it now) means a fresh checkout.
pub async fn prepare(
    data_dir: &Path,
    cache: &RepoCache,
    task: &Task,
    repos: Repos<'_>,
    claim: &(dyn Fn(&str) -> bool + Sync),
) -> Result<TaskEnv, EnvError> {
    let Repos {
        workspace,
        allowed,
        allow_local,
    } = repos;
    if !valid_task_id(&task.id) {
        return Err(EnvError::BadTaskId(task.id.clone()));
    }
    for repo in &task.repos {
        if !allowed.iter().any(|a| a == &repo.url) {
            return Err(EnvError::RepoNotAllowed(repo.url.clone()));
        }
        match classify_url(&repo.url) {
            Ok(RepoUrl::Remote) => {}
            Ok(RepoUrl::Local | RepoUrl::PlainHttp) if allow_local => {}
            Ok(_) => {
                return Err(EnvError::RepoNotAllowed(format!(
                    "{} (a local or plain-http repository; the daemon allows these only with allow_local_repos)",
                    repo.url
                )));
            }
            Err(why) => return Err(EnvError::RepoNotAllowed(format!("{} ({why})", repo.url))),
        }
    }
    let dir = data_dir.join("tasks").join(&task.id);
    let workdir = dir.join("work");
    // A follow-up the server put on no branch stays on the previous checkout's.
    let prior_head = prior_task_id(&task.prior_work_dir)
        .and_then(|id| head_branch(&data_dir.join("tasks").join(id).join("work")))
        .filter(|b| valid_branch(b));
    let branch = match (&task.branch, prior_head) {
        (Some(b), _) if valid_branch(b) => b.clone(),
        (_, Some(head)) => head,
        _ => branch_name(task),
    };
    if dir.exists() {
        // A retried claim of the same task (after a daemon restart): start clean.
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    crate::fsutil::create_private_dir(&dir)
        .map_err(EnvError::io(format!("create {}", dir.display())))?;
    let continuation = if task.prior_work_dir.is_empty() {
        Continuation::NotFollowUp
    } else {
        match reuse(data_dir, task, &branch, claim).await {
            Ok(prior) if !same_origin(&prior.workdir, task).await => Continuation::Fresh(format!(
                "the previous run's checkout {} is of another repository than this task's",
                task.prior_work_dir
            )),
            Ok(prior) => 'reuse: {
                let repo = task.repos.first().map(|r| RepoCheckout {
                    url: r.url.clone(),
                    mirror: data_dir
                        .join("repos")
                        .join(dir_name(workspace))
                        .join(mirror_name(&r.url)),
                    allow_local,
                });
                let base_commit = git(
                    Some(&prior.workdir),
                    &["rev-parse", "--verify", "-q", "HEAD"],
                )
                .await
                .ok()
                .filter(|h| !h.is_empty());
                if let (Some(r), Some(head)) = (&repo, &base_commit)
                    && let Some(why) = remote_moved(cache, r, &prior.workdir, &branch, head).await?
                {
                    break 'reuse Continuation::Fresh(why);
                }
                return Ok(TaskEnv {
                    dir,
                    workdir: prior.workdir,
                    branch,
                    base_commit,
                    repo,
                    continuation: Continuation::Reused,
                    checkout_dir: prior.dir,
                });
            }
            Err(why) => Continuation::Fresh(why),
        }
    };
    tokio::fs::create_dir_all(&workdir)
        .await
        .map_err(EnvError::io("create work dir"))?;
    git(Some(&workdir), &["init", "-q", "-b", &branch]).await?;
    let mut checkout = None;
    if let Some(repo) = task.repos.first() {
        let local = local_protocols(allow_local);
        let mirrors = data_dir.join("repos").join(dir_name(workspace));
        crate::fsutil::create_private_dir(&mirrors).map_err(EnvError::io("create repo cache"))?;
        let mirror = mirrors.join(mirror_name(&repo.url));
        let m = mirror.display().to_string();
        let repo_lock = cache.lock_for(&mirror);
        let _held = repo_lock.lock().await;
        if !mirror.exists() {
            git_with(
                None,
                &local,
                &["clone", "--bare", "--quiet", "--", &repo.url, &m],
            )
            .await?;
            // Remote branches go to refs/remotes/origin/*, so a fetch never touches the
            // mirror's own branches.
            git(
                Some(&mirror),
                &[
                    "config",
                    "remote.origin.fetch",
                    "+refs/heads/*:refs/remotes/origin/*",
                ],
            )
            .await?;
        }
        git_with(
            Some(&mirror),
            &local,
            &["fetch", "--quiet", "--prune", "origin"],
        )
        .await?;
        let default = git(Some(&mirror), &["symbolic-ref", "--short", "HEAD"]).await?;
        // A follow-up the server put on a branch continues where that branch is on the
        // remote (its pull request's earlier work); any other task starts from the
        // default branch (a remote branch of the same name is someone else's: the push
        // will say so rather than build on it).
        let continued = format!("refs/remotes/origin/{branch}");
        let follow_up = task.branch.as_deref() == Some(branch.as_str())
            || prior_task_id(&task.prior_work_dir).is_some();
        let tracking = if follow_up
            && git(Some(&mirror), &["rev-parse", "--verify", "-q", &continued])
                .await
                .is_ok()
        {
            continued
        } else {
            format!("refs/remotes/origin/{default}")
        };
        // The task's own repository gets copies of the objects it needs (a fetch from a
        // local path never hard-links), so the agent's `.git` is not the mirror's.
        git_with(
            Some(&workdir),
            &["-c", "protocol.file.allow=always"],
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--",
                &m,
                &format!("+{tracking}:{tracking}"),
            ],
        )
        .await?;
        git(
            Some(&workdir),
            &["remote", "add", "origin", "--", &repo.url],
        )
        .await?;
        git(
            Some(&workdir),
            &["checkout", "-q", "-B", &branch, &tracking],
        )
        .await?;
        checkout = Some(RepoCheckout {
            url: repo.url.clone(),
            mirror,
            allow_local,
        });
    }
    let base_commit = match checkout {
        Some(_) => Some(git(Some(&workdir), &["rev-parse", "HEAD"]).await?),
        None => None,
    };
    write_instructions(&workdir, task).await?;
    Ok(TaskEnv {
        checkout_dir: dir.clone(),
        dir,
        workdir,
        branch,
        base_commit,
        repo: checkout,
        continuation,
    })
}

/// The task id in a work dir path this daemon reports (`…/tasks/<id>/work`).
pub fn prior_task_id(prior_work_dir: &str) -> Option<String> {
    let p = Path::new(prior_work_dir);
    if !p.is_absolute() || p.file_name()? != "work" {
        return None;
    }
    let task_dir = p.parent()?;
    if task_dir.parent()?.file_name()? != "tasks" {
        return None;
    }
    let id = task_dir.file_name()?.to_str()?;
    valid_task_id(id).then(|| id.to_string())
}

/// Why a reused checkout would be stale: `branch` moved on the remote past the checkout's
/// `head` (someone pushed to it since the previous run). The mirror is fetched first;
/// the remote tip is then looked for among `head`'s ancestors in the mirror (which holds
/// every run's commits it published) or, for a run whose commits never left the checkout,
/// in `workdir` (a read of objects only: no hook, filter or fsmonitor runs).
async fn remote_moved(
    cache: &RepoCache,
    repo: &RepoCheckout,
    workdir: &Path,
    branch: &str,
    head: &str,
) -> Result<Option<String>, EnvError> {
    if !repo.mirror.exists() {
        return Ok(Some(format!(
            "the daemon's mirror of {} is gone, so the previous checkout cannot be checked against the remote",
            repo.url
        )));
    }
    let repo_lock = cache.lock_for(&repo.mirror);
    let _held = repo_lock.lock().await;
    git_with(
        Some(&repo.mirror),
        &local_protocols(repo.allow_local),
        &["fetch", "--quiet", "--prune", "origin"],
    )
    .await?;
    let remote = format!("refs/remotes/origin/{branch}");
    let Ok(tip) = git(
        Some(&repo.mirror),
        &["rev-parse", "--verify", "-q", &remote],
    )
    .await
    else {
        return Ok(None); // never pushed: the checkout is the only copy
    };
    let behind = ["merge-base", "--is-ancestor", tip.as_str(), head];
    if tip == head
        || git(Some(&repo.mirror), &behind).await.is_ok()
        || git(Some(workdir), &behind).await.is_ok()
    {
        return Ok(None);
    }
    Ok(Some(format!(
        "branch {branch} moved on the remote since the previous run (now {}), so its checkout is stale",
        &tip[..tip.len().min(12)]
    )))
}

/// Whether a checkout's `origin` is the task's repository (both none, or the same URL).
async fn same_origin(workdir: &Path, task: &Task) -> bool {
    let origin = git(Some(workdir), &["config", "--get", "remote.origin.url"])
        .await
        .ok()
        .filter(|u| !u.is_empty());
    origin.as_deref() == task.repos.first().map(|r| r.url.as_str())
}

/// A previous run's checkout a follow-up may continue in.
struct Prior {
    dir: PathBuf,
    workdir: PathBuf,
}

/// The branch a working copy's `HEAD` names, read from the file (no git runs in a
/// directory an agent had for itself until it must).
fn head_branch(workdir: &Path) -> Option<String> {
    let git_dir = workdir.join(".git");
    if !std::fs::symlink_metadata(&git_dir).ok()?.is_dir() {
        return None;
    }
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    head.trim()
        .strip_prefix("ref: refs/heads/")
        .map(str::to_string)
}

/// Whether the previous run's checkout (`task.prior_work_dir`) can be continued in: it
/// is one of this daemon's task checkouts (under `<data_dir>/tasks`, no symlinks), still
/// exists, is on `branch`, and no other run uses it. `Err` says why not.
async fn reuse(
    data_dir: &Path,
    task: &Task,
    branch: &str,
    claim: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Prior, String> {
    let named = &task.prior_work_dir;
    let Some(id) = prior_task_id(named) else {
        return Err(format!(
            "the previous run's work dir {named} is not a checkout of this daemon"
        ));
    };
    let dir = data_dir.join("tasks").join(&id);
    let workdir = dir.join("work");
    if Path::new(named) != workdir {
        return Err(format!(
            "the previous run's work dir {named} is not under this daemon's data dir"
        ));
    }
    let is_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    if !is_dir(&dir) || !is_dir(&workdir) {
        return Err(format!(
            "the previous run's checkout {named} no longer exists on this machine"
        ));
    }
    match head_branch(&workdir) {
        Some(b) if b == branch => {}
        Some(b) => {
            return Err(format!(
                "the previous run's checkout is on branch {b}, the task continues on {branch}"
            ));
        }
        None => {
            return Err(format!(
                "the previous run's checkout {named} is not on a branch"
            ));
        }
    }
    if !claim(&id) {
        return Err(format!(
            "another run is using the previous run's checkout {named}"
        ));
    }
    Ok(Prior { dir, workdir })
}

/// Writes the agent's instructions (`CLAUDE.md`, `AGENTS.md`, `GEMINI.md`) and skills
/// (`.claude/skills/<name>/…`), and excludes them from commits.
async fn write_instructions(workdir: &Path, task: &Task) -> Result<(), EnvError> {
    let mut written = Vec::new();
    if !task.agent.instructions.trim().is_empty() {
        for name in ["CLAUDE.md", "AGENTS.md", "GEMINI.md"] {
            // A file the repository already has (or a symlink it ships, dangling or
            // not) is the repository's: never written through.
            if std::fs::symlink_metadata(workdir.join(name)).is_err() {
                write_under(workdir, Path::new(name), task.agent.instructions.as_bytes())?;
                written.push(name.to_string());
            }
        }
    }
    for skill in &task.agent.skills {
        let sdir = safe_join(Path::new(".claude/skills"), &skill.name)?;
        write_under(workdir, &sdir.join("SKILL.md"), skill.content.as_bytes())?;
        for f in &skill.files {
            let p = safe_join(&sdir, &f.path)?;
            write_under(workdir, &p, f.content.as_bytes())?;
        }
    }
    if !task.agent.skills.is_empty() {
        written.push(".claude/skills/".into());
    }
    if !written.is_empty() {
        // In a worktree `.git` is a file: ask git where this working copy's excludes live.
        let exclude = git(Some(workdir), &["rev-parse", "--git-path", "info/exclude"]).await?;
        let exclude = workdir.join(exclude);
        if let Some(parent) = exclude.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(EnvError::io("create git info dir"))?;
        }
        let mut text = tokio::fs::read_to_string(&exclude)
            .await
            .unwrap_or_default();
        for w in written {
            text.push_str(&format!("/{w}\n"));
        }
        tokio::fs::write(&exclude, text)
            .await
            .map_err(EnvError::io("write git excludes"))?;
    }
    Ok(())
}

/// Commits whatever the agent changed in its working copy on the task's branch. Returns
/// whether a commit was made.
///
/// Everything in the work dir, `.git` included, was the agent's to change: it may have
/// replaced `.git` (a rename works even with its config mounted read-only in the
/// sandbox), pointed `commondir` elsewhere, or set filter drivers that `git add` would
/// run. So when the agent was sandboxed, `wrap` is a sandbox for these git runs too (no
/// network, only the work dir writable), and whatever the repository makes git run stays
/// as contained as the agent was.
pub async fn commit_changes(
    env: &TaskEnv,
    message: &str,
    wrap: &[OsString],
) -> Result<bool, EnvError> {
    let dir = Some(env.workdir.as_path());
    let status = run_git(wrap, dir, &[], &["status", "--porcelain"]).await?;
    if status.is_empty() {
        return Ok(false);
    }
    run_git(wrap, dir, &[], &["add", "-A"]).await?;
    run_git(
        wrap,
        dir,
        &[],
        &[
            "-c",
            "user.name=agentd",
            "-c",
            "user.email=agentd@localhost",
            "commit",
            "-q",
            "--no-verify",
            "-m",
            message,
        ],
    )
    .await?;
    Ok(true)
}

/// The tree of an empty repository: the base of a task that started without one.
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// The commit the work dir's `HEAD` points at, through `wrap` (`None`: no commit).
pub async fn head_commit(env: &TaskEnv, wrap: &[OsString]) -> Result<Option<String>, EnvError> {
    let args = ["rev-parse", "--verify", "-q", "HEAD^{commit}"];
    match run_git(wrap, Some(&env.workdir), &[], &args).await {
        Ok(h) if !h.is_empty() => Ok(Some(h)),
        Ok(_) | Err(EnvError::Git { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the run changed, `base_commit..head` (from the empty tree when there was no
/// base), through `wrap`: no external diff or textconv driver runs, and the patch is cut
/// at [`agentd_proto::MAX_PATCH_BYTES`] with a marker.
pub async fn diff(env: &TaskEnv, head: &str, wrap: &[OsString]) -> Result<TaskDiff, EnvError> {
    let base = env.base_commit.as_deref().unwrap_or(EMPTY_TREE);
    let flags = [
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
    ];
    let mut numstat: Vec<&str> = vec!["diff", "--numstat"];
    numstat.extend(flags);
    numstat.extend([base, head, "--"]);
    let stat = run_git(wrap, Some(&env.workdir), &[], &numstat).await?;
    let mut patch_args: Vec<&str> = vec!["diff"];
    patch_args.extend(flags);
    patch_args.extend([base, head, "--"]);
    let patch = run_git(wrap, Some(&env.workdir), &[], &patch_args).await?;
    let mut d = TaskDiff {
        base_commit: env.base_commit.clone().unwrap_or_default(),
        head_commit: head.to_string(),
        ..TaskDiff::default()
    };
    for line in stat.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(a), Some(r), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let file = DiffFile {
            path: path.to_string(),
            additions: a.parse().unwrap_or(0),
            deletions: r.parse().unwrap_or(0),
            binary: a == "-" && r == "-",
        };
        d.additions += file.additions;
        d.deletions += file.deletions;
        d.files.push(file);
    }
    (d.patch, d.truncated) = cap_patch(patch);
    Ok(d)
}

/// Cuts a patch at a line boundary under [`agentd_proto::MAX_PATCH_BYTES`], with a
/// marker saying how much was left out.
pub fn cap_patch(mut patch: String) -> (String, bool) {
    let max = agentd_proto::MAX_PATCH_BYTES - 128;
    if patch.len() <= max {
        if !patch.is_empty() && !patch.ends_with('\n') {
            patch.push('\n');
        }
        return (patch, false);
    }
    let mut cut = max;
    while !patch.is_char_boundary(cut) {
        cut -= 1;
    }
    let cut = patch[..cut].rfind('\n').map_or(cut, |i| i + 1);
    let left = patch.len() - cut;
    patch.truncate(cut);
    patch.push_str(&format!(
        "… [diff truncated: {left} more bytes not shown]\n"
    ));
    (patch, true)
}

/// Writes the commits `base..HEAD` of the work dir into a bundle at `out` (under the
/// ref `HEAD`: a bundle carries refs, not bare ids), through `wrap` (whose layout must
/// make `out`'s directory writable).
pub async fn bundle(env: &TaskEnv, out: &Path, wrap: &[OsString]) -> Result<(), EnvError> {
    let out = out.display().to_string();
    let not_base = env.base_commit.as_ref().map(|b| format!("^{b}"));
    let mut args = vec!["bundle", "create", "-q", &out, "HEAD"];
    if let Some(nb) = &not_base {
        args.push(nb);
    }
    run_git(wrap, Some(&env.workdir), &[], &args)
        .await
        .map(|_| ())
}

/// The mirror ref that holds a task's commits for pushing (kept for retries).
pub fn task_ref(task_id: &str) -> String {
    format!("refs/agentd/tasks/{}", dir_name(task_id))
}

/// Fetches the bundle's `HEAD` into the mirror as [`task_ref`] and checks it is `head`:
/// the mirror's own config only, the bundle is data (its objects are checked).
pub async fn fetch_bundle(
    repo: &RepoCheckout,
    bundle: &Path,
    task_id: &str,
    head: &str,
) -> Result<(), EnvError> {
    let b = bundle.display().to_string();
    let task_ref = task_ref(task_id);
    let refspec = format!("+HEAD:{task_ref}");
    git_with(
        Some(&repo.mirror),
        &[
            "-c",
            "protocol.file.allow=always",
            "-c",
            "transfer.fsckObjects=true",
        ],
        &["fetch", "-q", "--no-tags", "--", &b, &refspec],
    )
    .await?;
    let got = git(Some(&repo.mirror), &["rev-parse", &task_ref]).await?;
    if got != head {
        return Err(EnvError::Git {
            args: format!("fetch {b}"),
            stderr: format!("the bundle's HEAD is {got}, not the run's commit {head}"),
        });
    }
    Ok(())
}

/// Pushes [`task_ref`] from the mirror to `branch` of the repository with this machine's
/// git credentials (the daemon's own environment: ssh agent, credential helpers).
pub async fn push(repo: &RepoCheckout, task_id: &str, branch: &str) -> Result<(), EnvError> {
    let local = local_protocols(repo.allow_local);
    let refspec = format!("{}:refs/heads/{branch}", task_ref(task_id));
    git_with(
        Some(&repo.mirror),
        &local,
        &["push", "-q", "--", &repo.url, &refspec],
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_is_recognised_from_io_errors_and_from_git() {
        let io = |code| EnvError::Io {
            what: "write".into(),
            source: std::io::Error::from_raw_os_error(code),
        };
        assert!(io(28).is_disk_full(), "ENOSPC");
        assert!(io(122).is_disk_full(), "EDQUOT");
        assert!(!io(13).is_disk_full(), "EACCES");
        let git = |stderr: &str| EnvError::Git {
            args: "init".into(),
            stderr: stderr.into(),
        };
        assert!(git("error: copy-fd: write returned: No space left on device").is_disk_full());
        assert!(git("fatal: write error: Disk quota exceeded").is_disk_full());
        assert!(!git("fatal: not a git repository").is_disk_full());
        assert!(!EnvError::RepoNotAllowed("x".into()).is_disk_full());
    }
    use agentd_proto::{Repo, Skill, SkillFile};

    fn task(id: &str) -> Task {
        Task {
            id: id.into(),
            issue_id: "issue-1234abcd".into(),
            ..Task::default()
        }
    }

    fn repos(allowed: &[String], allow_local: bool) -> Repos<'_> {
        Repos {
            workspace: "ws-1",
            allowed,
            allow_local,
        }
    }

    #[test]
    fn no_server_path_escapes() {
        let base = Path::new("/data/tasks/t");
        assert!(safe_join(base, "a/b.md").is_ok());
        for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
            assert!(safe_join(base, bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn refuses_repos_outside_the_allow_list_and_bad_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = task("t1");
        t.repos = vec![Repo {
            url: "https://evil.example/x.git".into(),
        }];
        let err = prepare(
            dir.path(),
            &RepoCache::default(),
            &t,
            repos(&[], false),
            &|_| true,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, EnvError::RepoNotAllowed(_)), "{err}");
        let err = prepare(
            dir.path(),
            &RepoCache::default(),
            &task("../up"),
            repos(&[], false),
            &|_| true,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, EnvError::BadTaskId(_)), "{err}");
    }

    #[tokio::test]
    async fn task_repos_from_a_per_workspace_mirror_commit_on_the_issue_branch() {
        let dir = tempfile::tempdir().unwrap();
        // An upstream repository with one commit.
        let up = dir.path().join("upstream");
        std::fs::create_dir_all(&up).unwrap();
        git(Some(&up), &["init", "-q", "-b", "main"]).await.unwrap();
        std::fs::write(up.join("README.md"), "hello\n").unwrap();
        git(Some(&up), &["add", "."]).await.unwrap();
        git(
            Some(&up),
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "init",
            ],
        )
        .await
        .unwrap();
        let url = up.display().to_string();
        let data = dir.path().join("data");
        let cache = RepoCache::default();
        let mut tasks = Vec::new();
        for id in ["task-a", "task-b", "task-c"] {
            let mut t = task(id);
            t.repos = vec![Repo { url: url.clone() }];
            t.agent.instructions = "Be terse.".into();
            t.agent.skills = vec![Skill {
                name: "lint".into(),
                content: "run the linter".into(),
                files: vec![SkillFile {
                    path: "scripts/lint.sh".into(),
                    content: "true".into(),
                }],
            }];
            tasks.push(t);
        }
        // Concurrent tasks share one mirror without corrupting it.
        let envs = futures_util::future::join_all(tasks.iter().map(|t| {
            prepare(
                &data,
                &cache,
                t,
                repos(std::slice::from_ref(&url), true),
                &|_| true,
            )
        }))
        .await;
        let envs: Vec<TaskEnv> = envs.into_iter().map(Result::unwrap).collect();
        for env in &envs {
            assert!(env.workdir.join("README.md").exists());
            assert!(env.workdir.join("CLAUDE.md").exists());
            assert!(
                env.workdir
                    .join(".claude/skills/lint/scripts/lint.sh")
                    .exists()
            );
            std::fs::write(env.workdir.join("out.txt"), "done\n").unwrap();
            assert!(commit_changes(env, "agent work", &[]).await.unwrap());
            let branch = git(Some(&env.workdir), &["rev-parse", "--abbrev-ref", "HEAD"])
                .await
                .unwrap();
            assert_eq!(branch, env.branch);
            let files = git(
                Some(&env.workdir),
                &["show", "--name-only", "--format=", "HEAD"],
            )
            .await
            .unwrap();
            assert_eq!(
                files, "out.txt",
                "instructions and skills must not be committed"
            );
        }
        // One mirror for the workspace; each task's repository is its own (no
        // alternates into the mirror, origin is the real URL).
        assert_eq!(
            std::fs::read_dir(data.join("repos/ws-1")).unwrap().count(),
            1
        );
        for env in &envs {
            assert!(!env.workdir.join(".git/objects/info/alternates").exists());
            let origin = git(Some(&env.workdir), &["remote", "get-url", "origin"])
                .await
                .unwrap();
            assert_eq!(origin, url);
        }
        // Another workspace never shares that mirror.
        let other = Repos {
            workspace: "ws-2",
            allowed: std::slice::from_ref(&url),
            allow_local: true,
        };
        prepare(
            &data,
            &cache,
            &task("task-d").tap_repo(&url),
            other,
            &|_| true,
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read_dir(data.join("repos/ws-2")).unwrap().count(),
            1
        );
        // Without allow_local a local path is refused before git runs.
        let err = prepare(
            &data,
            &cache,
            &task("task-e").tap_repo(&url),
            repos(std::slice::from_ref(&url), false),
            &|_| true,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, EnvError::RepoNotAllowed(ref m) if m.contains("allow_local_repos")),
            "{err}"
        );
    }

    async fn upstream(dir: &Path) -> String {
        let up = dir.join("upstream");
        std::fs::create_dir_all(&up).unwrap();
        git(Some(&up), &["init", "-q", "-b", "main"]).await.unwrap();
        std::fs::write(up.join("README.md"), "hello\n").unwrap();
        git(Some(&up), &["add", "."]).await.unwrap();
        let id = ["-c", "user.name=t", "-c", "user.email=t@t"];
        let mut commit = id.to_vec();
        commit.extend(["commit", "-qm", "init"]);
        git(Some(&up), &commit).await.unwrap();
        up.display().to_string()
    }

    #[tokio::test]
    async fn a_follow_up_continues_in_the_previous_checkout_or_on_its_branch() {
        let dir = tempfile::tempdir().unwrap();
        let url = upstream(dir.path()).await;
        let data = dir.path().join("data");
        let cache = RepoCache::default();
        let allowed = [url.clone()];
        let yes = |_: &str| true;
        let first = prepare(
            &data,
            &cache,
            &task("task-1").tap_repo(&url),
            repos(&allowed, true),
            &yes,
        )
        .await
        .unwrap();
        assert_eq!(first.continuation, Continuation::NotFollowUp);
        std::fs::write(first.workdir.join("work.txt"), "earlier\n").unwrap();
        assert!(commit_changes(&first, "earlier work", &[]).await.unwrap());

        // The previous checkout exists, on the task's branch: the follow-up runs in it.
        let mut follow = task("task-2").tap_repo(&url);
        follow.prior_work_dir = first.workdir.display().to_string();
        let started = std::time::Instant::now();
        let env = prepare(&data, &cache, &follow, repos(&allowed, true), &yes)
            .await
            .unwrap();
        let reuse_took = started.elapsed();
        assert_eq!(env.continuation, Continuation::Reused);
        assert_eq!(env.workdir, first.workdir);
        assert_eq!(env.checkout_dir, first.dir);
        assert_eq!(env.branch, first.branch);
        assert_eq!(
            env.dir,
            data.join("tasks/task-2"),
            "its own dir for reports"
        );
        assert!(
            env.workdir.join("work.txt").exists(),
            "sees the earlier change"
        );
        let head = git(Some(&env.workdir), &["rev-parse", "HEAD"])
            .await
            .unwrap();
        assert_eq!(env.base_commit.as_deref(), Some(head.as_str()));

        // Another run holds it: a fresh checkout, with why.
        let started = std::time::Instant::now();
        let busy = prepare(&data, &cache, &follow, repos(&allowed, true), &|_| false)
            .await
            .unwrap();
        eprintln!(
            "follow-up prepare: reused checkout {reuse_took:?}, fresh checkout {:?}",
            started.elapsed()
        );
        assert!(
            matches!(&busy.continuation, Continuation::Fresh(why) if why.contains("another run")),
            "{:?}",
            busy.continuation
        );
        assert_eq!(busy.branch, first.branch);

        // The server asks for another branch: fresh, on that branch.
        let mut other = follow.clone();
        other.branch = Some("feature/x".into());
        let env = prepare(&data, &cache, &other, repos(&allowed, true), &yes)
            .await
            .unwrap();
        assert!(matches!(&env.continuation, Continuation::Fresh(why) if why.contains("feature/x")));
        assert_eq!(env.branch, "feature/x");

        // A path that is not one of this daemon's checkouts is never used.
        let mut foreign = follow.clone();
        foreign.prior_work_dir = dir.path().display().to_string();
        let env = prepare(&data, &cache, &foreign, repos(&allowed, true), &yes)
            .await
            .unwrap();
        assert!(matches!(env.continuation, Continuation::Fresh(_)));
        assert!(!env.workdir.join("work.txt").exists());

        // The earlier run's branch was pushed; then its checkout was removed: the
        // follow-up gets a fresh checkout of that branch, with the earlier work.
        let push = format!("HEAD:refs/heads/{}", first.branch);
        git_with(
            Some(&first.workdir),
            &["-c", "protocol.file.allow=always"],
            &["push", "-q", &url, &push],
        )
        .await
        .unwrap();
        std::fs::remove_dir_all(&first.dir).unwrap();
        let mut later = task("task-3").tap_repo(&url);
        later.prior_work_dir = first.workdir.display().to_string();
        let env = prepare(&data, &cache, &later, repos(&allowed, true), &yes)
            .await
            .unwrap();
        assert!(
            matches!(&env.continuation, Continuation::Fresh(why) if why.contains("no longer exists")),
            "{:?}",
            env.continuation
        );
        assert_eq!(env.branch, first.branch, "the task's branch, not a new one");
        assert_eq!(env.workdir, data.join("tasks/task-3/work"));
        assert!(
            env.workdir.join("work.txt").exists(),
            "the branch's earlier work"
        );

        // Work of its own, not pushed (the remote branch is behind it): still reused.
        std::fs::write(env.workdir.join("more.txt"), "more\n").unwrap();
        assert!(commit_changes(&env, "more work", &[]).await.unwrap());
        let mut next = task("task-4").tap_repo(&url);
        next.prior_work_dir = env.workdir.display().to_string();
        let reused = prepare(&data, &cache, &next, repos(&allowed, true), &yes)
            .await
            .unwrap();
        assert_eq!(reused.continuation, Continuation::Reused);
        assert_eq!(reused.workdir, env.workdir);

        // Someone pushed to the branch since: the checkout is stale, a fresh checkout of
        // the branch has their commit.
        let other = dir.path().join("other");
        let file = ["-c", "protocol.file.allow=always"];
        let o = other.display().to_string();
        git_with(None, &file, &["clone", "-q", "-b", &first.branch, &url, &o])
            .await
            .unwrap();
        std::fs::write(other.join("theirs.txt"), "theirs\n").unwrap();
        git(Some(&other), &["add", "."]).await.unwrap();
        let commit = [
            "-c",
            "user.name=o",
            "-c",
            "user.email=o@o",
            "commit",
            "-qm",
            "a reviewer's fix",
        ];
        git(Some(&other), &commit).await.unwrap();
        git_with(
            Some(&other),
            &file,
            &["push", "-q", "origin", &first.branch],
        )
        .await
        .unwrap();
        let mut late = task("task-5").tap_repo(&url);
        late.prior_work_dir = env.workdir.display().to_string();
        let fresh = prepare(&data, &cache, &late, repos(&allowed, true), &yes)
            .await
            .unwrap();
        assert!(
            matches!(&fresh.continuation, Continuation::Fresh(why) if why.contains("moved on the remote")),
            "{:?}",
            fresh.continuation
        );
        assert_eq!(fresh.branch, first.branch);
        assert!(
            fresh.workdir.join("theirs.txt").exists(),
            "the remote's new commit"
        );
    }

    trait TapRepo {
        fn tap_repo(self, url: &str) -> Task;
    }
    impl TapRepo for Task {
        fn tap_repo(mut self, url: &str) -> Task {
            self.repos = vec![Repo { url: url.into() }];
            self
        }
    }

    #[test]
    fn urls_are_classified_and_option_like_ones_refused() {
        for ok in [
            "https://github.com/a/b.git",
            "ssh://git@host:22/a/b",
            "git@github.com:a/b.git",
        ] {
            assert_eq!(classify_url(ok), Ok(RepoUrl::Remote), "{ok}");
        }
        assert_eq!(classify_url("http://h/a.git"), Ok(RepoUrl::PlainHttp));
        for local in ["file:///srv/a.git", "/srv/a.git"] {
            assert_eq!(classify_url(local), Ok(RepoUrl::Local), "{local}");
        }
        for bad in [
            "",
            "-uoops",
            "ext::sh -c id",
            "fd::3",
            "git://h/a",
            "a b",
            "relative/path",
            "h:",
        ] {
            assert!(classify_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_never_follow_a_symlink_out_of_the_work_dir() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // A repository that ships `.claude -> ../outside` and a dangling `x.md` link.
        std::os::unix::fs::symlink(&outside, work.join(".claude")).unwrap();
        std::os::unix::fs::symlink(outside.join("x.md"), work.join("x.md")).unwrap();
        let err = write_under(&work, Path::new(".claude/skills/s/SKILL.md"), b"x").unwrap_err();
        assert!(matches!(err, EnvError::PathEscape(_)), "{err}");
        let err = write_under(&work, Path::new("x.md"), b"x").unwrap_err();
        assert!(matches!(err, EnvError::PathEscape(_)), "{err}");
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
        write_under(&work, Path::new("a/b/c.md"), b"ok").unwrap();
        assert_eq!(std::fs::read(work.join("a/b/c.md")).unwrap(), b"ok");
    }
}
