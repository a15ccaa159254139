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
//! The lock file is named after the database's real path (symbolic links resolved, the directory
//! made absolute), so a second service reaching the same file through a link or another relative
//! path meets the same lock. Hard links are not told apart: SQLite itself warns against them.
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
        let real = real_path(db).map_err(|source| StoreError::Io {
            path: db.display().to_string(),
            source,
        })?;
        let path = lock_path(&real);
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

/// Symbolic links followed at most this many times (Linux's own limit is 40).
const MAX_LINKS: usize = 40;

/// The file `db` names: links resolved and the path absolute. The database need not exist yet
/// (first start): then its directory is resolved and the name joined, after following a
/// dangling link to where SQLite would create the file.
pub fn real_path(db: &Path) -> std::io::Result<PathBuf> {
    let mut path = db.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::canonicalize(&path) {
            Ok(real) => return Ok(real),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            let target = std::fs::read_link(&path)?;
            path = match path.parent() {
                Some(dir) if target.is_relative() => dir.join(target),
                _ => target,
            };
            continue;
        }
        let name = path.file_name().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "数据库路径没有文件名 / the database path names no file",
            )
        })?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        return Ok(std::fs::canonicalize(dir)?.join(name));
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "数据库路径的符号链接层数过多 / too many levels of symbolic links",
    ))
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
        let real_dir = std::fs::canonicalize(dir.path()).expect("dir");
        assert_eq!(first.path(), real_dir.join("t.db.lock"));
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

    #[test]
    fn a_link_to_the_database_meets_the_same_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("dir");
        let db = data.join("t.db");
        // The database does not exist yet: a link to its directory and a dangling link to the
        // file both resolve to it.
        let dir_link = dir.path().join("via-dir");
        std::os::unix::fs::symlink(&data, &dir_link).expect("dir link");
        let file_link = dir.path().join("via-file.db");
        std::os::unix::fs::symlink(&db, &file_link).expect("file link");
        let relative_link = dir.path().join("relative.db");
        std::os::unix::fs::symlink("data/t.db", &relative_link).expect("relative link");

        let first = ServiceLock::acquire(&file_link).expect("first, through the dangling link");
        for other in [&db, &dir_link.join("t.db"), &relative_link] {
            let err = ServiceLock::acquire(other).expect_err("the same database");
            assert!(
                err.to_string().contains(&std::process::id().to_string()),
                "names the holder: {err}"
            );
        }
        drop(first);
        std::fs::write(&db, b"").expect("the database now exists");
        let _held = ServiceLock::acquire(&dir_link.join("t.db")).expect("free again");
        let err = ServiceLock::acquire(&file_link).expect_err("an existing file via a link");
        assert!(
            err.to_string().contains("via-file.db"),
            "names the path given: {err}"
        );
    }
}
