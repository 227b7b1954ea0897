//! `agentd daemon detect`: the real binary with stand-in CLIs on PATH (and one pinned in
//! the config file, one custom profile), as JSON and as a table.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write stand-in");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn detect(dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(common::BIN)
        .args(["daemon", "detect", "--config"])
        .arg(dir.join("daemon.toml"))
        .args(extra)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", dir.join("bin").display()),
        )
        .env("NO_COLOR", "1")
        .output()
        .expect("run agentd daemon detect")
}

#[test]
fn detect_lists_every_provider_found_or_not_with_path_version_and_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    script(&bin.join("claude"), "echo '2.1.0 (Claude Code)'");
    script(&bin.join("codex"), "echo 'codex-cli 0.5.0'");
    script(&bin.join("gemini"), "echo boom >&2; exit 3");
    // OpenCode: pinned in the config to a path that does not exist (and not on PATH).
    let mine = root.join("mine-agent");
    script(
        &mine,
        "[ \"$1\" = version ] && echo 'mine 4.5.6' && exit 0; exit 1",
    );
    std::fs::write(
        root.join("daemon.toml"),
        format!(
            "[agents.opencode]\npath = \"/nonexistent/opencode\"\n\
             [agents.custom.mine]\ncommand = {:?}\nversion = [\"version\"]\n\
             [agents.custom.ghost]\ncommand = \"ghost-agent\"\n",
            mine.display().to_string()
        ),
    )
    .expect("config");

    let out = detect(root, &["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    let by = |p: &str| {
        rows.iter()
            .find(|r| r["provider"] == p)
            .unwrap_or_else(|| panic!("no row for {p}: {rows:#?}"))
            .clone()
    };
    let names: Vec<&str> = rows.iter().filter_map(|r| r["provider"].as_str()).collect();
    let expected: Vec<&str> = agentd_daemon::backend::provider::names()
        .chain(["ghost", "mine"])
        .collect();
    assert_eq!(
        names, expected,
        "the table's providers, then the custom profiles"
    );

    let claude = by("claude");
    assert_eq!(claude["usable"], true, "{claude:#}");
    assert_eq!(claude["version"], "2.1.0 (Claude Code)");
    assert_eq!(claude["path"], bin.join("claude").display().to_string());
    assert_eq!(claude["min_version"], "2.0.0");

    let codex = by("codex");
    assert_eq!(
        (&codex["found"], &codex["usable"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert_eq!(codex["version"], "codex-cli 0.5.0");
    assert!(
        codex["problem"]
            .as_str()
            .unwrap()
            .contains("below the minimum 0.100.0"),
        "{codex:#}"
    );

    let opencode = by("opencode");
    assert_eq!(opencode["found"], false);
    assert!(
        opencode["problem"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/opencode"),
        "{opencode:#}"
    );

    let gemini = by("gemini");
    assert_eq!(
        (&gemini["found"], &gemini["usable"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert!(
        gemini["problem"].as_str().unwrap().contains("boom"),
        "{gemini:#}"
    );

    let custom = by("mine");
    assert_eq!(custom["custom"], true);
    assert_eq!(custom["usable"], true, "{custom:#}");
    assert_eq!(custom["version"], "mine 4.5.6");
    let ghost = by("ghost");
    assert_eq!(ghost["found"], false);
    assert!(
        ghost["problem"].as_str().unwrap().contains("ghost-agent"),
        "{ghost:#}"
    );

    // The table: a line per provider, then why the others are not offered.
    let out = detect(root, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("PROVIDER") && lines[0].contains("VERSION"),
        "{text}"
    );
    let line_of = |p: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(p))
            .unwrap_or_else(|| panic!("no line for {p}:\n{text}"))
            .to_string()
    };
    assert!(
        line_of("claude").contains("usable") && line_of("claude").contains("2.1.0"),
        "{text}"
    );
    assert!(line_of("codex").contains("unusable"), "{text}");
    assert!(line_of("opencode").contains("not found"), "{text}");
    assert!(
        text.contains("Not offered as runtimes:") && text.contains("  gemini: "),
        "{text}"
    );
}
