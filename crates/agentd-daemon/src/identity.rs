//! The daemon's stable identity and single-instance lock, both in its data dir.
//!
//! `daemon.id` holds a UUID written once (atomically: temp file, then rename) and reused
//! forever, so a machine keeps one identity across restarts and upgrades and the server
//! upserts the same runtime rows. `daemon.lock` is held with an OS file lock for the
//! process's life: the OS releases it when the process dies, so there is no stale-PID logic.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("another agentd daemon is already running with data dir {dir} (it holds {path})")]
    Locked { dir: String, path: String },
}

/// Reads the persisted daemon id, or mints and persists one. A corrupt file is replaced
/// (with a warning): an unreadable identity must not keep the daemon down.
pub fn load_or_create_daemon_id(data_dir: &Path) -> Result<String, IdentityError> {
    crate::fsutil::create_private_dir(data_dir).map_err(|source| IdentityError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let path = data_dir.join("daemon.id");
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            if let Ok(id) = uuid::Uuid::parse_str(s.trim()) {
                return Ok(id.to_string());
            }
            tracing::warn!(path = %path.display(), "daemon.id is corrupt; minting a new identity");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(IdentityError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    }
    let id = uuid::Uuid::now_v7().to_string();
    crate::fsutil::write_atomic(&path, format!("{id}\n").as_bytes()).map_err(|source| {
        IdentityError::Write {
            path: path.display().to_string(),
            source,
        }
    })?;
    Ok(id)
}

/// Takes the single-instance lock of a data dir. Keep the returned file open.
pub fn lock_data_dir(data_dir: &Path) -> Result<File, IdentityError> {
    crate::fsutil::create_private_dir(data_dir).map_err(|source| IdentityError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let path = data_dir.join("daemon.lock");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| IdentityError::Write {
            path: path.display().to_string(),
            source,
        })?;
    if f.try_lock().is_err() {
        return Err(IdentityError::Locked {
            dir: data_dir.display().to_string(),
            path: path.display().to_string(),
        });
    }
    let _ = f.set_len(0);
    let _ = writeln!(f, "{}", std::process::id());
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_stable_and_corruption_heals() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_daemon_id(dir.path()).unwrap();
        let b = load_or_create_daemon_id(dir.path()).unwrap();
        assert_eq!(a, b);
        std::fs::write(dir.path().join("daemon.id"), "garbage").unwrap();
        let c = load_or_create_daemon_id(dir.path()).unwrap();
        assert_ne!(a, c);
        assert_eq!(c, load_or_create_daemon_id(dir.path()).unwrap());
    }

    #[test]
    fn second_lock_on_a_data_dir_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("already running"), "{err}");
    }
}
