//! The durable outbox: everything the daemon owes the server about tasks — start,
//! messages, usage, progress, session and the final complete/fail — is written to disk
//! *before* it is sent and removed only when the server acknowledged it. One sender
//! replays the files in order; after a network blip, a server restart or a daemon restart
//! (even SIGKILL) nothing reported is lost, and the server's upsert on (task, seq) keeps
//! replays from doubling anything.
//!
//! Layout: `<data_dir>/outbox/<20-digit counter>.json`, each `{"task_id", "endpoint",
//! "body"}`, written to a temp file, fsynced and renamed (atomic). The counter starts past
//! the highest file present, so order survives restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::backoff::Backoff;
use crate::daemon::Daemon;

/// Which task endpoint a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Progress,
    Messages,
    Usage,
    Session,
    Complete,
    Fail,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Progress => "progress",
            Endpoint::Messages => "messages",
            Endpoint::Usage => "usage",
            Endpoint::Session => "session",
            Endpoint::Complete => "complete",
            Endpoint::Fail => "fail",
        }
    }

    fn parse(s: &str) -> Option<Endpoint> {
        Some(match s {
            "progress" => Endpoint::Progress,
            "messages" => Endpoint::Messages,
            "usage" => Endpoint::Usage,
            "session" => Endpoint::Session,
            "complete" => Endpoint::Complete,
            "fail" => Endpoint::Fail,
            _ => return None,
        })
    }
}

pub struct Outbox {
    dir: PathBuf,
    next: AtomicU64,
    wake: Notify,
}

impl Outbox {
    pub fn open(dir: &Path) -> std::io::Result<Outbox> {
        std::fs::create_dir_all(dir)?;
        let max = Self::scan(dir)?
            .iter()
            .filter_map(|p| p.file_stem()?.to_str()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        Ok(Outbox {
            dir: dir.to_path_buf(),
            next: AtomicU64::new(max + 1),
            wake: Notify::new(),
        })
    }

    fn scan(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Pending records, oldest first.
    pub fn pending(&self) -> std::io::Result<Vec<PathBuf>> {
        Self::scan(&self.dir)
    }

    /// Persists a record (durably) and wakes the sender.
    pub fn push(&self, task_id: &str, endpoint: Endpoint, body: Value) -> std::io::Result<()> {
        use std::io::Write;
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let name = format!("{n:020}.json");
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let record = json!({ "task_id": task_id, "endpoint": endpoint.as_str(), "body": body });
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(record.to_string().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join(&name))
        };
        write().inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        self.wake.notify_one();
        Ok(())
    }
}

/// What to do with a record after one send attempt.
enum Sent {
    Done,
    Retry(ApiError),
}

async fn send_record(d: &Daemon, path: &Path) -> Sent {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read outbox record; leaving it");
            return Sent::Done;
        }
    };
    let parsed: Option<(String, Endpoint, Value)> =
        serde_json::from_str::<Value>(&text).ok().and_then(|v| {
            let task = v.get("task_id")?.as_str()?.to_string();
            let ep = Endpoint::parse(v.get("endpoint")?.as_str()?)?;
            Some((task, ep, v.get("body")?.clone()))
        });
    let Some((task_id, endpoint, body)) = parsed else {
        let bad = path.with_extension("corrupt");
        tracing::error!(path = %path.display(), "corrupt outbox record; set aside as {}", bad.display());
        let _ = std::fs::rename(path, bad);
        return Sent::Done;
    };
    let api_path = format!("/api/daemon/tasks/{task_id}/{}", endpoint.as_str());
    match d.client.post_value(&api_path, &body).await {
        Ok(()) => Sent::Done,
        Err(ApiError::TaskNotFound { .. }) => {
            tracing::warn!(
                task_id,
                endpoint = endpoint.as_str(),
                "task deleted on the server; dropping its report"
            );
            Sent::Done
        }
        Err(e) if e.is_transient() || matches!(e, ApiError::Unauthorized { .. }) => Sent::Retry(e),
        Err(e) => {
            // The server refused this record for good (4xx): keep going with the rest.
            tracing::error!(task_id, endpoint = endpoint.as_str(), error = %e, "server rejected a task report; dropping it");
            Sent::Done
        }
    }
}

/// The sender loop: replays pending records in order, retrying transient failures with
/// backoff (1 s → 30 s, full jitter) forever — a report is never given up on a timer.
pub async fn sender(d: Arc<Daemon>, outbox: Arc<Outbox>, cancel: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let files = outbox.pending().unwrap_or_default();
        let wait = outbox.wake.notified();
        tokio::pin!(wait);
        wait.as_mut().enable();
        let mut failed = false;
        for f in files {
            match cancel.run_until_cancelled(send_record(&d, &f)).await {
                None => return,
                Some(Sent::Done) => {
                    let _ = std::fs::remove_file(&f);
                    backoff.reset();
                }
                Some(Sent::Retry(e)) => {
                    d.note_api_error(&e);
                    tracing::warn!(error = %e, "task report not delivered; will retry");
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            let delay = backoff.next_delay();
            if cancel
                .run_until_cancelled(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wait => {}
        }
    }
}

/// Sends what is pending until the outbox is empty or `deadline` passes (shutdown).
pub async fn drain(d: &Daemon, outbox: &Outbox, deadline: Duration) {
    let _ = tokio::time::timeout(deadline, async {
        for f in outbox.pending().unwrap_or_default() {
            match send_record(d, &f).await {
                Sent::Done => {
                    let _ = std::fs::remove_file(&f);
                }
                Sent::Retry(_) => return,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_persist_in_order_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        ob.push("t1", Endpoint::Messages, json!({"messages": []}))
            .unwrap();
        ob.push("t1", Endpoint::Complete, json!({"output": "ok"}))
            .unwrap();
        drop(ob);
        let ob = Outbox::open(dir.path()).unwrap();
        ob.push("t2", Endpoint::Fail, json!({"error": "x"}))
            .unwrap();
        let names: Vec<String> = ob
            .pending()
            .unwrap()
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        assert_eq!(names.len(), 3);
        assert!(
            names[0].contains("messages")
                && names[1].contains("complete")
                && names[2].contains("t2")
        );
    }
}
