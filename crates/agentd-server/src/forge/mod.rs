//! The forge client: the few REST calls that open and track a pull request on GitHub
//! ([`github`]) or Gitea / Forgejo ([`gitea`]), and webhook signature checks. The same
//! code talks to the real hosts and to the test fake; only the API base URL differs.
//!
//! Calls are the public REST API's (docs/api.md, "Forges and pull requests"):
//! `GET /repos/{o}/{r}` (the default branch), `POST /repos/{o}/{r}/pulls`, finding an
//! open pull request by branch, `GET /repos/{o}/{r}/pulls/{n}`, and the commit's
//! combined status (plus GitHub's check runs) for the checks state.

pub mod gitea;
pub mod github;

use std::time::Duration;

use agentd_proto::api::ForgeKind;
use agentd_proto::forge::{CreatePull, ForgeErrorBody, ForgePull, ForgeRepo};
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use sha2::Sha256;

/// How long one forge call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a forge call failed, in words fit for a comment on the issue.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForgeError {
    /// The forge answered an error status (`401 Bad credentials`, `422 Validation
    /// Failed: No commits between main and agentd/x`, …).
    #[error("{status} {message}")]
    Status { status: u16, message: String },
    /// A pull request for this head and base already exists (GitHub 422, Gitea 409).
    #[error("{0}")]
    Duplicate(String),
    #[error("cannot reach the forge: {0}")]
    Network(String),
    #[error("unexpected answer from the forge: {0}")]
    Decode(String),
}

/// The HTTP side shared by both forges: base URL, token, headers, error bodies.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    base: String,
    auth: String,
    github: bool,
}

impl Http {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(CALL_TIMEOUT)
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .header(reqwest::header::USER_AGENT, "agentd-server");
        if self.github {
            r = r
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
        } else {
            r = r.header(reqwest::header::ACCEPT, "application/json");
        }
        r
    }

    /// Sends `req`; a 2xx body decodes as `T`, anything else is a [`ForgeError::Status`]
    /// carrying the forge's `message` (and the first of GitHub's `errors[].message`).
    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ForgeError> {
        let resp = req
            .send()
            .await
            .map_err(|e| ForgeError::Network(e.to_string()))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ForgeError::Network(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| ForgeError::Decode(e.to_string()));
        }
        let err: ForgeErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        let mut message = if err.message.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            err.message
        };
        if let Some(detail) = err
            .errors
            .iter()
            .find_map(|e| e.get("message").and_then(|m| m.as_str()))
        {
            message = format!("{message}: {detail}");
        }
        Err(ForgeError::Status {
            status: status.as_u16(),
            message,
        })
    }
}

/// A client for one forge connection.
#[derive(Clone)]
pub enum Client {
    Github(github::Github),
    Gitea(gitea::Gitea),
}

impl Client {
    /// A client of `kind` at `api_url` with `token`; `http` is the server's shared pool.
    pub fn new(http: &reqwest::Client, kind: ForgeKind, api_url: &str, token: &str) -> Client {
        let base = api_url.trim_end_matches('/').to_string();
        match kind {
            ForgeKind::Gitea => Client::Gitea(gitea::Gitea(Http {
                client: http.clone(),
                base,
                auth: format!("token {token}"),
                github: false,
            })),
            ForgeKind::Github | ForgeKind::Unknown => Client::Github(github::Github(Http {
                client: http.clone(),
                base,
                auth: format!("Bearer {token}"),
                github: true,
            })),
        }
    }

    /// The repository (`owner/name`): its default branch is a new pull request's base.
    pub async fn repo(&self, repo: &str) -> Result<ForgeRepo, ForgeError> {
        match self {
            Client::Github(c) => c.repo(repo).await,
            Client::Gitea(c) => c.repo(repo).await,
        }
    }

    /// Opens a pull request; when one is already open for this head (the forge says it
    /// is a duplicate), that one is returned instead.
    pub async fn open_pull(&self, repo: &str, req: &CreatePull) -> Result<ForgePull, ForgeError> {
        let made = match self {
            Client::Github(c) => c.create_pull(repo, req).await,
            Client::Gitea(c) => c.create_pull(repo, req).await,
        };
        match made {
            Err(ForgeError::Duplicate(why)) => match self.find_open_pull(repo, &req.head).await? {
                Some(p) => Ok(p),
                None => Err(ForgeError::Duplicate(why)),
            },
            other => other,
        }
    }

    /// The open pull request whose head is `branch` (of the repository itself).
    pub async fn find_open_pull(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<ForgePull>, ForgeError> {
        match self {
            Client::Github(c) => c.find_open_pull(repo, branch).await,
            Client::Gitea(c) => c.find_open_pull(repo, branch).await,
        }
    }

    pub async fn get_pull(&self, repo: &str, number: i64) -> Result<ForgePull, ForgeError> {
        match self {
            Client::Github(c) => c.get_pull(repo, number).await,
            Client::Gitea(c) => c.get_pull(repo, number).await,
        }
    }

    /// `pending`, `success` or `failure` for commit `sha`; `None` when nothing reported.
    pub async fn checks_state(&self, repo: &str, sha: &str) -> Result<Option<String>, ForgeError> {
        match self {
            Client::Github(c) => c.checks_state(repo, sha).await,
            Client::Gitea(c) => c.checks_state(repo, sha).await,
        }
    }
}

/// A commit status (`pending`, `success`, `failure`, `error`, …) as agentd's checks
/// state; `None` for a state that says nothing.
pub fn checks_of_status(state: &str) -> Option<&'static str> {
    match state {
        "success" => Some("success"),
        "failure" | "error" => Some("failure"),
        "pending" => Some("pending"),
        _ => None,
    }
}

/// A check run or suite (`status`, `conclusion`) as agentd's checks state.
pub fn checks_of_run(status: &str, conclusion: Option<&str>) -> &'static str {
    if status != "completed" {
        return "pending";
    }
    match conclusion {
        Some("success" | "neutral" | "skipped") => "success",
        _ => "failure",
    }
}

/// HMAC-SHA256 of `body` under `secret`, lowercase hex (what forges sign with).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature` (hex, with or without GitHub's `sha256=` prefix) is the HMAC of
/// `body` under `secret`. Compared in constant time; a signature that is not hex fails.
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let hex_sig = signature.trim();
    let hex_sig = hex_sig.strip_prefix("sha256=").unwrap_or(hex_sig);
    let Ok(tag) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// `owner/name` of a repository URL (`https://host/owner/name(.git)`,
/// `ssh://git@host/owner/name`, `git@host:owner/name`), lowercased; `None` if it has no
/// owner and name.
pub fn repo_of_url(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let path = if let Some((_, rest)) = url.split_once("://") {
        rest.split_once('/')?.1
    } else if let Some((_, path)) = url.split_once(':') {
        path
    } else {
        return None;
    };
    let path = path.strip_suffix(".git").unwrap_or(path).trim_matches('/');
    let mut parts = path.rsplitn(3, '/');
    let name = parts.next().filter(|s| !s.is_empty())?;
    let owner = parts.next().filter(|s| !s.is_empty())?;
    Some(format!("{owner}/{name}").to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_test_vector_verifies_and_a_changed_byte_does_not() {
        let secret = "It's a Secret to Everybody";
        let want = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(secret, b"Hello, World!"), want);
        assert!(verify(secret, b"Hello, World!", &format!("sha256={want}")));
        assert!(verify(secret, b"Hello, World!", want));
        assert!(!verify(secret, b"Hello, World?", want));
        assert!(!verify("another secret", b"Hello, World!", want));
        assert!(!verify(secret, b"Hello, World!", "sha256=zz"));
        assert!(!verify(secret, b"Hello, World!", ""));
    }

    #[test]
    fn repository_urls_name_their_owner_and_repo() {
        for (url, want) in [
            ("https://github.com/Acme/Widgets.git", Some("acme/widgets")),
            ("https://x@github.com/acme/widgets/", Some("acme/widgets")),
            ("ssh://git@host:2222/acme/my.repo.git", Some("acme/my.repo")),
            ("git@github.com:acme/widgets.git", Some("acme/widgets")),
            (
                "https://gitea.example/sub/acme/widgets",
                Some("acme/widgets"),
            ),
            ("https://github.com/widgets", None),
            ("widgets", None),
        ] {
            assert_eq!(repo_of_url(url).as_deref(), want, "{url}");
        }
    }
}
