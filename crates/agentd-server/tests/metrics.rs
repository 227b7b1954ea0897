//! `GET /metrics` (issue 13): requests by route template and status, claims, task
//! outcomes and the queue depth, beside the liveness and bus counters — in Prometheus'
//! text format, without a token.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// The value of the sample `series` (name and labels exactly as printed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(srv: &Srv) -> String {
    let resp = srv.get_anonymous("/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_by_route_claims_outcomes_and_the_queue() {
    let srv = start().await;
    let fx = srv.fixture("metrics").await;
    let first = srv.assigned_issue(&fx, "first").await;
    let second = srv.assigned_issue(&fx, "second").await;
    let third = srv.assigned_issue(&fx, "third").await;

    let before = scrape(&srv).await;
    assert_eq!(
        sample(&before, "agentd_tasks_queued"),
        Some(3.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "agentd_claims_total{result=\"task\"}"),
        Some(0.0)
    );

    // One task completes, one is cancelled by a member, one stays queued.
    let done = srv.claim_and_start(&fx).await;
    let (s, v) = srv
        .post(
            &fx.daemon,
            &format!("/api/daemon/tasks/{done}/complete"),
            json!({"output": "ok"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, detail) = srv
        .get(&fx.token, &format!("/api/v1/issues/{second}"))
        .await;
    let queued = detail["tasks"][0]["id"].as_str().unwrap().to_string();
    let (s, v) = srv
        .post(
            &fx.token,
            &format!("/api/v1/tasks/{queued}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A 404 is counted under its route too, never under the id.
    let (s, _) = srv.get(&fx.token, "/api/v1/issues/AGD-404").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let _ = (first, third);

    let after = scrape(&srv).await;
    assert_eq!(sample(&after, "agentd_tasks_queued"), Some(1.0), "{after}");
    assert_eq!(
        sample(&after, "agentd_claims_total{result=\"task\"}"),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "agentd_tasks_ended_total{outcome=\"completed\"}"),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "agentd_tasks_ended_total{outcome=\"cancelled\"}"),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "agentd_tasks_ended_total{outcome=\"failed\"}"),
        Some(0.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "agentd_http_requests_total{method=\"GET\",route=\"/api/v1/issues/{id}\",status=\"404\"}"
        ),
        Some(1.0),
        "{after}"
    );
    assert!(
        sample(
            &after,
            "agentd_http_requests_total{method=\"POST\",route=\"/api/daemon/runtimes/{rid}/tasks/claim\",status=\"200\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{after}"
    );
    // No concrete id ever becomes a label.
    assert!(!after.contains(&queued), "{after}");
    assert!(
        sample(&after, "agentd_ws_connections").is_some(),
        "the liveness and bus rows stay: {after}"
    );
    srv.stop().await;
}
