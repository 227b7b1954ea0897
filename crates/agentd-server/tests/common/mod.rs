//! Test support: start the real server on 127.0.0.1:0 with a temp data dir and drive it
//! over HTTP and WebSocket.
//!
//! The backend comes from `AGENTD_TEST_DATABASE`: `sqlite` (the default: `agentd.db` in
//! the data dir) or `postgres` (a fresh database of the binary's throwaway cluster,
//! [`agentd_testkit::pg::PgCluster`], per data dir: a restart in the same dir finds the
//! same database). `scripts/test.sh` runs this suite once per backend.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use agentd_server::{App, ServerConfig};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

pub struct Srv {
    /// The running server's state: its clock and store, for `sweep`.
    pub app: Arc<App>,
    pub url: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<Result<(), agentd_server::ServerError>>,
    pub http: reqwest::Client,
}

pub async fn start() -> Srv {
    start_in(tempfile::tempdir().unwrap(), |_| {}).await
}

/// Whether this run tests PostgreSQL (`AGENTD_TEST_DATABASE=postgres`).
pub fn on_postgres() -> bool {
    match std::env::var("AGENTD_TEST_DATABASE").as_deref() {
        Ok("postgres") | Ok("postgresql") | Ok("pg") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("AGENTD_TEST_DATABASE={other}: expected sqlite or postgres"),
    }
}

/// The throwaway cluster of this test binary (PostgreSQL runs only). Without the
/// binaries the whole binary skips: it prints why and exits 0 (CI installs them).
pub fn cluster() -> &'static agentd_testkit::pg::PgCluster {
    match agentd_testkit::pg::PgCluster::shared() {
        Some(c) => c,
        None => {
            println!(
                "SKIP: {} (every test of this binary)",
                agentd_testkit::pg::SKIP_HINT
            );
            std::process::exit(0);
        }
    }
}

/// The database URL of the server of data dir `dir`: `None` on SQLite; on PostgreSQL a
/// fresh database the first time, remembered in `dir/test-database-url`.
pub fn database_url(dir: &std::path::Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let file = dir.join("test-database-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return Some(url.trim().to_string());
    }
    let url = cluster().create_database().unwrap();
    std::fs::write(&file, &url).unwrap();
    Some(url)
}

/// The config of a server in `dir` on this run's backend.
pub fn config(dir: &std::path::Path) -> ServerConfig {
    let mut config = ServerConfig::new(dir);
    config.database_url = database_url(dir);
    config
}

/// `agentd_server::bootstrap` on this run's backend.
pub async fn bootstrap(dir: &std::path::Path) -> String {
    agentd_server::bootstrap_config(&config(dir)).await.unwrap()
}

/// Prints why a test that only means something on SQLite does nothing on PostgreSQL;
/// true when it should return.
pub fn sqlite_only(why: &str) -> bool {
    if on_postgres() {
        println!("SKIP on postgres: {why}");
        return true;
    }
    false
}

pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut ServerConfig)) -> Srv {
    let mut config = config(dir.path());
    tweak(&mut config);
    let admin = agentd_server::bootstrap_config(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let app = agentd_server::open(config, shutdown.clone()).await.unwrap();
    let handle = tokio::spawn(agentd_server::run(app.clone(), listener));
    Srv {
        app,
        url,
        admin,
        dir,
        shutdown,
        handle,
        http: reqwest::Client::new(),
    }
}

impl Srv {
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
        self.dir
    }

    /// The lease (`offline_after`) in milliseconds.
    pub fn lease_ms(&self) -> i64 {
        self.app.config.offline_after.as_millis() as i64
    }

    /// Moves the server's clock forward by `ms` (a lease passes without waiting for it).
    pub fn advance(&self, ms: i64) {
        self.app.clock.shift(ms);
    }

    /// One sweep now, on the server's (possibly advanced) clock.
    pub async fn sweep(&self) {
        agentd_server::sweeper::sweep(&self.app, self.app.now())
            .await
            .unwrap();
    }

    /// The task as users see it (`GET /api/v1/tasks/{id}`).
    pub async fn task(&self, token: &str, id: &str) -> Value {
        let (s, v) = self.get(token, &format!("/api/v1/tasks/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Claims the fixture runtime's next task and starts it; returns its id.
    pub async fn claim_and_start(&self, fx: &Fx) -> String {
        let task = self.claim(fx, None).await;
        let id = task["id"].as_str().expect("a task to claim").to_string();
        let (s, v) = self
            .post(
                &fx.daemon,
                &format!("/api/daemon/tasks/{id}/start"),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["task_status"], "running", "{v}");
        id
    }

    /// An HTTP heartbeat of `runtime` listing `active` (`None`: the field is absent).
    pub async fn heartbeat(&self, token: &str, runtime: &str, active: Option<&[&str]>) {
        let mut body = json!({"runtime_id": runtime});
        if let Some(ids) = active {
            body["active_task_ids"] = json!(ids);
        }
        let (s, v) = self.post(token, "/api/daemon/heartbeat", body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    pub async fn req(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{}", self.url, path))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    /// A plain `GET` without a token (static assets, fallbacks).
    pub async fn get_anonymous(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.req(reqwest::Method::GET, token, path, None).await
    }
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(reqwest::Method::POST, token, path, Some(body))
            .await
    }
    pub async fn patch(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(reqwest::Method::PATCH, token, path, Some(body))
            .await
    }
    pub async fn delete(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.req(reqwest::Method::DELETE, token, path, None).await
    }

    /// A token of `kind` (`member` or `daemon`) for `ws`, minted by the admin.
    pub async fn mint(&self, kind: &str, ws: &str) -> String {
        self.mint_with_id(kind, ws).await.1
    }

    /// Like [`Srv::mint`]: `(token id, token)`.
    pub async fn mint_with_id(&self, kind: &str, ws: &str) -> (String, String) {
        let (s, tok) = self
            .post(
                &self.admin,
                "/api/v1/tokens",
                json!({"name": kind, "kind": kind, "workspace_ids": [ws]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{tok}");
        assert_eq!(tok["kind"], kind, "{tok}");
        (
            tok["id"].as_str().unwrap().to_string(),
            tok["token"].as_str().unwrap().to_string(),
        )
    }

    /// A workspace, a member token and a daemon token scoped to it, one `claude` runtime
    /// of daemon `d1` registered with the daemon token, and an agent on it.
    pub async fn fixture(&self, name: &str) -> Fx {
        let (s, ws) = self
            .post(&self.admin, "/api/v1/workspaces", json!({"name": name}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{ws}");
        let ws = ws["id"].as_str().unwrap().to_string();
        let token = self.mint("member", &ws).await;
        let (daemon_token_id, daemon) = self.mint_with_id("daemon", &ws).await;
        let reg = self.register(&daemon, &ws, "d1", &["claude"]).await;
        let runtime = reg["runtimes"][0]["id"].as_str().unwrap().to_string();
        let (s, agent) = self
            .post(
                &token,
                &format!("/api/v1/workspaces/{ws}/agents"),
                json!({"name": "bot", "runtime_id": runtime, "instructions": "be nice"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{agent}");
        Fx {
            ws,
            token,
            daemon,
            daemon_token_id,
            runtime,
            agent: agent["id"].as_str().unwrap().to_string(),
        }
    }

    pub async fn register(&self, token: &str, ws: &str, daemon: &str, providers: &[&str]) -> Value {
        let runtimes: Vec<Value> = providers
            .iter()
            .map(|p| json!({"name": format!("{p} (box)"), "type": p, "version": "1.0", "status": "online"}))
            .collect();
        let (s, v) = self
            .post(
                token,
                "/api/daemon/register",
                json!({"workspace_id": ws, "daemon_id": daemon, "device_name": "box", "runtimes": runtimes}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Creates an issue assigned to the fixture's agent; returns the issue id.
    pub async fn assigned_issue(&self, fx: &Fx, title: &str) -> String {
        let (s, v) = self
            .post(
                &fx.token,
                &format!("/api/v1/workspaces/{}/issues", fx.ws),
                json!({"title": title, "description": "do it", "assignee_agent_id": fx.agent}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn claim(&self, fx: &Fx, key: Option<&str>) -> Value {
        let mut r = self
            .http
            .post(format!(
                "{}/api/daemon/runtimes/{}/tasks/claim",
                self.url, fx.runtime
            ))
            .bearer_auth(&fx.daemon)
            .json(&json!({}));
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json::<Value>().await.unwrap()["task"].clone()
    }

    pub async fn ws(&self, token: &str, runtime_ids: &[&str]) -> Ws {
        let url = format!(
            "{}/api/daemon/ws?runtime_ids={}",
            self.url.replace("http://", "ws://"),
            runtime_ids.join(",")
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        ws
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame of `kind` within `within`, skipping others.
pub async fn next_frame(ws: &mut Ws, kind: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame within {within:?}"))
            .expect("ws closed")
            .expect("ws error");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == kind {
                return v["payload"].clone();
            }
        }
    }
}

pub struct Fx {
    pub ws: String,
    /// A member token of the workspace (the user API).
    pub token: String,
    /// The daemon token that registered `runtime` (the daemon API).
    pub daemon: String,
    /// Its id (to revoke it).
    pub daemon_token_id: String,
    pub runtime: String,
    pub agent: String,
}

/// Polls `f` until it returns Some, at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A second connection to the database of the server in data dir `dir` (SQLite or
/// PostgreSQL, as this run), for tests that check or change rows from outside.
pub enum Db {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Db {
    pub async fn open(dir: &std::path::Path) -> Db {
        match database_url(dir) {
            Some(url) => Db::Pg(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&url)
                    .await
                    .unwrap(),
            ),
            None => Db::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(
                        sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("agentd.db")),
                    )
                    .await
                    .unwrap(),
            ),
        }
    }

    /// Runs a statement (SQL that both engines accept).
    pub async fn execute(&self, sql: &'static str) {
        match self {
            Db::Sqlite(p) => drop(sqlx::query(sql).execute(p).await.unwrap()),
            Db::Pg(p) => drop(sqlx::query(sql).execute(p).await.unwrap()),
        }
    }

    /// The first column of every row, as text (`CAST(… AS TEXT)` where it is not).
    pub async fn strings(&self, sql: &'static str) -> Vec<String> {
        match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
            Db::Pg(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        }
    }

    /// A single integer (`SELECT COUNT(*) …`).
    pub async fn count(&self, sql: &'static str) -> i64 {
        match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Db::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    /// Every row of every table of the server's schema, in a stable text form.
    pub async fn snapshot(&self) -> String {
        use sqlx::Row;
        let mut out = String::new();
        match self {
            Db::Sqlite(pool) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name",
                )
                .fetch_all(pool)
                .await
                .expect("list tables");
                for t in tables {
                    let cols: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info($1)")
                        .bind(&t)
                        .fetch_all(pool)
                        .await
                        .expect("columns")
                        .iter()
                        .map(|r| r.get::<String, _>(0))
                        .collect();
                    let row = cols
                        .iter()
                        .map(|c| format!("quote(\"{c}\")"))
                        .collect::<Vec<_>>()
                        .join(" || '|' || ");
                    // Table and column names come from sqlite_master, not from input.
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT {row} FROM \"{t}\" ORDER BY 1"
                    )))
                    .fetch_all(pool)
                    .await
                    .expect("rows");
                    out.push_str(&format!("== {t}\n{}\n", rows.join("\n")));
                }
            }
            Db::Pg(pool) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = 'public' ORDER BY 1",
                )
                .fetch_all(pool)
                .await
                .expect("list tables");
                for t in tables {
                    // Table names come from the catalog, not from input.
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT row_to_json(x)::text FROM \"{t}\" x ORDER BY 1"
                    )))
                    .fetch_all(pool)
                    .await
                    .expect("rows");
                    out.push_str(&format!("== {t}\n{}\n", rows.join("\n")));
                }
            }
        }
        out
    }

    pub async fn close(self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Pg(p) => p.close().await,
        }
    }
}
