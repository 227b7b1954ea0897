//! `GET /api/v1/workspaces/{wid}/events`: the workspace's [`WorkspaceEvent`]s as
//! server-sent events (`event: <kind>`, `data: <json>`), for boards. The first event is
//! always `resync` (refetch: anything may have changed while you were away), and so is
//! the event after a subscriber fell too far behind. Keep-alive comments every 15 s. The
//! stream ends when the server shuts down. A token holds at most
//! `max_event_streams_per_token` streams at once; one more is 429.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use agentd_proto::api::WorkspaceEvent;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use crate::App;
use crate::auth::{Member, Principal};
use crate::events::Events;
use crate::service::workspace;

pub async fn stream(
    State(app): State<Arc<App>>,
    Member(who): Member,
    Path(wid): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let ws = workspace::visible(&app, &who, &wid).await?;
    let cap = app.config.max_event_streams_per_token;
    let slot = app.events.open_stream(&holder(&who), cap).ok_or_else(|| {
        ApiError::Rejected(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many event streams: this token already holds {cap} open (the limit); \
                     close one first"
            ),
        )
    })?;
    let state = Sub {
        rx: app.events.subscribe(),
        workspace_id: ws.id,
        shutdown: app.shutdown.clone(),
        first: true,
        _slot: Some(slot),
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        let ev = s.next().await?;
        let sse = Event::default()
            .event(ev.kind.clone())
            .data(serde_json::to_string(&ev).unwrap_or_default());
        Some((Ok(sse), s))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Whose streams a stream counts against: the token's id.
fn holder(who: &Principal) -> String {
    match who {
        Principal::Token { token_id, .. } => format!("token:{token_id}"),
        Principal::User(u) => format!("session:{}", u.session_hash),
        Principal::Task(t) => format!("task:{}", t.id),
    }
}

/// One subscriber's position in the event stream.
struct Sub {
    rx: tokio::sync::broadcast::Receiver<WorkspaceEvent>,
    workspace_id: String,
    shutdown: tokio_util::sync::CancellationToken,
    first: bool,
    /// Counts this stream against its token's cap until the stream is dropped.
    _slot: Option<crate::events::StreamSlot>,
}

impl Sub {
    /// The next event of this workspace; `None` once the server shuts down.
    async fn next(&mut self) -> Option<WorkspaceEvent> {
        if std::mem::take(&mut self.first) {
            return Some(Events::event("resync", &self.workspace_id));
        }
        loop {
            let got = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                got = self.rx.recv() => got,
            };
            match got {
                Ok(ev) if ev.workspace_id == self.workspace_id => return Some(ev),
                // A resync for every workspace (the signal bus may have lost events).
                Ok(ev) if ev.workspace_id.is_empty() && ev.kind == "resync" => {
                    return Some(Events::event("resync", &self.workspace_id));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => {
                    return Some(Events::event("resync", &self.workspace_id));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(events: &Events, ws: &str) -> Sub {
        Sub {
            rx: events.subscribe(),
            workspace_id: ws.to_string(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            first: true,
            _slot: None,
        }
    }

    #[tokio::test]
    async fn starts_with_resync_filters_by_workspace_and_resyncs_after_lag() {
        let events = Events::default();
        let mut s = sub(&events, "w1");
        assert_eq!(s.next().await.unwrap().kind, "resync");
        events.publish(Events::event("issue", "w2"));
        events.publish(Events::event("task", "w1"));
        assert_eq!(s.next().await.unwrap().kind, "task", "w2's event skipped");
        // A subscriber that falls more than the channel's capacity behind is told to
        // resync, then continues with what is still buffered.
        for _ in 0..crate::events::CAPACITY + 10 {
            events.publish(Events::event("messages", "w1"));
        }
        assert_eq!(s.next().await.unwrap().kind, "resync");
        assert_eq!(s.next().await.unwrap().kind, "messages");
    }

    #[tokio::test]
    async fn ends_on_shutdown() {
        let events = Events::default();
        let mut s = sub(&events, "w1");
        s.next().await;
        s.shutdown.cancel();
        assert!(s.next().await.is_none());
    }
}
