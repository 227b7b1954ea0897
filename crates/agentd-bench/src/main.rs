//! `agentd-bench`: benchmarks of the agentd daemon on loopback, printed as a markdown
//! table (see docs/benchmarks.md for the measured table and how to reproduce it).
//!
//! ```text
//! cargo build --release -p agentd -p agentd-bench
//! target/release/agentd-bench [--only pickup,poll,sandbox,publish,cancel,parse,heal,footprint,accounts,scale,scale-hb,scale-claims,scale-idle]
//!     [--signins 20] [--session-reads 2000]
//!     (`--only scale-hb`: just issue 13's HTTP heartbeat rows, one SQLite and one
//!     PostgreSQL instance; `--only scale-claims`: just its claim rows)
//!     [--tasks 1000] [--poll-tasks 100] [--cancels 20] [--parse-secs 2]
//!     [--heal-daemons 25] [--heal-workspaces 10] [--heal-heartbeat-secs 15]
//!     [--idle-secs 30] [--stream-tasks 20] [--stream-lines 200]
//!     [--hb-clients 32] [--hb-secs 10] [--claim-tasks 1000] [--lost-claims 10]
//!     [--reconnect-daemons 1000] [--reconnect-down-secs 3]
//! ```
//!
//! `server-*` rows run the real control-plane server (`agentd server`, the same binary).

mod accounts;
mod common;
mod footprint;
mod heal;
mod parse;
mod pickup;
mod publish;
mod reconnect;
mod scale;
mod server;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use common::ms;

struct Args {
    only: Vec<String>,
    n: HashMap<&'static str, u64>,
}

const KNOBS: &[(&str, u64)] = &[
    ("tasks", 1000),
    ("poll-tasks", 100),
    ("cancels", 20),
    ("parse-secs", 2),
    ("heal-daemons", 25),
    ("heal-workspaces", 10),
    ("heal-heartbeat-secs", 15),
    ("idle-secs", 30),
    ("stream-tasks", 20),
    ("stream-lines", 200),
    ("hb-clients", 32),
    ("hb-secs", 10),
    ("claim-tasks", 1000),
    ("publish-tasks", 50),
    ("lost-claims", 10),
    ("reconnect-daemons", 1000),
    ("reconnect-down-secs", 3),
    ("cross-tasks", 100),
    ("idle-runtimes", 10000),
    ("idle-every-secs", 15),
    ("idle-window-secs", 30),
    ("signins", 20),
    ("session-reads", 2000),
];

const ALL: &[&str] = &[
    "pickup",
    "poll",
    "sandbox",
    "publish",
    "cancel",
    "parse",
    "heal",
    "footprint",
    "server-heartbeat",
    "accounts",
    "server-claim",
    "server-offline",
    "server-lost-claim",
    "server-reconnect",
    "scale",
    "scale-claims",
    "scale-idle",
    "scale-hb",
];

fn args() -> anyhow::Result<Args> {
    let mut n: HashMap<&'static str, u64> = KNOBS.iter().copied().collect();
    let mut only: Vec<String> = ALL.iter().map(|s| s.to_string()).collect();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let key = a
            .strip_prefix("--")
            .with_context(|| format!("unexpected {a}"))?;
        let val = it.next().with_context(|| format!("{a} needs a value"))?;
        if key == "only" {
            only = val.split(',').map(str::to_string).collect();
            if let Some(bad) = only.iter().find(|o| !ALL.contains(&o.as_str())) {
                bail!("--only: unknown benchmark {bad} (one of {ALL:?})");
            }
            continue;
        }
        let Some((k, _)) = KNOBS.iter().find(|(k, _)| *k == key) else {
            bail!("unknown flag --{key}");
        };
        n.insert(k, val.parse().with_context(|| format!("--{key}"))?);
    }
    Ok(Args { only, n })
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores available, Linux {}", kernel.trim())
}

/// `p50 · p99 · max` of a latency sample.
fn spread(s: &common::Stats) -> String {
    format!("p50 {} · p99 {} · max {}", ms(s.p50), ms(s.p99), ms(s.max))
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let on = |b: &str| a.only.iter().any(|o| o == b);
    let n = |k: &str| a.n[k];
    eprintln!("machine: {}", machine());
    let mut rows: Vec<[String; 4]> = Vec::new();

    if on("pickup") {
        eprintln!("pickup (WS) over {} tasks…", n("tasks"));
        let p = pickup::pickup(true, true, n("tasks") as usize).await?;
        rows.push([
            format!(
                "1. Pickup, WS wake-up ({} tasks): queued → `/start`",
                p.to_start.n
            ),
            spread(&p.to_start),
            "—".into(),
            "".into(),
        ]);
        rows.push([
            format!(
                "1. Pickup, WS wake-up ({} tasks): queued → agent spawned",
                p.to_spawn.n
            ),
            spread(&p.to_spawn),
            "p50 < 20 ms".into(),
            met(p.to_spawn.p50 < Duration::from_millis(20)).into(),
        ]);
    }
    if on("poll") {
        eprintln!("pickup (polling, 1 s) over {} tasks…", n("poll-tasks"));
        let p = pickup::pickup(false, true, n("poll-tasks") as usize).await?;
        rows.push([
            format!(
                "1. Pickup, WS disabled, 1 s poll ({} tasks): queued → `/start`",
                p.to_start.n
            ),
            spread(&p.to_start),
            "—".into(),
            "".into(),
        ]);
        rows.push([
            format!(
                "1. Pickup, WS disabled, 1 s poll ({} tasks): queued → agent spawned",
                p.to_spawn.n
            ),
            spread(&p.to_spawn),
            "≤ poll interval (Multica: 30 s poll)".into(),
            met(p.to_spawn.p99 < Duration::from_millis(1200)).into(),
        ]);
    }
    if on("sandbox") {
        // Both daemons in one run, one after the other: the ratio is what counts on a
        // noisy machine.
        eprintln!(
            "pickup (WS) with and without the sandbox over {} tasks each…",
            n("tasks")
        );
        let off = pickup::pickup(true, false, n("tasks") as usize).await?;
        let on_ = pickup::pickup(true, true, n("tasks") as usize).await?;
        let added = on_.to_spawn.p50.saturating_sub(off.to_spawn.p50);
        for (label, p) in [("sandbox off", &off), ("bubblewrap", &on_)] {
            rows.push([
                format!(
                    "11. Pickup, WS wake-up, {label} ({} tasks): queued → agent spawned",
                    p.to_spawn.n
                ),
                spread(&p.to_spawn),
                "—".into(),
                "".into(),
            ]);
        }
        rows.push([
            "11. Pickup: what the sandbox adds (p50 bubblewrap − p50 off)".into(),
            ms(added),
            "≤ 10 ms".into(),
            met(added <= Duration::from_millis(10)).into(),
        ]);
    }
    if on("publish") {
        eprintln!("publish over {} tasks…", n("publish-tasks"));
        let p = publish::publish(n("publish-tasks") as usize).await?;
        rows.push([
            format!(
                "12. Agent exit → branch pushed (server sees it completed with the branch; {} tasks)",
                p.to_pushed.n
            ),
            spread(&p.to_pushed),
            "—".into(),
            "".into(),
        ]);
        rows.push([
            format!(
                "12. Agent exit → pull request opened (fake GitHub `POST …/pulls`; {} tasks)",
                p.to_pr.n
            ),
            spread(&p.to_pr),
            "—".into(),
            "".into(),
        ]);
    }
    if on("cancel") {
        eprintln!("cancel over {} tasks…", n("cancels"));
        let c = pickup::cancel(n("cancels") as usize).await?;
        rows.push([
            format!(
                "7. Cancel (WS `task_cancelled`) → agent gets SIGTERM ({} tasks)",
                c.n
            ),
            spread(&c),
            "≤ 100 ms".into(),
            met(c.p99 <= Duration::from_millis(100)).into(),
        ]);
    }
    if on("parse") {
        eprintln!("parse throughput…");
        for r in parse::throughput(n("parse-secs") as f64)? {
            rows.push([
                format!(
                    "6. Parse `{}` stream ({} recorded runs, {} KB)",
                    r.provider,
                    r.fixtures,
                    r.bytes_per_run / 1000
                ),
                format!(
                    "{:.0} MB/s · {:.0}k lines/s · {:.0}k messages/s",
                    r.mb_per_s,
                    r.lines_per_s / 1000.0,
                    r.messages_per_s / 1000.0
                ),
                "—".into(),
                "".into(),
            ]);
        }
    }
    if on("heal") {
        let hb = Duration::from_secs(n("heal-heartbeat-secs"));
        eprintln!("self-healing…");
        let h = heal::heal(
            n("heal-daemons") as usize,
            n("heal-workspaces") as usize,
            hb,
        )
        .await?;
        rows.push([
            format!(
                "4. Self-healing: {} runtimes ({} daemons × 4 × {} workspaces) deleted at once, {:?} heartbeat",
                h.runtimes, h.daemons, h.workspaces, h.heartbeat
            ),
            format!(
                "all re-registered in {:.1} s, all heartbeating on new ids in {:.1} s; {} register calls ({} per daemon·workspace at most)",
                h.registered_in.as_secs_f64(),
                h.online_in.as_secs_f64(),
                h.registers,
                h.max_per_daemon_workspace
            ),
            format!("1 register per workspace ({} in all)", h.daemons * h.workspaces),
            met(h.max_per_daemon_workspace == 1 && h.registers == h.daemons * h.workspaces).into(),
        ]);
    }
    if on("footprint") {
        eprintln!("footprint…");
        let f = footprint::footprint(
            n("idle-secs"),
            n("stream-tasks") as usize,
            n("stream-lines") as usize,
        )
        .await?;
        rows.push([
            format!("5. Footprint idle, 4 runtimes, WS up ({} s)", f.idle_secs),
            format!(
                "RSS {:.1} MiB · CPU {:.2} %",
                f.idle_rss_kib as f64 / 1024.0,
                f.idle_cpu_pct
            ),
            "—".into(),
            "".into(),
        ]);
        rows.push([
            format!(
                "5. Footprint, {} tasks streaming (1 message / 50 ms each, {} each)",
                f.tasks, f.lines_per_task
            ),
            format!(
                "RSS max {:.1} MiB · CPU {:.1} % of one core over {:.1} s · {} messages stored",
                f.stream_rss_max_kib as f64 / 1024.0,
                f.stream_cpu_pct,
                f.stream_secs,
                f.messages_stored
            ),
            "—".into(),
            "".into(),
        ]);
        // The agents are separate processes: the daemon's own RSS and CPU above idle,
        // divided by the tasks running, is what each task costs the daemon.
        let tasks = f.tasks.max(1) as f64;
        rows.push([
            "4./5. Daemon overhead per running task (the agent process excluded)".into(),
            format!(
                "RSS +{:.0} KiB · CPU {:.2} % of one core per task (streaming 20 messages/s); claim → spawn: see row 1",
                f.stream_rss_max_kib.saturating_sub(f.idle_rss_kib) as f64 / tasks,
                f.stream_cpu_pct / tasks
            ),
            "—".into(),
            "".into(),
        ]);
    }

    if on("accounts") {
        eprintln!("accounts: password sign-in, session-cookie check…");
        let a = accounts::run(n("signins") as usize, n("session-reads") as usize).await?;
        rows.push([
            format!(
                "15. Password sign-in (`POST /api/v1/session`, argon2id m=24 MiB t=2 p=1; {} sign-ins)",
                a.signin.n
            ),
            format!(
                "p50 {} · p99 {} · max {}",
                ms(a.signin.p50),
                ms(a.signin.p99),
                ms(a.signin.max)
            ),
            "p50 50–100 ms".into(),
            met((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&a.signin.p50))
                .into(),
        ]);
        let over = accounts::overhead(&a);
        rows.push([
            format!(
                "15. Session-cookie check: a read by cookie vs by (cached) token, {} each interleaved",
                a.cookie_read.n
            ),
            format!(
                "cookie p50 {} · token p50 {} · overhead p50 {:.3} ms",
                ms(a.cookie_read.p50),
                ms(a.token_read.p50),
                over.as_secs_f64() * 1000.0
            ),
            "< 1 ms (p50)".into(),
            met(over < Duration::from_millis(1)).into(),
        ]);
    }
    if on("server-heartbeat") {
        eprintln!("server heartbeat throughput…");
        let t = server::heartbeats(n("hb-clients") as usize, n("hb-secs")).await?;
        rows.push([
            format!(
                "2. Server heartbeat throughput ({} concurrent clients, 100 runtimes, {} s)",
                n("hb-clients"),
                n("hb-secs")
            ),
            format!(
                "{:.0} heartbeats/s · p50 {} · p99 {} · {} errors",
                t.per_sec,
                ms(t.latency.p50),
                ms(t.latency.p99),
                t.errors
            ),
            "—".into(),
            "".into(),
        ]);
    }
    if on("server-claim") {
        eprintln!("server claim throughput…");
        let c = server::claims(n("claim-tasks") as usize).await?;
        rows.push([
            format!(
                "3. Server claims: {} queued tasks, 10 runtimes × 2 concurrent claimers",
                c.tasks
            ),
            format!(
                "{:.0} claims/s · {} claimed, {} distinct (queueing took {:.1} s)",
                c.per_sec,
                c.claimed,
                c.unique,
                c.queued_in.as_secs_f64()
            ),
            "each task exactly once".into(),
            met(c.claimed == c.tasks && c.unique == c.tasks).into(),
        ]);
    }
    if on("server-offline") {
        eprintln!("dead daemon → offline…");
        let t = server::dead_daemon_offline().await?;
        rows.push([
            "7. Dead daemon (SIGKILL, WS connected) → runtime offline on the server".into(),
            format!("{:.1} s", t.as_secs_f64()),
            "≤ 45 s".into(),
            met(t <= Duration::from_secs(45)).into(),
        ]);
    }
    if on("server-lost-claim") {
        eprintln!("lost claim response → running…");
        let l = server::lost_claim(n("lost-claims") as usize).await?;
        rows.push([
            format!(
                "7. Issue assigned → task `running` on the server, claim answered ({} tasks)",
                l.normal.n
            ),
            format!("p50 {} · max {}", ms(l.normal.p50), ms(l.normal.max)),
            "—".into(),
            "".into(),
        ]);
        rows.push([
            format!(
                "7. Same, claim response lost (connection reset after the server answered; {} tasks)",
                l.lost.n
            ),
            format!(
                "p50 {} · max {} · {} same-key claim retries logged",
                ms(l.lost.p50),
                ms(l.lost.max),
                l.retries_logged
            ),
            "≤ 1 s (Multica: 90 s)".into(),
            met(l.lost.max <= Duration::from_secs(1)).into(),
        ]);
    }
    if on("server-reconnect") {
        eprintln!("daemons reconnecting after a server restart…");
        let r = reconnect::reconnect(
            n("reconnect-daemons") as usize,
            Duration::from_secs(n("reconnect-down-secs")),
        )
        .await?;
        let ratio = r.peak_per_s as f64 / r.mean_per_s.max(f64::MIN_POSITIVE);
        rows.push([
            format!(
                "7. {} daemons reconnecting after a server restart (SIGKILL, down {} s)",
                r.daemons,
                r.down.as_secs()
            ),
            format!(
                "all WS back {:.1} s after the kill; {} connections, peak {}/s vs mean {:.0}/s ({:.1}×); 99 % back at {:.1} s, peak {:.1}× the mean until then; {} register calls",
                r.window.as_secs_f64(),
                r.connections,
                r.peak_per_s,
                r.mean_per_s,
                ratio,
                r.window99.as_secs_f64(),
                r.peak_per_s as f64 / r.mean99_per_s.max(f64::MIN_POSITIVE),
                r.registers
            ),
            "peak ≤ 3× mean, no register storm".into(),
            met(ratio <= 3.0 && r.registers == 0).into(),
        ]);
    }

    if on("scale") || on("scale-idle") || on("scale-hb") || on("scale-claims") {
        let hb_only = on("scale-hb") && !on("scale");
        let claims_only = on("scale-claims") && !on("scale") && !hb_only;
        scale_rows(
            &mut rows,
            &n,
            on("scale") || hb_only || claims_only,
            hb_only,
            claims_only,
            on("scale") || on("scale-idle"),
        )
        .await?;
    }
    println!("Machine: {}\n", machine());
    println!("| Benchmark | Result | Target | |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
    }
    Ok(())
}

/// Issue 13's rows: heartbeats/s and exactly-once claims/s on SQLite (one instance),
/// PostgreSQL (one instance) and PostgreSQL (two instances behind HAProxy); cross-instance
/// pickup; liveness writes and PostgreSQL connections with 10,000 idle runtimes.
async fn scale_rows(
    rows: &mut Vec<[String; 4]>,
    n: &dyn Fn(&str) -> u64,
    throughput: bool,
    hb_only: bool,
    claims_only: bool,
    idle: bool,
) -> anyhow::Result<()> {
    let cluster = agentd_testkit::pg::PgCluster::start().map_err(anyhow::Error::msg)?;
    let push = |rows: &mut Vec<[String; 4]>, r: [String; 4]| {
        // Each row as soon as it is measured (stderr), so a later failure loses nothing.
        eprintln!("| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
        rows.push(r);
    };
    let (conc, secs, tasks) = (
        n("hb-clients") as usize,
        n("hb-secs"),
        n("claim-tasks") as usize,
    );
    let deployments: &[(&str, usize)] = if throughput {
        &[
            ("SQLite, one instance", 0),
            ("PostgreSQL, one instance", 1),
            ("PostgreSQL, two instances behind HAProxy", 2),
        ]
    } else {
        &[]
    };
    for &(label, instances) in deployments {
        eprintln!("scale: heartbeats and claims, {label}…");
        let dep = match instances {
            0 => scale::Deployment::sqlite().await?,
            k => scale::Deployment::postgres(&cluster, k).await?,
        };
        if hb_only && instances > 1 {
            continue;
        }
        if claims_only {
            // `--only scale-claims`: the claim rows alone (no heartbeats, no cross pickup).
            let c = server::claims_on(&dep.servers[0], &dep.url(), tasks).await?;
            push(
                rows,
                [
                    format!(
                        "13. Claims, {label}: {} queued tasks, 10 runtimes × 2 claimers",
                        c.tasks
                    ),
                    format!(
                        "{:.0} claims/s · {} claimed, {} distinct",
                        c.per_sec, c.claimed, c.unique
                    ),
                    "≥ 2,000/s, each task once".into(),
                    met(c.per_sec >= 2_000.0 && c.claimed == c.tasks && c.unique == c.tasks).into(),
                ],
            );
            continue;
        }
        if instances < 2 && !hb_only {
            // The daemon's own channel while its WebSocket is up: no HTTP, no reads.
            let (per_sec, errors) = scale::ws_heartbeats(&dep.servers[0], conc, 8, secs).await?;
            push(
                rows,
                [
                    format!(
                        "13. Heartbeats over WebSocket, {label} ({conc} sockets × 8 in flight, 100 runtimes, {secs} s)"
                    ),
                    format!("{per_sec:.0} heartbeats/s · {errors} errors"),
                    "≥ 20,000/s per instance".into(),
                    met(per_sec >= 20_000.0 && errors == 0).into(),
                ],
            );
        }
        let t = server::heartbeats_on(&dep.servers[0], &dep.url(), conc, secs).await?;
        let per_instance = t.per_sec / instances.max(1) as f64;
        push(
            rows,
            [
                format!(
                    "13. Heartbeats over HTTP, {label} ({conc} clients, 100 runtimes, {secs} s)"
                ),
                format!(
                    "{:.0} heartbeats/s{} · p50 {} · p99 {} · {} errors",
                    t.per_sec,
                    if instances > 1 {
                        format!(" ({per_instance:.0} per instance)")
                    } else {
                        String::new()
                    },
                    ms(t.latency.p50),
                    ms(t.latency.p99),
                    t.errors
                ),
                "≥ 20,000/s per instance".into(),
                met(per_instance >= 20_000.0 && t.errors == 0).into(),
            ],
        );
        if hb_only {
            continue;
        }
        let c = server::claims_on(&dep.servers[0], &dep.url(), tasks).await?;
        push(
            rows,
            [
                format!(
                    "13. Claims, {label}: {} queued tasks, 10 runtimes × 2 claimers",
                    c.tasks
                ),
                format!(
                    "{:.0} claims/s · {} claimed, {} distinct",
                    c.per_sec, c.claimed, c.unique
                ),
                "≥ 2,000/s, each task once".into(),
                met(c.per_sec >= 2_000.0 && c.claimed == c.tasks && c.unique == c.tasks).into(),
            ],
        );
        if instances == 2 {
            eprintln!("scale: cross-instance pickup…");
            let p = scale::cross_pickup(&dep, n("cross-tasks") as usize).await?;
            push(
                rows,
                [
                    format!(
                        "13. Pickup across instances ({} tasks): queued on A → agent spawned by the daemon on B",
                        p.n
                    ),
                    spread(&p),
                    "p50 ≤ 20 ms".into(),
                    met(p.p50 <= Duration::from_millis(20)).into(),
                ],
            );
        }
    }
    let every = Duration::from_secs(n("idle-every-secs"));
    let window = Duration::from_secs(n("idle-window-secs"));
    let idles: &[(&str, bool)] = if idle {
        &[("SQLite", false), ("PostgreSQL", true)]
    } else {
        &[]
    };
    for &(label, pg) in idles {
        eprintln!("scale: {} idle runtimes on {label}…", n("idle-runtimes"));
        let dep = if pg {
            scale::Deployment::postgres(&cluster, 1).await?
        } else {
            scale::Deployment::sqlite().await?
        };
        let got = scale::idle_liveness(
            &dep,
            pg.then_some(&cluster),
            n("idle-runtimes") as usize,
            every,
            window,
        )
        .await;
        let l = match got {
            Ok(l) => l,
            Err(e) => {
                eprintln!("server log: {}", dep.servers[0].log_tail());
                push(
                    rows,
                    [
                        format!("13. Liveness writes, {label}"),
                        format!("FAILED: {e:#}"),
                        "—".into(),
                        "".into(),
                    ],
                );
                continue;
            }
        };
        push(
            rows,
            [
                format!(
                    "13. Liveness writes, {label}, one instance: {} idle runtimes heartbeating every {} s ({:.0} heartbeats/s, {} s window)",
                    l.runtimes,
                    every.as_secs(),
                    l.heartbeats_per_sec,
                    window.as_secs()
                ),
                format!(
                    "{:.1} write transactions/s ({:.0} runtime rows/s){}",
                    l.writes_per_sec,
                    l.rows_per_sec,
                    l.pg_connections
                        .map(|c| format!(" · {c} PostgreSQL connections"))
                        .unwrap_or_default()
                ),
                "≤ 10 writes/s per instance".into(),
                met(l.writes_per_sec <= 10.0).into(),
            ],
        );
    }
    Ok(())
}
