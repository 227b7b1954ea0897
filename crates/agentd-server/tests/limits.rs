//! The server under hostile clients (issue 11, review M9), over real TCP: a slowloris is
//! disconnected after the header-read timeout, connections beyond the limit wait while
//! earlier ones are served, a request that is not complete within the request timeout
//! gets 503 while event streams and WebSockets outlive it, and an oversized WebSocket
//! frame closes the socket.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn addr(srv: &Srv) -> String {
    srv.url.trim_start_matches("http://").to_string()
}

/// Reads from `conn` until `needle` was seen (true), the peer closed (false) or `within`
/// passed (None).
async fn read_until(conn: &mut TcpStream, needle: &str, within: Duration) -> Option<bool> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(false),
            Ok(Ok(n)) => {
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    return Some(true);
                }
            }
        }
    }
}

/// Sends `GET /health` on a keep-alive connection; whether `{"status":"ok"}` came back
/// within `within` (None: no answer in time).
async fn health(conn: &mut TcpStream, within: Duration) -> Option<bool> {
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    read_until(conn, r#"{"status":"ok"}"#, within).await
}

#[tokio::test]
async fn a_slowloris_is_disconnected_after_the_header_read_timeout() {
    let srv = start_in(tempfile::tempdir().unwrap(), |c| {
        c.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    // Half a request head, then nothing.
    let mut slow = TcpStream::connect(addr(&srv)).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let t0 = Instant::now();
    let closed = read_until(&mut slow, "never", Duration::from_secs(10)).await;
    assert_eq!(
        closed,
        Some(false),
        "a half-sent head must be disconnected, not held"
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "disconnected after {took:?}, expected about the 500 ms header timeout"
    );
    // A connection that says nothing at all goes the same way.
    let mut silent = TcpStream::connect(addr(&srv)).await.unwrap();
    assert_eq!(
        read_until(&mut silent, "never", Duration::from_secs(10)).await,
        Some(false)
    );
    // A client that sends its head in time is served.
    let mut ok = TcpStream::connect(addr(&srv)).await.unwrap();
    assert_eq!(health(&mut ok, Duration::from_secs(5)).await, Some(true));
    srv.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_while_earlier_ones_are_served() {
    let srv = start_in(tempfile::tempdir().unwrap(), |c| {
        c.max_connections = 2;
    })
    .await;
    let mut a = TcpStream::connect(addr(&srv)).await.unwrap();
    let mut b = TcpStream::connect(addr(&srv)).await.unwrap();
    assert_eq!(health(&mut a, Duration::from_secs(5)).await, Some(true));
    assert_eq!(health(&mut b, Duration::from_secs(5)).await, Some(true));

    // The third connects (the kernel's backlog) but is not served while both are open...
    let mut c = TcpStream::connect(addr(&srv)).await.unwrap();
    assert_eq!(
        health(&mut c, Duration::from_millis(800)).await,
        None,
        "a connection beyond the limit was served"
    );
    // ...while the earlier ones still are.
    assert_eq!(health(&mut a, Duration::from_secs(5)).await, Some(true));
    // One closes: the waiting one is taken in and answered.
    drop(b);
    assert_eq!(
        read_until(&mut c, r#"{"status":"ok"}"#, Duration::from_secs(5)).await,
        Some(true),
        "the waiting connection is served once a slot frees"
    );
    drop((a, c));
    srv.stop().await;
}

#[tokio::test]
async fn a_websocket_holds_its_connection_slot() {
    let mut srv = start_in(tempfile::tempdir().unwrap(), |c| {
        c.max_connections = 2;
    })
    .await;
    // No pooled connection may hold a slot behind the test's back.
    srv.http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let fx = srv.fixture("w").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ws = srv.ws(&fx.daemon, &[&fx.runtime]).await;
    let mut a = TcpStream::connect(addr(&srv)).await.unwrap();
    assert_eq!(health(&mut a, Duration::from_secs(5)).await, Some(true));
    let mut c = TcpStream::connect(addr(&srv)).await.unwrap();
    assert_eq!(
        health(&mut c, Duration::from_millis(800)).await,
        None,
        "an upgraded WebSocket still counts as a connection"
    );
    drop(ws);
    assert_eq!(
        read_until(&mut c, r#"{"status":"ok"}"#, Duration::from_secs(5)).await,
        Some(true)
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_request_not_complete_in_time_gets_503_but_streams_and_websockets_live_on() {
    let srv = start_in(tempfile::tempdir().unwrap(), |c| {
        c.request_timeout = Duration::from_millis(400);
    })
    .await;
    let fx = srv.fixture("w").await;

    // A body that never finishes arriving: the handler waits on it, the timeout answers.
    let mut slow = TcpStream::connect(addr(&srv)).await.unwrap();
    let head = format!(
        "POST /api/v1/workspaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        srv.admin
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let t0 = Instant::now();
    assert_eq!(
        read_until(&mut slow, "request timed out", Duration::from_secs(5)).await,
        Some(true),
        "no 503 for a request that never completes"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t0.elapsed()
    );

    // An event stream and a daemon WebSocket opened now outlive several request timeouts.
    let resp = srv
        .http
        .get(format!("{}/api/v1/workspaces/{}/events", srv.url, fx.ws))
        .bearer_auth(&fx.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut events = Box::pin(resp.bytes_stream());
    let mut ws = srv.ws(&fx.daemon, &[&fx.runtime]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    srv.assigned_issue(&fx, "after the timeout").await;
    let mut seen = String::new();
    while !seen.contains("event: issue") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("the event stream is still open past the request timeout")
            .expect("stream open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    ws.send(Message::Text(
        json!({"type": "daemon:heartbeat", "payload": {"runtime_id": fx.runtime}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let ack = next_frame(&mut ws, "daemon:heartbeat_ack", Duration::from_secs(5)).await;
    assert_eq!(ack["runtime_id"], fx.runtime.as_str(), "{ack}");
    srv.stop().await;
}

#[tokio::test]
async fn an_oversized_websocket_frame_closes_the_socket() {
    let srv = start().await;
    let fx = srv.fixture("w").await;
    let heartbeat = || {
        Message::Text(
            json!({"type": "daemon:heartbeat", "payload": {"runtime_id": fx.runtime}})
                .to_string()
                .into(),
        )
    };
    // Just under 64 KiB is a frame like any other (ignored, not a heartbeat).
    let mut ws = srv.ws(&fx.daemon, &[&fx.runtime]).await;
    ws.send(Message::Text("x".repeat(60 * 1024).into()))
        .await
        .unwrap();
    ws.send(heartbeat()).await.unwrap();
    next_frame(&mut ws, "daemon:heartbeat_ack", Duration::from_secs(5)).await;

    // One frame over 64 KiB: the server closes the socket.
    ws.send(Message::Text("x".repeat(65 * 1024 + 1).into()))
        .await
        .unwrap();
    let _ = ws.send(heartbeat()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the socket is closed within 5 s of an oversized frame");
        match next {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_ne!(
                    v["type"], "daemon:heartbeat_ack",
                    "the socket lived on after an oversized frame"
                );
            }
            Some(Ok(_)) => {}
        }
    }
    srv.stop().await;
}
