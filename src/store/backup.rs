//! Online backup: `VACUUM INTO` a new file from a read connection (WAL lets it run while the
//! writer keeps writing, and it copies one consistent snapshot), then the copy is opened, made a
//! self-contained rollback-journal file, and checked with `PRAGMA integrity_check` before it is
//! reported good.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{Store, StoreError, open_reader, open_reason, user_version};

/// Tables whose row counts a backup reports, in the order shown.
const COUNTED_TABLES: [&str; 8] = [
    "cases",
    "case_versions",
    "case_units",
    "events",
    "inbox",
    "outbox",
    "timers",
    "cards",
];

/// What a verified backup contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub path: PathBuf,
    /// Size of the backup file in bytes.
    pub bytes: u64,
    pub schema_version: u32,
    /// (table, rows) for every data table present in the copy.
    pub rows: Vec<(&'static str, u64)>,
}

impl Store {
    /// Writes a verified copy of the database to `dest`, which must not exist yet. Safe while
    /// the service runs: the copy holds every transaction committed before it started. A copy
    /// that fails the integrity check is deleted and reported as an error. Blocking; from async
    /// code run it on the blocking pool.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        let dest_str = check_dest(dest)?;
        // VACUUM cannot run inside a transaction, so this uses the bare pooled connection.
        self.with_reader(|conn| vacuum_into(conn, dest, &dest_str))?;
        verify_or_remove(dest)
    }
}

/// As [`Store::backup_to`] for a database this process has not opened, through one read-only
/// connection: it neither creates nor migrates `src`, so `tiaochu backup` run beside a live
/// service never changes the service's file.
pub fn backup_file(src: &Path, dest: &Path) -> Result<BackupReport, StoreError> {
    let dest_str = check_dest(dest)?;
    let conn = open_reader(src).map_err(|source| StoreError::Open {
        path: src.display().to_string(),
        reason: open_reason(&source),
        source,
    })?;
    vacuum_into(&conn, dest, &dest_str)?;
    drop(conn);
    verify_or_remove(dest)
}

/// Refuses an existing destination; returns the path as the UTF-8 text SQLite needs.
fn check_dest(dest: &Path) -> Result<String, StoreError> {
    let shown = dest.display().to_string();
    // symlink_metadata also catches a dangling link, which VACUUM INTO would follow.
    match std::fs::symlink_metadata(dest) {
        Ok(_) => return Err(StoreError::BackupExists { path: shown }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(StoreError::Io {
                path: shown,
                source,
            });
        }
    }
    dest.to_str()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::BadData(format!("备份路径 {shown} 不是有效的 UTF-8")))
}

fn vacuum_into(conn: &Connection, dest: &Path, dest_str: &str) -> Result<(), StoreError> {
    match conn.execute("VACUUM INTO ?1", [dest_str]) {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) => {
            Err(StoreError::Io {
                path: dest.display().to_string(),
                source: std::io::Error::other(e),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn verify_or_remove(dest: &Path) -> Result<BackupReport, StoreError> {
    match verify(dest) {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(detail)) => {
            remove_quietly(dest);
            Err(StoreError::IntegrityCheckFailed {
                path: dest.display().to_string(),
                detail,
            })
        }
        Err(e) => {
            remove_quietly(dest);
            Err(e)
        }
    }
}

/// Opens the copy, checks it, and counts its rows. The inner `Err` is the integrity-check
/// finding; the outer one a failure to check at all.
fn verify(dest: &Path) -> Result<Result<BackupReport, String>, StoreError> {
    let conn = Connection::open(dest)?;
    // The copy inherits WAL mode; a backup should be one file that can be moved on its own.
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    let findings: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if findings != ["ok"] {
        return Ok(Err(findings.join("；")));
    }
    let schema_version = user_version(&conn)?;
    let mut rows = Vec::with_capacity(COUNTED_TABLES.len());
    for table in COUNTED_TABLES {
        // A copy of an older or uninitialised file may lack a table; it then has no rows to count.
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
            [table],
            |r| r.get(0),
        )?;
        if exists {
            // Table names come from the constant above, never from input.
            let n: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            rows.push((table, n.unsigned_abs()));
        }
    }
    drop(conn);
    let bytes = std::fs::metadata(dest)
        .map_err(|source| StoreError::Io {
            path: dest.display().to_string(),
            source,
        })?
        .len();
    Ok(Ok(BackupReport {
        path: dest.to_path_buf(),
        bytes,
        schema_version,
        rows,
    }))
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "could not delete a failed backup");
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    #[test]
    fn refuses_to_overwrite_and_copies_a_single_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        store
            .write_blocking(|tx| tx.insert_event(None, "k", "a", jiff::Timestamp::UNIX_EPOCH, "{}"))
            .expect("write");

        let existing = dir.path().join("exists.db");
        std::fs::write(&existing, b"keep me").expect("write");
        let err = store.backup_to(&existing).expect_err("must refuse");
        assert!(matches!(err, StoreError::BackupExists { .. }), "{err:?}");
        assert_eq!(std::fs::read(&existing).expect("read"), b"keep me");

        let dest = dir.path().join("copy.db");
        let report = store.backup_to(&dest).expect("backup");
        assert_eq!(report.schema_version, super::super::SCHEMA_VERSION);
        assert!(report.rows.contains(&("events", 1)), "{:?}", report.rows);
        assert_eq!(report.bytes, std::fs::metadata(&dest).expect("meta").len());
        assert!(
            !dir.path().join("copy.db-wal").exists(),
            "backup must be one self-contained file"
        );
        let mode: String = Connection::open(&dest)
            .expect("open copy")
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "delete");
    }

    #[test]
    fn backup_file_neither_creates_nor_migrates_the_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.db");
        let err = backup_file(&missing, &dir.path().join("b.db")).expect_err("no source");
        assert!(err.to_string().starts_with("无法打开数据库文件"), "{err}");
        assert!(!missing.exists(), "the source must not be created");

        let old = dir.path().join("old.db");
        Connection::open(&old)
            .and_then(|c| c.execute_batch("CREATE TABLE cases (id INTEGER PRIMARY KEY); INSERT INTO cases DEFAULT VALUES;"))
            .expect("an unmigrated file");
        let report = backup_file(&old, &dir.path().join("b.db")).expect("backup");
        assert_eq!(
            (report.schema_version, report.rows.clone()),
            (0, vec![("cases", 1)])
        );
        let version: u32 = Connection::open(&old)
            .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
            .expect("version");
        assert_eq!(version, 0, "the source was not migrated");
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let err = store
            .backup_to(&dir.path().join("no").join("copy.db"))
            .expect_err("must fail");
        assert!(err.to_string().starts_with("无法访问文件"), "{err}");
    }
}
