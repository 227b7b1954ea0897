//! Runtime liveness, kept in memory and written to the database in batches.
//!
//! A heartbeat (HTTP or WS) or a claim is a *sign of life*. Writing each one would make
//! the database's single writer (SQLite) or its WAL (PostgreSQL) the ceiling of heartbeat
//! throughput, so signs of life go to [`Liveness`], one map per server instance, and reach
//! the database in three ways:
//!
//! - **at once** when this instance does not know the runtime as online in the database:
//!   the first sign of life it sees for a runtime, one after the runtime was shown offline
//!   or deleted (any instance's `runtime` event makes every instance forget it), and an
//!   HTTP heartbeat for a runtime the database shows offline. That write is the old
//!   `touch_runtime` (+ lease renewal), so offline → online is written, and told to
//!   boards, immediately;
//! - **in batches** by the flusher every `liveness_flush_interval` (1 s): the runtimes
//!   whose latest sign of life is at least `liveness_write_every` (5 s) newer than what
//!   this instance last wrote for them, in one write transaction
//!   ([`crate::store::LivenessStore::write_liveness`]) — `last_seen_at` and the leases
//!   the heartbeats renewed, each only ever moved forward;
//! - **forced**, everything pending, before each sweep, before the WS-close grace check,
//!   and at shutdown.
//!
//! **The rule (staleness bound).** What the database holds for a runtime — its
//! `last_seen_at`, and the `held_at` of the tasks its heartbeats listed — is never more
//! than `liveness_write_every + liveness_flush_interval` behind what the instance that
//! received those heartbeats knows ([`crate::ServerConfig::liveness_lag`], while the
//! database takes writes). Every decision that fails or hides something — a lease
//! expiring, a runtime shown offline — reads the database, never this map, so an instance
//! that did not receive the heartbeat decides the same way. The sweeper forces this
//! instance's flush first, and, when other instances share the database
//! ([`crate::bus::Bus::is_shared`]), gives them that lag on top of the lease: a task
//! whose daemon heartbeats within its lease, on any instance, is never failed.
//! *Proved by* `batched_heartbeats_renew_leases_through_a_sweep` and
//! `a_heartbeat_only_in_memory_still_keeps_the_runtime_and_its_task` (`tests/liveness.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::App;
use crate::store::{LivenessRow, StoreError};

/// Which tasks a sign of life says the daemon holds.
#[derive(Debug, Clone)]
pub enum Held {
    /// None (a claim; or a heartbeat with an empty `active_task_ids`).
    Nothing,
    /// These tasks (a heartbeat's `active_task_ids`).
    Tasks(Vec<String>),
    /// Every in-flight task of the daemon (a heartbeat without `active_task_ids`).
    All,
}

/// What this instance knows of one runtime it wrote at least once.
#[derive(Debug)]
struct Entry {
    /// The latest sign of life this instance received (server time).
    seen: i64,
    /// The `last_seen_at` this instance last wrote (the database holds at least this).
    written: i64,
    /// Lease renewals received and not yet written: task id → latest time held.
    held: HashMap<String, i64>,
    /// A renewal of all the daemon's in-flight tasks not yet written: its latest time.
    held_all: Option<i64>,
}

impl Entry {
    fn dirty(&self) -> bool {
        self.seen > self.written || !self.held.is_empty() || self.held_all.is_some()
    }
}

/// Counters of the liveness path (`/metrics`, the benchmark).
#[derive(Debug, Default)]
pub struct LivenessStats {
    /// Signs of life received.
    pub beats: AtomicU64,
    /// Write transactions the liveness path made (immediate writes and batches).
    pub writes: AtomicU64,
    /// Runtime rows those writes carried.
    pub rows: AtomicU64,
}

/// The in-memory liveness of the runtimes this instance hears from.
pub struct Liveness {
    /// Runtime id → what this instance knows of it.
    ///
    /// Invariant: a runtime has an entry only after this instance wrote it online in the
    /// database (so a sign of life for it may stay in memory), and until a `runtime`
    /// event says it went offline or was deleted, or a batch found it missing; `written
    /// <= seen`. Locked only to read or update the map, never across an `.await`.
    entries: Mutex<HashMap<String, Entry>>,
    /// One flush at a time, so two flushes never write the same entries at once.
    flushing: tokio::sync::Mutex<()>,
    write_every_ms: i64,
    /// An entry silent this long (and written) is dropped; its next sign is written at once.
    evict_after_ms: i64,
    pub stats: LivenessStats,
}

impl Liveness {
    pub fn new(write_every: std::time::Duration, evict_after: std::time::Duration) -> Liveness {
        Liveness {
            entries: Mutex::default(),
            flushing: tokio::sync::Mutex::new(()),
            write_every_ms: write_every.as_millis() as i64,
            evict_after_ms: evict_after.as_millis() as i64,
            stats: LivenessStats::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a sign of life in memory if this instance knows the runtime online in the
    /// database; false when it must be written at once ([`seen`]).
    fn remember(&self, runtime_id: &str, now: i64, held: &Held) -> bool {
        self.stats.beats.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(runtime_id) else {
            return false;
        };
        e.seen = e.seen.max(now);
        match held {
            Held::Nothing => {}
            Held::Tasks(ids) => {
                for id in ids {
                    let t = e.held.entry(id.clone()).or_insert(now);
                    *t = (*t).max(now);
                }
            }
            Held::All => e.held_all = Some(e.held_all.unwrap_or(now).max(now)),
        }
        true
    }

    /// After an immediate write of the runtime (online, seen `now`, leases renewed).
    fn written(&self, runtime_id: &str, now: i64) {
        let mut entries = self.lock();
        let e = entries.entry(runtime_id.to_string()).or_insert(Entry {
            seen: now,
            written: now,
            held: HashMap::new(),
            held_all: None,
        });
        e.seen = e.seen.max(now);
        e.written = e.written.max(now);
    }

    /// Forgets a runtime (shown offline or deleted, by any instance): its next sign of
    /// life is written at once.
    pub fn forget(&self, runtime_id: &str) {
        self.lock().remove(runtime_id);
    }

    /// Forgets every runtime (the signal bus lost messages: anything may have changed).
    pub fn forget_all(&self) {
        self.lock().clear();
    }

    /// How many runtimes this instance holds in memory.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries to write: every dirty one (`force`), or those whose latest sign of
    /// life is `write_every` newer than what was written. Drops entries silent for
    /// `evict_after` that have nothing to write.
    fn due(&self, now: i64, force: bool) -> Vec<LivenessRow> {
        let mut entries = self.lock();
        entries.retain(|_, e| e.dirty() || now - e.seen < self.evict_after_ms);
        entries
            .iter()
            .filter(|(_, e)| e.dirty() && (force || e.seen - e.written >= self.write_every_ms))
            .map(|(id, e)| LivenessRow {
                runtime_id: id.clone(),
                seen_at: e.seen,
                held: e.held.iter().map(|(t, at)| (t.clone(), *at)).collect(),
                held_all: e.held_all,
            })
            .collect()
    }

    /// After `batch` was written: what it carried is no longer pending (what arrived
    /// since stays), and runtimes found missing are forgotten.
    fn done(&self, batch: &[LivenessRow], missing: &[String]) {
        let mut entries = self.lock();
        for b in batch {
            let Some(e) = entries.get_mut(&b.runtime_id) else {
                continue;
            };
            e.written = e.written.max(b.seen_at);
            for (tid, at) in &b.held {
                if e.held.get(tid).is_some_and(|now| now <= at) {
                    e.held.remove(tid);
                }
            }
            if e.held_all.is_some_and(|t| Some(t) <= b.held_all) {
                e.held_all = None;
            }
        }
        for id in missing {
            entries.remove(id);
        }
    }
}

/// Records a sign of life of `runtime_id` at `now` and the leases it renews: in memory
/// when this instance knows the runtime online in the database, otherwise written at once
/// (with its `runtime` event when it comes back online). `db_offline`: the caller read the
/// runtime's row and it says offline (an HTTP heartbeat), so it is written at once too.
/// False if the runtime does not exist.
pub async fn seen(
    app: &App,
    runtime_id: &str,
    now: i64,
    held: Held,
    db_offline: bool,
) -> Result<bool, StoreError> {
    if !db_offline && app.liveness.remember(runtime_id, now, &held) {
        return Ok(true);
    }
    let stats = &app.liveness.stats;
    stats.writes.fetch_add(1, Ordering::Relaxed);
    stats.rows.fetch_add(1, Ordering::Relaxed);
    if !crate::service::runtime::touch(app, runtime_id, now).await? {
        app.liveness.forget(runtime_id);
        return Ok(false);
    }
    let ids = match held {
        Held::Nothing => None,
        Held::Tasks(ids) if ids.is_empty() => None,
        Held::Tasks(ids) => Some(Some(ids)),
        Held::All => Some(None),
    };
    if let Some(ids) = ids {
        stats.writes.fetch_add(1, Ordering::Relaxed);
        app.store
            .renew_leases(runtime_id.to_string(), ids, now)
            .await?;
    }
    app.liveness.written(runtime_id, now);
    Ok(true)
}

/// Writes what is due (`force`: everything pending) in one write transaction; tells boards
/// of runtimes that came back online.
pub async fn flush(app: &App, force: bool) -> Result<(), StoreError> {
    let _one = app.liveness.flushing.lock().await;
    let batch = app.liveness.due(app.now(), force);
    if batch.is_empty() {
        return Ok(());
    }
    let stats = &app.liveness.stats;
    stats.writes.fetch_add(1, Ordering::Relaxed);
    stats.rows.fetch_add(batch.len() as u64, Ordering::Relaxed);
    let out = app.store.write_liveness(batch.clone()).await?;
    app.liveness.done(&batch, &out.missing);
    for row in &out.came_online {
        crate::service::runtime_event(app, row, "online");
    }
    Ok(())
}

/// The flusher: [`flush`] every `liveness_flush_interval` until shutdown, then once more
/// with everything pending.
pub async fn run_flusher(app: Arc<App>) {
    let mut tick = tokio::time::interval(app.config.liveness_flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = flush(&app, false).await {
            tracing::warn!(error = %e, "writing liveness failed; retried at the next flush");
        }
    }
    if let Err(e) = flush(&app, true).await {
        tracing::warn!(error = %e, "writing liveness at shutdown failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lv() -> Liveness {
        Liveness::new(Duration::from_secs(5), Duration::from_secs(60))
    }

    #[test]
    fn an_unknown_runtime_must_be_written_and_a_known_one_stays_in_memory_until_due() {
        let l = lv();
        assert!(
            !l.remember("r", 1_000, &Held::Nothing),
            "never written here"
        );
        l.written("r", 1_000);
        assert!(l.remember("r", 3_000, &Held::Tasks(vec!["t".into()])));
        assert!(
            l.due(4_000, false).is_empty(),
            "2 s newer than written: not due"
        );
        let forced = l.due(4_000, true);
        assert_eq!(forced.len(), 1);
        assert_eq!(forced[0].seen_at, 3_000);
        assert_eq!(forced[0].held, vec![("t".to_string(), 3_000)]);
        assert!(l.remember("r", 6_000, &Held::All));
        let due = l.due(6_500, false);
        assert_eq!(due.len(), 1, "5 s newer than written: due");
        assert_eq!(due[0].held_all, Some(6_000));
        // What arrives while a batch is written stays pending.
        assert!(l.remember("r", 6_100, &Held::Tasks(vec!["t".into()])));
        l.done(&due, &[]);
        let rest = l.due(7_000, true);
        assert_eq!(rest[0].held, vec![("t".to_string(), 6_100)]);
        assert_eq!(rest[0].held_all, None);
        l.done(&rest, &[]);
        assert!(l.due(7_000, true).is_empty());
    }

    #[test]
    fn forgotten_missing_and_long_silent_runtimes_are_written_at_once_next_time() {
        let l = lv();
        for r in ["a", "b", "c"] {
            l.written(r, 0);
        }
        l.forget("a");
        assert!(!l.remember("a", 10, &Held::Nothing));
        assert!(l.remember("b", 10, &Held::Nothing));
        let batch = l.due(10, true);
        l.done(&batch, &["b".to_string()]);
        assert!(!l.remember("b", 20, &Held::Nothing), "found missing");
        assert!(l.due(120_000, false).is_empty());
        assert!(
            !l.remember("c", 120_000, &Held::Nothing),
            "evicted after 60 s"
        );
    }
}
