//! Pi: `pi -p --mode json` (`@mariozechner/pi-coding-agent`).
//!
//! Stream: a `session` header (`id`: the session id, also after `--session`), then the
//! agent's events: `agent_start`, `turn_start`/`turn_end`, `message_start`,
//! `message_update` (streaming deltas), `message_end`, `tool_execution_*`,
//! `auto_retry_start`/`auto_retry_end` and `agent_end`. Only `message_end` is read for
//! the transcript: an `assistant` message's `content` blocks (`text`, `thinking`,
//! `toolCall` with `name` and `arguments`), its `model` and `usage` (`input`, `output`,
//! `cacheRead`, `cacheWrite`, per call: summed per model), and `stopReason` (`error` or
//! `aborted` with `errorMessage`: the run failed; Pi still exits 0); a `toolResult`
//! message is a tool result (`toolName`, `content` text blocks, `isError`). `agent_end`
//! ends the run.

use serde_json::{Map, Value};

use super::util::{
    Tokens, UsageTally, filter_args, int, note_session, parse_object, unparseable, value_to_text,
};
use super::{
    AgentEvent, Backend, CommandSpec, Finish, MessageDraft, RunOutcome, RunSpec, StreamParser,
};

const PROVIDER: &str = "pi";

const BLOCKED: &[(&str, bool)] = &[
    ("-p", false),
    ("--print", false),
    ("--mode", true),
    ("--session", true),
    ("--continue", false),
    ("-c", false),
    ("--resume", false),
    ("-r", false),
    ("--fork", true),
    ("--no-session", false),
    ("--export", true),
];

/// The Pi backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pi;

impl Backend for Pi {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `pi -p --mode json [--model M] [--session ID] <custom args> <prompt>`. Pi has no
    /// permission prompts and no `--` escape: an argument starting with `@` names a file
    /// to attach and one starting with `-` a flag, so such a prompt gets a leading space.
    /// The model provider comes from Pi's own settings (`defaultProvider`, `models.json`)
    /// unless `--model provider/id` names it.
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args: Vec<String> = ["-p", "--mode", "json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(model) = run.model.as_deref().filter(|m| !m.is_empty()) {
            args.extend(["--model".to_string(), model.to_string()]);
        }
        if let Some(id) = run.prior_session_id.as_deref().filter(|s| !s.is_empty()) {
            args.extend(["--session".to_string(), id.to_string()]);
        }
        args.extend(filter_args(PROVIDER, &run.custom_args, BLOCKED));
        let prompt = if run.prompt.starts_with(['@', '-']) {
            format!(" {}", run.prompt)
        } else {
            run.prompt.clone()
        };
        args.push(prompt);
        CommandSpec {
            program: "pi",
            args,
            // No update checks or install telemetry at start-up.
            env: vec![("PI_OFFLINE".to_string(), "1".to_string())],
        }
    }

    fn parser(&self, _run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(PiParser::default())
    }
}

/// Parser state for one Pi run.
#[derive(Debug, Default)]
pub struct PiParser {
    session_id: Option<String>,
    last_text: Option<String>,
    usage: UsageTally,
    /// The last assistant message's failure; a later successful message clears it (an
    /// automatic retry that worked).
    error: Option<String>,
    ended: bool,
}

impl PiParser {
    fn assistant(&mut self, msg: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        let blocks = msg.get("content").and_then(Value::as_array);
        for block in blocks.into_iter().flatten() {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    if let Some(text) = block
                        .get("text")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                    {
                        self.last_text = Some(text.to_string());
                        out.push(AgentEvent::Message(MessageDraft::text(text)));
                    }
                }
                Some("thinking") => {
                    if let Some(text) = block
                        .get("thinking")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                    {
                        out.push(AgentEvent::Message(MessageDraft::thinking(text)));
                    }
                }
                Some("toolCall") => {
                    let name = block
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown");
                    let input = block.get("arguments").cloned().unwrap_or(Value::Null);
                    out.push(AgentEvent::Message(MessageDraft::tool_use(name, input)));
                }
                _ => {}
            }
        }
        if let Some(u) = msg.get("usage") {
            let model = msg
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            self.usage.add(
                PROVIDER,
                model,
                Tokens {
                    input: int(u.get("input")),
                    output: int(u.get("output")),
                    cache_read: int(u.get("cacheRead")),
                    cache_write: int(u.get("cacheWrite")),
                },
            );
        }
        match msg.get("stopReason").and_then(Value::as_str) {
            Some(reason @ ("error" | "aborted")) => {
                let text = msg
                    .get("errorMessage")
                    .and_then(value_to_text)
                    .unwrap_or_else(|| format!("pi run {reason}"));
                out.push(AgentEvent::Message(MessageDraft::error(text.clone())));
                self.error = Some(text);
            }
            _ => self.error = None,
        }
    }

    fn tool_result(&mut self, msg: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        let tool = msg
            .get("toolName")
            .and_then(Value::as_str)
            .map(str::to_string);
        let output = msg.get("content").and_then(|c| match c {
            Value::Array(blocks) => {
                let texts: Vec<&str> = blocks
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect();
                if texts.is_empty() {
                    value_to_text(c)
                } else {
                    Some(texts.join("\n"))
                }
            }
            other => value_to_text(other),
        });
        let mut draft = MessageDraft::tool_result(tool, output);
        if msg.get("isError").and_then(Value::as_bool) == Some(true) {
            draft.content = Some("error".to_string());
        }
        out.push(AgentEvent::Message(draft));
    }
}

impl StreamParser for PiParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let obj = match parse_object(line) {
            Ok(Some(obj)) => obj,
            Ok(None) => return Vec::new(),
            Err(()) => return vec![unparseable(PROVIDER, line)],
        };
        let mut out = Vec::new();
        match obj.get("type").and_then(Value::as_str) {
            Some("session") => note_session(&mut self.session_id, obj.get("id"), &mut out),
            Some("message_end") => {
                let Some(msg) = obj.get("message").and_then(Value::as_object) else {
                    return out;
                };
                match msg.get("role").and_then(Value::as_str) {
                    Some("assistant") => self.assistant(msg, &mut out),
                    Some("toolResult") => self.tool_result(msg, &mut out),
                    _ => {}
                }
            }
            Some("auto_retry_start") => {
                let attempt = int(obj.get("attempt"));
                let max = int(obj.get("maxAttempts"));
                let error = obj
                    .get("errorMessage")
                    .and_then(value_to_text)
                    .unwrap_or_default();
                out.push(AgentEvent::Message(MessageDraft::error(format!(
                    "API retry {attempt}/{max}: {error}"
                ))));
            }
            Some("agent_end") => self.ended = true,
            // message_update repeats what message_end brings; the rest carry nothing for
            // the transcript.
            _ => {}
        }
        out
    }

    fn finish(&mut self) -> Finish {
        Finish {
            events: Vec::new(),
            outcome: RunOutcome {
                session_id: self.session_id.clone(),
                output: self.last_text.clone().unwrap_or_default(),
                usage: self.usage.entries(),
                error: self.error.clone(),
                ended: self.ended,
            },
        }
    }
}
