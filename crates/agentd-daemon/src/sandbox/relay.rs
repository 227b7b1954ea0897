//! The in-sandbox half of the network allow-list. The sandbox has its own network
//! namespace (only `lo`), so the agent's proxy variables point at `127.0.0.1:3128` there;
//! this module owns the relay that accepts those TCP connections and pipes each to the
//! daemon's per-task proxy socket (bind-mounted into the sandbox), and the helper mode
//! ([`run_helper`]) that agentd's binary runs as the sandbox's command: start the relay,
//! run the agent CLI, forward signals to it, return its exit code.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::net::{TcpListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Exit code when the helper itself fails (cannot bind, no command, no runtime), as
/// `env(1)` does.
pub const EXIT_HELPER_FAILED: i32 = 125;
/// Exit code when the command exists but cannot be run.
pub const EXIT_CANNOT_RUN: i32 = 126;
/// Exit code when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Accepts TCP connections on `listener` (127.0.0.1:3128 inside the sandbox) and pipes
/// each to a new connection to the Unix socket `target`. Runs until `shutdown`, then drops
/// every open connection and returns.
pub async fn relay(listener: TcpListener, target: PathBuf, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let mut client = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: accept failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let target = target.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let pipe = async {
                let mut upstream = match UnixStream::connect(&target).await {
                    Ok(s) => s,
                    Err(e) => {
                        let target = target.display();
                        tracing::warn!(error = %e, %target, "relay: cannot reach the proxy socket");
                        return;
                    }
                };
                let _ = client.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = pipe => {}
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// The helper's whole job: bind `listen`, start the relay on a background tokio runtime
/// (thread), spawn `argv[0]` with `argv[1..]` (inherit stdio, env, cwd), forward
/// SIGTERM/SIGINT/SIGHUP it receives to the child, wait for it, and return the exit code to
/// use (child's code, or 128+signal). Errors (cannot bind, cannot spawn: ENOENT → 127) are
/// printed to stderr with a clear message naming what failed.
///
/// Must not be called from inside a tokio runtime (it builds and blocks on its own).
pub fn run_helper(listen: SocketAddr, target: PathBuf, argv: Vec<OsString>) -> i32 {
    let fail = |msg: String| {
        eprintln!("agentd sandbox helper: {msg}");
        EXIT_HELPER_FAILED
    };
    let Some((program, args)) = argv.split_first() else {
        return fail("no command to run".to_string());
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("agentd-relay")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the relay runtime: {e}")),
    };
    let listener = match rt.block_on(TcpListener::bind(listen)) {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {listen}: {e}")),
    };
    let shutdown = CancellationToken::new();
    let relay_task = rt.spawn(relay(listener, target, shutdown.clone()));

    let code = rt.block_on(async {
        // Handlers first, so a signal that arrives while the child starts is not lost.
        let mut streams = Vec::new();
        for (kind, sig) in [
            (SignalKind::terminate(), Signal::SIGTERM),
            (SignalKind::interrupt(), Signal::SIGINT),
            (SignalKind::hangup(), Signal::SIGHUP),
        ] {
            match signal(kind) {
                Ok(s) => streams.push((s, sig)),
                Err(e) => eprintln!("agentd sandbox helper: cannot watch {sig}: {e}"),
            }
        }
        let mut child = match tokio::process::Command::new(program).args(args).spawn() {
            Ok(c) => c,
            Err(e) => {
                let name = program.to_string_lossy();
                eprintln!("agentd sandbox helper: cannot run {name:?}: {e}");
                return match e.kind() {
                    std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
                    _ => EXIT_CANNOT_RUN,
                };
            }
        };
        loop {
            // `wait` is polled first: a signal is only forwarded while the child is not
            // yet reaped (alive or a zombie), so its pid cannot have been reused.
            let received = tokio::select! {
                biased;
                status = child.wait() => return exit_code(status, program),
                sig = next_signal(&mut streams) => sig,
            };
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = kill(Pid::from_raw(pid), received);
            }
        }
    });
    shutdown.cancel();
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(1), relay_task).await });
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

/// The code the helper exits with for the child's `status`: its code, or 128 + signal.
fn exit_code(status: std::io::Result<std::process::ExitStatus>, program: &OsString) -> i32 {
    match status {
        Ok(s) => s
            .code()
            .or(s.signal().map(|n| 128 + n))
            .unwrap_or(EXIT_HELPER_FAILED),
        Err(e) => {
            let name = program.to_string_lossy();
            eprintln!("agentd sandbox helper: cannot wait for {name:?}: {e}");
            EXIT_HELPER_FAILED
        }
    }
}

/// The next signal any of `streams` receives (pending forever if there are none).
async fn next_signal(streams: &mut [(tokio::signal::unix::Signal, Signal)]) -> Signal {
    let futures = streams.iter_mut().map(|(s, sig)| {
        let sig = *sig;
        Box::pin(async move {
            if s.recv().await.is_none() {
                // The runtime is going away: nothing more will arrive.
                std::future::pending::<()>().await;
            }
            sig
        })
    });
    let futures: Vec<_> = futures.collect();
    if futures.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(futures).await.0
}
