//! Kilo Code CLI: `kilo run --format json` (an OpenCode fork with OpenCode's stream).
//!
//! Stream, argv and permission handling are OpenCode's (see [`super::opencode`]): the
//! parser is [`OpenCodeParser`] under the provider name `kilo`, and the environment
//! variables carry Kilo's prefix (`KILO_PERMISSION`, `KILO_CONFIG_CONTENT`, …). The model
//! provider comes from Kilo's own config (`KILO_CONFIG_CONTENT` or its config file); the
//! backend sets none of it.

use super::opencode::OpenCodeParser;
use super::util::filter_args;
use super::{Backend, CommandSpec, RunSpec, StreamParser};

const PROVIDER: &str = "kilo";

const BLOCKED: &[(&str, bool)] = &[
    ("--format", true),
    ("--session", true),
    ("-s", true),
    ("--continue", false),
    ("-c", false),
    ("--interactive", false),
    ("-i", false),
    ("--attach", true),
];

/// The Kilo Code CLI backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kilo;

impl Backend for Kilo {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// `kilo run --format json [--model M] [--session ID] <custom args> -- <prompt>`, with
    /// every permission allowed (a headless run cannot answer "ask").
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args: Vec<String> = ["run", "--format", "json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(model) = run.model.as_deref().filter(|m| !m.is_empty()) {
            args.extend(["--model".to_string(), model.to_string()]);
        }
        if let Some(id) = run.prior_session_id.as_deref().filter(|s| !s.is_empty()) {
            args.extend(["--session".to_string(), id.to_string()]);
        }
        args.extend(filter_args(PROVIDER, &run.custom_args, BLOCKED));
        args.push("--".to_string());
        args.push(run.prompt.clone());
        CommandSpec {
            program: "kilo",
            args,
            env: vec![
                (
                    "KILO_PERMISSION".to_string(),
                    r#"{"*":"allow"}"#.to_string(),
                ),
                ("KILO_DISABLE_AUTOUPDATE".to_string(), "1".to_string()),
            ],
        }
    }

    fn parser(&self, run: &RunSpec) -> Box<dyn StreamParser> {
        Box::new(OpenCodeParser::for_provider(PROVIDER, run))
    }
}
