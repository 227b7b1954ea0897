//! Forges: `PUT|GET|DELETE /api/v1/workspaces/{wid}/forge` (members of the workspace),
//! the webhook receiver `POST /api/v1/forge/webhooks/{kind}` (no bearer token: the
//! forge's HMAC signature is the credential), the daemon's
//! `POST /api/daemon/tasks/{id}/pushed` and the user's `POST /api/v1/tasks/{id}/push`.

use std::sync::Arc;

use agentd_proto::api::{ForgeInfo, SetForgeRequest, TaskInfo, WebhookAnswer};
use agentd_proto::{PushedRequest, ReportResponse};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::error::{ApiError, ApiJson};
use crate::App;
use crate::auth::{Daemon, Member, SourceIp};
use crate::service::{audit, forge, task};

pub async fn show(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
) -> Result<Json<ForgeInfo>, ApiError> {
    Ok(Json(forge::show(&app, &who, &wid).await?))
}

pub async fn set(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    Path(wid): Path<String>,
    ApiJson(req): ApiJson<SetForgeRequest>,
) -> Result<Json<ForgeInfo>, ApiError> {
    let rotate = req.rotate_webhook_secret;
    let info = forge::set(&app, &who, &wid, req).await?;
    audit::record(
        &app,
        audit::Entry::new(Some(&who), "forge.set", &ip)
            .workspace(&info.workspace_id)
            .target(&info.repo)
            .detail(
                serde_json::json!({"kind": info.kind, "api_url": info.api_url,
                                       "poll": info.poll, "rotate_webhook_secret": rotate}),
            ),
    )
    .await;
    Ok(Json(info))
}

pub async fn remove(
    State(app): State<Arc<App>>,
    Member(who): Member,
    SourceIp(ip): SourceIp,
    Path(wid): Path<String>,
) -> Result<StatusCode, ApiError> {
    let ws = forge::remove(&app, &who, &wid).await?;
    audit::record(
        &app,
        audit::Entry::new(Some(&who), "forge.remove", &ip).workspace(&ws),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

fn header(h: &HeaderMap, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| h.get(*n).and_then(|v| v.to_str().ok()))
        .map(str::to_string)
}

/// The raw body is verified as received (never re-serialized JSON).
pub async fn webhook(
    State(app): State<Arc<App>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let delivery = if kind == "github" {
        forge::Delivery {
            event: header(&headers, &["x-github-event"]).unwrap_or_default(),
            delivery_id: header(&headers, &["x-github-delivery"]),
            signature: header(&headers, &["x-hub-signature-256"]),
        }
    } else {
        forge::Delivery {
            event: header(
                &headers,
                &[
                    "x-gitea-event-type",
                    "x-forgejo-event-type",
                    "x-gitea-event",
                ],
            )
            .unwrap_or_default(),
            delivery_id: header(&headers, &["x-gitea-delivery", "x-forgejo-delivery"]),
            signature: header(&headers, &["x-gitea-signature", "x-forgejo-signature"]),
        }
    };
    Ok(Json(forge::webhook(&app, &kind, delivery, &body).await?))
}

pub async fn pushed(
    State(app): State<Arc<App>>,
    Daemon(who): Daemon,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PushedRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    let t = task::load_for(&app, &who, &id).await?;
    Ok(Json(forge::pushed_later(&app, &t, req.pushed).await?))
}

pub async fn push(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TaskInfo>), ApiError> {
    let t = task::load_for_reader(&app, &who, &id).await?;
    forge::retry_push(&app, &t).await?;
    Ok((StatusCode::ACCEPTED, Json(task::info(&app, &t).await?)))
}
