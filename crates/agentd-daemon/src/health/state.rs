//! [`Health`]: what the daemon knows about its own state — running, or what is wrong
//! (`unauthorized`, `server_unreachable`, `clock_skew`, …) with a detail — and whether
//! the WebSocket is up. Every answer and failure from the server feeds it; the health
//! endpoint reads it.

use std::sync::Mutex;
use std::time::Duration;

use agentd_proto::health::HealthState;

use crate::api::ApiError;
use crate::fsutil::lock;

/// What the health endpoint reports.
#[derive(Debug, Clone)]
pub struct HealthInfo {
    pub state: HealthState,
    pub detail: Option<String>,
    pub ws_connected: bool,
}

pub struct Health {
    /// **Invariant:** one short critical section per change; never held across an
    /// `.await`.
    info: Mutex<HealthInfo>,
    /// The largest clock difference with the server that is not reported.
    clock_skew_tolerance: Duration,
}

impl Health {
    pub fn new(clock_skew_tolerance: Duration) -> Health {
        Health {
            info: Mutex::new(HealthInfo {
                state: HealthState::Starting,
                detail: None,
                ws_connected: false,
            }),
            clock_skew_tolerance,
        }
    }

    pub fn info(&self) -> HealthInfo {
        lock(&self.info).clone()
    }

    pub fn state(&self) -> HealthState {
        lock(&self.info).state
    }

    /// Sets the state (and its detail), logging transitions once.
    pub fn set(&self, state: HealthState, detail: Option<String>) {
        let mut h = lock(&self.info);
        if h.state != state {
            match state {
                HealthState::Running => tracing::info!("daemon is healthy"),
                _ => {
                    tracing::warn!(state = ?state, detail = detail.as_deref().unwrap_or(""), "daemon health changed")
                }
            }
        }
        h.state = state;
        h.detail = detail;
    }

    pub fn set_ws_connected(&self, connected: bool) {
        lock(&self.info).ws_connected = connected;
    }

    /// The server answered. Checks its clock against ours when it told us the time.
    pub fn note_server_ok(&self, server_time: Option<jiff::Timestamp>) {
        if let Some(server) = server_time {
            let skew = jiff::Timestamp::now().duration_since(server).unsigned_abs();
            let tolerance = self.clock_skew_tolerance;
            if skew > tolerance {
                self.set(
                    HealthState::ClockSkew,
                    Some(format!(
                        "server clock differs from this machine's by {}s (tolerance {}s); timestamps in logs and the board will disagree, fix NTP on one side",
                        skew.as_secs(),
                        tolerance.as_secs()
                    )),
                );
                return;
            }
        }
        if self.state() != HealthState::Stopping {
            self.set(HealthState::Running, None);
        }
    }

    /// A call failed: record what it says about the server.
    pub fn note_api_error(&self, e: &ApiError) {
        match e {
            ApiError::Unauthorized { .. } => self.set(
                HealthState::Unauthorized,
                Some(format!("the server rejects this daemon's token: {e}; create a new token and restart, or fix it on the server")),
            ),
            e if e.is_transient() => {
                self.set(HealthState::ServerUnreachable, Some(e.to_string()));
            }
            _ => {}
        }
    }
}
