//! OpenCode: `opencode run --format json`.
//!
//! Every line is `{type, timestamp, sessionID, part}`: `step_start`, `text` (whole, no
//! deltas), `reasoning`, `tool_use` (printed once, when the tool has finished:
//! `part.state.{status,input,output}`), `step_finish` (`part.tokens`, per step, summed;
//! `reason: "stop"` on the last step) and `error` (`error.data.message`). There is no
//! end-of-run event beyond the last `step_finish`; the process exit ends the run.
//! Usage carries no model name: the run's model, or `unknown`.

use serde_json::{Map, Value};

use super::util::{
    Tokens, UsageTally, filter_args, int, note_session, parse_object, unparseable, value_to_text,
};
use super::{
    AgentEvent, Backend, CommandSpec, Finish, MessageDraft, RunOutcome, RunSpec, StreamParser,
};

const PROVIDER: &str = "opencode";

const BLOCKED: &[(&str, bool)] = &[
    ("--format", true),
    ("--session", true),
    ("-s", true),
    ("--continue", false),
    ("-c", false),
];

/// The OpenCode backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenCode;

impl Backend for OpenCode {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `opencode run --format json [--model M] [--session ID] <custom args> -- <prompt>`,
    /// with every permission allowed (a headless run cannot answer "ask").
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args: Vec<String> = ["run", "--format", "json"]
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
        args.push("--".to_string());
        args.push(run.prompt.clone());
        CommandSpec {
            program: "opencode",
            args,
            env: vec![(
                "OPENCODE_PERMISSION".to_string(),
                r#"{"*":"allow"}"#.to_string(),
            )],
        }
    }

    fn parser(&self, run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(OpenCodeParser::for_provider(PROVIDER, run))
    }
}

/// Parser state for one OpenCode run (or a CLI that prints OpenCode's stream, such as Kilo
/// Code: [`OpenCodeParser::for_provider`]).
#[derive(Debug)]
pub struct OpenCodeParser {
    /// The provider named in usage entries and error messages.
    provider: &'static str,
    model: Option<String>,
    session_id: Option<String>,
    last_text: Option<String>,
    usage: UsageTally,
    error: Option<String>,
    ended: bool,
}

impl Default for OpenCodeParser {
    fn default() -> Self {
        OpenCodeParser::for_provider(PROVIDER, &RunSpec::default())
    }
}

impl OpenCodeParser {
    /// A parser for `run` whose usage entries name `provider`.
    pub fn for_provider(provider: &'static str, run: &RunSpec) -> OpenCodeParser {
        OpenCodeParser {
            provider,
            model: run.model.clone().filter(|m| !m.is_empty()),
            session_id: None,
            last_text: None,
            usage: UsageTally::default(),
            error: None,
            ended: false,
        }
    }

    fn tool(&mut self, part: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        let tool = part
            .get("tool")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        let state = part.get("state").and_then(Value::as_object);
        let status = state.and_then(|s| s.get("status")).and_then(Value::as_str);
        let input = state
            .and_then(|s| s.get("input"))
            .cloned()
            .unwrap_or(Value::Null);
        out.push(AgentEvent::Message(MessageDraft::tool_use(
            tool.clone(),
            input,
        )));
        match status {
            Some("completed") => {
                let output = state.and_then(|s| s.get("output")).and_then(value_to_text);
                out.push(AgentEvent::Message(MessageDraft::tool_result(
                    Some(tool),
                    output,
                )));
            }
            Some("error") => {
                let output = state.and_then(|s| s.get("error")).and_then(value_to_text);
                let mut msg = MessageDraft::tool_result(Some(tool), output);
                msg.content = Some("error".to_string());
                out.push(AgentEvent::Message(msg));
            }
            _ => {}
        }
    }

    fn step_finish(&mut self, part: &Map<String, Value>) {
        if part.get("reason").and_then(Value::as_str) == Some("stop") {
            self.ended = true;
        }
        let Some(tokens) = part.get("tokens") else {
            return;
        };
        let cache = tokens.get("cache");
        let model = self.model.clone().unwrap_or_else(|| "unknown".to_string());
        self.usage.add(
            self.provider,
            &model,
            Tokens {
                input: int(tokens.get("input")),
                output: int(tokens.get("output")),
                cache_read: int(cache.and_then(|c| c.get("read"))),
                cache_write: int(cache.and_then(|c| c.get("write"))),
            },
        );
    }
}

impl StreamParser for OpenCodeParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let obj = match parse_object(line) {
            Ok(Some(obj)) => obj,
            Ok(None) => return Vec::new(),
            Err(()) => return vec![unparseable(self.provider, line)],
        };
        let mut out = Vec::new();
        note_session(&mut self.session_id, obj.get("sessionID"), &mut out);
        let empty = Map::new();
        let part = obj.get("part").and_then(Value::as_object).unwrap_or(&empty);
        match obj.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(text) = part
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    self.last_text = Some(text.to_string());
                    out.push(AgentEvent::Message(MessageDraft::text(text)));
                }
            }
            Some("reasoning") => {
                if let Some(text) = part
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    out.push(AgentEvent::Message(MessageDraft::thinking(text)));
                }
            }
            Some("tool_use") => self.tool(part, &mut out),
            Some("step_finish") => self.step_finish(part),
            Some("error") => {
                let error = obj.get("error");
                let text = error
                    .and_then(|e| e.get("data"))
                    .and_then(|d| d.get("message"))
                    .and_then(value_to_text)
                    .or_else(|| error.and_then(|e| e.get("name")).and_then(value_to_text))
                    .unwrap_or_else(|| "error".to_string());
                self.ended = true;
                self.error = Some(text.clone());
                out.push(AgentEvent::Message(MessageDraft::error(text)));
            }
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
