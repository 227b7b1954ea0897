//! Bearer tokens. Member tokens (`agd_…`) are random, shown once and stored as SHA-256
//! hex; each is scoped to a set of workspaces (an admin token sees all). Task tokens
//! (`agt_…`) are minted per claim, stored hashed on the task row, and are valid only
//! while that task is dispatched or running, and only for its issue.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::App;
use crate::service::Error;
use crate::store::TaskRow;

pub const MEMBER_TOKEN_PREFIX: &str = "agd_";
pub const TASK_TOKEN_PREFIX: &str = "agt_";

/// A fresh random token: prefix + 40 hex characters (20 random bytes).
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person's (or a daemon's) API token.
    Member {
        token_id: String,
        name: String,
        admin: bool,
        workspaces: Vec<String>,
    },
    /// An agent acting through the token of its active task.
    Task(Box<TaskRow>),
}

impl Principal {
    pub fn sees_workspace(&self, workspace_id: &str) -> bool {
        match self {
            Principal::Member {
                admin, workspaces, ..
            } => *admin || workspaces.iter().any(|w| w == workspace_id),
            Principal::Task(t) => t.workspace_id == workspace_id,
        }
    }

    /// Workspaces a listing covers: `None` = all (admin).
    pub fn workspace_filter(&self) -> Option<Vec<String>> {
        match self {
            Principal::Member { admin: true, .. } => None,
            Principal::Member { workspaces, .. } => Some(workspaces.clone()),
            Principal::Task(t) => Some(vec![t.workspace_id.clone()]),
        }
    }
}

impl FromRequestParts<Arc<App>> for Principal {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| Error::Unauthenticated("missing authorization header".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Unauthenticated("invalid authorization format".into()))?;
        let hash = hash_token(token);
        if token.starts_with(TASK_TOKEN_PREFIX) {
            return match app.store.find_task_by_token(hash).await? {
                Some(task) => Ok(Principal::Task(Box::new(task))),
                None => Err(Error::Unauthenticated(
                    "invalid token (a task token is valid only while its task is active)".into(),
                )),
            };
        }
        match app.store.find_token(hash).await? {
            Some((row, workspaces)) => Ok(Principal::Member {
                token_id: row.id,
                name: row.name,
                admin: row.is_admin,
                workspaces,
            }),
            None => Err(Error::Unauthenticated("invalid token".into())),
        }
    }
}

/// A member principal; task tokens are refused with 403.
pub struct Member(pub Principal);

impl FromRequestParts<Arc<App>> for Member {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        match Principal::from_request_parts(parts, app).await? {
            Principal::Task(_) => Err(Error::Forbidden(
                "a task token may only read its issue, comment on it and change its status".into(),
            )),
            p => Ok(Member(p)),
        }
    }
}
