//! The sandbox's network path over real sockets: the egress proxy on a Unix socket in a
//! tempdir, upstream servers on 127.0.0.1, the in-sandbox relay, and the helper mode.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentd_daemon::sandbox::egress::{self, Decision, Policy};
use agentd_daemon::sandbox::relay;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

struct Proxy {
    socket: PathBuf,
    decisions: Arc<Mutex<Vec<Decision>>>,
    shutdown: CancellationToken,
    served: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn start(hosts: &[String], endpoints: &[String]) -> Proxy {
        Proxy::start_with(Policy::new(hosts, endpoints).expect("valid policy"))
    }

    fn start_with(policy: Policy) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("egress.sock");
        let listener = UnixListener::bind(&socket).expect("bind the proxy socket");
        let decisions = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&decisions);
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(egress::serve(
            listener,
            Arc::new(policy),
            Arc::new(move |d| sink.lock().unwrap().push(d)),
            shutdown.clone(),
        ));
        Proxy {
            socket,
            decisions,
            shutdown,
            served,
            _dir: dir,
        }
    }

    async fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.socket)
            .await
            .expect("connect to the proxy")
    }

    fn decisions(&self) -> Vec<Decision> {
        self.decisions.lock().unwrap().clone()
    }
}

/// An upstream that echoes every byte back, for as many connections as come.
async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Reads a response (or request) head, up to and including the blank line.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut byte))
            .await
            .expect("head in time")
            .expect("read");
        assert!(
            n > 0,
            "closed mid-head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

async fn read_to_end<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("closed in time")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

async fn connect_through(s: &mut UnixStream, target: &str) -> String {
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_head(s).await
}

async fn echo_round_trip<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(back, msg);
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn connect_to_a_listed_endpoint_relays_both_ways() {
    let up = echo_upstream().await;
    let proxy = Proxy::start(&[], &strings(&[&up.to_string()]));
    let mut s = proxy.connect().await;
    let head = connect_through(&mut s, &up.to_string()).await;
    assert_eq!(head, "HTTP/1.1 200 Connection Established\r\n\r\n");
    echo_round_trip(&mut s, b"ping").await;
    echo_round_trip(&mut s, &[7u8; 100_000]).await;
    assert_eq!(
        proxy.decisions(),
        [Decision::Allowed {
            host: "127.0.0.1".into(),
            port: up.port()
        }]
    );
}

#[tokio::test]
async fn bytes_sent_right_after_the_connect_head_are_not_lost() {
    let up = echo_upstream().await;
    let proxy = Proxy::start(&[], &strings(&[&up.to_string()]));
    let mut s = proxy.connect().await;
    // A client that does not wait for the 200 (e.g. a TLS ClientHello in the same write).
    s.write_all(format!("CONNECT {up} HTTP/1.1\r\n\r\nearly").as_bytes())
        .await
        .unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200 "));
    let mut back = [0u8; 5];
    tokio::time::timeout(WAIT, s.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"early");
}

#[tokio::test]
async fn connect_to_an_unlisted_loopback_port_is_forbidden() {
    let up = echo_upstream().await;
    let other = echo_upstream().await;
    let proxy = Proxy::start(&strings(&["example.com"]), &strings(&[&up.to_string()]));
    let mut s = proxy.connect().await;
    let head = connect_through(&mut s, &other.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
    assert!(head.contains("Connection: close\r\n"), "{head}");
    let body = read_to_end(&mut s).await;
    assert_eq!(
        body,
        format!("agentd egress proxy: {other} denied: host is not in the allow-list\n")
    );
    assert_eq!(
        proxy.decisions(),
        [Decision::Denied {
            host: "127.0.0.1".into(),
            port: other.port(),
            reason: "host is not in the allow-list".into()
        }]
    );
}

#[tokio::test]
async fn a_loopback_ip_listed_as_a_host_is_still_forbidden() {
    let up = echo_upstream().await;
    let proxy = Proxy::start(&strings(&[&up.to_string()]), &[]);
    let mut s = proxy.connect().await;
    let head = connect_through(&mut s, &up.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let reason = "resolves to 127.0.0.1, a loopback address";
    assert!(read_to_end(&mut s).await.contains(reason));
    assert_eq!(
        proxy.decisions(),
        [Decision::Denied {
            host: "127.0.0.1".into(),
            port: up.port(),
            reason: reason.into()
        }]
    );
}

#[tokio::test]
async fn a_listed_name_that_resolves_to_loopback_is_forbidden() {
    let up = echo_upstream().await;
    // `localhost` is a host pattern here, not an endpoint: what it resolves to is checked.
    let proxy = Proxy::start(&strings(&[&format!("localhost:{}", up.port())]), &[]);
    let mut s = proxy.connect().await;
    let head = connect_through(&mut s, &format!("localhost:{}", up.port())).await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let body = read_to_end(&mut s).await;
    assert!(body.contains("loopback address"), "{body}");
    let decisions = proxy.decisions();
    let [Decision::Denied { host, port, reason }] = decisions.as_slice() else {
        panic!("expected one denial, got {decisions:?}")
    };
    assert_eq!((host.as_str(), *port), ("localhost", up.port()));
    assert!(reason.contains("loopback"), "{reason}");
}

#[tokio::test]
async fn absolute_form_http_is_forwarded_in_origin_form_and_streams() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let (head_tx, head_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let head = read_head(&mut s).await;
        head_tx.send(head).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: one\n\n")
            .await
            .unwrap();
        // The second event is written only once the client has seen the first.
        go_rx.await.unwrap();
        s.write_all(b"data: two\n\n").await.unwrap();
    });

    let proxy = Proxy::start(&[], &strings(&[&up.to_string()]));
    let mut s = proxy.connect().await;
    s.write_all(
        format!(
            "GET http://{up}/x HTTP/1.1\r\nHost: {up}\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nAccept: text/event-stream\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();

    let seen = tokio::time::timeout(WAIT, head_rx).await.unwrap().unwrap();
    assert_eq!(
        seen,
        format!(
            "GET /x HTTP/1.1\r\nHost: {up}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
        )
    );
    let response = read_head(&mut s).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let mut first = [0u8; 11];
    tokio::time::timeout(WAIT, s.read_exact(&mut first))
        .await
        .expect("the first event arrives before the stream ends")
        .unwrap();
    assert_eq!(&first, b"data: one\n\n");
    go_tx.send(()).unwrap();
    assert_eq!(read_to_end(&mut s).await, "data: two\n\n");
    assert_eq!(
        proxy.decisions(),
        [Decision::Allowed {
            host: "127.0.0.1".into(),
            port: up.port()
        }]
    );
}

#[tokio::test]
async fn absolute_form_http_to_an_unlisted_host_is_forbidden() {
    let proxy = Proxy::start(&strings(&["example.com"]), &[]);
    let mut s = proxy.connect().await;
    s.write_all(b"GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    assert_eq!(
        read_to_end(&mut s).await,
        "agentd egress proxy: example.org:80 denied: host is not in the allow-list\n"
    );
}

#[tokio::test]
async fn origin_form_requests_are_refused() {
    let proxy = Proxy::start(&strings(&["example.com"]), &[]);
    let mut s = proxy.connect().await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert!(proxy.decisions().is_empty());
}

#[tokio::test]
async fn a_head_that_never_ends_is_closed_after_the_head_timeout() {
    let policy = Policy::new(&[], &[])
        .unwrap()
        .with_head_timeout(Duration::from_millis(300));
    let proxy = Proxy::start_with(policy);
    let mut s = proxy.connect().await;
    let started = Instant::now();
    s.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: exa")
        .await
        .unwrap();
    let answer = read_to_end(&mut s).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(proxy.decisions().is_empty());
}

#[tokio::test]
async fn an_oversized_head_is_refused() {
    let proxy = Proxy::start(&strings(&["example.com"]), &[]);
    let mut s = proxy.connect().await;
    let mut head = b"CONNECT example.com:443 HTTP/1.1\r\n".to_vec();
    while head.len() <= egress::MAX_HEAD {
        head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    // The proxy may answer and close before it has read everything: ignore write errors.
    let _ = s.write_all(&head).await;
    let answer = read_head(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
}

#[tokio::test]
async fn shutdown_stops_the_proxy_and_drops_open_relays() {
    let up = echo_upstream().await;
    let proxy = Proxy::start(&[], &strings(&[&up.to_string()]));
    let mut s = proxy.connect().await;
    connect_through(&mut s, &up.to_string()).await;
    echo_round_trip(&mut s, b"ping").await;
    proxy.shutdown.cancel();
    tokio::time::timeout(WAIT, proxy.served)
        .await
        .expect("serve returns after shutdown")
        .unwrap();
    assert_eq!(read_to_end(&mut s).await, "");
    assert!(UnixStream::connect(&proxy.socket).await.is_err());
}

#[tokio::test]
async fn relay_and_proxy_chain_from_tcp_to_the_upstream() {
    let up = echo_upstream().await;
    let proxy = Proxy::start(&[], &strings(&[&up.to_string()]));
    let relay_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay_listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let relayed = tokio::spawn(relay::relay(
        relay_listener,
        proxy.socket.clone(),
        stop.clone(),
    ));

    let mut s = TcpStream::connect(relay_addr).await.unwrap();
    s.write_all(format!("CONNECT {up} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200 "));
    echo_round_trip(&mut s, b"through the sandbox").await;
    assert_eq!(proxy.decisions().len(), 1);

    stop.cancel();
    tokio::time::timeout(WAIT, relayed).await.unwrap().unwrap();
    assert_eq!(read_to_end(&mut s).await, "");
}

/// `run_helper` tests take turns: the signal test sends SIGTERM to this whole process, and
/// every helper running at that moment would forward it to its child.
static HELPERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn argv(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

fn any_local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn run_helper_returns_the_childs_exit_code() {
    let _turn = HELPERS.blocking_lock();
    let code = relay::run_helper(
        any_local(),
        "/nonexistent".into(),
        argv(&["sh", "-c", "exit 3"]),
    );
    assert_eq!(code, 3);
    let code = relay::run_helper(
        any_local(),
        "/nonexistent".into(),
        argv(&["sh", "-c", "kill -KILL $$"]),
    );
    assert_eq!(code, 128 + 9);
}

#[test]
fn run_helper_reports_what_failed() {
    let _turn = HELPERS.blocking_lock();
    let code = relay::run_helper(
        any_local(),
        "/nonexistent".into(),
        argv(&["/nonexistent/agent-cli"]),
    );
    assert_eq!(code, 127);
    assert_eq!(
        relay::run_helper(any_local(), "/nonexistent".into(), Vec::new()),
        relay::EXIT_HELPER_FAILED
    );
    let taken = std::net::TcpListener::bind(any_local()).unwrap();
    let code = relay::run_helper(
        taken.local_addr().unwrap(),
        "/nonexistent".into(),
        argv(&["sh", "-c", "exit 0"]),
    );
    assert_eq!(code, relay::EXIT_HELPER_FAILED);
}

#[tokio::test]
async fn run_helper_relays_for_its_child_and_forwards_sigterm() {
    let _turn = HELPERS.lock().await;
    let up = echo_upstream().await;
    let proxy = Proxy::start(&[], &strings(&[&up.to_string()]));
    let listen = {
        // A free port for the helper to bind (it binds by address, like 127.0.0.1:3128).
        let l = std::net::TcpListener::bind(any_local()).unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'exit 7' TERM; touch '{}'; while :; do sleep 0.05; done",
        ready.display()
    );
    let socket = proxy.socket.clone();
    let helper =
        std::thread::spawn(move || relay::run_helper(listen, socket, argv(&["sh", "-c", &script])));

    let deadline = Instant::now() + WAIT;
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the child never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The relay runs while the child does.
    let mut s = TcpStream::connect(listen).await.unwrap();
    s.write_all(format!("CONNECT {up} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200 "));
    echo_round_trip(&mut s, b"from the agent").await;

    // The helper has its handlers installed (the child runs): SIGTERM to this process is
    // taken by it and forwarded to the child, whose trap exits 7.
    nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let code = tokio::task::spawn_blocking(move || helper.join().unwrap())
        .await
        .unwrap();
    assert_eq!(code, 7);
    assert_eq!(read_to_end(&mut s).await, "");
}
