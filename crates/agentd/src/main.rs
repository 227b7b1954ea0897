//! The `agentd` binary: daemon, server and CLI in one executable.
//!
//! **Architecture Invariant:** this crate is the only one that reads config files, the
//! environment and flags, installs the tracing subscriber, prints for humans, or uses
//! anyhow. The libraries take plain config structs and a cancellation token.

mod cli;
mod commands;
mod config;
mod daemon_cmd;
mod error;
mod out;
mod style;

use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // The sandbox helpers run before any runtime or logging: one execs, the other runs
    // the agent and must print nothing of its own on stdout.
    let cli = match cli.command {
        cli::Command::SandboxExec(args) => return sandbox_exec(args),
        cli::Command::SandboxRelay(args) => return sandbox_relay(args),
        _ => cli,
    };
    init_tracing(&cli.log);
    let (json, verbose) = match &cli.command {
        cli::Command::Other(cmd) => (cmd.wants_json(), cli.verbose),
        _ => (false, cli.verbose),
    };
    if let cli::Command::Other(cmd) = &cli.command
        && !cmd.runs_until_stopped()
    {
        out::exit_on_broken_pipe();
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        match cli.command {
            cli::Command::Daemon(args) => daemon_cmd::run(args, shutdown).await,
            cli::Command::Other(cmd) => commands::run(cmd, shutdown).await,
            cli::Command::SandboxExec(_) | cli::Command::SandboxRelay(_) => Ok(()),
        }
    });
    // Background tasks (and blocking reads of stdin) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => report(&e, json, verbose),
    }
}

/// Prints an error for people (or as one JSON object on stderr under `--json`) and
/// picks its exit code.
fn report(e: &anyhow::Error, json: bool, verbose: bool) -> std::process::ExitCode {
    let err = error::classify(e);
    if json {
        eprintln!("{}", err.to_json());
    } else if !err.reported {
        eprintln!("{}", err.render(verbose, style::stderr_colour()));
    }
    std::process::ExitCode::from(err.kind.exit_code())
}

/// `agentd sandbox-exec`: enters the run's limits, then becomes its command (same pid,
/// so the daemon supervises what it spawned).
fn sandbox_exec(args: cli::SandboxExecArgs) -> std::process::ExitCode {
    use std::os::unix::process::CommandExt;
    let limits = agentd_daemon::sandbox::Limits {
        memory_bytes: args.memory,
        max_processes: args.pids,
    };
    match agentd_daemon::sandbox::limits::enter(&limits, &args.run) {
        Ok(entered) => {
            if let Some(a) = entered.memory {
                eprintln!(
                    "agentd: memory limit {} bytes via {a}",
                    args.memory.unwrap_or(0)
                );
            }
            if let Some(a) = entered.processes {
                eprintln!("agentd: process limit {} via {a}", args.pids.unwrap_or(0));
            }
        }
        Err(e) => {
            eprintln!("agentd sandbox-exec: cannot apply the run's limits: {e}");
            return std::process::ExitCode::from(125);
        }
    }
    let err = std::process::Command::new(&args.command[0])
        .args(&args.command[1..])
        .exec();
    eprintln!(
        "agentd sandbox-exec: cannot execute {}: {err}",
        std::path::Path::new(&args.command[0]).display()
    );
    std::process::ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// `agentd sandbox-relay`: the in-sandbox end of the egress proxy.
fn sandbox_relay(args: cli::SandboxRelayArgs) -> std::process::ExitCode {
    let code = agentd_daemon::sandbox::relay::run_helper(args.listen, args.socket, args.command);
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(style::stderr_colour())
        .init();
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit at once.
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down (send the signal again to force)");
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("agentd: forced exit");
    std::process::exit(130);
}
