//! Short-lived caches that take the two indexed reads off the heartbeat's and the claim's
//! hot path: the API token by its hash ([`crate::auth::authenticate`]) and the runtime's
//! row ([`crate::service::runtime::load_cached_for`]).
//!
//! **The rule (revocation bound).** An entry is served for at most [`TTL_MS`] after it
//! was read from the database, and never after an invalidation that happened after that
//! read (a generation counter: a read that raced an invalidation is not stored):
//!
//! - a token revoked (or the admin token rotated, or granted a workspace it created) on
//!   this instance is dropped before the
//!   revoking request answers, so the very next call with it is 401 `token revoked`; the
//!   other instances drop it when the signal bus delivers [`crate::bus::Signal::TokensChanged`],
//!   and at the latest [`TTL_MS`] after they read it. Expiry is checked against the clock
//!   on every use, cached or not. Only valid tokens are cached (unknown, revoked and
//!   task tokens always read the database).
//! - a runtime's entry (its row: workspace, owner token, status, provider, labels) is
//!   dropped by every `runtime`
//!   event (registered — which includes a takeover —, offline, deleted) on any instance,
//!   and at the latest [`TTL_MS`] after it was read; a deleted runtime is never cached.
//! - a bus resync (signals may have been lost) drops both caches whole.
//!
//! *Proved by* `a_revoked_token_is_refused_at_once_even_when_cached`,
//! `a_deleted_runtime_heartbeat_or_claim_is_404_at_once` (`tests/tokens.rs`, `tests/daemon_api.rs`) and
//! `a_token_revoked_on_one_instance_is_refused_on_the_other_within_the_bound`
//! (`tests/signal_bus.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use agentd_proto::accounts::Role;
use agentd_proto::api::TokenKind;

/// How long an entry read from the database may be served (milliseconds).
pub const TTL_MS: i64 = 1_000;
/// Entries kept at most (a full cache is cleared: it refills from the database).
const MAX_ENTRIES: usize = 100_000;

/// A valid API token as read from the database.
#[derive(Debug, Clone)]
pub struct CachedToken {
    pub token_id: String,
    pub name: String,
    pub kind: TokenKind,
    pub expires_at: Option<i64>,
    pub workspaces: Vec<String>,
    /// Its role in each of `workspaces` (its owner's, read with it).
    pub roles: Vec<(String, Role)>,
    pub owner: Option<String>,
    pub last_used_at: Option<i64>,
}

/// A runtime's row as read from the database (shared: a hit clones the `Arc`).
pub type CachedRuntime = std::sync::Arc<crate::store::RuntimeRow>;

struct Timed<T> {
    read_at: i64,
    value: T,
}

/// The caches of one instance.
#[derive(Default)]
pub struct AuthCache {
    /// Bumped by every invalidation; a database read stores its result only if no
    /// invalidation happened since it began.
    generation: AtomicU64,
    tokens: Mutex<HashMap<String, Timed<CachedToken>>>,
    runtimes: Mutex<HashMap<String, Timed<CachedRuntime>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn get<T: Clone>(m: &Mutex<HashMap<String, Timed<T>>>, key: &str, now: i64) -> Option<T> {
    let map = lock(m);
    let t = map.get(key)?;
    (now >= t.read_at && now - t.read_at < TTL_MS).then(|| t.value.clone())
}

impl AuthCache {
    /// Read before a database read whose result goes to [`AuthCache::put_token`] or
    /// [`AuthCache::put_runtime`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn put<T>(
        &self,
        m: &Mutex<HashMap<String, Timed<T>>>,
        generation: u64,
        key: String,
        value: T,
        read_at: i64,
    ) {
        let mut map = lock(m);
        // Checked under the lock: an invalidation takes the same lock after bumping.
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, Timed { read_at, value });
    }

    pub fn token(&self, hash: &str, now: i64) -> Option<CachedToken> {
        get(&self.tokens, hash, now)
    }

    pub fn put_token(&self, generation: u64, hash: String, t: CachedToken, read_at: i64) {
        self.put(&self.tokens, generation, hash, t, read_at);
    }

    /// The token's `last_used_at` was written as `at`.
    pub fn used(&self, hash: &str, at: i64) {
        if let Some(t) = lock(&self.tokens).get_mut(hash) {
            t.value.last_used_at = Some(at);
        }
    }

    /// Drops a token (`None`: every token).
    pub fn forget_token(&self, token_id: Option<&str>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut map = lock(&self.tokens);
        match token_id {
            Some(id) => map.retain(|_, t| t.value.token_id != id),
            None => map.clear(),
        }
    }

    pub fn runtime(&self, runtime_id: &str, now: i64) -> Option<CachedRuntime> {
        get(&self.runtimes, runtime_id, now)
    }

    pub fn put_runtime(&self, generation: u64, runtime_id: String, r: CachedRuntime, at: i64) {
        self.put(&self.runtimes, generation, runtime_id, r, at);
    }

    pub fn forget_runtime(&self, runtime_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        lock(&self.runtimes).remove(runtime_id);
    }

    /// Drops everything (the signal bus may have lost invalidations).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        lock(&self.tokens).clear();
        lock(&self.runtimes).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(id: &str) -> CachedToken {
        CachedToken {
            token_id: id.into(),
            name: "n".into(),
            kind: TokenKind::Daemon,
            expires_at: None,
            workspaces: vec![],
            roles: vec![],
            owner: None,
            last_used_at: None,
        }
    }

    #[test]
    fn entries_expire_and_a_read_racing_an_invalidation_is_not_stored() {
        let c = AuthCache::default();
        let g = c.generation();
        c.put_token(g, "h".into(), tok("t"), 1_000);
        assert!(c.token("h", 1_500).is_some());
        assert!(
            c.token("h", 1_000 + TTL_MS).is_none(),
            "served at most TTL_MS"
        );
        c.forget_token(Some("t"));
        assert!(c.token("h", 1_500).is_none());
        // A read that began before the invalidation is not stored.
        c.put_token(g, "h".into(), tok("t"), 1_000);
        assert!(c.token("h", 1_500).is_none());
        let g = c.generation();
        c.put_token(g, "h".into(), tok("t"), 1_000);
        c.clear();
        assert!(c.token("h", 1_500).is_none());
    }
}
