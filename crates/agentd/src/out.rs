//! Standard output for the CLI: [`outln!`] writes a line like `println!` but never panics
//! when the reader went away (`agentd issue list | head -1`, `… | grep -q x`). A client
//! command then exits quietly with 141, as a Unix tool killed by SIGPIPE does; the
//! long-running commands (`server`, `up`, `daemon`) ignore the error and keep running.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static EXIT_ON_BROKEN_PIPE: AtomicBool = AtomicBool::new(false);

/// Makes a closed stdout end the process (for the short-lived client commands).
pub fn exit_on_broken_pipe() {
    EXIT_ON_BROKEN_PIPE.store(true, Ordering::Relaxed);
}

/// Writes `args` and a newline to stdout.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let res = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = res
        && e.kind() == std::io::ErrorKind::BrokenPipe
        && EXIT_ON_BROKEN_PIPE.load(Ordering::Relaxed)
    {
        std::process::exit(141);
    }
}

/// `println!` for the CLI's output: see the module doc.
#[macro_export]
macro_rules! outln {
    () => { $crate::out::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*)) };
}
