//! The daemon's side of the wire: the HTTP client ([`http`]) and the WebSocket session
//! ([`ws`]). Declarations and re-exports only.

pub mod http;
pub mod ws;

pub use http::{ApiError, Client, ClientIdentity};
