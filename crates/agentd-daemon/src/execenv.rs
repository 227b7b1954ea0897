//! Execution environments: a directory per task under `<data_dir>/tasks/<task_id>`, a git
//! working copy in it on a branch named after the issue, the agent's instructions and
//! skills written where the provider reads them, and the agent's environment.
//!
//! Repositories come from a cache of bare mirrors (`<data_dir>/repos/`), one per URL,
//! fetched under a per-repository lock so concurrent tasks never corrupt a mirror; each
//! task gets a `git worktree` of it. Git is driven through its CLI (it refuses to clobber
//! work and is what users debug with). A URL outside the workspace's allow-list is refused,
//! and no path from the server may escape the task directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use agentd_proto::Task;

use crate::fsutil::lock;

/// Environment keys an agent's `custom_env` may not set: they would change what runs,
/// where it writes, or whose identity it uses.
pub const BLOCKED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "SHELL",
    "USER",
    "LOGNAME",
    "IFS",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "NODE_OPTIONS",
    "BASH_ENV",
    "ENV",
    "GIT_DIR",
    "GIT_WORK_TREE",
];

/// Prefixes of blocked environment keys.
pub const BLOCKED_ENV_PREFIXES: &[&str] = &["LD_", "DYLD_", "AGENTD_"];

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
}

/// Bare mirrors by URL, each behind its own lock.
///
/// **Invariant:** the map only hands out locks; git runs while holding a repository's
/// async lock, never the map's std mutex.
#[derive(Default)]
pub struct RepoCache {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RepoCache {
    fn lock_for(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(lock(&self.locks).entry(url.to_string()).or_default())
    }
}

/// The longest any one git command may run (a clone of a large repository over a slow
/// link included); past it git is killed and the task fails with `environment_error`.
pub const GIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

async fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, EnvError> {
    let mut cmd = tokio::process::Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
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

/// The branch a task works on: named after the issue (and the task, so two tasks of one
/// issue never fight over a checked-out branch).
pub fn branch_name(task: &Task) -> String {
    let issue = if task.issue_id.is_empty() {
        "chat".to_string()
    } else {
        short(&task.issue_id)
    };
    format!("agentd/issue-{issue}-{}", short(&task.id))
}

/// Prepares the task's directory and working copy. `allowed` is the workspace's repo
/// allow-list.
pub async fn prepare(
    data_dir: &Path,
    cache: &RepoCache,
    task: &Task,
    allowed: &[String],
) -> Result<TaskEnv, EnvError> {
    if task.id.is_empty()
        || !task
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(EnvError::BadTaskId(task.id.clone()));
    }
    for repo in &task.repos {
        if !allowed.iter().any(|a| a == &repo.url) {
            return Err(EnvError::RepoNotAllowed(repo.url.clone()));
        }
    }
    let dir = data_dir.join("tasks").join(&task.id);
    let workdir = dir.join("work");
    let branch = branch_name(task);
    if workdir.exists() {
        // A retried claim of the same task (after a daemon restart): start clean.
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(EnvError::io(format!("create {}", dir.display())))?;
    match task.repos.first() {
        Some(repo) => {
            let mirrors = data_dir.join("repos");
            tokio::fs::create_dir_all(&mirrors)
                .await
                .map_err(EnvError::io("create repo cache"))?;
            let mirror = mirrors.join(mirror_name(&repo.url));
            let repo_lock = cache.lock_for(&repo.url);
            let _held = repo_lock.lock().await;
            if !mirror.exists() {
                let m = mirror.display().to_string();
                git(None, &["clone", "--bare", "--quiet", &repo.url, &m]).await?;
                // Remote branches go to refs/remotes/origin/*, so fetching never touches
                // the local branches that task worktrees have checked out.
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
            git(Some(&mirror), &["fetch", "--quiet", "--prune", "origin"]).await?;
            let default = git(Some(&mirror), &["symbolic-ref", "--short", "HEAD"]).await?;
            let base = format!("refs/remotes/origin/{default}");
            let w = workdir.display().to_string();
            git(Some(&mirror), &["worktree", "prune"]).await?;
            git(
                Some(&mirror),
                &["worktree", "add", "--quiet", "-B", &branch, &w, &base],
            )
            .await?;
        }
        None => {
            tokio::fs::create_dir_all(&workdir)
                .await
                .map_err(EnvError::io("create work dir"))?;
            git(Some(&workdir), &["init", "-q", "-b", &branch]).await?;
        }
    }
    write_instructions(&workdir, task).await?;
    Ok(TaskEnv {
        dir,
        workdir,
        branch,
    })
}

/// Writes the agent's instructions (`CLAUDE.md`, `AGENTS.md`, `GEMINI.md`) and skills
/// (`.claude/skills/<name>/…`), and excludes them from commits.
async fn write_instructions(workdir: &Path, task: &Task) -> Result<(), EnvError> {
    let mut written = Vec::new();
    if !task.agent.instructions.trim().is_empty() {
        for name in ["CLAUDE.md", "AGENTS.md", "GEMINI.md"] {
            let p = workdir.join(name);
            if !p.exists() {
                tokio::fs::write(&p, &task.agent.instructions)
                    .await
                    .map_err(EnvError::io(format!("write {name}")))?;
                written.push(name.to_string());
            }
        }
    }
    let skills_dir = workdir.join(".claude").join("skills");
    for skill in &task.agent.skills {
        let sdir = safe_join(&skills_dir, &skill.name)?;
        tokio::fs::create_dir_all(&sdir)
            .await
            .map_err(EnvError::io("create skill dir"))?;
        tokio::fs::write(sdir.join("SKILL.md"), &skill.content)
            .await
            .map_err(EnvError::io("write skill"))?;
        for f in &skill.files {
            let p = safe_join(&sdir, &f.path)?;
            if let Some(parent) = p.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(EnvError::io("create skill file dir"))?;
            }
            tokio::fs::write(&p, &f.content)
                .await
                .map_err(EnvError::io("write skill file"))?;
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

/// The agent's `custom_env` without blocked keys (each refusal logged).
pub fn filter_env(custom: &BTreeMap<String, String>) -> Vec<(String, String)> {
    custom
        .iter()
        .filter(|(k, _)| {
            let blocked = k.is_empty()
                || k.contains('=')
                || BLOCKED_ENV.contains(&k.as_str())
                || BLOCKED_ENV_PREFIXES.iter().any(|p| k.starts_with(p));
            if blocked {
                tracing::warn!(key = %k, "refusing agent custom_env key");
            }
            !blocked
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Commits whatever the agent changed in its working copy on the task's branch. Returns
/// whether a commit was made.
pub async fn commit_changes(env: &TaskEnv, message: &str) -> Result<bool, EnvError> {
    let status = git(Some(&env.workdir), &["status", "--porcelain"]).await?;
    if status.is_empty() {
        return Ok(false);
    }
    git(Some(&env.workdir), &["add", "-A"]).await?;
    git(
        Some(&env.workdir),
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

    #[test]
    fn no_server_path_escapes() {
        let base = Path::new("/data/tasks/t");
        assert!(safe_join(base, "a/b.md").is_ok());
        for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
            assert!(safe_join(base, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blocks_dangerous_env() {
        let env: BTreeMap<String, String> = [
            ("PATH", "/evil"),
            ("LD_PRELOAD", "x.so"),
            ("AGENTD_TOKEN", "stolen"),
            ("FOO", "bar"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            filter_env(&env),
            vec![("FOO".to_string(), "bar".to_string())]
        );
    }

    #[tokio::test]
    async fn refuses_repos_outside_the_allow_list_and_bad_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = task("t1");
        t.repos = vec![Repo {
            url: "https://evil.example/x.git".into(),
        }];
        let err = prepare(dir.path(), &RepoCache::default(), &t, &[])
            .await
            .unwrap_err();
        assert!(matches!(err, EnvError::RepoNotAllowed(_)), "{err}");
        let err = prepare(dir.path(), &RepoCache::default(), &task("../up"), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, EnvError::BadTaskId(_)), "{err}");
    }

    #[tokio::test]
    async fn worktrees_from_a_shared_mirror_commit_on_the_issue_branch() {
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
        let envs = futures_util::future::join_all(
            tasks
                .iter()
                .map(|t| prepare(&data, &cache, t, std::slice::from_ref(&url))),
        )
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
            assert!(commit_changes(env, "agent work").await.unwrap());
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
        assert_eq!(std::fs::read_dir(data.join("repos")).unwrap().count(), 1);
    }
}
