//! The sync thread: puts committed rounds on the disk, so the writer never waits for it.
//!
//! The writer commits every round without an `fsync` of its own (`synchronous=NORMAL`): the
//! commit's frames are in the WAL file, where a killed process finds them, before anyone is
//! answered. A round that holds writes whose callers must hear "committed" only once it would
//! survive a power cut ([`super::Durability::Synced`]) is handed here; this thread `fsync`s the
//! WAL — one call for every round committed before it began, since the WAL is one file written
//! in order and an `fsync` of it covers every frame written so far — and then answers them.
//! Meanwhile the writer goes on with the next round, where it used to sit out the disk's
//! `fsync` itself (docs/throughput.md measures what that cost).
//!
//! A failed `fsync` leaves no way to know what reached the disk: the kernel may already have
//! dropped the pages it could not write, so a later `fsync` that succeeds proves nothing about
//! them. The writes waiting for it are told it failed, and from then on the store refuses every
//! write until the service is restarted and SQLite recovers the WAL from the disk
//! ([`WriteHealth::lose_sync`]); `/healthz` says so.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use super::commit_times::CommitTimes;
use super::{GroupWrite, Unfinished, WriteHealth};

/// A committed round whose writes wait for the disk.
pub(super) struct Committed {
    pub(super) writes: Vec<Box<dyn GroupWrite>>,
    /// When its commit began: the commit histogram records the time until it is on the disk.
    pub(super) began: Instant,
}

/// What the writer hands the sync thread.
pub(super) enum ToSync {
    Committed(Committed),
    /// Tests: blocks the thread until the sender is dropped or sends, after saying so on the
    /// first channel, as a slow disk would.
    #[cfg(test)]
    Hold(mpsc::Sender<()>, mpsc::Receiver<()>),
    /// Tests: the next `fsync` fails as a failing disk's would.
    #[cfg(test)]
    FailNext,
}

/// Opens the WAL of the database the writer has open (`wal`: its path) and starts the thread.
/// The file exists by then: enabling WAL mode and migrating wrote it.
pub(super) fn spawn_syncer(
    wal: &Path,
    commits: Arc<CommitTimes>,
    health: Arc<WriteHealth>,
) -> std::io::Result<(mpsc::Sender<ToSync>, std::thread::JoinHandle<()>)> {
    // Opened for writing, though only synced: some systems refuse an fsync on a read-only
    // descriptor. SQLite keeps the file for as long as its connections are open, so this
    // descriptor names the file SQLite writes for the life of the store.
    let mut disk = Disk {
        wal: File::options().write(true).open(wal)?,
        #[cfg(test)]
        fail_next: false,
    };
    let (tx, rx) = mpsc::channel::<ToSync>();
    let thread = std::thread::Builder::new()
        .name("tiaochu-store-sync".into())
        .spawn(move || run(&mut disk, &rx, &commits, &health))?;
    Ok((tx, thread))
}

/// The WAL file, as this thread syncs it.
struct Disk {
    wal: File,
    #[cfg(test)]
    fail_next: bool,
}

impl Disk {
    fn sync(&mut self) -> std::io::Result<()> {
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next) {
            return Err(std::io::Error::other("injected by a test"));
        }
        // Data only: SQLite's own WAL syncs leave the file's times alone too, and the size a
        // grown WAL needs to be read back is data in this sense.
        self.wal.sync_data()
    }
}

fn run(disk: &mut Disk, rx: &mpsc::Receiver<ToSync>, commits: &CommitTimes, health: &WriteHealth) {
    // Ends when the writer thread is gone and every round it handed over was answered.
    while let Ok(first) = rx.recv() {
        let mut rounds = Vec::new();
        let mut next = Some(first);
        // Every round committed by now is covered by the one fsync that follows.
        while let Some(item) = next.take().or_else(|| rx.try_recv().ok()) {
            match item {
                ToSync::Committed(round) => rounds.push(round),
                #[cfg(test)]
                ToSync::Hold(held, go) => {
                    let _ = held.send(());
                    let _ = go.recv();
                }
                #[cfg(test)]
                ToSync::FailNext => disk.fail_next = true,
            }
        }
        if rounds.is_empty() {
            continue;
        }
        let synced = match health.lost_sync() {
            // A round committed after a failed fsync is not known to be on the disk either.
            Some(why) => Err(why),
            None => {
                let outcome = disk.sync();
                commits.observe_sync();
                outcome.map_err(|e| health.lose_sync(&e))
            }
        };
        for round in rounds {
            if synced.is_ok() {
                commits.observe(round.began.elapsed(), true);
            }
            for write in round.writes {
                write.finish(match &synced {
                    Ok(()) => Ok(()),
                    Err(why) => Err(Unfinished::Sync(why)),
                });
            }
        }
    }
}
