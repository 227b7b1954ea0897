//! Every stream parser of the provider table against recorded real CLI output
//! (`tests/fixtures/agent-output/`, from the real-agents research runs and runs against
//! the mock model), as insta snapshots, plus property tests:
//! arbitrary bytes, split anywhere, never panic a parser or stop it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use agentd_daemon::backend::{self, AgentEvent, Backend, Line, LineCodec, RunSpec, StreamParser};
use agentd_proto::MessageKind;
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agent-output")
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // `.jsonl`: JSON-lines CLIs; `.txt`: CLIs whose output is text (Hermes).
        .filter(|n| n.ends_with(".jsonl") || n.ends_with(".txt"))
        .collect();
    names.sort();
    names
}

fn backend_for_fixture(name: &str) -> Box<dyn Backend> {
    let provider = name.split('-').next().unwrap_or_default();
    backend::for_provider(provider).unwrap_or_else(|| panic!("no backend for fixture {name}"))
}

/// Runs `bytes` through the line codec (in chunks of `chunk` bytes) and `parser`.
fn run_bytes(
    parser: &mut dyn StreamParser,
    bytes: &[u8],
    chunk: usize,
    max_line: usize,
) -> (Vec<AgentEvent>, backend::Finish) {
    let mut codec = LineCodec::new(max_line);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(line) = codec.decode(&mut buf).expect("codec never errors") {
            events.extend(line.feed(parser));
        }
    }
    while let Some(line) = codec.decode_eof(&mut buf).expect("codec never errors") {
        events.extend(line.feed(parser));
    }
    let finish = parser.finish();
    (events, finish)
}

/// The transcript as the server would receive it, plus the outcome.
fn transcript(events: Vec<AgentEvent>, finish: backend::Finish) -> Value {
    let mut seq = 0;
    let mut out = Vec::new();
    for ev in events.into_iter().chain(finish.events) {
        match ev {
            AgentEvent::Message(m) => {
                seq += 1;
                out.push(serde_json::to_value(m.into_message(seq)).expect("serialize"));
            }
            AgentEvent::SessionId(id) => out.push(json!({ "session_id": id })),
        }
    }
    let o = finish.outcome;
    json!({
        "events": out,
        "outcome": {
            "session_id": o.session_id,
            "output": o.output,
            "usage": serde_json::to_value(&o.usage).expect("serialize"),
            "error": o.error,
            "ended": o.ended,
        }
    })
}

fn parse_fixture(name: &str) -> Value {
    let bytes = std::fs::read(fixtures_dir().join(name)).expect("read fixture");
    let backend = backend_for_fixture(name);
    let mut parser = backend.parser(&RunSpec::default());
    let (events, finish) = run_bytes(parser.as_mut(), &bytes, 4096, 1 << 20);
    transcript(events, finish)
}

#[test]
fn snapshot_every_fixture() {
    let names = fixture_names();
    assert!(names.len() >= 30, "fixtures missing: {names:?}");
    for name in names {
        let value = parse_fixture(&name);
        let snap = name
            .trim_end_matches(".jsonl")
            .trim_end_matches(".txt")
            .to_string();
        insta::assert_json_snapshot!(snap, value);
    }
}

/// The same bytes split at every chunk size give the same transcript.
#[test]
fn chunking_does_not_change_the_transcript() {
    for name in fixture_names() {
        let bytes = std::fs::read(fixtures_dir().join(&name)).expect("read fixture");
        let backend = backend_for_fixture(&name);
        let whole = {
            let mut p = backend.parser(&RunSpec::default());
            let (e, f) = run_bytes(p.as_mut(), &bytes, bytes.len(), 1 << 20);
            transcript(e, f)
        };
        for chunk in [1, 7, 64, 1000] {
            let mut p = backend.parser(&RunSpec::default());
            let (e, f) = run_bytes(p.as_mut(), &bytes, chunk, 1 << 20);
            pretty_assertions::assert_eq!(transcript(e, f), whole, "{name} chunk {chunk}");
        }
    }
}

/// Spot checks that the snapshots show what matters (a reviewer's list, kept as code).
#[test]
fn key_facts_of_the_fixtures() {
    let v = parse_fixture("claude-write-shell.jsonl");
    let events = v["events"].as_array().expect("events");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        ["tool_use", "tool_result", "tool_use", "tool_result", "text"]
    );
    assert_eq!(events[1]["tool"], "Write");
    assert_eq!(events[1]["input"]["content"], "hello from mock\n");
    assert_eq!(events[4]["tool"], "Bash");
    assert_eq!(events[4]["output"], "hello from mock");
    assert_eq!(
        v["outcome"]["output"],
        "MOCK-DONE: wrote and read hello.txt"
    );
    assert_eq!(v["outcome"]["usage"][0]["input_tokens"], 303);

    // Resume: per-run usage (100/10), not the session's cumulative modelUsage (403/40).
    let v = parse_fixture("claude-resume.jsonl");
    assert_eq!(v["outcome"]["usage"][0]["input_tokens"], 100);
    assert_eq!(v["outcome"]["usage"][0]["output_tokens"], 10);

    let v = parse_fixture("claude-error-400.jsonl");
    assert_eq!(v["outcome"]["error"], "API Error: 400 mock 400");

    let v = parse_fixture("codex-error-400.jsonl");
    assert!(
        v["outcome"]["error"]
            .as_str()
            .expect("error")
            .contains("mock 400")
    );
    assert_eq!(v["outcome"]["ended"], true);

    let v = parse_fixture("gemini-write-shell.jsonl");
    let texts: Vec<&str> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "text")
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert_eq!(texts, ["MOCK-DONE: wrote and read hello.txt"]);
    // The router's model and the main model, both non-zero.
    assert_eq!(v["outcome"]["usage"].as_array().expect("usage").len(), 2);

    let v = parse_fixture("opencode-write-shell.jsonl");
    assert_eq!(v["outcome"]["usage"][0]["input_tokens"], 303);
    assert_eq!(v["outcome"]["ended"], true);

    // Hermes (text): the diff preview of the write, then the answer; the startup warning
    // is not part of either. Its session id is on stderr, not in these stdout fixtures.
    let v = parse_fixture("hermes-write-shell.txt");
    let events = v["events"].as_array().expect("events");
    assert_eq!(events.len(), 2, "{v:#}");
    assert_eq!(events[0]["tool"], "file_edit");
    assert_eq!(events[0]["input"]["path"], "hello.txt");
    assert!(
        events[0]["input"]["diff"]
            .as_str()
            .expect("diff")
            .ends_with("+hello from mock")
    );
    assert_eq!(
        v["outcome"]["output"],
        "MOCK-DONE: wrote and read hello.txt"
    );
    // mini-swe-agent: its trajectory, re-printed after every step, read once per message;
    // per-step usage summed (3 steps of 100+n / 10).
    let v = parse_fixture("mini-write-shell.txt");
    let tools: Vec<&str> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "tool_use")
        .filter_map(|e| e["input"]["command"].as_str())
        .collect();
    assert_eq!(tools.len(), 3, "{v:#}");
    assert_eq!(tools[1], "cat hello.txt");
    assert_eq!(v["outcome"]["usage"][0]["input_tokens"], 303);
    assert_eq!(
        v["outcome"]["output"],
        "MOCK-DONE: wrote and read hello.txt"
    );
    let v = parse_fixture("mini-error-400.txt");
    assert!(
        v["outcome"]["error"]
            .as_str()
            .expect("error")
            .starts_with("BadRequestError: ")
    );

    let v = parse_fixture("hermes-error-400.txt");
    assert_eq!(v["outcome"]["error"], "HTTP 400: mock 400");
    assert_eq!(v["outcome"]["output"], "");
}

/// The same spot checks for Qwen Code, Pi, Kilo Code and Continue.
#[test]
fn key_facts_of_the_newer_cli_fixtures() {
    let tools = |v: &Value| -> Vec<String> {
        v["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["type"] == "tool_use")
            .filter_map(|e| e["tool"].as_str().map(str::to_string))
            .collect()
    };
    for (fixture, write, shell) in [
        ("qwen-write-shell.jsonl", "write_file", "run_shell_command"),
        ("pi-write-shell.jsonl", "write", "bash"),
        ("kilo-write-shell.jsonl", "write", "bash"),
    ] {
        let v = parse_fixture(fixture);
        assert_eq!(tools(&v), [write, shell], "{fixture}");
        let results: Vec<&Value> = v["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["type"] == "tool_result")
            .collect();
        assert_eq!(results.len(), 2, "{fixture}");
        assert_eq!(
            results[1]["output"].as_str().map(str::trim),
            Some("hello from mock"),
            "{fixture}"
        );
        assert_eq!(
            v["outcome"]["output"], "MOCK-DONE: wrote and read hello.txt",
            "{fixture}"
        );
        // Three model calls of the write-shell script: 100 + 101 + 102 input tokens.
        assert_eq!(v["outcome"]["usage"][0]["input_tokens"], 303, "{fixture}");
        assert_eq!(v["outcome"]["ended"], true, "{fixture}");
        assert!(v["outcome"]["session_id"].is_string(), "{fixture}");
    }

    for (fixture, error) in [
        ("qwen-error-400.jsonl", "[API Error: 400 mock 400]"),
        ("pi-error-400.jsonl", "400 mock 400"),
        ("kilo-error-400.jsonl", "mock 400"),
    ] {
        let v = parse_fixture(fixture);
        assert_eq!(v["outcome"]["error"], error, "{fixture}");
    }

    // Resume keeps the session id of the first run.
    for provider in ["qwen", "pi", "kilo"] {
        let first = parse_fixture(&format!("{provider}-text.jsonl"));
        let resumed = parse_fixture(&format!("{provider}-resume.jsonl"));
        if provider != "qwen" {
            // Qwen's text fixture is from a later run than the one resumed.
            assert_eq!(
                first["outcome"]["session_id"], resumed["outcome"]["session_id"],
                "{provider}"
            );
        }
        assert_eq!(
            resumed["outcome"]["output"], "Hello from the mock model.",
            "{provider}"
        );
    }
    // Qwen's result usage after --resume is the session's (two runs of two calls each).
    let v = parse_fixture("qwen-resume.jsonl");
    assert_eq!(v["outcome"]["usage"][0]["input_tokens"], 400);
    // Pi's usage is per call, so a resumed run counts only its own call.
    let v = parse_fixture("pi-resume.jsonl");
    assert_eq!(v["outcome"]["usage"][0]["input_tokens"], 100);

    // Continue prints only the final answer.
    let v = parse_fixture("continue-write-shell.jsonl");
    assert_eq!(v["events"].as_array().expect("events").len(), 1);
    assert_eq!(
        v["outcome"]["output"],
        "MOCK-DONE: wrote and read hello.txt"
    );
    assert_eq!(v["outcome"]["session_id"], Value::Null);
}

#[test]
fn garbage_and_over_long_lines_become_errors_and_parsing_continues() {
    let good = std::fs::read_to_string(fixtures_dir().join("codex-text.jsonl")).expect("fixture");
    let mut bytes = b"not json at all\n\xff\xfe{\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', 5000));
    bytes.push(b'\n');
    bytes.extend_from_slice(good.as_bytes());
    let mut p = backend::Codex.parser(&RunSpec::default());
    let (events, finish) = run_bytes(p.as_mut(), &bytes, 333, 1024);
    let errors = events
        .iter()
        .filter(|e| matches!(e, AgentEvent::Message(m) if m.kind == MessageKind::Error))
        .count();
    assert_eq!(errors, 3, "{events:?}");
    assert_eq!(finish.outcome.output, "Hello from the mock model.");
    assert!(finish.outcome.ended);
}

/// Not a benchmark: prints lines/s and MB/s of each parser over its fixtures (debug
/// build) and checks the repeated runs agree.
#[test]
fn parser_throughput() {
    let rounds = 300;
    for provider in backend::provider::names() {
        let mut bytes = Vec::new();
        for name in fixture_names()
            .iter()
            .filter(|n| n.starts_with(&format!("{provider}-")))
        {
            bytes.extend(std::fs::read(fixtures_dir().join(name)).expect("fixture"));
        }
        let backend = backend::for_provider(provider).expect("backend");
        let lines = bytes.iter().filter(|b| **b == b'\n').count() * rounds;
        let start = Instant::now();
        let mut messages = 0;
        for _ in 0..rounds {
            let mut p = backend.parser(&RunSpec::default());
            // Text CLIs (Hermes) emit their answer at EOF: count `finish` events too.
            let (events, finish) = run_bytes(p.as_mut(), &bytes, 64 * 1024, 1 << 20);
            messages += events.len() + finish.events.len();
        }
        let secs = start.elapsed().as_secs_f64();
        assert!(messages > 0 && messages % rounds == 0);
        eprintln!(
            "parser_throughput {provider}: {:.0} lines/s, {:.1} MB/s",
            lines as f64 / secs,
            (bytes.len() * rounds) as f64 / secs / 1e6
        );
    }
}

fn all_parsers() -> Vec<Box<dyn StreamParser>> {
    backend::provider::names()
        .map(|p| {
            backend::for_provider(p)
                .expect("backend")
                .parser(&RunSpec::default())
        })
        .collect()
}

/// JSON values shaped like the CLIs' events: known `type`s with random fields.
fn event_like() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type",
                    "subtype",
                    "message",
                    "content",
                    "text",
                    "tool_use_id",
                    "id",
                    "name",
                    "input",
                    "item",
                    "part",
                    "state",
                    "status",
                    "usage",
                    "tokens",
                    "stats",
                    "models",
                    "error",
                    "result",
                    "is_error",
                    "session_id",
                    "sessionID",
                    "thread_id",
                    "delta",
                    "role",
                    "tool_id",
                    "tool_name",
                    "parameters",
                    "output",
                    "modelUsage",
                    "model_usage_since_last_result",
                    "changes",
                    "aggregated_output",
                    "data",
                ])
                .prop_map(str::to_string),
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let kind = prop::sample::select(vec![
        "system",
        "assistant",
        "user",
        "result",
        "stream_event",
        "thread.started",
        "item.started",
        "item.completed",
        "turn.completed",
        "turn.failed",
        "error",
        "step_start",
        "step_finish",
        "text",
        "tool_use",
        "tool_result",
        "reasoning",
        "init",
        "message",
    ]);
    (
        kind,
        prop::collection::btree_map(
            prop::sample::select(vec![
                "subtype",
                "message",
                "content",
                "item",
                "part",
                "usage",
                "stats",
                "error",
                "result",
                "is_error",
                "session_id",
                "sessionID",
                "role",
                "delta",
                "tool_id",
                "tool_name",
                "parameters",
                "output",
                "status",
                "modelUsage",
                "model_usage_since_last_result",
            ])
            .prop_map(str::to_string),
            value,
            0..6,
        ),
    )
        .prop_map(|(kind, mut fields)| {
            fields.insert("type".to_string(), json!(kind));
            Value::Object(fields.into_iter().collect()).to_string()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_split_anywhere_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..97, max in 8usize..300) {
        for mut p in all_parsers() {
            let _ = run_bytes(p.as_mut(), &bytes, chunk, max);
        }
    }

    #[test]
    fn event_shaped_lines_never_panic(lines in prop::collection::vec(event_like(), 0..24)) {
        for mut p in all_parsers() {
            for line in &lines {
                let _ = Line::Text(line.clone()).feed(p.as_mut());
            }
            let _ = p.finish();
        }
    }

    /// Real fixture lines cut at an arbitrary byte and mixed with the rest.
    #[test]
    fn truncated_fixture_lines_never_panic(pick in 0usize..1000, cut in 0usize..20000, chunk in 1usize..500) {
        let names = fixture_names();
        let name = &names[pick % names.len()];
        let text = std::fs::read(fixtures_dir().join(name)).expect("fixture");
        let cut = cut % (text.len() + 1);
        let mut bytes = text[..cut].to_vec();
        bytes.push(b'\n');
        bytes.extend_from_slice(&text);
        let mut p = backend_for_fixture(name).parser(&RunSpec::default());
        let (_, finish) = run_bytes(p.as_mut(), &bytes, chunk, 1 << 20);
        // The intact copy that follows still parses to its end event.
        prop_assert!(finish.outcome.ended, "{name} lost its end event");
    }
}

/// Usage is summed from the assistant messages as they stream, so a run stopped before
/// its `result` (cancelled, killed, crashed) still says what it cost; a `result` that
/// carries totals replaces that sum (never added to it).
#[test]
fn claude_usage_is_summed_from_messages_and_the_result_totals_win() {
    let bytes = std::fs::read(fixtures_dir().join("claude-sigint-partial-messages.jsonl"))
        .expect("read fixture");
    let text = String::from_utf8(bytes).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    let backend = backend::for_provider("claude").expect("claude backend");

    // Cut before the final `result` line: only the streamed messages say what it cost.
    let cut = lines[..lines.len() - 1].join("\n");
    let mut p = backend.parser(&RunSpec::default());
    let (_, finish) = run_bytes(p.as_mut(), cut.as_bytes(), 4096, 1 << 20);
    assert!(!finish.outcome.ended);
    let u = &finish.outcome.usage;
    assert_eq!(u.len(), 1, "{u:?}");
    assert_eq!(u[0].model, "claude-opus-5-5");
    assert_eq!(u[0].provider, "claude");
    // One message (streamed as several lines) of 100 in / 1 out: counted once.
    assert_eq!((u[0].input_tokens, u[0].output_tokens), (100, 1));

    // With the result: its totals (100 / 14), not the sum plus the totals.
    let mut p = backend.parser(&RunSpec::default());
    let (_, finish) = run_bytes(p.as_mut(), text.as_bytes(), 4096, 1 << 20);
    let u = &finish.outcome.usage;
    assert_eq!((u[0].input_tokens, u[0].output_tokens), (100, 14), "{u:?}");

    // Two messages after the result of an earlier turn: the earlier totals plus both.
    let turn = |id: &str, input: i64| {
        serde_json::json!({"type": "assistant", "message": {"id": id, "model": "m",
            "content": [{"type": "text", "text": "x"}],
            "usage": {"input_tokens": input, "output_tokens": 2}}})
        .to_string()
    };
    let stream = [
        turn("a", 10),
        r#"{"type":"result","subtype":"success","result":"ok","usage":{"input_tokens":10,"output_tokens":2}}"#.to_string(),
        turn("b", 20),
        turn("b", 20),
        turn("c", 30),
    ]
    .join("\n");
    let mut p = backend.parser(&RunSpec::default());
    let (_, finish) = run_bytes(p.as_mut(), stream.as_bytes(), 4096, 1 << 20);
    let u = &finish.outcome.usage;
    assert_eq!(u.len(), 2, "{u:?}");
    let total: i64 = u.iter().map(|e| e.input_tokens).sum();
    assert_eq!(total, 60, "{u:?}");
    assert_eq!(u.iter().map(|e| e.output_tokens).sum::<i64>(), 6);
}
