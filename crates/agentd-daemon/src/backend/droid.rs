//! Factory Droid (npm `@factory/cli`): `droid exec -o stream-json --auto high PROMPT`.
//!
//! One JSON object a line, each with `session_id`:
//!
//! - `{"type":"system","subtype":"init","cwd","session_id","tools","model"}`;
//! - `{"type":"message","role":"user"|"assistant","text"}`: whole messages, no deltas;
//! - `{"type":"tool_call","id","toolName","parameters"}` and
//!   `{"type":"tool_result","id","toolId","isError","value"}`;
//! - `{"type":"error","source","message"}`: an API failure is `source: "agent_loop"`
//!   (`400 mock 400`), followed by `source: "cli"` (`Exec failed`) and exit 1;
//! - `{"type":"completion","finalText","numTurns","usage":{input_tokens, output_tokens,
//!   cache_read_input_tokens, cache_creation_input_tokens}}`: the end of a good run.
//!
//! Usage carries no model name: the run's model, else the init line's `model` (which
//! names Factory's default model even when settings.json picks a custom one), else
//! `unknown`.
//! No resume: `droid exec -s <id>` fetches the session from Factory's cloud even for a
//! custom (BYOK) model, so it fails offline (docs/agents.md).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::util::{
    Tokens, UsageTally, filter_args, int, note_session, parse_object, unparseable, value_to_text,
};
use super::{
    AgentEvent, Backend, CommandSpec, Finish, MessageDraft, RunOutcome, RunSpec, StreamParser,
};

const PROVIDER: &str = "droid";

const BLOCKED: &[(&str, bool)] = &[
    ("-o", true),
    ("--output-format", true),
    ("--input-format", true),
    ("-f", true),
    ("--file", true),
    ("-s", true),
    ("--session-id", true),
    ("--fork", true),
    ("--auto", true),
];

/// The Factory Droid backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Droid;

impl Backend for Droid {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `droid exec -o stream-json --auto high [-m M] <custom args> -- <prompt>`: JSON
    /// lines, every operation short of the irreversible allowed without asking (a
    /// headless run cannot answer). A prior session is not passed (see the module docs).
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args: Vec<String> = ["exec", "-o", "stream-json", "--auto", "high"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(model) = run.model.as_deref().filter(|m| !m.is_empty()) {
            args.extend(["-m".to_string(), model.to_string()]);
        }
        args.extend(filter_args(PROVIDER, &run.custom_args, BLOCKED));
        args.push("--".to_string());
        args.push(run.prompt.clone());
        CommandSpec {
            program: "droid",
            args,
            env: Vec::new(),
        }
    }

    fn parser(&self, run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(DroidParser {
            model: run.model.clone().filter(|m| !m.is_empty()),
            ..DroidParser::default()
        })
    }
}

/// Parser state for one Droid run.
#[derive(Debug, Default)]
pub struct DroidParser {
    model: Option<String>,
    session_id: Option<String>,
    /// Tool names by call id, for the results.
    tools: HashMap<String, String>,
    last_text: Option<String>,
    final_text: Option<String>,
    usage: UsageTally,
    error: Option<String>,
    ended: bool,
}

impl DroidParser {
    fn completion(&mut self, obj: &Map<String, Value>) {
        self.ended = true;
        if let Some(t) = obj.get("finalText").and_then(Value::as_str) {
            self.final_text = Some(t.to_string());
        }
        let Some(u) = obj.get("usage") else {
            return;
        };
        let model = self.model.clone().unwrap_or_else(|| "unknown".to_string());
        self.usage.add(
            PROVIDER,
            &model,
            Tokens {
                input: int(u.get("input_tokens")),
                output: int(u.get("output_tokens")),
                cache_read: int(u.get("cache_read_input_tokens")),
                cache_write: int(u.get("cache_creation_input_tokens")),
            },
        );
    }
}

impl StreamParser for DroidParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let obj = match parse_object(line) {
            Ok(Some(obj)) => obj,
            Ok(None) => return Vec::new(),
            Err(()) => return vec![unparseable(PROVIDER, line)],
        };
        let mut out = Vec::new();
        note_session(&mut self.session_id, obj.get("session_id"), &mut out);
        match obj.get("type").and_then(Value::as_str) {
            // The init line names the model only reliably when `-m` chose it (with a
            // default from settings.json it names Factory's default): the run's wins.
            Some("system") if self.model.is_none() => {
                if let Some(m) = obj
                    .get("model")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
                {
                    self.model = Some(m.to_string());
                }
            }
            Some("message") if obj.get("role").and_then(Value::as_str) == Some("assistant") => {
                if let Some(text) = obj
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.trim().is_empty())
                {
                    self.last_text = Some(text.to_string());
                    out.push(AgentEvent::Message(MessageDraft::text(text)));
                }
            }
            Some("tool_call") => {
                let name = obj
                    .get("toolName")
                    .or_else(|| obj.get("toolId"))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string();
                if let Some(id) = obj.get("id").and_then(Value::as_str) {
                    self.tools.insert(id.to_string(), name.clone());
                }
                let input = obj.get("parameters").cloned().unwrap_or(Value::Null);
                out.push(AgentEvent::Message(MessageDraft::tool_use(name, input)));
            }
            Some("tool_result") => {
                let tool = obj
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| self.tools.get(id).cloned())
                    .or_else(|| obj.get("toolId").and_then(value_to_text));
                let output = obj.get("value").and_then(value_to_text);
                let mut msg = MessageDraft::tool_result(tool, output);
                if obj.get("isError").and_then(Value::as_bool) == Some(true) {
                    msg.content = Some("error".to_string());
                }
                out.push(AgentEvent::Message(msg));
            }
            Some("error") => {
                let text = obj
                    .get("message")
                    .and_then(value_to_text)
                    .unwrap_or_else(|| "error".to_string());
                // The first error is the cause (`400 …`); `Exec failed` follows it.
                if self.error.is_none() {
                    self.error = Some(text.clone());
                }
                if obj.get("source").and_then(Value::as_str) == Some("cli") {
                    self.ended = true;
                }
                out.push(AgentEvent::Message(MessageDraft::error(text)));
            }
            Some("completion") => self.completion(&obj),
            _ => {}
        }
        out
    }

    fn finish(&mut self) -> Finish {
        Finish {
            events: Vec::new(),
            outcome: RunOutcome {
                session_id: self.session_id.clone(),
                output: self
                    .final_text
                    .clone()
                    .or_else(|| self.last_text.clone())
                    .unwrap_or_default(),
                usage: self.usage.entries(),
                error: self.error.clone(),
                ended: self.ended,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_exec_stream_json_without_resume() {
        let spec = Droid.command(&RunSpec {
            prompt: "-go".into(),
            model: Some("custom:m-0".into()),
            prior_session_id: Some("s1".into()),
            custom_args: vec!["-s".into(), "x".into(), "--use-spec".into()],
            ..RunSpec::default()
        });
        assert_eq!(
            spec.args,
            [
                "exec",
                "-o",
                "stream-json",
                "--auto",
                "high",
                "-m",
                "custom:m-0",
                "--use-spec",
                "--",
                "-go"
            ]
        );
    }
}
