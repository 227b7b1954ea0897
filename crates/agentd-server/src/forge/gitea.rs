//! Gitea's and Forgejo's REST API (`https://HOST[/subpath]/api/v1`): GitHub's paths and
//! field names, with `Authorization: token …`, 409 for a duplicate pull request, no
//! `head` filter on the list, and commit statuses only (no checks API).

use agentd_proto::forge::{CombinedStatus, CreatePull, ForgePull, ForgeRepo};
use reqwest::Method;

use super::{ForgeError, Http, checks_of_status};

/// Pages of open pull requests read when looking one up by branch (50 each).
const MAX_PAGES: usize = 20;

#[derive(Clone)]
pub struct Gitea(pub(super) Http);

impl Gitea {
    pub async fn repo(&self, repo: &str) -> Result<ForgeRepo, ForgeError> {
        let h = &self.0;
        h.send(h.request(Method::GET, &format!("/repos/{repo}")))
            .await
    }

    /// 201 and the pull request; a duplicate is 409 "pull request already exists …".
    pub async fn create_pull(&self, repo: &str, req: &CreatePull) -> Result<ForgePull, ForgeError> {
        let h = &self.0;
        match h
            .send(
                h.request(Method::POST, &format!("/repos/{repo}/pulls"))
                    .json(req),
            )
            .await
        {
            Err(ForgeError::Status {
                status: 409,
                message,
            }) => Err(ForgeError::Duplicate(format!("409 {message}"))),
            other => other,
        }
    }

    /// Walks the open pull requests (`?state=open&limit=50&page=N`) for `head.ref`.
    pub async fn find_open_pull(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<ForgePull>, ForgeError> {
        let h = &self.0;
        for page in 1..=MAX_PAGES {
            let pulls: Vec<ForgePull> = h
                .send(
                    h.request(Method::GET, &format!("/repos/{repo}/pulls"))
                        .query(&[
                            ("state", "open".to_string()),
                            ("limit", "50".into()),
                            ("page", page.to_string()),
                        ]),
                )
                .await?;
            let last = pulls.len() < 50;
            if let Some(p) = pulls.into_iter().find(|p| p.head.branch == branch) {
                return Ok(Some(p));
            }
            if last {
                break;
            }
        }
        Ok(None)
    }

    pub async fn get_pull(&self, repo: &str, number: i64) -> Result<ForgePull, ForgeError> {
        let h = &self.0;
        h.send(h.request(Method::GET, &format!("/repos/{repo}/pulls/{number}")))
            .await
    }

    /// The commit's combined status (Gitea Actions report there).
    pub async fn checks_state(&self, repo: &str, sha: &str) -> Result<Option<String>, ForgeError> {
        let h = &self.0;
        let status: CombinedStatus = h
            .send(h.request(Method::GET, &format!("/repos/{repo}/commits/{sha}/status")))
            .await?;
        if status.total_count == 0 {
            return Ok(None);
        }
        Ok(checks_of_status(&status.state).map(str::to_string))
    }
}
