//! User-facing commands (server, up, workspace, …).
use tokio_util::sync::CancellationToken;

#[derive(clap::Subcommand, Debug)]
pub enum Command {}

pub async fn run(cmd: Command, _shutdown: CancellationToken) -> anyhow::Result<()> {
    match cmd {}
}
