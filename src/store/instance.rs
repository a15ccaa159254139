//! One running service per database. Two `tiaochu serve` processes on one file would both
//! process the inbox, fire the timers and send the outbox; the writer thread's ordering only
//! holds inside one process. So the service holds an exclusive advisory lock on a companion file
//! (`<database>.lock`) for as long as it runs, and a second one refuses to start, naming the file.
//!
//! The companion file, not the database itself: SQLite's own locks are POSIX record locks, which
//! a process loses when it closes ANY descriptor of the file, so this module must never open the
//! database. The kernel drops the lock when the holder exits, SIGKILL included, so a crashed
//! service never blocks its own restart — and because of that, whatever a previous holder left
//! leased in the outbox is known to be abandoned (see `Tx::release_outbox_leases`).
//!
//! Command-line tools (`outbox`, `report`, `backup`, …) do not take the lock: they run beside the
//! service through SQLite's normal locking.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::StoreError;

/// The lock, held until dropped.
#[derive(Debug)]
pub struct ServiceLock {
    /// Kept open: closing it releases the lock.
    _file: File,
    path: PathBuf,
}

impl ServiceLock {
    /// Takes the lock of the database at `db`, creating `<db>.lock` when needed, and writes this
    /// process's id into it (for the admin who finds it). Fails at once, without waiting, when
    /// another process holds it.
    pub fn acquire(db: &Path) -> Result<ServiceLock, StoreError> {
        let path = lock_path(db);
        let shown = path.display().to_string();
        let io = |source: std::io::Error| StoreError::Io {
            path: shown.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(StoreError::InUse {
                    db: db.display().to_string(),
                    lock: shown,
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Only the holder writes, so the id is never interleaved with another's.
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(ServiceLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `<db>.lock`, beside the database.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("t.db");
        let first = ServiceLock::acquire(&db).expect("first");
        assert_eq!(first.path(), dir.path().join("t.db.lock"));
        let err = ServiceLock::acquire(&db).expect_err("second while the first holds it");
        let text = err.to_string();
        assert!(text.contains("t.db"), "{text}");
        assert!(
            text.contains(&std::process::id().to_string()),
            "names the holder: {text}"
        );
        drop(first);
        ServiceLock::acquire(&db).expect("free again once dropped");
    }
}
