//! A standalone mock model API ([`agentd_testkit::mock_model::MockModel`]), for pointing an
//! agent CLI at it by hand (e.g. when adding a backend and recording its fixtures).
//!
//! Prints its base URL on stdout, then one line per request it receives (API, method, URI,
//! script and turn; the body too with `--bodies`) on stderr, until Ctrl-C or SIGTERM.

use std::io::Write;
use std::time::Duration;

use agentd_testkit::mock_model::MockModel;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let bodies = std::env::args().any(|a| a == "--bodies");
    let mock = MockModel::start(vec![]).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", mock.base_url())?;
    out.flush()?;
    drop(out);

    let mut term = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut seen = 0;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r?; break; }
            _ = term.recv() => break,
            _ = tick.tick() => {
                let requests = mock.requests();
                for r in &requests[seen..] {
                    eprintln!("{:?} {} {} scenario={:?} turn={}", r.api, r.method, r.uri, r.scenario, r.turn);
                    if bodies {
                        eprintln!("  {}", r.body);
                    }
                }
                seen = requests.len();
            }
        }
    }
    Ok(())
}
