//! The sweeper: every `sweep_interval`, runtimes silent for `offline_after` (server
//! clock) go offline and their in-flight tasks fail with `runtime_offline`; tasks claimed
//! but not started within `dispatch_timeout` fail with `timeout`.

use std::sync::Arc;

use crate::{App, now_ms, service};

pub async fn run(app: Arc<App>) {
    let mut tick = tokio::time::interval(app.config.sweep_interval);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = sweep(&app).await {
            tracing::warn!(error = %e, "sweep failed");
        }
    }
}

pub async fn sweep(app: &App) -> Result<(), crate::store::StoreError> {
    let cutoff = now_ms() - app.config.offline_after.as_millis() as i64;
    for rt in app.store.offline_stale_runtimes(cutoff).await? {
        tracing::info!(runtime_id = %rt.id, "runtime offline: no heartbeat");
        service::runtime::went_offline(app, &rt.id, "runtime went offline (no heartbeat)").await?;
    }
    let cutoff = now_ms() - app.config.dispatch_timeout.as_millis() as i64;
    for t in app.store.stale_dispatched(cutoff).await? {
        tracing::info!(task_id = %t.id, "task claimed but never started");
        service::task::fail_by_server(app, &t, "task was claimed but never started", "timeout")
            .await?;
    }
    Ok(())
}
