//! Small synchronous helpers every component shares: a poison-tolerant mutex lock, and
//! the one atomic file write (temp file, fsync, rename, fsync of the directory) used for
//! the daemon's identity, its outbox records and `agentd up`'s `up.json`. (The server
//! keeps its own `write_secret`: neither library may depend on the other.)

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Locks a std mutex, recovering the data if a panicking thread poisoned it: every
/// critical section in this crate leaves the data consistent at each statement.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes `bytes` to `path` atomically and durably, readable by the owner only (0600):
/// a temp file beside it (`.<name>.tmp`), fsynced, renamed over `path`, then the
/// directory fsynced so the rename itself survives a power cut. A failed write leaves
/// no temp file behind. Blocking: call it off the async runtime's worker threads.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        // A leftover temp file (a crash mid-write) may have other permissions: `mode`
        // applies only to a file this call creates, so start from none.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Creates `dir` (and missing parents) readable by the owner only (0700); an existing
/// directory keeps its mode.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_is_owner_only_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the file itself");
        assert!(write_atomic(&dir.path().join("missing/dir/x"), b"x").is_err());

        // A world-readable temp file left by a crash does not lend its mode to the secret.
        let stale = dir
            .path()
            .join(format!(".secret.{}.tmp", std::process::id()));
        std::fs::write(&stale, "old").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&p, b"three").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!stale.exists());
    }
}
