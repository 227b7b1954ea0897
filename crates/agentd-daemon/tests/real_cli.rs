//! The real agent CLIs, run through our backends (argv, env, parser) and `process.rs`
//! against the mock model API from `agentd-testkit`, fully offline.
//!
//! One table over CLIs: each row of [`agentd_testkit::agent_clis::ROWS`] says how its CLI
//! is installed and pointed at the mock and what its runs look like; each test below is
//! stamped once per row by `per_cli!` (named `<cli>::<test>`, so a failure names the CLI).
//!
//! The CLIs come from `scripts/install-agent-clis.sh` (pinned versions, installed under
//! `$AGENTD_CLI_PREFIX`, default `<repo>/.cache/agent-clis`). A CLI that is not installed,
//! or a behaviour a row does not record, is skipped with a `SKIP real_cli <name>: …` line
//! on stderr, never silently. Claude Code and Codex are cheap (< 1 s, ~200 MiB a run);
//! heavy rows (OpenCode ~4 s, ~700 MiB; Gemini) take a file lock so that at most one of
//! them runs at a time, even under nextest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentd_daemon::backend::{self, AgentEvent, Backend, MessageDraft, RunOutcome, RunSpec};
use agentd_daemon::process::{AgentProcess, ExitReport, SpawnOptions, command_for};
use agentd_proto::MessageKind;
use agentd_testkit::agent_clis::{self, CancelSignal, CliRow};
use agentd_testkit::mock_model::{Api, MockModel};
use nix::sys::signal::Signal;

const RUN_BOUND: Duration = Duration::from_secs(90);

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
fn assert_wrote_file(row: &CliRow, r: &RunResult, work: &Path) {
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
    let written = std::fs::read_to_string(work.join("hello.txt")).unwrap_or_default();
    assert_eq!(written, "hello from mock\n", "file not written\n{d}");
    if row.answer_only {
        assert_eq!(r.messages.len(), 1, "only the final answer\n{d}");
        return;
    }
    let uses = r.of_kind(MessageKind::ToolUse);
    assert!(
        uses.iter().any(|m| m
            .input
            .as_ref()
            .is_some_and(|i| i.to_string().contains("hello.txt"))),
        "no tool_use naming hello.txt\n{d}"
    );
    // A CLI that prints no tool results (Hermes' quiet mode) has no shell tool row.
    if row.shell_tool.is_some() {
        assert!(!r.of_kind(MessageKind::ToolResult).is_empty(), "{d}");
    }
    // A CLI that cannot resume may have no session id (mini-swe-agent has no sessions).
    if row.resume {
        assert!(
            !r.session_ids.is_empty() && r.outcome.session_id.is_some(),
            "{d}"
        );
    }
    if row.usage {
        assert!(!r.outcome.usage.is_empty(), "{d}");
    }
}

/// The mock saw exactly `counts` requests per API.
fn assert_requests(mock: &MockModel, counts: &[(Api, usize)]) {
    for (api, n) in counts {
        assert_eq!(
            mock.count(*api),
            *n,
            "{api:?} requests: {:?}",
            mock.requests()
        );
    }
}

/// One row's CLI, its backend and a fresh mock model and sandbox dirs.
struct Setup {
    row: &'static CliRow,
    bin: PathBuf,
    backend: Box<dyn Backend>,
    mock: MockModel,
    sb: Sandbox,
    env: Vec<(String, String)>,
    _lock: Option<std::fs::File>,
}

impl Setup {
    /// `None` (after a SKIP line) when the CLI is not installed.
    async fn new(name: &str) -> Option<Setup> {
        let row = agent_clis::row(name);
        let bin = row.installed("real_cli")?;
        let backend = backend::for_provider(name).expect("a backend for every row");
        let lock = agent_clis::heavy_lock(row).await;
        let mock = MockModel::start(vec![]).await.expect("mock");
        let sb = sandbox();
        let mut env = vec![
            ("HOME".to_string(), sb.home.to_string_lossy().into_owned()),
            ("TMPDIR".to_string(), sb.tmp.to_string_lossy().into_owned()),
        ];
        env.extend(row.env(&sb.home, &mock));
        Some(Setup {
            row,
            bin,
            backend,
            mock,
            sb,
            env,
            _lock: lock,
        })
    }

    /// A run of `prompt` with `model`.
    fn spec(&self, prompt: &str, model: Option<&str>) -> RunSpec {
        RunSpec {
            prompt: prompt.to_string(),
            workdir: self.sb.work.clone(),
            model: model.map(str::to_string),
            ..RunSpec::default()
        }
    }

    async fn run(&self, run: &RunSpec) -> RunResult {
        run_cli(self.backend.as_ref(), &self.bin, run, &self.env).await
    }
}

async fn writes_a_file_and_answers(name: &str) {
    let Some(s) = Setup::new(name).await else {
        return;
    };
    let r = s
        .run(&s.spec("@mock:write please do the task", s.row.write_model))
        .await;
    assert_wrote_file(s.row, &r, &s.sb.work);
    if !s.row.answer_only {
        let uses = r.of_kind(MessageKind::ToolUse);
        assert_eq!(
            uses[0].tool.as_deref(),
            Some(s.row.write_tool),
            "{}",
            r.describe()
        );
    }
    assert_requests(&s.mock, s.row.write_requests);
}

async fn resume_continues_the_session(name: &str) {
    // Before the setup: a heavy row would otherwise wait for the lock only to skip.
    if !agent_clis::row(name).resume {
        eprintln!("SKIP real_cli {name}: the CLI has no session resume");
        return;
    }
    let Some(s) = Setup::new(name).await else {
        return;
    };
    let first = s.run(&s.spec("@mock:text hello", s.row.model)).await;
    assert_eq!(
        first.outcome.output,
        "Hello from the mock model.",
        "{}",
        first.describe()
    );
    assert_requests(&s.mock, s.row.text_requests);
    let session = first.outcome.session_id.clone().expect("session id");

    let mut resume = s.spec("@mock:text again", s.row.model);
    resume.prior_session_id = Some(session.clone());
    let second = s.run(&resume).await;
    let d = second.describe();
    assert_eq!(second.report.status.and_then(|s| s.code()), Some(0), "{d}");
    assert_eq!(second.outcome.error, None, "{d}");
    assert_eq!(second.outcome.output, "Hello from the mock model.", "{d}");
    assert_eq!(
        second.outcome.session_id.as_deref(),
        Some(session.as_str()),
        "{d}"
    );
    // The resumed request carried the first exchange too.
    let last = s.mock.requests().pop().expect("request").body.to_string();
    assert!(
        last.contains("@mock:text hello") && last.contains("@mock:text again"),
        "history not sent on resume"
    );
    // Codex reports usage cumulative over the thread (real-agents.md, pitfall 21): the
    // mock answers 100 in / 10 out per request, so the resumed run shows both turns.
    if let Some((input, output)) = s.row.resume_usage {
        let usage = &second.outcome.usage;
        assert_eq!(usage.len(), 1, "{d}");
        assert_eq!(
            (usage[0].input_tokens, usage[0].output_tokens),
            (input, output),
            "{d}"
        );
    }
}

/// `RunSpec::model` reaches the model API: every request of the run to the row's API
/// names the chosen model.
async fn the_chosen_model_is_asked(name: &str) {
    let Some(s) = Setup::new(name).await else {
        return;
    };
    let Some((model, shown)) = s
        .row
        .needs("real_cli", "a model choice", s.row.model_choice)
    else {
        return;
    };
    let r = s.run(&s.spec("@mock:text hello", Some(model))).await;
    let d = r.describe();
    assert_eq!(r.outcome.output, "Hello from the mock model.", "{d}");
    let asked: Vec<String> = s
        .mock
        .requests()
        .iter()
        .filter(|q| q.api == s.row.api)
        .map(|q| match q.body["model"].as_str() {
            Some(m) => m.to_string(),
            None => q.uri.clone(),
        })
        .collect();
    assert!(!asked.is_empty(), "no request to {:?}\n{d}", s.row.api);
    assert!(
        asked.iter().all(|a| a.contains(shown)),
        "requests name {asked:?}, not {shown:?}\n{d}"
    );
}

/// `@mock:error` (HTTP 400 from the model API): the exit status and the error the row
/// records.
async fn api_error_is_reported(name: &str) {
    let Some(s) = Setup::new(name).await else {
        return;
    };
    let Some((status, texts)) = s
        .row
        .needs("real_cli", "the API-error exit", s.row.api_error)
    else {
        return;
    };
    let r = s.run(&s.spec("@mock:error go", s.row.model)).await;
    let d = r.describe();
    assert_eq!(r.report.status.and_then(|s| s.code()), Some(status), "{d}");
    // An answer-only CLI (Continue) says it on stderr, which the daemon reports.
    let error = if s.row.answer_only {
        assert_eq!(r.outcome.error, None, "{d}");
        r.report.stderr_tail.clone()
    } else {
        r.outcome.error.clone().unwrap_or_default()
    };
    for t in texts {
        assert!(error.contains(t), "the error names {t:?}\n{d}");
    }
}

/// `@mock:write-shell`: the shell command's output comes back as its tool's result.
async fn shell_output_is_reported(name: &str) {
    // Before the setup: a heavy row would otherwise wait for the lock only to skip.
    let row = agent_clis::row(name);
    if row.answer_only {
        let Some(s) = Setup::new(name).await else {
            return;
        };
        // No tool result is printed: the command's output went back to the model.
        let r = s.run(&s.spec("@mock:write-shell go", s.row.model)).await;
        let d = r.describe();
        assert_eq!(
            r.outcome.output, "MOCK-DONE: wrote and read hello.txt",
            "{d}"
        );
        let last = s.mock.requests().pop().expect("request").body.to_string();
        assert!(
            last.contains("hello from mock"),
            "shell output not sent\n{d}"
        );
        return;
    }
    let Some(tool) = row.needs("real_cli", "the shell tool", row.shell_tool) else {
        return;
    };
    let Some(s) = Setup::new(name).await else {
        return;
    };
    let r = s.run(&s.spec("@mock:write-shell go", s.row.model)).await;
    let d = r.describe();
    assert_eq!(
        r.outcome.output, "MOCK-DONE: wrote and read hello.txt",
        "{d}"
    );
    let shell: Vec<&MessageDraft> = r
        .of_kind(MessageKind::ToolResult)
        .into_iter()
        .filter(|m| m.tool.as_deref() == Some(tool))
        .collect();
    assert!(!shell.is_empty(), "no {tool} result\n{d}");
    // Codex and OpenCode pass the command's output on as it is; Claude Code trims the
    // final newline; Copilot CLI appends a `<shellId: 0 completed with exit code 0>`
    // line, Droid a `[Process exited with code 0]` one. (mini's one tool also wrote the
    // file: one of its results.)
    assert!(
        shell.iter().any(|m| {
            let out = m.output.as_deref().unwrap_or_default();
            let status_line = out
                .strip_prefix("hello from mock\n")
                .map(str::trim_start)
                .is_some_and(|rest| rest.starts_with('<') || rest.starts_with('['));
            out.trim_end() == "hello from mock" || status_line
        }),
        "{d}"
    );
}

/// A signal to the group while the model hangs: the CLI stops without SIGKILL, within
/// 30 s, printing its end event (with an error) or not and with the exit status the row
/// records.
async fn a_signal_while_the_model_hangs_stops_it(name: &str) {
    let Some(s) = Setup::new(name).await else {
        return;
    };
    let Some(c) = s
        .row
        .needs("real_cli", "the cancellation behaviour", s.row.cancel)
    else {
        return;
    };
    let cancel = Cancel {
        mock: &s.mock,
        api: s.row.api,
        signal: match c.signal {
            CancelSignal::Int => Signal::SIGINT,
            CancelSignal::Term => Signal::SIGTERM,
        },
    };
    let start = std::time::Instant::now();
    let r = run_cli_with(
        s.backend.as_ref(),
        &s.bin,
        &s.spec("@mock:hang wait", s.row.model),
        &s.env,
        Some(cancel),
    )
    .await;
    let d = r.describe();
    assert!(!r.report.killed, "needed SIGKILL\n{d}");
    assert!(start.elapsed() < Duration::from_secs(30), "{d}");
    if c.ends_with_result {
        assert!(r.outcome.ended, "{d}");
        assert!(r.outcome.error.is_some(), "{d}");
    } else {
        assert!(!r.outcome.ended, "{d}");
    }
    if let Some(zero) = c.exits_zero {
        assert_eq!(
            r.report.status.and_then(|s| s.code()) == Some(0),
            zero,
            "{d}"
        );
    }
}

/// Stamps every test above once per CLI, as `<cli>::<test>`, and lists the CLIs for
/// [`every_row_is_tested`].
/// A provider name written as an identifier (`r#continue` for the keyword) as a string.
fn cli_name(ident: &'static str) -> &'static str {
    ident.trim_start_matches("r#")
}

macro_rules! per_cli {
    ($($cli:ident),* $(,)?) => {
        const TESTED: &[&str] = &[$(stringify!($cli)),*];
        $(
            mod $cli {
                use super::cli_name;
                #[tokio::test]
                async fn writes_a_file_and_answers() {
                    super::writes_a_file_and_answers(cli_name(stringify!($cli))).await;
                }
                #[tokio::test]
                async fn resume_continues_the_session() {
                    super::resume_continues_the_session(cli_name(stringify!($cli))).await;
                }
                #[tokio::test]
                async fn the_chosen_model_is_asked() {
                    super::the_chosen_model_is_asked(cli_name(stringify!($cli))).await;
                }
                #[tokio::test]
                async fn api_error_is_reported() {
                    super::api_error_is_reported(cli_name(stringify!($cli))).await;
                }
                #[tokio::test]
                async fn shell_output_is_reported() {
                    super::shell_output_is_reported(cli_name(stringify!($cli))).await;
                }
                #[tokio::test]
                async fn a_signal_while_the_model_hangs_stops_it() {
                    super::a_signal_while_the_model_hangs_stops_it(cli_name(stringify!($cli)))
                        .await;
                }
            }
        )*
    };
}

per_cli!(
    claude, codex, opencode, gemini, qwen, pi, kilo, r#continue, hermes, mini, copilot, droid
);

/// A row without tests here, or tests for a CLI without a row or backend, is a mistake.
#[test]
fn every_row_is_tested() {
    let rows: Vec<&str> = agent_clis::ROWS.iter().map(|r| r.name).collect();
    let tested: Vec<&str> = TESTED.iter().map(|t| cli_name(t)).collect();
    assert_eq!(rows, tested, "add the row's name to per_cli!");
    for name in tested {
        assert!(
            backend::provider::provider(name).is_some(),
            "{name} is not in agentd's provider table"
        );
    }
}
