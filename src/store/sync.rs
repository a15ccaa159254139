//! Putting committed rounds on the disk without making the writer wait for it when it has other
//! work.
//!
//! The writer commits every round without an `fsync` of its own (`synchronous=NORMAL`): the
//! commit's frames are in the WAL file, where a killed process finds them, before anyone is
//! answered. A round that holds writes whose callers must hear "committed" only once it would
//! survive a power cut ([`super::Durability::Synced`]) is then put on the disk by an `fsync` of
//! the WAL — which covers every frame written before it began, the WAL being one file written
//! in order — and only then answered. Who calls it depends on what waits:
//!
//! - nothing queued behind the round: the writer itself, at once, as SQLite's own
//!   `synchronous=FULL` would (a hand-over to another thread would only add its wake-up to
//!   every acknowledgement of a quiet service);
//! - more writes queued: the round goes to the sync thread, which `fsync`s once for every round
//!   handed to it by then and answers them, while the writer goes on with the next round, where
//!   it used to sit out the disk (docs/throughput.md measures what that cost).
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
}

/// The WAL file, with what an `fsync` of it reports to.
pub(super) struct Disk {
    wal: File,
    commits: Arc<CommitTimes>,
    health: Arc<WriteHealth>,
    /// Tests: the next `fsync` fails as a failing disk's would.
    #[cfg(test)]
    pub(super) fail_next: std::sync::atomic::AtomicBool,
}

impl Disk {
    /// Opens the WAL of the database the writer has open (`wal`: its path). The file exists by
    /// then: enabling WAL mode and migrating wrote it.
    pub(super) fn open(
        wal: &Path,
        commits: Arc<CommitTimes>,
        health: Arc<WriteHealth>,
    ) -> std::io::Result<Disk> {
        Ok(Disk {
            // Opened for writing, though only synced: some systems refuse an fsync on a
            // read-only descriptor. SQLite keeps the file for as long as its connections are
            // open, so this descriptor names the file SQLite writes for the life of the store.
            wal: File::options().write(true).open(wal)?,
            commits,
            health,
            #[cfg(test)]
            fail_next: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// `fsync`s the WAL, then answers `rounds` (all committed before this was called).
    pub(super) fn sync_and_answer(&self, rounds: Vec<Committed>) {
        if rounds.is_empty() {
            return;
        }
        let synced = match self.health.lost_sync() {
            // A round committed after a failed fsync is not known to be on the disk either.
            Some(why) => Err(why),
            None => {
                let outcome = self.sync();
                self.commits.observe_sync();
                outcome.map_err(|e| self.health.lose_sync(&e))
            }
        };
        for round in rounds {
            if synced.is_ok() {
                self.commits.observe(round.began.elapsed());
            }
            for write in round.writes {
                write.finish(match &synced {
                    Ok(()) => Ok(()),
                    Err(why) => Err(Unfinished::Sync(why)),
                });
            }
        }
    }

    fn sync(&self) -> std::io::Result<()> {
        #[cfg(test)]
        if self
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(std::io::Error::other("injected by a test"));
        }
        // Data only: SQLite's own WAL syncs leave the file's times alone too, and the size a
        // grown WAL needs to be read back is data in this sense.
        self.wal.sync_data()
    }
}

/// Starts the sync thread on `disk`; it ends once the returned sender is dropped (with the
/// writer) and every round handed to it is answered.
pub(super) fn spawn_syncer(
    disk: Arc<Disk>,
) -> std::io::Result<(mpsc::Sender<ToSync>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<ToSync>();
    let thread = std::thread::Builder::new()
        .name("tiaochu-store-sync".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut rounds = Vec::new();
                let mut next = Some(first);
                // Every round handed over by now is covered by the one fsync that follows.
                while let Some(item) = next.take().or_else(|| rx.try_recv().ok()) {
                    match item {
                        ToSync::Committed(round) => rounds.push(round),
                        #[cfg(test)]
                        ToSync::Hold(held, go) => {
                            let _ = held.send(());
                            let _ = go.recv();
                        }
                    }
                }
                disk.sync_and_answer(rounds);
            }
        })?;
    Ok((tx, thread))
}
