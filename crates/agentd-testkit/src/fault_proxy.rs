//! A fault-injecting TCP proxy on 127.0.0.1:0 for drills: it sits between a client (the
//! daemon) and a target (the server) and, switchable at run time, passes bytes through,
//! delays them, drops new connections, black-holes traffic, or resets every current
//! connection with an RST.
//!
//! Modes ([`Mode`]) decide what happens to *new* connections at accept time and, for
//! [`Mode::Delay`] and [`Mode::BlackHole`], to chunks already flowing on open ones:
//!
//! - [`Mode::Pass`]: forward both ways.
//! - [`Mode::Delay`]: forward, sleeping this long before each chunk (either direction).
//! - [`Mode::Drop`]: accept, then close at once (the client sees EOF before any answer).
//!   Open connections keep passing; call [`FaultProxy::reset_all`] to cut them too.
//! - [`Mode::BlackHole`]: accept, read and discard, never answer; open connections stop
//!   forwarding (what they read is discarded) — a server that went silent mid-stream.
//! - [`Mode::LoseNextResponse`]: one-shot. Requests flow to the target, but the first
//!   answer bytes the target sends on a plain HTTP (not WebSocket) connection are not
//!   delivered: that connection is reset and the mode goes back to [`Mode::Pass`] — a
//!   request the server processed whose response the client never got.
//!
//! [`FaultProxy::reset_all`] aborts every open connection with `SO_LINGER=0` (the peer
//! reads `ECONNRESET`), whatever the mode; [`FaultProxy::reset_websockets`] only those
//! whose first request asked for a WebSocket upgrade (HTTP keeps flowing). Connections black-holed at accept stay black
//! holes after the mode changes back, until the client gives up or they are reset.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What the proxy does; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Delay(Duration),
    Drop,
    BlackHole,
    LoseNextResponse,
}

/// One open connection: whether it is a WebSocket, and its reset switch.
struct Conn {
    websocket: Arc<AtomicBool>,
    reset: CancellationToken,
}

struct Shared {
    mode: Mutex<Mode>,
    conns: Mutex<HashMap<u64, Conn>>,
    accepted: AtomicU64,
    dropped: AtomicU64,
    resets: AtomicU64,
    open: AtomicUsize,
}

impl Shared {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Switches [`Mode::LoseNextResponse`] back to [`Mode::Pass`]; true for the one
    /// caller that did.
    fn take_lose_next_response(&self) -> bool {
        let mut m = self.mode.lock().unwrap_or_else(|p| p.into_inner());
        if *m == Mode::LoseNextResponse {
            *m = Mode::Pass;
            true
        } else {
            false
        }
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Conn>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resets the connections `pick` selects; returns how many.
    fn reset_where(&self, pick: impl Fn(&Conn) -> bool) -> usize {
        let mut n = 0;
        for c in self.conns().values() {
            if pick(c) && !c.reset.is_cancelled() {
                c.reset.cancel();
                n += 1;
            }
        }
        self.resets.fetch_add(1, Ordering::SeqCst);
        n
    }
}

/// A running proxy; stops (and resets its connections) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Unregisters a connection however its task ends.
struct OpenGuard(Arc<Shared>, u64);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.conns().remove(&self.1);
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards to `target`, in [`Mode::Pass`].
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fault proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            conns: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            open: AtomicUsize::new(0),
        });
        let stop = CancellationToken::new();
        let (s, st) = (Arc::clone(&shared), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = st.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else { continue };
                let id = s.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                match s.mode() {
                    Mode::Drop => {
                        s.dropped.fetch_add(1, Ordering::SeqCst);
                        drop(client);
                    }
                    mode => {
                        s.open.fetch_add(1, Ordering::SeqCst);
                        let guard = OpenGuard(Arc::clone(&s), id);
                        let reset = CancellationToken::new();
                        let websocket = Arc::new(AtomicBool::new(false));
                        s.conns().insert(
                            id,
                            Conn {
                                websocket: Arc::clone(&websocket),
                                reset: reset.clone(),
                            },
                        );
                        let stop = st.clone();
                        let shared = Arc::clone(&s);
                        tokio::spawn(async move {
                            let _guard = guard;
                            let link = Link {
                                reset,
                                stop,
                                websocket,
                            };
                            connection(shared, client, target, mode, link).await;
                        });
                    }
                }
            }
        });
        FaultProxy {
            addr,
            target,
            shared,
            stop,
        }
    }

    /// Starts a proxy in front of an `http://host:port` URL.
    pub async fn for_url(url: &str) -> FaultProxy {
        let hostport = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        let target: SocketAddr = hostport.parse().expect("target is host:port");
        FaultProxy::start(target).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Aborts every open connection with an RST. Returns how many were open.
    pub fn reset_all(&self) -> usize {
        self.shared.reset_where(|_| true)
    }

    /// Aborts, with an RST, every open connection that is a WebSocket (its first request
    /// carried `Upgrade: websocket`). Returns how many.
    pub fn reset_websockets(&self) -> usize {
        self.shared
            .reset_where(|c| c.websocket.load(Ordering::SeqCst))
    }

    /// Connections accepted since start (dropped ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections closed at accept in [`Mode::Drop`].
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// Times [`FaultProxy::reset_all`] or [`FaultProxy::reset_websockets`] was called.
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::SeqCst)
    }

    /// Connections open now (forwarding or black-holed).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }
}

/// Aborts a socket with an RST instead of a FIN.
fn rst(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

/// A connection task's switches.
struct Link {
    reset: CancellationToken,
    stop: CancellationToken,
    websocket: Arc<AtomicBool>,
}

async fn connection(
    shared: Arc<Shared>,
    mut client: TcpStream,
    target: SocketAddr,
    mode: Mode,
    link: Link,
) {
    let Link {
        reset,
        stop,
        websocket,
    } = link;
    if mode == Mode::BlackHole {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                _ = reset.cancelled() => return rst(client),
                _ = stop.cancelled() => return rst(client),
                n = client.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
            }
        }
    }
    let upstream = tokio::select! {
        _ = reset.cancelled() => return rst(client),
        _ = stop.cancelled() => return rst(client),
        u = TcpStream::connect(target) => u,
    };
    let Ok(mut upstream) = upstream else {
        // Target down: the client sees a reset, as it would connecting directly.
        return rst(client);
    };
    let _ = upstream.set_nodelay(true);
    let aborted = {
        let (mut cr, mut cw) = client.split();
        let (mut ur, mut uw) = upstream.split();
        let up = pump(&shared, &mut cr, &mut uw, Role::Up(&websocket));
        let down = pump(&shared, &mut ur, &mut cw, Role::Down(&websocket, &reset));
        tokio::select! {
            _ = reset.cancelled() => true,
            _ = stop.cancelled() => true,
            _ = async { tokio::join!(up, down) } => false,
        }
    };
    if aborted {
        rst(client);
        rst(upstream);
    }
}

/// True when a request head asks for a WebSocket upgrade.
fn is_websocket_upgrade(head: &[u8]) -> bool {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    head.lines().any(|l| {
        l.strip_prefix("upgrade:")
            .is_some_and(|v| v.trim() == "websocket")
    })
}

/// Which way a pump copies. Up: client → target; its first chunk (the request head)
/// marks the connection as a WebSocket or not. Down: target → client; may reset its own
/// connection in [`Mode::LoseNextResponse`].
#[derive(Clone, Copy)]
enum Role<'a> {
    Up(&'a AtomicBool),
    Down(&'a AtomicBool, &'a CancellationToken),
}

/// Copies `from` → `to` chunk by chunk, applying the current mode to each chunk. Ends at
/// EOF or an error on either side, shutting down the write side.
async fn pump<R, W>(shared: &Shared, from: &mut R, to: &mut W, role: Role<'_>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut first = true;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let (Role::Up(flag), true) = (role, first) {
            flag.store(is_websocket_upgrade(&buf[..n]), Ordering::SeqCst);
        }
        first = false;
        match shared.mode() {
            Mode::BlackHole => continue,
            Mode::Delay(d) => tokio::time::sleep(d).await,
            Mode::LoseNextResponse => {
                if let Role::Down(websocket, reset) = role
                    && !websocket.load(Ordering::SeqCst)
                    && shared.take_lose_next_response()
                {
                    reset.cancel();
                    return;
                }
            }
            Mode::Pass | Mode::Drop => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server; returns its address.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await?;
        Ok(got)
    }

    #[tokio::test]
    async fn passes_bytes_both_ways_and_counts_connections() {
        let p = FaultProxy::start(echo().await).await;
        for i in 0..3 {
            let mut s = TcpStream::connect(p.addr()).await.unwrap();
            let msg = format!("hello {i}");
            assert_eq!(
                roundtrip(&mut s, msg.as_bytes()).await.unwrap(),
                msg.as_bytes()
            );
        }
        assert_eq!(p.accepted(), 3);
        assert_eq!(p.dropped(), 0);
    }

    #[tokio::test]
    async fn delay_adds_latency_per_chunk() {
        let p = FaultProxy::start(echo().await).await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut s, b"warm").await.unwrap();
        p.set_mode(Mode::Delay(Duration::from_millis(150)));
        let t = Instant::now();
        roundtrip(&mut s, b"slow").await.unwrap();
        // One delay on the way up, one on the way back.
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        p.set_mode(Mode::Pass);
        let t = Instant::now();
        roundtrip(&mut s, b"fast").await.unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn drop_closes_new_connections_but_keeps_open_ones() {
        let p = FaultProxy::start(echo().await).await;
        let mut open = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut open, b"a").await.unwrap();
        p.set_mode(Mode::Drop);
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        let _ = s.write_all(b"x").await;
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed promptly");
        assert!(
            matches!(n, Ok(0) | Err(_)),
            "no answer on a dropped connection: {n:?}"
        );
        assert_eq!(p.dropped(), 1);
        assert_eq!(p.accepted(), 2);
        roundtrip(&mut open, b"b").await.unwrap();
        p.set_mode(Mode::Pass);
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut s, b"back").await.unwrap();
    }

    #[tokio::test]
    async fn black_hole_reads_and_never_answers() {
        let p = FaultProxy::start(echo().await).await;
        let mut open = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut open, b"a").await.unwrap();
        p.set_mode(Mode::BlackHole);
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"anyone?").await.unwrap();
        let mut buf = [0u8; 8];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf))
                .await
                .is_err(),
            "a black hole never answers nor closes"
        );
        // An already open connection goes silent too.
        open.write_all(b"b").await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), open.read(&mut buf))
                .await
                .is_err()
        );
        assert_eq!(p.open_connections(), 2);
    }

    #[tokio::test]
    async fn reset_all_sends_rst_to_every_open_connection() {
        let p = FaultProxy::start(echo().await).await;
        let mut a = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut a, b"a").await.unwrap();
        p.set_mode(Mode::BlackHole);
        let mut b = TcpStream::connect(p.addr()).await.unwrap();
        b.write_all(b"b").await.unwrap();
        // Wait (bounded) until both connection tasks are running.
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.open_connections() < 2 {
            assert!(Instant::now() < deadline, "connections never opened");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(p.reset_all(), 2);
        for s in [&mut a, &mut b] {
            let mut buf = [0u8; 4];
            let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("reset arrives promptly");
            assert_eq!(
                r.map_err(|e| e.kind()),
                Err(std::io::ErrorKind::ConnectionReset),
                "RST, not FIN"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.open_connections() > 0 {
            assert!(Instant::now() < deadline, "connections not torn down");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        p.set_mode(Mode::Pass);
        let mut c = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut c, b"c").await.unwrap();
        assert_eq!(p.resets(), 1);
    }

    #[tokio::test]
    async fn lose_next_response_resets_one_http_connection_once() {
        let p = FaultProxy::start(echo().await).await;
        let mut ws = TcpStream::connect(p.addr()).await.unwrap();
        let up = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
        roundtrip(&mut ws, up).await.unwrap();
        p.set_mode(Mode::LoseNextResponse);
        // A WebSocket's traffic is spared.
        roundtrip(&mut ws, b"frame").await.unwrap();
        let mut http = TcpStream::connect(p.addr()).await.unwrap();
        http.write_all(b"POST /claim HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(5), http.read(&mut buf))
            .await
            .expect("reset arrives promptly");
        assert_eq!(
            r.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset),
            "the response was not delivered"
        );
        assert_eq!(p.mode(), Mode::Pass, "one-shot");
        let mut again = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut again, b"POST /claim again").await.unwrap();
    }

    #[tokio::test]
    async fn reset_websockets_spares_plain_http() {
        let p = FaultProxy::start(echo().await).await;
        let mut http = TcpStream::connect(p.addr()).await.unwrap();
        let get = b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n";
        roundtrip(&mut http, get).await.unwrap();
        let mut ws = TcpStream::connect(p.addr()).await.unwrap();
        let up =
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n";
        roundtrip(&mut ws, up).await.unwrap();
        assert_eq!(p.reset_websockets(), 1);
        let mut buf = [0u8; 4];
        let r = tokio::time::timeout(Duration::from_secs(5), ws.read(&mut buf))
            .await
            .expect("reset arrives promptly");
        assert_eq!(
            r.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset)
        );
        roundtrip(&mut http, b"still here").await.unwrap();
    }
}
