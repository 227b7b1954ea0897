//! Daemon metrics, rendered in the Prometheus text format by the health endpoint.
//! Plain atomics: the hot paths only increment; rendering reads a consistent-enough view.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the heartbeat round-trip histogram buckets.
const RTT_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
pub struct Metrics {
    pub heartbeats_http: AtomicU64,
    pub heartbeats_skipped_ws_fresh: AtomicU64,
    pub heartbeat_failures: AtomicU64,
    pub ws_heartbeats: AtomicU64,
    pub ws_acks: AtomicU64,
    pub ws_connects: AtomicU64,
    pub ws_reconnects: AtomicU64,
    pub registers: AtomicU64,
    pub register_failures: AtomicU64,
    pub runtime_gone: AtomicU64,
    pub claims: AtomicU64,
    pub claimed_tasks: AtomicU64,
    pub claim_failures: AtomicU64,
    rtt_buckets: [AtomicU64; RTT_BUCKETS.len()],
    rtt_count: AtomicU64,
    rtt_sum_micros: AtomicU64,
}

/// Gauges computed at render time from daemon state.
pub struct Gauges {
    pub runtimes_online: usize,
    pub runtimes_recovering: usize,
    pub active_tasks: usize,
    pub ws_connected: bool,
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub fn observe_heartbeat_rtt(&self, rtt: Duration) {
        let secs = rtt.as_secs_f64();
        for (i, bound) in RTT_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.rtt_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.rtt_count.fetch_add(1, Ordering::Relaxed);
        self.rtt_sum_micros
            .fetch_add(rtt.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counters: [(&str, &str, &AtomicU64); 13] = [
            (
                "agentd_heartbeats_http_total",
                "HTTP heartbeats sent",
                &self.heartbeats_http,
            ),
            (
                "agentd_heartbeats_skipped_total",
                "HTTP heartbeat ticks skipped because WS was fresh",
                &self.heartbeats_skipped_ws_fresh,
            ),
            (
                "agentd_heartbeat_failures_total",
                "HTTP heartbeats that failed",
                &self.heartbeat_failures,
            ),
            (
                "agentd_ws_heartbeats_total",
                "WS heartbeat frames sent",
                &self.ws_heartbeats,
            ),
            (
                "agentd_ws_acks_total",
                "WS heartbeat acks received",
                &self.ws_acks,
            ),
            (
                "agentd_ws_connects_total",
                "WS connections established",
                &self.ws_connects,
            ),
            (
                "agentd_ws_reconnects_total",
                "WS connections lost and retried",
                &self.ws_reconnects,
            ),
            (
                "agentd_registers_total",
                "register calls made",
                &self.registers,
            ),
            (
                "agentd_register_failures_total",
                "register calls that failed",
                &self.register_failures,
            ),
            (
                "agentd_runtime_gone_total",
                "runtimes the server reported deleted",
                &self.runtime_gone,
            ),
            ("agentd_claims_total", "claim calls made", &self.claims),
            (
                "agentd_claimed_tasks_total",
                "tasks claimed",
                &self.claimed_tasks,
            ),
            (
                "agentd_claim_failures_total",
                "claim calls that failed",
                &self.claim_failures,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                get(c)
            );
        }
        let name = "agentd_heartbeat_rtt_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP heartbeat round-trip time\n# TYPE {name} histogram"
        );
        for (i, bound) in RTT_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                get(&self.rtt_buckets[i])
            );
        }
        let count = get(&self.rtt_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", get(&self.rtt_sum_micros) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        let _ = writeln!(
            out,
            "# HELP agentd_runtimes Runtimes by state\n# TYPE agentd_runtimes gauge"
        );
        let _ = writeln!(
            out,
            "agentd_runtimes{{state=\"online\"}} {}",
            g.runtimes_online
        );
        let _ = writeln!(
            out,
            "agentd_runtimes{{state=\"recovering\"}} {}",
            g.runtimes_recovering
        );
        let _ = writeln!(
            out,
            "# HELP agentd_active_tasks Tasks running now\n# TYPE agentd_active_tasks gauge\nagentd_active_tasks {}",
            g.active_tasks
        );
        let _ = writeln!(
            out,
            "# HELP agentd_ws_connected 1 while the WS is connected\n# TYPE agentd_ws_connected gauge\nagentd_ws_connected {}",
            u8::from(g.ws_connected)
        );
        out
    }
}
