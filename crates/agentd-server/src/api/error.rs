//! [`ApiError`]: every failure of a handler, and the only mapping to HTTP statuses —
//! including that of the domain's [`service::Error`]. Each answers `{"error": "..."}`
//! ([`agentd_proto::ErrorBody`]), with `code` and `matches` for a coded 409
//! (an ambiguous reference, a task already retried or already ended). Also the JSON and query extractors whose rejections
//! become the same body.

use agentd_proto::ErrorBody;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, MissingJsonContentType};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::service;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A 409 with a machine-readable code and the objects it is about.
    #[error("{message}")]
    Refused {
        code: &'static str,
        message: String,
        matches: Vec<agentd_proto::api::RefMatch>,
    },
    /// A rejected request body or query (syntax, types, size, content type).
    #[error("{1}")]
    Rejected(StatusCode, String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The database is unreachable right now (503; the server recovers by itself).
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> ApiError {
        ApiError::BadRequest(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> ApiError {
        ApiError::NotFound(msg.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            return ApiError::Unavailable("database unavailable".into());
        }
        tracing::error!(error = %e, "store failure");
        ApiError::Internal("database error".into())
    }
}

/// The one mapping of domain errors to HTTP statuses; the message is the body, unchanged.
impl From<service::Error> for ApiError {
    fn from(e: service::Error) -> ApiError {
        match e {
            service::Error::BadInput(m) => ApiError::BadRequest(m),
            service::Error::Unauthenticated(m) => ApiError::Unauthorized(m),
            service::Error::Forbidden(m) => ApiError::Forbidden(m),
            service::Error::NotFound(m) => ApiError::NotFound(m.to_string()),
            service::Error::Conflict(m) => ApiError::Conflict(m),
            service::Error::Refused {
                code,
                message,
                matches,
            } => ApiError::Refused {
                code,
                message,
                matches,
            },
            service::Error::Gone(m) => ApiError::Rejected(StatusCode::GONE, m),
            service::Error::TooManyAttempts(m) => {
                ApiError::Rejected(StatusCode::TOO_MANY_REQUESTS, m)
            }
            service::Error::Upstream(m) => {
                tracing::warn!(error = %m, "upstream failure");
                ApiError::Rejected(StatusCode::BAD_GATEWAY, m)
            }
            service::Error::Internal(m) => {
                tracing::error!(error = %m, "internal failure");
                ApiError::Internal(m)
            }
            service::Error::Store(e) => ApiError::from(e),
        }
    }
}

/// A domain error answered directly (the rejection of the auth extractors).
impl IntoResponse for service::Error {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::Refused { .. } => StatusCode::CONFLICT,
            ApiError::Rejected(s, _) => *s,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = match self {
            ApiError::Refused {
                code,
                message,
                matches,
            } => ErrorBody {
                error: message,
                code: Some(code.to_string()),
                matches,
            },
            other => ErrorBody {
                error: other.to_string(),
                ..ErrorBody::default()
            },
        };
        (status, Json(body)).into_response()
    }
}

/// `Json<T>` whose rejections answer with [`ApiError`].
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(ApiError::Rejected(rej.status(), rej.body_text())),
        }
    }
}

/// An optional JSON body: `None` when the body is empty (or only whitespace); otherwise
/// it must be JSON (`Content-Type: application/json`) of the right shape, refused with
/// the same statuses and bodies as [`ApiJson`].
pub struct ApiOptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiOptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .is_some_and(|m| {
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        let body = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(rej) => return Err(ApiError::Rejected(rej.status(), rej.body_text())),
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiOptionalJson(None));
        }
        if !is_json {
            let rej = JsonRejection::from(MissingJsonContentType::default());
            return Err(ApiError::Rejected(rej.status(), rej.body_text()));
        }
        match Json::<T>::from_bytes(&body) {
            Ok(Json(v)) => Ok(ApiOptionalJson(Some(v))),
            Err(rej) => Err(ApiError::Rejected(rej.status(), rej.body_text())),
        }
    }
}

/// `Query<T>` whose rejections answer with [`ApiError`].
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(ApiError::Rejected(rej.status(), rej.body_text())),
        }
    }
}
