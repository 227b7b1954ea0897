//! A fake code forge on 127.0.0.1:0 playing the subset of GitHub's REST API (at the root,
//! as api.github.com serves it) and of Gitea's / Forgejo's (under `/api/v1`) that agentd's
//! server uses to open and track pull requests, following the public API descriptions
//! (`docs` of both; the facts are collected in the team's forge guide):
//!
//! - `GET /repos/{o}/{r}` → the repository with its `default_branch`; 404 for a repository
//!   the token cannot see (GitHub answers 404, never 403, for those).
//! - `POST /repos/{o}/{r}/pulls {title, head, base, body}` → 201 and the full pull
//!   request, numbered like issues; a head branch that was never pushed is 422 (GitHub)
//!   / 404 (Gitea); a second open pull request for the same head and base is GitHub's
//!   422 `A pull request already exists for OWNER:BRANCH.` / Gitea's 409.
//! - `GET /repos/{o}/{r}/pulls?state=&head=OWNER:BRANCH&per_page=&page=` (GitHub honours
//!   `head` only with the owner, and list items lack `merged`), Gitea's `?state=&limit=
//!   &page=` (no head filter), `GET /repos/{o}/{r}/pulls/{n}`.
//! - `GET /repos/{o}/{r}/commits/{sha}/status` (combined status) and, on GitHub,
//!   `…/check-runs`.
//! - Auth: `Authorization: Bearer T` or `token T`; anything else is 401
//!   (`Bad credentials` on GitHub). Every request is recorded.
//!
//! Tests push branches ([`FakeForge::push_branch`]), merge or close pull requests, set
//! statuses and check runs, and build webhook deliveries signed with a secret
//! ([`FakeForge::webhook`]): exact headers (GitHub's `X-Hub-Signature-256: sha256=…`;
//! Gitea's `X-Gitea-Signature` plus the `X-GitHub-*` copies Gitea also sends) over the
//! raw body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

/// Which API a request or a webhook speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Github,
    Gitea,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub flavor: Flavor,
    pub method: String,
    /// The path below the API root (`/repos/acme/widgets/pulls`).
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Debug, Clone)]
struct Pull {
    number: i64,
    title: String,
    body: String,
    head: String,
    head_sha: String,
    base: String,
    closed: bool,
    merged_at: Option<String>,
    created_at: String,
}

#[derive(Debug, Default)]
struct Repo {
    full_name: String,
    default_branch: String,
    branches: HashMap<String, String>,
    pulls: Vec<Pull>,
    next_number: i64,
    /// A real bare repository whose `refs/heads/*` are this repo's branches (what the
    /// forge sees after a real `git push` into it).
    git_dir: Option<std::path::PathBuf>,
}

impl Repo {
    /// Reads the branches from [`Repo::git_dir`], if any; open pull requests follow their
    /// heads.
    fn sync_from_git(&mut self) {
        let Some(dir) = &self.git_dir else { return };
        let Ok(out) = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(dir)
            .args([
                "for-each-ref",
                "--format=%(refname:short) %(objectname)",
                "refs/heads",
            ])
            .output()
        else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((branch, sha)) = line.split_once(' ') {
                self.branches.insert(branch.to_string(), sha.to_string());
                for p in self
                    .pulls
                    .iter_mut()
                    .filter(|p| p.head == branch && !p.closed)
                {
                    p.head_sha = sha.to_string();
                }
            }
        }
    }
}

#[derive(Default)]
struct Inner {
    tokens: Vec<String>,
    repos: HashMap<String, Repo>,
    requests: Vec<Recorded>,
    /// Commit statuses by sha: (context, state).
    statuses: HashMap<String, Vec<(String, String)>>,
    /// GitHub check runs by sha: (name, status, conclusion).
    check_runs: HashMap<String, Vec<(String, String, Option<String>)>>,
    /// Answer every API call with this status and message (a forge outage).
    fail_with: Option<(u16, String)>,
}

type Shared = Arc<Mutex<Inner>>;

/// The running fake. Dropping it stops the server.
pub struct FakeForge {
    /// `http://127.0.0.1:PORT`: GitHub's API root; Gitea's is [`FakeForge::gitea_api`].
    pub url: String,
    inner: Shared,
    stop: CancellationToken,
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_text() -> String {
    jiff::Timestamp::now().to_string()
}

impl FakeForge {
    /// Starts the fake; `token` is the only token it accepts.
    pub async fn start(token: &str) -> FakeForge {
        let inner: Shared = Arc::new(Mutex::new(Inner {
            tokens: vec![token.to_string()],
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake forge");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let app = Router::new()
            .route("/api/v1/{*rest}", any(gitea))
            .route("/{*rest}", any(github))
            .route("/", get(|| async { StatusCode::NOT_FOUND }))
            .with_state((inner.clone(), url.clone()));
        let stop = CancellationToken::new();
        let done = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { done.cancelled().await })
                .await;
        });
        FakeForge { url, inner, stop }
    }

    /// Gitea's API root: `http://127.0.0.1:PORT/api/v1`.
    pub fn gitea_api(&self) -> String {
        format!("{}/api/v1", self.url)
    }

    /// Creates a repository (`owner/name`) whose default branch is `default_branch`.
    pub fn add_repo(&self, full_name: &str, default_branch: &str) {
        let mut g = lock(&self.inner);
        g.repos.insert(
            full_name.to_lowercase(),
            Repo {
                full_name: full_name.into(),
                default_branch: default_branch.into(),
                branches: HashMap::from([(default_branch.to_string(), "0".repeat(40))]),
                next_number: 1,
                ..Default::default()
            },
        );
    }

    /// Hosts `full_name` on a real bare repository: its branches are read from `git_dir`
    /// on every API call, so a real `git push` into it is what the forge sees.
    pub fn add_git_repo(&self, full_name: &str, default_branch: &str, git_dir: &std::path::Path) {
        self.add_repo(full_name, default_branch);
        let mut g = lock(&self.inner);
        if let Some(r) = g.repos.get_mut(&full_name.to_lowercase()) {
            r.git_dir = Some(git_dir.to_path_buf());
            r.sync_from_git();
        }
    }

    /// What a `git push` would do: the branch now points at `sha` (an open pull request
    /// of that head follows it).
    pub fn push_branch(&self, repo: &str, branch: &str, sha: &str) {
        let mut g = lock(&self.inner);
        let r = g.repos.get_mut(&repo.to_lowercase()).expect("repo added");
        r.branches.insert(branch.into(), sha.into());
        for p in r.pulls.iter_mut().filter(|p| p.head == branch && !p.closed) {
            p.head_sha = sha.into();
        }
    }

    /// Merges pull request `n` (closed, `merged_at` set).
    pub fn merge(&self, repo: &str, n: i64) {
        self.with_pull(repo, n, |p| {
            p.closed = true;
            p.merged_at = Some(now_text());
        });
    }

    /// Closes pull request `n` without merging it.
    pub fn close(&self, repo: &str, n: i64) {
        self.with_pull(repo, n, |p| p.closed = true);
    }

    fn with_pull(&self, repo: &str, n: i64, f: impl FnOnce(&mut Pull)) {
        let mut g = lock(&self.inner);
        let r = g.repos.get_mut(&repo.to_lowercase()).expect("repo added");
        f(r.pulls
            .iter_mut()
            .find(|p| p.number == n)
            .expect("pull exists"));
    }

    /// Adds a commit status (`pending`, `success`, `failure`, `error`) for `sha`.
    pub fn set_status(&self, sha: &str, context: &str, state: &str) {
        let mut g = lock(&self.inner);
        let list = g.statuses.entry(sha.into()).or_default();
        list.retain(|(c, _)| c != context);
        list.push((context.into(), state.into()));
    }

    /// Adds a GitHub check run for `sha`.
    pub fn set_check_run(&self, sha: &str, name: &str, status: &str, conclusion: Option<&str>) {
        let mut g = lock(&self.inner);
        let list = g.check_runs.entry(sha.into()).or_default();
        list.retain(|(n, _, _)| n != name);
        list.push((name.into(), status.into(), conclusion.map(str::to_string)));
    }

    /// From now on every API call answers `status` with `message` (`None`: normal again).
    pub fn fail_with(&self, failure: Option<(u16, &str)>) {
        lock(&self.inner).fail_with = failure.map(|(s, m)| (s, m.to_string()));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.inner).requests.clone()
    }

    /// The requests with this method whose path ends with `suffix`.
    pub fn requests_to(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .collect()
    }

    /// The pull request as the REST API shows it.
    pub fn pull(&self, flavor: Flavor, repo: &str, n: i64) -> Value {
        let g = lock(&self.inner);
        let r = &g.repos[&repo.to_lowercase()];
        let p = r.pulls.iter().find(|p| p.number == n).expect("pull exists");
        pull_json(flavor, &self.url, r, p, true)
    }

    /// A webhook delivery of `event` about pull request `n` of `repo`, signed with
    /// `secret` (`None`: unsigned). `extra` is merged into the payload's top level
    /// (`action`, `review`, `comment`, …). The body is the exact bytes to send.
    pub fn webhook(
        &self,
        flavor: Flavor,
        event: &str,
        repo: &str,
        n: i64,
        extra: Value,
        secret: Option<&str>,
    ) -> Delivery {
        let mut payload = {
            let g = lock(&self.inner);
            let r = &g.repos[&repo.to_lowercase()];
            let pull = r
                .pulls
                .iter()
                .find(|p| p.number == n)
                .map(|p| pull_json(flavor, &self.url, r, p, true))
                .unwrap_or(Value::Null);
            json!({
                "number": n,
                "pull_request": pull,
                "repository": repo_json(flavor, &self.url, r),
                "sender": user_json("octocat"),
            })
        };
        if let (Some(obj), Some(more)) = (payload.as_object_mut(), extra.as_object()) {
            for (k, v) in more {
                obj.insert(k.clone(), v.clone());
            }
        }
        Delivery::new(flavor, event, payload.to_string().into_bytes(), secret)
    }
}

/// A signed (or unsigned) webhook delivery, as the forge would send it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Delivery {
    /// Headers for `event` over `body`: GitHub `X-GitHub-Event`, `X-GitHub-Delivery`,
    /// `X-Hub-Signature-256: sha256=<hex>`; Gitea `X-Gitea-Event`, `X-Gitea-Event-Type`,
    /// `X-Gitea-Delivery`, `X-Gitea-Signature: <hex>` and the `X-GitHub-*` /
    /// `X-Hub-Signature-256` copies it also sends.
    pub fn new(flavor: Flavor, event: &str, body: Vec<u8>, secret: Option<&str>) -> Delivery {
        let id = uuid::Uuid::new_v4().to_string();
        let sig = secret.map(|s| sign(s, &body));
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("x-github-event".into(), event.into()),
            ("x-github-delivery".into(), id.clone()),
        ];
        if let Some(sig) = &sig {
            headers.push(("x-hub-signature-256".into(), format!("sha256={sig}")));
        }
        match flavor {
            Flavor::Github => {
                headers.push(("user-agent".into(), "GitHub-Hookshot/fake".into()));
            }
            Flavor::Gitea => {
                // The coarse event: review kinds are all `pull_request` events there.
                let coarse = if event.starts_with("pull_request_review") {
                    "pull_request"
                } else if event == "pull_request_comment" {
                    "issue_comment"
                } else {
                    event
                };
                headers.push(("x-gitea-event".into(), coarse.into()));
                headers.push(("x-gitea-event-type".into(), event.into()));
                headers.push(("x-gitea-delivery".into(), id));
                headers.push(("x-gitea-signature".into(), sig.clone().unwrap_or_default()));
            }
        }
        Delivery { headers, body }
    }

    /// Replaces a header (e.g. a forged signature).
    pub fn with_header(mut self, name: &str, value: &str) -> Delivery {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_lowercase(), value.to_string()));
        self
    }

    /// The value of a header, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn user_json(login: &str) -> Value {
    json!({"login": login, "id": 1, "node_id": "U_1", "type": "User", "site_admin": false,
           "avatar_url": "", "html_url": format!("https://example.invalid/{login}")})
}

fn web_root(flavor: Flavor, base: &str) -> String {
    match flavor {
        Flavor::Github => base.to_string(),
        Flavor::Gitea => base.to_string(),
    }
}

fn repo_json(flavor: Flavor, base: &str, r: &Repo) -> Value {
    let owner = r.full_name.split('/').next().unwrap_or_default();
    json!({
        "id": 1,
        "name": r.full_name.split('/').nth(1).unwrap_or_default(),
        "full_name": r.full_name,
        "owner": user_json(owner),
        "private": false,
        "html_url": format!("{}/{}", web_root(flavor, base), r.full_name),
        "default_branch": r.default_branch,
    })
}

/// A pull request; `full` adds the fields list items lack on GitHub (`merged`,
/// `mergeable`).
fn pull_json(flavor: Flavor, base: &str, r: &Repo, p: &Pull, full: bool) -> Value {
    let owner = r.full_name.split('/').next().unwrap_or_default();
    let web = match flavor {
        Flavor::Github => format!(
            "{}/{}/pull/{}",
            web_root(flavor, base),
            r.full_name,
            p.number
        ),
        Flavor::Gitea => format!(
            "{}/{}/pulls/{}",
            web_root(flavor, base),
            r.full_name,
            p.number
        ),
    };
    let api = match flavor {
        Flavor::Github => format!("{base}/repos/{}/pulls/{}", r.full_name, p.number),
        Flavor::Gitea => format!("{base}/api/v1/repos/{}/pulls/{}", r.full_name, p.number),
    };
    let base_sha = r.branches.get(&p.base).cloned().unwrap_or_default();
    let mut v = json!({
        "id": p.number * 1000,
        "node_id": format!("PR_{}", p.number),
        "url": api,
        "html_url": web,
        "number": p.number,
        "state": if p.closed { "closed" } else { "open" },
        "locked": false,
        "title": p.title,
        "body": if p.body.is_empty() { Value::Null } else { Value::String(p.body.clone()) },
        "user": user_json("agentd-bot"),
        "draft": false,
        "created_at": p.created_at,
        "updated_at": p.created_at,
        "closed_at": if p.closed { Value::String(now_text()) } else { Value::Null },
        "merged_at": p.merged_at,
        "merge_commit_sha": p.merged_at.as_ref().map(|_| "f".repeat(40)),
        "head": {"label": format!("{owner}:{}", p.head), "ref": p.head, "sha": p.head_sha,
                 "repo": repo_json(flavor, base, r), "user": user_json(owner)},
        "base": {"label": format!("{owner}:{}", p.base), "ref": p.base, "sha": base_sha,
                 "repo": repo_json(flavor, base, r), "user": user_json(owner)},
    });
    if full || flavor == Flavor::Gitea {
        v["merged"] = json!(p.merged_at.is_some());
        v["mergeable"] = Value::Null;
    }
    v
}

fn error(flavor: Flavor, status: u16, message: &str, errors: Option<Value>) -> Response {
    let mut body = match flavor {
        Flavor::Github => json!({"message": message,
            "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
        Flavor::Gitea => json!({"message": message, "url": "https://example.invalid/api/swagger"}),
    };
    if let Some(e) = errors {
        body["errors"] = e;
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

type St = State<(Shared, String)>;

async fn github(
    State((inner, base)): St,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        Flavor::Github,
        &inner,
        &base,
        method,
        &rest,
        q,
        &uri,
        &headers,
        &body,
    )
}

async fn gitea(
    State((inner, base)): St,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        Flavor::Gitea,
        &inner,
        &base,
        method,
        &rest,
        q,
        &uri,
        &headers,
        &body,
    )
}

#[allow(clippy::too_many_arguments)]
fn serve(
    flavor: Flavor,
    inner: &Shared,
    base: &str,
    method: Method,
    rest: &str,
    q: HashMap<String, String>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let mut g = lock(inner);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    g.requests.push(Recorded {
        flavor,
        method: method.to_string(),
        path: format!("/{rest}"),
        query: uri.query().unwrap_or_default().to_string(),
        authorization: auth.clone(),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    });
    let token = auth.as_deref().and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("token "))
            .map(str::trim)
    });
    if !token.is_some_and(|t| g.tokens.iter().any(|k| k == t)) {
        let msg = match flavor {
            Flavor::Github => "Bad credentials",
            Flavor::Gitea => "user does not exist [uid: 0, name: ]",
        };
        return error(flavor, 401, msg, None);
    }
    if let Some((status, msg)) = g.fail_with.clone() {
        return error(flavor, status, &msg, None);
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let ["repos", owner, name, tail @ ..] = parts.as_slice() else {
        return error(flavor, 404, "Not Found", None);
    };
    let key = format!("{owner}/{name}").to_lowercase();
    let (statuses, check_runs) = (g.statuses.clone(), g.check_runs.clone());
    let Some(r) = g.repos.get_mut(&key) else {
        return error(flavor, 404, "Not Found", None);
    };
    r.sync_from_git();
    let ok = |v: Value| (StatusCode::OK, axum::Json(v)).into_response();
    match (method.as_str(), tail) {
        ("GET", []) => ok(repo_json(flavor, base, r)),
        ("POST", ["pulls"]) => {
            let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let field = |k: &str| req[k].as_str().unwrap_or_default().to_string();
            let (title, head, base_branch) = (field("title"), field("head"), field("base"));
            if title.is_empty() || head.is_empty() || base_branch.is_empty() {
                return error(
                    flavor,
                    422,
                    "Validation Failed",
                    Some(json!([
                    {"resource": "PullRequest", "code": "missing_field"}])),
                );
            }
            let Some(head_sha) = r.branches.get(&head).cloned() else {
                return match flavor {
                    Flavor::Github => error(
                        flavor,
                        422,
                        "Validation Failed",
                        Some(json!([
                        {"resource": "PullRequest", "field": "head", "code": "invalid"}])),
                    ),
                    Flavor::Gitea => error(flavor, 404, "The target couldn't be found.", None),
                };
            };
            if !r.branches.contains_key(&base_branch) {
                return error(
                    flavor,
                    422,
                    "Validation Failed",
                    Some(json!([
                    {"resource": "PullRequest", "field": "base", "code": "invalid"}])),
                );
            }
            if let Some(dup) = r
                .pulls
                .iter()
                .find(|p| !p.closed && p.head == head && p.base == base_branch)
            {
                return match flavor {
                    Flavor::Github => error(
                        flavor,
                        422,
                        "Validation Failed",
                        Some(json!([
                        {"resource": "PullRequest", "code": "custom",
                         "message": format!("A pull request already exists for {owner}:{head}.")}])),
                    ),
                    Flavor::Gitea => error(
                        flavor,
                        409,
                        &format!(
                            "pull request already exists for these targets [id: {}, issue_id: {}, \
                         head_repo_id: 1, base_repo_id: 1, head_branch: {head}, base_branch: \
                         {base_branch}]",
                            dup.number * 1000,
                            dup.number * 7
                        ),
                        None,
                    ),
                };
            }
            let p = Pull {
                number: r.next_number,
                title,
                body: field("body"),
                head,
                head_sha,
                base: base_branch,
                closed: false,
                merged_at: None,
                created_at: now_text(),
            };
            r.next_number += 1;
            let v = pull_json(flavor, base, r, &p, true);
            r.pulls.push(p);
            let location = v["url"].as_str().unwrap_or_default().to_string();
            (StatusCode::CREATED, [("location", location)], axum::Json(v)).into_response()
        }
        ("GET", ["pulls"]) => {
            let state = q.get("state").map(String::as_str).unwrap_or("open");
            // GitHub filters by `head` only in the OWNER:BRANCH form; Gitea has no filter.
            let head = match flavor {
                Flavor::Github => q
                    .get("head")
                    .and_then(|h| h.split_once(':'))
                    .filter(|(o, _)| o.eq_ignore_ascii_case(owner))
                    .map(|(_, b)| b.to_string()),
                Flavor::Gitea => None,
            };
            let size_key = if flavor == Flavor::Github {
                "per_page"
            } else {
                "limit"
            };
            let size: usize = q
                .get(size_key)
                .and_then(|s| s.parse().ok())
                .unwrap_or(30)
                .clamp(1, 100);
            let page: usize = q
                .get("page")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1)
                .max(1);
            let all: Vec<Value> = r
                .pulls
                .iter()
                .rev()
                .filter(|p| match state {
                    "all" => true,
                    "closed" => p.closed,
                    _ => !p.closed,
                })
                .filter(|p| head.as_ref().is_none_or(|h| &p.head == h))
                .map(|p| pull_json(flavor, base, r, p, false))
                .collect();
            let total = all.len();
            let items: Vec<Value> = all.into_iter().skip((page - 1) * size).take(size).collect();
            let mut resp = ok(Value::Array(items));
            if flavor == Flavor::Gitea {
                resp.headers_mut().insert(
                    "x-total-count",
                    total.to_string().parse().expect("a number"),
                );
            }
            resp
        }
        ("GET", ["pulls", n]) => match n
            .parse::<i64>()
            .ok()
            .and_then(|n| r.pulls.iter().find(|p| p.number == n))
        {
            Some(p) => ok(pull_json(flavor, base, r, p, true)),
            None => error(flavor, 404, "Not Found", None),
        },
        ("GET", ["commits", sha, "status"]) => {
            let list = statuses.get(*sha).cloned().unwrap_or_default();
            let states: Vec<&str> = list.iter().map(|(_, s)| s.as_str()).collect();
            let combined = if states.iter().any(|s| *s == "failure" || *s == "error") {
                "failure"
            } else if states.is_empty() || states.contains(&"pending") {
                "pending"
            } else {
                "success"
            };
            ok(json!({
                "state": combined,
                "sha": sha,
                "total_count": list.len(),
                "statuses": list.iter().map(|(c, s)| json!({"context": c, "state": s,
                    "target_url": null, "description": null})).collect::<Vec<_>>(),
            }))
        }
        ("GET", ["commits", sha, "check-runs"]) if flavor == Flavor::Github => {
            let list = check_runs.get(*sha).cloned().unwrap_or_default();
            ok(json!({
                "total_count": list.len(),
                "check_runs": list.iter().enumerate().map(|(i, (n, s, c))| json!({
                    "id": i + 1, "name": n, "head_sha": sha, "status": s, "conclusion": c,
                    "html_url": null, "app": null})).collect::<Vec<_>>(),
            }))
        }
        _ => error(flavor, 404, "Not Found", None),
    }
}
