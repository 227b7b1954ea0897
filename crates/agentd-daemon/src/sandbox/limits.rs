//! Memory and process caps of one agent run.
//!
//! Applied by the `agentd sandbox-exec` launcher to itself just before it `exec`s bwrap,
//! so the cap covers every process of the run from its first instruction (no window in
//! which a fork escapes). In order of preference:
//! 1. **cgroup v2**, when the cgroup around the daemon's own is delegated to it (e.g. a
//!    systemd unit with `Delegate=yes`): a `agentd-<task>` cgroup with `memory.max` and
//!    `pids.max` for the whole run.
//! 2. **cgroup v1**, when the `memory` / `pids` hierarchies are writable (root on a
//!    hybrid-cgroup host): `memory.limit_in_bytes` and `pids.max`.
//! 3. **rlimits** otherwise: `RLIMIT_DATA` (per process, private writable memory) and
//!    `RLIMIT_NPROC` (per user, so it counts the user's other processes too, and the
//!    kernel does not enforce it for root).
//!
//! [`cleanup`] removes the run's cgroups once it is over.

use std::path::{Path, PathBuf};

use super::Limits;

/// How one cap was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    CgroupV2(PathBuf),
    CgroupV1(PathBuf),
    Rlimit,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Applied::CgroupV2(p) => write!(f, "cgroup v2 {}", p.display()),
            Applied::CgroupV1(p) => write!(f, "cgroup v1 {}", p.display()),
            Applied::Rlimit => write!(f, "rlimit"),
        }
    }
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// This process's cgroup path in hierarchy `controller` (`""` = the v2 unified one).
fn own_cgroup(controller: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        hit.then(|| path.to_string())
    })
}

fn cgroup_name(run: &str) -> String {
    let safe: String = run
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    format!("agentd-{safe}")
}

/// Makes `dir`, writes each `(file, value)` and moves this process in.
fn enter_dir(dir: &Path, settings: &[(&str, String)]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let result = (|| {
        for (file, value) in settings {
            std::fs::write(dir.join(file), value)?;
        }
        std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir(dir);
    }
    result
}

fn try_v2(limits: &Limits, name: &str) -> Option<Applied> {
    let root = Path::new(CGROUP_ROOT);
    if !root.join("cgroup.controllers").exists() {
        return None;
    }
    let own = own_cgroup("")?;
    // A v2 cgroup with processes cannot have children with controllers: the run's
    // cgroup is a sibling of the daemon's, in the delegated cgroup around it.
    let parent = root
        .join(own.trim_start_matches('/'))
        .parent()?
        .to_path_buf();
    let dir = parent.join(name);
    let mut settings = Vec::new();
    if let Some(m) = limits.memory_bytes {
        settings.push(("memory.max", m.to_string()));
        settings.push(("memory.swap.max", "0".to_string()));
    }
    if let Some(p) = limits.max_processes {
        settings.push(("pids.max", p.to_string()));
    }
    enter_dir(&dir, &settings).ok()?;
    Some(Applied::CgroupV2(dir))
}

fn try_v1(controller: &str, file: &str, value: u64, name: &str) -> Option<Applied> {
    let base = Path::new(CGROUP_ROOT).join(controller);
    if !base.join("cgroup.procs").exists() {
        return None;
    }
    let own = own_cgroup(controller)?;
    let dir = base.join(own.trim_start_matches('/')).join(name);
    enter_dir(&dir, &[(file, value.to_string())]).ok()?;
    Some(Applied::CgroupV1(dir))
}

fn rlimit(resource: nix::sys::resource::Resource, value: u64) -> Result<Applied, String> {
    nix::sys::resource::setrlimit(resource, value, value)
        .map_err(|e| format!("setrlimit {resource:?}: {e}"))?;
    Ok(Applied::Rlimit)
}

/// What [`enter`] did, per cap.
#[derive(Debug, Default)]
pub struct Entered {
    pub memory: Option<Applied>,
    pub processes: Option<Applied>,
}

/// Puts this process (and so everything it `exec`s and forks) under `limits`.
pub fn enter(limits: &Limits, run: &str) -> Result<Entered, String> {
    use nix::sys::resource::Resource;
    let name = cgroup_name(run);
    if limits.memory_bytes.is_none() && limits.max_processes.is_none() {
        return Ok(Entered::default());
    }
    if let Some(v2) = try_v2(limits, &name) {
        return Ok(Entered {
            memory: limits.memory_bytes.map(|_| v2.clone()),
            processes: limits.max_processes.map(|_| v2),
        });
    }
    let mut out = Entered::default();
    if let Some(m) = limits.memory_bytes {
        out.memory = Some(match try_v1("memory", "memory.limit_in_bytes", m, &name) {
            Some(a) => {
                // Swap would let the run go past its cap; not every kernel has the knob.
                let _ =
                    std::fs::write(a_dir(&a).join("memory.memsw.limit_in_bytes"), m.to_string());
                a
            }
            None => rlimit(Resource::RLIMIT_DATA, m)?,
        });
    }
    if let Some(p) = limits.max_processes {
        out.processes = Some(match try_v1("pids", "pids.max", p, &name) {
            Some(a) => a,
            None => rlimit(Resource::RLIMIT_NPROC, p)?,
        });
    }
    Ok(out)
}

fn a_dir(a: &Applied) -> PathBuf {
    match a {
        Applied::CgroupV2(p) | Applied::CgroupV1(p) => p.clone(),
        Applied::Rlimit => PathBuf::new(),
    }
}

/// Removes the cgroups [`enter`] made for `run`. The run is over, but the kernel may
/// still be releasing its last processes (EBUSY): each removal is retried for up to 2 s.
pub async fn cleanup(run: &str) {
    let name = cgroup_name(run);
    let root = Path::new(CGROUP_ROOT);
    let mut dirs = Vec::new();
    if let Some(own) = own_cgroup("")
        && let Some(parent) = root.join(own.trim_start_matches('/')).parent()
    {
        dirs.push(parent.join(&name));
    }
    for c in ["memory", "pids"] {
        if let Some(own) = own_cgroup(c) {
            dirs.push(root.join(c).join(own.trim_start_matches('/')).join(&name));
        }
    }
    for d in dirs {
        for _ in 0..100 {
            match std::fs::remove_dir(&d) {
                Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                _ => break,
            }
        }
    }
}

/// Parses `512M`, `2G`, `1048576` (bytes).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => {
            let unit = t[i..].trim();
            let m = match unit
                .to_ascii_uppercase()
                .trim_end_matches("IB")
                .trim_end_matches('B')
            {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1u64 << 40,
                _ => {
                    return Err(format!(
                        "{s:?}: unknown unit {unit:?} (use K, M, G, T or a number of bytes)"
                    ));
                }
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (use e.g. 512M or 2G)"))?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("2G").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("0").is_err());
    }
}
