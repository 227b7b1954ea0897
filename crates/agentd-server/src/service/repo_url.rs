//! Which repository URLs a workspace may hold (issue 11, review M3). Daemons clone them
//! with their own credentials (ssh keys, credential helpers), so a URL is a request to
//! fetch *as the daemon's user*: only remote transports are accepted by default.
//!
//! Accepted:
//! - `https://host[:port]/path` (a user name may precede the host; a password may not:
//!   a URL is shown to every member of the workspace);
//! - `ssh://[user@]host[:port]/path`;
//! - scp-like `[user@]host:path` (what `git clone git@github.com:org/repo` takes).
//!
//! Only with [`ServerConfig::allow_local_repos`](crate::ServerConfig) (`agentd server
//! --allow-local-repos`; `agentd up`, the single-user case, sets it): `file:///abs/path`,
//! an absolute path `/abs/path`, and plain `http://` (unencrypted, so refused on a shared
//! server).
//!
//! Always refused: whitespace or control characters anywhere, a leading `-` (git would
//! read it as an option), git's remote-helper syntax `transport::address` (`ext::` runs a
//! command, `fd::` reads a descriptor), a host or user starting with `-` (ssh option
//! injection), `git://` (unauthenticated), relative and `~` paths, any other scheme.

/// The longest URL accepted.
pub const MAX_LEN: usize = 2048;

/// Checks one repository URL (already trimmed). `Err` says what is wrong with it; the
/// caller names the URL.
pub fn check(url: &str, allow_local: bool) -> Result<(), String> {
    if url.is_empty() {
        return Err("it is empty".into());
    }
    if url.len() > MAX_LEN {
        return Err(format!("it is longer than {MAX_LEN} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters".into());
    }
    if url.starts_with('-') {
        return Err("it starts with '-' (git would read it as an option)".into());
    }
    if let Some((transport, _)) = url.split_once("::")
        && !transport.is_empty()
        && !transport.contains('/')
        && transport
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(format!(
            "git's remote-helper syntax ({transport}::) is not allowed"
        ));
    }
    let local_only = |what: &str| {
        if allow_local {
            Ok(())
        } else {
            Err(format!(
                "{what} are allowed only when the server runs with --allow-local-repos"
            ))
        }
    };
    if let Some((scheme, rest)) = url.split_once("://") {
        return match scheme.to_ascii_lowercase().as_str() {
            "https" => web_url(rest),
            "http" => web_url(rest).and_then(|()| local_only("plain http:// URLs")),
            "ssh" => ssh_url(rest),
            "file" => match rest.strip_prefix('/') {
                Some(p) if !p.is_empty() => local_only("file:// URLs"),
                _ => Err("a file:// URL needs an absolute path (file:///path)".into()),
            },
            "git" => Err("git:// is unauthenticated; use https:// or ssh://".into()),
            _ => Err(format!(
                "the scheme {scheme:?} is not allowed (use https://, ssh:// or user@host:path)"
            )),
        };
    }
    if url.starts_with('/') {
        return local_only("local paths");
    }
    // scp-like: a ':' before any '/' (git's own rule for telling it from a path).
    let colon = url.find(':');
    let slash = url.find('/');
    match colon {
        Some(c) if slash.is_none_or(|s| c < s) => {
            let (authority, path) = (&url[..c], &url[c + 1..]);
            let host = user_and_host(authority)?;
            check_host(host)?;
            if path.is_empty() {
                return Err("it has no path after the ':'".into());
            }
            Ok(())
        }
        _ => Err(
            "it is not a repository URL (use https://host/path, ssh://host/path or user@host:path)"
                .into(),
        ),
    }
}

/// `[user@]host`: checks the user and returns the host.
fn user_and_host(authority: &str) -> Result<&str, String> {
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            if user.is_empty() {
                return Err("it has an empty user name before '@'".into());
            }
            if user.starts_with('-') {
                return Err("its user name starts with '-'".into());
            }
            if user.contains(':') {
                return Err(
                    "it holds a password (every member sees repository URLs; use the daemon's \
                     credential helper or ssh keys)"
                        .into(),
                );
            }
            Ok(host)
        }
        None => Ok(authority),
    }
}

/// A host name, IPv4 address or `[IPv6]` literal; never starting with `-`.
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("it has no host".into());
    }
    if host.starts_with('-') {
        return Err("its host starts with '-'".into());
    }
    let ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        }
        None => host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("its host {host:?} is not a host name"))
    }
}

/// `host[:port]`: checks both.
fn host_and_port(hostport: &str) -> Result<(), String> {
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(end) => (&hostport[..=end], hostport[end + 1..].strip_prefix(':')),
            None => return Err("its IPv6 host has no closing ']'".into()),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    check_host(host)?;
    if let Some(p) = port
        && !p.parse::<u16>().is_ok_and(|n| n != 0)
    {
        return Err(format!("its port {p:?} is not a port number"));
    }
    Ok(())
}

/// What follows `https://` or `http://`: `[user@]host[:port]/path`.
fn web_url(rest: &str) -> Result<(), String> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    host_and_port(user_and_host(authority)?)?;
    if path.is_empty() {
        return Err("it has no repository path after the host".into());
    }
    Ok(())
}

/// What follows `ssh://`: `[user@]host[:port]/path`.
fn ssh_url(rest: &str) -> Result<(), String> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    host_and_port(user_and_host(authority)?)?;
    if path.is_empty() {
        return Err("it has no repository path after the host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn remote_urls_are_accepted() {
        for url in [
            "https://github.com/org/repo.git",
            "https://github.com/org/repo",
            "https://git.example.com:8443/group/sub/repo.git",
            "https://oauth@git.example.com/repo",
            "HTTPS://github.com/org/repo",
            "https://[::1]:8443/repo",
            "ssh://git@github.com/org/repo.git",
            "ssh://github.com:2222/org/repo",
            "ssh://git@[2001:db8::1]:22/repo",
            "git@github.com:org/repo.git",
            "github.com:org/repo",
            "deploy_user@10.0.0.7:/srv/git/repo.git",
        ] {
            assert_eq!(check(url, false), Ok(()), "{url}");
        }
    }

    #[test]
    fn local_urls_need_the_option() {
        for url in [
            "file:///srv/git/repo.git",
            "/srv/git/repo.git",
            "http://localhost:3000/org/repo",
        ] {
            let err = check(url, false).unwrap_err();
            assert!(err.contains("--allow-local-repos"), "{url}: {err}");
            assert_eq!(check(url, true), Ok(()), "{url}");
        }
    }

    #[test]
    fn dangerous_or_malformed_urls_are_refused_even_with_the_option() {
        for (url, why) in [
            ("ext::sh -c touch% /tmp/pwned", "whitespace"),
            ("ext::sh", "remote-helper"),
            ("fd::17", "remote-helper"),
            ("git-remote-foo::bar", "remote-helper"),
            ("--upload-pack=touch /tmp/x", "whitespace"),
            ("--upload-pack=evil", "starts with '-'"),
            ("-oProxyCommand=evil:repo", "starts with '-'"),
            ("ssh://-oProxyCommand=evil/repo", "host starts with '-'"),
            (
                "ssh://-oProxyCommand=evil@host/repo",
                "user name starts with '-'",
            ),
            ("-user@host:repo", "starts with '-'"),
            ("x@-host:repo", "host starts with '-'"),
            ("https://github.com/org/repo\n", "control"),
            ("https://github.com/org/re po", "whitespace"),
            ("https://github.com/org/repo\u{7f}", "control"),
            ("https://user:hunter2@github.com/org/repo", "password"),
            ("https://github.com", "no repository path"),
            ("https:///org/repo", "no host"),
            ("https://github.com:99999/org/repo", "port"),
            ("https://git hub.com/org/repo", "whitespace"),
            ("https://gith%ub.com/org/repo", "not a host name"),
            ("ssh://host", "no repository path"),
            ("git://github.com/org/repo", "unauthenticated"),
            ("ftp://example.com/repo", "scheme"),
            ("file://relative/path", "absolute path"),
            ("file:///", "absolute path"),
            ("./repo", "not a repository URL"),
            ("repo", "not a repository URL"),
            ("~/src/repo", "not a repository URL"),
            ("host:", "no path"),
            (":path", "no host"),
            ("@host:path", "empty user"),
            ("", "empty"),
        ] {
            for allow_local in [false, true] {
                let err = check(url, allow_local)
                    .expect_err(&format!("{url:?} (allow_local {allow_local}) was accepted"));
                assert!(err.contains(why), "{url:?}: {err:?} does not say {why:?}");
            }
        }
        assert!(check(&format!("https://h/{}", "a".repeat(MAX_LEN)), true).is_err());
    }

    proptest! {
        /// Whatever the string, a URL with whitespace, a control character, a leading
        /// '-' or a remote-helper prefix is refused, with or without the option.
        #[test]
        fn nothing_git_could_misread_gets_through(
            prefix in "[a-z]{0,8}",
            bad in prop_oneof![
                Just(" ".to_string()), Just("\t".to_string()), Just("\n".to_string()),
                Just("\0".to_string()), Just("\u{1b}".to_string()),
            ],
            suffix in "[ -~]{0,16}",
            allow_local in any::<bool>(),
        ) {
            let url = format!("https://{prefix}{bad}{suffix}");
            prop_assert!(check(&url, allow_local).is_err());
            let dashed = format!("-{prefix}{suffix}");
            prop_assert!(check(&dashed, allow_local).is_err());
            let helper = format!("{}::{suffix}", if prefix.is_empty() { "ext" } else { &prefix });
            prop_assert!(check(&helper, allow_local).is_err());
        }

        /// Without the option, nothing accepted is local: no file://, no path, no http.
        #[test]
        fn without_the_option_nothing_local_is_accepted(s in "[ -~]{0,40}") {
            if check(&s, false).is_ok() {
                let lower = s.to_ascii_lowercase();
                prop_assert!(!lower.starts_with("file:") && !s.starts_with('/')
                    && !lower.starts_with("http://"), "{s:?} accepted");
                prop_assert!(lower.starts_with("https://") || lower.starts_with("ssh://")
                    || s.contains(':'), "{s:?} accepted");
            }
        }

        /// Well-formed remote URLs built from valid parts are accepted.
        #[test]
        fn well_formed_remote_urls_are_accepted(
            user in "[a-z][a-z0-9_]{0,8}",
            host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}",
            port in 1u16..,
            path in "[A-Za-z0-9_.-]{1,12}(/[A-Za-z0-9_.-]{1,12}){0,3}",
        ) {
            for url in [
                format!("https://{host}/{path}"),
                format!("https://{host}:{port}/{path}"),
                format!("ssh://{user}@{host}:{port}/{path}"),
                format!("{user}@{host}:{path}"),
            ] {
                prop_assert_eq!(check(&url, false), Ok(()), "{}", url);
            }
        }
    }
}
