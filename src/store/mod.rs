//! The store owns every line of SQL: one SQLite file (WAL) holding cases, the append-only event
//! log, inbox, outbox, timers and cards, with its schema migrated from the embedded
//! `migrations/*.sql`.
//!
//! Every commit is in the WAL before its caller hears of it, so a killed process loses nothing
//! committed. Against a power cut, a write that anybody outside may act on — an acknowledgement,
//! an admin's command, the outbox's claim before it sends — is answered only once an `fsync` of
//! the WAL has put its commit on the disk, and that `fsync` covers every commit before it; inbox
//! decisions and the outbox's record of a send are answered at their commit, being redone from
//! synced rows when a power cut loses them ([`Durability`]). The writer commits without waiting
//! for the disk (`synchronous=NORMAL`); a separate thread does the `fsync`s ([`sync`]).
//!
//! All writes go through ONE writer thread that owns the only write connection, so a decision
//! (case + events + outbox + timers) is one `IMMEDIATE` transaction and no two writers ever race
//! for the lock. Queued writes share a transaction, each under its own savepoint (group commit).
//! Writes somebody is waiting on at the door — acknowledgements above all — are served ahead of
//! background writes (the inbox worker's decisions, [`Store::write_background`]), which take
//! their turn by time: see [`share`] (docs/throughput.md has the measurements). Reads use a small
//! pool of separate connections, which WAL lets run alongside the writer. Checkpoints (copying
//! the WAL back into the database file, with its own fsync) run on a separate thread every
//! [`CHECKPOINT_EVERY`] instead of inside whichever commit crosses SQLite's automatic threshold,
//! so no callback's commit waits for one. The store knows nothing of the workflow: cases are
//! indexed columns plus a JSON document, events are JSON, outbox payloads are the exact bytes to
//! send.
//!
//! Every instant is stored as INTEGER milliseconds since the Unix epoch (UTC).
//!
//! The writer remembers whether the last write failed for a reason of the storage itself (full
//! disk, I/O error, read-only file, lock timeout) and why, until a later write commits a change:
//! [`Store::write_failure`]. Reads still answer on a full disk, so without it a health check
//! would say "ok" while every callback is refused.

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use rusqlite_migration::{M, Migrations, SchemaVersion};
use tokio::sync::{oneshot, watch};

mod backlog;
mod backup;
mod card_instances;
mod cases;
mod commit_times;
mod dashboard;
mod digest;
mod events;
mod inbox;
mod instance;
mod onboarding;
mod outbox;
mod quarantine;
mod roster;
mod sandbox;
mod secrets;
mod seen;
mod sender_rate;
mod share;
mod similar;
mod sync;
mod timers;

pub use backlog::Backlog;
pub use backup::{BackupReport, backup_file};
pub use card_instances::CardRow;
pub use cases::{CaseRow, CaseUnitRow, CaseVersionRow, NewCase};
use commit_times::CommitTimes;
pub use commit_times::{COMMIT_BUCKETS, CommitHistogram};
pub use dashboard::{CaseFilter, new_secret, secret_hash};
pub use events::EventRow;
pub use inbox::{InboxInsert, InboxRow, NewInbound};
pub use instance::{ServiceLock, lock_path};
pub use onboarding::OnboardingRow;
pub use outbox::{Channels, NewOutbound, OutboxRow, OutboxState};
pub use quarantine::{QuarantineId, QuarantineKind, QuarantinedRow};
pub use roster::{RosterChangeRow, RosterOverride};
pub use secrets::{SECRET_LEN, random_bytes};
pub use seen::SignatureUse;
pub use sender_rate::{SENDER_WINDOW_MS, SenderWindow};
pub use similar::{SimilarBulk, StoreIndex};
pub use timers::{NewTimer, TimerRow, TimerState};

// Applied in list order; a new migration is only ever appended.
const MIGRATION_LIST: &[M<'static>] = &[
    M::up(include_str!("migrations/0001_initial.sql")),
    M::up(include_str!("migrations/0002_roster.sql")),
    M::up(include_str!("migrations/0003_dashboard.sql")),
    M::up(include_str!("migrations/0004_digest.sql")),
    M::up(include_str!("migrations/0005_sandbox_clock.sql")),
    M::up(include_str!("migrations/0006_seen_signatures.sql")),
    M::up(include_str!("migrations/0007_service_secrets.sql")),
    M::up(include_str!("migrations/0008_sender_rate.sql")),
    M::up(include_str!("migrations/0009_similar.sql")),
    M::up(include_str!("migrations/0010_quarantine.sql")),
    M::up(include_str!("migrations/0011_onboarding.sql")),
    M::up(include_str!("migrations/0012_similar_newest_first.sql")),
];
const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_LIST);

/// The schema version this build migrates to (SQLite `user_version`).
pub const SCHEMA_VERSION: u32 = MIGRATION_LIST.len() as u32;

/// How long a connection waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// How often the checkpoint thread copies the WAL into the database file (PASSIVE: it never
/// blocks the writer or a reader, and does what it can).
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Idle read connections kept for reuse; more are opened on demand and closed after use.
const READ_POOL_IDLE: usize = 4;

/// What the store reports to its users. The messages are Chinese because they reach the admin;
/// they never contain SQL or citizen data (the `source` chain may carry SQLite's own wording).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("无法打开数据库文件 {path}：{reason}")]
    Open {
        path: String,
        reason: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("磁盘空间已满，无法写入数据库；请清理磁盘后重试")]
    DiskFull(#[source] rusqlite::Error),
    #[error("数据库正被其他进程占用，等待超时；请稍后重试")]
    Busy(#[source] rusqlite::Error),
    #[error("数据库文件已损坏，请从备份恢复")]
    Corrupt(#[source] rusqlite::Error),
    #[error("数据库结构版本 {found} 比本程序支持的版本 {supported} 新，请升级 tiaochu")]
    TooNew { found: u32, supported: u32 },
    #[error(
        "数据库文件 {path} 存在但是空的（0 字节），可能是恢复备份时复制失败；为免在空库上运行而丢失全部案件，拒绝打开。请按 deploy/README.md“九、备份与恢复”从备份恢复；确实要新建数据库时，执行 tiaochu migrate 或 tiaochu serve --init。\nThe database file {path} exists but is empty (0 bytes), e.g. after a failed restore; refusing to open it. Restore it from a backup, or run `tiaochu migrate` or `tiaochu serve --init` to create a new database on purpose."
    )]
    EmptyFile { path: String },
    #[error("数据库文件 {path} 无法启用 WAL 日志模式（文件系统不支持？）")]
    NoWal { path: String },
    #[error("数据库结构升级失败")]
    Migrate(#[source] rusqlite_migration::Error),
    #[error("数据库中的数据无效：{0}")]
    BadData(String),
    #[error("{what}已被其他操作修改，请重新读取后再试")]
    Conflict { what: String },
    #[error("未找到{what}")]
    NotFound { what: String },
    /// Returned by a write closure whose error type is `StoreError` when it decides, for its
    /// own reason, to roll back. Callers with an error type of their own return that instead
    /// (see [`TxError`]), so their errors keep their kind.
    #[error("操作未完成：{0}")]
    Abort(String),
    /// The write ran, but the transaction it shared could not be begun or committed (full disk,
    /// I/O error, lock timeout): nothing of it was stored. The reason is the storage's own.
    #[error("数据库提交失败，本次操作未保存：{0}")]
    CommitFailed(String),
    /// The write committed, or would have, but an `fsync` of the WAL failed, so it is not
    /// known to be on the disk; the store refuses writes until restarted (src/store/sync.rs).
    #[error("{0}")]
    NotSynced(String),
    #[error(
        "数据库 {db} 已有一个 tiaochu serve 在运行（进程号 {holder}，锁文件 {lock}）。同一个数据库只能运行一个服务：请先停止另一个（systemctl stop tiaochu），或为本进程配置另一个 [store] path"
    )]
    InUse {
        db: String,
        lock: String,
        holder: String,
    },
    #[error("备份文件 {path} 已存在，不会覆盖")]
    BackupExists { path: String },
    #[error("备份文件 {path} 完整性检查未通过（{detail}），已删除该文件")]
    IntegrityCheckFailed { path: String, detail: String },
    #[error("无法访问文件 {path}：{source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("数据库写入线程已停止，请重启服务")]
    WriterGone,
    #[error("数据库操作异常中止（程序错误），本次操作未生效")]
    Panicked,
    #[error("数据库操作失败（{}）", sqlite_code_label(*.code))]
    Sqlite {
        code: Option<rusqlite::ErrorCode>,
        #[source]
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// Whether this error says the storage cannot take writes (as opposed to a write refused
    /// for its own reasons: a conflict, a constraint, a decision to roll back).
    pub fn is_storage_failure(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            StoreError::DiskFull(_)
            | StoreError::Busy(_)
            | StoreError::Corrupt(_)
            | StoreError::Io { .. }
            | StoreError::CommitFailed(_)
            | StoreError::NotSynced(_)
            | StoreError::WriterGone => true,
            StoreError::Sqlite { code, .. } => matches!(
                code,
                Some(
                    C::SystemIoFailure
                        | C::ReadOnly
                        | C::PermissionDenied
                        | C::CannotOpen
                        | C::OutOfMemory
                        | C::FileLockingProtocolFailed
                        | C::NotADatabase
                )
            ),
            _ => false,
        }
    }
}

impl StoreError {
    /// Whether the same write may succeed when tried again later: the storage failed under it,
    /// or another write changed the row first. The inbox and the scheduler retry these with
    /// backoff and never quarantine a row for them.
    pub fn is_transient(&self) -> bool {
        self.is_storage_failure() || matches!(self, StoreError::Conflict { .. })
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DiskFull) => StoreError::DiskFull(e),
            Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Busy(e),
            Some(C::DatabaseCorrupt | C::NotADatabase) => StoreError::Corrupt(e),
            code => StoreError::Sqlite { code, source: e },
        }
    }
}

impl From<rusqlite_migration::Error> for StoreError {
    fn from(e: rusqlite_migration::Error) -> Self {
        match e {
            rusqlite_migration::Error::RusqliteError { err, .. } => err.into(),
            other => StoreError::Migrate(other),
        }
    }
}

/// The error a store closure returns: any type a [`StoreError`] converts into, so an engine or
/// report error travels through [`Store::write`] with its kind intact. `store_error` lets the
/// writer tell a failure of the storage itself (remembered for [`Store::write_failure`]) from a
/// closure that decided to roll back.
pub trait TxError: From<StoreError> + Send + 'static {
    /// The store error this is, when it is one.
    fn store_error(&self) -> Option<&StoreError>;
}

impl TxError for StoreError {
    fn store_error(&self) -> Option<&StoreError> {
        Some(self)
    }
}

/// The schema version before and after [`Store::open`] migrated the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationReport {
    /// 0 for a file that was just created.
    pub before: u32,
    pub after: u32,
}

/// The connection settings actually in force on the writer connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragmas {
    /// `"wal"` once opened.
    pub journal_mode: String,
    /// 1 (NORMAL): the writer's commits do not wait for the disk; the sync thread's `fsync`
    /// puts them there before a synced write is answered (see [`Durability`]).
    pub synchronous: i64,
    /// Milliseconds.
    pub busy_timeout_ms: i64,
    pub foreign_keys: bool,
}

/// A unit of work for the writer thread. It answers its caller itself, through a channel it
/// captured, so the loop stays generic.
enum Job {
    /// Needs the connection alone, outside any transaction (pragmas, tests).
    Exclusive(Box<dyn FnOnce(&mut Writer) + Send>),
    /// A write that shares one commit with the writes queued behind it (group commit).
    Write(Box<dyn GroupWrite>),
    /// A write nobody waits on at the door (an inbox decision): served after the waiting
    /// [`Job::Write`]s, in its own order, by the rules of [`run_round`].
    Background(Box<dyn GroupWrite>),
}

impl<F: FnOnce(&mut Writer) + Send + 'static> From<F> for Job {
    fn from(f: F) -> Job {
        Job::Exclusive(Box::new(f))
    }
}

/// How many queued writes one commit may carry (of each kind: waiting and background). Each
/// write keeps its own savepoint, so one that fails is undone alone; the group shares the
/// `fsync` of a single commit, which is what lets a burst of callbacks be acknowledged without
/// one disk sync each.
const GROUP_MAX: usize = 64;

use share::{BackgroundCredit, Round};

/// What became of one write of a group, before the commit.
enum Ran {
    /// Its changes are to be kept.
    Keep,
    /// Rolled back for its own reason (an error of the closure, a panic).
    Discard,
    /// Rolled back because the storage failed under it; the reason is for [`Store::write_failure`].
    StorageFailed(String),
}

/// When a committed write reaches the disk. Every commit is in the WAL file before its caller is
/// answered, so a killed process loses nothing committed either way; what differs is a power
/// cut or a crash of the machine itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Answered once an `fsync` of the WAL that began after its commit has returned (the sync
    /// thread, [`sync`]): an acknowledgement to DingTalk, an admin's command, the outbox's claim
    /// before it sends.
    Synced,
    /// Answered at its commit; on the disk with the next `fsync` of the WAL, which covers every
    /// frame before it, or the next checkpoint. For writes whose loss in a power cut is made good
    /// by redoing them from what was synced: an inbox decision (the message stays unprocessed and
    /// is decided again) and the outbox's record of a send (the lease is released at start-up and
    /// the row sent again). Nothing leaves the machine on the strength of such a write alone: the
    /// outbox claims rows with a [`Durability::Synced`] commit before it sends them.
    Deferred,
}

/// One write inside a group: runs under its own savepoint, answers its caller only after the
/// group's commit.
trait GroupWrite: Send {
    /// Whether its caller hears "committed" only once the commit is on the disk.
    fn durability(&self) -> Durability;
    /// Runs the write.
    fn run(&mut self, tx: &Tx<'_>) -> Ran;
    /// Answers the caller once the group's commit succeeded (`Ok`) or failed (`Err`).
    fn finish(self: Box<Self>, commit: Result<(), Unfinished<'_>>);
}

/// Why the writes of a round are not answered "committed", with the reason for the admin.
#[derive(Debug, Clone, Copy)]
enum Unfinished<'a> {
    /// The transaction could not begin or commit: nothing of it was stored.
    Commit(&'a str),
    /// An `fsync` failed (now or before): what it covered is not known to be on the disk.
    Sync(&'a str),
}

/// Hands a write's outcome back to its caller (an async or a blocking channel).
type Reply<T, E> = Box<dyn FnOnce(Result<T, E>) + Send>;

struct PendingWrite<T, E, F> {
    durability: Durability,
    f: Option<F>,
    result: Option<Result<T, E>>,
    reply: Option<Reply<T, E>>,
}

impl<T, E, F> GroupWrite for PendingWrite<T, E, F>
where
    T: Send,
    E: TxError,
    F: FnOnce(&Tx<'_>) -> Result<T, E> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(&mut self, tx: &Tx<'_>) -> Ran {
        let Some(f) = self.f.take() else {
            return Ran::Discard;
        };
        // A panicking closure must not take the writer thread (and every later write) down.
        let (ran, result) = match catch_unwind(AssertUnwindSafe(|| f(tx))) {
            Ok(Ok(value)) => (Ran::Keep, Ok(value)),
            Ok(Err(e)) => match e.store_error() {
                Some(s) if s.is_storage_failure() => (Ran::StorageFailed(s.to_string()), Err(e)),
                _ => (Ran::Discard, Err(e)),
            },
            Err(_) => {
                tracing::error!("a store write closure panicked; its changes were rolled back");
                (Ran::Discard, Err(E::from(StoreError::Panicked)))
            }
        };
        self.result = Some(result);
        ran
    }

    fn finish(mut self: Box<Self>, commit: Result<(), Unfinished<'_>>) {
        let result = match (commit, self.result.take()) {
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Err(Unfinished::Commit(why)), _) => {
                Err(E::from(StoreError::CommitFailed(why.to_string())))
            }
            (Err(Unfinished::Sync(why)), _) => Err(E::from(StoreError::NotSynced(why.to_string()))),
            (Ok(()), None) => Err(E::from(StoreError::WriterGone)),
        };
        if let Some(reply) = self.reply.take() {
            reply(result);
        }
    }
}

/// What the writer thread owns.
struct Writer {
    conn: Connection,
    changes: Arc<Changes>,
    health: Arc<WriteHealth>,
    commits: Arc<CommitTimes>,
    /// The background writes' share of this thread, carried across rounds.
    credit: BackgroundCredit,
    /// The WAL, which this thread `fsync`s itself when nothing else waits.
    disk: Arc<sync::Disk>,
    /// Where committed rounds with synced writes go to be put on the disk when more work waits.
    syncer: mpsc::Sender<sync::ToSync>,
}

/// The queues a committed transaction can add work to, each with a generation counter its
/// worker waits on: the scheduler on timers, the inbox processor on new inbound rows, the
/// outbox sender on new outbound rows. Bumped right after the commit, so a woken worker always
/// finds the rows; it need not wait for the disk, as whatever it sends on them is claimed by a
/// synced write first.
#[derive(Debug)]
struct Changes {
    timers: watch::Sender<u64>,
    inbox: watch::Sender<u64>,
    outbox: watch::Sender<u64>,
}

impl Changes {
    fn new() -> Changes {
        Changes {
            timers: watch::Sender::new(0),
            inbox: watch::Sender::new(0),
            outbox: watch::Sender::new(0),
        }
    }

    /// Tells the workers of every queue in `touched` (a [`Touched`] set).
    fn announce(&self, touched: u8) {
        let bump = |tx: &watch::Sender<u64>| tx.send_modify(|g| *g = g.wrapping_add(1));
        if touched & Touched::TIMERS != 0 {
            bump(&self.timers);
        }
        if touched & Touched::INBOX != 0 {
            bump(&self.inbox);
        }
        if touched & Touched::OUTBOX != 0 {
            bump(&self.outbox);
        }
    }
}

/// Which queues a transaction added to (bit flags; see [`Changes`]).
struct Touched;

impl Touched {
    const TIMERS: u8 = 1;
    const INBOX: u8 = 2;
    const OUTBOX: u8 = 4;
}

/// Why the last write that reached the storage failed; `None` once a later one committed a
/// change. A failed `fsync` is kept for good: see [`WriteHealth::lose_sync`].
/// Written by the writer and sync threads, read by any handle.
#[derive(Debug, Default)]
struct WriteHealth {
    last: Mutex<Option<String>>,
    lost_sync: std::sync::OnceLock<String>,
}

impl WriteHealth {
    fn get(&self) -> Option<String> {
        self.lost_sync().or_else(|| self.lock().clone())
    }

    /// Why an `fsync` of the WAL failed, once one has: from then on no write is known to reach
    /// the disk, so every write is refused until the service restarts.
    fn lost_sync(&self) -> Option<String> {
        self.lost_sync.get().cloned()
    }

    /// Records a failed `fsync` for good and returns the reason the waiting writes are told.
    fn lose_sync(&self, e: &std::io::Error) -> String {
        let reason = self
            .lost_sync
            .get_or_init(|| {
                format!(
                    "数据库日志写入磁盘失败（{e}），已提交的内容不能确认已落盘；此后的写入一律拒绝，请检查磁盘后重启服务"
                )
            })
            .clone();
        tracing::error!(error = %e, "an fsync of the write-ahead log failed; writes are refused until restart");
        reason
    }

    fn set(&self, failure: Option<String>) {
        let mut last = self.lock();
        if *last != failure {
            match &failure {
                Some(reason) => tracing::error!(%reason, "database writes are failing"),
                None => tracing::info!("database writes succeed again"),
            }
        }
        *last = failure;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // An Option<String> cannot be left half-written by a panic.
        self.last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Inner {
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
    idle_reads: Mutex<Vec<Connection>>,
    changes: Arc<Changes>,
    health: Arc<WriteHealth>,
    commits: Arc<CommitTimes>,
    migration: MigrationReport,
    /// Dropped with the last handle, which stops the checkpoint thread.
    _checkpoints: mpsc::Sender<()>,
    /// Declared last, so dropped after the senders above have closed both channels.
    _threads: StoreThreads,
}

/// The writer, sync and checkpoint threads, joined when the last handle is dropped: a process that
/// exits right after (every CLI command) then leaves the database checkpointed and closed, not a
/// write-ahead log still being copied into the file.
struct StoreThreads(Vec<std::thread::JoinHandle<()>>);

impl Drop for StoreThreads {
    fn drop(&mut self) {
        let me = std::thread::current().id();
        for thread in self.0.drain(..) {
            // The last handle can be dropped on the writer thread itself (inside a queued
            // write that held a clone); that thread ends by itself once it returns.
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
    }
}

/// The handle to the database. Cheap to clone; every clone talks to the same writer thread,
/// which stops when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies the pragmas, migrates it to
    /// [`SCHEMA_VERSION`] and starts the writer thread. The parent directory must exist.
    ///
    /// An existing file of zero bytes is refused ([`StoreError::EmptyFile`]): SQLite would take
    /// it for a new database, so a restore that copied nothing would start an empty service
    /// unnoticed. A missing file is created (the first start). [`Store::open_initialising`] is
    /// the deliberate way to turn an empty file into a database.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, false)
    }

    /// As [`Store::open`], but an existing empty file is made a new database too: for
    /// `tiaochu migrate` and `tiaochu serve --init`, where the admin asked for it.
    pub fn open_initialising(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, true)
    }

    fn open_with(path: &Path, initialise_empty: bool) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        if !initialise_empty && is_empty_file(path) {
            return Err(StoreError::EmptyFile { path: shown });
        }
        let open_err = |source: rusqlite::Error| StoreError::Open {
            path: shown.clone(),
            reason: open_reason(&source),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        let mode = configure_writer(&conn).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal {
                path: shown.clone(),
            });
        }

        let before = user_version(&conn).map_err(open_err)?;
        if before > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: before,
                supported: SCHEMA_VERSION,
            });
        }
        MIGRATIONS.to_latest(&mut conn)?;
        let after = match MIGRATIONS.current_version(&conn)? {
            SchemaVersion::NoneSet => 0,
            SchemaVersion::Inside(v) | SchemaVersion::Outside(v) => version_u32(v),
        };

        let first_read = open_reader(path).map_err(open_err)?;
        let changes = Arc::new(Changes::new());
        let health = Arc::new(WriteHealth::default());
        let commits = Arc::new(CommitTimes::default());
        // SQLite names the log after the database's full path, as it has it.
        let wal = PathBuf::from(format!("{}-wal", conn.path().unwrap_or(&shown)));
        let io_err = |source| StoreError::Io {
            path: shown.clone(),
            source,
        };
        let disk = sync::Disk::open(&wal, Arc::clone(&commits), Arc::clone(&health))
            .map(Arc::new)
            .map_err(|source| StoreError::Io {
                path: wal.display().to_string(),
                source,
            })?;
        let (syncer, sync_thread) = sync::spawn_syncer(Arc::clone(&disk)).map_err(io_err)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let mut writer = Writer {
            conn,
            changes: Arc::clone(&changes),
            health: Arc::clone(&health),
            commits: Arc::clone(&commits),
            credit: BackgroundCredit::default(),
            disk,
            syncer,
        };
        let writer_thread = std::thread::Builder::new()
            .name("tiaochu-store-writer".into())
            .spawn(move || {
                let mut queues = Queues {
                    jobs: rx,
                    waiting: VecDeque::new(),
                    background: VecDeque::new(),
                };
                while queues.wait() {
                    if let Some(Job::Exclusive(_)) = queues.waiting.front()
                        && let Some(Job::Exclusive(f)) = queues.waiting.pop_front()
                    {
                        f(&mut writer);
                        continue;
                    }
                    run_round(&mut writer, &mut queues);
                }
            })
            .map_err(io_err)?;

        let (checkpoints, checkpoint_thread) = spawn_checkpointer(path).map_err(io_err)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                jobs,
                idle_reads: Mutex::new(vec![first_read]),
                changes,
                health,
                commits,
                migration: MigrationReport { before, after },
                _checkpoints: checkpoints,
                // The writer first: once it is gone, the sync thread answers what it handed over
                // and ends.
                _threads: StoreThreads(vec![writer_thread, sync_thread, checkpoint_thread]),
            }),
        })
    }

    /// The database file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How long the writer's commits have taken since the store was opened.
    pub fn commit_times(&self) -> CommitHistogram {
        self.inner.commits.get()
    }

    /// Why the last write failed in the storage itself (full disk, I/O error, read-only file,
    /// lock timeout), in Chinese for the admin; `None` when the last write that reached the
    /// storage committed changed rows. Writes refused for their own reasons, and writes that
    /// changed nothing (they commit even on a full disk), do not count either way.
    pub fn write_failure(&self) -> Option<String> {
        self.inner.health.get()
    }

    /// Caps the database at `pages` pages on the writer connection (`PRAGMA max_page_count`;
    /// never below its current size), so writes that need more fail as on a full disk until the
    /// cap is raised or the store reopened. For fault drills and tests. Returns the cap in force.
    pub async fn set_max_page_count(&self, pages: i64) -> Result<i64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::from(move |w: &mut Writer| {
            let set = w
                .conn
                .pragma_update_and_check(None, "max_page_count", pages, |r| r.get(0))
                .map_err(StoreError::from);
            let _ = reply.send(set);
        }))?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// The schema version found when the file was opened and the one it was migrated to.
    pub fn migration_report(&self) -> MigrationReport {
        self.inner.migration
    }

    /// A receiver that sees a change whenever a committed transaction set or cancelled a timer.
    /// The scheduler sleeps until the next due timer or until this changes; a change committed
    /// between its last look and its wait is not lost, because the receiver remembers what it saw.
    pub fn timers_changed(&self) -> watch::Receiver<u64> {
        self.inner.changes.timers.subscribe()
    }

    /// As [`Store::timers_changed`], for a committed transaction that stored a new inbound
    /// message: the inbox processor wakes on it instead of polling.
    pub fn inbox_changed(&self) -> watch::Receiver<u64> {
        self.inner.changes.inbox.subscribe()
    }

    /// As [`Store::timers_changed`], for a committed transaction that queued an outbound row
    /// (a decision, a timer, the outbox's own notices): the outbox sender wakes on it.
    pub fn outbox_changed(&self) -> watch::Receiver<u64> {
        self.inner.changes.outbox.subscribe()
    }

    /// Runs `f` on the writer thread inside one `IMMEDIATE` transaction: committed when `f`
    /// returns `Ok`, rolled back when it returns `Err` or panics, and answered once the commit
    /// is on the disk (`fsync`ed). Once submitted, the write runs to completion even if the
    /// caller stops waiting. `f`'s own error comes back as it was; a transaction that could not
    /// commit comes back as [`StoreError::CommitFailed`].
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: TxError,
    {
        self.write_as(Durability::Synced, f).await
    }

    /// As [`Store::write`], answered once committed, before the commit is on the disk: it gets
    /// there with the next synced commit. For a write whose loss in a power cut is made good by
    /// redoing it from synced rows, and on which nothing leaves the machine: the outbox's record
    /// of what it sent (see [`Durability::Deferred`]).
    pub async fn write_deferred<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: TxError,
    {
        self.write_as(Durability::Deferred, f).await
    }

    async fn write_as<T, E, F>(&self, durability: Durability, f: F) -> Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: TxError,
    {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Write(Box::new(PendingWrite {
            durability,
            f: Some(f),
            result: None,
            // The caller may have stopped waiting; the outcome is committed either way.
            reply: Some(Box::new(move |r| {
                let _ = reply.send(r);
            })),
        })))?;
        answer.await.map_err(|_| E::from(StoreError::WriterGone))?
    }

    /// As [`Store::write`], blocking the calling thread; for the CLI and other sync code. Must
    /// not be called from inside an async task.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: TxError,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(Job::Write(Box::new(PendingWrite {
            durability: Durability::Synced,
            f: Some(f),
            result: None,
            reply: Some(Box::new(move |r| {
                let _ = reply.send(r);
            })),
        })))?;
        answer.recv().map_err(|_| E::from(StoreError::WriterGone))?
    }

    /// As [`Store::write`], for a write nobody waits on at the door: the inbox worker's decisions.
    /// The writer serves it after the writes queued by [`Store::write`], so an acknowledgement
    /// never waits behind a queue of decisions; background writes keep their own order, and
    /// several share one commit, each under its own savepoint (one that fails is undone alone).
    /// Answered once committed, as [`Store::write_deferred`] is: a decision lost to a power cut
    /// is made again from its message, which stays unprocessed (see [`Durability::Deferred`]).
    ///
    /// Submitted at once, before the returned future is first polled, so a caller can queue
    /// several and then await them in order.
    pub fn write_background<T, E, F>(
        &self,
        f: F,
    ) -> impl Future<Output = Result<T, E>> + Send + use<T, E, F>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: TxError,
    {
        let (reply, answer) = oneshot::channel();
        let submitted = self.submit(Job::Background(Box::new(PendingWrite {
            durability: Durability::Deferred,
            f: Some(f),
            result: None,
            reply: Some(Box::new(move |r| {
                let _ = reply.send(r);
            })),
        })));
        async move {
            submitted?;
            answer.await.map_err(|_| E::from(StoreError::WriterGone))?
        }
    }

    fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.inner
            .jobs
            .send(job)
            .map_err(|_| StoreError::WriterGone)
    }

    /// Runs `f` on a read connection, inside one read transaction so every query in it sees the
    /// same committed snapshot. Runs on tokio's blocking pool.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&ReadTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(|_| E::from(StoreError::Panicked))?
    }

    /// As [`Store::read`], on the calling thread.
    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&ReadTx<'_>) -> Result<T, E>,
        E: From<StoreError>,
    {
        let mut out = None;
        self.with_reader(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            out = Some(f(&ReadTx {
                conn: &tx,
                health: &self.inner.health,
            }));
            // Nothing to keep: a read transaction only pins the snapshot.
            tx.rollback()?;
            Ok(())
        })?;
        out.unwrap_or_else(|| Err(E::from(StoreError::Panicked)))
    }

    /// Lends a pooled read connection to `f` (outside any transaction) and returns it after.
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle_reads().pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.inner.path)?,
        };
        let out = f(&mut conn);
        // A connection left inside a transaction (a failed rollback) is not reused.
        if conn.is_autocommit() {
            let mut idle = self.idle_reads();
            if idle.len() < READ_POOL_IDLE {
                idle.push(conn);
            }
        }
        out
    }

    fn idle_reads(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // The pool is a plain Vec; a panic while it was locked cannot leave it inconsistent.
        self.inner
            .idle_reads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The schema version of the file (`PRAGMA user_version`).
    pub fn schema_version_blocking(&self) -> Result<u32, StoreError> {
        self.with_reader(|conn| Ok(user_version(conn)?))
    }

    /// The pragmas in force on the writer connection.
    pub async fn pragmas(&self) -> Result<Pragmas, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::from(move |w: &mut Writer| {
            let _ = reply.send(read_pragmas(&w.conn));
        }))?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// As [`Store::pragmas`], blocking.
    pub fn pragmas_blocking(&self) -> Result<Pragmas, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(Job::from(move |w: &mut Writer| {
            let _ = reply.send(read_pragmas(&w.conn));
        }))?;
        answer.recv().map_err(|_| StoreError::WriterGone)?
    }
}

/// The writer thread's view of what is queued: the channel, and what was taken off it in
/// arrival order — waiting writes and exclusive jobs in one queue, background writes in another.
struct Queues {
    jobs: mpsc::Receiver<Job>,
    waiting: VecDeque<Job>,
    background: VecDeque<Box<dyn GroupWrite>>,
}

impl Queues {
    fn sort(&mut self, job: Job) {
        match job {
            Job::Background(write) => self.background.push_back(write),
            other => self.waiting.push_back(other),
        }
    }

    /// Takes everything that arrived since the last look.
    fn take_arrived(&mut self) {
        while let Ok(job) = self.jobs.try_recv() {
            self.sort(job);
        }
    }

    /// Blocks until there is work; false once every handle is gone and nothing is left.
    fn wait(&mut self) -> bool {
        if self.waiting.is_empty() && self.background.is_empty() {
            match self.jobs.recv() {
                Ok(job) => self.sort(job),
                Err(_) => return false,
            }
        }
        self.take_arrived();
        true
    }

    fn next_is_write(&self) -> bool {
        matches!(self.waiting.front(), Some(Job::Write(_)))
    }

    /// The next waiting write, unless an exclusive job comes first or nothing waits.
    fn pop_write(&mut self) -> Option<Box<dyn GroupWrite>> {
        if !self.next_is_write() {
            return None;
        }
        match self.waiting.pop_front() {
            Some(Job::Write(write)) => Some(write),
            _ => None,
        }
    }
}

/// One transaction: the waiting writes first (up to [`GROUP_MAX`]), then background writes
/// while they may ([`share`]), answered after its commit. A round that begins with nothing
/// waiting runs background writes for [`share::BACKGROUND_SLICE`], and a waiting write that
/// arrives meanwhile joins the round and ends it after the decision in progress; a round that
/// begins with waiting writes runs background writes only when they are owed a turn, which every
/// such round earns them, so decisions progress under any flood of acknowledgements. An
/// exclusive job ends the round; it runs after the commit.
///
/// The commit does not wait for the disk. The round's synced writes are answered after an
/// `fsync` of the WAL: this thread's own when nothing else is queued, otherwise the sync
/// thread's, while this one goes on with the next round ([`sync`]). The others are answered at
/// once.
fn run_round(w: &mut Writer, queues: &mut Queues) {
    let health = Arc::clone(&w.health);
    let mut writes: Vec<Box<dyn GroupWrite>> = Vec::new();
    // The last write of the group that changed rows (Ok(())) or failed in the storage (Err). A
    // write that changed nothing commits even on a full disk, so it proves nothing either way.
    let mut last_write: Option<Result<(), String>> = None;
    // The round's first writes, taken before the transaction begins: when it cannot begin, they
    // are the ones told so (the rest stay queued for the next round).
    let mut first: VecDeque<Box<dyn GroupWrite>> = VecDeque::new();
    while first.len() < GROUP_MAX
        && let Some(write) = queues.pop_write()
    {
        first.push_back(write);
    }
    let first_waited = !first.is_empty();
    if !first_waited && let Some(write) = queues.background.pop_front() {
        first.push_back(write);
    }
    if let Some(why) = health.lost_sync() {
        for write in first {
            write.finish(Err(Unfinished::Sync(&why)));
        }
        return;
    }
    let outcome = (|| -> Result<(u8, std::time::Instant), StoreError> {
        let tx = w
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut touched = 0;
        let mut run = |write: Box<dyn GroupWrite>| -> Result<Duration, StoreError> {
            let started = std::time::Instant::now();
            writes.push(write);
            let Some(write) = writes.last_mut() else {
                return Ok(Duration::ZERO);
            };
            // Prepared once: they run around every write of every round.
            tx.prepare_cached("SAVEPOINT group_write")?.execute([])?;
            let changes_before = tx.total_changes();
            let handle = Tx {
                read: ReadTx {
                    conn: &tx,
                    health: &health,
                },
                touched: Cell::new(0),
            };
            match write.run(&handle) {
                Ran::Keep => {
                    touched |= handle.touched.get();
                    if tx.total_changes() != changes_before {
                        last_write = Some(Ok(()));
                    }
                    tx.prepare_cached("RELEASE group_write")?.execute([])?;
                }
                ran => {
                    if let Ran::StorageFailed(reason) = ran {
                        last_write = Some(Err(reason));
                    }
                    tx.execute_batch("ROLLBACK TO group_write; RELEASE group_write")?;
                }
            }
            Ok(started.elapsed())
        };
        let mut round = Round {
            began_free: !first_waited,
            ..Round::default()
        };
        while let Some(write) = first.pop_front() {
            let took = run(write)?;
            if first_waited {
                round.waited += 1;
                round.waited_time += took;
            } else {
                round.background += 1;
                round.background_time += took;
            }
        }
        queues.take_arrived();
        loop {
            while round.waited < GROUP_MAX {
                // Writes that arrived while the round ran join it, up to the group's size:
                // under a flood each commit then carries more of them.
                if !queues.next_is_write() {
                    queues.take_arrived();
                }
                let Some(write) = queues.pop_write() else {
                    break;
                };
                round.waited_time += run(write)?;
                round.waited += 1;
            }
            if round.background >= GROUP_MAX
                || !w.credit.may_run(&round)
                || matches!(queues.waiting.front(), Some(Job::Exclusive(_)))
            {
                break;
            }
            let Some(write) = queues.background.pop_front() else {
                break;
            };
            round.background_time += run(write)?;
            round.background += 1;
            queues.take_arrived();
        }
        let committing = std::time::Instant::now();
        tx.commit()?;
        w.credit.settle(&round, committing.elapsed());
        Ok((touched, committing))
    })();
    match outcome {
        Ok((touched, began)) => {
            match last_write {
                Some(Ok(())) => health.set(None),
                Some(Err(reason)) => health.set(Some(reason)),
                None => {}
            }
            w.changes.announce(touched);
            let (synced, committed): (Vec<_>, Vec<_>) = writes
                .into_iter()
                .partition(|write| write.durability() == Durability::Synced);
            for write in committed {
                write.finish(Ok(()));
            }
            if synced.is_empty() {
                w.commits.count_deferred();
                return;
            }
            let round = sync::Committed {
                writes: synced,
                began,
            };
            queues.take_arrived();
            if queues.waiting.is_empty() && queues.background.is_empty() {
                w.disk.sync_and_answer(vec![round]);
            } else if let Err(mpsc::SendError(sync::ToSync::Committed(round))) =
                w.syncer.send(sync::ToSync::Committed(round))
            {
                // The sync thread only ends after this one; a panic is all that could end it.
                for write in round.writes {
                    write.finish(Err(Unfinished::Sync("数据库同步线程已停止，请重启服务")));
                }
            }
        }
        Err(e) => {
            // A full disk (or an I/O error) can make SQLite roll the whole transaction back
            // under a failing statement; the round then ends on the savepoint that is gone,
            // and the storage failure is the reason, not the missing savepoint.
            let why = match last_write {
                Some(Err(reason)) => reason,
                _ => e.to_string(),
            };
            health.set(Some(why.clone()));
            // Dropping the transaction rolled everything back; every caller learns why.
            tracing::error!(error = %e, reason = %why, "a group of writes could not be committed");
            for write in writes.into_iter().chain(first) {
                write.finish(Err(Unfinished::Commit(&why)));
            }
        }
    }
}

/// Returns the journal mode actually in force, which the caller requires to be WAL.
fn configure_writer(conn: &Connection) -> rusqlite::Result<String> {
    // WAL lets readers (and VACUUM INTO backups) run while the writer writes. NORMAL: a commit
    // writes the WAL without an fsync, which the sync thread does for the writes that wait for
    // the disk (sync.rs), so this thread never sits out the disk.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The checkpoint thread does it (see the module doc).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The savepoint of each write in a group keeps its undo pages in a statement journal, which
    // otherwise spills to a temporary file past 64 KiB: a round of decisions did.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(mode)
}

/// Prepared statements kept per connection. The store has about a hundred distinct statements
/// and a decision runs some thirty of them; with rusqlite's default of 16 the cache thrashed and
/// the writer spent a fifth of its time re-preparing SQL (measured with `perf`, docs/throughput.md).
const STATEMENT_CACHE: usize = 256;

/// Starts the checkpoint thread on its own connection; it runs a PASSIVE checkpoint every
/// [`CHECKPOINT_EVERY`] and a last one when the returned sender is dropped. A failed checkpoint is
/// logged and tried again at the next tick (the WAL only grows meanwhile).
fn spawn_checkpointer(
    path: &Path,
) -> std::io::Result<(mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
    let (stop, ticks) = mpsc::channel::<()>();
    let path = path.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("tiaochu-store-checkpoint".into())
        .spawn(move || {
            let conn = match Connection::open(&path) {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::error!(error = %e, "checkpoint thread cannot open the database");
                    return;
                }
            };
            let checkpoint = || {
                if let Err(e) =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0))
                {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retried at the next tick");
                }
            };
            while let Err(mpsc::RecvTimeoutError::Timeout) = ticks.recv_timeout(CHECKPOINT_EVERY) {
                checkpoint();
            }
            checkpoint();
        })?;
    Ok((stop, thread))
}

/// Whether `path` is an existing regular file of zero bytes. A database this store made is never
/// empty: enabling WAL writes its first page before anything else happens.
pub fn is_empty_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0)
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn read_pragmas(conn: &Connection) -> Result<Pragmas, StoreError> {
    Ok(Pragmas {
        journal_mode: conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?,
        synchronous: conn.pragma_query_value(None, "synchronous", |r| r.get(0))?,
        busy_timeout_ms: conn.pragma_query_value(None, "busy_timeout", |r| r.get(0))?,
        foreign_keys: conn.pragma_query_value(None, "foreign_keys", |r| r.get::<_, i64>(0))? == 1,
    })
}

fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

fn version_u32(v: NonZeroUsize) -> u32 {
    u32::try_from(v.get()).unwrap_or(u32::MAX)
}

fn sqlite_code_label(code: Option<rusqlite::ErrorCode>) -> &'static str {
    use rusqlite::ErrorCode as C;
    match code {
        Some(C::ConstraintViolation) => "数据约束冲突",
        Some(C::ReadOnly | C::PermissionDenied) => "没有写入权限",
        Some(C::SystemIoFailure) => "磁盘读写错误",
        Some(C::TooBig) => "数据过大",
        Some(C::TypeMismatch) => "数据类型不符",
        Some(_) => "SQLite 错误",
        None => "程序内部错误",
    }
}

fn open_reason(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::CannotOpen) => "文件或目录不存在，或没有权限",
        Some(C::PermissionDenied | C::ReadOnly) => "没有写入权限",
        Some(C::NotADatabase) => "该文件不是数据库文件",
        Some(C::DatabaseCorrupt) => "数据库文件已损坏",
        Some(C::DiskFull) => "磁盘空间已满",
        Some(C::DatabaseBusy | C::DatabaseLocked) => "数据库正被其他进程占用",
        _ => "数据库无法初始化",
    }
}

/// A read transaction: every query method of the store. Also reachable from a [`Tx`], which
/// dereferences to it, so a write closure can read what it is about to change.
pub struct ReadTx<'c> {
    conn: &'c Connection,
    health: &'c WriteHealth,
}

impl ReadTx<'_> {
    pub(crate) fn conn(&self) -> &Connection {
        self.conn
    }

    /// As [`Store::write_failure`], as it stands while this transaction runs.
    pub fn write_failure(&self) -> Option<String> {
        self.health.get()
    }
}

/// A write transaction on the writer thread. Everything done through one `Tx` commits together
/// or not at all.
pub struct Tx<'c> {
    read: ReadTx<'c>,
    /// The queues this write added to ([`Touched`]), announced after the commit.
    touched: Cell<u8>,
}

impl<'c> Deref for Tx<'c> {
    type Target = ReadTx<'c>;
    fn deref(&self) -> &ReadTx<'c> {
        &self.read
    }
}

impl Tx<'_> {
    /// Records that this transaction changed timers, so the scheduler is woken after commit.
    fn touch_timers(&self) {
        self.touched.set(self.touched.get() | Touched::TIMERS);
    }

    /// Records that this transaction stored a new inbound message (the inbox processor wakes).
    fn touch_inbox(&self) {
        self.touched.set(self.touched.get() | Touched::INBOX);
    }

    /// Records that this transaction queued an outbound row (the outbox sender wakes).
    fn touch_outbox(&self) {
        self.touched.set(self.touched.get() | Touched::OUTBOX);
    }
}

/// Milliseconds since the Unix epoch, the unit of every time column.
fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// Reads a millisecond column back into a [`Timestamp`].
fn ts_col(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Timestamp> {
    let v: i64 = row.get(idx)?;
    Timestamp::from_millisecond(v).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Integer, Box::new(e))
    })
}

/// As [`ts_col`] for a nullable column.
fn opt_ts_col(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<Timestamp>> {
    let v: Option<i64> = row.get(idx)?;
    v.map(|v| {
        Timestamp::from_millisecond(v).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                idx,
                rusqlite::types::Type::Integer,
                Box::new(e),
            )
        })
    })
    .transpose()
}

/// SQLite's LIMIT takes an i64; anything larger means "no limit".
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        (dir, store)
    }

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().expect("migrations validate");
        assert_eq!(SCHEMA_VERSION, 12);
    }

    #[test]
    fn a_panicking_write_rolls_back_and_the_writer_survives() {
        let (_dir, store) = fresh();
        let err = store
            .write_blocking(|tx| -> Result<(), StoreError> {
                tx.next_case_no(2026)?;
                panic!("simulated bug in a write closure");
            })
            .expect_err("panic must surface as an error");
        assert!(matches!(err, StoreError::Panicked), "{err:?}");
        let no = store
            .write_blocking(|tx| tx.next_case_no(2026))
            .expect("writer still alive");
        assert_eq!(
            no, "TC-2026-0001",
            "the panicking transaction must have been rolled back"
        );
    }

    /// A caller's own error type, as the engine's.
    #[derive(Debug)]
    enum Own {
        Store(StoreError),
        Refused(u32),
    }

    impl From<StoreError> for Own {
        fn from(e: StoreError) -> Own {
            Own::Store(e)
        }
    }

    impl TxError for Own {
        fn store_error(&self) -> Option<&StoreError> {
            match self {
                Own::Store(s) => Some(s),
                Own::Refused(_) => None,
            }
        }
    }

    #[test]
    fn a_closure_error_comes_back_with_its_kind_and_rolls_back() {
        let (_dir, store) = fresh();
        let err = store
            .write_blocking(|tx| -> Result<(), Own> {
                tx.next_case_no(2026)?;
                Err(Own::Refused(7))
            })
            .expect_err("refused");
        assert!(matches!(err, Own::Refused(7)), "{err:?}");
        assert_eq!(
            store.write_failure(),
            None,
            "a refusal is not a storage failure"
        );
        let no = store
            .write_blocking(|tx| tx.next_case_no(2026))
            .expect("next");
        assert_eq!(no, "TC-2026-0001", "the refused write was rolled back");
    }

    #[tokio::test]
    async fn a_dead_writer_fails_calls_instead_of_hanging() {
        let (_dir, store) = fresh();
        // A job that panics outside run_write's guard kills the thread, as a bug in the loop would.
        store
            .submit(Job::from(|_w: &mut Writer| {
                panic!("simulated writer crash")
            }))
            .expect("submit");
        // Jobs run in order, so this write is queued behind the crash and must fail, not hang.
        let err = tokio::time::timeout(
            Duration::from_secs(10),
            store.write(|tx| tx.next_case_no(2026)),
        )
        .await
        .expect("write hung after the writer died")
        .expect_err("writer is gone");
        assert!(matches!(err, StoreError::WriterGone), "{err:?}");
        let blocking = store.clone();
        let err = tokio::task::spawn_blocking(move || blocking.pragmas_blocking())
            .await
            .expect("join")
            .expect_err("writer is gone");
        assert!(matches!(err, StoreError::WriterGone), "{err:?}");
        assert!(err.to_string().contains("写入线程"), "{err}");
    }

    #[tokio::test]
    async fn a_write_that_fails_in_the_storage_is_remembered_until_one_commits() {
        let (_dir, store) = fresh();
        let big = "满".repeat(20_000);
        let insert = |id: &str| {
            let (id, big) = (id.to_string(), big.clone());
            store.write(move |tx| {
                tx.insert_inbox(&NewInbound {
                    source: "robot",
                    message_id: &id,
                    received_at: Timestamp::UNIX_EPOCH,
                    payload: &big,
                })
            })
        };
        insert("m0").await.expect("room to write");
        assert_eq!(store.write_failure(), None);

        store.set_max_page_count(1).await.expect("cap");
        let err = insert("m1").await.expect_err("no room");
        assert!(matches!(err, StoreError::DiskFull(_)), "{err:?}");
        let failure = store.write_failure().expect("remembered");
        assert!(failure.contains("磁盘空间已满"), "{failure}");
        let seen = store
            .read(|r| -> Result<_, StoreError> {
                Ok((
                    r.write_failure(),
                    r.backlog(Timestamp::UNIX_EPOCH, Duration::ZERO)?,
                ))
            })
            .await
            .expect("reads still answer");
        assert_eq!(seen.0.as_deref(), Some(failure.as_str()));
        assert!(seen.1.writes_failing);

        // Neither a write refused for its own reason nor one that changed nothing (it commits
        // even on a full disk) says anything about the storage.
        store
            .write(|tx| tx.inbox(1))
            .await
            .expect("a read-only write commits");
        assert_eq!(store.write_failure().as_deref(), Some(failure.as_str()));
        let own = store
            .write(|_tx| -> Result<(), StoreError> { Err(StoreError::Abort("no".into())) })
            .await;
        assert!(matches!(own, Err(StoreError::Abort(_))));
        assert_eq!(store.write_failure().as_deref(), Some(failure.as_str()));

        store
            .set_max_page_count(1 << 30)
            .await
            .expect("lift the cap");
        insert("m2").await.expect("room again");
        assert_eq!(store.write_failure(), None);
    }

    /// Holds the writer thread outside any round and returns once it is held; sending on the
    /// returned sender lets it go.
    fn hold_writer(store: &Store) -> mpsc::Sender<()> {
        let (held_tx, held) = mpsc::channel();
        let (go_tx, go) = mpsc::channel::<()>();
        store
            .submit(Job::from(move |_: &mut Writer| {
                let _ = held_tx.send(());
                let _ = go.recv();
            }))
            .expect("submit");
        held.recv().expect("the writer is held");
        go_tx
    }

    /// Holds the sync thread, as a disk busy with an `fsync` would, and returns once it is
    /// held; sending on (or dropping) the returned sender lets it go.
    fn hold_syncer(store: &Store) -> mpsc::Sender<()> {
        let (held_tx, held) = mpsc::channel();
        let (go_tx, go) = mpsc::channel();
        store
            .submit(Job::from(move |w: &mut Writer| {
                let _ = w.syncer.send(sync::ToSync::Hold(held_tx, go));
            }))
            .expect("submit");
        held.recv().expect("the sync thread is held");
        go_tx
    }

    /// A fresh store with a table `probe` for writes that only need to change something.
    fn fresh_with_probe() -> (tempfile::TempDir, Store) {
        let (dir, store) = fresh();
        store
            .write_blocking(|tx| -> Result<(), StoreError> {
                Ok(tx.conn().execute_batch("CREATE TABLE probe (n INTEGER)")?)
            })
            .expect("create");
        (dir, store)
    }

    fn probe_rows(store: &Store) -> i64 {
        store
            .read_blocking(|tx| -> Result<i64, StoreError> {
                Ok(tx
                    .conn()
                    .query_row("SELECT count(*) FROM probe", [], |r| r.get(0))?)
            })
            .expect("count")
    }

    fn insert_probe(tx: &Tx<'_>) -> Result<(), StoreError> {
        tx.conn().execute("INSERT INTO probe (n) VALUES (1)", [])?;
        Ok(())
    }

    /// Submits a write of `durability` that inserts a probe row; answered on the receiver.
    fn queue_probe(
        store: &Store,
        durability: Durability,
    ) -> mpsc::Receiver<Result<(), StoreError>> {
        let (reply, answer) = mpsc::sync_channel(1);
        store
            .submit(Job::Write(Box::new(PendingWrite {
                durability,
                f: Some(insert_probe),
                result: None,
                reply: Some(Box::new(move |r| {
                    let _ = reply.send(r);
                })),
            })))
            .expect("submit");
        answer
    }

    #[test]
    fn a_synced_write_is_answered_only_after_an_fsync_that_began_after_its_commit() {
        let (_dir, store) = fresh_with_probe();
        let before = store.commit_times();
        let go = hold_syncer(&store);

        // An acknowledgement commits with more work queued behind it (here a job that needs the
        // writer alone), so its fsync is the sync thread's, busy with the disk: its row is there
        // for everyone to read, and its caller still waits.
        let writer_go = hold_writer(&store);
        let ack = queue_probe(&store, Durability::Synced);
        store
            .submit(Job::from(|_: &mut Writer| {}))
            .expect("submit");
        writer_go.send(()).expect("release the writer");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while probe_rows(&store) < 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the write never committed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            matches!(ack.try_recv(), Err(mpsc::TryRecvError::Empty)),
            "a synced write was answered before any fsync could cover it"
        );
        // A deferred write behind it is answered at its commit, disk or not.
        let record = queue_probe(&store, Durability::Deferred);
        record
            .recv_timeout(Duration::from_secs(10))
            .expect("answered while the disk is busy")
            .expect("record");
        assert!(matches!(ack.try_recv(), Err(mpsc::TryRecvError::Empty)));

        go.send(()).expect("release the disk");
        ack.recv_timeout(Duration::from_secs(10))
            .expect("answered once synced")
            .expect("ack");
        let after = store.commit_times();
        assert_eq!(after.count - before.count, 1, "one synced commit");
        assert_eq!(after.deferred - before.deferred, 1, "one without");
        assert!(after.syncs > before.syncs, "an fsync covered it");
        assert_eq!(probe_rows(&store), 2);
    }

    #[test]
    fn a_synced_write_with_nothing_behind_it_is_synced_by_the_writer_itself() {
        let (_dir, store) = fresh_with_probe();
        let before = store.commit_times();
        // The sync thread is busy; a quiet service's acknowledgement does not wait for it.
        let go = hold_syncer(&store);
        queue_probe(&store, Durability::Synced)
            .recv_timeout(Duration::from_secs(10))
            .expect("answered without the sync thread")
            .expect("ack");
        let after = store.commit_times();
        assert_eq!(after.count - before.count, 1);
        assert_eq!(after.syncs - before.syncs, 1, "the writer's own fsync");
        drop(go);
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_its_writes_and_refuses_every_write_after() {
        let (_dir, store) = fresh_with_probe();
        store
            .submit(Job::from(|w: &mut Writer| {
                w.disk
                    .fail_next
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }))
            .expect("submit");

        let err = store
            .write(insert_probe)
            .await
            .expect_err("not on the disk");
        assert!(
            matches!(&err, StoreError::NotSynced(why) if why.contains("重启服务")),
            "{err:?}"
        );
        let failure = store.write_failure().expect("remembered");
        assert!(failure.contains("不能确认已落盘"), "{failure}");

        // Nothing written after is known to reach the disk either: no write runs at all, of
        // either kind, and the failure stays.
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ran_in = Arc::clone(&ran);
        let refused = store
            .write(move |_tx| -> Result<(), StoreError> {
                ran_in.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(
            matches!(refused, Err(StoreError::NotSynced(_))),
            "{refused:?}"
        );
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        assert!(store.write_deferred(insert_probe).await.is_err());
        assert!(store.write_background(insert_probe).await.is_err());
        assert_eq!(store.write_failure().as_deref(), Some(failure.as_str()));
    }

    #[test]
    fn opening_in_a_missing_directory_says_why_in_chinese() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Store::open(&dir.path().join("nope").join("t.db")).expect_err("must fail");
        let shown = err.to_string();
        assert!(shown.starts_with("无法打开数据库文件"), "{shown}");
        assert!(shown.contains("不存在"), "{shown}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        {
            let conn = Connection::open(&path).expect("open");
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .expect("set version");
        }
        let err = Store::open(&path).expect_err("must refuse");
        assert!(matches!(err, StoreError::TooNew { .. }), "{err:?}");
        assert!(err.to_string().contains("请升级"), "{err}");
    }

    #[test]
    fn an_empty_file_is_refused_unless_initialising() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        std::fs::write(&path, b"").expect("empty file");
        let err = Store::open(&path).expect_err("must refuse");
        assert!(matches!(err, StoreError::EmptyFile { .. }), "{err:?}");
        let shown = err.to_string();
        assert!(
            shown.contains("空的") && shown.contains("is empty") && shown.contains("--init"),
            "{shown}"
        );
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            0,
            "untouched"
        );
        let store = Store::open_initialising(&path).expect("made a database");
        assert_eq!(store.migration_report().before, 0);
        drop(store);
        assert!(!is_empty_file(&path));
        Store::open(&path).expect("a database now");
        // A missing file is still created (the first start).
        Store::open(&dir.path().join("new.db")).expect("created");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        std::fs::write(&path, vec![b'x'; 4096]).expect("write junk");
        let err = Store::open(&path).expect_err("must refuse");
        assert!(err.to_string().contains("不是数据库文件"), "{err}");
    }
}
