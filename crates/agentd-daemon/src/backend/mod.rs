//! The agent-facing layer: how each agent CLI is launched and how its stdout is read.
//!
//! A [`Backend`] knows one CLI (Claude Code, Codex, OpenCode, Gemini CLI, Hermes Agent,
//! mini-swe-agent, Copilot CLI, Factory Droid): the argv and extra environment of a
//! headless run ([`Backend::command`]) and a fresh [`StreamParser`] for that run's stdout
//! ([`Backend::parser`]). The parser turns the CLI's output (JSON lines for most; text or
//! a re-printed trajectory for some) into [`AgentEvent`]s (transcript messages and the
//! session id) and, at EOF, into a [`RunOutcome`] (final output, per-model usage, error);
//! [`StreamParser::stderr`] sees the stderr tail first, for a CLI that prints its session
//! id there.
//!
//! - [`provider`]: the provider table, one row per CLI (binary, version probe, backend,
//!   state dirs, environment and network allow-lists, resume support).
//! - [`custom`]: operator-declared CLIs (`[agents.custom.NAME]`): an argument template,
//!   text or a known provider's JSON-lines output.
//! - [`lines`]: the stdout line reader (a codec whose over-long lines are items, not errors).
//! - [`claude`], [`codex`], [`opencode`], [`gemini`], [`hermes`], [`mini`], [`copilot`],
//!   [`droid`]: one backend each.
//! - [`qwen`], [`pi`], [`kilo`], [`continue_cli`]: one backend each (Qwen Code reuses
//!   Claude Code's parser, Kilo Code OpenCode's).
//!
//! # Use (the task pipeline)
//!
//! ```text
//! let backend = backend::for_provider(&provider)?;          // None: unknown provider
//! let spec = backend.command(&run);                          // argv + per-CLI env
//! let mut cmd = process::command_for(&cli_path, &spec, &run.workdir);
//! cmd.envs(agent_custom_env).env("HOME", runtime_home).env("TMPDIR", task_tmp);
//! let mut proc = AgentProcess::spawn(cmd, SpawnOptions::default())?;
//! let mut parser = backend.parser(&run);
//! loop { select! {
//!     line = proc.next_line() => match line {
//!         Some(line) => for ev in line.feed(parser.as_mut()) { /* seq + send, or session */ },
//!         None => break,
//!     },
//!     _ = cancelled / inactivity => proc.terminate(grace),    // SIGTERM group, SIGKILL later
//! } }
//! let report = proc.finish().await;                          // status, stderr tail, unread lines
//! // feed report.unread, then: let Finish { events, outcome } = parser.finish();
//! // outcome.error / !outcome.ended / non-zero exit => failed (append report.stderr_tail)
//! ```
//!
//! Known gaps the caller handles: Codex usage after `exec resume` is cumulative over the
//! thread; OpenCode and Codex usage carry the run's model name (`unknown` if none);
//! Claude Code `permission_denials` show up as error messages only.
//!
//! **Architecture Invariant:** parsers never panic and never stop: a line that is not
//! JSON, or JSON of an unknown shape, yields an error message or nothing, and the next
//! line is parsed normally. Unknown event types are ignored (newer CLIs add some).
//!
//! **API Boundary:** backends do not spawn anything and do not know base URLs or API
//! keys; the caller (the task pipeline) spawns through [`crate::process`] with its own
//! environment plus [`CommandSpec::env`]. Wire types are `agentd_proto`'s; the serde types
//! inside the backend modules only describe what a CLI prints.

pub mod claude;
pub mod codex;
pub mod continue_cli;
pub mod copilot;
pub mod custom;
pub mod droid;
pub mod gemini;
pub mod hermes;
pub mod kilo;
pub mod lines;
pub mod mini;
pub mod opencode;
pub mod pi;
pub mod provider;
pub mod qwen;
mod util;

use std::path::PathBuf;

use agentd_proto::{MessageKind, TaskMessage, UsageEntry};
use serde_json::Value;

pub use claude::Claude;
pub use codex::Codex;
pub use continue_cli::ContinueCli;
pub use copilot::Copilot;
pub use droid::Droid;
pub use gemini::Gemini;
pub use hermes::Hermes;
pub use kilo::Kilo;
pub use lines::{Line, LineCodec};
pub use mini::MiniSwe;
pub use opencode::OpenCode;
pub use pi::Pi;
pub use provider::{PROVIDERS, ProviderInfo};
pub use qwen::Qwen;

/// One agent CLI.
pub trait Backend: Send + Sync {
    /// The provider name (`claude`, `codex`, …: a row of [`provider::PROVIDERS`]), as in
    /// `RuntimeSpec::provider` and `UsageEntry::provider`.
    fn provider(&self) -> &'static str;
    /// Program name, argv (without the program) and extra env for one run.
    fn command(&self, run: &RunSpec) -> CommandSpec;
    /// A fresh parser for one run's stdout.
    fn parser(&self, run: &RunSpec) -> Box<dyn StreamParser>;
}

/// Parses one run's stdout, line by line.
pub trait StreamParser: Send {
    /// Feeds one stdout line (without its newline); returns zero or more events. A line
    /// that does not parse yields an error message event; parsing continues.
    fn line(&mut self, line: &str) -> Vec<AgentEvent>;
    /// Called once after the process exited, before [`StreamParser::finish`], with the
    /// tail of its stderr, for CLIs that print something the run needs there (Hermes
    /// prints its session id on stderr). Default: nothing.
    fn stderr(&mut self, _tail: &str) -> Vec<AgentEvent> {
        Vec::new()
    }
    /// Called once at EOF: any events still buffered, and the run's outcome.
    fn finish(&mut self) -> Finish;
}

/// The backend for a provider name, if agentd knows it (see [`provider::PROVIDERS`]).
pub fn for_provider(provider: &str) -> Option<Box<dyn Backend>> {
    provider::provider(provider).map(|p| (p.backend)())
}

/// What one run is asked to do. Base URLs, API keys and HOME come from the caller's
/// environment, never from here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSpec {
    /// The full prompt.
    pub prompt: String,
    /// The agent's working directory (the task's worktree).
    pub workdir: PathBuf,
    /// Model override (`agent.model`); `None` lets the CLI choose.
    pub model: Option<String>,
    /// `agent.custom_args`; flags that would break the protocol are dropped per backend.
    pub custom_args: Vec<String>,
    /// Session to resume (`task.prior_session_id`).
    pub prior_session_id: Option<String>,
    /// agentd's sandbox already wraps the run: a CLI's own OS sandbox is turned off (it
    /// cannot nest reliably, and its own network rules would bypass agentd's proxy).
    pub in_sandbox: bool,
    /// The agent's MCP servers (`agent.mcp_config`, Claude Code's `{"mcpServers": …}`
    /// JSON); `None` or an empty object: none. Only Claude Code takes it (as Multica's
    /// daemon does).
    pub mcp_config: Option<serde_json::Value>,
}

/// How to launch a run: `program` (the default executable name; the caller substitutes
/// the detected path), `args`, and `env` set on top of the caller's environment.
/// Stdin must be `/dev/null` for every CLI (Codex reads stdin to EOF otherwise).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandSpec {
    pub program: &'static str,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// One thing a parser recognised in the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// A transcript message; the pipeline numbers it (`seq`) and sends it to the server.
    Message(MessageDraft),
    /// The CLI's session id, emitted when first seen and again if it changes.
    SessionId(String),
}

/// A [`TaskMessage`] without its `seq`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageDraft {
    pub kind: MessageKind,
    /// Tool name (tool_use and tool_result).
    pub tool: Option<String>,
    /// Text, thinking or error text.
    pub content: Option<String>,
    /// Tool input (tool_use).
    pub input: Option<Value>,
    /// Tool output (tool_result).
    pub output: Option<String>,
}

impl MessageDraft {
    pub fn text(text: impl Into<String>) -> MessageDraft {
        MessageDraft {
            kind: MessageKind::Text,
            content: Some(text.into()),
            ..MessageDraft::default()
        }
    }

    pub fn thinking(text: impl Into<String>) -> MessageDraft {
        MessageDraft {
            kind: MessageKind::Thinking,
            content: Some(text.into()),
            ..MessageDraft::default()
        }
    }

    pub fn error(text: impl Into<String>) -> MessageDraft {
        MessageDraft {
            kind: MessageKind::Error,
            content: Some(text.into()),
            ..MessageDraft::default()
        }
    }

    pub fn tool_use(tool: impl Into<String>, input: Value) -> MessageDraft {
        MessageDraft {
            kind: MessageKind::ToolUse,
            tool: Some(tool.into()),
            input: Some(input),
            ..MessageDraft::default()
        }
    }

    pub fn tool_result(tool: Option<String>, output: Option<String>) -> MessageDraft {
        MessageDraft {
            kind: MessageKind::ToolResult,
            tool,
            output,
            ..MessageDraft::default()
        }
    }

    /// The wire message with sequence number `seq`.
    pub fn into_message(self, seq: i64) -> TaskMessage {
        TaskMessage {
            seq,
            kind: self.kind,
            tool: self.tool,
            content: self.content,
            input: self.input,
            output: self.output,
            created_at: None,
        }
    }
}

/// What [`StreamParser::finish`] returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Finish {
    /// Events the parser still held (e.g. Gemini text deltas not yet closed by another event).
    pub events: Vec<AgentEvent>,
    pub outcome: RunOutcome,
}

/// The result of one run as far as its stdout tells. The exit status is the caller's to
/// combine: a CLI killed by a signal prints no end event (`ended == false`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunOutcome {
    /// The last session id seen.
    pub session_id: Option<String>,
    /// The final answer: the CLI's own result text where it has one, else the last
    /// assistant text.
    pub output: String,
    /// Token usage of this run, one entry per model with any non-zero counter. `input_tokens`
    /// excludes cache reads (Anthropic's meaning) for every provider.
    pub usage: Vec<UsageEntry>,
    /// `Some` when the CLI reported the run as failed (API error, aborted turn, …).
    pub error: Option<String>,
    /// The CLI printed its end-of-run event (Claude and Gemini `result`, Codex
    /// `turn.completed`/`turn.failed`, OpenCode a `step_finish` with reason `stop` or an
    /// `error`).
    pub ended: bool,
}

impl RunOutcome {
    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }
}
