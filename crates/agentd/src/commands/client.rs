//! The HTTP client of the user commands: where the server, token and workspace come
//! from (flags > environment > the context file > defaults), one request helper that
//! turns the server's answers into [`CliError`]s people can act on, and output.

use agentd_proto::ErrorBody;
use anyhow::Context as _;
use serde_json::Value;

use super::context;
use crate::error::{CliError, Kind};

/// The default server URL when neither a flag, the environment nor the context names one.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8080";

/// Flags every client command takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClientArgs {
    /// Server URL, e.g. `http://127.0.0.1:8080` [default: the context's, else
    /// http://127.0.0.1:8080].
    #[arg(long, global = true, env = "AGENTD_SERVER_URL")]
    pub server_url: Option<String>,
    /// API token (a member token, or an agent's task token) [default: the context's].
    #[arg(long, global = true, env = "AGENTD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON (for scripts) instead of text; errors become one JSON object on stderr.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Where a setting came from (`agentd context show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    Context,
    Default,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "environment",
            Source::Context => "context file",
            Source::Default => "default",
        }
    }
}

/// A flag-or-env value's source: the environment when it equals the variable's value.
pub fn source_of(value: &str, env: &str) -> Source {
    if std::env::var(env).is_ok_and(|v| v == value) {
        Source::Env
    } else {
        Source::Flag
    }
}

/// The settings of one invocation after precedence.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server_url: String,
    pub server_source: Source,
    pub token: Option<String>,
    pub token_source: Source,
    /// The context's workspace, when the context applies to this server.
    pub context_workspace: Option<String>,
    /// The context's server when it holds a token for another server than this one.
    pub context_elsewhere: Option<String>,
}

/// Applies precedence. The context's token and workspace are used only with the
/// context's server: a token is never sent to another server than the one it came with.
pub fn settings(args: &ClientArgs) -> anyhow::Result<Settings> {
    let ctx = context::load()?;
    let (server_url, server_source) = match &args.server_url {
        Some(u) if !u.trim().is_empty() => {
            (u.trim().to_string(), source_of(u, "AGENTD_SERVER_URL"))
        }
        _ => match &ctx.server_url {
            Some(u) => (u.clone(), Source::Context),
            None => (DEFAULT_SERVER_URL.to_string(), Source::Default),
        },
    };
    let same_server = ctx
        .server_url
        .as_deref()
        .is_none_or(|u| same_url(u, &server_url));
    let (token, token_source) = match args.token.clone().filter(|t| !t.trim().is_empty()) {
        Some(t) => {
            let src = source_of(&t, "AGENTD_TOKEN");
            (Some(t.trim().to_string()), src)
        }
        None => match ctx.token.clone().filter(|_| same_server) {
            Some(t) => (Some(t), Source::Context),
            None => (None, Source::Default),
        },
    };
    let context_workspace = ctx.workspace.clone().filter(|_| same_server);
    let context_elsewhere = ctx
        .server_url
        .clone()
        .filter(|_| !same_server && ctx.token.is_some());
    Ok(Settings {
        server_url,
        server_source,
        token,
        token_source,
        context_workspace,
        context_elsewhere,
    })
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Checks a server URL has an http(s) scheme and a host.
pub fn check_server_url(url: &str) -> anyhow::Result<reqwest::Url> {
    let bad = |why: String| {
        CliError::new(Kind::Other, format!("invalid server URL {url:?}: {why}"))
            .code("invalid_server_url")
            .hint("pass --server-url, set AGENTD_SERVER_URL, or `agentd context set --server-url URL`")
    };
    if !url.contains("://") {
        return Err(bad(format!("add the scheme, e.g. http://{url}")).into());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| anyhow::Error::from(bad(e.to_string())))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "the scheme is http or https, not {}",
            parsed.scheme()
        ))
        .into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()).into());
    }
    Ok(parsed)
}

/// `s` percent-encoded for one path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct Client {
    http: reqwest::Client,
    pub base: String,
    token: String,
    pub json: bool,
    pub settings: Settings,
}

impl Client {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let settings = settings(args)?;
        Client::with_settings(settings, args.json)
    }

    pub fn with_settings(settings: Settings, json: bool) -> anyhow::Result<Client> {
        check_server_url(&settings.server_url)?;
        let token = settings.token.clone().ok_or_else(|| {
            let message = match &settings.context_elsewhere {
                Some(other) => format!(
                    "no token for {}: the token saved in {} is for {other}",
                    settings.server_url,
                    context::path_text()
                ),
                None => "no token: the CLI does not know who you are".to_string(),
            };
            CliError::new(Kind::Auth, message)
                .code("no_token")
                .hint(format!(
                    "run `agentd up` (it saves a token in {}), pass --token, set AGENTD_TOKEN, or \
                     `agentd context set --token TOKEN`",
                    context::path_text()
                ))
        })?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Client {
            http,
            base: settings.server_url.trim_end_matches('/').to_string(),
            token,
            json,
            settings,
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
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Err(self.unreachable(&method, path, &e).into()),
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            return Err(self.refused(&method, path, status, &value).into());
        }
        Ok(value)
    }

    fn unreachable(&self, method: &reqwest::Method, path: &str, e: &reqwest::Error) -> CliError {
        let mut cause = String::new();
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(s) = src {
            cause = s.to_string();
            src = s.source();
        }
        let what = if e.is_timeout() {
            format!("the server at {} did not answer in time", self.base)
        } else {
            format!(
                "cannot reach the server at {} — is it running? (agentd up / agentd server)",
                self.base
            )
        };
        let mut err = CliError::new(Kind::Unreachable, what)
            .code("unreachable")
            .hint(match self.settings.server_source {
                Source::Default => "no server URL is set: pass --server-url, set \
                                    AGENTD_SERVER_URL, or start `agentd up`, which saves it"
                    .to_string(),
                s => format!("the server URL came from the {}", s.describe()),
            });
        err.detail = Some(format!(
            "{method} {path}: {e}{}",
            if cause.is_empty() {
                String::new()
            } else {
                format!(" ({cause})")
            }
        ));
        err
    }

    fn refused(
        &self,
        method: &reqwest::Method,
        path: &str,
        status: reqwest::StatusCode,
        value: &Value,
    ) -> CliError {
        let body: ErrorBody = serde_json::from_value(value.clone()).unwrap_or_else(|_| ErrorBody {
            error: match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                v => v.to_string(),
            },
            ..ErrorBody::default()
        });
        let words = if body.error.trim().is_empty() {
            status.canonical_reason().unwrap_or("error").to_lowercase()
        } else {
            // Not agentd's answer (a proxy's HTML page, …): its start is enough.
            let one_line = body.error.split_whitespace().collect::<Vec<_>>().join(" ");
            match one_line.char_indices().nth(300) {
                Some((i, _)) => format!("{}…", &one_line[..i]),
                None => one_line,
            }
        };
        let (kind, message, hint) = match status.as_u16() {
            401 => (
                Kind::Auth,
                format!("the token was refused: {words} (it is invalid, expired or revoked)"),
                Some(format!(
                    "get a new one: `agentd up` saves a fresh token in {}, or ask an admin for \
                     `agentd token create --workspace W`",
                    context::path_text()
                )),
            ),
            403 => (
                Kind::Auth,
                format!("not allowed: {words}"),
                Some("this token may not do that; use a member token of the workspace".into()),
            ),
            404 => (Kind::NotFound, words.clone(), None),
            409 if body.code.as_deref() == Some(agentd_proto::ERROR_AMBIGUOUS) => (
                Kind::Ambiguous,
                words.clone(),
                Some("use more characters of the id, the full id, or a key/name".into()),
            ),
            409 => (Kind::Refused, words.clone(), None),
            s if s >= 500 => (
                Kind::Unreachable,
                format!("the server failed: {words}"),
                Some("try again; if it persists, the server's log says why".into()),
            ),
            _ => (Kind::Other, words.clone(), None),
        };
        let mut err = CliError::new(kind, message);
        err.hint = hint;
        err.code = body.code.clone();
        err.status = Some(status.as_u16());
        err.matches = body.matches.clone();
        err.detail = Some(format!("{method} {path} → {status}: {words}"));
        err
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

    /// The workspace a command works in: `flag` (`--workspace` or `AGENTD_WORKSPACE`),
    /// else the context's, else the only one the token sees; else an error listing them.
    pub async fn workspace(&self, flag: Option<String>) -> anyhow::Result<String> {
        // Commands whose flag has no `env` (token create's repeatable --workspace) still
        // honour AGENTD_WORKSPACE.
        let env = std::env::var("AGENTD_WORKSPACE").ok();
        if let Some(w) = flag.or(env).filter(|w| !w.trim().is_empty()) {
            return Ok(w.trim().to_string());
        }
        if let Some(w) = &self.settings.context_workspace {
            return Ok(w.clone());
        }
        let list = self.get("/api/v1/workspaces").await?;
        let list = list.as_array().cloned().unwrap_or_default();
        match list.as_slice() {
            [only] => Ok(s(only, "id")),
            [] => Err(
                CliError::new(Kind::NotFound, "this token sees no workspace")
                    .code("no_workspace")
                    .hint("create one: agentd workspace create NAME")
                    .into(),
            ),
            many => {
                let mut err = CliError::new(
                    Kind::Ambiguous,
                    format!(
                        "which workspace? the token sees {} and none is chosen:",
                        many.len()
                    ),
                )
                .code("workspace_required")
                .hint(
                    "pick one with --workspace KEY, export AGENTD_WORKSPACE=KEY, or \
                     `agentd context set --workspace KEY`",
                );
                err.matches = many
                    .iter()
                    .map(|w| agentd_proto::api::RefMatch {
                        id: s(w, "key"),
                        label: s(w, "name"),
                    })
                    .collect();
                Err(err.into())
            }
        }
    }

    /// Prints `v` as JSON with `--json`, else the text `human` renders.
    pub fn print(&self, v: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            crate::outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            let text = human(v);
            if !text.is_empty() {
                crate::outln!("{}", text.trim_end_matches('\n'));
            }
        }
    }
}

/// What a reference names, for errors: `("issue", "AGD-99")`.
pub type Ref<'a> = (&'a str, &'a str);

/// Turns a 404 or an ambiguous 409 about one of `refs` into words naming it.
pub trait About<T> {
    fn about(self, refs: &[Ref<'_>]) -> anyhow::Result<T>;
}

impl<T> About<T> for anyhow::Result<T> {
    fn about(self, refs: &[Ref<'_>]) -> anyhow::Result<T> {
        self.map_err(|e| match e.downcast::<CliError>() {
            Ok(c) => explain(c, refs).into(),
            Err(e) => e,
        })
    }
}

fn list_hint(kind: &str) -> String {
    match kind {
        "task" => "list an issue's tasks: agentd task list --issue ISSUE".into(),
        "issue" => "list issues: agentd issue list".into(),
        k => format!("list {k}s: agentd {k} list"),
    }
}

fn explain(mut c: CliError, refs: &[Ref<'_>]) -> CliError {
    let server = c.message.to_lowercase();
    let pick = || {
        refs.iter()
            .find(|(_, r)| !r.is_empty() && server.contains(&r.to_lowercase()))
            .or_else(|| refs.iter().find(|(k, _)| server.contains(*k)))
            .or(refs.first())
            .copied()
    };
    match (c.kind, pick()) {
        (Kind::NotFound, Some((kind, r))) => {
            // Only a not-found of the object itself: "no diff" is not "no task".
            let about_it = server.contains(kind)
                && (server.contains("not found")
                    || server.contains("no ")
                    || server.contains("match"));
            if about_it {
                c.message = format!("no {kind} matches {r:?}");
                c.hint = Some(list_hint(kind));
            }
        }
        (Kind::Ambiguous, Some((kind, r))) => {
            c.message = format!("{r:?} matches more than one {kind}:");
            c.hint = Some(format!(
                "use more characters, the full id, or a {}",
                match kind {
                    "issue" => "key like AGD-12",
                    "task" => "full id",
                    _ => "unique name",
                }
            ));
        }
        _ => {}
    }
    c
}

/// `v[key]` as text ("" when absent or null).
pub fn s(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: Kind, message: &str) -> CliError {
        CliError::new(kind, message)
    }

    #[test]
    fn a_not_found_of_the_object_names_the_reference() {
        let e = explain(
            err(Kind::NotFound, "issue not found"),
            &[("issue", "AGD-99")],
        );
        assert_eq!(e.message, "no issue matches \"AGD-99\"");
        assert_eq!(e.hint.as_deref(), Some("list issues: agentd issue list"));
        // The body reference the server names wins over the path's.
        let e = explain(
            err(Kind::NotFound, "agent not found"),
            &[("workspace", "AGD"), ("agent", "bob")],
        );
        assert_eq!(e.message, "no agent matches \"bob\"");
        // Another 404 keeps the server's words: "no diff" is not "no task".
        let e = explain(err(Kind::NotFound, "no diff"), &[("task", "1a2b")]);
        assert_eq!(e.message, "no diff");
    }

    #[test]
    fn an_ambiguity_names_the_reference_and_how_to_narrow_it() {
        let e = explain(
            err(
                Kind::Ambiguous,
                "\"1a2b\" matches 2 tasks; use more characters of the id",
            ),
            &[("task", "1a2b")],
        );
        assert_eq!(e.message, "\"1a2b\" matches more than one task:");
        assert!(e.hint.unwrap().contains("more characters"));
    }

    #[test]
    fn server_urls_need_a_scheme_and_a_host() {
        let msg = |u: &str| format!("{}", check_server_url(u).unwrap_err());
        assert_eq!(
            msg("localhost:8080"),
            "invalid server URL \"localhost:8080\": add the scheme, e.g. http://localhost:8080"
        );
        assert!(msg("ftp://x").contains("the scheme is http or https"));
        assert!(check_server_url("https://agentd.example.com/").is_ok());
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(enc("AGD-12"), "AGD-12");
        assert_eq!(enc("Claude (box)"), "Claude%20%28box%29");
        assert_eq!(enc("a/b?c"), "a%2Fb%3Fc");
    }
}
