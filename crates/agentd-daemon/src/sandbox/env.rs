//! The agent's environment, built from allow-lists: never the daemon's whole environment.
//!
//! From the daemon's own environment an agent gets only: `PATH`, locale, `TERM`, `TZ`,
//! `TMPDIR`, CA-bundle paths, proxy variables (open network only), the documented
//! variables of its provider (API keys, base URLs, the CLI's switches) and the keys the
//! operator lists in `pass_env`. `AGENTD_*` never passes: the daemon's token stays with
//! the daemon; the task pipeline sets the task's own `AGENTD_*` (with the task token).
//!
//! An agent definition's `custom_env` (from the server) cannot set keys that change what
//! runs, where the agent writes, whose identity it uses or where its traffic and API
//! keys go (base URLs, proxies, CA bundles, `GIT_*`, `XDG_*`, …) unless the operator
//! allows the key in `custom_env_allow`.

use std::collections::BTreeMap;
use std::ffi::OsString;

/// Keys passed from the daemon's environment to every agent.
const BASE_KEYS: &[&str] = &[
    "PATH",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "TZ",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
];

/// Proxy variables, passed only when the agent uses the host's network as it is.
pub const PROXY_KEYS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
];

/// Each provider's documented variables, by prefix (`X_` matches `X_ANYTHING`) or
/// exactly: the provider table's [`env_keys`](crate::backend::ProviderInfo::env_keys).
fn provider_keys(provider: &str) -> &'static [&'static str] {
    crate::backend::provider::provider(provider).map_or(&[], |p| p.env_keys)
}

fn matches(key: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| {
        if p.ends_with('_') {
            key.starts_with(p)
        } else {
            key == *p
        }
    })
}

/// What passes from the daemon's environment `inherited` to an agent of `provider`.
/// Keys or values that are not UTF-8 are dropped.
pub fn inherited(
    provider: &str,
    open_network: bool,
    pass_env: &[String],
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(String, String)> {
    inherited
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| {
            !k.starts_with("AGENTD_")
                && (BASE_KEYS.contains(&k.as_str())
                    || k.starts_with("LC_")
                    || (open_network && PROXY_KEYS.contains(&k.as_str()))
                    || matches(k, provider_keys(provider))
                    || pass_env.iter().any(|p| p == k))
        })
        .collect()
}

/// Keys `custom_env` may never set, whatever the config says: they change what runs or
/// whose identity the agent has.
const NEVER: &[&str] = &[
    "PATH", "HOME", "SHELL", "USER", "LOGNAME", "IFS", "BASH_ENV", "ENV", "TMPDIR",
];
const NEVER_PREFIXES: &[&str] = &["LD_", "DYLD_", "AGENTD_", "MULTICA_"];

/// Keys `custom_env` may set only when the operator allows them: they redirect where
/// the agent's traffic, keys, files or interpreters go.
const REDIRECTING: &[&str] = &[
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYLIB",
    "RUBYOPT",
    "PROMPT_COMMAND",
    "CLAUDE_CONFIG_DIR",
    "CODEX_HOME",
    "PI_CODING_AGENT_DIR",
    "CONTINUE_GLOBAL_DIR",
];
const REDIRECTING_PREFIXES: &[&str] = &[
    "GIT_",
    "XDG_",
    "OPENCODE_CONFIG",
    "KILO_CONFIG",
    "npm_config_",
    "NPM_CONFIG_",
];
const REDIRECTING_SUFFIXES: &[&str] = &["_BASE_URL", "_API_BASE", "_ENDPOINT", "_PROXY", "_HOST"];

/// Why a `custom_env` key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub key: String,
    pub why: &'static str,
}

/// Splits an agent's `custom_env` into what it may set and what is refused (and why).
pub fn custom(
    custom: &BTreeMap<String, String>,
    allow: &[String],
) -> (Vec<(String, String)>, Vec<Refused>) {
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for (k, v) in custom {
        let upper = k.to_ascii_uppercase();
        let why = if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            Some("not a valid environment variable")
        } else if NEVER.contains(&k.as_str()) || NEVER_PREFIXES.iter().any(|p| k.starts_with(p)) {
            Some("it would change what runs or whose identity the agent has")
        } else if allow.iter().any(|a| a == k) {
            None
        } else if REDIRECTING.contains(&k.as_str())
            || REDIRECTING_PREFIXES.iter().any(|p| k.starts_with(p))
            || REDIRECTING_SUFFIXES.iter().any(|s| upper.ends_with(s))
            || upper == "HTTP_PROXY"
            || upper == "HTTPS_PROXY"
            || upper == "ALL_PROXY"
            || upper == "NO_PROXY"
        {
            Some(
                "it redirects the agent's traffic, files or interpreter (allow it with custom_env_allow in the daemon config)",
            )
        } else {
            None
        };
        match why {
            Some(why) => refused.push(Refused {
                key: k.clone(),
                why,
            }),
            None => ok.push((k.clone(), v.clone())),
        }
    }
    (ok, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn only_allow_listed_keys_pass_from_the_daemon() {
        let daemon = os(&[
            ("PATH", "/usr/bin"),
            ("LC_ALL", "C.UTF-8"),
            ("AGENTD_TOKEN", "agd_secret"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("ANTHROPIC_API_KEY", "k"),
            ("OPENAI_API_KEY", "o"),
            ("HTTPS_PROXY", "http://corp:3128"),
            ("MY_KEY", "m"),
        ]);
        let got = inherited("claude", false, &["MY_KEY".into()], daemon.clone());
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["PATH", "LC_ALL", "ANTHROPIC_API_KEY", "MY_KEY"]);
        let open = inherited("codex", true, &[], daemon);
        let keys: Vec<&str> = open.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["PATH", "LC_ALL", "OPENAI_API_KEY", "HTTPS_PROXY"]);
    }

    #[test]
    fn custom_env_cannot_redirect_unless_allowed() {
        let env: BTreeMap<String, String> = [
            ("ANTHROPIC_BASE_URL", "https://evil"),
            ("https_proxy", "http://evil"),
            ("GIT_SSH_COMMAND", "sh"),
            ("XDG_CONFIG_HOME", "/x"),
            ("LD_PRELOAD", "/x.so"),
            ("AGENTD_TOKEN", "t"),
            ("PATH", "/evil"),
            ("FOO", "bar"),
            ("OPENAI_BASE_URL", "http://ok"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (ok, refused) = custom(&env, &["OPENAI_BASE_URL".into(), "PATH".into()]);
        assert_eq!(
            ok,
            [
                ("FOO".to_string(), "bar".to_string()),
                ("OPENAI_BASE_URL".to_string(), "http://ok".to_string())
            ]
        );
        let refused: Vec<&str> = refused.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            refused,
            [
                "AGENTD_TOKEN",
                "ANTHROPIC_BASE_URL",
                "GIT_SSH_COMMAND",
                "LD_PRELOAD",
                "PATH",
                "XDG_CONFIG_HOME",
                "https_proxy"
            ]
        );
    }
}
