//! Continue CLI: `cn -p --auto --format json` (`@continuedev/cli`).
//!
//! Stream: nothing while the agent works, then one JSON object at the end: on success
//! `{"response": <final text>, "status": "success", "note": …}` (a final answer that is
//! itself JSON is printed as it is, without the wrapper). On failure stdout stays empty:
//! `{"status": "error", "message": …}` goes to stderr and the exit status is 1, so the
//! caller reports the failure from the exit status and the stderr tail (the parser reads
//! the same object should it ever arrive on stdout). So the transcript is the final text
//! only: no tool calls, no session id and no usage are printed.
//!
//! No resume: `cn --resume` takes the most recent session under HOME rather than an id,
//! and the id is never printed. No model choice on the command line: `--model` names a
//! Continue Hub model; a local model comes from the config (`~/.continue/config.yaml`, or
//! `--config PATH` in the agent's custom args).

use serde_json::Value;

use super::util::{filter_args, parse_object, unparseable, value_to_text};
use super::{
    AgentEvent, Backend, CommandSpec, Finish, MessageDraft, RunOutcome, RunSpec, StreamParser,
};

const PROVIDER: &str = "continue";

const BLOCKED: &[(&str, bool)] = &[
    ("-p", false),
    ("--print", false),
    ("--format", true),
    ("--auto", false),
    ("--readonly", false),
    ("--resume", false),
    ("--fork", true),
];

/// The Continue CLI backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContinueCli;

impl Backend for ContinueCli {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `cn -p --auto --format json <custom args> -- <prompt>`: `--auto` allows every tool
    /// (a headless run cannot answer "ask").
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args: Vec<String> = ["-p", "--auto", "--format", "json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(filter_args(PROVIDER, &run.custom_args, BLOCKED));
        args.push("--".to_string());
        args.push(run.prompt.clone());
        CommandSpec {
            program: "cn",
            args,
            env: Vec::new(),
        }
    }

    fn parser(&self, _run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(ContinueParser::default())
    }
}

/// Parser state for one Continue CLI run.
#[derive(Debug, Default)]
pub struct ContinueParser {
    output: Option<String>,
    error: Option<String>,
    ended: bool,
}

impl ContinueParser {
    fn answer(&mut self, text: String) -> Vec<AgentEvent> {
        self.ended = true;
        self.output = Some(text.clone());
        if text.is_empty() {
            return Vec::new();
        }
        vec![AgentEvent::Message(MessageDraft::text(text))]
    }
}

impl StreamParser for ContinueParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let obj = match parse_object(line) {
            Ok(Some(obj)) => obj,
            Ok(None) => return Vec::new(),
            // A final answer that is a JSON array, string or number, printed unwrapped.
            Err(()) if serde_json::from_str::<Value>(line.trim()).is_ok() => {
                return self.answer(line.trim().to_string());
            }
            Err(()) => return vec![unparseable(PROVIDER, line)],
        };
        self.ended = true;
        let status = obj.get("status").and_then(Value::as_str);
        let text = match (status, obj.get("response")) {
            (Some("error"), _) => {
                let text = obj
                    .get("message")
                    .and_then(value_to_text)
                    .unwrap_or_else(|| "continue run failed".to_string());
                self.error = Some(text.clone());
                return vec![AgentEvent::Message(MessageDraft::error(text))];
            }
            (Some(_), Some(response)) => value_to_text(response).unwrap_or_default(),
            // The final answer was JSON itself and is printed unwrapped.
            _ => line.trim().to_string(),
        };
        self.answer(text)
    }

    fn finish(&mut self) -> Finish {
        Finish {
            events: Vec::new(),
            outcome: RunOutcome {
                session_id: None,
                output: self.output.clone().unwrap_or_default(),
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

    fn parse(lines: &[&str]) -> (Vec<AgentEvent>, RunOutcome) {
        let mut p = ContinueParser::default();
        let mut events: Vec<AgentEvent> = lines.iter().flat_map(|l| p.line(l)).collect();
        let finish = p.finish();
        events.extend(finish.events);
        (events, finish.outcome)
    }

    #[test]
    fn an_unwrapped_json_answer_is_the_output() {
        let (events, outcome) = parse(&[r#"{"files": 2}"#]);
        assert_eq!(outcome.output, r#"{"files": 2}"#);
        assert!(outcome.ended && outcome.error.is_none());
        assert_eq!(events.len(), 1);
        let (_, outcome) = parse(&["[1, 2]"]);
        assert_eq!(outcome.output, "[1, 2]");
    }

    #[test]
    fn an_error_object_is_the_error_and_garbage_is_reported() {
        let (events, outcome) = parse(&["not json", r#"{"status":"error","message":"boom"}"#]);
        assert_eq!(outcome.error.as_deref(), Some("boom"));
        assert!(outcome.ended);
        assert_eq!(events.len(), 2, "{events:?}");
        let (_, outcome) = parse(&[]);
        assert!(!outcome.ended);
    }
}
