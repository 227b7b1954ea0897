//! The daemon side of a sandbox's network allow-list: one filtering HTTP(S) proxy per task,
//! served on that task's Unix socket. It owns the host policy ([`Policy`]: patterns,
//! ports, loopback/private endpoints), the address classifier ([`blocked_range`]), and the
//! proxy itself ([`serve`]): `CONNECT host:port` and absolute-form `http://` requests only.
//!
//! Every request is checked twice: its name against the [`Policy`], then every address the
//! proxy itself resolved it to against [`blocked_range`] (loopback, private, link-local,
//! metadata, …) unless the exact `host:port` is a listed endpoint. The upstream is dialled
//! at a checked address, never looked up again (DNS rebinding). Relays have no idle
//! timeout (SSE streams run for minutes); only reading a request head is bounded
//! ([`MAX_HEAD`], [`Policy::head_timeout`]).
//!
//! A plain-HTTP request is forwarded with `Connection: close`, then bytes are relayed raw
//! both ways; anything the client pipelines after it goes to the same, already checked,
//! upstream address and nowhere else.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Most bytes of request line and headers the proxy reads before answering 431.
pub const MAX_HEAD: usize = 64 * 1024;
/// Default time allowed to read a request head; see [`Policy::with_head_timeout`].
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to resolve a host name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed to open one upstream connection (per address).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Ports allowed for a host pattern listed without one.
const DEFAULT_PORTS: [u16; 2] = [443, 80];

/// A bad allow-list entry; names the entry and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid allowed host {entry:?}: {reason}")]
    Host { entry: String, reason: String },
    #[error("invalid allowed endpoint {entry:?}: {reason} (expected host:port)")]
    Endpoint { entry: String, reason: String },
}

/// Why a request was refused. `Display` is the reason shown to the agent and logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("invalid host name")]
    InvalidHost,
    #[error("host is not in the allow-list")]
    NotListed,
    #[error("port {0} is not allowed for this host")]
    Port(u16),
    #[error("resolves to {addr}, a {range} address")]
    BlockedAddress { addr: IpAddr, range: &'static str },
    #[error("cannot resolve host: {0}")]
    Unresolvable(String),
}

/// One proxy decision, reported to `serve`'s `on_decision` for every CONNECT or request
/// that named a target. `host` is normalized (lowercase, no trailing dot, no brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        host: String,
        port: u16,
    },
    Denied {
        host: String,
        port: u16,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// A host name or a canonical IP literal.
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: subdomains only, never the apex.
    Suffix(String),
}

#[derive(Debug, Clone)]
struct HostRule {
    pattern: Pattern,
    /// `None`: [`DEFAULT_PORTS`].
    port: Option<u16>,
}

/// What a task's sandbox may reach. Built once per task from its runtime's allow-list.
#[derive(Debug, Clone)]
pub struct Policy {
    hosts: Vec<HostRule>,
    /// Exact (normalized host, port) pairs that may resolve to loopback/private addresses.
    endpoints: HashSet<(String, u16)>,
    head_timeout: Duration,
}

impl Policy {
    /// `hosts`: allowed host patterns: `example.com` (exact) or `*.example.com` (subdomains
    /// only), optionally with `:port` (`example.com:8443`); without a port, 443 and 80 are
    /// allowed. IP literals are accepted (`203.0.113.7`, `[2001:db8::1]:443`) but still go
    /// through the address checks.
    /// `endpoints`: exact `host:port` pairs allowed even though they resolve to
    /// loopback/private addresses (the agentd server, a local model API: `127.0.0.1:3000`).
    pub fn new(hosts: &[String], endpoints: &[String]) -> Result<Policy, PolicyError> {
        let mut rules = Vec::with_capacity(hosts.len());
        for entry in hosts {
            let bad = |reason: &str| PolicyError::Host {
                entry: entry.clone(),
                reason: reason.to_string(),
            };
            let (host, port) = split_host_port(entry.trim()).map_err(&bad)?;
            let port = match port {
                Some(p) => Some(parse_port(p).map_err(&bad)?),
                None => None,
            };
            let pattern = if let Some(suffix) = host.strip_prefix("*.") {
                let suffix =
                    normalize_host(suffix).ok_or_else(|| bad("invalid domain after `*.`"))?;
                if suffix.parse::<IpAddr>().is_ok()
                    || suffix
                        .rsplit('.')
                        .next()
                        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err(bad(
                        "a wildcard must be followed by a domain, not an address",
                    ));
                }
                Pattern::Suffix(format!(".{suffix}"))
            } else if host.contains('*') {
                return Err(bad("`*` is only allowed as a leading `*.` label"));
            } else {
                Pattern::Exact(normalize_host(host).ok_or_else(|| bad("invalid host name"))?)
            };
            rules.push(HostRule { pattern, port });
        }
        let mut eps = HashSet::with_capacity(endpoints.len());
        for entry in endpoints {
            let bad = |reason: &str| PolicyError::Endpoint {
                entry: entry.clone(),
                reason: reason.to_string(),
            };
            let (host, port) = split_host_port(entry.trim()).map_err(&bad)?;
            let port = parse_port(port.ok_or_else(|| bad("missing port"))?).map_err(&bad)?;
            if host.contains('*') {
                return Err(bad("wildcards are not allowed in endpoints"));
            }
            let host = normalize_host(host).ok_or_else(|| bad("invalid host name"))?;
            eps.insert((host, port));
        }
        Ok(Policy {
            hosts: rules,
            endpoints: eps,
            head_timeout: HEAD_TIMEOUT,
        })
    }

    /// The same policy with another limit on reading a request head (tests use a short one).
    pub fn with_head_timeout(mut self, timeout: Duration) -> Policy {
        self.head_timeout = timeout;
        self
    }

    /// How long a client may take to send its request head ([`HEAD_TIMEOUT`] by default).
    pub fn head_timeout(&self) -> Duration {
        self.head_timeout
    }

    /// Whether a request for `host:port` may proceed by name (the addresses it resolves to
    /// are checked later, by [`serve`]). `host` is lowercased, its trailing dot removed.
    pub fn check_name(&self, host: &str, port: u16) -> Result<(), Denial> {
        self.check(host, port).map(|_| ())
    }

    /// [`Policy::check_name`], returning the normalized host and whether it is an endpoint.
    fn check(&self, host: &str, port: u16) -> Result<(String, bool), Denial> {
        let host = normalize_host(host).ok_or(Denial::InvalidHost)?;
        if self.endpoints.contains(&(host.clone(), port)) {
            return Ok((host, true));
        }
        let mut name_matched = false;
        for rule in &self.hosts {
            let matches = match &rule.pattern {
                Pattern::Exact(h) => *h == host,
                Pattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            };
            if !matches {
                continue;
            }
            name_matched = true;
            let port_ok = match rule.port {
                Some(p) => p == port,
                None => DEFAULT_PORTS.contains(&port),
            };
            if port_ok {
                return Ok((host, false));
            }
        }
        Err(if name_matched {
            Denial::Port(port)
        } else {
            Denial::NotListed
        })
    }
}

/// The blocked range `ip` falls in, by name (`"loopback"`, `"private"`, …), or `None` for
/// an address the general proxy may dial. IPv4-mapped (`::ffff:a.b.c.d`) and
/// IPv4-compatible (`::a.b.c.d`) addresses are always refused, named after the range of the
/// IPv4 address they embed; NAT64 (`64:ff9b::a.b.c.d`) is judged by its IPv4 address.
pub fn blocked_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_broadcast() => "broadcast",
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) => "private",
        (172, 16..=31, _) => "private",
        (192, 168, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (CGNAT)",
        (192, 0, 0) => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    let embedded = |hi: [u16; 6]| {
        (seg[..6] == hi).then(|| {
            let [x, y] = seg[6].to_be_bytes();
            let [z, w] = seg[7].to_be_bytes();
            Ipv4Addr::new(x, y, z, w)
        })
    };
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated) are refused whatever
    // they embed (a client reaches an IPv4 host as IPv4); the embedded range is named.
    if let Some(v4) = embedded([0, 0, 0, 0, 0, 0xffff]) {
        return Some(blocked_v4(v4).unwrap_or("IPv4-mapped"));
    }
    if let Some(v4) = embedded([0; 6]) {
        return Some(blocked_v4(v4).unwrap_or("IPv4-compatible"));
    }
    // 64:ff9b::a.b.c.d (NAT64, used on IPv6-only networks): the embedded address decides.
    if let Some(v4) = embedded([0x64, 0xff9b, 0, 0, 0, 0]) {
        return blocked_v4(v4);
    }
    Some(match seg[0] {
        s if s & 0xfe00 == 0xfc00 => "unique local",
        s if s & 0xffc0 == 0xfe80 => "link-local",
        s if s & 0xffc0 == 0xfec0 => "site-local",
        s if s & 0xff00 == 0xff00 => "multicast",
        0x2001 if seg[1] == 0x0db8 => "documentation",
        0x3fff if seg[1] < 0x1000 => "documentation",
        _ => return None,
    })
}

/// Lowercases, removes one trailing dot and IPv6 brackets, canonicalizes IP literals, and
/// checks a name is made of non-empty labels of letters, digits, `-` and `_`.
fn normalize_host(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(|ip| ip.to_string());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let host = host.to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some(host)
}

/// Splits `host[:port]`, `[v6][:port]` or a bare IPv6 literal.
fn split_host_port(s: &str) -> Result<(&str, Option<&str>), &'static str> {
    if s.is_empty() {
        return Err("empty entry");
    }
    if s.starts_with('[') {
        let end = s.find(']').ok_or("unclosed `[`")?;
        let (host, rest) = s.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => rest
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or("unexpected text after `]`"),
        };
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok((s, None));
    }
    match s.rsplit_once(':') {
        Some((h, _)) if h.contains(':') => Err("an IPv6 address needs brackets: [addr]:port"),
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((s, None)),
    }
}

fn parse_port(p: &str) -> Result<u16, &'static str> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err("invalid port"),
        Ok(p) => Ok(p),
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Receives every [`Decision`] of a proxy.
pub type OnDecision = Arc<dyn Fn(Decision) + Send + Sync>;

/// Serves until `shutdown`; calls `on_decision` for each CONNECT / request (allowed or
/// denied). Each connection is its own task; on `shutdown` it stops accepting, drops every
/// open relay and returns once they are gone. Spawned tasks run in the caller's span, so
/// wrapping this future in a span with the task id labels every decision logged.
pub async fn serve(
    listener: UnixListener,
    policy: Arc<Policy>,
    on_decision: OnDecision,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "egress proxy: accept failed");
                    // EMFILE and friends: do not spin.
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let policy = Arc::clone(&policy);
        let on_decision = Arc::clone(&on_decision);
        let stop = shutdown.clone();
        tracker.spawn(
            async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = handle(stream, &policy, &on_decision) => {}
                }
            }
            .in_current_span(),
        );
    }
    tracker.close();
    tracker.wait().await;
}

/// A request the proxy understood.
#[derive(Debug)]
enum Request {
    Connect {
        host: String,
        port: u16,
    },
    /// Absolute-form `http://` request; `head` is what to send upstream.
    Forward {
        host: String,
        port: u16,
        head: Vec<u8>,
    },
}

#[derive(Debug)]
enum HeadError {
    Closed,
    TooLarge,
    Io,
}

/// Reads up to the end of the request head; returns the head and any bytes after it.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.map_err(|_| HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf) {
            if end > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

/// The offset just past the blank line that ends a head (CRLF or bare LF line ends).
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if line_start > 0 && (line.is_empty() || line == b"\r") {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// A response to send and close with: status, reason phrase, body.
type Refusal = (u16, &'static str, String);

fn bad_request(msg: &str) -> Refusal {
    (400, "Bad Request", format!("agentd egress proxy: {msg}\n"))
}

fn parse_request(head: &[u8]) -> Result<Request, Refusal> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let request_line = std::str::from_utf8(request_line)
        .map_err(|_| bad_request("the request line is not valid UTF-8"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_request("malformed request line"));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(bad_request("only HTTP/1.x is supported"));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
        return Err(bad_request("malformed method"));
    }
    let headers: Vec<&[u8]> = lines.take_while(|l| !l.is_empty()).collect();
    for h in &headers {
        if h.starts_with(b" ") || h.starts_with(b"\t") || !h.contains(&b':') {
            return Err(bad_request("malformed header line"));
        }
    }

    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) =
            split_host_port(target).map_err(|_| bad_request("CONNECT needs host:port"))?;
        let port = port
            .and_then(|p| parse_port(p).ok())
            .ok_or_else(|| bad_request("CONNECT needs host:port"))?;
        return Ok(Request::Connect {
            host: host.to_string(),
            port,
        });
    }

    let rest = match target.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http://") => &target[7..],
        _ if target.starts_with('/') || target == "*" => {
            return Err(bad_request(
                "this is a proxy: send CONNECT host:port or an absolute http:// URL",
            ));
        }
        _ => {
            return Err(bad_request(
                "only http:// URLs are forwarded; use CONNECT for https and others",
            ));
        }
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let path = rest[auth_end..].split('#').next().unwrap_or_default();
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    let url = url::Url::parse(&format!("http://{}/", &rest[..auth_end]))
        .map_err(|e| bad_request(&format!("invalid URL: {e}")))?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(bad_request("the URL has no host")),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    if port == 0 {
        return Err(bad_request("invalid port"));
    }

    // Hop-by-hop headers are dropped, and the ones `Connection` names.
    let header_name = |h: &[u8]| -> String {
        let colon = h.iter().position(|&b| b == b':').unwrap_or(h.len());
        String::from_utf8_lossy(&h[..colon])
            .trim()
            .to_ascii_lowercase()
    };
    let mut dropped: Vec<String> = ["connection", "keep-alive", "upgrade", "host", "te"]
        .into_iter()
        .map(String::from)
        .collect();
    for h in &headers {
        if header_name(h) == "connection" {
            let colon = h.iter().position(|&b| b == b':').unwrap_or(h.len());
            let value = String::from_utf8_lossy(&h[colon + 1..]).to_ascii_lowercase();
            dropped.extend(value.split(',').map(|t| t.trim().to_string()));
        }
    }
    let host_header = match port {
        80 => authority(&host, port)
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_default(),
        _ => authority(&host, port),
    };
    let mut out = Vec::with_capacity(head.len() + 64);
    out.extend_from_slice(
        format!("{method} {path} {version}\r\nHost: {host_header}\r\n").as_bytes(),
    );
    for h in &headers {
        let name = header_name(h);
        if name.starts_with("proxy-") || dropped.contains(&name) {
            continue;
        }
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Request::Forward {
        host,
        port,
        head: out,
    })
}

async fn respond<S: AsyncWrite + Unpin>(s: &mut S, (code, reason, body): Refusal) {
    let msg = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(msg.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// Why an allowed target could not be reached.
struct Unreachable(String);

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Serves one client connection: head, policy, upstream, relay.
async fn handle(mut client: UnixStream, policy: &Policy, on_decision: &OnDecision) {
    let (head, early) =
        match tokio::time::timeout(policy.head_timeout, read_head(&mut client)).await {
            Ok(Ok(h)) => h,
            Ok(Err(HeadError::TooLarge)) => {
                tracing::debug!("egress proxy: request head too large");
                let body = format!("agentd egress proxy: request head over {MAX_HEAD} bytes\n");
                return respond(&mut client, (431, "Request Header Fields Too Large", body)).await;
            }
            Ok(Err(HeadError::Closed | HeadError::Io)) => return,
            Err(_) => {
                tracing::debug!("egress proxy: timed out reading a request head");
                let body = "agentd egress proxy: timed out reading the request head\n".to_string();
                return respond(&mut client, (408, "Request Timeout", body)).await;
            }
        };
    let request = match parse_request(&head) {
        Ok(r) => r,
        Err(refusal) => {
            tracing::debug!(reason = %refusal.2.trim_end(), "egress proxy: bad request");
            return respond(&mut client, refusal).await;
        }
    };
    let (raw_host, port) = match &request {
        Request::Connect { host, port } | Request::Forward { host, port, .. } => {
            (host.clone(), *port)
        }
    };
    let kind = match request {
        Request::Connect { .. } => "CONNECT",
        Request::Forward { .. } => "http",
    };

    let (host, addrs) = match authorize(policy, &raw_host, port).await {
        Ok(ok) => ok,
        Err(denial) => {
            let host = normalize_host(&raw_host).unwrap_or(raw_host);
            let reason = denial.to_string();
            tracing::warn!(%host, port, kind, %reason, "egress denied");
            on_decision(Decision::Denied {
                host: host.clone(),
                port,
                reason: reason.clone(),
            });
            let body = format!(
                "agentd egress proxy: {} denied: {reason}\n",
                authority(&host, port)
            );
            let refusal = match denial {
                Denial::Unresolvable(_) => (502, "Bad Gateway", body),
                _ => (403, "Forbidden", body),
            };
            return respond(&mut client, refusal).await;
        }
    };
    tracing::info!(%host, port, kind, "egress allowed");
    on_decision(Decision::Allowed {
        host: host.clone(),
        port,
    });

    let mut upstream = match dial(&addrs).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%host, port, error = %e, "egress upstream unreachable");
            let body = format!(
                "agentd egress proxy: cannot connect to {}: {e}\n",
                authority(&host, port)
            );
            return respond(&mut client, (502, "Bad Gateway", body)).await;
        }
    };
    let _ = upstream.set_nodelay(true);
    let sent = match &request {
        Request::Connect { .. } => client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_ok(),
        Request::Forward { head, .. } => upstream.write_all(head).await.is_ok(),
    };
    if !sent || (!early.is_empty() && upstream.write_all(&early).await.is_err()) {
        return;
    }
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((up, down)) => tracing::debug!(%host, port, up, down, "egress relay closed"),
        Err(e) => tracing::debug!(%host, port, error = %e, "egress relay ended"),
    }
}

/// Checks `host:port` by name, resolves it (IP literals are not looked up) and checks every
/// address; returns the normalized host and the addresses to dial.
async fn authorize(
    policy: &Policy,
    host: &str,
    port: u16,
) -> Result<(String, Vec<SocketAddr>), Denial> {
    let (host, endpoint) = policy.check(host, port)?;
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            match tokio::time::timeout(
                RESOLVE_TIMEOUT,
                tokio::net::lookup_host((host.as_str(), port)),
            )
            .await
            {
                Ok(Ok(a)) => a.collect(),
                Ok(Err(e)) => return Err(Denial::Unresolvable(e.to_string())),
                Err(_) => return Err(Denial::Unresolvable("timed out".to_string())),
            }
        }
    };
    if addrs.is_empty() {
        return Err(Denial::Unresolvable("no addresses".to_string()));
    }
    if !endpoint {
        // One bad address refuses the name: a mix of public and private answers is how
        // rebinding attacks look.
        for a in &addrs {
            if let Some(range) = blocked_range(a.ip()) {
                return Err(Denial::BlockedAddress {
                    addr: a.ip(),
                    range,
                });
            }
        }
    }
    Ok((host, addrs))
}

/// Connects to the first of the (already checked) addresses that answers.
async fn dial(addrs: &[SocketAddr]) -> Result<TcpStream, Unreachable> {
    let mut last = Unreachable("no addresses".to_string());
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = Unreachable(format!("{addr}: {e}")),
            Err(_) => last = Unreachable(format!("{addr}: timed out")),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], endpoints: &[&str]) -> Policy {
        let h: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        let e: Vec<String> = endpoints.iter().map(|s| s.to_string()).collect();
        Policy::new(&h, &e).expect("valid policy")
    }

    #[test]
    fn exact_hosts_match_only_themselves_on_default_ports() {
        let p = policy(&["api.anthropic.com"], &[]);
        assert_eq!(p.check_name("api.anthropic.com", 443), Ok(()));
        assert_eq!(p.check_name("api.anthropic.com", 80), Ok(()));
        assert_eq!(p.check_name("api.anthropic.com", 22), Err(Denial::Port(22)));
        assert_eq!(p.check_name("anthropic.com", 443), Err(Denial::NotListed));
        assert_eq!(
            p.check_name("x.api.anthropic.com", 443),
            Err(Denial::NotListed)
        );
        assert_eq!(
            p.check_name("api.anthropic.com.evil.io", 443),
            Err(Denial::NotListed)
        );
    }

    #[test]
    fn wildcards_match_subdomains_but_not_the_apex() {
        let p = policy(&["*.example.com"], &[]);
        assert_eq!(p.check_name("a.example.com", 443), Ok(()));
        assert_eq!(p.check_name("a.b.example.com", 80), Ok(()));
        assert_eq!(p.check_name("example.com", 443), Err(Denial::NotListed));
        assert_eq!(p.check_name("badexample.com", 443), Err(Denial::NotListed));
        assert_eq!(p.check_name(".example.com", 443), Err(Denial::InvalidHost));
    }

    #[test]
    fn listed_ports_replace_the_defaults() {
        let p = policy(
            &[
                "example.com:8443",
                "*.example.org:8080",
                "[2001:db8::1]:8443",
            ],
            &[],
        );
        assert_eq!(p.check_name("example.com", 8443), Ok(()));
        assert_eq!(p.check_name("example.com", 443), Err(Denial::Port(443)));
        assert_eq!(p.check_name("a.example.org", 8080), Ok(()));
        assert_eq!(p.check_name("a.example.org", 80), Err(Denial::Port(80)));
        assert_eq!(p.check_name("[2001:db8::1]", 8443), Ok(()));
        assert_eq!(p.check_name("2001:DB8:0::1", 8443), Ok(()));
        // The same host listed twice with different ports allows both.
        let p = policy(&["example.com:8443", "example.com"], &[]);
        assert_eq!(p.check_name("example.com", 8443), Ok(()));
        assert_eq!(p.check_name("example.com", 443), Ok(()));
    }

    #[test]
    fn names_are_lowercased_and_lose_their_trailing_dot() {
        let p = policy(&["Example.COM.", "*.Foo.Net"], &[]);
        assert_eq!(p.check_name("EXAMPLE.com.", 443), Ok(()));
        assert_eq!(p.check_name("example.com", 443), Ok(()));
        assert_eq!(p.check_name("A.FOO.NET.", 443), Ok(()));
        assert_eq!(p.check_name("example.com..", 443), Err(Denial::InvalidHost));
        assert_eq!(p.check_name("exa mple.com", 443), Err(Denial::InvalidHost));
        assert_eq!(p.check_name("", 443), Err(Denial::InvalidHost));
    }

    #[test]
    fn endpoints_are_exact_host_port_pairs() {
        let p = policy(&[], &["127.0.0.1:3000", "LocalHost:8080", "[::1]:9000"]);
        assert_eq!(p.check("127.0.0.1", 3000), Ok(("127.0.0.1".into(), true)));
        assert_eq!(p.check("localhost.", 8080), Ok(("localhost".into(), true)));
        assert_eq!(p.check("[::1]", 9000), Ok(("::1".into(), true)));
        assert_eq!(p.check_name("127.0.0.1", 3001), Err(Denial::NotListed));
        assert_eq!(p.check_name("localhost", 443), Err(Denial::NotListed));
        // A host pattern is not an endpoint: its addresses are still checked.
        let p = policy(&["localhost:3000"], &[]);
        assert_eq!(p.check("localhost", 3000), Ok(("localhost".into(), false)));
    }

    #[test]
    fn ip_literals_are_allowed_only_when_listed() {
        let p = policy(&["203.0.113.7"], &[]);
        assert_eq!(p.check_name("203.0.113.7", 443), Ok(()));
        assert_eq!(p.check_name("203.0.113.8", 443), Err(Denial::NotListed));
        let p = policy(&["*.example.com"], &[]);
        assert_eq!(p.check_name("93.184.216.34", 443), Err(Denial::NotListed));
    }

    #[test]
    fn bad_entries_are_rejected_naming_them() {
        let cases: &[(&[&str], &[&str], &str)] = &[
            (&[""], &[], "\"\""),
            (&["exa mple.com"], &[], "exa mple.com"),
            (&["example.com:http"], &[], "example.com:http"),
            (&["example.com:0"], &[], "example.com:0"),
            (&["example.com:70000"], &[], "example.com:70000"),
            (&["*"], &[], "\"*\""),
            (&["foo.*.com"], &[], "foo.*.com"),
            (&["*.10.0.0.1"], &[], "*.10.0.0.1"),
            (&["2001:db8::1:443x"], &[], "2001:db8::1:443x"),
            (&["[::1"], &[], "[::1"),
            (&[], &["127.0.0.1"], "127.0.0.1"),
            (&[], &["*.example.com:443"], "*.example.com:443"),
            (&[], &["bad host:80"], "bad host:80"),
        ];
        for (hosts, endpoints, named) in cases {
            let h: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
            let e: Vec<String> = endpoints.iter().map(|s| s.to_string()).collect();
            let err = Policy::new(&h, &e).expect_err(named).to_string();
            assert!(err.contains(named), "{err:?} should name {named:?}");
        }
    }

    #[test]
    fn the_classifier_blocks_every_internal_range() {
        let blocked: &[(&str, &str)] = &[
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("169.254.0.1", "link-local"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.255", "shared (CGNAT)"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("192.0.0.8", "reserved"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:192.168.0.1", "private"),
            ("::ffff:0.0.0.0", "unspecified"),
            ("::ffff:100.64.0.1", "shared (CGNAT)"),
            ("::127.0.0.1", "loopback"),
            ("::10.0.0.1", "private"),
            ("::169.254.169.254", "link-local"),
            ("64:ff9b::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
        ];
        for (ip, range) in blocked {
            let addr: IpAddr = ip.parse().expect(ip);
            assert_eq!(blocked_range(addr), Some(*range), "{ip}");
        }
    }

    #[test]
    fn the_classifier_allows_public_addresses() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "192.169.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "64:ff9b::808:808",
        ] {
            let addr: IpAddr = ip.parse().expect(ip);
            assert_eq!(blocked_range(addr), None, "{ip}");
        }
        // Mapped and compatible forms are refused even when what they embed is public.
        assert_eq!(
            blocked_range("::ffff:8.8.8.8".parse().unwrap()),
            Some("IPv4-mapped")
        );
        assert_eq!(
            blocked_range("::8.8.8.8".parse().unwrap()),
            Some("IPv4-compatible")
        );
    }

    #[test]
    fn forwarded_heads_are_origin_form_without_proxy_headers() {
        let head = b"GET http://Example.com:8080/a/b?q=1#frag HTTP/1.1\r\nHost: other\r\nProxy-Authorization: Basic x\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nAccept: */*\r\n\r\n";
        let Ok(Request::Forward { host, port, head }) = parse_request(head) else {
            panic!("not a forward")
        };
        assert_eq!((host.as_str(), port), ("example.com", 8080));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /a/b?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let Ok(Request::Forward { head, port, .. }) =
            parse_request(b"POST http://[::1]?x HTTP/1.0\r\nContent-Length: 2\r\n\r\n")
        else {
            panic!("not a forward")
        };
        assert_eq!(port, 80);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /?x HTTP/1.0\r\nHost: [::1]\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn other_requests_are_refused() {
        for head in [
            &b"GET /x HTTP/1.1\r\n\r\n"[..],
            b"GET https://example.com/ HTTP/1.1\r\n\r\n",
            b"CONNECT example.com HTTP/1.1\r\n\r\n",
            b"CONNECT example.com:0 HTTP/1.1\r\n\r\n",
            b"GET http://example.com/ HTTP/2.0\r\n\r\n",
            b"GET http://example.com/ HTTP/1.1 extra\r\n\r\n",
            b"GET http://example.com/ HTTP/1.1\r\n folded\r\n\r\n",
        ] {
            let r = parse_request(head);
            assert!(
                matches!(r, Err((400, ..))),
                "{:?} gave {r:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn head_end_finds_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nbody"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }
}
