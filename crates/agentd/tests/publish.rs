//! The work reaches the repository (issue 12, daemon side): the real `agentd daemon`
//! against the fake control plane, a real bare repository as the workspace's remote, and
//! a stand-in `claude` that changes a file. When the run ends the daemon reports the diff
//! and pushes the task's branch with the machine's own git; a remote that refuses the
//! push (a hook, a non-fast-forward) ends the task as `push_failed` with git's message,
//! and `daemon:task_push` pushes the kept commit again.

mod common;

use std::path::PathBuf;
use std::process::Command;

use agentd_proto::ws::{TaskAvailable, TaskPush, WsMessage};
use agentd_proto::{FailureReason, Repo, Task};
use agentd_testkit::fake_server::FakeServer;
use common::{Proc, bare_remote, bwrap_works, eventually, git, spawn_daemon_with, stand_in_claude};

const TOKEN: &str = "publish-test-daemon-token";
const BRANCH: &str = "agentd/issue-issue1-task1";

struct Setup {
    fake: FakeServer,
    dir: tempfile::TempDir,
    remote: PathBuf,
    /// The URL the workspace names the repository by.
    url: String,
    _daemon: Proc,
}

impl Setup {
    /// A daemon whose stand-in agent runs `body` in a checkout of a fresh bare remote.
    async fn start(body: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let remote = bare_remote(dir.path());
        let url = remote.display().to_string();
        Setup::on(dir, remote, url, body).await
    }

    /// [`Setup::start`] with the bare remote `remote` in `dir`, named `url`.
    async fn on(dir: tempfile::TempDir, remote: PathBuf, url: String, body: &str) -> Setup {
        let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
        fake.set_repos("ws-1", &[&url]);
        let bin = stand_in_claude(
            dir.path(),
            &format!(
                "{body}\necho '{{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s-1\"}}'\necho '{{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"done\",\"session_id\":\"s-1\"}}'"
            ),
        );
        let daemon = spawn_daemon_with(
            dir.path(),
            &bin,
            &fake.url,
            TOKEN,
            "allow_local_repos = true\n",
            &[],
            &["--heartbeat-interval", "1s", "--poll-interval", "1s"],
        );
        Setup {
            fake,
            dir,
            remote,
            url,
            _daemon: daemon,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    async fn run_task(&self) {
        let rid = eventually(30, "the runtime registered", || {
            self.fake.runtime_id_of("claude")
        })
        .await;
        self.fake.queue_task(
            &rid,
            Task {
                id: "task1".into(),
                runtime_id: rid.clone(),
                issue_id: "issue1".into(),
                workspace_id: "ws-1".into(),
                issue_title: "Add a file".into(),
                task_token: "task-token".into(),
                repos: vec![Repo {
                    url: self.url.clone(),
                }],
                ..Task::default()
            },
        );
        self.fake.push(&WsMessage::TaskAvailable(TaskAvailable {
            runtime_id: rid,
            task_id: Some("task1".into()),
        }));
        eventually(60, "the task's final report", || {
            (!self.fake.completed().is_empty() || !self.fake.fail_requests().is_empty())
                .then_some(())
        })
        .await;
    }

    fn remote_branch(&self) -> Option<String> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&self.remote)
            .args([
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{BRANCH}"),
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_branch_is_pushed_and_the_diff_reported() {
    if !bwrap_works() {
        return;
    }
    let s = Setup::start("printf 'one\\ntwo\\n' > hello.txt\necho bye >> README.md").await;
    s.run_task().await;
    let (_, done) = s
        .fake
        .completed()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("not completed: {:?}\n{}", s.fake.fail_requests(), s.log()));
    let pushed = done.pushed.expect("pushed");
    assert_eq!(pushed.branch, BRANCH);
    assert_eq!(pushed.remote_url, s.remote.display().to_string());
    assert_eq!(s.remote_branch().as_deref(), Some(pushed.commit.as_str()));
    // The pushed commit holds the change, on top of the remote's main.
    let files = git(
        &s.remote,
        &["show", "--name-only", "--format=", &pushed.commit],
    );
    assert!(
        files.contains("hello.txt") && files.contains("README.md"),
        "{files}"
    );
    let main = git(&s.remote, &["rev-parse", "main"]);
    assert_eq!(
        git(&s.remote, &["rev-parse", &format!("{}^", pushed.commit)]),
        main
    );

    let diff = done.diff.expect("diff");
    assert_eq!(diff.base_commit, main);
    assert_eq!(diff.head_commit, pushed.commit);
    assert_eq!((diff.additions, diff.deletions), (3, 0), "{diff:#?}");
    let paths: Vec<&str> = diff.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["README.md", "hello.txt"]);
    assert!(
        diff.patch.contains("+two") && diff.patch.contains("+bye"),
        "{}",
        diff.patch
    );
    assert!(!diff.truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_push_is_push_failed_with_gits_message_and_a_retry_pushes_it() {
    if !bwrap_works() {
        return;
    }
    let s = Setup::start("echo change > change.txt").await;
    // The remote refuses every push for now.
    let hook = s.remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'refused: the repository is frozen' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    s.run_task().await;
    let (_, failed) = s
        .fake
        .fail_requests()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("not failed: {:?}\n{}", s.fake.completed(), s.log()));
    assert_eq!(
        failed.failure_reason,
        Some(FailureReason::PushFailed),
        "{failed:#?}"
    );
    assert!(
        failed.error.contains("the repository is frozen"),
        "{}",
        failed.error
    );
    assert_eq!(failed.branch_name.as_deref(), Some(BRANCH));
    let diff = failed
        .diff
        .expect("the diff of the work that was not pushed");
    assert_eq!(diff.files.len(), 1);
    assert_eq!(s.remote_branch(), None, "nothing was pushed");

    // The remote thaws; `daemon:task_push` pushes the kept commit.
    std::fs::remove_file(&hook).unwrap();
    s.fake.push(&WsMessage::TaskPush(TaskPush {
        task_id: "task1".into(),
        runtime_id: None,
    }));
    let (_, req) = eventually(30, "the retried push reported", || {
        s.fake.pushed().into_iter().next()
    })
    .await;
    assert_eq!(req.pushed.branch, BRANCH);
    assert_eq!(req.pushed.commit, diff.head_commit);
    assert_eq!(
        s.remote_branch().as_deref(),
        Some(diff.head_commit.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_fast_forward_push_is_push_failed() {
    if !bwrap_works() {
        return;
    }
    let s = Setup::start("echo mine > mine.txt").await;
    // Someone else already has a different history on the task's branch.
    let other = s.dir.path().join("other");
    git(
        s.dir.path(),
        &[
            "clone",
            "-q",
            s.remote.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    std::fs::write(other.join("theirs.txt"), "theirs\n").unwrap();
    git(&other, &["add", "."]);
    git(
        &other,
        &[
            "-c",
            "user.name=o",
            "-c",
            "user.email=o@o",
            "commit",
            "-qm",
            "theirs",
        ],
    );
    git(
        &other,
        &["push", "-q", "origin", &format!("HEAD:refs/heads/{BRANCH}")],
    );
    let theirs = s.remote_branch().expect("their branch");

    s.run_task().await;
    let (_, failed) = s
        .fake
        .fail_requests()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("not failed: {:?}\n{}", s.fake.completed(), s.log()));
    assert_eq!(failed.failure_reason, Some(FailureReason::PushFailed));
    assert!(
        failed.error.contains("rejected") || failed.error.contains("non-fast-forward"),
        "{}",
        failed.error
    );
    assert_eq!(s.remote_branch(), Some(theirs), "their work is untouched");
}

/// The local flow: `agentd up` run inside your repository makes it the workspace's repo,
/// and an assigned issue's branch lands back in it (`git branch` shows it, holding the
/// change), while your checkout is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_inside_a_repository_lands_the_tasks_branch_in_it() {
    use std::io::{BufRead, BufReader};
    if !bwrap_works() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("myproject");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("src/lib.rs"), "// my project\n").unwrap();
    git(&repo, &["add", "."]);
    git(
        &repo,
        &[
            "-c",
            "user.name=me",
            "-c",
            "user.email=me@me",
            "commit",
            "-qm",
            "init",
        ],
    );
    let bin = stand_in_claude(
        dir.path(),
        "echo 'fn added() {}' >> src/lib.rs\necho '{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s-1\"}'\necho '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"added a function\",\"session_id\":\"s-1\"}'",
    );
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    let mut up = Proc(
        Command::new(common::BIN)
            .args(["up", "--json", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .current_dir(repo.join("src"))
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HOME", dir.path().join("home"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AGENTD_TOKEN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("up.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(up.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).expect(&line);
    assert_eq!(info["repo"], repo.display().to_string(), "{info}");
    let url = info["url"].as_str().unwrap().to_string();
    let ws = info["workspace_id"].as_str().unwrap().to_string();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("data/up.json")).unwrap())
            .unwrap();
    let token = state["token"].as_str().unwrap().to_string();

    let rid = common::online_runtime(&url, &token, &ws, "claude", 30).await;
    let (_agent, issue) =
        common::assign_new_issue(&url, &token, &ws, &rid, "bot", "Add a function");
    let shown = eventually(60, "the issue reaches in_review", || {
        let v = common::cli(&url, &token, &["issue", "show", &issue]);
        (v["issue"]["status"] == "in_review").then_some(v)
    })
    .await;
    drop(up);
    let task = &shown["tasks"][0];
    assert_eq!(task["status"], "completed", "{shown:#}");
    let branch = task["branch_name"].as_str().expect("branch").to_string();
    // Your repository has the branch, holding the change on top of your main.
    let branches = git(&repo, &["branch", "--list", "agentd/*"]);
    assert!(branches.contains(&branch), "{branches}");
    let file = git(&repo, &["show", &format!("{branch}:src/lib.rs")]);
    assert!(file.contains("fn added() {}"), "{file}");
    assert_eq!(
        git(&repo, &["rev-parse", &format!("{branch}^")]),
        git(&repo, &["rev-parse", "main"])
    );
    // Your checkout is as you left it.
    assert_eq!(git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]), "main");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
}

/// A smart-HTTP git server for `dir` (a bare repository) on loopback that serves fetches
/// and answers every push with 401, as a host does for a machine without push rights.
async fn http_remote_refusing_pushes(dir: PathBuf) -> String {
    use axum::body::Bytes;
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use std::collections::HashMap;
    use std::io::Write;

    fn pkt(line: &str) -> String {
        format!("{:04x}{line}", line.len() + 4)
    }
    async fn refs(
        State(dir): State<PathBuf>,
        Query(q): Query<HashMap<String, String>>,
    ) -> axum::response::Response {
        let service = q.get("service").cloned().unwrap_or_default();
        if service != "git-upload-pack" {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"widgets\"")],
                "push access needs credentials",
            )
                .into_response();
        }
        let out = Command::new("git")
            .args(["upload-pack", "--stateless-rpc", "--advertise-refs"])
            .arg(&dir)
            .output()
            .expect("git upload-pack");
        let mut body = format!("{}0000", pkt("# service=git-upload-pack\n")).into_bytes();
        body.extend(out.stdout);
        (
            [(
                header::CONTENT_TYPE,
                "application/x-git-upload-pack-advertisement",
            )],
            body,
        )
            .into_response()
    }
    async fn upload(
        State(dir): State<PathBuf>,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl IntoResponse {
        assert!(
            headers.get(header::CONTENT_ENCODING).is_none(),
            "small test repos send plain bodies"
        );
        let mut child = Command::new("git")
            .args(["upload-pack", "--stateless-rpc"])
            .arg(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("git upload-pack");
        child.stdin.take().unwrap().write_all(&body).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            [(header::CONTENT_TYPE, "application/x-git-upload-pack-result")],
            out.stdout,
        )
    }
    async fn refuse() -> impl IntoResponse {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"widgets\"")],
            "push access needs credentials",
        )
    }
    let app = axum::Router::new()
        .route("/widgets.git/info/refs", get(refs))
        .route("/widgets.git/git-upload-pack", post(upload))
        .route("/widgets.git/git-receive-pack", post(refuse))
        .with_state(dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/widgets.git")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_without_credentials_is_push_failed_with_gits_message() {
    if !bwrap_works() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let remote = bare_remote(dir.path());
    let url = http_remote_refusing_pushes(remote.clone()).await;
    let s = Setup::on(dir, remote, url, "echo change > change.txt").await;
    s.run_task().await;
    let (_, failed) = s
        .fake
        .fail_requests()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("not failed: {:?}\n{}", s.fake.completed(), s.log()));
    assert_eq!(
        failed.failure_reason,
        Some(FailureReason::PushFailed),
        "{failed:#?}"
    );
    assert!(
        failed.error.contains("could not read Username")
            || failed.error.contains("Authentication failed"),
        "git's own words: {}",
        failed.error
    );
    assert!(failed.diff.is_some_and(|d| d.files.len() == 1));
    assert_eq!(s.remote_branch(), None);
}
