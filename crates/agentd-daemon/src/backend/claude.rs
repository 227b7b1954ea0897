//! Claude Code: `claude -p --output-format stream-json --verbose`.
//!
//! Stream (one JSON object a line, key order not stable): `system/init` carries the
//! session id; each `assistant` line carries one content block (`text`, `thinking`,
//! `tool_use`); `user` lines carry `tool_result` blocks joined to their call by
//! `tool_use_id`; `result` ends the run with the final text, `is_error` and usage.
//! Per-line `assistant` usage is the `message_start` usage, not the final count, so
//! usage is taken from `result` only: `model_usage_since_last_result` (this run, per
//! model), else `modelUsage` (per session: cumulative on resume), else `usage`.
//! API errors arrive as a synthetic `assistant` line (`is_api_error_message`) and a
//! `result` with `subtype: "success"` but `is_error: true`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::util::{
    Tokens, UsageTally, filter_args, int, note_session, parse_object, unparseable, value_to_text,
};
use super::{
    AgentEvent, Backend, CommandSpec, Finish, MessageDraft, RunOutcome, RunSpec, StreamParser,
};

const PROVIDER: &str = "claude";

/// Flags the backend sets itself (`(flag, takes_value)`).
const BLOCKED: &[(&str, bool)] = &[
    ("-p", false),
    ("--print", false),
    ("--output-format", true),
    ("--input-format", true),
    ("--permission-mode", true),
    ("--dangerously-skip-permissions", false),
    ("--resume", true),
    ("-r", true),
    ("--continue", false),
    ("-c", false),
];

/// The Claude Code backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Claude;

impl Backend for Claude {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `claude -p --output-format stream-json --verbose --permission-mode bypassPermissions
    /// [--model M] [--resume ID] [--mcp-config JSON --strict-mcp-config] <custom args> --
    /// <prompt>`. The prompt goes after `--` so
    /// a prompt starting with `-` is never read as a flag. As root, bypass mode needs
    /// `IS_SANDBOX=1`.
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args: Vec<String> = [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(model) = run.model.as_deref().filter(|m| !m.is_empty()) {
            args.extend(["--model".to_string(), model.to_string()]);
        }
        if let Some(id) = run.prior_session_id.as_deref().filter(|s| !s.is_empty()) {
            args.extend(["--resume".to_string(), id.to_string()]);
        }
        // The agent's MCP servers, inline (the run's sandbox sees no file of the daemon's),
        // and only those (`--strict-mcp-config`), as Multica's daemon runs it.
        if let Some(mcp) = run
            .mcp_config
            .as_ref()
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        {
            args.extend([
                "--mcp-config".to_string(),
                mcp.to_string(),
                "--strict-mcp-config".to_string(),
            ]);
        }
        args.extend(filter_args(PROVIDER, &run.custom_args, BLOCKED));
        args.push("--".to_string());
        args.push(run.prompt.clone());

        let mut env = vec![
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_string(),
                "1".to_string(),
            ),
            ("DISABLE_AUTOUPDATER".to_string(), "1".to_string()),
        ];
        if nix::unistd::geteuid().is_root() {
            env.push(("IS_SANDBOX".to_string(), "1".to_string()));
        }
        CommandSpec {
            program: "claude",
            args,
            env,
        }
    }

    fn parser(&self, _run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(ClaudeParser::default())
    }
}

/// Parser state for one Claude Code run (or a CLI that prints Claude Code's stream, such as
/// Qwen Code: [`ClaudeParser::for_provider`]).
#[derive(Debug)]
pub struct ClaudeParser {
    /// The provider named in usage entries and error messages.
    provider: &'static str,
    session_id: Option<String>,
    /// Model from `system/init`, for usage when `result` has no per-model breakdown.
    model: Option<String>,
    tool_names: HashMap<String, String>,
    last_text: Option<String>,
    result_text: Option<String>,
    usage: UsageTally,
    /// Usage of each assistant message since the last `result` (by message id; a
    /// message streamed as several lines counts once, its last line winning). A `result`
    /// carries the totals of what came before it, so these are dropped there; what is
    /// left when the run ends without one (killed, cancelled, crashed) is added.
    pending: Vec<(String, String, Tokens)>,
    error: Option<String>,
    ended: bool,
}

impl Default for ClaudeParser {
    fn default() -> Self {
        ClaudeParser::for_provider(PROVIDER)
    }
}

impl ClaudeParser {
    /// A parser whose usage entries name `provider`.
    pub fn for_provider(provider: &'static str) -> ClaudeParser {
        ClaudeParser {
            provider,
            session_id: None,
            model: None,
            tool_names: HashMap::new(),
            last_text: None,
            result_text: None,
            usage: UsageTally::default(),
            pending: Vec::new(),
            error: None,
            ended: false,
        }
    }

    /// Notes an assistant message's own usage (see [`ClaudeParser::pending`]).
    fn message_usage(&mut self, obj: &Map<String, Value>) {
        let Some(message) = obj.get("message") else {
            return;
        };
        let Some(u) = message.get("usage").filter(|u| u.is_object()) else {
            return;
        };
        let id = message
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("#{}", self.pending.len()));
        let model = message
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty() && *m != "<synthetic>")
            .map(str::to_string)
            .or_else(|| self.model.clone())
            .unwrap_or_else(|| "unknown".to_string());
        let tokens = Tokens {
            input: int(u.get("input_tokens")),
            output: int(u.get("output_tokens")),
            cache_read: int(u.get("cache_read_input_tokens")),
            cache_write: int(u.get("cache_creation_input_tokens")),
        };
        match self.pending.iter_mut().find(|(i, _, _)| *i == id) {
            Some(entry) => *entry = (id, model, tokens),
            None => self.pending.push((id, model, tokens)),
        }
    }

    /// The run's usage: the `result` totals, plus the messages after the last one.
    fn total_usage(&self) -> Vec<agentd_proto::UsageEntry> {
        let mut total = self.usage.clone();
        for (_, model, tokens) in &self.pending {
            total.add(self.provider, model, *tokens);
        }
        total.entries()
    }

    fn session(&mut self, obj: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        note_session(&mut self.session_id, obj.get("session_id"), out);
    }

    fn system(&mut self, obj: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        match obj.get("subtype").and_then(Value::as_str) {
            Some("init") => {
                if let Some(model) = obj.get("model").and_then(Value::as_str) {
                    self.model = Some(model.to_string());
                }
            }
            Some("api_retry") => {
                let attempt = int(obj.get("attempt"));
                let max = int(obj.get("max_retries"));
                let status = obj
                    .get("error_status")
                    .and_then(value_to_text)
                    .unwrap_or_default();
                let error = obj.get("error").and_then(value_to_text).unwrap_or_default();
                out.push(AgentEvent::Message(MessageDraft::error(format!(
                    "API retry {attempt}/{max} after HTTP {status}: {error}"
                ))));
            }
            Some("permission_denied") => {
                let text = obj
                    .get("message")
                    .and_then(value_to_text)
                    .unwrap_or_else(|| "permission denied".to_string());
                out.push(AgentEvent::Message(MessageDraft::error(text)));
            }
            _ => {}
        }
    }

    fn assistant(&mut self, obj: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        self.message_usage(obj);
        let api_error = obj.get("is_api_error_message").and_then(Value::as_bool) == Some(true);
        let Some(blocks) = obj
            .get("message")
            .and_then(|m| m.get("content"))
            .and_then(Value::as_array)
        else {
            return;
        };
        for block in blocks {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    let Some(text) = block.get("text").and_then(Value::as_str) else {
                        continue;
                    };
                    if api_error {
                        out.push(AgentEvent::Message(MessageDraft::error(text)));
                    } else if !text.is_empty() {
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
                Some("tool_use") | Some("server_tool_use") => {
                    let name = block
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown");
                    if let Some(id) = block.get("id").and_then(Value::as_str) {
                        self.tool_names.insert(id.to_string(), name.to_string());
                    }
                    let input = block.get("input").cloned().unwrap_or(Value::Null);
                    out.push(AgentEvent::Message(MessageDraft::tool_use(name, input)));
                }
                _ => {}
            }
        }
    }

    fn user(&mut self, obj: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        let Some(blocks) = obj
            .get("message")
            .and_then(|m| m.get("content"))
            .and_then(Value::as_array)
        else {
            return;
        };
        for block in blocks {
            if block.get("type").and_then(Value::as_str) != Some("tool_result") {
                continue;
            }
            let tool = block
                .get("tool_use_id")
                .and_then(Value::as_str)
                .and_then(|id| self.tool_names.get(id).cloned());
            let output = block.get("content").and_then(tool_result_text);
            let mut msg = MessageDraft::tool_result(tool, output);
            if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                msg.content = Some("error".to_string());
            }
            out.push(AgentEvent::Message(msg));
        }
    }

    fn result(&mut self, obj: &Map<String, Value>) {
        self.ended = true;
        let result = obj
            .get("result")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        if let Some(text) = result {
            self.result_text = Some(text.to_string());
        }
        if obj.get("is_error").and_then(Value::as_bool) == Some(true) {
            let errors: Vec<String> = obj
                .get("errors")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(value_to_text).collect())
                .unwrap_or_default();
            let subtype = obj
                .get("subtype")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let mut text = match obj.get("terminal_reason").and_then(Value::as_str) {
                Some(reason) => format!("{subtype} ({reason})"),
                None => subtype.to_string(),
            };
            if !errors.is_empty() {
                text = format!("{text}: {}", errors.join("; "));
            }
            // Qwen Code puts the failure in `error.message` (no `result` text).
            if let Some(message) = obj
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(value_to_text)
            {
                text = message;
            }
            self.error = Some(result.map(str::to_string).unwrap_or(text));
        }
        let has_totals = obj.get("model_usage_since_last_result").is_some()
            || obj.get("modelUsage").is_some()
            || obj.get("usage").is_some();
        if has_totals {
            // The result's totals cover every message before it: they win.
            self.pending.clear();
        }
        if let Some(per_model) = obj
            .get("model_usage_since_last_result")
            .and_then(Value::as_object)
        {
            for (model, u) in per_model {
                self.usage.add(self.provider, model, camel_tokens(u));
            }
        } else if let Some(per_model) = obj.get("modelUsage").and_then(Value::as_object) {
            self.usage.clear();
            for (model, u) in per_model {
                self.usage.add(self.provider, model, camel_tokens(u));
            }
        } else if let Some(u) = obj.get("usage") {
            let model = self.model.clone().unwrap_or_else(|| "unknown".to_string());
            self.usage.add(
                self.provider,
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
}

/// Counters of a `modelUsage` entry.
fn camel_tokens(u: &Value) -> Tokens {
    Tokens {
        input: int(u.get("inputTokens")),
        output: int(u.get("outputTokens")),
        cache_read: int(u.get("cacheReadInputTokens")),
        cache_write: int(u.get("cacheCreationInputTokens")),
    }
}

/// A tool_result's `content`: a string, or text blocks joined, or raw JSON.
fn tool_result_text(content: &Value) -> Option<String> {
    match content {
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            if texts.len() == blocks.len() && !texts.is_empty() {
                Some(texts.join("\n"))
            } else {
                value_to_text(content)
            }
        }
        other => value_to_text(other),
    }
}

impl StreamParser for ClaudeParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let obj = match parse_object(line) {
            Ok(Some(obj)) => obj,
            Ok(None) => return Vec::new(),
            Err(()) => return vec![unparseable(self.provider, line)],
        };
        let mut out = Vec::new();
        self.session(&obj, &mut out);
        match obj.get("type").and_then(Value::as_str) {
            Some("system") => self.system(&obj, &mut out),
            Some("assistant") => self.assistant(&obj, &mut out),
            Some("user") => self.user(&obj, &mut out),
            Some("result") => self.result(&obj),
            // stream_event (partial messages) repeats what the whole `assistant` line
            // brings; log, rate_limit and newer types carry nothing for the transcript.
            _ => {}
        }
        out
    }

    fn finish(&mut self) -> Finish {
        let output = self
            .result_text
            .clone()
            .or_else(|| self.last_text.clone())
            .unwrap_or_default();
        Finish {
            events: Vec::new(),
            outcome: RunOutcome {
                session_id: self.session_id.clone(),
                output,
                usage: self.total_usage(),
                error: self.error.clone(),
                ended: self.ended,
            },
        }
    }
}
