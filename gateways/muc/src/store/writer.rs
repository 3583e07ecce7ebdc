//! Group commit: one thread owns the connection that writes, and commits
//! the writes that queued up while it was busy in one transaction, so
//! rooms writing at once share one fsync instead of waiting for one each.
//!
//! Each write runs in its own savepoint: one that fails is rolled back
//! alone and reported to its caller; the others commit. A caller hears
//! `Ok` only after the COMMIT returned, so what it announces next is on
//! disk. Writes are committed in the order they were sent.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::archive::ArchiveError;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 256;

/// A write: its statements, and a count for the caller (rows deleted).
type Work = Box<dyn FnOnce(&Connection) -> Result<u64, ArchiveError> + Send>;

struct Job {
    work: Work,
    done: oneshot::Sender<Result<u64, ArchiveError>>,
}

/// The handle to the writing thread; cheap to clone. The thread ends
/// when the last handle is dropped, after the writes already sent.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread that writes through `conn`.
    pub(crate) fn start(conn: Arc<Mutex<Connection>>) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("muc-store-writer".to_owned())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
                    commit(&conn, batch);
                }
            })?;
        Ok(Writer { jobs })
    }

    /// Runs `work` in the next transaction; returns once it is committed.
    pub(crate) async fn write<F>(&self, work: F) -> Result<u64, ArchiveError>
    where
        F: FnOnce(&Connection) -> Result<u64, ArchiveError> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job {
                work: Box::new(work),
                done,
            })
            .map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ArchiveError {
    ArchiveError::Store("the room database's writer has stopped".into())
}

fn failed(e: &dyn std::fmt::Display) -> ArchiveError {
    ArchiveError::Store(format!("the room database's transaction failed: {e}").into())
}

/// One transaction for a batch.
fn commit(conn: &Connection, batch: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        for job in batch {
            let _ = job.done.send(Err(failed(&e)));
        }
        return;
    }
    let mut applied = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some(Job { work, done }) = jobs.next() {
        match in_savepoint(conn, work) {
            Ok(Ok(n)) => applied.push((done, n)),
            Ok(Err(e)) => {
                let _ = done.send(Err(e));
            }
            Err(e) => {
                // The transaction itself is broken: nothing of it stays.
                let _ = conn.execute_batch("ROLLBACK");
                let _ = done.send(Err(failed(&e)));
                for (done, _) in applied {
                    let _ = done.send(Err(failed(&e)));
                }
                for job in jobs {
                    let _ = job.done.send(Err(failed(&e)));
                }
                return;
            }
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for (done, n) in applied {
                let _ = done.send(Ok(n));
            }
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            for (done, _) in applied {
                let _ = done.send(Err(failed(&e)));
            }
        }
    }
}

/// Runs one write in a savepoint: the inner result is the write's (rolled
/// back when it failed), the outer error a failure of the savepoint itself.
fn in_savepoint(
    conn: &Connection,
    work: Work,
) -> Result<Result<u64, ArchiveError>, rusqlite::Error> {
    conn.execute_batch("SAVEPOINT write")?;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(conn)))
        .unwrap_or_else(|_| Err(ArchiveError::Store("a room database write panicked".into())));
    if result.is_ok() {
        conn.execute_batch("RELEASE write")?;
    } else {
        conn.execute_batch("ROLLBACK TO write; RELEASE write")?;
    }
    Ok(result)
}
