//! The board's live stream over real HTTP: `GET /api/v1/workspaces/{wid}/events`.

mod common;

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An open SSE response and what has been read of it.
struct Sse {
    body: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = reqwest::Result<tokio_util::bytes::Bytes>> + Send>,
    >,
    buf: String,
}

/// `GET /api/v1/workspaces/{ws}/events` with `token`; the response, body unread.
async fn request(srv: &common::Srv, token: &str, ws: &str) -> reqwest::Response {
    srv.http
        .get(format!("{}/api/v1/workspaces/{ws}/events", srv.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

impl Sse {
    async fn open(srv: &common::Srv, token: &str, ws: &str) -> Sse {
        let resp = request(srv, token, ws).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Sse {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// Asserts the next event is runtime `rt` turning `status`.
    async fn expect_runtime(&mut self, rt: &str, status: &str) {
        let (kind, ev) = self.next().await;
        assert_eq!(
            (
                kind.as_str(),
                ev["runtime_id"].as_str(),
                ev["status"].as_str()
            ),
            ("runtime", Some(rt), Some(status)),
            "{ev}"
        );
    }

    /// The next event's `(event, data)`, skipping keep-alive comments.
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut kind = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(k) = line.strip_prefix("event: ") {
                        kind = k.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if !data.is_empty() {
                    return (kind, serde_json::from_str(&data).unwrap());
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.body.next())
                .await
                .expect("an event within 5 s")
                .expect("stream open")
                .unwrap();
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn a_board_sees_its_workspace_change_and_nothing_else() {
    let srv = common::start().await;
    let a = srv.fixture("a").await;
    let b = srv.fixture("b").await;
    let mut sse = Sse::open(&srv, &a.token, &a.ws).await;
    let (kind, first) = sse.next().await;
    assert_eq!(
        (kind.as_str(), first["workspace_id"].as_str()),
        ("resync", Some(a.ws.as_str()))
    );

    // Another workspace's issue is not streamed here; ours is, then its queued task.
    srv.assigned_issue(&b, "theirs").await;
    let issue = srv.assigned_issue(&a, "ours").await;
    let (kind, ev) = sse.next().await;
    assert_eq!(kind, "issue", "{ev}");
    assert_eq!(ev["issue_id"], issue.as_str());
    let (kind, ev) = sse.next().await;
    assert_eq!(kind, "task", "{ev}");
    assert_eq!(ev["status"], "queued");
    assert_eq!(ev["issue_id"], issue.as_str());
    let task = ev["task_id"].as_str().unwrap().to_string();

    // The daemon's claim, start and messages stream in as they happen.
    srv.claim(&a, None).await;
    assert_eq!(sse.next().await.1["status"], "dispatched");
    let (s, _) = srv
        .post(
            &a.daemon,
            &format!("/api/daemon/tasks/{task}/start"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sse.next().await.1["status"], "running");
    let (s, _) = srv
        .post(
            &a.daemon,
            &format!("/api/daemon/tasks/{task}/messages"),
            json!({"messages": [{"seq": 1, "type": "text", "content": "hi"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (kind, ev) = sse.next().await;
    assert_eq!(
        (kind.as_str(), ev["task_id"].as_str()),
        ("messages", Some(task.as_str()))
    );

    // A comment, and a runtime deletion.
    let (s, _) = srv
        .post(
            &a.token,
            &format!("/api/v1/issues/{issue}/comments"),
            json!({"body": "hey"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(sse.next().await.0, "comment");
    let (s, _) = srv
        .delete(&a.token, &format!("/api/v1/runtimes/{}", a.runtime))
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut kinds = Vec::new();
    loop {
        let (kind, ev) = sse.next().await;
        kinds.push(kind.clone());
        if kind == "runtime" && ev["status"] == "deleted" {
            break;
        }
    }
    assert!(
        kinds.contains(&"task".to_string()),
        "the running task failed: {kinds:?}"
    );
}

#[tokio::test]
async fn the_stream_is_scoped_like_the_rest_of_the_api() {
    let srv = common::start().await;
    let a = srv.fixture("a").await;
    let b = srv.fixture("b").await;
    for (token, ws, want) in [
        (b.token.as_str(), a.ws.as_str(), StatusCode::NOT_FOUND),
        ("", a.ws.as_str(), StatusCode::UNAUTHORIZED),
        (
            a.token.as_str(),
            "00000000-0000-0000-0000-000000000000",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let resp = request(&srv, token, ws).await;
        assert_eq!(resp.status(), want);
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let srv = common::start().await;
    let a = srv.fixture("a").await;
    let mut sse = Sse::open(&srv, &a.token, &a.ws).await;
    sse.next().await;
    // The server stops promptly even with a board connected.
    tokio::time::timeout(Duration::from_secs(10), srv.stop())
        .await
        .expect("server stopped with an open event stream");
}

#[tokio::test]
async fn runtimes_going_offline_and_back_and_agents_are_streamed() {
    let srv = common::start().await;
    let a = srv.fixture("a").await;
    let mut sse = Sse::open(&srv, &a.token, &a.ws).await;
    assert_eq!(sse.next().await.0, "resync");
    let rt = a.runtime.as_str();

    // Offline (the daemon deregisters), then back through a plain heartbeat.
    let (s, _) = srv
        .post(
            &a.daemon,
            "/api/daemon/deregister",
            json!({"runtime_ids": [rt]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    sse.expect_runtime(rt, "offline").await;
    let beat = json!({"runtime_id": rt});
    let (s, _) = srv
        .post(&a.daemon, "/api/daemon/heartbeat", beat.clone())
        .await;
    assert_eq!(s, StatusCode::OK);
    sse.expect_runtime(rt, "online").await;

    // A heartbeat of a runtime already online is not news; an agent change is.
    let (s, _) = srv.post(&a.daemon, "/api/daemon/heartbeat", beat).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = srv
        .patch(
            &a.token,
            &format!("/api/v1/agents/{}", a.agent),
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (kind, ev) = sse.next().await;
    assert_eq!(
        (kind.as_str(), ev["agent_id"].as_str()),
        ("agent", Some(a.agent.as_str()))
    );
}

#[tokio::test]
async fn a_token_holds_at_most_eight_event_streams() {
    let srv = common::start().await;
    assert_eq!(srv.app.config.max_event_streams_per_token, 8, "the default");
    let a = srv.fixture("a").await;
    let mut open = Vec::new();
    for _ in 0..8 {
        let mut sse = Sse::open(&srv, &a.token, &a.ws).await;
        assert_eq!(sse.next().await.0, "resync");
        open.push(sse);
    }
    // The ninth of the same token is refused, naming the cap.
    let resp = request(&srv, &a.token, &a.ws).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = resp.json().await.unwrap();
    let err = body["error"].as_str().unwrap();
    assert!(err.contains("8") && err.contains("event streams"), "{err}");
    // Another token is not affected.
    let mut admin = Sse::open(&srv, &srv.admin, &a.ws).await;
    assert_eq!(admin.next().await.0, "resync");
    // A closed stream frees its place.
    drop(open.pop());
    common::eventually(Duration::from_secs(5), || async {
        let resp = request(&srv, &a.token, &a.ws).await;
        (resp.status() == StatusCode::OK).then_some(())
    })
    .await;
    drop(open);
    srv.stop().await;
}
