//! `agentd server` on PostgreSQL and its maintenance subcommands, through the real
//! binary: `--database-url` that cannot be used exits non-zero with the cause (no
//! password printed), `migrate` says what it applied, `backup` writes a copy, and
//! `migrate-to` moves a SQLite server's data so the same tokens work on PostgreSQL
//! (docs/operations.md). Skips, saying why, only without PostgreSQL binaries.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use agentd_testkit::pg::{PgCluster, SKIP_HINT};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agentd");

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, db: Option<&str>) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args(["server", "--listen", "127.0.0.1:0", "--json", "--data-dir"])
        .arg(dir)
        .env_remove("AGENTD_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(url) = db {
        cmd.env("AGENTD_DATABASE_URL", url);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let database = v["database"].as_str().unwrap_or_default();
    match db {
        Some(_) => assert!(
            database.starts_with("PostgreSQL postgres://agentd:***@127.0.0.1:"),
            "{v}"
        ),
        None => assert!(
            database.starts_with("SQLite ") && database.ends_with("agentd.db"),
            "{v}"
        ),
    }
    Server {
        child,
        url: v["url"].as_str().unwrap().to_string(),
    }
}

fn agentd(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("AGENTD_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn cluster() -> Option<PgCluster> {
    if agentd_testkit::pg::pg_bin_dir().is_none() {
        println!("SKIP: {SKIP_HINT}");
        return None;
    }
    Some(PgCluster::start().unwrap())
}

#[tokio::test]
async fn a_database_url_that_cannot_be_used_exits_non_zero_with_the_cause() {
    let Some(pg) = cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = pg.create_database().unwrap();
    let wrong = url.replace(PgCluster::PASSWORD, "hunter2-wrong");
    let t0 = Instant::now();
    let out = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("AGENTD_DATABASE_URL", &wrong)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "no long retry for bad credentials"
    );
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}", pg.port())) && err.contains("as user agentd"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password is never printed: {err}"
    );
    let out = agentd(&[
        "server",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--database-url",
        "redis://x",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unsupported database URL"),
        "{err}"
    );
}

#[tokio::test]
async fn migrate_backup_and_migrate_to_through_the_binary() {
    let Some(pg) = cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let data_s = data.to_str().unwrap();
    let v = stdout_json(&agentd(&[
        "server",
        "migrate",
        "--data-dir",
        data_s,
        "--json",
    ]));
    // Every SQLite migration file applies (counted from the files, not a number here).
    let files = std::fs::read_dir(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../agentd-server/migrations/sqlite"),
    )
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "sql")
    })
    .count();
    assert!(files >= 12, "{files} migration files");
    assert_eq!(v["applied"].as_array().unwrap().len(), files, "{v}");
    let v = stdout_json(&agentd(&[
        "server",
        "migrate",
        "--data-dir",
        data_s,
        "--json",
    ]));
    assert_eq!(v["applied"], serde_json::json!([]), "{v}");

    // A SQLite server with a workspace, then a backup while it runs.
    let srv = start(&data, None);
    let admin = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let admin = admin.trim();
    let http = reqwest::Client::new();
    let ws: Value = http
        .post(format!("{}/api/v1/workspaces", srv.url))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "moving"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws_id = ws["id"].as_str().unwrap().to_string();
    let backup = dir.path().join("backup.db");
    let v = stdout_json(&agentd(&[
        "server",
        "backup",
        "--data-dir",
        data_s,
        "--to",
        backup.to_str().unwrap(),
        "--json",
    ]));
    assert!(v["bytes"].as_u64().unwrap() > 0, "{v}");
    drop(srv);

    let url = pg.create_database().unwrap();
    let v = stdout_json(&agentd(&[
        "server",
        "migrate-to",
        &url,
        "--data-dir",
        data_s,
        "--json",
    ]));
    assert_eq!(v["copied"]["workspaces"], 1, "{v}");
    assert_eq!(v["copied"]["api_tokens"], 1, "the admin token: {v}");
    // Into a database that now holds data: refused, naming it.
    let out = agentd(&["server", "migrate-to", &url, "--data-dir", data_s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not empty"), "{err}");
    assert!(!err.contains(PgCluster::PASSWORD), "{err}");

    let srv = start(&data, Some(&url));
    let got: Value = http
        .get(format!("{}/api/v1/workspaces/{ws_id}", srv.url))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "moving", "{got}");
    let ready = http.get(format!("{}/ready", srv.url)).send().await.unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::OK);
}
