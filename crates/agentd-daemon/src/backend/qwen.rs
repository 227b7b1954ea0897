//! Qwen Code: `qwen --output-format stream-json` (a Gemini CLI fork that prints Claude
//! Code's stream).
//!
//! Stream: the same lines as Claude Code's `stream-json` (`system/init` with the session
//! id and model, one `assistant` line per content block, `user` lines with
//! `tool_result`s, `result` at the end), parsed by [`ClaudeParser`] under the provider
//! name `qwen`. Differences: the failed `result` carries its text in `error.message`
//! (no `result` text), the API error also arrives as a plain assistant text
//! (`[API Error: …]`), and `result.usage` has no model (the `init` model is used) and is
//! cumulative over the session after `--resume`, as Codex's is.
//!
//! The model API comes from the CLI's own settings and environment (`OPENAI_BASE_URL`,
//! `OPENAI_API_KEY`, `OPENAI_MODEL` with `security.auth.selectedType = "openai"` in
//! `~/.qwen/settings.json`); the backend sets none of it.

use super::claude::ClaudeParser;
use super::util::filter_args;
use super::{Backend, CommandSpec, RunSpec, StreamParser};

const PROVIDER: &str = "qwen";

const BLOCKED: &[(&str, bool)] = &[
    ("-p", true),
    ("--prompt", true),
    ("-o", true),
    ("--output-format", true),
    ("--yolo", false),
    ("-y", false),
    ("--approval-mode", true),
    ("--resume", true),
    ("-r", true),
    ("--continue", false),
    ("-c", false),
    ("-i", true),
    ("--prompt-interactive", true),
    ("--input-format", true),
];

/// The Qwen Code backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Qwen;

impl Backend for Qwen {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `qwen --prompt=<prompt> --output-format stream-json --approval-mode yolo [-m M]
    /// [--resume ID] <custom args>`. The `--prompt=` form keeps a prompt starting with `-`
    /// a value (the positional prompt has no `--` escape). Without `yolo`, a headless run
    /// cannot write or run anything.
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args = vec![
            format!("--prompt={}", run.prompt),
            "--output-format".to_string(),
            "stream-json".to_string(),
            "--approval-mode".to_string(),
            "yolo".to_string(),
        ];
        if let Some(model) = run.model.as_deref().filter(|m| !m.is_empty()) {
            args.extend(["-m".to_string(), model.to_string()]);
        }
        if let Some(id) = run.prior_session_id.as_deref().filter(|s| !s.is_empty()) {
            args.extend(["--resume".to_string(), id.to_string()]);
        }
        args.extend(filter_args(PROVIDER, &run.custom_args, BLOCKED));
        CommandSpec {
            program: "qwen",
            args,
            env: vec![
                // The relaunching parent ignores SIGINT/SIGTERM while its child runs.
                ("QWEN_CODE_NO_RELAUNCH".to_string(), "true".to_string()),
                // A stderr notice per run that yolo runs unsandboxed: agentd's sandbox is
                // the one that applies.
                (
                    "QWEN_CODE_SUPPRESS_YOLO_WARNING".to_string(),
                    "1".to_string(),
                ),
            ],
        }
    }

    fn parser(&self, _run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(ClaudeParser::for_provider(PROVIDER))
    }
}
