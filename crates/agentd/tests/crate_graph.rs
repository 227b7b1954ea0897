//! The crate-dependency invariants of ARCHITECTURE.md, checked against `cargo metadata`
//! (so a new dependency that breaks one fails here, not in review):
//! - the daemon never depends on the server (it must work against Multica's server);
//! - `agentd-proto` depends on serde and serde_json only (no I/O, no other crate);
//! - only the binaries (`agentd`, `agentd-bench`) use `anyhow`; libraries return typed errors;
//! - `agentd-testkit` is only ever a dev-dependency.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// Normal (non-dev, non-build) dependencies of every workspace crate.
fn normal_deps() -> (BTreeMap<String, Vec<String>>, BTreeMap<String, Vec<String>>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let mut normal = BTreeMap::new();
    let mut dev = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name").to_string();
        let mut n = Vec::new();
        let mut d = Vec::new();
        for dep in p["dependencies"].as_array().expect("dependencies") {
            let dn = dep["name"].as_str().expect("dep name").to_string();
            match dep["kind"].as_str() {
                None => n.push(dn),
                Some("dev") => d.push(dn),
                Some(_) => {}
            }
        }
        normal.insert(name.clone(), n);
        dev.insert(name, d);
    }
    (normal, dev)
}

#[test]
fn crate_dependencies_keep_the_architecture_invariants() {
    let (normal, dev) = normal_deps();
    for c in ["agentd-proto", "agentd-daemon", "agentd-server", "agentd"] {
        assert!(
            normal.contains_key(c),
            "workspace crate {c} missing: {normal:?}"
        );
    }
    let daemon = &normal["agentd-daemon"];
    assert!(
        !daemon.iter().any(|d| d == "agentd-server"),
        "the daemon must never depend on the server: {daemon:?}"
    );
    let proto = &normal["agentd-proto"];
    assert!(
        proto.iter().all(|d| d == "serde" || d == "serde_json"),
        "agentd-proto may depend on serde and serde_json only: {proto:?}"
    );
    for (name, deps) in &normal {
        if deps.iter().any(|d| d == "anyhow") {
            assert!(
                name == "agentd" || name == "agentd-bench",
                "{name} uses anyhow; only the binaries may"
            );
        }
        assert!(
            !deps.iter().any(|d| d == "agentd-testkit") || name == "agentd-bench",
            "{name} depends on the dev-only testkit outside dev-dependencies"
        );
    }
    assert!(
        dev["agentd-daemon"].iter().any(|d| d == "agentd-testkit"),
        "the check reads dev-dependencies correctly"
    );
}
