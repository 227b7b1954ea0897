//! The argv and env each backend builds (the real CLIs accept them: see `real_cli.rs`).

use std::path::PathBuf;

use agentd_daemon::backend::{self, Backend, RunSpec};
use pretty_assertions::assert_eq;

fn run(prompt: &str) -> RunSpec {
    RunSpec {
        prompt: prompt.to_string(),
        workdir: PathBuf::from("/work/dir"),
        ..RunSpec::default()
    }
}

fn full(prompt: &str, custom: &[&str]) -> RunSpec {
    RunSpec {
        model: Some("m1".into()),
        prior_session_id: Some("sess-1".into()),
        custom_args: custom.iter().map(|s| s.to_string()).collect(),
        ..run(prompt)
    }
}

fn args(b: &dyn Backend, r: &RunSpec) -> Vec<String> {
    b.command(r).args
}

#[test]
fn claude_argv() {
    let plain = backend::Claude.command(&run("-starts with a dash"));
    assert_eq!(plain.program, "claude");
    assert_eq!(
        plain.args,
        [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
            "--",
            "-starts with a dash"
        ]
    );
    let keys: Vec<&str> = plain.env.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"));
    assert_eq!(
        keys.contains(&"IS_SANDBOX"),
        nix::unistd::geteuid().is_root(),
        "IS_SANDBOX exactly when root"
    );
    let a = args(
        &backend::Claude,
        &full(
            "go",
            &[
                "--max-turns",
                "5",
                "--output-format",
                "text",
                "--permission-mode=default",
            ],
        ),
    );
    assert_eq!(
        a[6..],
        [
            "--model",
            "m1",
            "--resume",
            "sess-1",
            "--max-turns",
            "5",
            "--",
            "go"
        ]
    );
}

#[test]
fn codex_argv_puts_resume_after_the_exec_options() {
    let a = args(&backend::Codex, &run("do it"));
    assert_eq!(
        a,
        [
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--sandbox",
            "workspace-write",
            "--",
            "do it"
        ]
    );
    let a = args(&backend::Codex, &full("next", &["--json", "-c", "x=1"]));
    assert_eq!(
        a[5..],
        [
            "--model", "m1", "-c", "x=1", "resume", "sess-1", "--", "next"
        ]
    );
    assert!(backend::Codex.command(&run("x")).env.is_empty());
}

#[test]
fn opencode_argv() {
    let c = backend::OpenCode.command(&full("hi", &["--format", "default", "--agent", "build"]));
    assert_eq!(c.program, "opencode");
    assert_eq!(
        c.args,
        [
            "run",
            "--format",
            "json",
            "--model",
            "m1",
            "--session",
            "sess-1",
            "--agent",
            "build",
            "--",
            "hi"
        ]
    );
    assert_eq!(
        c.env,
        [(
            "OPENCODE_PERMISSION".to_string(),
            r#"{"*":"allow"}"#.to_string()
        )]
    );
}

#[test]
fn gemini_argv_keeps_the_prompt_a_value() {
    let c = backend::Gemini.command(&full("-x", &["--yolo", "-o", "text", "--sandbox"]));
    assert_eq!(c.program, "gemini");
    assert_eq!(
        c.args,
        [
            "--prompt=-x",
            "--output-format",
            "stream-json",
            "--approval-mode",
            "yolo",
            "-m",
            "m1",
            "--resume",
            "sess-1",
            "--sandbox"
        ]
    );
    let keys: Vec<&str> = c.env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["GEMINI_CLI_TRUST_WORKSPACE", "GEMINI_CLI_NO_RELAUNCH"]
    );
}

#[test]
fn providers_resolve_and_empty_model_or_session_are_omitted() {
    for p in backend::provider::names() {
        let b = backend::for_provider(p).expect("known provider");
        assert_eq!(b.provider(), p);
        let mut r = run("x");
        r.model = Some(String::new());
        r.prior_session_id = Some(String::new());
        let a = b.command(&r).args;
        assert!(
            !a.iter()
                .any(|s| s == "--model" || s == "-m" || s.contains("resume") || s == "--session"),
            "{p}: {a:?}"
        );
    }
    assert!(backend::for_provider("cursor").is_none());
}

#[test]
fn codex_turns_its_own_sandbox_off_inside_agentds() {
    let inside = RunSpec {
        in_sandbox: true,
        ..run("do it")
    };
    let a = args(&backend::Codex, &inside);
    assert_eq!(a[3..5], ["--sandbox", "danger-full-access"]);
    let a = args(&backend::Codex, &run("do it"));
    assert_eq!(a[3..5], ["--sandbox", "workspace-write"]);
}

#[test]
fn qwen_argv_keeps_the_prompt_a_value() {
    let c = backend::Qwen.command(&full("-x", &["--yolo", "-o", "text", "--debug"]));
    assert_eq!(c.program, "qwen");
    assert_eq!(
        c.args,
        [
            "--prompt=-x",
            "--output-format",
            "stream-json",
            "--approval-mode",
            "yolo",
            "-m",
            "m1",
            "--resume",
            "sess-1",
            "--debug"
        ]
    );
    let keys: Vec<&str> = c.env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["QWEN_CODE_NO_RELAUNCH", "QWEN_CODE_SUPPRESS_YOLO_WARNING"]
    );
}

#[test]
fn pi_argv_keeps_a_prompt_starting_with_at_or_dash_a_message() {
    let c = backend::Pi.command(&full("go", &["--mode", "text", "--thinking", "off"]));
    assert_eq!(c.program, "pi");
    assert_eq!(
        c.args,
        [
            "-p",
            "--mode",
            "json",
            "--model",
            "m1",
            "--session",
            "sess-1",
            "--thinking",
            "off",
            "go"
        ]
    );
    // `@x` would attach file x and `-x` be a flag: a leading space keeps them text.
    for prompt in ["@mock:text hi", "-x"] {
        let a = args(&backend::Pi, &run(prompt));
        assert_eq!(
            a.last().map(String::as_str),
            Some(format!(" {prompt}").as_str())
        );
    }
    assert_eq!(c.env, [("PI_OFFLINE".to_string(), "1".to_string())]);
}

#[test]
fn kilo_argv() {
    let c = backend::Kilo.command(&full("hi", &["--format", "default", "--agent", "code"]));
    assert_eq!(c.program, "kilo");
    assert_eq!(
        c.args,
        [
            "run",
            "--format",
            "json",
            "--model",
            "m1",
            "--session",
            "sess-1",
            "--agent",
            "code",
            "--",
            "hi"
        ]
    );
    let keys: Vec<&str> = c.env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["KILO_PERMISSION", "KILO_DISABLE_AUTOUPDATE"]);
}

#[test]
fn continue_argv_has_no_resume_or_model_flag() {
    let c = backend::ContinueCli.command(&full("-x", &["--resume", "--config", "/c.yaml"]));
    assert_eq!(c.program, "cn");
    assert_eq!(
        c.args,
        [
            "-p", "--auto", "--format", "json", "--config", "/c.yaml", "--", "-x"
        ]
    );
}

/// The agent's MCP servers reach Claude Code inline and alone (`--strict-mcp-config`),
/// before the prompt's `--`; an empty or absent config adds nothing.
#[test]
fn claude_gets_the_agents_mcp_servers_inline() {
    let mcp = serde_json::json!({"mcpServers": {"probe": {"command": "probe-server"}}});
    let with = RunSpec {
        mcp_config: Some(mcp.clone()),
        ..run("do it")
    };
    let a = args(&backend::Claude, &with);
    let at = a
        .iter()
        .position(|x| x == "--mcp-config")
        .expect("--mcp-config");
    assert_eq!(a[at + 1], mcp.to_string());
    assert_eq!(a[at + 2], "--strict-mcp-config");
    assert!(at < a.iter().position(|x| x == "--").unwrap());
    for none in [
        None,
        Some(serde_json::json!({})),
        Some(serde_json::Value::Null),
    ] {
        let a = args(
            &backend::Claude,
            &RunSpec {
                mcp_config: none,
                ..run("do it")
            },
        );
        assert!(!a.iter().any(|x| x.contains("mcp")), "{a:?}");
    }
}
