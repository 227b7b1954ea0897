//! The real agent CLIs the tests run, one [`CliRow`] per CLI: where the installed binary
//! is, how it is pointed at [`MockModel`] (environment and config files), and what a run
//! of each built-in mock script looks like for it (tool names, exit statuses, error
//! texts, what it supports). `agentd-daemon/tests/real_cli.rs` and
//! `agentd/tests/real_cli_e2e.rs` loop their tests over these rows, so adding a CLI to the
//! real-CLI tests is one row here (plus its name in those files' `per_cli!` lists).
//!
//! The CLIs are installed by `scripts/install-agent-clis.sh` under `$AGENTD_CLI_PREFIX`
//! (default `<repo>/.cache/agent-clis`); a test whose CLI is missing prints a `SKIP` line
//! and passes.

use std::path::{Path, PathBuf};

use crate::mock_model::{Api, MockModel};

/// The signal a cancellation test sends to the CLI's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelSignal {
    Int,
    Term,
}

/// How a CLI behaves when its process group gets a signal while the model hangs.
#[derive(Debug, Clone, Copy)]
pub struct Cancel {
    pub signal: CancelSignal,
    /// The CLI still prints its end-of-run event (with an error) before it exits.
    pub ends_with_result: bool,
    /// Whether it exits with status 0 (`None`: not checked). Gemini CLI does, without an
    /// end event: the missing end event is what tells the daemon the run did not finish.
    pub exits_zero: Option<bool>,
}

/// One agent CLI in the real-CLI tests.
#[derive(Debug, Clone, Copy)]
pub struct CliRow {
    /// The provider name (as in agentd's provider table).
    pub name: &'static str,
    /// The executable under `<prefix>/bin`.
    pub binary: &'static str,
    /// How it gets installed (printed when it is missing).
    pub install: &'static str,
    /// The mock API it speaks.
    pub api: Api,
    /// The environment (and config files written under `home`) that points it at the mock.
    pub mock_env: fn(home: &Path, mock: &MockModel) -> Vec<(String, String)>,
    /// Heavy to run (memory, seconds): such rows take a file lock so one runs at a time.
    pub heavy: bool,
    /// The model the `@mock:write` run asks for (`RunSpec::model`), if any.
    pub write_model: Option<&'static str>,
    /// The model the other runs (text, resume, error) ask for, if any.
    pub model: Option<&'static str>,
    /// The tool the `@mock:write` script's file write shows up as.
    pub write_tool: &'static str,
    /// Text the write's `tool_use` input holds besides the file name (the content, or
    /// what the CLI prints instead).
    pub write_input_shows: &'static str,
    /// Requests per API the `@mock:write` run makes, where the count is fixed.
    pub write_requests: &'static [(Api, usize)],
    /// Requests per API a `@mock:text` run with [`CliRow::model`] makes, where fixed.
    pub text_requests: &'static [(Api, usize)],
    /// Resumes a session (`--resume`-like).
    pub resume: bool,
    /// `(input, output)` tokens the resumed run reports, when its usage is cumulative
    /// over the session (the mock answers 100 in / 10 out a request).
    pub resume_usage: Option<(i64, i64)>,
    /// A model to choose (`RunSpec::model`) and the model name the CLI's requests to the
    /// mock then carry (in the JSON body's `model`, or in the URL for Gemini); `None`: the
    /// CLI has no model choice on its command line (Continue: its config picks it).
    pub model_choice: Option<(&'static str, &'static str)>,
    /// Reports token usage.
    pub usage: bool,
    /// Exit status and error texts of a run whose model API answers 400 (`@mock:error`);
    /// `None`: not recorded for this CLI yet.
    pub api_error: Option<(i32, &'static [&'static str])>,
    /// The tool whose result carries the output of the `@mock:write-shell` script's
    /// shell command; `None`: not recorded for this CLI yet.
    pub shell_tool: Option<&'static str>,
    /// Behaviour on a signal while the model hangs; `None`: not recorded.
    pub cancel: Option<Cancel>,
    /// Prints only its final answer (Continue): no tool calls, no session id, no usage,
    /// and an API error on stderr only.
    pub answer_only: bool,
}

/// Every CLI the real-CLI tests know.
pub const ROWS: &[CliRow] = &[
    CliRow {
        name: "claude",
        binary: "claude",
        install: "scripts/install-agent-clis.sh claude (npm @anthropic-ai/claude-code)",
        api: Api::Anthropic,
        mock_env: claude_env,
        heavy: false,
        write_model: None,
        model: None,
        write_tool: "Write",
        write_input_shows: r"hello from mock\n",
        write_requests: &[(Api::Anthropic, 2)],
        text_requests: &[],
        resume: true,
        resume_usage: None,
        model_choice: Some(("claude-sonnet-4-5", "claude-sonnet-4-5")),
        usage: true,
        api_error: Some((1, &["API Error", "400"])),
        shell_tool: Some("Bash"),
        cancel: Some(Cancel {
            signal: CancelSignal::Int,
            ends_with_result: true,
            exits_zero: None,
        }),
        answer_only: false,
    },
    CliRow {
        name: "codex",
        binary: "codex",
        install: "scripts/install-agent-clis.sh codex (npm @openai/codex)",
        api: Api::Responses,
        mock_env: codex_env,
        heavy: false,
        write_model: None,
        model: None,
        write_tool: "apply_patch",
        // Codex prints a `file_change` item (path and kind), not the patch.
        write_input_shows: r#""kind":"add""#,
        write_requests: &[],
        text_requests: &[],
        resume: true,
        resume_usage: Some((200, 20)),
        model_choice: Some(("gpt-5.5-mini", "gpt-5.5-mini")),
        usage: true,
        api_error: Some((1, &["mock 400"])),
        shell_tool: Some("exec_command"),
        cancel: Some(Cancel {
            signal: CancelSignal::Term,
            ends_with_result: false,
            exits_zero: Some(false),
        }),
        answer_only: false,
    },
    CliRow {
        name: "opencode",
        binary: "opencode",
        install: "scripts/install-agent-clis.sh opencode (npm opencode-ai)",
        api: Api::ChatCompletions,
        mock_env: opencode_env,
        heavy: true,
        write_model: Some("mock/mock-model"),
        model: None,
        write_tool: "write",
        write_input_shows: r"hello from mock\n",
        write_requests: &[],
        text_requests: &[],
        resume: true,
        resume_usage: None,
        model_choice: Some(("mock/mock-model", "mock-model")),
        usage: true,
        api_error: Some((1, &["mock 400"])),
        shell_tool: Some("bash"),
        cancel: Some(Cancel {
            signal: CancelSignal::Term,
            ends_with_result: false,
            exits_zero: Some(false),
        }),
        answer_only: false,
    },
    CliRow {
        name: "gemini",
        binary: "gemini",
        install: "scripts/install-agent-clis.sh gemini (npm @google/gemini-cli)",
        api: Api::Gemini,
        mock_env: gemini_env,
        heavy: true,
        // The default model `auto` asks the router first; a named one skips it.
        write_model: None,
        model: Some("gemini-2.5-pro"),
        write_tool: "write_file",
        write_input_shows: r"hello from mock\n",
        write_requests: &[(Api::GeminiAux, 1)],
        text_requests: &[(Api::GeminiAux, 0)],
        resume: true,
        resume_usage: None,
        model_choice: Some(("gemini-2.5-flash", "gemini-2.5-flash")),
        usage: true,
        // Exit status = HTTP status mod 256 (real-agents.md).
        api_error: Some((400 % 256, &["mock 400"])),
        shell_tool: Some("run_shell_command"),
        cancel: Some(Cancel {
            signal: CancelSignal::Term,
            ends_with_result: false,
            exits_zero: Some(true),
        }),
        answer_only: false,
    },
    CliRow {
        name: "qwen",
        binary: "qwen",
        install: "scripts/install-agent-clis.sh qwen (npm @qwen-code/qwen-code)",
        api: Api::ChatCompletions,
        mock_env: qwen_env,
        heavy: true,
        write_model: None,
        model: None,
        write_tool: "write_file",
        write_input_shows: r"hello from mock\n",
        write_requests: &[],
        text_requests: &[],
        resume: true,
        // `result.usage` is the session's: two runs of two requests each.
        resume_usage: Some((400, 40)),
        // Sessions are kept per project dir (as Gemini CLI's).
        model_choice: Some(("qwen-other", "qwen-other")),
        usage: true,
        api_error: Some((1, &["API Error", "400"])),
        shell_tool: Some("run_shell_command"),
        cancel: Some(Cancel {
            signal: CancelSignal::Term,
            ends_with_result: false,
            exits_zero: Some(false),
        }),
        answer_only: false,
    },
    CliRow {
        name: "pi",
        binary: "pi",
        install: "scripts/install-agent-clis.sh pi (npm @mariozechner/pi-coding-agent)",
        api: Api::ChatCompletions,
        mock_env: pi_env,
        heavy: false,
        write_model: None,
        model: None,
        write_tool: "write",
        write_input_shows: r"hello from mock\n",
        write_requests: &[(Api::ChatCompletions, 2)],
        text_requests: &[(Api::ChatCompletions, 1)],
        resume: true,
        resume_usage: None,
        // It asks whether to fork the session into the new dir; stdin is closed: no.
        model_choice: Some(("mock/mock-model-b", "mock-model-b")),
        usage: true,
        // Pi exits 0; the failed message's `stopReason: "error"` says it failed.
        api_error: Some((0, &["mock 400"])),
        shell_tool: Some("bash"),
        cancel: Some(Cancel {
            signal: CancelSignal::Term,
            ends_with_result: false,
            exits_zero: Some(false),
        }),
        answer_only: false,
    },
    CliRow {
        name: "kilo",
        binary: "kilo",
        install: "scripts/install-agent-clis.sh kilo (npm @kilocode/cli)",
        api: Api::ChatCompletions,
        mock_env: kilo_env,
        heavy: true,
        write_model: None,
        model: None,
        write_tool: "write",
        write_input_shows: r"hello from mock\n",
        write_requests: &[],
        text_requests: &[],
        resume: true,
        resume_usage: None,
        // Unlike OpenCode, it resumes a session started in another dir.
        model_choice: Some(("mock/mock-model-b", "mock-model-b")),
        usage: true,
        api_error: Some((1, &["mock 400"])),
        shell_tool: Some("bash"),
        cancel: Some(Cancel {
            signal: CancelSignal::Term,
            ends_with_result: false,
            exits_zero: Some(false),
        }),
        answer_only: false,
    },
    CliRow {
        name: "continue",
        binary: "cn",
        install: "scripts/install-agent-clis.sh continue (npm @continuedev/cli)",
        api: Api::ChatCompletions,
        mock_env: continue_env,
        heavy: false,
        write_model: None,
        model: None,
        // Not printed: Continue's stdout is the final answer only.
        write_tool: "",
        write_input_shows: "",
        write_requests: &[(Api::ChatCompletions, 2)],
        text_requests: &[],
        resume: false,
        resume_usage: None,
        model_choice: None,
        usage: false,
        // On stderr (`{"status":"error","message":"400 mock 400"}`), stdout empty.
        api_error: Some((1, &["mock 400"])),
        shell_tool: None,
        // Exits 0 without printing anything: the missing answer says it did not finish.
        cancel: Some(Cancel {
            signal: CancelSignal::Term,
            ends_with_result: false,
            exits_zero: Some(true),
        }),
        answer_only: true,
    },
    CliRow {
        name: "hermes",
        binary: "hermes",
        install: "scripts/install-agent-clis.sh hermes (PyPI hermes-agent, in a venv)",
        api: Api::ChatCompletions,
        mock_env: hermes_env,
        // A Python CLI: ~5 s of CPU a run.
        heavy: true,
        write_model: None,
        model: None,
        // Quiet mode prints no tool calls, only each edit's diff preview (`+` lines).
        write_tool: "file_edit",
        write_input_shows: "+hello from mock",
        write_requests: &[],
        text_requests: &[],
        resume: true,
        resume_usage: None,
        // Quiet mode prints no usage.
        model_choice: Some(("mock-model-b", "mock-model-b")),
        answer_only: false,
        usage: false,
        // The API error is printed as the answer, `HTTP 400: <message>`.
        api_error: Some((1, &["HTTP 400", "mock 400"])),
        // Quiet mode prints no tool results: the shell command's output is not shown.
        shell_tool: None,
        cancel: Some(Cancel {
            signal: CancelSignal::Term,
            ends_with_result: false,
            exits_zero: Some(false),
        }),
    },
    CliRow {
        name: "mini",
        binary: "mini",
        install: "scripts/install-agent-clis.sh mini (PyPI mini-swe-agent, in a venv)",
        api: Api::ChatCompletions,
        mock_env: mini_env,
        // A Python CLI (litellm): ~5 s of CPU a run.
        heavy: true,
        write_model: None,
        model: None,
        // mini's one tool; the file is written by a heredoc whose text is in the command.
        write_tool: "bash",
        write_input_shows: r"hello from mock\n",
        write_requests: &[(Api::ChatCompletions, 2)],
        text_requests: &[],
        // mini has no sessions.
        resume: false,
        resume_usage: None,
        model_choice: Some(("openai/mock-model-b", "mock-model-b")),
        answer_only: false,
        usage: true,
        // The trajectory's exit status (the litellm exception) and its message.
        api_error: Some((1, &["BadRequestError", "mock 400"])),
        shell_tool: Some("bash"),
        cancel: Some(Cancel {
            signal: CancelSignal::Term,
            ends_with_result: false,
            exits_zero: Some(false),
        }),
    },
    CliRow {
        name: "copilot",
        binary: "copilot",
        install: "scripts/install-agent-clis.sh copilot (npm @github/copilot)",
        api: Api::ChatCompletions,
        mock_env: copilot_env,
        // Unpacks its ~235 MB bundle into each fresh HOME on the first run.
        heavy: true,
        write_model: None,
        model: None,
        write_tool: "create",
        write_input_shows: r"hello from mock\n",
        write_requests: &[(Api::ChatCompletions, 2)],
        text_requests: &[(Api::ChatCompletions, 1)],
        resume: true,
        resume_usage: None,
        // Its `result` has request counts and durations, no tokens.
        model_choice: Some(("mock-model-b", "mock-model-b")),
        answer_only: false,
        usage: false,
        api_error: Some((1, &["400 mock 400"])),
        shell_tool: Some("bash"),
        // On SIGTERM it prints an aborted `assistant.idle` (sometimes then a `result`
        // with exit code 0) and dies of the signal or exits 1.
        cancel: Some(Cancel {
            signal: CancelSignal::Term,
            ends_with_result: true,
            exits_zero: Some(false),
        }),
    },
    CliRow {
        name: "droid",
        binary: "droid",
        install: "scripts/install-agent-clis.sh droid (npm @factory/cli-linux-x64, the native binary)",
        api: Api::ChatCompletions,
        mock_env: droid_env,
        // A 250 MB native binary that spends ~7 s per run on unreachable cloud calls.
        heavy: true,
        write_model: Some(DROID_MODEL),
        model: Some(DROID_MODEL),
        write_tool: "Create",
        write_input_shows: r"hello from mock\n",
        write_requests: &[(Api::ChatCompletions, 2)],
        text_requests: &[],
        // Resume fetches the session from Factory's cloud, even for a BYOK model.
        resume: false,
        resume_usage: None,
        model_choice: Some((DROID_MODEL, "mock-model")),
        answer_only: false,
        usage: true,
        api_error: Some((1, &["400 mock 400"])),
        shell_tool: Some("Execute"),
        // Like Gemini CLI: exit 0 without its `completion` line.
        cancel: Some(Cancel {
            signal: CancelSignal::Term,
            ends_with_result: false,
            exits_zero: Some(true),
        }),
    },
];

/// The row of `name`; panics on a name no row has (a typo in a test).
pub fn row(name: &str) -> &'static CliRow {
    ROWS.iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no real-CLI row named {name}"))
}

/// Where the CLIs are installed: `$AGENTD_CLI_PREFIX`, default `<repo>/.cache/agent-clis`.
pub fn prefix() -> PathBuf {
    std::env::var_os("AGENTD_CLI_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/agent-clis"))
}

impl CliRow {
    /// The installed CLI (`<prefix>/bin/<binary>`, as installed: not resolved through
    /// its symlink), or `None` after printing `SKIP <test>: …` with why.
    pub fn installed(&self, test: &str) -> Option<PathBuf> {
        let bin = prefix().join("bin").join(self.binary);
        if bin.exists() {
            Some(bin)
        } else {
            eprintln!(
                "SKIP {test} {}: not installed (looked for {}); install with {}",
                self.name,
                bin.display(),
                self.install
            );
            None
        }
    }

    /// `value` if this row records it, else `None` after printing `SKIP … : no <what>`.
    pub fn needs<T>(&self, test: &str, what: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            eprintln!(
                "SKIP {test} {}: {what} is not recorded for this CLI",
                self.name
            );
        }
        value
    }

    /// The CLI's env pointing at `mock` (config files go under `home`).
    pub fn env(&self, home: &Path, mock: &MockModel) -> Vec<(String, String)> {
        (self.mock_env)(home, mock)
    }
}

/// An exclusive lock for heavy rows, held across test binaries and nextest processes
/// (a file lock in the temp dir); `None` for light rows.
pub async fn heavy_lock(row: &CliRow) -> Option<std::fs::File> {
    if !row.heavy {
        return None;
    }
    let file = tokio::task::spawn_blocking(|| {
        let path = std::env::temp_dir().join("agentd-real-cli-heavy.lock");
        let file = std::fs::File::create(path).expect("lock file");
        file.lock().expect("lock");
        file
    })
    .await
    .expect("lock task");
    Some(file)
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn claude_env(_home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    pairs(&[
        ("ANTHROPIC_BASE_URL", &mock.base_url()),
        ("ANTHROPIC_API_KEY", "mock-key"),
        ("CLAUDE_CODE_MAX_RETRIES", "0"),
    ])
}

/// A `mock` model provider in `$CODEX_HOME/config.toml`, its key in `MOCK_API_KEY` (the
/// daemon passes that key only when its config lists it in `pass_env`).
fn codex_env(home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home).expect("mkdir codex home");
    let config = format!(
        r#"model = "gpt-5.5"
model_provider = "mock"
check_for_update_on_startup = false
[analytics]
enabled = false
[otel]
exporter = "none"
[features]
plugins = false
[model_providers.mock]
name = "Mock LLM"
base_url = "{}"
env_key = "MOCK_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#,
        mock.openai_base_url()
    );
    std::fs::write(codex_home.join("config.toml"), config).expect("codex config");
    pairs(&[
        ("CODEX_HOME", &codex_home.to_string_lossy()),
        ("MOCK_API_KEY", "mock-key"),
    ])
}

fn opencode_env(_home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    let config = serde_json::json!({
        "provider": {"mock": {"npm": "@ai-sdk/openai-compatible", "name": "Mock",
            "options": {"baseURL": mock.openai_base_url(), "apiKey": "mock"},
            "models": {"mock-model": {"name": "Mock", "tool_call": true}}}},
        "model": "mock/mock-model", "small_model": "mock/mock-model",
        "autoupdate": false, "share": "disabled"
    })
    .to_string();
    pairs(&[
        ("OPENCODE_CONFIG_CONTENT", &config),
        ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
        ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
        ("npm_config_offline", "true"),
    ])
}

fn gemini_env(home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    let gemini_dir = home.join(".gemini");
    std::fs::create_dir_all(&gemini_dir).expect("mkdir .gemini");
    let settings = serde_json::json!({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false},
        "general": {"disableAutoUpdate": true, "disableUpdateNag": true}
    });
    std::fs::write(gemini_dir.join("settings.json"), settings.to_string())
        .expect("gemini settings");
    pairs(&[
        ("GOOGLE_GEMINI_BASE_URL", &mock.base_url()),
        ("GEMINI_API_KEY", "mock-key"),
    ])
}

/// Qwen Code on its OpenAI-compatible auth (`~/.qwen/settings.json`), the mock's base URL,
/// key and model in `OPENAI_*`.
fn qwen_env(home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    let qwen_dir = home.join(".qwen");
    std::fs::create_dir_all(&qwen_dir).expect("mkdir .qwen");
    let settings = serde_json::json!({
        "security": {"auth": {"selectedType": "openai"}},
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false},
        "general": {"disableAutoUpdate": true, "disableUpdateNag": true}
    });
    std::fs::write(qwen_dir.join("settings.json"), settings.to_string()).expect("qwen settings");
    pairs(&[
        ("OPENAI_BASE_URL", &mock.openai_base_url()),
        ("OPENAI_API_KEY", "mock-key"),
        ("OPENAI_MODEL", "qwen-mock"),
    ])
}

/// A `mock` provider in Pi's `~/.pi/agent/models.json`, made the default in its
/// `settings.json`.
fn pi_env(home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    let pi_dir = home.join(".pi").join("agent");
    std::fs::create_dir_all(&pi_dir).expect("mkdir .pi/agent");
    let models = serde_json::json!({"providers": {"mock": {
        "baseUrl": mock.openai_base_url(), "api": "openai-completions", "apiKey": "mock-key",
        "compat": {"supportsDeveloperRole": false, "supportsReasoningEffort": false},
        "models": [{"id": "mock-model"}, {"id": "mock-model-b"}]}}});
    std::fs::write(pi_dir.join("models.json"), models.to_string()).expect("pi models");
    let settings = serde_json::json!({"defaultProvider": "mock", "defaultModel": "mock-model"});
    std::fs::write(pi_dir.join("settings.json"), settings.to_string()).expect("pi settings");
    Vec::new()
}

/// Kilo Code reads OpenCode's config shape from `KILO_CONFIG_CONTENT`.
fn kilo_env(_home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    let config = serde_json::json!({
        "provider": {"mock": {"npm": "@ai-sdk/openai-compatible", "name": "Mock",
            "options": {"baseURL": mock.openai_base_url(), "apiKey": "mock"},
            "models": {"mock-model": {"name": "Mock", "tool_call": true},
                       "mock-model-b": {"name": "Mock B", "tool_call": true}}}},
        "model": "mock/mock-model", "small_model": "mock/mock-model",
        "autoupdate": false, "share": "disabled"
    })
    .to_string();
    pairs(&[
        ("KILO_CONFIG_CONTENT", &config),
        ("KILO_DISABLE_MODELS_FETCH", "1"),
        ("npm_config_offline", "true"),
    ])
}

/// A local OpenAI-compatible model in Continue's `~/.continue/config.yaml`.
fn continue_env(home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    let dir = home.join(".continue");
    std::fs::create_dir_all(&dir).expect("mkdir .continue");
    let config = format!(
        "name: mock\nversion: 0.0.1\nschema: v1\nmodels:\n  - name: mock\n    provider: openai\n    model: mock-model\n    apiBase: {}\n    apiKey: mock-key\n    roles: [chat]\n",
        mock.openai_base_url()
    );
    std::fs::write(dir.join("config.yaml"), config).expect("continue config");
    Vec::new()
}

/// Hermes' `custom` provider pointed at the mock, in `$HOME/.hermes/config.yaml`.
fn hermes_env(home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    let dir = home.join(".hermes");
    std::fs::create_dir_all(&dir).expect("mkdir .hermes");
    let config = format!(
        "model:\n  provider: custom\n  base_url: {}\n  default: mock-model\n  api_key: mock-key\n",
        mock.openai_base_url()
    );
    std::fs::write(dir.join("config.yaml"), config).expect("hermes config");
    pairs(&[("OPENAI_API_KEY", "mock-key")])
}

/// litellm's OpenAI provider pointed at the mock; no cost lookup (the mock model has no
/// price; litellm would fetch its price list otherwise) and one attempt per model call
/// (mini retries 10 times with backoff by default).
fn mini_env(_home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    pairs(&[
        ("OPENAI_API_KEY", "mock-key"),
        ("OPENAI_API_BASE", &mock.openai_base_url()),
        ("MSWEA_MODEL_NAME", "openai/mock-model"),
        ("MSWEA_COST_TRACKING", "ignore_errors"),
        ("MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT", "1"),
        ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
    ])
}

/// Copilot CLI's offline mode with a custom OpenAI-compatible provider (BYOK): no GitHub
/// login, telemetry or update checks. The key must not be a word the run prints: the
/// CLI masks the provider key wherever it appears in its output.
fn copilot_env(_home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    pairs(&[
        ("COPILOT_OFFLINE", "true"),
        ("COPILOT_PROVIDER_BASE_URL", &mock.openai_base_url()),
        ("COPILOT_PROVIDER_API_KEY", "mock-provider-key-7f3a"),
        ("COPILOT_MODEL", "mock-model"),
    ])
}

/// The id Droid gives the first custom model of `~/.factory/settings.json`.
const DROID_MODEL: &str = "custom:mock-model-0";

/// Droid's custom (BYOK) model: an OpenAI-compatible endpoint, in
/// `$HOME/.factory/settings.json`, also its default model (a run without `-m`, as
/// through the daemon, would use a Factory model and ask for a login); no Factory login
/// is needed for it.
fn droid_env(home: &Path, mock: &MockModel) -> Vec<(String, String)> {
    let dir = home.join(".factory");
    std::fs::create_dir_all(&dir).expect("mkdir .factory");
    let settings = serde_json::json!({"customModels": [{
        "modelDisplayName": "Mock", "model": "mock-model", "baseUrl": mock.openai_base_url(),
        "apiKey": "mock-provider-key-7f3a", "provider": "generic-chat-completion-api",
        "maxOutputTokens": 8192}], "model": DROID_MODEL});
    std::fs::write(dir.join("settings.json"), settings.to_string()).expect("droid settings");
    Vec::new()
}
