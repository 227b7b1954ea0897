//! Rust twins of the seed (`runtime_gone_test.go`): one test per Go test, same intent,
//! named after it in snake_case. They run against the testkit's fake server on
//! 127.0.0.1:0 the way the seed uses httptest; where the seed injects timestamps, these
//! inject `tokio::time::Instant`s; nothing waits on a sleep to win a race.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agentd_proto::{HeartbeatResponse, Runtime};
use agentd_testkit::fake_server::{FakeServer, RegisterMode};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agents::FixedVersion;
use crate::api::{Client, ClientIdentity};
use crate::config::{AgentEntry, DaemonConfig};
use crate::daemon::Daemon;
use crate::gate::REREGISTER_FAILURE_BACKOFF;

const TOKEN: &str = "test-token";

fn config(server_url: &str, providers: &[&str]) -> DaemonConfig {
    let mut cfg = DaemonConfig::new(server_url, TOKEN, std::env::temp_dir());
    cfg.daemon_id = "daemon-1".into();
    cfg.device_name = "test-host".into();
    cfg.http_timeout = Duration::from_secs(30);
    cfg.agents = providers
        .iter()
        .map(|p| AgentEntry {
            provider: p.to_string(),
            path: "/usr/bin/true".into(),
        })
        .collect();
    cfg
}

fn client(server_url: &str) -> Client {
    Client::new(
        server_url,
        TOKEN,
        Duration::from_secs(30),
        ClientIdentity::default(),
    )
}

/// A daemon with every map empty, as the seed's `freshDaemon`; the version probe answers
/// 9.9.9 for every CLI (the seed's `stubAgentVersion`).
fn fresh_daemon_with(c: Client, providers: &[&str]) -> Arc<Daemon> {
    let cfg = config(c.base_url(), providers);
    Daemon::new(
        cfg,
        c,
        Arc::new(FixedVersion("9.9.9".into())),
        CancellationToken::new(),
    )
}

fn fresh_daemon(server_url: &str) -> Arc<Daemon> {
    fresh_daemon_with(client(server_url), &["claude"])
}

fn track(d: &Daemon, workspace_id: &str, runtimes: &[(&str, &str)]) {
    d.registry.track(workspace_id, runtimes, &[]);
}

fn runtime_ids(d: &Daemon, workspace_id: &str) -> Vec<String> {
    d.registry.runtime_ids(workspace_id)
}

fn indexed(d: &Daemon, id: &str) -> bool {
    d.registry.runtime(id).is_some()
}

fn fresh_mark(d: &Daemon, id: &str) -> bool {
    d.registry.has_fresh_mark(id)
}

/// The seed's `handleRuntimeGoneFixture`: every register answers one `rt-new`.
async fn rt_new_fixture() -> (FakeServer, Arc<Daemon>) {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    fake.set_register_mode(RegisterMode::Fixed(vec![Runtime {
        id: "rt-new".into(),
        name: "Claude".into(),
        provider: "claude".into(),
        status: "online".into(),
    }]));
    let d = fresh_daemon(&fake.url);
    (fake, d)
}

/// The seed's `multiProviderRegisterFixture`: upsert semantics, claude and codex rows.
async fn multi_provider_fixture() -> (FakeServer, Arc<Daemon>) {
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    fake.seed_runtime("ws-1", "daemon-1", "claude", "rt-claude-1");
    fake.seed_runtime("ws-1", "daemon-1", "codex", "rt-codex-1");
    let d = fresh_daemon_with(client(&fake.url), &["claude", "codex"]);
    track(
        &d,
        "ws-1",
        &[("rt-claude-1", "claude"), ("rt-codex-1", "codex")],
    );
    (fake, d)
}

#[tokio::test]
async fn remove_stale_runtime_prunes_all_local_state() {
    let d = fresh_daemon("http://127.0.0.1:9");
    track(&d, "ws-1", &[("rt-1", ""), ("rt-2", ""), ("rt-3", "")]);
    d.registry.mark_ws_fresh("rt-2");

    assert_eq!(
        d.registry.remove_stale_runtime("rt-2").as_deref(),
        Some("ws-1")
    );
    assert_eq!(runtime_ids(&d, "ws-1"), ["rt-1", "rt-3"]);
    assert!(!indexed(&d, "rt-2"), "runtime index still contains rt-2");
    assert!(!fresh_mark(&d, "rt-2"), "WS freshness still contains rt-2");
}

#[tokio::test]
async fn remove_stale_runtime_unknown_runtime_is_noop() {
    let d = fresh_daemon("http://127.0.0.1:9");
    track(&d, "ws-1", &[("rt-1", "")]);

    assert_eq!(d.registry.remove_stale_runtime("rt-unknown"), None);
    assert_eq!(
        runtime_ids(&d, "ws-1"),
        ["rt-1"],
        "unrelated workspace mutated"
    );
}

#[tokio::test]
async fn remove_stale_runtime_preserves_workspace_state_pointer() {
    // A workspace's state is mutated in place, never replaced: what the last register
    // answer brought (its repositories, the allow-list every task checks) must survive
    // pruning a runtime, even the last one.
    let d = fresh_daemon("http://127.0.0.1:9");
    d.registry
        .track("ws-1", &[("rt-1", "")], &["https://example.com/a.git"]);

    d.registry.remove_stale_runtime("rt-1");

    assert!(d.registry.is_tracked("ws-1"), "workspace entry was dropped");
    assert_eq!(
        d.registry.allowed_repos("ws-1"),
        ["https://example.com/a.git"],
        "workspace state was replaced: the register answer's repos are gone"
    );
}

#[tokio::test]
async fn handle_runtime_gone_prunes_and_reregisters() {
    let (fake, d) = rt_new_fixture().await;
    track(&d, "ws-1", &[("rt-old", "claude")]);
    d.registry.mark_ws_fresh("rt-old");

    d.handle_runtime_gone("rt-old").await;

    assert!(!indexed(&d, "rt-old"), "rt-old still in the runtime index");
    assert!(
        indexed(&d, "rt-new"),
        "rt-new not indexed after re-register"
    );
    assert_eq!(runtime_ids(&d, "ws-1"), ["rt-new"]);
    assert!(
        !fresh_mark(&d, "rt-old"),
        "WS freshness not cleared for rt-old"
    );
    assert_eq!(fake.register_count(), 1);
    assert_eq!(
        fake.recovered(),
        ["rt-new"],
        "recover-orphans not called for the new id"
    );
}

/// Runs one stampede: `n` callers for `n` runtimes of one workspace, all at once.
async fn stampede(d: &Arc<Daemon>, n: usize) {
    let ids: Vec<String> = (0..n).map(|i| format!("rt-{i}")).collect();
    let pairs: Vec<(&str, &str)> = ids.iter().map(|i| (i.as_str(), "claude")).collect();
    track(d, "ws-1", &pairs);
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut handles = Vec::new();
    for id in ids {
        let d = Arc::clone(d);
        let barrier = Arc::clone(&barrier);
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            d.handle_runtime_gone(&id).await;
        }));
    }
    for h in handles {
        h.await.expect("caller panicked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handle_runtime_gone_coalesces_concurrent_callers() {
    // Heartbeat, poller and WS may each detect the same stale workspace within one beat.
    // Exactly one re-register must reach the server.
    let (fake, d) = rt_new_fixture().await;

    stampede(&d, 3).await;

    assert_eq!(
        fake.register_count(),
        1,
        "register called more than once under stampede"
    );
    assert_eq!(runtime_ids(&d, "ws-1"), ["rt-new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handle_runtime_gone_coalesces_concurrent_callers_stress() {
    // The stampede repeated 500 times with 32 concurrent callers: exactly one register per
    // wave, every time. Each wave is a fresh daemon (as a restarted process would be)
    // sharing one HTTP client and one fake server.
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    fake.set_register_mode(RegisterMode::Fixed(vec![Runtime {
        id: "rt-new".into(),
        provider: "claude".into(),
        ..Runtime::default()
    }]));
    let c = client(&fake.url);
    for wave in 0..500u64 {
        let d = fresh_daemon_with(c.clone(), &["claude"]);
        stampede(&d, 32).await;
        assert_eq!(
            fake.register_count(),
            wave + 1,
            "wave {wave}: not exactly one register"
        );
        assert_eq!(runtime_ids(&d, "ws-1"), ["rt-new"], "wave {wave}");
    }
}

#[tokio::test]
async fn handle_runtime_gone_backoff_on_failure() {
    // The register endpoint answers 500: one attempt makes the round trip and the next
    // immediate call is held off by the failure backoff — no register spam.
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    fake.set_register_mode(RegisterMode::Fail(500));
    let d = fresh_daemon(&fake.url);
    track(&d, "ws-1", &[("rt-1", "claude"), ("rt-2", "claude")]);

    d.handle_runtime_gone("rt-1").await;
    d.handle_runtime_gone("rt-2").await;

    assert_eq!(
        fake.register_count(),
        1,
        "second call should have been coalesced"
    );
    // Local pruning still happened for both; workspace sync retries the empty workspace.
    assert!(runtime_ids(&d, "ws-1").is_empty());
    assert!(d.registry.workspace_needs_runtime_recovery("ws-1"));
}

#[tokio::test]
async fn handle_ws_heartbeat_ack_runtime_gone_triggers_recovery() {
    // The WS twin of an HTTP 404: no freshness mark may be recorded for a gone runtime,
    // or the HTTP heartbeat would skip its tick and the daemon believe it alive.
    let (fake, d) = rt_new_fixture().await;
    track(&d, "ws-1", &[("rt-old", "claude")]);
    d.registry.mark_ws_fresh("rt-old");

    d.handle_ws_heartbeat_ack(Some(&HeartbeatResponse {
        runtime_id: "rt-old".into(),
        status: "runtime_gone".into(),
        runtime_gone: true,
        ..HeartbeatResponse::default()
    }));
    // The recovery runs detached on the daemon's tracker: wait for it, no spinning.
    d.tracker.close();
    d.tracker.wait().await;

    assert!(
        !indexed(&d, "rt-old"),
        "rt-old not pruned after runtime_gone ack"
    );
    assert!(indexed(&d, "rt-new"));
    assert!(
        !fresh_mark(&d, "rt-old"),
        "freshness mark kept for a gone runtime"
    );
    assert_eq!(fake.register_count(), 1);
}

#[tokio::test]
async fn handle_ws_heartbeat_ack_normal_ack_records_freshness() {
    let d = fresh_daemon("http://127.0.0.1:9");
    d.handle_ws_heartbeat_ack(Some(&HeartbeatResponse {
        runtime_id: "rt-1".into(),
        status: "ok".into(),
        ..HeartbeatResponse::default()
    }));
    assert!(d.ws_heartbeat_recently_acked("rt-1"));
}

#[tokio::test]
async fn handle_ws_heartbeat_ack_empty_ack_ignored() {
    let d = fresh_daemon("http://127.0.0.1:9");
    d.handle_ws_heartbeat_ack(None);
    d.handle_ws_heartbeat_ack(Some(&HeartbeatResponse::default()));
    assert_eq!(d.registry.fresh_marks(), 0, "empty ack recorded state");
    assert_eq!(d.tracker.len(), 0, "empty ack spawned a recovery");
}

#[tokio::test]
async fn workspace_needs_runtime_recovery() {
    let d = fresh_daemon("http://127.0.0.1:9");
    track(&d, "ws-empty", &[]);
    track(&d, "ws-full", &[("rt-1", "")]);
    assert!(d.registry.workspace_needs_runtime_recovery("ws-empty"));
    assert!(!d.registry.workspace_needs_runtime_recovery("ws-full"));
    assert!(!d.registry.workspace_needs_runtime_recovery("ws-unknown"));
}

fn assert_unique(ids: &[String]) {
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "duplicate runtime ids: {ids:?}");
}

#[tokio::test]
async fn handle_runtime_gone_partial_workspace_recovery_keeps_sibling() {
    // Only the claude runtime is deleted. The register answer is authoritative for the
    // workspace: the surviving codex runtime must not be duplicated.
    let (fake, d) = multi_provider_fixture().await;
    fake.delete_provider("claude");

    d.handle_runtime_gone("rt-claude-1").await;

    let got = runtime_ids(&d, "ws-1");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_unique(&got);
    assert!(
        got.contains(&"rt-codex-1".to_string()),
        "surviving codex missing: {got:?}"
    );
    assert!(
        !got.contains(&"rt-claude-1".to_string()),
        "deleted claude kept: {got:?}"
    );
    assert!(!indexed(&d, "rt-claude-1"));
    assert!(indexed(&d, "rt-codex-1"));
    let new_claude = fake.runtime_id_of("claude").unwrap();
    assert!(
        got.contains(&new_claude),
        "fresh claude id {new_claude} missing: {got:?}"
    );
}

#[tokio::test]
async fn handle_runtime_gone_distinct_deletions_within_coalesce_window_both_recover() {
    // Two sequential, distinct deletions within the 30 s coalesce window: success of the
    // first must not suppress the second.
    let (fake, d) = multi_provider_fixture().await;

    fake.delete_provider("claude");
    d.handle_runtime_gone("rt-claude-1").await;
    assert_eq!(fake.register_count(), 1);
    let claude_after_first = fake.runtime_id_of("claude").unwrap();

    fake.delete_provider("codex");
    d.handle_runtime_gone("rt-codex-1").await;
    assert_eq!(
        fake.register_count(),
        2,
        "coalesce window must clear on success"
    );

    let got = runtime_ids(&d, "ws-1");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_unique(&got);
    assert!(
        got.contains(&claude_after_first),
        "{got:?} lost {claude_after_first}"
    );
}

#[tokio::test]
async fn try_claim_register_slot_first_caller_claims() {
    let d = fresh_daemon("http://127.0.0.1:9");
    let t0 = Instant::now();
    assert!(d.gate.try_claim("ws-1", t0, t0));
}

#[tokio::test]
async fn try_claim_register_slot_straggler_bails_after_sibling_success() {
    // B enters at T0, A at T0+1ms; A claims, registers, succeeds at T0+50ms. B reaches
    // the gate at T0+60ms: same wave, already covered, must bail.
    let d = fresh_daemon("http://127.0.0.1:9");
    let t0 = Instant::now();
    let a_entry = t0 + Duration::from_millis(1);
    assert!(d.gate.try_claim("ws-1", a_entry, a_entry));
    d.gate.record("ws-1", t0 + Duration::from_millis(50), false);

    assert!(
        !d.gate.try_claim("ws-1", t0, t0 + Duration::from_millis(60)),
        "same-wave straggler re-claimed after the sibling's success"
    );
}

#[tokio::test]
async fn try_claim_register_slot_distinct_later_event_claims() {
    let d = fresh_daemon("http://127.0.0.1:9");
    let t0 = Instant::now();
    assert!(d.gate.try_claim("ws-1", t0, t0));
    d.gate.record("ws-1", t0 + Duration::from_millis(50), false);

    let later = t0 + Duration::from_millis(100);
    assert!(
        d.gate.try_claim("ws-1", later, later),
        "a genuinely later event must claim"
    );
}

#[tokio::test]
async fn try_claim_register_slot_failure_backoff_suppresses_retries() {
    let d = fresh_daemon("http://127.0.0.1:9");
    let t0 = Instant::now();
    assert!(d.gate.try_claim("ws-1", t0, t0));
    let fail_at = t0 + Duration::from_millis(50);
    d.gate.record("ws-1", fail_at, true);

    let within = fail_at + REREGISTER_FAILURE_BACKOFF / 2;
    assert!(
        !d.gate.try_claim("ws-1", within, within),
        "call inside the failure backoff claimed"
    );
    let past = fail_at + REREGISTER_FAILURE_BACKOFF + Duration::from_secs(1);
    assert!(
        d.gate.try_claim("ws-1", past, past),
        "call past the failure backoff bailed"
    );
}

#[tokio::test]
async fn try_claim_register_slot_straggler_after_failed_sibling_retries_past_backoff() {
    // A failed register covered nothing: a straggler that entered before the failure and
    // arrives after the backoff must claim (partial deletions rely on this path).
    let d = fresh_daemon("http://127.0.0.1:9");
    let t0 = Instant::now();
    let a_entry = t0 + Duration::from_millis(1);
    assert!(d.gate.try_claim("ws-1", a_entry, a_entry));
    let fail_at = t0 + Duration::from_millis(50);
    d.gate.record("ws-1", fail_at, true);

    let b_arrive = fail_at + REREGISTER_FAILURE_BACKOFF + Duration::from_secs(1);
    assert!(
        d.gate.try_claim("ws-1", t0, b_arrive),
        "straggler predating a failed sibling must re-claim after the backoff"
    );
}

#[tokio::test]
async fn try_claim_register_slot_peer_holding_slot_forces_coalesce() {
    let d = fresh_daemon("http://127.0.0.1:9");
    let t0 = Instant::now();
    assert!(d.gate.try_claim("ws-1", t0, t0));
    let t1 = t0 + Duration::from_millis(1);
    assert!(
        !d.gate.try_claim("ws-1", t1, t1),
        "caller claimed while a peer holds the slot"
    );
}

#[tokio::test]
async fn handle_runtime_gone_recovery_context_survives_caller_cancellation() {
    // The caller is a heartbeat worker: its heartbeat answers 404 `runtime not found`, it
    // triggers the recovery and is torn down at once (as the runtime-set change does).
    // The re-register must still run to completion on the daemon's root token.
    let (fake, d) = rt_new_fixture().await;
    track(&d, "ws-1", &[("rt-old", "claude")]);
    let caller = CancellationToken::new();

    let keep_going = crate::heartbeat::heartbeat_tick(&d, "rt-old", &caller).await;
    caller.cancel();
    assert!(
        !keep_going,
        "heartbeat worker should stop after runtime not found"
    );
    d.tracker.close();
    d.tracker.wait().await;

    assert_eq!(
        fake.shared.register_abandoned.load(Ordering::SeqCst),
        0,
        "the register call was abandoned: recovery ran on the caller's context"
    );
    assert_eq!(fake.register_count(), 1);
    assert_eq!(runtime_ids(&d, "ws-1"), ["rt-new"]);
}

#[tokio::test]
async fn handle_runtime_gone_recovery_context_stops_on_daemon_shutdown() {
    // When the daemon shuts down, a recovery whose register is held open by the server
    // must return promptly instead of waiting for the 30 s client timeout.
    let fake = FakeServer::start(TOKEN, &["ws-1"]).await;
    fake.set_register_mode(RegisterMode::Hang(Duration::from_secs(20)));
    let d = fresh_daemon(&fake.url);
    track(&d, "ws-1", &[("rt-old", "claude")]);

    let entered = fake.shared.register_entered.notified();
    tokio::pin!(entered);
    entered.as_mut().enable();
    let recovery = tokio::spawn({
        let d = Arc::clone(&d);
        async move { d.handle_runtime_gone("rt-old").await }
    });
    tokio::time::timeout(Duration::from_secs(5), entered)
        .await
        .expect("register endpoint was never reached");

    d.root.cancel();
    tokio::time::timeout(Duration::from_secs(3), recovery)
        .await
        .expect("handle_runtime_gone did not abort after root cancellation")
        .expect("recovery panicked");
    // The aborted register counts as a failure: the backoff is armed, nothing stamped.
    assert!(d.gate.next_attempt("ws-1").is_some());
    assert!(d.gate.last_completed("ws-1").is_none());
}

/// Not a seed twin: the workspace-sync safety net goes through the same gate, so a failed
/// register of a workspace left with no runtimes is not retried by the periodic sync
/// until the failure backoff has passed (found by the register-500 fault drill).
#[tokio::test]
async fn workspace_sync_honours_the_register_failure_backoff() {
    let (fake, d) = rt_new_fixture().await;
    track(&d, "ws-1", &[("rt-old", "claude")]);
    fake.set_register_mode(RegisterMode::Fail(500));

    d.handle_runtime_gone("rt-old").await;
    assert_eq!(
        fake.register_count(),
        1,
        "the recovery tried once and failed"
    );
    assert!(d.registry.workspace_needs_runtime_recovery("ws-1"));

    // Within the backoff, any number of sync passes register nothing.
    for _ in 0..3 {
        d.sync_workspaces().await.ok();
    }
    assert_eq!(
        fake.register_count(),
        1,
        "sync waited for the failure backoff"
    );

    // Once the backoff has passed (injected: the gate's next attempt is now), the next
    // pass registers, and a success ends the safety net's work.
    fake.set_register_mode(RegisterMode::Fixed(vec![Runtime {
        id: "rt-new".into(),
        name: "Claude".into(),
        provider: "claude".into(),
        status: "online".into(),
    }]));
    let armed = d.gate.next_attempt("ws-1");
    assert!(
        armed.is_some_and(
            |t| t > Instant::now() + REREGISTER_FAILURE_BACKOFF - Duration::from_secs(5)
        ),
        "a ~60 s failure backoff is armed: {armed:?}"
    );
    d.gate.set_next_attempt("ws-1", Instant::now());
    d.sync_workspaces().await.expect("sync");
    assert_eq!(fake.register_count(), 2);
    assert_eq!(runtime_ids(&d, "ws-1"), ["rt-new"]);
    d.sync_workspaces().await.expect("sync");
    assert_eq!(fake.register_count(), 2, "nothing left to heal");
}
