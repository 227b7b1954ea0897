//! GitHub Copilot CLI (npm `@github/copilot`): `copilot --prompt=P --allow-all-tools
//! --output-format json`.
//!
//! One JSON object a line, `{type, data, id, timestamp, parentId, ephemeral?}`. The ones
//! read here:
//!
//! - `assistant.message`: one model reply, whole (`data.content`, possibly empty) with
//!   its tool calls (`data.toolRequests[].{toolCallId, name, arguments}`);
//!   `assistant.message_delta` lines before it are the same text in pieces (ignored);
//! - `assistant.reasoning`: thinking text (`data.content`);
//! - `tool.execution_complete`: `data.{toolCallId, success, result.content}` (the tool's
//!   name only via the call id);
//! - `session.error`: `data.message` (an API failure: `400 mock 400`);
//! - `assistant.idle` with `data.aborted: true`: the run was stopped by a signal (the end,
//!   with an error; a `result` may or may not follow);
//! - `result`: the end of the run, `{sessionId, exitCode, usage}`. Its `usage` has
//!   request counts and durations, no tokens: the outcome has no token usage.
//!
//! Everything else (turn and model-call bookkeeping, background-task updates, skills,
//! shell output chunks) is ignored. Resume: `--resume=<sessionId>`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::util::{filter_args, int, note_session, parse_object, unparseable, value_to_text};
use super::{
    AgentEvent, Backend, CommandSpec, Finish, MessageDraft, RunOutcome, RunSpec, StreamParser,
};

const PROVIDER: &str = "copilot";

const BLOCKED: &[(&str, bool)] = &[
    ("-p", true),
    ("--prompt", true),
    ("-i", true),
    ("--interactive", true),
    ("--output-format", true),
    ("-r", true),
    ("--resume", true),
    ("--continue", false),
];

/// The GitHub Copilot CLI backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Copilot;

impl Backend for Copilot {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `copilot --prompt=<prompt> --allow-all-tools --output-format json [--model M]
    /// [--resume=ID] <custom args>`: non-interactive, every tool allowed (a headless run
    /// cannot answer a prompt), JSON lines.
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args: Vec<String> = vec![
            format!("--prompt={}", run.prompt),
            "--allow-all-tools".to_string(),
            "--output-format".to_string(),
            "json".to_string(),
        ];
        if let Some(model) = run.model.as_deref().filter(|m| !m.is_empty()) {
            args.push(format!("--model={model}"));
        }
        if let Some(id) = run.prior_session_id.as_deref().filter(|s| !s.is_empty()) {
            args.push(format!("--resume={id}"));
        }
        args.extend(filter_args(PROVIDER, &run.custom_args, BLOCKED));
        CommandSpec {
            program: "copilot",
            args,
            env: Vec::new(),
        }
    }

    fn parser(&self, _run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(CopilotParser::default())
    }
}

/// Parser state for one Copilot CLI run.
#[derive(Debug, Default)]
pub struct CopilotParser {
    session_id: Option<String>,
    /// Tool names by call id, for the results.
    tools: HashMap<String, String>,
    last_text: Option<String>,
    error: Option<String>,
    ended: bool,
}

impl CopilotParser {
    fn assistant_message(&mut self, data: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        if let Some(text) = data
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
        {
            self.last_text = Some(text.to_string());
            out.push(AgentEvent::Message(MessageDraft::text(text)));
        }
        for call in data
            .get("toolRequests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = call
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            if let Some(id) = call.get("toolCallId").and_then(Value::as_str) {
                self.tools.insert(id.to_string(), name.clone());
            }
            let input = call.get("arguments").cloned().unwrap_or(Value::Null);
            out.push(AgentEvent::Message(MessageDraft::tool_use(name, input)));
        }
    }

    fn tool_complete(&mut self, data: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        let tool = data
            .get("toolCallId")
            .and_then(Value::as_str)
            .and_then(|id| self.tools.get(id).cloned());
        let result = data.get("result");
        let output = result
            .and_then(|r| r.get("content"))
            .and_then(value_to_text)
            .or_else(|| data.get("error").and_then(value_to_text));
        let mut msg = MessageDraft::tool_result(tool, output);
        if data.get("success").and_then(Value::as_bool) == Some(false) {
            msg.content = Some("error".to_string());
        }
        out.push(AgentEvent::Message(msg));
    }
}

impl StreamParser for CopilotParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let obj = match parse_object(line) {
            Ok(Some(obj)) => obj,
            Ok(None) => return Vec::new(),
            Err(()) => return vec![unparseable(PROVIDER, line)],
        };
        let mut out = Vec::new();
        let empty = Map::new();
        let data = obj.get("data").and_then(Value::as_object).unwrap_or(&empty);
        match obj.get("type").and_then(Value::as_str) {
            Some("assistant.message") => self.assistant_message(data, &mut out),
            Some("assistant.reasoning") => {
                if let Some(text) = data
                    .get("content")
                    .and_then(Value::as_str)
                    .filter(|t| !t.trim().is_empty())
                {
                    out.push(AgentEvent::Message(MessageDraft::thinking(text)));
                }
            }
            Some("tool.execution_complete") => self.tool_complete(data, &mut out),
            // After a SIGTERM/SIGINT the CLI prints an aborted idle, then sometimes a
            // `result` with exit code 0: the abort is the run's end, and an error.
            Some("assistant.idle")
                if data.get("aborted").and_then(Value::as_bool) == Some(true) =>
            {
                self.ended = true;
                if self.error.is_none() {
                    let text = "copilot: the run was aborted".to_string();
                    self.error = Some(text.clone());
                    out.push(AgentEvent::Message(MessageDraft::error(text)));
                }
            }
            Some("session.error") => {
                let text = data
                    .get("message")
                    .and_then(value_to_text)
                    .unwrap_or_else(|| "error".to_string());
                self.error = Some(text.clone());
                out.push(AgentEvent::Message(MessageDraft::error(text)));
            }
            Some("result") => {
                self.ended = true;
                note_session(&mut self.session_id, obj.get("sessionId"), &mut out);
                let code = int(obj.get("exitCode"));
                if code != 0 && self.error.is_none() {
                    let text = format!("copilot reported exit code {code}");
                    self.error = Some(text.clone());
                    out.push(AgentEvent::Message(MessageDraft::error(text)));
                }
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
                usage: Vec::new(),
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
    fn command_is_non_interactive_json_with_resume() {
        let spec = Copilot.command(&RunSpec {
            prompt: "-go".into(),
            model: Some("gpt-5".into()),
            prior_session_id: Some("s1".into()),
            custom_args: vec!["--output-format".into(), "text".into(), "--no-color".into()],
            ..RunSpec::default()
        });
        assert_eq!(
            spec.args,
            [
                "--prompt=-go",
                "--allow-all-tools",
                "--output-format",
                "json",
                "--model=gpt-5",
                "--resume=s1",
                "--no-color"
            ]
        );
    }

    #[test]
    fn an_aborted_idle_ends_the_run_with_an_error_even_if_result_says_0() {
        let mut p = CopilotParser::default();
        p.line(r#"{"type":"assistant.idle","data":{"aborted":true}}"#);
        p.line(r#"{"type":"result","sessionId":"s","exitCode":0}"#);
        let o = p.finish().outcome;
        assert!(o.ended);
        assert_eq!(o.error.as_deref(), Some("copilot: the run was aborted"));
    }

    #[test]
    fn a_non_zero_result_without_session_error_is_an_error() {
        let mut p = CopilotParser::default();
        let ev = p.line(r#"{"type":"result","sessionId":"s","exitCode":2}"#);
        assert_eq!(ev.len(), 2);
        let o = p.finish().outcome;
        assert!(o.ended);
        assert_eq!(o.error.as_deref(), Some("copilot reported exit code 2"));
        assert_eq!(o.session_id.as_deref(), Some("s"));
    }
}
