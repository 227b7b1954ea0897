//! GitHub's REST API (api.github.com, or GHES at `https://HOST/api/v3`).

use agentd_proto::forge::{CheckRuns, CombinedStatus, CreatePull, ForgePull, ForgeRepo};
use reqwest::Method;

use super::{ForgeError, Http, checks_of_run, checks_of_status};

#[derive(Clone)]
pub struct Github(pub(super) Http);

impl Github {
    pub async fn repo(&self, repo: &str) -> Result<ForgeRepo, ForgeError> {
        let h = &self.0;
        h.send(h.request(Method::GET, &format!("/repos/{repo}")))
            .await
    }

    /// 201 and the pull request; a duplicate is 422 "A pull request already exists".
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
                status: 422,
                message,
            }) if message.contains("already exists") => {
                Err(ForgeError::Duplicate(format!("422 {message}")))
            }
            other => other,
        }
    }

    /// `GET /repos/{o}/{r}/pulls?head=OWNER:BRANCH&state=open` (a bare branch in `head`
    /// is ignored by GitHub, so the owner is always given and `head.ref` checked).
    pub async fn find_open_pull(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<ForgePull>, ForgeError> {
        let h = &self.0;
        let owner = repo.split('/').next().unwrap_or_default();
        let pulls: Vec<ForgePull> = h
            .send(
                h.request(Method::GET, &format!("/repos/{repo}/pulls"))
                    .query(&[
                        ("head", format!("{owner}:{branch}")),
                        ("state", "open".into()),
                        ("per_page", "100".into()),
                    ]),
            )
            .await?;
        Ok(pulls.into_iter().find(|p| p.head.branch == branch))
    }

    pub async fn get_pull(&self, repo: &str, number: i64) -> Result<ForgePull, ForgeError> {
        let h = &self.0;
        h.send(h.request(Method::GET, &format!("/repos/{repo}/pulls/{number}")))
            .await
    }

    /// The commit's combined status and its check runs (Actions report only there),
    /// together: failure if either failed, pending if either is pending, success if
    /// anything reported and nothing is pending or failed.
    pub async fn checks_state(&self, repo: &str, sha: &str) -> Result<Option<String>, ForgeError> {
        let h = &self.0;
        let status: CombinedStatus = h
            .send(h.request(Method::GET, &format!("/repos/{repo}/commits/{sha}/status")))
            .await?;
        let runs: CheckRuns = h
            .send(
                h.request(
                    Method::GET,
                    &format!("/repos/{repo}/commits/{sha}/check-runs"),
                )
                .query(&[("per_page", "100")]),
            )
            .await?;
        let mut states: Vec<&str> = runs
            .check_runs
            .iter()
            .map(|r| checks_of_run(&r.status, r.conclusion.as_deref()))
            .collect();
        if status.total_count > 0
            && let Some(s) = checks_of_status(&status.state)
        {
            states.push(s);
        }
        Ok(combine(&states))
    }
}

/// Failure wins, then pending, then success; nothing reported is `None`.
pub(super) fn combine(states: &[&str]) -> Option<String> {
    ["failure", "pending", "success"]
        .into_iter()
        .find(|s| states.contains(s))
        .map(str::to_string)
}
