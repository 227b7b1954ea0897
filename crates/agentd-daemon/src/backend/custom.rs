//! Custom CLIs: agent CLIs agentd has no row for, declared by the operator in the daemon's
//! config file (`[agents.custom.NAME]`, see `docs/agents.md`) and run like any backend.
//!
//! A profile gives the command, an argument template, the output format and the version
//! command. The template's placeholders are `{prompt}`, `{model}` and `{session}`; an
//! argument holding a placeholder whose value is absent (no model chosen, nothing to
//! resume) is dropped whole, so `["--model", "{model}"]` should be written `["--model={model}"]`
//! or as one argument the CLI accepts. The agent's `custom_args` follow the template.
//!
//! Output `text`: each non-empty stdout line is an agent message, the whole stdout is the
//! final output, the exit status alone decides success, and there is no session id (so
//! `{session}` is never filled). Output `claude`, `codex`, `opencode` or `gemini`: the
//! stdout is read with that provider's stream parser (usage entries then carry that
//! provider's name).

use super::provider::{self, ProviderInfo};
use super::{
    AgentEvent, Backend, CommandSpec, Finish, MessageDraft, RunOutcome, RunSpec, StreamParser,
};

/// How a custom CLI's stdout is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Plain text: a message per line, the whole stdout as the final output.
    Text,
    /// The JSON-lines stream of a known provider.
    Dialect(&'static str),
}

impl OutputFormat {
    /// Parses an `output` value; the error lists the valid ones.
    pub fn parse(s: &str) -> Result<OutputFormat, String> {
        if s == "text" {
            return Ok(OutputFormat::Text);
        }
        match provider::provider(s) {
            Some(p) => Ok(OutputFormat::Dialect(p.name)),
            None => Err(format!(
                "{s:?} is not an output format; valid: {}",
                OutputFormat::valid().join(", ")
            )),
        }
    }

    /// Every valid `output` value.
    pub fn valid() -> Vec<&'static str> {
        std::iter::once("text").chain(provider::names()).collect()
    }

    fn dialect(&self) -> Option<&'static ProviderInfo> {
        match self {
            OutputFormat::Text => None,
            OutputFormat::Dialect(name) => provider::provider(name),
        }
    }
}

/// One `[agents.custom.NAME]` profile, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomCli {
    /// The provider name its runtime registers with (`NAME`).
    pub name: &'static str,
    /// The command: a bare name looked up on PATH, or a path.
    pub command: String,
    /// The argument template.
    pub args: Vec<String>,
    pub output: OutputFormat,
    /// Arguments of the version probe (`<command> <version…>`).
    pub version_args: Vec<String>,
    /// Environment set on every run.
    pub env: Vec<(String, String)>,
}

impl CustomCli {
    /// Checks a profile name: not empty, letters, digits, `-` and `_` only, and not the
    /// name of a provider agentd knows.
    pub fn check_name(name: &str) -> Result<(), String> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "{name:?} is not a valid name (letters, digits, `-` and `_`)"
            ));
        }
        if provider::provider(name).is_some() {
            return Err(format!(
                "{name:?} is a built-in provider; configure it under [agents.{name}] instead"
            ));
        }
        Ok(())
    }

    /// The backend that runs this profile.
    pub fn backend(&self) -> Box<dyn Backend> {
        Box::new(CustomBackend(self.clone()))
    }
}

/// `arg` with its placeholders filled, or `None` when one of them has no value.
pub fn fill(arg: &str, run: &RunSpec) -> Option<String> {
    let values = [
        ("{prompt}", Some(run.prompt.as_str())),
        ("{model}", run.model.as_deref().filter(|m| !m.is_empty())),
        (
            "{session}",
            run.prior_session_id.as_deref().filter(|s| !s.is_empty()),
        ),
    ];
    // Placeholders are replaced left to right in one pass, so a prompt that contains
    // `{model}` stays as it is.
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    'scan: while !rest.is_empty() {
        for (key, value) in values {
            if let Some(tail) = rest.strip_prefix(key) {
                out.push_str(value?);
                rest = tail;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        out.extend(chars.next());
        rest = chars.as_str();
    }
    Some(out)
}

struct CustomBackend(CustomCli);

impl Backend for CustomBackend {
    fn provider(&self) -> &'static str {
        self.0.name
    }

    /// The template with its placeholders filled (arguments whose value is absent
    /// dropped), then the agent's `custom_args`, and the profile's env.
    fn command(&self, run: &RunSpec) -> CommandSpec {
        let mut args: Vec<String> = self.0.args.iter().filter_map(|a| fill(a, run)).collect();
        args.extend(run.custom_args.iter().cloned());
        CommandSpec {
            program: self.0.name,
            args,
            env: self.0.env.clone(),
        }
    }

    fn parser(&self, run: &RunSpec) -> Box<dyn StreamParser> {
        match self.0.output.dialect() {
            Some(p) => (p.backend)().parser(run),
            None => Box::new(TextParser::default()),
        }
    }
}

/// `output = "text"`: a message per non-empty line, the whole stdout as the output.
#[derive(Default)]
struct TextParser {
    lines: Vec<String>,
}

impl StreamParser for TextParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        self.lines.push(line.to_string());
        if line.trim().is_empty() {
            return Vec::new();
        }
        vec![AgentEvent::Message(MessageDraft::text(line))]
    }

    fn finish(&mut self) -> Finish {
        Finish {
            events: Vec::new(),
            outcome: RunOutcome {
                output: self.lines.join("\n").trim().to_string(),
                // The exit status decides: a text CLI has no end event of its own.
                ended: true,
                ..RunOutcome::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentd_proto::MessageKind;

    fn cli(args: &[&str], output: OutputFormat) -> CustomCli {
        CustomCli {
            name: "mine",
            command: "mine".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            output,
            version_args: vec!["--version".into()],
            env: vec![("MINE_MODE".into(), "batch".into())],
        }
    }

    #[test]
    fn placeholders_fill_and_absent_values_drop_the_argument() {
        let c = cli(
            &[
                "run",
                "--prompt={prompt}",
                "--model={model}",
                "--resume",
                "{session}",
            ],
            OutputFormat::Text,
        );
        let mut run = RunSpec {
            prompt: "fix {model} it".into(),
            custom_args: vec!["--fast".into()],
            ..RunSpec::default()
        };
        let spec = c.backend().command(&run);
        assert_eq!(
            spec.args,
            ["run", "--prompt=fix {model} it", "--resume", "--fast"]
        );
        assert_eq!(spec.env, [("MINE_MODE".to_string(), "batch".to_string())]);
        run.model = Some("m1".into());
        run.prior_session_id = Some("s-9".into());
        assert_eq!(
            c.backend().command(&run).args,
            [
                "run",
                "--prompt=fix {model} it",
                "--model=m1",
                "--resume",
                "s-9",
                "--fast"
            ]
        );
    }

    #[test]
    fn output_formats_parse_and_errors_list_the_valid_ones() {
        assert_eq!(OutputFormat::parse("text"), Ok(OutputFormat::Text));
        assert_eq!(
            OutputFormat::parse("codex"),
            Ok(OutputFormat::Dialect("codex"))
        );
        let e = OutputFormat::parse("xml").unwrap_err();
        assert!(
            e.contains("\"xml\"") && e.contains("text, claude, codex"),
            "{e}"
        );
        assert!(CustomCli::check_name("my-cli_2").is_ok());
        assert!(CustomCli::check_name("claude").is_err());
        assert!(CustomCli::check_name("a b").is_err());
        assert!(CustomCli::check_name("").is_err());
    }

    #[test]
    fn text_output_is_a_message_per_line_and_the_whole_stdout() {
        let b = cli(&["{prompt}"], OutputFormat::Text).backend();
        let mut p = b.parser(&RunSpec::default());
        let mut events = Vec::new();
        for l in ["first", "", "second"] {
            events.extend(p.line(l));
        }
        assert_eq!(events.len(), 2);
        assert!(matches!(&events[1], AgentEvent::Message(m)
            if m.kind == MessageKind::Text && m.content.as_deref() == Some("second")));
        let f = p.finish();
        assert_eq!(f.outcome.output, "first\n\nsecond");
        assert!(f.outcome.ended && f.outcome.error.is_none());
    }

    #[test]
    fn a_dialect_reads_that_providers_stream() {
        let b = cli(&["{prompt}"], OutputFormat::Dialect("claude")).backend();
        let mut p = b.parser(&RunSpec::default());
        let line = r#"{"type":"system","subtype":"init","session_id":"abc"}"#;
        assert_eq!(p.line(line), [AgentEvent::SessionId("abc".into())]);
    }
}
