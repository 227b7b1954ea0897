//! A standalone mock model API (`agentd_testkit::mock_model`), for pointing an agent CLI
//! at it by hand (recording fixtures, trying a new CLI).
//!
//! Prints its base URL on stdout; with `--dump FILE` it appends every request it receives
//! (API, URI, script, turn, body) to FILE as JSON lines, once a second. Runs until Ctrl-C
//! or SIGTERM.

use std::io::Write;
use std::time::Duration;

use agentd_testkit::mock_model::MockModel;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dump = args
        .iter()
        .position(|a| a == "--dump")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let mock = MockModel::start(vec![]).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", mock.base_url())?;
    out.flush()?;
    drop(out);

    let mut term = signal(SignalKind::terminate())?;
    let mut written = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r?; break; }
            _ = term.recv() => break,
            _ = tick.tick() => {}
        }
        if let Some(path) = &dump {
            let requests = mock.requests();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            for r in &requests[written..] {
                let line = json!({"api": format!("{:?}", r.api), "method": r.method, "uri": r.uri,
                                  "scenario": r.scenario, "turn": r.turn, "body": r.body});
                writeln!(f, "{line}")?;
            }
            written = requests.len();
        }
    }
    Ok(())
}
