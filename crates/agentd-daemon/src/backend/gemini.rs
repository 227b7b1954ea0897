//! Gemini CLI: `gemini --output-format stream-json`.
//!
//! Stream: `init` (session id), `message` (`role`; assistant text arrives as deltas with
//! `delta: true`), `tool_use` (`tool_name`, `tool_id`, `parameters`), `tool_result`
//! (`tool_id`, `status`, `output` or `error`), `error`, and `result` (`status`,
//! `error.message`, `stats.models.<model>` usage, which includes the router's call).
//! Consecutive assistant deltas are joined into one text message, closed by the next
//! non-delta event or by EOF.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::util::{
    Tokens, UsageTally, filter_args, int, note_session, parse_object, unparseable, value_to_text,
};
use super::{
    AgentEvent, Backend, CommandSpec, Finish, MessageDraft, RunOutcome, RunSpec, StreamParser,
};

const PROVIDER: &str = "gemini";

const BLOCKED: &[(&str, bool)] = &[
    ("-p", true),
    ("--prompt", true),
    ("-o", true),
    ("--output-format", true),
    ("--yolo", false),
    ("-y", false),
    ("--approval-mode", true),
    ("--resume", true),
    ("-r", true),
    ("-i", true),
    ("--prompt-interactive", true),
];

/// The Gemini CLI backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gemini;

impl Backend for Gemini {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `gemini --prompt=<prompt> --output-format stream-json --approval-mode yolo [-m M]
    /// [--resume ID] <custom args>`. The `--prompt=` form keeps a prompt starting with `-`
    /// a value. Without `yolo`, headless runs get no write or shell tool at all.
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args = vec![
            format!("--prompt={}", run.prompt),
            "--output-format".to_string(),
            "stream-json".to_string(),
            "--approval-mode".to_string(),
            "yolo".to_string(),
        ];
        if let Some(model) = run.model.as_deref().filter(|m| !m.is_empty()) {
            args.extend(["-m".to_string(), model.to_string()]);
        }
        if let Some(id) = run.prior_session_id.as_deref().filter(|s| !s.is_empty()) {
            args.extend(["--resume".to_string(), id.to_string()]);
        }
        args.extend(filter_args(PROVIDER, &run.custom_args, BLOCKED));
        CommandSpec {
            program: "gemini",
            args,
            env: vec![
                ("GEMINI_CLI_TRUST_WORKSPACE".to_string(), "true".to_string()),
                // The relaunching parent ignores SIGINT/SIGTERM while its child runs.
                ("GEMINI_CLI_NO_RELAUNCH".to_string(), "true".to_string()),
            ],
        }
    }

    fn parser(&self, _run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(GeminiParser::default())
    }
}

/// Parser state for one Gemini CLI run.
#[derive(Debug, Default)]
pub struct GeminiParser {
    session_id: Option<String>,
    tool_names: HashMap<String, String>,
    /// Assistant deltas not yet emitted.
    pending: String,
    last_text: Option<String>,
    usage: UsageTally,
    error: Option<String>,
    ended: bool,
}

impl GeminiParser {
    fn flush(&mut self, out: &mut Vec<AgentEvent>) {
        if !self.pending.is_empty() {
            let text = std::mem::take(&mut self.pending);
            self.last_text = Some(text.clone());
            out.push(AgentEvent::Message(MessageDraft::text(text)));
        }
    }

    fn result(&mut self, obj: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        self.ended = true;
        if obj.get("status").and_then(Value::as_str) == Some("error") {
            let text = obj
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(value_to_text)
                .unwrap_or_else(|| "gemini run failed".to_string());
            out.push(AgentEvent::Message(MessageDraft::error(text.clone())));
            self.error = Some(text);
        }
        let Some(models) = obj
            .get("stats")
            .and_then(|s| s.get("models"))
            .and_then(Value::as_object)
        else {
            return;
        };
        for (model, u) in models {
            let cached = int(u.get("cached"));
            // `input` is the uncached part where present; else derive it.
            let input = match u.get("input") {
                Some(v) => int(Some(v)),
                None => int(u.get("input_tokens")).saturating_sub(cached).max(0),
            };
            self.usage.add(
                PROVIDER,
                model,
                Tokens {
                    input,
                    output: int(u.get("output_tokens")),
                    cache_read: cached,
                    cache_write: 0,
                },
            );
        }
    }
}

impl StreamParser for GeminiParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let obj = match parse_object(line) {
            Ok(Some(obj)) => obj,
            Ok(None) => return Vec::new(),
            Err(()) => {
                let mut out = Vec::new();
                self.flush(&mut out);
                out.push(unparseable(PROVIDER, line));
                return out;
            }
        };
        let mut out = Vec::new();
        let kind = obj.get("type").and_then(Value::as_str);
        let is_delta = kind == Some("message")
            && obj.get("role").and_then(Value::as_str) == Some("assistant")
            && obj.get("delta").and_then(Value::as_bool) == Some(true);
        if !is_delta {
            self.flush(&mut out);
        }
        match kind {
            Some("init") => {
                note_session(&mut self.session_id, obj.get("session_id"), &mut out);
            }
            Some("message") if obj.get("role").and_then(Value::as_str) == Some("assistant") => {
                let text = obj
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.pending.push_str(text);
                if !is_delta {
                    self.flush(&mut out);
                }
            }
            Some("tool_use") => {
                let name = obj
                    .get("tool_name")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                if let Some(id) = obj.get("tool_id").and_then(Value::as_str) {
                    self.tool_names.insert(id.to_string(), name.to_string());
                }
                let input = obj.get("parameters").cloned().unwrap_or(Value::Null);
                out.push(AgentEvent::Message(MessageDraft::tool_use(name, input)));
            }
            Some("tool_result") => {
                let tool = obj
                    .get("tool_id")
                    .and_then(Value::as_str)
                    .and_then(|id| self.tool_names.get(id).cloned());
                let error = obj.get("error");
                let output = obj.get("output").and_then(value_to_text).or_else(|| {
                    error.and_then(|e| {
                        e.get("message")
                            .and_then(value_to_text)
                            .or_else(|| value_to_text(e))
                    })
                });
                let mut msg = MessageDraft::tool_result(tool, output);
                if let Some(status) = obj
                    .get("status")
                    .and_then(Value::as_str)
                    .filter(|s| *s != "success")
                {
                    msg.content = Some(status.to_string());
                }
                out.push(AgentEvent::Message(msg));
            }
            Some("error") => {
                let text = obj
                    .get("message")
                    .and_then(value_to_text)
                    .unwrap_or_else(|| "error".to_string());
                out.push(AgentEvent::Message(MessageDraft::error(text)));
            }
            Some("result") => self.result(&obj, &mut out),
            _ => {}
        }
        out
    }

    fn finish(&mut self) -> Finish {
        let mut events = Vec::new();
        self.flush(&mut events);
        Finish {
            events,
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
