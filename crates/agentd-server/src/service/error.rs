//! [`Error`]: why a domain operation refused or failed, in the domain's words. The HTTP
//! layer maps each variant to a status (`api::error`, the only place that knows HTTP);
//! the messages are the bodies clients see, so some are contracts: the daemon self-heals
//! on [`agentd_proto::RUNTIME_NOT_FOUND`] and stops a task's agent on
//! [`agentd_proto::TASK_NOT_FOUND`].

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that can never succeed (missing field, not an id, unknown status).
    #[error("{0}")]
    BadInput(String),
    /// No credentials, or ones that do not name a caller.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing, or not one the caller may see (the same answer, so ids cannot be
    /// probed).
    #[error("{0}")]
    NotFound(&'static str),
    /// The thing is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// A conflict with a machine-readable `code` (`agentd_proto::ERROR_AMBIGUOUS`,
    /// `ERROR_ALREADY_RETRIED`, `ERROR_ALREADY_ENDED`) and the objects it is about.
    #[error("{message}")]
    Refused {
        code: &'static str,
        message: String,
        matches: Vec<agentd_proto::api::RefMatch>,
    },
    /// It existed but can be used no more (an expired or revoked invitation).
    #[error("{0}")]
    Gone(String),
    /// Too many failed attempts (sign-in): try again later.
    #[error("{0}")]
    TooManyAttempts(String),
    /// A server this one depends on (the OIDC provider) failed or is unreachable (502).
    #[error("{0}")]
    Upstream(String),
    /// The server failed at something other than its database (e.g. writing a file).
    #[error("{0}")]
    Internal(String),
    /// Persistence failed: never "not found", so a transient fault cannot make a daemon
    /// self-heal.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    pub fn bad(msg: impl Into<String>) -> Error {
        Error::BadInput(msg.into())
    }
}
