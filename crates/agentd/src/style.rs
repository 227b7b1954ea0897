//! Terminal manners: colour only when the stream is a terminal, never with `NO_COLOR`,
//! always with `CLICOLOR_FORCE` (even when piped).

use std::io::IsTerminal;

/// Whether to colour a stream that is (`is_terminal`) a terminal, given the environment.
pub fn colour_wanted(is_terminal: bool) -> bool {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("NO_COLOR") {
        return false;
    }
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    is_terminal
}

pub fn stdout_colour() -> bool {
    colour_wanted(std::io::stdout().is_terminal())
}

pub fn stderr_colour() -> bool {
    colour_wanted(std::io::stderr().is_terminal())
}

/// Whether stdout is a terminal that takes the ✓/✗ marks (else plain ASCII).
pub fn stdout_fancy() -> bool {
    std::io::stdout().is_terminal() || stdout_colour()
}

#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    pub fn new(on: bool) -> Style {
        Style { on }
    }
    pub fn stdout() -> Style {
        Style::new(stdout_colour())
    }
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on && !s.is_empty() {
            format!("\u{1b}[{code}m{s}\u{1b}[0m")
        } else {
            s.to_string()
        }
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }
    /// A status word coloured by what it means.
    pub fn status(&self, s: &str) -> String {
        match s {
            "completed" | "done" | "online" => self.green(s),
            "failed" | "offline" => self.red(s),
            "running" | "dispatched" | "in_progress" | "in_review" => self.yellow(s),
            "cancelled" => self.dim(s),
            _ => s.to_string(),
        }
    }
}
