//! Hermes Agent (Nous Research, PyPI `hermes-agent`): `hermes chat --query=P -Q --yolo`.
//!
//! Hermes has no JSON output. In quiet mode (`-Q`) its stdout is plain text:
//!
//! ```text
//!   ⚠ tirith security scanner enabled but not available — command scanning will use …
//!   ┊ review diff
//! a/hello.txt → b/hello.txt
//! @@ -0,0 +1 @@
//! +hello from mock
//! MOCK-DONE: wrote and read hello.txt
//! ```
//!
//! status lines (`⚠ …`, before anything else), a diff preview per file edit (`┊ review
//! diff` then the unified diff, `a/P → b/P` first), and the final answer, printed once
//! at the end (an API failure is printed as the answer, `HTTP 400: …`, with exit 1).
//! The session id goes to **stderr** (`session_id: 20261130_124825_e5c8a0`), read from the
//! stderr tail by [`StreamParser::stderr`]. Tool calls other than file edits and token
//! usage are not printed in quiet mode: the transcript has the diffs and the answer, and
//! the outcome has no usage.

use serde_json::json;

use super::util::{filter_args, truncate};
use super::{
    AgentEvent, Backend, CommandSpec, Finish, MessageDraft, RunOutcome, RunSpec, StreamParser,
};

const PROVIDER: &str = "hermes";

const BLOCKED: &[(&str, bool)] = &[
    ("-q", true),
    ("--query", true),
    ("-Q", false),
    ("--quiet", false),
    ("-r", true),
    ("--resume", true),
    ("-c", false),
    ("--continue", false),
    ("--tui", false),
    ("--no-restore-cwd", false),
    ("--worktree", false),
    ("-w", false),
];

/// The Hermes Agent backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hermes;

impl Backend for Hermes {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `hermes chat --query=<prompt> -Q --yolo --source tool [-m M] [--resume=ID
    /// --no-restore-cwd] <custom args>`: quiet single-query mode, every command approved (a headless run
    /// cannot answer a prompt), sessions tagged as a tool's, not the user's.
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args: Vec<String> = vec![
            "chat".to_string(),
            format!("--query={}", run.prompt),
            "-Q".to_string(),
            "--yolo".to_string(),
            "--source".to_string(),
            "tool".to_string(),
        ];
        if let Some(model) = run.model.as_deref().filter(|m| !m.is_empty()) {
            args.extend(["-m".to_string(), model.to_string()]);
        }
        if let Some(id) = run.prior_session_id.as_deref().filter(|s| !s.is_empty()) {
            // Without `--no-restore-cwd` Hermes would `cd` into the session's first work
            // dir, and a follow-up task (a new worktree) would edit the old one.
            args.push(format!("--resume={id}"));
            args.push("--no-restore-cwd".to_string());
        }
        args.extend(filter_args(PROVIDER, &run.custom_args, BLOCKED));
        CommandSpec {
            program: "hermes",
            args,
            env: Vec::new(),
        }
    }

    fn parser(&self, _run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(HermesParser::default())
    }
}

/// Parser state for one Hermes run.
#[derive(Debug, Default)]
pub struct HermesParser {
    session_id: Option<String>,
    /// Lines of the final answer so far.
    answer: Vec<String>,
    /// The diff preview being read (`Some` after `┊ review diff`).
    diff: Option<Vec<String>>,
    /// An `Error: …` line from stderr (printed when there is no answer).
    stderr_error: Option<String>,
    /// Anything but status lines was printed.
    started: bool,
}

/// A line of a unified diff as Hermes previews it.
fn is_diff_line(line: &str) -> bool {
    (line.starts_with("a/") && line.contains(" → b/"))
        || line.starts_with("@@")
        || line.starts_with('+')
        || line.starts_with('-')
        || line.starts_with(' ')
        || line.starts_with("\\ No newline")
}

/// `HTTP 400: …`: how Hermes prints a model API failure as its answer.
fn is_api_error(answer: &str) -> bool {
    let Some(rest) = answer.strip_prefix("HTTP ") else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b':'
}

impl HermesParser {
    /// Ends the diff preview being read, as a tool_use naming the edited file.
    fn close_diff(&mut self, out: &mut Vec<AgentEvent>) {
        let Some(lines) = self.diff.take() else {
            return;
        };
        let path = lines.first().and_then(|l| {
            l.strip_prefix("a/")
                .and_then(|rest| rest.split_once(" → b/"))
                .map(|(_, b)| b.to_string())
        });
        let diff = lines.join("\n");
        out.push(AgentEvent::Message(MessageDraft::tool_use(
            "file_edit",
            json!({"path": path, "diff": diff}),
        )));
    }
}

impl StreamParser for HermesParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        let trimmed = line.trim_start();
        if self.diff.is_some() {
            if is_diff_line(line) {
                if let Some(d) = self.diff.as_mut() {
                    d.push(line.to_string());
                }
                return out;
            }
            self.close_diff(&mut out);
        }
        if !self.started && self.answer.is_empty() && trimmed.starts_with('⚠') {
            // A startup status line (a missing optional scanner and the like).
            return out;
        }
        if self.answer.is_empty() {
            if let Some(preview) = trimmed.strip_prefix("┊ ") {
                self.started = true;
                if preview.trim() == "review diff" {
                    self.diff = Some(Vec::new());
                }
                return out;
            }
            if trimmed.is_empty() {
                return out;
            }
        }
        self.started = true;
        self.answer.push(line.trim_end().to_string());
        out
    }

    /// Picks the session id (`session_id: …`) and an `Error: …` line from the stderr tail.
    fn stderr(&mut self, tail: &str) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        for line in tail.lines() {
            let line = line.trim();
            if let Some(id) = line.strip_prefix("session_id: ") {
                let id = id.trim();
                if !id.is_empty() && self.session_id.as_deref() != Some(id) {
                    self.session_id = Some(id.to_string());
                    out.push(AgentEvent::SessionId(id.to_string()));
                }
            } else if let Some(err) = line.strip_prefix("Error: ") {
                self.stderr_error = Some(truncate(err, 2000));
            }
        }
        out
    }

    fn finish(&mut self) -> Finish {
        let mut events = Vec::new();
        self.close_diff(&mut events);
        while self.answer.last().is_some_and(|l| l.is_empty()) {
            self.answer.pop();
        }
        let answer = self.answer.join("\n");
        let mut error = None;
        if is_api_error(&answer) {
            error = Some(answer.clone());
            events.push(AgentEvent::Message(MessageDraft::error(answer.clone())));
        } else if !answer.is_empty() {
            events.push(AgentEvent::Message(MessageDraft::text(answer.clone())));
        } else if let Some(err) = self.stderr_error.clone() {
            error = Some(err.clone());
            events.push(AgentEvent::Message(MessageDraft::error(err)));
        }
        let ended = !answer.is_empty() || error.is_some();
        Finish {
            events,
            outcome: RunOutcome {
                session_id: self.session_id.clone(),
                output: if error.is_some() {
                    String::new()
                } else {
                    answer
                },
                usage: Vec::new(),
                error,
                ended,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stdout: &str, stderr: &str) -> (Vec<AgentEvent>, RunOutcome) {
        let mut p = HermesParser::default();
        let mut events: Vec<AgentEvent> = stdout.lines().flat_map(|l| p.line(l)).collect();
        events.extend(p.stderr(stderr));
        let f = p.finish();
        events.extend(f.events);
        (events, f.outcome)
    }

    #[test]
    fn session_id_comes_from_stderr() {
        let (events, o) = run(
            "Hello.\n",
            "↻ Resumed session x\n\nsession_id: 20261130_124825_e5c8a0\n",
        );
        assert_eq!(o.session_id.as_deref(), Some("20261130_124825_e5c8a0"));
        assert_eq!(o.output, "Hello.");
        assert!(o.ended);
        assert!(events.contains(&AgentEvent::SessionId("20261130_124825_e5c8a0".into())));
    }

    #[test]
    fn api_error_answer_is_an_error_and_stderr_error_counts_without_answer() {
        let (_, o) = run("HTTP 529: overloaded\n", "");
        assert_eq!(o.error.as_deref(), Some("HTTP 529: overloaded"));
        assert_eq!(o.output, "");
        let (_, o) = run("", "Error: model not found\nsession_id: s1\n");
        assert_eq!(o.error.as_deref(), Some("model not found"));
        let (_, o) = run("", "");
        assert!(!o.ended && o.error.is_none(), "{o:?}");
    }

    #[test]
    fn a_diff_preview_at_the_end_is_still_reported() {
        let (events, o) = run("  ┊ review diff\na/x.txt → b/x.txt\n+y\n", "");
        assert_eq!(o.output, "");
        assert!(
            matches!(&events[0], AgentEvent::Message(m) if m.tool.as_deref() == Some("file_edit"))
        );
    }

    #[test]
    fn command_uses_quiet_query_mode_and_resume() {
        let spec = Hermes.command(&RunSpec {
            prompt: "-do it".into(),
            model: Some("m1".into()),
            prior_session_id: Some("s1".into()),
            custom_args: vec!["-Q".into(), "--max-turns".into(), "5".into()],
            ..RunSpec::default()
        });
        assert_eq!(
            spec.args,
            [
                "chat",
                "--query=-do it",
                "-Q",
                "--yolo",
                "--source",
                "tool",
                "-m",
                "m1",
                "--resume=s1",
                "--no-restore-cwd",
                "--max-turns",
                "5"
            ]
        );
    }
}
