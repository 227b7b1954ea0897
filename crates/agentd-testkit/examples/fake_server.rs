//! A standalone fake daemon-API server, for manual runs and `scripts/measure-footprint.sh`.
//!
//! Accepts token `tok`, lists workspace `ws-1`, prints its base URL on stdout and runs
//! until Ctrl-C or SIGTERM.

use std::io::Write;

use agentd_testkit::fake_server::FakeServer;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let server = FakeServer::start("tok", &["ws-1"]).await;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", server.url)?;
    out.flush()?;
    drop(out);

    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    drop(server);
    Ok(())
}
