//! The subset of code forges' wire formats the server speaks as a client (GitHub's REST
//! API, and Gitea's / Forgejo's, which uses the same field names) and receives as
//! webhooks. Only the fields agentd reads are typed; every other field is ignored, and a
//! field the forge may send as `null` is an `Option`. The test fake
//! (`agentd-testkit/src/fake_forge.rs`) builds its answers from these types too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A user (`login` only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ForgeUser {
    pub login: String,
}

/// `GET /repos/{owner}/{repo}` (and `repository` in webhooks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ForgeRepo {
    /// `owner/name`.
    pub full_name: String,
    pub default_branch: String,
    pub html_url: String,
}

/// A pull request's `head` or `base`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ForgeRef {
    #[serde(rename = "ref")]
    pub branch: String,
    pub sha: String,
}

/// A pull request (REST and webhooks). List items lack `merged`: read `merged_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ForgePull {
    pub number: i64,
    pub html_url: String,
    /// `open` or `closed`.
    pub state: String,
    pub title: String,
    pub body: Option<String>,
    pub merged: Option<bool>,
    pub merged_at: Option<String>,
    pub head: ForgeRef,
    pub base: ForgeRef,
    pub user: Option<ForgeUser>,
}

impl ForgePull {
    /// `merged`, `closed` or `open`.
    pub fn agentd_state(&self) -> &'static str {
        if self.merged == Some(true) || self.merged_at.is_some() {
            "merged"
        } else if self.state == "closed" {
            "closed"
        } else {
            "open"
        }
    }
}

/// `POST /repos/{owner}/{repo}/pulls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CreatePull {
    pub title: String,
    pub head: String,
    pub base: String,
    pub body: String,
}

/// An error body: GitHub `{message, documentation_url, errors?}`, Gitea `{message, url}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ForgeErrorBody {
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Value>,
}

/// `GET /repos/{o}/{r}/commits/{sha}/status`: the combined commit status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CombinedStatus {
    /// `pending`, `success`, `failure` (or `error`).
    pub state: String,
    pub total_count: i64,
}

/// One check run (GitHub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CheckRun {
    pub name: String,
    /// `queued`, `in_progress`, `completed`.
    pub status: String,
    pub conclusion: Option<String>,
}

/// `GET /repos/{o}/{r}/commits/{sha}/check-runs` (GitHub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CheckRuns {
    pub total_count: i64,
    pub check_runs: Vec<CheckRun>,
}

/// A review in a webhook: GitHub `{state, body, user}` (state lowercase); Gitea
/// `{type, content}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WebhookReview {
    pub state: String,
    pub body: Option<String>,
    pub user: Option<ForgeUser>,
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
}

/// A comment in a webhook (`issue_comment`, `pull_request_review_comment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WebhookComment {
    pub id: i64,
    pub body: String,
    pub user: Option<ForgeUser>,
    pub path: Option<String>,
}

/// The `issue` of an `issue_comment` webhook: a pull request iff `pull_request` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WebhookIssue {
    pub number: i64,
    pub pull_request: Option<Value>,
}

/// A pull request number inside a check payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PullNumber {
    pub number: i64,
}

/// `check_suite` / `check_run` of a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WebhookCheck {
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub pull_requests: Vec<PullNumber>,
}

/// Every webhook payload the server reads (`pull_request`, `pull_request_review`,
/// `pull_request_review_comment`, `issue_comment`, `check_suite`, `check_run`, `status`;
/// Gitea's variants of them), as one shape: each event fills its own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct WebhookPayload {
    pub action: String,
    pub number: Option<i64>,
    pub repository: Option<ForgeRepo>,
    pub pull_request: Option<ForgePull>,
    pub review: Option<WebhookReview>,
    pub comment: Option<WebhookComment>,
    pub issue: Option<WebhookIssue>,
    /// Gitea's `issue_comment` on a pull request.
    pub is_pull: Option<bool>,
    pub check_suite: Option<WebhookCheck>,
    pub check_run: Option<WebhookCheck>,
    /// `status` event: the commit and its new state.
    pub sha: Option<String>,
    pub state: Option<String>,
    /// `status` event: the branches whose head is `sha`.
    pub branches: Vec<ForgeBranch>,
    pub sender: Option<ForgeUser>,
}

/// A branch named in a `status` webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ForgeBranch {
    pub name: String,
}
