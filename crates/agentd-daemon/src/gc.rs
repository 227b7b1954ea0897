//! Garbage collection of task directories: a finished task's directory (marked by a
//! `.done` file when its run ended) is removed after a TTL (default 24 h), a directory
//! without the marker — a run the daemon lost track of, e.g. across a crash — after the
//! orphan TTL (default 72 h). A directory of a task running now is never touched, nor one
//! whose checkout a follow-up runs in now; a follow-up that reused a checkout rewrites its
//! marker when it ends, so a checkout lives for the TTL after the *last* run in it (the
//! window in which a follow-up may still continue there).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::daemon::Daemon;

/// Name of the marker a finished run leaves in its task directory.
pub const DONE_MARKER: &str = ".done";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub removed: Vec<String>,
    pub kept: usize,
}

fn age(p: &Path, now: SystemTime) -> Option<Duration> {
    let m = std::fs::metadata(p).ok()?.modified().ok()?;
    now.duration_since(m).ok()
}

/// One sweep of `<data_dir>/tasks`. `active` says whether a task id is running now.
pub fn sweep(
    data_dir: &Path,
    ttl: Duration,
    orphan_ttl: Duration,
    now: SystemTime,
    active: impl Fn(&str) -> bool,
) -> GcReport {
    let mut report = GcReport::default();
    let Ok(entries) = std::fs::read_dir(data_dir.join("tasks")) else {
        return report;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let id = entry.file_name().to_string_lossy().to_string();
        if !dir.is_dir() || active(&id) {
            report.kept += 1;
            continue;
        }
        let done = dir.join(DONE_MARKER);
        let expired = if done.exists() {
            age(&done, now).is_some_and(|a| a > ttl)
        } else {
            age(&dir, now).is_some_and(|a| a > orphan_ttl)
        };
        if !expired {
            report.kept += 1;
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => report.removed.push(id),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove task directory")
            }
        }
    }
    report
}

/// Sweeps every `gc_interval` until cancelled.
pub async fn gc_loop(d: Arc<Daemon>, cancel: CancellationToken) {
    loop {
        let this = Arc::clone(&d);
        let report = tokio::task::spawn_blocking(move || {
            let active = |id: &str| this.runner.dir_in_use(id);
            sweep(
                &this.cfg.data_dir,
                this.cfg.gc_ttl,
                this.cfg.gc_orphan_ttl,
                SystemTime::now(),
                active,
            )
        })
        .await
        .unwrap_or_default();
        if !report.removed.is_empty() {
            tracing::info!(
                removed = report.removed.len(),
                kept = report.kept,
                "removed old task directories"
            );
        }
        if cancel
            .run_until_cancelled(tokio::time::sleep(d.cfg.gc_interval))
            .await
            .is_none()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_expired_and_orphaned_dirs_never_active_ones() {
        let data = tempfile::tempdir().unwrap();
        let tasks = data.path().join("tasks");
        let hour = Duration::from_secs(3600);
        let mk = |id: &str, done: bool| {
            let d = tasks.join(id);
            std::fs::create_dir_all(d.join("work")).unwrap();
            if done {
                std::fs::write(d.join(DONE_MARKER), "").unwrap();
            }
        };
        mk("done-old", true);
        mk("done-new", true);
        mk("orphan-old", false);
        mk("orphan-new", false);
        mk("running", false);
        let now = SystemTime::now();
        // Pretend time passed: 30 h for "old" finished, 80 h for "old" orphans and the running one.
        let set = |p: std::path::PathBuf, ago: Duration| {
            std::fs::File::open(&p)
                .unwrap()
                .set_modified(now - ago)
                .unwrap();
        };
        set(tasks.join("done-old").join(DONE_MARKER), 30 * hour);
        set(tasks.join("orphan-old"), 80 * hour);
        set(tasks.join("running"), 80 * hour);
        let mut report = sweep(data.path(), 24 * hour, 72 * hour, now, |id| id == "running");
        report.removed.sort();
        assert_eq!(report.removed, ["done-old", "orphan-old"]);
        assert_eq!(report.kept, 3);
        assert!(tasks.join("running").exists());
    }
}
