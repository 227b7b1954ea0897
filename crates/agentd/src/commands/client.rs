//! The HTTP client of the user commands: flags, one request helper, error reporting
//! (`<status>: <error>` from the server's `{"error"}` body) and `--json` output.

use anyhow::{Context, bail};
use serde_json::Value;

/// Flags every client command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Server URL.
    #[arg(
        long,
        global = true,
        env = "AGENTD_SERVER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server_url: String,
    /// API token (a member token, or an agent's task token).
    #[arg(long, global = true, env = "AGENTD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON (for scripts) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    pub json: bool,
}

impl Client {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let token = args
            .token
            .clone()
            .filter(|t| !t.trim().is_empty())
            .context("no token: pass --token or set AGENTD_TOKEN")?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Client {
            http,
            base: args.server_url.trim_end_matches('/').to_string(),
            token,
            json: args.json,
        })
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            let msg = value["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            bail!("{method} {path}: {status}: {msg}");
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Prints `v` as JSON with `--json`, else the text `human` renders.
    pub fn print(&self, v: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            let text = human(v);
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
}

/// `v[key]` as text ("" when absent or null).
pub fn s(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
