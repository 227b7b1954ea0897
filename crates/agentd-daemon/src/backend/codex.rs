//! Codex: `codex exec --json`.
//!
//! Stream: `thread.started` (session id = `thread_id`), `turn.started`, `item.started` /
//! `item.completed` for items (`agent_message`, `reasoning`, `command_execution`,
//! `file_change`, `mcp_tool_call`, `web_search`, `error`, …), top-level `error` lines
//! (warnings and "Reconnecting… n/5": not terminal), then `turn.completed` with usage or
//! `turn.failed` with the error. A tool item becomes a tool_use when it starts and a
//! tool_result when it completes. Usage has no model name (the run's model, or `unknown`)
//! and, after `exec resume`, is cumulative over the thread (Codex reports no per-turn
//! figure in this mode).
//!
//! The provider (base URL, key) lives in `$CODEX_HOME/config.toml`, which the caller
//! writes; stdin must be `/dev/null` (Codex reads stdin to EOF otherwise).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::util::{
    Tokens, UsageTally, filter_args, int, note_session, parse_object, unparseable, value_to_text,
};
use super::{
    AgentEvent, Backend, CommandSpec, Finish, MessageDraft, RunOutcome, RunSpec, StreamParser,
};

const PROVIDER: &str = "codex";

const BLOCKED: &[(&str, bool)] = &[("--json", false), ("--experimental-json", false)];

/// The Codex backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Codex;

impl Backend for Codex {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `codex exec --json --skip-git-repo-check --sandbox <mode> [--model M]
    /// <custom args> [resume ID] -- <prompt>`, the mode `danger-full-access` inside
    /// agentd's sandbox (which does the isolating) and `workspace-write` outside it.
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mode = if run.in_sandbox {
            "danger-full-access"
        } else {
            "workspace-write"
        };
        let mut args: Vec<String> = ["exec", "--json", "--skip-git-repo-check", "--sandbox", mode]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(model) = run.model.as_deref().filter(|m| !m.is_empty()) {
            args.extend(["--model".to_string(), model.to_string()]);
        }
        args.extend(filter_args(PROVIDER, &run.custom_args, BLOCKED));
        if let Some(id) = run.prior_session_id.as_deref().filter(|s| !s.is_empty()) {
            args.extend(["resume".to_string(), id.to_string()]);
        }
        args.push("--".to_string());
        args.push(run.prompt.clone());
        CommandSpec {
            program: "codex",
            args,
            env: Vec::new(),
        }
    }

    fn parser(&self, run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(CodexParser {
            model: run.model.clone().filter(|m| !m.is_empty()),
            ..CodexParser::default()
        })
    }
}

/// Parser state for one Codex run.
#[derive(Debug, Default)]
pub struct CodexParser {
    model: Option<String>,
    session_id: Option<String>,
    /// Tool items whose tool_use was already emitted.
    started: HashSet<String>,
    last_text: Option<String>,
    usage: UsageTally,
    error: Option<String>,
    ended: bool,
}

/// Tool name and input of a tool item; `None` for items that are not tool calls.
fn tool_call(item: &Map<String, Value>) -> Option<(String, Value)> {
    let kind = item.get("type").and_then(Value::as_str)?;
    Some(match kind {
        "command_execution" => (
            "exec_command".to_string(),
            json!({ "command": item.get("command").cloned().unwrap_or(Value::Null) }),
        ),
        "file_change" => (
            "apply_patch".to_string(),
            json!({ "changes": item.get("changes").cloned().unwrap_or(Value::Null) }),
        ),
        "mcp_tool_call" => {
            let server = item.get("server").and_then(Value::as_str).unwrap_or("mcp");
            let tool = item
                .get("tool")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            (
                format!("{server}.{tool}"),
                item.get("arguments").cloned().unwrap_or(Value::Null),
            )
        }
        "web_search" => (
            "web_search".to_string(),
            json!({ "query": item.get("query").cloned().unwrap_or(Value::Null) }),
        ),
        _ => return None,
    })
}

/// The tool_result output of a completed tool item.
fn tool_output(item: &Map<String, Value>) -> Option<String> {
    match item.get("type").and_then(Value::as_str)? {
        "command_execution" => item.get("aggregated_output").and_then(value_to_text),
        "file_change" => {
            let changes = item.get("changes")?.as_array()?;
            let lines: Vec<String> = changes
                .iter()
                .map(|c| {
                    let kind = c.get("kind").and_then(Value::as_str).unwrap_or("change");
                    let path = c.get("path").and_then(Value::as_str).unwrap_or("?");
                    format!("{kind} {path}")
                })
                .collect();
            Some(lines.join("\n"))
        }
        "mcp_tool_call" => item
            .get("result")
            .and_then(value_to_text)
            .or_else(|| item.get("error").and_then(value_to_text)),
        _ => None,
    }
}

/// Whether a completed tool item failed (non-zero exit or status `failed`).
fn item_failed(item: &Map<String, Value>) -> bool {
    let status = item.get("status").and_then(Value::as_str);
    let exit = item.get("exit_code").and_then(Value::as_i64);
    matches!(status, Some("failed") | Some("declined")) || matches!(exit, Some(code) if code != 0)
}

impl CodexParser {
    fn item(&mut self, completed: bool, item: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some((tool, input)) = tool_call(item) {
            if self.started.insert(id) {
                out.push(AgentEvent::Message(MessageDraft::tool_use(
                    tool.clone(),
                    input,
                )));
            }
            if completed {
                let mut msg = MessageDraft::tool_result(Some(tool), tool_output(item));
                if item_failed(item) {
                    msg.content = Some("error".to_string());
                }
                out.push(AgentEvent::Message(msg));
            }
            return;
        }
        if !completed {
            return;
        }
        match item.get("type").and_then(Value::as_str) {
            Some("agent_message") => {
                if let Some(text) = item
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    self.last_text = Some(text.to_string());
                    out.push(AgentEvent::Message(MessageDraft::text(text)));
                }
            }
            Some("reasoning") => {
                if let Some(text) = item
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    out.push(AgentEvent::Message(MessageDraft::thinking(text)));
                }
            }
            Some("error") => {
                let text = item
                    .get("message")
                    .and_then(value_to_text)
                    .unwrap_or_else(|| "error".into());
                out.push(AgentEvent::Message(MessageDraft::error(text)));
            }
            _ => {}
        }
    }
}

impl StreamParser for CodexParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let obj = match parse_object(line) {
            Ok(Some(obj)) => obj,
            Ok(None) => return Vec::new(),
            Err(()) => return vec![unparseable(PROVIDER, line)],
        };
        let mut out = Vec::new();
        match obj.get("type").and_then(Value::as_str) {
            Some("thread.started") => {
                note_session(&mut self.session_id, obj.get("thread_id"), &mut out);
            }
            Some(kind @ ("item.started" | "item.updated" | "item.completed")) => {
                if let Some(item) = obj.get("item").and_then(Value::as_object) {
                    self.item(kind == "item.completed", item, &mut out);
                }
            }
            Some("error") => {
                let text = obj
                    .get("message")
                    .and_then(value_to_text)
                    .unwrap_or_else(|| "error".into());
                out.push(AgentEvent::Message(MessageDraft::error(text)));
            }
            Some("turn.completed") => {
                self.ended = true;
                if let Some(u) = obj.get("usage") {
                    let input = int(u.get("input_tokens"));
                    let cached = int(u.get("cached_input_tokens"));
                    let model = self.model.clone().unwrap_or_else(|| "unknown".to_string());
                    // The thread's totals so far: replace, don't add.
                    self.usage.clear();
                    self.usage.add(
                        PROVIDER,
                        &model,
                        Tokens {
                            input: input.saturating_sub(cached).max(0),
                            output: int(u.get("output_tokens")),
                            cache_read: cached,
                            cache_write: int(u.get("cache_write_input_tokens")),
                        },
                    );
                }
            }
            Some("turn.failed") => {
                self.ended = true;
                let text = obj
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(value_to_text)
                    .unwrap_or_else(|| "turn failed".to_string());
                self.error = Some(text);
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
