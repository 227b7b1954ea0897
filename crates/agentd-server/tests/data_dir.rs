//! The server's data on disk is the owner's alone (review L2): the data dir is 0700 and
//! the admin token, the database and its WAL and shared-memory files are 0600 — on a
//! fresh start and on a data dir an older version left readable.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::StatusCode;
use serde_json::json;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Starts the server in `data`, writes something (so the WAL exists) and returns the
/// modes of the dir and of every file the server keeps there, with the server running.
async fn modes_while_running(data: &Path) -> Vec<(String, u32)> {
    if common::on_postgres() {
        println!(
            "note: these tests check SQLite's files (agentd.db, -wal, -shm), so they run on \
             SQLite in the PostgreSQL run too; the admin-token file is the same on both"
        );
    }
    let admin = agentd_server::bootstrap(data).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(agentd_server::serve(
        listener,
        agentd_server::ServerConfig::new(data),
        shutdown.clone(),
    ));
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/v1/workspaces"))
        .bearer_auth(&admin)
        .json(&json!({"name": "w"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let mut out = vec![(".".to_string(), mode(data))];
    for name in ["admin-token", "agentd.db", "agentd.db-wal", "agentd.db-shm"] {
        out.push((name.to_string(), mode(&data.join(name))));
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();
    out
}

fn private() -> Vec<(String, u32)> {
    vec![
        (".".to_string(), 0o700),
        ("admin-token".to_string(), 0o600),
        ("agentd.db".to_string(), 0o600),
        ("agentd.db-wal".to_string(), 0o600),
        ("agentd.db-shm".to_string(), 0o600),
    ]
}

#[tokio::test]
async fn a_fresh_data_dir_and_its_secrets_are_owner_only() {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = root.path().join("nested").join("server");
    assert_eq!(modes_while_running(&data).await, private());
    assert_eq!(
        mode(&root.path().join("nested")),
        0o700,
        "a created parent too"
    );
}

#[tokio::test]
async fn an_older_readable_data_dir_is_made_owner_only() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("server");
    // A data dir as an older version left it: everything under the umask (0755/0644).
    modes_while_running(&data).await;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    assert_eq!(mode(&data.join("agentd.db")), 0o644);
    assert_eq!(modes_while_running(&data).await, private());
}
