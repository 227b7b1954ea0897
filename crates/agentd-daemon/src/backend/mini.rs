//! mini-swe-agent (PyPI `mini-swe-agent`): `mini -y --exit-immediately --agent-class
//! default -o /dev/stdout -t PROMPT`.
//!
//! mini has no event stream, but it saves its whole trajectory after every step, and
//! `-o /dev/stdout` makes that our stream: after each step stdout gets the trajectory so
//! far as indented JSON (`json.dumps(…, indent=2)`: a line `{`, the body indented, and a
//! line starting `}`; no newline after it, so the next thing printed may follow on the
//! same line, e.g. `}Saved trajectory to '/dev/stdout'`). The non-interactive `default`
//! agent class prints nothing else but a banner and litellm notices, which are ignored.
//!
//! Each document repeats every message so far; the parser emits the new ones:
//! `assistant` (its text, its `bash` tool calls, its `extra.response.usage`), `tool`
//! (`extra.raw_output`), and `exit` (`extra.exit_status`: `Submitted` ends the run with
//! `extra.submission` as the answer, anything else, such as `BadRequestError` or
//! `LimitsExceeded`, is the run's error). A run killed mid-step leaves an unclosed
//! document: nothing of it is emitted and `ended` stays false. mini has no sessions, so
//! no resume.

use serde_json::{Map, Value};

use super::util::{Tokens, UsageTally, filter_args, int, truncate, value_to_text};
use super::{
    AgentEvent, Backend, CommandSpec, Finish, MessageDraft, RunOutcome, RunSpec, StreamParser,
};

const PROVIDER: &str = "mini";

const BLOCKED: &[(&str, bool)] = &[
    ("-t", true),
    ("--task", true),
    ("-o", true),
    ("--output", true),
    ("--agent-class", true),
    ("-y", false),
    ("--yolo", false),
];

/// Largest trajectory document kept (a runaway one is dropped with an error message).
const MAX_DOC: usize = 64 << 20;

/// The mini-swe-agent backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct MiniSwe;

impl Backend for MiniSwe {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `mini -y --exit-immediately --agent-class default -o /dev/stdout [-m M]
    /// <custom args> -t <prompt>`: no confirmations, no prompt at the end, the trajectory
    /// on stdout. The model is litellm's `provider/model` (else `MSWEA_MODEL_NAME`).
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args: Vec<String> = [
            "-y",
            "--exit-immediately",
            "--agent-class",
            "default",
            "-o",
            "/dev/stdout",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(model) = run.model.as_deref().filter(|m| !m.is_empty()) {
            args.extend(["-m".to_string(), model.to_string()]);
        }
        args.extend(filter_args(PROVIDER, &run.custom_args, BLOCKED));
        args.push(format!("--task={}", run.prompt));
        CommandSpec {
            program: "mini",
            args,
            // No first-run setup wizard (it prompts on stdin otherwise).
            env: vec![("MSWEA_CONFIGURED".to_string(), "true".to_string())],
        }
    }

    fn parser(&self, _run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(MiniParser::default())
    }
}

/// Parser state for one mini-swe-agent run.
#[derive(Debug, Default)]
pub struct MiniParser {
    /// The trajectory document being read (`Some` after a `{` line).
    doc: Option<String>,
    /// Messages of the trajectory already emitted.
    seen: usize,
    last_text: Option<String>,
    submission: Option<String>,
    usage: UsageTally,
    error: Option<String>,
    ended: bool,
}

impl MiniParser {
    /// A complete trajectory document: emits its messages past `seen`.
    fn document(&mut self, text: &str, out: &mut Vec<AgentEvent>) {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                out.push(AgentEvent::Message(MessageDraft::error(format!(
                    "unparseable mini trajectory ({e}): {}",
                    truncate(text, 500)
                ))));
                return;
            }
        };
        let Some(messages) = value.get("messages").and_then(Value::as_array) else {
            return;
        };
        for m in messages.iter().skip(self.seen) {
            if let Some(m) = m.as_object() {
                self.message(m, out);
            }
        }
        self.seen = self.seen.max(messages.len());
    }

    fn message(&mut self, m: &Map<String, Value>, out: &mut Vec<AgentEvent>) {
        let empty = Map::new();
        let extra = m.get("extra").and_then(Value::as_object).unwrap_or(&empty);
        match m.get("role").and_then(Value::as_str) {
            Some("assistant") => {
                if let Some(text) = m
                    .get("content")
                    .and_then(Value::as_str)
                    .filter(|t| !t.trim().is_empty())
                {
                    self.last_text = Some(text.to_string());
                    out.push(AgentEvent::Message(MessageDraft::text(text)));
                }
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let f = call.get("function");
                    let name = f
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or("bash");
                    let args = f.and_then(|f| f.get("arguments"));
                    let input = match args {
                        Some(Value::String(s)) => {
                            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                        }
                        Some(v) => v.clone(),
                        None => Value::Null,
                    };
                    out.push(AgentEvent::Message(MessageDraft::tool_use(name, input)));
                }
                if let Some(resp) = extra.get("response") {
                    let usage = resp.get("usage");
                    let model = resp
                        .get("model")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .unwrap_or("unknown");
                    let cached = int(usage
                        .and_then(|u| u.get("prompt_tokens_details"))
                        .and_then(|d| d.get("cached_tokens")));
                    self.usage.add(
                        PROVIDER,
                        model,
                        Tokens {
                            input: int(usage.and_then(|u| u.get("prompt_tokens"))) - cached,
                            output: int(usage.and_then(|u| u.get("completion_tokens"))),
                            cache_read: cached,
                            cache_write: 0,
                        },
                    );
                }
            }
            Some("tool") => {
                let output = extra
                    .get("raw_output")
                    .and_then(value_to_text)
                    .or_else(|| m.get("content").and_then(value_to_text));
                let mut msg = MessageDraft::tool_result(Some("bash".to_string()), output);
                if let Some(exc) = extra
                    .get("exception_info")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    msg.content = Some(exc.to_string());
                }
                out.push(AgentEvent::Message(msg));
            }
            Some("exit") => {
                self.ended = true;
                let status = extra
                    .get("exit_status")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if status == "Submitted" {
                    self.submission = extra
                        .get("submission")
                        .and_then(Value::as_str)
                        .map(|s| s.trim_end().to_string());
                } else {
                    let content = m.get("content").and_then(value_to_text).unwrap_or_default();
                    let text = if content.is_empty() || content == status {
                        status.to_string()
                    } else {
                        format!("{status}: {content}")
                    };
                    self.error = Some(text.clone());
                    out.push(AgentEvent::Message(MessageDraft::error(text)));
                }
            }
            _ => {}
        }
    }
}

impl StreamParser for MiniParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        match self.doc.as_mut() {
            None => {
                if line.trim_end() == "{" {
                    self.doc = Some("{\n".to_string());
                }
                // Anything else outside a document: the banner, litellm notices.
            }
            Some(doc) => {
                // Inside an indented document every line but the last starts with a
                // space: anything else means the document was cut short (the process
                // died mid-write, or the stream was spliced): drop it, read the line anew.
                if !line.starts_with(' ') && !line.starts_with('}') {
                    self.doc = None;
                    out.push(AgentEvent::Message(MessageDraft::error(
                        "a mini trajectory document was cut short; skipped".to_string(),
                    )));
                    out.extend(self.line(line));
                    return out;
                }
                if let Some(rest) = line.strip_prefix('}') {
                    doc.push('}');
                    let text = std::mem::take(doc);
                    self.doc = None;
                    self.document(&text, &mut out);
                    if rest.trim_end() == "{" {
                        self.doc = Some("{\n".to_string());
                    }
                } else if doc.len() + line.len() > MAX_DOC {
                    self.doc = None;
                    out.push(AgentEvent::Message(MessageDraft::error(format!(
                        "mini trajectory larger than {MAX_DOC} bytes; skipped"
                    ))));
                } else {
                    doc.push_str(line);
                    doc.push('\n');
                }
            }
        }
        out
    }

    fn finish(&mut self) -> Finish {
        Finish {
            events: Vec::new(),
            outcome: RunOutcome {
                session_id: None,
                output: self
                    .submission
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

    fn feed(text: &str) -> (Vec<AgentEvent>, RunOutcome) {
        let mut p = MiniParser::default();
        let mut events: Vec<AgentEvent> = text.lines().flat_map(|l| p.line(l)).collect();
        let f = p.finish();
        events.extend(f.events);
        (events, f.outcome)
    }

    /// A trajectory as mini prints it: `json.dumps(indent=2)`, no newline after it.
    fn doc(messages: Value) -> String {
        serde_json::to_string_pretty(&serde_json::json!({"info": {}, "messages": messages}))
            .expect("json")
    }

    #[test]
    fn documents_back_to_back_emit_only_new_messages() {
        let user = serde_json::json!({"role": "user", "content": "x"});
        let hi = serde_json::json!({"role": "assistant", "content": "hi", "extra": {"response":
            {"model": "m", "usage": {"prompt_tokens": 5, "completion_tokens": 2}}}});
        let exit = serde_json::json!({"role": "exit", "content": "",
            "extra": {"exit_status": "Submitted", "submission": "done\n"}});
        let text = format!(
            "banner\n{}{}Saved trajectory\n",
            doc(serde_json::json!([user, hi])),
            doc(serde_json::json!([user, hi, exit]))
        );
        let (events, o) = feed(&text);
        let texts = events
            .iter()
            .filter(|e| matches!(e, AgentEvent::Message(m) if m.content.as_deref() == Some("hi")))
            .count();
        assert_eq!(texts, 1, "{events:?}");
        assert_eq!(o.output, "done");
        assert!(o.ended);
        assert_eq!(o.usage[0].input_tokens, 5);
        // A document cut short, then a whole one: the whole one still counts.
        let cut = doc(serde_json::json!([user, hi, exit]));
        let (_, o) = feed(&format!("{}\n{cut}\n", &cut[..cut.len() / 2]));
        assert!(o.ended && o.output == "done", "{o:?}");
    }

    #[test]
    fn an_unclosed_document_is_not_an_end_and_a_bad_one_is_an_error() {
        let (events, o) = feed("{\n  \"messages\": [\n");
        assert!(events.is_empty() && !o.ended);
        let (events, _) = feed("{\n  nope\n}\n");
        assert!(
            matches!(&events[0], AgentEvent::Message(m) if m.kind == agentd_proto::MessageKind::Error)
        );
    }

    #[test]
    fn command_puts_the_trajectory_on_stdout() {
        let spec = MiniSwe.command(&RunSpec {
            prompt: "-x".into(),
            model: Some("openai/m".into()),
            custom_args: vec!["-o".into(), "f".into(), "-c".into(), "mini.yaml".into()],
            ..RunSpec::default()
        });
        assert_eq!(
            spec.args,
            [
                "-y",
                "--exit-immediately",
                "--agent-class",
                "default",
                "-o",
                "/dev/stdout",
                "-m",
                "openai/m",
                "-c",
                "mini.yaml",
                "--task=-x"
            ]
        );
    }
}
