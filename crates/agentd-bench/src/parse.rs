//! Output parsing throughput: the recorded agent streams under
//! `crates/agentd-daemon/tests/fixtures/agent-output/`, split into lines by the daemon's
//! `LineCodec` (fed in 64 KiB reads, like a pipe) and parsed into messages by each
//! backend's `StreamParser`, a fresh parser per recorded run, repeated for `secs`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agentd_daemon::backend::{self, AgentEvent, LineCodec, RunSpec};
use anyhow::Context;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

pub struct ParseRate {
    pub provider: &'static str,
    pub fixtures: usize,
    pub bytes_per_run: usize,
    pub mb_per_s: f64,
    pub lines_per_s: f64,
    pub messages_per_s: f64,
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agentd-daemon/tests/fixtures/agent-output")
}

pub fn throughput(secs: f64) -> anyhow::Result<Vec<ParseRate>> {
    let dir = fixtures_dir();
    let mut out = Vec::new();
    for provider in backend::provider::names() {
        let mut runs = Vec::new();
        for e in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let p = e?.path();
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if name.starts_with(&format!("{provider}-"))
                && (name.ends_with(".jsonl") || name.ends_with(".txt"))
            {
                runs.push(std::fs::read(&p)?);
            }
        }
        let be = backend::for_provider(provider).context("backend")?;
        let (mut bytes, mut lines, mut msgs) = (0usize, 0usize, 0usize);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs_f64(secs) {
            for run in &runs {
                let mut parser = be.parser(&RunSpec::default());
                let mut codec = LineCodec::default();
                let mut buf = BytesMut::new();
                let mut count = |evs: Vec<AgentEvent>| {
                    msgs += evs
                        .iter()
                        .filter(|e| matches!(e, AgentEvent::Message(_)))
                        .count();
                };
                for piece in run.chunks(64 * 1024) {
                    buf.extend_from_slice(piece);
                    while let Some(line) = codec.decode(&mut buf)? {
                        lines += 1;
                        count(line.feed(parser.as_mut()));
                    }
                }
                while let Some(line) = codec.decode_eof(&mut buf)? {
                    lines += 1;
                    count(line.feed(parser.as_mut()));
                }
                let fin = parser.finish();
                count(fin.events);
                bytes += run.len();
            }
        }
        let el = start.elapsed().as_secs_f64();
        out.push(ParseRate {
            provider,
            fixtures: runs.len(),
            bytes_per_run: runs.iter().map(Vec::len).sum(),
            mb_per_s: bytes as f64 / el / 1e6,
            lines_per_s: lines as f64 / el,
            messages_per_s: msgs as f64 / el,
        });
    }
    Ok(out)
}
