//! Which instance sweeps: exactly one at a time.
//!
//! Alone (SQLite) this instance is always the leader. On PostgreSQL the leader is the
//! instance holding the session-level advisory lock [`LOCK_KEY`] on a dedicated
//! connection: each sweep first asks [`Leader::is_leader`], which checks that connection
//! (a failed check drops it, and the lock with its session) or tries to take the lock
//! (`pg_try_advisory_lock`, never waiting). So when the leader dies, or loses its
//! connection, the lock is free and the next instance to sweep takes it; two instances
//! never sweep at once, because PostgreSQL grants the lock to one session. At shutdown
//! the leader unlocks and closes the connection. *Proved by*
//! `one_instance_leads_and_another_takes_over_when_it_goes` (`tests/signal_bus.rs`: the
//! leader's lock connection terminated, then the leader stopped).

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::Mutex;

/// The advisory lock key of the sweeper (any bigint; "agentd" in ASCII).
pub const LOCK_KEY: i64 = 0x6167_656e_7464;

/// The `application_name` of the lock's connection, before the instance id.
pub const APPLICATION_NAME: &str = "agentd-leader:";

/// How long a sweep waits to connect for the lock (an unreachable database must not hold
/// the sweeper, or shutdown, for the OS's TCP timeout).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub enum Leader {
    /// The only instance: always the leader.
    Alone,
    /// One of several on PostgreSQL.
    Postgres {
        opts: Box<PgConnectOptions>,
        /// The connection the lock is tried on, and whether its session holds it.
        ///
        /// Invariant: `(_, true)` only while this session holds [`LOCK_KEY`]; a
        /// connection that fails is dropped (closing it releases the lock). An async
        /// mutex: it is held across the check's `.await`, by one sweep at a time.
        conn: Mutex<Option<(PgConnection, bool)>>,
    },
}

impl Leader {
    /// The leader lock of instance `instance` on `pool`'s database (its own connection,
    /// named `agentd-leader:<instance>` in `pg_stat_activity`).
    pub fn postgres(pool: &PgPool, instance: &str) -> Leader {
        Leader::Postgres {
            opts: Box::new(
                (*pool.connect_options())
                    .clone()
                    .application_name(&format!("{APPLICATION_NAME}{instance}")),
            ),
            conn: Mutex::new(None),
        }
    }

    /// Whether this instance leads now: it holds the lock on a live connection, or just
    /// took it. Errors (the database unreachable) answer false.
    pub async fn is_leader(&self) -> bool {
        let Leader::Postgres { opts, conn } = self else {
            return true;
        };
        let mut slot = conn.lock().await;
        if slot.is_none() {
            match tokio::time::timeout(CONNECT_TIMEOUT, opts.connect()).await {
                Ok(Ok(c)) => *slot = Some((c, false)),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "cannot connect for the sweeper lock");
                    return false;
                }
                Err(_) => {
                    tracing::debug!("connecting for the sweeper lock timed out");
                    return false;
                }
            }
        }
        let Some((c, leading)) = slot.as_mut() else {
            return false;
        };
        if *leading {
            if matches!(
                tokio::time::timeout(CONNECT_TIMEOUT, c.ping()).await,
                Ok(Ok(()))
            ) {
                return true;
            }
            tracing::warn!("lost the sweeper lock's connection; no longer the leader");
            *slot = None;
            return false;
        }
        let got = tokio::time::timeout(
            CONNECT_TIMEOUT,
            sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                .bind(LOCK_KEY)
                .fetch_one(&mut *c),
        )
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        match got {
            Ok(true) => {
                tracing::info!("this instance now runs the sweeper (leader lock taken)");
                *leading = true;
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::debug!(error = %e, "cannot try the sweeper lock");
                *slot = None;
                false
            }
        }
    }

    /// Releases the lock (at shutdown).
    pub async fn release(&self) {
        if let Leader::Postgres { conn, .. } = self
            && let Some((mut c, _)) = conn.lock().await.take()
        {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LOCK_KEY)
                .execute(&mut c)
                .await;
            let _ = c.close().await;
        }
    }
}
