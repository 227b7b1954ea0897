//! Property tests of the wire types: every value survives encode → decode unchanged, and
//! arbitrary input never panics a decoder (it may only be an error).

use agentd_proto::ws::{TaskAvailable, TaskCancelled, TaskPush, WsMessage};
use agentd_proto::*;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _\\-\\.:/é\"\\\\]{0,24}"
}

fn message_kind() -> impl Strategy<Value = MessageKind> {
    prop_oneof![
        Just(MessageKind::Text),
        Just(MessageKind::Thinking),
        Just(MessageKind::ToolUse),
        Just(MessageKind::ToolResult),
        Just(MessageKind::Error),
    ]
}

prop_compose! {
    fn task_message()(seq in 0i64..1_000_000, kind in message_kind(), tool in proptest::option::of(text()),
                      content in proptest::option::of(text()), output in proptest::option::of(text()),
                      input in proptest::option::of(text())) -> TaskMessage {
        TaskMessage { seq, kind, tool, content, output, input: input.map(|s| serde_json::json!({ "arg": s })), created_at: None }
    }
}

prop_compose! {
    fn heartbeat_response()(runtime_id in text(), status in text(), runtime_gone in any::<bool>()) -> HeartbeatResponse {
        HeartbeatResponse { runtime_id, status, runtime_gone, ..HeartbeatResponse::default() }
    }
}

prop_compose! {
    fn register_request()(workspace_id in text(), daemon_id in text(), device_name in text(),
                          legacy in proptest::collection::vec(text(), 0..3),
                          runtimes in proptest::collection::vec((text(), text(), text(), proptest::option::of(0u32..64), proptest::collection::vec(text(), 0..3)), 0..4)) -> RegisterRequest {
        RegisterRequest {
            workspace_id, daemon_id, device_name, legacy_daemon_ids: legacy,
            runtimes: runtimes.into_iter().map(|(name, provider, version, capacity, labels)| RuntimeSpec { name, provider, version, status: "online".into(), sandbox: None, capacity, labels }).collect(),
            ..RegisterRequest::default()
        }
    }
}

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
    v: &T,
) {
    let json = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, v, "{json}");
}

proptest! {
    #[test]
    fn messages_roundtrip(msgs in proptest::collection::vec(task_message(), 0..8)) {
        roundtrip(&MessagesRequest { messages: msgs });
    }

    #[test]
    fn register_roundtrips(req in register_request()) {
        roundtrip(&req);
    }

    #[test]
    fn heartbeat_acks_roundtrip_as_ws_frames(ack in heartbeat_response()) {
        let frame = WsMessage::HeartbeatAck(ack.clone()).encode();
        prop_assert_eq!(WsMessage::decode(&frame).unwrap(), WsMessage::HeartbeatAck(ack));
    }

    #[test]
    fn task_frames_roundtrip(rid in text(), tid in proptest::option::of(text())) {
        let a = WsMessage::TaskAvailable(TaskAvailable { runtime_id: rid.clone(), task_id: tid.clone() });
        prop_assert_eq!(WsMessage::decode(&a.encode()).unwrap(), a);
        let c = WsMessage::TaskCancelled(TaskCancelled { task_id: tid.unwrap_or_default(), runtime_id: Some(rid) });
        prop_assert_eq!(WsMessage::decode(&c.encode()).unwrap(), c);
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("payload".to_string()),
                    Just("id".to_string()),
                    Just("runtimes".to_string()),
                    text()
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn unknown_fields_are_ignored_and_unknown_kinds_kept() {
    let t: Task = serde_json::from_str(
        r#"{"id":"t1","future_field":{"x":1},"agent":{"name":"a","new":true}}"#,
    )
    .unwrap();
    assert_eq!(t.id, "t1");
    assert_eq!(t.agent.name, "a");
    let m: TaskMessage = serde_json::from_str(r#"{"seq":3,"type":"hologram"}"#).unwrap();
    assert_eq!(m.kind, MessageKind::Unknown);
    let s: TaskStatusResponse = serde_json::from_str(r#"{"status":"paused"}"#).unwrap();
    assert_eq!(s.status, TaskStatus::Unknown);
    // A server kind this daemon does not know is no error (served like Multica); no kind
    // at all is Multica's register answer.
    let r: RegisterResponse = serde_json::from_str(r#"{"server":"gitea-agents"}"#).unwrap();
    assert_eq!(r.server, Some(ServerKind::Other));
    assert!(!ServerKind::Other.is_agentd());
    let r: RegisterResponse = serde_json::from_str(r#"{"runtimes":[]}"#).unwrap();
    assert_eq!(r.server, None);
    let r: RegisterResponse = serde_json::from_str(r#"{"server":"agentd"}"#).unwrap();
    assert_eq!(r.server, Some(ServerKind::Agentd));
    match WsMessage::decode(r#"{"type":"daemon:new_thing","payload":{"a":1}}"#).unwrap() {
        WsMessage::Unknown(f) => assert_eq!(f.kind, "daemon:new_thing"),
        other => panic!("{other:?}"),
    }
    assert!(WsMessage::decode(r#"{"type":"daemon:heartbeat_ack","payload":"nope"}"#).is_err());
}

/// Every type that derives `Deserialize`, decoded from `$input` (which must never panic).
/// `every_wire_type_is_fuzzed` checks this list against the crate's source.
macro_rules! decode_every_wire_type {
    ($input:expr) => {{
        let s: &str = $input;
        let _ = WsMessage::decode(s);
        decode_every_wire_type!(@each s;
            api::CreateWorkspaceRequest, api::WorkspaceInfo, api::CreateTokenRequest,
            api::TokenCreated, api::TokenKind, api::TokenInfo, api::RuntimeInfo, api::CreateAgentRequest, api::AgentInfo, api::AgentPool,
            api::UpdateAgentRequest, api::CreateIssueRequest, api::UpdateIssueRequest,
            api::IssueInfo, api::IssuesPage, api::IssueDetail, api::CreateCommentRequest, api::CommentInfo,
            api::TaskInfo, api::DiffStat, api::MessagesPage, api::WhoAmI, api::WorkspaceEvent,
            api::ForgeKind, api::SetForgeRequest, api::ForgeInfo, api::PullRequestInfo,
            api::RefMatch, api::Actor, api::ActorKind, api::ActivityKind, api::ActivityEntry,
            api::SigninCode, api::SigninRequest,
            forge::ForgeUser, forge::ForgeRepo, forge::ForgeRef, forge::ForgePull, forge::CreatePull,
            forge::ForgeErrorBody, forge::CombinedStatus, forge::CheckRun, forge::CheckRuns,
            forge::WebhookReview, forge::WebhookComment, forge::WebhookIssue, forge::PullNumber,
            forge::WebhookCheck, forge::WebhookPayload, forge::ForgeBranch, api::WebhookAnswer,
            health::HealthState, health::HealthRuntime, health::HealthWorkspace,
            health::HealthAgent, health::Health,
            ErrorBody, MessageKind, TaskMessage, UsageEntry,
            Workspace, RuntimeSpec, SandboxState, RegisterRequest, Runtime, Repo, RegisterResponse,
            DeregisterRequest, HeartbeatRequest, HeartbeatResponse, SkillFile, Skill,
            TaskAgent, Task, ClaimResponse, ProgressRequest, MessagesRequest, UsageRequest,
            SessionRequest, CompleteRequest, FailureReason, FailRequest, TaskStatus,
            TaskStatusResponse, ReposResponse, RecoverOrphansResponse, RecoverOrphansRequest, ReportResponse,
            Frame, TaskAvailable, TaskCancelled, TaskDiff, DiffFile, PushedBranch, PushedRequest, TaskPush,
            SandboxState, ServerKind)
    }};
    (@each $s:ident; $($t:ty),+ $(,)?) => {{
        $( let _ = serde_json::from_str::<$t>($s); )+
        [$(stringify!($t)),+]
    }};
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_any_wire_type(s in ".{0,300}") {
        decode_every_wire_type!(&s);
    }

    #[test]
    fn arbitrary_json_never_panics_any_wire_type(v in arb_json()) {
        decode_every_wire_type!(&v.to_string());
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_wire_type(b in prop::collection::vec(any::<u8>(), 0..300)) {
        decode_every_wire_type!(&String::from_utf8_lossy(&b));
    }
}

/// Names of the types deriving `Deserialize` in the crate's source files.
fn deserializable_types() -> std::collections::BTreeSet<String> {
    let sources = [
        include_str!("../src/api.rs"),
        include_str!("../src/forge.rs"),
        include_str!("../src/health.rs"),
        include_str!("../src/lib.rs"),
        include_str!("../src/message.rs"),
        include_str!("../src/rest.rs"),
        include_str!("../src/ws.rs"),
    ];
    let mut out = std::collections::BTreeSet::new();
    for src in sources {
        let mut pending = false;
        for line in src.lines().map(str::trim) {
            if line.starts_with("#[derive(") && line.contains("Deserialize") {
                pending = true;
            }
            let decl = line
                .strip_prefix("pub struct ")
                .or_else(|| line.strip_prefix("pub enum "));
            if let (true, Some(decl)) = (pending, decl) {
                let name: String = decl
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
                pending = false;
            }
        }
    }
    out
}

#[test]
fn every_wire_type_is_fuzzed() {
    let fuzzed: std::collections::BTreeSet<String> = decode_every_wire_type!("")
        .iter()
        .map(|t| t.rsplit("::").next().unwrap_or(t).trim().to_string())
        .collect();
    let declared = deserializable_types();
    assert!(declared.len() > 40, "parsed too few types: {declared:?}");
    let missing: Vec<_> = declared.difference(&fuzzed).collect();
    assert!(
        missing.is_empty(),
        "wire types not in decode_every_wire_type!: {missing:?}"
    );
}
