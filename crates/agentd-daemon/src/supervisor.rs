//! Keeps exactly one worker per tracked runtime: on every runtime-set nudge, cancels
//! the workers of runtimes that left and starts workers for runtimes that arrived.
//! Used for the heartbeat loops and the pollers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::daemon::Daemon;

pub async fn per_runtime<F, Fut>(d: Arc<Daemon>, cancel: CancellationToken, worker: F)
where
    F: Fn(Arc<Daemon>, String, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut nudges = d.registry.subscribe();
    let mut workers: HashMap<String, CancellationToken> = HashMap::new();
    loop {
        nudges.borrow_and_update();
        let ids: HashSet<String> = d.registry.all_runtime_ids().into_iter().collect();
        workers.retain(|id, token| {
            let keep = ids.contains(id) && !token.is_cancelled();
            if !keep {
                token.cancel();
            }
            keep
        });
        for id in ids {
            if let std::collections::hash_map::Entry::Vacant(slot) = workers.entry(id) {
                let token = cancel.child_token();
                d.tracker
                    .spawn(worker(Arc::clone(&d), slot.key().clone(), token.clone()));
                slot.insert(token);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = nudges.changed() => if r.is_err() { break },
        }
    }
    for token in workers.values() {
        token.cancel();
    }
}
