//! The real agent CLIs, run through our backends (argv, env, parser) and `process.rs`
//! against the mock model API from `agentd-testkit`, fully offline.
//!
//! The CLIs come from `scripts/install-agent-clis.sh` (pinned versions, installed under
//! `$AGENTD_CLI_PREFIX`, default `<repo>/.cache/agent-clis`). A CLI that is not installed
//! is skipped with a `SKIP real_cli <name>: …` line on stderr, never silently.
//! Claude Code and Codex are cheap (< 1 s, ~200 MiB a run); OpenCode (~4 s, ~700 MiB) and
//! Gemini take a file lock so that at most one of them runs at a time, even under nextest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentd_daemon::backend::{self, AgentEvent, Backend, MessageDraft, RunOutcome, RunSpec};
use agentd_daemon::process::{AgentProcess, ExitReport, SpawnOptions, command_for};
use agentd_proto::MessageKind;
use agentd_testkit::mock_model::{Api, MockModel};
use nix::sys::signal::Signal;

const RUN_BOUND: Duration = Duration::from_secs(90);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The installed CLI, or `None` after printing why the test is skipped.
fn installed(name: &str) -> Option<PathBuf> {
    let prefix = std::env::var_os("AGENTD_CLI_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/agent-clis"));
    let bin = prefix.join("bin").join(name);
    if bin.exists() {
        Some(bin)
    } else {
        eprintln!(
            "SKIP real_cli {name}: not installed; run scripts/install-agent-clis.sh (looked for {})",
            bin.display()
        );
        None
    }
}

/// A throw-away HOME, TMPDIR and work dir for one run.
struct Sandbox {
    _dir: tempfile::TempDir,
    home: PathBuf,
    tmp: PathBuf,
    work: PathBuf,
}

fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let tmp = dir.path().join("tmp");
    let work = dir.path().join("work");
    for d in [&home, &tmp, &work] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    Sandbox {
        home,
        tmp,
        work,
        _dir: dir,
    }
}

struct RunResult {
    messages: Vec<MessageDraft>,
    session_ids: Vec<String>,
    outcome: RunOutcome,
    report: ExitReport,
}

impl RunResult {
    fn describe(&self) -> String {
        format!(
            "messages: {:#?}\noutcome: {:#?}\nstatus: {:?}\nstderr tail:\n{}",
            self.messages, self.outcome, self.report.status, self.report.stderr_tail
        )
    }

    fn of_kind(&self, kind: MessageKind) -> Vec<&MessageDraft> {
        self.messages.iter().filter(|m| m.kind == kind).collect()
    }
}

/// Runs `program` as `backend` describes, with `env` over the inherited environment,
/// feeding stdout to the backend's parser; bounded by [`RUN_BOUND`].
async fn run_cli(
    backend: &dyn Backend,
    program: &Path,
    run: &RunSpec,
    env: &[(String, String)],
) -> RunResult {
    run_cli_with(backend, program, run, env, None).await
}

/// A cancellation for [`run_cli_with`]: once `mock` has seen a request to `api`, send
/// `signal` to the group with a 10 s grace before SIGKILL.
struct Cancel<'a> {
    mock: &'a MockModel,
    api: Api,
    signal: Signal,
}

async fn run_cli_with(
    backend: &dyn Backend,
    program: &Path,
    run: &RunSpec,
    env: &[(String, String)],
    cancel: Option<Cancel<'_>>,
) -> RunResult {
    let spec = backend.command(run);
    let mut cmd = command_for(program, &spec, &run.workdir);
    for key in ["CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT"] {
        cmd.env_remove(key);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = AgentProcess::spawn(cmd, SpawnOptions::default()).expect("spawn agent CLI");
    let mut parser = backend.parser(run);
    let mut events = Vec::new();
    let mut cancelled = cancel.is_none();
    let read_all = async {
        loop {
            let line = match &cancel {
                Some(c) if !cancelled => {
                    tokio::select! {
                        line = proc.next_line() => line,
                        seen = c.mock.wait_for(c.api, 1, RUN_BOUND) => {
                            assert!(seen, "the CLI never called the mock");
                            proc.terminate_with(c.signal, Duration::from_secs(10));
                            cancelled = true;
                            continue;
                        }
                    }
                }
                _ => proc.next_line().await,
            };
            match line {
                Some(line) => events.extend(line.feed(parser.as_mut())),
                None => break,
            }
        }
    };
    let timed_out = tokio::time::timeout(RUN_BOUND, read_all).await.is_err();
    if timed_out {
        proc.terminate(Duration::from_secs(2));
    }
    let report = tokio::time::timeout(Duration::from_secs(30), proc.finish())
        .await
        .expect("finish timed out");
    for line in &report.unread {
        events.extend(line.feed(parser.as_mut()));
    }
    events.extend(parser.stderr(&report.stderr_tail));
    let finish = parser.finish();
    events.extend(finish.events);
    let mut messages = Vec::new();
    let mut session_ids = Vec::new();
    for ev in events {
        match ev {
            AgentEvent::Message(m) => messages.push(m),
            AgentEvent::SessionId(id) => session_ids.push(id),
        }
    }
    let result = RunResult {
        messages,
        session_ids,
        outcome: finish.outcome,
        report,
    };
    assert!(
        !timed_out,
        "run exceeded {RUN_BOUND:?}\n{}",
        result.describe()
    );
    result
}

/// The `@mock:write` script: a tool call writing `hello.txt`, then the final answer.
fn assert_wrote_file(r: &RunResult, work: &Path) {
    let d = r.describe();
    assert_eq!(r.report.status.and_then(|s| s.code()), Some(0), "{d}");
    assert_eq!(r.outcome.error, None, "{d}");
    assert!(r.outcome.ended, "{d}");
    assert_eq!(r.outcome.output, "MOCK-DONE: wrote hello.txt", "{d}");
    assert!(
        r.of_kind(MessageKind::Text)
            .iter()
            .any(|m| m.content.as_deref() == Some("MOCK-DONE: wrote hello.txt")),
        "{d}"
    );
    let uses = r.of_kind(MessageKind::ToolUse);
    assert!(
        uses.iter().any(|m| m
            .input
            .as_ref()
            .is_some_and(|i| i.to_string().contains("hello.txt"))),
        "no tool_use naming hello.txt\n{d}"
    );
    assert!(!r.of_kind(MessageKind::ToolResult).is_empty(), "{d}");
    assert!(
        !r.session_ids.is_empty() && r.outcome.session_id.is_some(),
        "{d}"
    );
    assert!(!r.outcome.usage.is_empty(), "{d}");
    let written = std::fs::read_to_string(work.join("hello.txt")).unwrap_or_default();
    assert_eq!(written, "hello from mock\n", "file not written\n{d}");
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn spec(work: &Path, prompt: &str) -> RunSpec {
    RunSpec {
        prompt: prompt.to_string(),
        workdir: work.to_path_buf(),
        ..RunSpec::default()
    }
}

// ---- Claude Code ----

fn claude_env(sb: &Sandbox, mock: &MockModel) -> Vec<(String, String)> {
    env(&[
        ("HOME", &sb.home.to_string_lossy()),
        ("TMPDIR", &sb.tmp.to_string_lossy()),
        ("ANTHROPIC_BASE_URL", &mock.base_url()),
        ("ANTHROPIC_API_KEY", "mock-key"),
        ("CLAUDE_CODE_MAX_RETRIES", "0"),
    ])
}

#[tokio::test]
async fn claude_writes_a_file_and_answers() {
    let Some(bin) = installed("claude") else {
        return;
    };
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let r = run_cli(
        &backend::Claude,
        &bin,
        &spec(&sb.work, "@mock:write please do the task"),
        &claude_env(&sb, &mock),
    )
    .await;
    assert_wrote_file(&r, &sb.work);
    let uses = r.of_kind(MessageKind::ToolUse);
    assert_eq!(uses[0].tool.as_deref(), Some("Write"), "{}", r.describe());
    assert_eq!(mock.count(Api::Anthropic), 2, "{:?}", mock.requests());
}

#[tokio::test]
async fn claude_api_error_is_reported_and_resume_keeps_the_session() {
    let Some(bin) = installed("claude") else {
        return;
    };
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let e = claude_env(&sb, &mock);

    let r = run_cli(
        &backend::Claude,
        &bin,
        &spec(&sb.work, "@mock:error go"),
        &e,
    )
    .await;
    assert_eq!(
        r.report.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        r.describe()
    );
    let error = r.outcome.error.clone().unwrap_or_default();
    assert!(error.contains("400"), "{}", r.describe());

    let first = run_cli(
        &backend::Claude,
        &bin,
        &spec(&sb.work, "@mock:text hello"),
        &e,
    )
    .await;
    assert_eq!(
        first.outcome.output,
        "Hello from the mock model.",
        "{}",
        first.describe()
    );
    let session = first.outcome.session_id.clone().expect("session id");
    let mut resume = spec(&sb.work, "@mock:text again");
    resume.prior_session_id = Some(session.clone());
    let second = run_cli(&backend::Claude, &bin, &resume, &e).await;
    assert_eq!(second.outcome.error, None, "{}", second.describe());
    assert_eq!(
        second.outcome.session_id.as_deref(),
        Some(session.as_str()),
        "{}",
        second.describe()
    );
    // The resumed request carried the first exchange too.
    let last = mock.requests().pop().expect("request");
    assert!(
        last.body.to_string().contains("@mock:text hello"),
        "history not sent on resume"
    );
}

/// SIGINT while the model hangs: Claude Code aborts and still prints its `result`.
#[tokio::test]
async fn claude_sigint_while_the_model_hangs_ends_with_a_result() {
    let Some(bin) = installed("claude") else {
        return;
    };
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let cancel = Cancel {
        mock: &mock,
        api: Api::Anthropic,
        signal: Signal::SIGINT,
    };
    let start = std::time::Instant::now();
    let r = run_cli_with(
        &backend::Claude,
        &bin,
        &spec(&sb.work, "@mock:hang wait"),
        &claude_env(&sb, &mock),
        Some(cancel),
    )
    .await;
    let d = r.describe();
    assert!(!r.report.killed, "needed SIGKILL\n{d}");
    assert!(r.outcome.ended, "{d}");
    assert!(r.outcome.error.is_some(), "{d}");
    assert!(start.elapsed() < Duration::from_secs(30), "{d}");
}

// ---- Codex ----

fn codex_env(sb: &Sandbox, mock: &MockModel) -> Vec<(String, String)> {
    let codex_home = sb.home.join(".codex");
    std::fs::create_dir_all(&codex_home).expect("mkdir");
    let config = format!(
        r#"model = "gpt-5.5"
model_provider = "mock"
check_for_update_on_startup = false
[analytics]
enabled = false
[otel]
exporter = "none"
[features]
plugins = false
[model_providers.mock]
name = "Mock LLM"
base_url = "{}"
env_key = "MOCK_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#,
        mock.openai_base_url()
    );
    std::fs::write(codex_home.join("config.toml"), config).expect("write config");
    env(&[
        ("HOME", &sb.home.to_string_lossy()),
        ("TMPDIR", &sb.tmp.to_string_lossy()),
        ("CODEX_HOME", &codex_home.to_string_lossy()),
        ("MOCK_API_KEY", "mock-key"),
    ])
}

#[tokio::test]
async fn codex_writes_a_file_and_answers() {
    let Some(bin) = installed("codex") else {
        return;
    };
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let r = run_cli(
        &backend::Codex,
        &bin,
        &spec(&sb.work, "@mock:write please do the task"),
        &codex_env(&sb, &mock),
    )
    .await;
    assert_wrote_file(&r, &sb.work);
    let uses = r.of_kind(MessageKind::ToolUse);
    assert_eq!(
        uses[0].tool.as_deref(),
        Some("apply_patch"),
        "{}",
        r.describe()
    );
}

#[tokio::test]
async fn codex_runs_a_shell_command_and_reports_api_errors() {
    let Some(bin) = installed("codex") else {
        return;
    };
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let e = codex_env(&sb, &mock);

    let r = run_cli(
        &backend::Codex,
        &bin,
        &spec(&sb.work, "@mock:write-shell go"),
        &e,
    )
    .await;
    let d = r.describe();
    assert_eq!(
        r.outcome.output, "MOCK-DONE: wrote and read hello.txt",
        "{d}"
    );
    let shell = r
        .of_kind(MessageKind::ToolResult)
        .into_iter()
        .find(|m| m.tool.as_deref() == Some("exec_command"))
        .unwrap_or_else(|| panic!("no exec_command result\n{d}"));
    assert_eq!(shell.output.as_deref(), Some("hello from mock\n"), "{d}");

    let r = run_cli(&backend::Codex, &bin, &spec(&sb.work, "@mock:error go"), &e).await;
    assert_eq!(
        r.report.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        r.describe()
    );
    assert!(
        r.outcome
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("mock 400"),
        "{}",
        r.describe()
    );
}

#[tokio::test]
async fn codex_resume_continues_the_thread() {
    let Some(bin) = installed("codex") else {
        return;
    };
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let e = codex_env(&sb, &mock);
    let first = run_cli(
        &backend::Codex,
        &bin,
        &spec(&sb.work, "@mock:text hello"),
        &e,
    )
    .await;
    assert_eq!(
        first.outcome.output,
        "Hello from the mock model.",
        "{}",
        first.describe()
    );
    let thread = first.outcome.session_id.clone().expect("thread id");

    let mut resume = spec(&sb.work, "@mock:text again");
    resume.prior_session_id = Some(thread.clone());
    let second = run_cli(&backend::Codex, &bin, &resume, &e).await;
    let d = second.describe();
    assert_eq!(second.report.status.and_then(|s| s.code()), Some(0), "{d}");
    assert_eq!(second.outcome.output, "Hello from the mock model.", "{d}");
    assert_eq!(
        second.outcome.session_id.as_deref(),
        Some(thread.as_str()),
        "{d}"
    );
    let last = mock.requests().pop().expect("request");
    let body = last.body.to_string();
    assert!(
        body.contains("@mock:text hello") && body.contains("@mock:text again"),
        "history not sent on resume"
    );
    // Codex reports usage cumulative over the thread (real-agents.md, pitfall 21): the
    // mock answers 100 in / 10 out per request, so the resumed run shows both turns.
    let usage = &second.outcome.usage;
    assert_eq!(usage.len(), 1, "{d}");
    assert_eq!(
        (usage[0].input_tokens, usage[0].output_tokens),
        (200, 20),
        "{d}"
    );
}

/// SIGTERM to the group while the model hangs: Codex (a Node wrapper around the native
/// binary) goes at once, without an end event.
#[tokio::test]
async fn codex_sigterm_while_the_model_hangs_stops_the_whole_group() {
    let Some(bin) = installed("codex") else {
        return;
    };
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let cancel = Cancel {
        mock: &mock,
        api: Api::Responses,
        signal: Signal::SIGTERM,
    };
    let r = run_cli_with(
        &backend::Codex,
        &bin,
        &spec(&sb.work, "@mock:hang wait"),
        &codex_env(&sb, &mock),
        Some(cancel),
    )
    .await;
    let d = r.describe();
    assert!(!r.report.killed, "needed SIGKILL\n{d}");
    assert!(!r.outcome.ended, "{d}");
    assert_ne!(r.report.status.and_then(|s| s.code()), Some(0), "{d}");
}

// ---- OpenCode and Gemini: one at a time ----

/// An exclusive lock shared by the heavy CLIs' tests (also across nextest processes).
async fn heavy_lock() -> std::fs::File {
    tokio::task::spawn_blocking(|| {
        let path = std::env::temp_dir().join("agentd-real-cli-heavy.lock");
        let file = std::fs::File::create(path).expect("lock file");
        file.lock().expect("lock");
        file
    })
    .await
    .expect("lock task")
}

fn opencode_env(sb: &Sandbox, mock: &MockModel) -> Vec<(String, String)> {
    let config = serde_json::json!({
        "provider": {"mock": {"npm": "@ai-sdk/openai-compatible", "name": "Mock",
            "options": {"baseURL": mock.openai_base_url(), "apiKey": "mock"},
            "models": {"mock-model": {"name": "Mock", "tool_call": true}}}},
        "model": "mock/mock-model", "small_model": "mock/mock-model",
        "autoupdate": false, "share": "disabled"
    })
    .to_string();
    env(&[
        ("HOME", &sb.home.to_string_lossy()),
        ("TMPDIR", &sb.tmp.to_string_lossy()),
        ("OPENCODE_CONFIG_CONTENT", &config),
        ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
        ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
        ("npm_config_offline", "true"),
    ])
}

fn gemini_env(sb: &Sandbox, mock: &MockModel) -> Vec<(String, String)> {
    let gemini_dir = sb.home.join(".gemini");
    std::fs::create_dir_all(&gemini_dir).expect("mkdir");
    let settings = serde_json::json!({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false},
        "general": {"disableAutoUpdate": true, "disableUpdateNag": true}
    });
    std::fs::write(gemini_dir.join("settings.json"), settings.to_string()).expect("settings");
    env(&[
        ("HOME", &sb.home.to_string_lossy()),
        ("TMPDIR", &sb.tmp.to_string_lossy()),
        ("GOOGLE_GEMINI_BASE_URL", &mock.base_url()),
        ("GEMINI_API_KEY", "mock-key"),
    ])
}

#[tokio::test]
async fn opencode_writes_a_file_and_answers() {
    let Some(bin) = installed("opencode") else {
        return;
    };
    let _lock = heavy_lock().await;
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let mut run = spec(&sb.work, "@mock:write please do the task");
    run.model = Some("mock/mock-model".to_string());
    let r = run_cli(&backend::OpenCode, &bin, &run, &opencode_env(&sb, &mock)).await;
    assert_wrote_file(&r, &sb.work);
    assert_eq!(
        r.of_kind(MessageKind::ToolUse)[0].tool.as_deref(),
        Some("write"),
        "{}",
        r.describe()
    );
}

#[tokio::test]
async fn opencode_resume_continues_the_session() {
    let Some(bin) = installed("opencode") else {
        return;
    };
    let _lock = heavy_lock().await;
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let e = opencode_env(&sb, &mock);
    let first = run_cli(
        &backend::OpenCode,
        &bin,
        &spec(&sb.work, "@mock:text hello"),
        &e,
    )
    .await;
    assert_eq!(
        first.outcome.output,
        "Hello from the mock model.",
        "{}",
        first.describe()
    );
    let session = first.outcome.session_id.clone().expect("session id");
    let mut resume = spec(&sb.work, "@mock:text again");
    resume.prior_session_id = Some(session.clone());
    let second = run_cli(&backend::OpenCode, &bin, &resume, &e).await;
    let d = second.describe();
    assert_eq!(second.report.status.and_then(|s| s.code()), Some(0), "{d}");
    assert_eq!(
        second.outcome.session_id.as_deref(),
        Some(session.as_str()),
        "{d}"
    );
    let last = mock.requests().pop().expect("request").body.to_string();
    assert!(
        last.contains("@mock:text hello") && last.contains("@mock:text again"),
        "history not sent"
    );
}

#[tokio::test]
async fn gemini_writes_a_file_and_answers() {
    let Some(bin) = installed("gemini") else {
        return;
    };
    let _lock = heavy_lock().await;
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let r = run_cli(
        &backend::Gemini,
        &bin,
        &spec(&sb.work, "@mock:write please do the task"),
        &gemini_env(&sb, &mock),
    )
    .await;
    assert_wrote_file(&r, &sb.work);
    assert_eq!(
        r.of_kind(MessageKind::ToolUse)[0].tool.as_deref(),
        Some("write_file"),
        "{}",
        r.describe()
    );
    // The default model `auto` asks the router first.
    assert_eq!(mock.count(Api::GeminiAux), 1, "{:?}", mock.requests());
}

#[tokio::test]
async fn gemini_resume_and_api_error() {
    let Some(bin) = installed("gemini") else {
        return;
    };
    let _lock = heavy_lock().await;
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let e = gemini_env(&sb, &mock);
    let mut first = spec(&sb.work, "@mock:text hello");
    first.model = Some("gemini-2.5-pro".to_string());
    let r = run_cli(&backend::Gemini, &bin, &first, &e).await;
    assert_eq!(
        r.outcome.output,
        "Hello from the mock model.",
        "{}",
        r.describe()
    );
    assert_eq!(mock.count(Api::GeminiAux), 0, "-m skips the router");
    let session = r.outcome.session_id.clone().expect("session id");

    let mut resume = spec(&sb.work, "@mock:text again");
    resume.model = first.model.clone();
    resume.prior_session_id = Some(session.clone());
    let r = run_cli(&backend::Gemini, &bin, &resume, &e).await;
    let d = r.describe();
    assert_eq!(r.report.status.and_then(|s| s.code()), Some(0), "{d}");
    assert_eq!(
        r.outcome.session_id.as_deref(),
        Some(session.as_str()),
        "{d}"
    );
    let last = mock.requests().pop().expect("request").body.to_string();
    assert!(
        last.contains("@mock:text hello") && last.contains("@mock:text again"),
        "history not sent"
    );

    let mut error = spec(&sb.work, "@mock:error go");
    error.model = first.model.clone();
    let r = run_cli(&backend::Gemini, &bin, &error, &e).await;
    let d = r.describe();
    // Exit status = HTTP status mod 256 (real-agents.md).
    assert_eq!(
        r.report.status.and_then(|s| s.code()),
        Some(400 % 256),
        "{d}"
    );
    assert!(
        r.outcome
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("mock 400"),
        "{d}"
    );
}

// ---- Hermes Agent (PyPI, text output) ----

/// Hermes' config pointing its `custom` provider at the mock (`$HOME/.hermes/config.yaml`).
fn hermes_env(sb: &Sandbox, mock: &MockModel) -> Vec<(String, String)> {
    let dir = sb.home.join(".hermes");
    std::fs::create_dir_all(&dir).expect("mkdir .hermes");
    let config = format!(
        "model:\n  provider: custom\n  base_url: {}\n  default: mock-model\n  api_key: mock-key\n",
        mock.openai_base_url()
    );
    std::fs::write(dir.join("config.yaml"), config).expect("hermes config");
    env(&[
        ("HOME", &sb.home.to_string_lossy()),
        ("TMPDIR", &sb.tmp.to_string_lossy()),
        ("OPENAI_API_KEY", "mock-key"),
    ])
}

/// Write, then a shell command, then resume: the session id (from stderr) comes back,
/// the history is sent again; then an API error fails the run.
#[tokio::test]
async fn hermes_writes_runs_a_command_resumes_and_reports_api_errors() {
    let Some(bin) = installed("hermes") else {
        return;
    };
    let _lock = heavy_lock().await;
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let e = hermes_env(&sb, &mock);
    let r = run_cli(
        &backend::Hermes,
        &bin,
        &spec(&sb.work, "@mock:write-shell please do the task"),
        &e,
    )
    .await;
    let d = r.describe();
    assert_eq!(r.report.status.and_then(|s| s.code()), Some(0), "{d}");
    assert_eq!(r.outcome.error, None, "{d}");
    assert!(r.outcome.ended, "{d}");
    assert_eq!(
        r.outcome.output, "MOCK-DONE: wrote and read hello.txt",
        "{d}"
    );
    let edit = r.of_kind(MessageKind::ToolUse);
    assert_eq!(edit.len(), 1, "{d}");
    assert_eq!(edit[0].tool.as_deref(), Some("file_edit"), "{d}");
    let input = edit[0].input.clone().unwrap_or_default();
    assert_eq!(input["path"], "hello.txt", "{d}");
    assert!(
        input["diff"]
            .as_str()
            .unwrap_or_default()
            .contains("+hello from mock"),
        "{d}"
    );
    assert_eq!(
        std::fs::read_to_string(sb.work.join("hello.txt")).unwrap_or_default(),
        "hello from mock\n",
        "{d}"
    );
    // All three turns of the script reached the mock: the shell command's result too.
    let turns: Vec<usize> = mock
        .requests()
        .iter()
        .filter(|q| q.api == Api::ChatCompletions && q.scenario.as_deref() == Some("write-shell"))
        .map(|q| q.turn)
        .collect();
    assert!(turns.contains(&2), "turns {turns:?}");
    let session = r.outcome.session_id.clone().expect("session id on stderr");
    assert_eq!(r.session_ids, [session.clone()], "{d}");

    let mut resume = spec(&sb.work, "@mock:text again");
    resume.prior_session_id = Some(session.clone());
    let r = run_cli(&backend::Hermes, &bin, &resume, &e).await;
    let d = r.describe();
    assert_eq!(r.report.status.and_then(|s| s.code()), Some(0), "{d}");
    assert_eq!(
        r.outcome.session_id.as_deref(),
        Some(session.as_str()),
        "{d}"
    );
    assert_eq!(r.outcome.output, "Hello from the mock model.", "{d}");
    let last = mock.requests().pop().expect("request").body.to_string();
    assert!(
        last.contains("@mock:write-shell please") && last.contains("@mock:text again"),
        "history not sent"
    );

    let r = run_cli(
        &backend::Hermes,
        &bin,
        &spec(&sb.work, "@mock:error go"),
        &e,
    )
    .await;
    let d = r.describe();
    assert_ne!(r.report.status.and_then(|s| s.code()), Some(0), "{d}");
    assert_eq!(
        r.outcome.error.as_deref(),
        Some("HTTP 400: mock 400"),
        "{d}"
    );
}

// ---- mini-swe-agent (PyPI, its trajectory on stdout) ----

/// litellm's OpenAI provider pointed at the mock; no cost lookup (the mock model has no
/// price), one attempt per model call (mini retries 10 times with backoff by default).
fn mini_env(sb: &Sandbox, mock: &MockModel) -> Vec<(String, String)> {
    env(&[
        ("HOME", &sb.home.to_string_lossy()),
        ("TMPDIR", &sb.tmp.to_string_lossy()),
        ("OPENAI_API_KEY", "mock-key"),
        ("OPENAI_API_BASE", &mock.openai_base_url()),
        ("MSWEA_MODEL_NAME", "openai/mock-model"),
        ("MSWEA_COST_TRACKING", "ignore_errors"),
        ("MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT", "1"),
        ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
    ])
}

#[tokio::test]
async fn mini_writes_a_file_runs_a_command_and_answers() {
    let Some(bin) = installed("mini") else {
        return;
    };
    let _lock = heavy_lock().await;
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let r = run_cli(
        &backend::MiniSwe,
        &bin,
        &spec(&sb.work, "@mock:write-shell please do the task"),
        &mini_env(&sb, &mock),
    )
    .await;
    let d = r.describe();
    assert_eq!(r.report.status.and_then(|s| s.code()), Some(0), "{d}");
    assert_eq!(r.outcome.error, None, "{d}");
    assert!(r.outcome.ended, "{d}");
    assert_eq!(
        r.outcome.output, "MOCK-DONE: wrote and read hello.txt",
        "{d}"
    );
    let uses = r.of_kind(MessageKind::ToolUse);
    assert_eq!(uses.len(), 3, "write, cat, submit\n{d}");
    assert!(
        uses.iter().all(|m| m.tool.as_deref() == Some("bash")),
        "{d}"
    );
    let results = r.of_kind(MessageKind::ToolResult);
    assert!(
        results
            .iter()
            .any(|m| m.output.as_deref() == Some("hello from mock\n")),
        "the cat's output\n{d}"
    );
    assert_eq!(
        std::fs::read_to_string(sb.work.join("hello.txt")).unwrap_or_default(),
        "hello from mock\n",
        "{d}"
    );
    assert_eq!(r.outcome.usage.len(), 1, "{d}");
    assert_eq!(r.outcome.usage[0].input_tokens, 303, "{d}");
    assert!(r.session_ids.is_empty(), "mini has no sessions\n{d}");
}

#[tokio::test]
async fn mini_reports_an_api_error() {
    let Some(bin) = installed("mini") else {
        return;
    };
    let _lock = heavy_lock().await;
    let mock = MockModel::start(vec![]).await.expect("mock");
    let sb = sandbox();
    let r = run_cli(
        &backend::MiniSwe,
        &bin,
        &spec(&sb.work, "@mock:error go"),
        &mini_env(&sb, &mock),
    )
    .await;
    let d = r.describe();
    assert_eq!(r.report.status.and_then(|s| s.code()), Some(1), "{d}");
    let err = r.outcome.error.clone().unwrap_or_default();
    assert!(
        err.starts_with("BadRequestError: ") && err.contains("mock 400"),
        "{d}"
    );
    assert_eq!(mock.count(Api::ChatCompletions), 1, "one attempt\n{d}");
}
