//! The durable outbox: everything the daemon owes the server about tasks — start,
//! messages, usage, progress, session and the final complete/fail — is written to disk
//! *before* it is sent and removed only when the server acknowledged it (or refused it
//! for good). One sender replays the records in order; after a network blip, a server
//! restart or a daemon restart (even SIGKILL) nothing reported is lost, and the server's
//! upsert on (task, seq) keeps replays from doubling anything.
//!
//! Layout: `<data_dir>/outbox/<20-digit counter>.json`, each `{"task_id", "endpoint",
//! "body"}`, written by [`crate::fsutil::write_atomic`] (temp file, fsync, rename, fsync
//! of the directory) on a dedicated writer thread, so no fsync ever runs on the async
//! runtime's workers. The counter starts past the highest file present, so order
//! survives restarts. A record the writer cannot put on disk (disk full) is kept in
//! memory and sent all the same.
//!
//! Delivery rules:
//! - order is kept per task; a record that keeps failing holds back only the later
//!   records *of its task*, never other tasks' reports;
//! - a body over the server's limit (413) is made smaller, never dropped: a message
//!   batch is split, a final report's text truncated with a marker;
//! - a record that cannot be read or parsed is set aside (`*.unreadable`,
//!   `*.corrupt`), never deleted;
//! - every answer says where the task stands ([`ReportResponse`]): a terminal status (or
//!   a 404 `task not found`) is handed to the `on_task_over` callback, which stops the
//!   agent.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_proto::{ReportResponse, TaskStatus};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiError, Client};
use crate::backoff::Backoff;
use crate::fsutil::lock;

/// Which task endpoint a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Start,
    Progress,
    Messages,
    Usage,
    Session,
    Complete,
    Fail,
    /// A branch pushed after the task's final report (agentd's server only).
    Pushed,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Start => "start",
            Endpoint::Progress => "progress",
            Endpoint::Messages => "messages",
            Endpoint::Usage => "usage",
            Endpoint::Session => "session",
            Endpoint::Complete => "complete",
            Endpoint::Fail => "fail",
            Endpoint::Pushed => "pushed",
        }
    }

    fn parse(s: &str) -> Option<Endpoint> {
        Some(match s {
            "start" => Endpoint::Start,
            "progress" => Endpoint::Progress,
            "messages" => Endpoint::Messages,
            "usage" => Endpoint::Usage,
            "session" => Endpoint::Session,
            "complete" => Endpoint::Complete,
            "fail" => Endpoint::Fail,
            "pushed" => Endpoint::Pushed,
            _ => return None,
        })
    }
}

/// One report owed to the server.
#[derive(Debug, Clone)]
pub struct Record {
    pub task_id: String,
    pub endpoint: Endpoint,
    pub body: Value,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        json!({ "task_id": self.task_id, "endpoint": self.endpoint.as_str(), "body": self.body })
            .to_string()
            .into_bytes()
    }

    fn decode(text: &str) -> Option<Record> {
        let v: Value = serde_json::from_str(text).ok()?;
        Some(Record {
            task_id: v.get("task_id")?.as_str()?.to_string(),
            endpoint: Endpoint::parse(v.get("endpoint")?.as_str()?)?,
            body: v.get("body")?.clone(),
        })
    }

    fn path(&self) -> String {
        format!(
            "/api/daemon/tasks/{}/{}",
            self.task_id,
            self.endpoint.as_str()
        )
    }
}

/// Called when the server says a task is over (terminal status, or 404 `task not
/// found`, passed as [`TaskStatus::Unknown`]).
pub type OnTaskOver = Arc<dyn Fn(&str, TaskStatus) + Send + Sync>;

enum ToWriter {
    Write { n: u64, record: Record },
    Barrier(std::sync::mpsc::Sender<()>),
}

/// Where a pending record is.
enum Pending {
    Disk(u64, PathBuf),
    Memory(u64, Record),
}

impl Pending {
    fn n(&self) -> u64 {
        match self {
            Pending::Disk(n, _) | Pending::Memory(n, _) => *n,
        }
    }
}

/// The task of every undelivered record, by its counter.
///
/// **Invariant:** holds exactly the records pushed (or found on disk at open) and not yet
/// delivered, refused for good or set aside — keyed by the record's counter, so a record
/// set aside without being readable still leaves it.
#[derive(Default)]
struct Owed(BTreeMap<u64, String>);

pub struct Outbox {
    dir: PathBuf,
    next: AtomicU64,
    wake: Arc<Notify>,
    writer: std::sync::mpsc::Sender<ToWriter>,
    /// Records the writer could not put on disk, by counter; sent in order with the rest.
    memory: Arc<Mutex<BTreeMap<u64, Record>>>,
    owed: Mutex<Owed>,
}

impl Outbox {
    /// Opens (creating) the outbox directory, counts what a previous run left and starts
    /// the writer thread.
    pub fn open(dir: &Path) -> std::io::Result<Outbox> {
        crate::fsutil::create_private_dir(dir)?;
        let mut max = 0;
        let mut owed = Owed::default();
        for (n, path) in scan(dir)? {
            max = max.max(n);
            if let Some(r) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| Record::decode(&t))
            {
                owed.0.insert(n, r.task_id);
            }
        }
        let (tx, rx) = std::sync::mpsc::channel::<ToWriter>();
        let wake = Arc::new(Notify::new());
        let memory: Arc<Mutex<BTreeMap<u64, Record>>> = Arc::default();
        {
            let (dir, wake, memory) = (dir.to_path_buf(), Arc::clone(&wake), Arc::clone(&memory));
            std::thread::Builder::new()
                .name("agentd-outbox".into())
                .spawn(move || writer_thread(&dir, rx, &wake, &memory))?;
        }
        Ok(Outbox {
            dir: dir.to_path_buf(),
            next: AtomicU64::new(max + 1),
            wake,
            writer: tx,
            memory,
            owed: Mutex::new(owed),
        })
    }

    /// Queues a record: it gets its place in the order now and is on disk shortly after
    /// (the writer thread fsyncs it), before the sender can see it. Never blocks on I/O.
    pub fn push(&self, task_id: &str, endpoint: Endpoint, body: Value) {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let record = Record {
            task_id: task_id.to_string(),
            endpoint,
            body,
        };
        lock(&self.owed).0.insert(n, task_id.to_string());
        if let Err(std::sync::mpsc::SendError(ToWriter::Write { n, record })) =
            self.writer.send(ToWriter::Write { n, record })
        {
            // The writer thread is gone (it never exits while we live; defensive): keep
            // the record in memory rather than lose it.
            lock(&self.memory).insert(n, record);
            self.wake.notify_one();
        }
    }

    /// Waits until every record pushed so far is on disk (or kept in memory).
    pub fn flushed(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.writer.send(ToWriter::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Tasks with records not yet delivered: the daemon still holds them.
    pub fn owed_tasks(&self) -> Vec<String> {
        let owed: HashSet<String> = lock(&self.owed).0.values().cloned().collect();
        owed.into_iter().collect()
    }

    /// Number of records not yet delivered.
    pub fn pending_count(&self) -> usize {
        lock(&self.owed).0.len()
    }

    fn pending(&self) -> Vec<Pending> {
        let mut out: Vec<Pending> = scan(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .map(|(n, p)| Pending::Disk(n, p))
            .collect();
        out.extend(
            lock(&self.memory)
                .iter()
                .map(|(n, r)| Pending::Memory(*n, r.clone())),
        );
        out.sort_by_key(Pending::n);
        out
    }

    /// Loads a pending record; an unreadable or corrupt file is set aside (renamed, never
    /// deleted) and no longer owed, so its task's lease is not held forever.
    fn load(&self, p: &Pending) -> Option<Record> {
        let (n, path) = match p {
            Pending::Memory(_, r) => return Some(r.clone()),
            Pending::Disk(n, path) => (*n, path),
        };
        let why = match std::fs::read_to_string(path) {
            Ok(text) => match Record::decode(&text) {
                Some(r) => return Some(r),
                None => "corrupt",
            },
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read an outbox record");
                "unreadable"
            }
        };
        if set_aside(path, why) {
            lock(&self.owed).0.remove(&n);
        }
        None
    }

    /// The record left the outbox (delivered, or refused for good).
    fn settle(&self, p: &Pending) {
        match p {
            Pending::Disk(_, path) => {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a delivered outbox record");
                }
            }
            Pending::Memory(n, _) => {
                lock(&self.memory).remove(n);
            }
        }
        lock(&self.owed).0.remove(&p.n());
    }
}

fn scan(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.parse::<u64>().ok()?, p)))
        .collect();
    files.sort();
    Ok(files)
}

/// Renames a bad record out of the way (`*.corrupt`, `*.unreadable`); false when even
/// that failed and it stays where it is.
fn set_aside(path: &Path, why: &str) -> bool {
    let aside = path.with_extension(why);
    match std::fs::rename(path, &aside) {
        Ok(()) => {
            tracing::error!(path = %path.display(), aside = %aside.display(), "outbox record set aside ({why}); it is kept for inspection");
            true
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot set aside an {why} outbox record; it stays where it is");
            false
        }
    }
}

fn writer_thread(
    dir: &Path,
    rx: std::sync::mpsc::Receiver<ToWriter>,
    wake: &Notify,
    memory: &Mutex<BTreeMap<u64, Record>>,
) {
    for msg in rx {
        match msg {
            ToWriter::Barrier(done) => {
                let _ = done.send(());
            }
            ToWriter::Write { n, record } => {
                let path = dir.join(format!("{n:020}.json"));
                if let Err(e) = crate::fsutil::write_atomic(&path, &record.encode()) {
                    tracing::error!(task_id = %record.task_id, error = %e, "cannot write the outbox (disk full?); keeping the report in memory");
                    lock(memory).insert(n, record);
                }
                wake.notify_one();
            }
        }
    }
}

/// What became of one record after a delivery attempt.
pub enum Sent {
    /// Delivered, or refused for good: it leaves the outbox.
    Done,
    /// Not delivered; try again later.
    Retry(ApiError),
}

/// How much text a final report keeps when the server says it is too large.
const SHRUNK_TEXT_BYTES: usize = 64 * 1024;

fn truncate_text(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n… [truncated {} bytes: the report was over the server's size limit]",
        &s[..cut],
        s.len() - cut
    )
}

/// Makes a record the server refused as too large (413) smaller: a message batch is
/// split in two, a single message or a final report gets its text fields truncated.
/// `None`: it cannot get smaller.
fn shrink(r: &Record) -> Option<Vec<Record>> {
    let part = |body: Value| Record {
        task_id: r.task_id.clone(),
        endpoint: r.endpoint,
        body,
    };
    let cut_fields = |mut v: Value, fields: &[&str], max: usize| -> Option<Value> {
        let mut changed = false;
        for f in fields {
            // The slack leaves a text already cut (with its marker) alone.
            if let Some(s) = v.get(*f).and_then(Value::as_str)
                && s.len() > max + 512
            {
                v[*f] = Value::String(truncate_text(s, max));
                changed = true;
            }
        }
        changed.then_some(v)
    };
    match r.endpoint {
        Endpoint::Messages => {
            let msgs = r.body.get("messages")?.as_array()?;
            if msgs.len() > 1 {
                let (a, b) = msgs.split_at(msgs.len() / 2);
                return Some(vec![
                    part(json!({ "messages": a })),
                    part(json!({ "messages": b })),
                ]);
            }
            let one = msgs.first()?.clone();
            let one = cut_fields(one, &["content", "output"], 8 * 1024)?;
            Some(vec![part(json!({ "messages": [one] }))])
        }
        Endpoint::Complete | Endpoint::Fail => {
            // The diff's patch goes first (the diffstat stays), then the text.
            if let Some(body) = cut_patch(&r.body) {
                return Some(vec![part(body)]);
            }
            let field = if r.endpoint == Endpoint::Complete {
                "output"
            } else {
                "error"
            };
            cut_fields(r.body.clone(), &[field], SHRUNK_TEXT_BYTES).map(|b| vec![part(b)])
        }
        _ => None,
    }
}

/// `body` with its `diff.patch` replaced by a marker (`None` when there is no patch left
/// to cut).
fn cut_patch(body: &Value) -> Option<Value> {
    let patch = body.get("diff")?.get("patch")?.as_str()?;
    if patch.is_empty() {
        return None;
    }
    let mut body = body.clone();
    let marker = format!(
        "… [patch of {} bytes left out: the report was over the server's size limit]\n",
        patch.len()
    );
    body["diff"]["patch"] = Value::String(marker);
    body["diff"]["truncated"] = Value::Bool(true);
    Some(body)
}

/// Delivers one record, shrinking it when the server says it is too large, and tells
/// `on_over` when the answer says the task is over.
pub async fn deliver(client: &Client, r: &Record, on_over: &OnTaskOver) -> Sent {
    let mut queue = vec![r.clone()];
    while let Some(next) = queue.pop() {
        match client.post_report(&next.path(), &next.body).await {
            // The answer to a final report is its acknowledgement, not news of an end.
            Ok(ReportResponse {
                task_status: Some(s),
                ..
            }) if s.is_terminal()
                && !matches!(
                    r.endpoint,
                    Endpoint::Complete | Endpoint::Fail | Endpoint::Pushed
                ) =>
            {
                on_over(&r.task_id, s)
            }
            Ok(_) => {}
            Err(ApiError::TaskNotFound { .. }) => {
                tracing::warn!(task_id = %r.task_id, endpoint = r.endpoint.as_str(), "task deleted on the server; dropping its report");
                on_over(&r.task_id, TaskStatus::Unknown);
                return Sent::Done;
            }
            Err(e) if e.status() == Some(413) => match shrink(&next) {
                Some(parts) => {
                    tracing::warn!(task_id = %r.task_id, endpoint = r.endpoint.as_str(), parts = parts.len(), "report over the server's size limit; sending it smaller");
                    queue.extend(parts.into_iter().rev());
                }
                None => {
                    tracing::error!(task_id = %r.task_id, endpoint = r.endpoint.as_str(), error = %e, "report over the server's size limit and cannot be made smaller; dropping it");
                }
            },
            Err(e) if e.is_transient() || matches!(e, ApiError::Unauthorized { .. }) => {
                return Sent::Retry(e);
            }
            Err(e) => {
                // The server refused this record for good (4xx): keep going with the rest.
                tracing::error!(task_id = %r.task_id, endpoint = r.endpoint.as_str(), error = %e, "server rejected a task report; dropping it");
            }
        }
    }
    Sent::Done
}

/// One pass over everything pending. Returns (delivered any, last retryable error).
async fn pass(
    client: &Client,
    outbox: &Outbox,
    on_over: &OnTaskOver,
    cancel: &CancellationToken,
) -> Option<(bool, Option<ApiError>)> {
    let mut held_back: HashSet<String> = HashSet::new();
    let mut progressed = false;
    let mut last_err = None;
    for p in outbox.pending() {
        let Some(r) = outbox.load(&p) else {
            // Set aside (and no longer owed), or left in place after a failed rename.
            continue;
        };
        if held_back.contains(&r.task_id) {
            continue;
        }
        match cancel
            .run_until_cancelled(deliver(client, &r, on_over))
            .await?
        {
            Sent::Done => {
                outbox.settle(&p);
                progressed = true;
            }
            Sent::Retry(e) => {
                let whole_server = matches!(
                    e,
                    ApiError::Transport { .. } | ApiError::Unauthorized { .. }
                );
                tracing::warn!(task_id = %r.task_id, endpoint = r.endpoint.as_str(), error = %e, "task report not delivered; will retry");
                last_err = Some(e);
                if whole_server {
                    break;
                }
                held_back.insert(r.task_id.clone());
            }
        }
    }
    Some((progressed, last_err))
}

/// The sender loop: replays pending records in order, retrying what failed with backoff
/// (1 s → 30 s, full jitter) forever — a report is never given up on a timer.
/// `on_error` sees each retryable failure (for the health endpoint).
pub async fn sender(
    client: Client,
    outbox: Arc<Outbox>,
    on_over: OnTaskOver,
    on_error: Arc<dyn Fn(&ApiError) + Send + Sync>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let wait = outbox.wake.notified();
        tokio::pin!(wait);
        wait.as_mut().enable();
        let Some((progressed, err)) = pass(&client, &outbox, &on_over, &cancel).await else {
            return;
        };
        if let Some(e) = err {
            on_error(&e);
            if progressed {
                backoff.reset();
            }
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
        backoff.reset();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wait => {}
        }
    }
}

/// Sends what is pending until the outbox is empty or `deadline` passes (shutdown).
pub async fn drain(
    client: &Client,
    outbox: &Arc<Outbox>,
    on_over: &OnTaskOver,
    deadline: Duration,
) {
    let stop = CancellationToken::new();
    let _ = tokio::time::timeout(deadline, async {
        let ob = Arc::clone(outbox);
        let _ = tokio::task::spawn_blocking(move || ob.flushed()).await;
        pass(client, outbox, on_over, &stop).await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ob: &Outbox) -> Vec<String> {
        ob.flushed();
        ob.pending()
            .iter()
            .map(|p| match p {
                Pending::Disk(_, path) => std::fs::read_to_string(path).unwrap(),
                Pending::Memory(_, r) => String::from_utf8(r.encode()).unwrap(),
            })
            .collect()
    }

    #[test]
    fn records_persist_in_order_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        ob.push("t1", Endpoint::Messages, json!({"messages": []}));
        ob.push("t1", Endpoint::Complete, json!({"output": "ok"}));
        ob.flushed();
        drop(ob);
        let ob = Outbox::open(dir.path()).unwrap();
        assert_eq!(ob.owed_tasks(), ["t1"], "owed counts survive a reopen");
        ob.push("t2", Endpoint::Fail, json!({"error": "x"}));
        let names = names(&ob);
        assert_eq!(names.len(), 3);
        assert!(
            names[0].contains("messages")
                && names[1].contains("complete")
                && names[2].contains("t2")
        );
        let mut owed = ob.owed_tasks();
        owed.sort();
        assert_eq!(owed, ["t1", "t2"]);
        assert_eq!(ob.pending_count(), 3);
    }

    #[test]
    fn a_corrupt_record_is_set_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{:020}.json", 7)), "{not json").unwrap();
        let ob = Outbox::open(dir.path()).unwrap();
        let p = ob.pending();
        assert_eq!(p.len(), 1);
        assert!(ob.load(&p[0]).is_none());
        assert!(dir.path().join(format!("{:020}.corrupt", 7)).exists());
        assert!(ob.pending().is_empty());

        // A record of ours that became unreadable no longer holds its task.
        ob.push("t9", Endpoint::Complete, json!({"output": "ok"}));
        ob.flushed();
        assert_eq!(ob.owed_tasks(), ["t9"]);
        let p = ob.pending();
        let Pending::Disk(_, path) = &p[0] else {
            panic!("written to disk")
        };
        std::fs::write(path, "garbage").unwrap();
        assert!(ob.load(&p[0]).is_none());
        assert!(ob.owed_tasks().is_empty(), "a set-aside record is not owed");
    }

    #[test]
    fn oversized_reports_shrink_instead_of_being_dropped() {
        let msgs: Vec<Value> = (0..4).map(|i| json!({"seq": i, "type": "text"})).collect();
        let r = Record {
            task_id: "t".into(),
            endpoint: Endpoint::Messages,
            body: json!({ "messages": msgs }),
        };
        let parts = shrink(&r).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body["messages"][0]["seq"], 0);
        assert_eq!(parts[1].body["messages"][0]["seq"], 2);

        let big = "x".repeat(SHRUNK_TEXT_BYTES * 3);
        let r = Record {
            task_id: "t".into(),
            endpoint: Endpoint::Complete,
            body: json!({ "output": big, "branch_name": "b" }),
        };
        let parts = shrink(&r).unwrap();
        let out = parts[0].body["output"].as_str().unwrap();
        assert!(out.len() < SHRUNK_TEXT_BYTES + 200 && out.contains("truncated"));
        assert_eq!(parts[0].body["branch_name"], "b");
        assert!(
            shrink(&parts[0]).is_none(),
            "already small: cannot shrink further"
        );
        let usage = Record {
            task_id: "t".into(),
            endpoint: Endpoint::Usage,
            body: json!({}),
        };
        assert!(shrink(&usage).is_none());
    }
}
