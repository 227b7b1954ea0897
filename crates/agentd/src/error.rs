//! The CLI's typed error: what went wrong in plain words, a hint, and the exit code it
//! maps to. Commands return `anyhow::Error` (the carrier); `main.rs` downcasts to
//! [`CliError`] to pick the exit code and to print it (`--json`: one JSON object on
//! stderr).

use agentd_proto::api::RefMatch;
use serde_json::json;

/// The documented exit codes (`docs/cli.md`, `agentd --help`: `cli.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1: any other error.
    Other,
    /// 3: no object matches the reference.
    NotFound,
    /// 4: the reference matches more than one object (or no default workspace).
    Ambiguous,
    /// 5: refused for the object's state (already retried, already ended, …).
    Refused,
    /// 6: authentication or permission (401/403, no token).
    Auth,
    /// 7: the server is unreachable or failed (5xx).
    Unreachable,
    /// 8: the followed task failed.
    TaskFailed,
    /// 9: the followed task was cancelled.
    TaskCancelled,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Other => 1,
            Kind::NotFound => 3,
            Kind::Ambiguous => 4,
            Kind::Refused => 5,
            Kind::Auth => 6,
            Kind::Unreachable => 7,
            Kind::TaskFailed => 8,
            Kind::TaskCancelled => 9,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CliError {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
    /// The server's `ErrorBody.code`, or the CLI's own (`invalid_server_url`, …).
    pub code: Option<String>,
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    pub matches: Vec<RefMatch>,
    /// `METHOD path → status: server's words`, shown with `--verbose`.
    pub detail: Option<String>,
    /// Whether the text lists `matches` (an ambiguity does; an already-retried task
    /// names its retry in the message instead).
    pub list_matches: bool,
    /// The command already told the user (e.g. `task logs --follow`'s closing line):
    /// `main` prints nothing more in text mode.
    pub reported: bool,
}

impl CliError {
    pub fn new(kind: Kind, message: impl Into<String>) -> CliError {
        CliError {
            kind,
            message: message.into(),
            hint: None,
            code: None,
            status: None,
            matches: Vec::new(),
            detail: None,
            list_matches: true,
            reported: false,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    pub fn code(mut self, code: impl Into<String>) -> CliError {
        self.code = Some(code.into());
        self
    }

    /// The text printed to stderr: the message, the matches, the hint, and with
    /// `verbose` the raw request.
    pub fn render(&self, verbose: bool, colour: bool) -> String {
        let st = crate::style::Style::new(colour);
        let mut out = format!("{} {}", st.red("error:"), self.message);
        for m in self.matches.iter().filter(|_| self.list_matches) {
            out.push_str(&format!("\n  {}  {}", st.bold(&m.id), m.label));
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("\n{} {h}", st.dim("hint:")));
        }
        if verbose && let Some(d) = &self.detail {
            out.push_str(&format!("\n{} {d}", st.dim("request:")));
        }
        out
    }

    /// `{"error": {"message", "hint", "code", "status", "matches"}}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "hint": self.hint,
            "code": self.code,
            "status": self.status,
            "matches": self.matches.iter()
                .map(|m| json!({"id": m.id, "label": m.label}))
                .collect::<Vec<_>>(),
        }})
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Any error as a [`CliError`]: itself when it is one (also under context), else kind
/// `Other` with anyhow's whole chain as the message.
pub fn classify(e: &anyhow::Error) -> CliError {
    if let Some(c) = e.downcast_ref::<CliError>() {
        return c.clone();
    }
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<CliError>() {
            let mut c = c.clone();
            c.message = format!("{e:#}");
            return c;
        }
    }
    CliError::new(Kind::Other, format!("{e:#}"))
}
