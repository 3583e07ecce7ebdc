//! File I/O of [`FsStorage`](crate::storage::FsStorage): an upload is
//! written by one blocking thread fed through a short queue (the HTTP side
//! never waits on the disk for each chunk, and memory per upload stays
//! bounded), and committed by a hard link, which fails if the name is
//! taken: two PUTs racing for one slot cannot overwrite each other.

use std::io::{self, Write as _};
use std::ops::Range;
use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::storage::Partial;

/// Chunks queued between the HTTP side and the writer thread.
const QUEUE: usize = 4;
/// Write buffer of the writer thread: chunks smaller than this are
/// gathered into fewer writes.
const WRITE_BUFFER: usize = 64 * 1024;

/// With `fsync`, the writeback of a large upload starts this often rather
/// than all at the commit, so the final fsync waits only for the tail.
const FLUSH_EVERY: usize = 32 * 1024 * 1024;

/// A thread that flushes a file to disk when kicked, while its writer goes
/// on writing (a kick while it is busy is dropped: the flush under way
/// takes care of it).
struct Flusher {
    kick: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn start(file: std::fs::File) -> Self {
        let (kick, kicks) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("upload-flush".into())
            .spawn(move || {
                while kicks.recv().is_ok() {
                    // An error shows again at the commit's fsync.
                    let _ = file.sync_data();
                }
            })
            .ok();
        Self {
            kick: Some(kick),
            thread,
        }
    }

    fn kick(&self) {
        if let Some(k) = &self.kick {
            let _ = k.try_send(());
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.kick = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An upload being written to `temp`, to appear as `target`.
pub struct FileWriter {
    temp: PathBuf,
    target: PathBuf,
    fsync: bool,
    tx: Option<mpsc::Sender<Bytes>>,
    thread: Option<JoinHandle<io::Result<std::fs::File>>>,
    committed: bool,
}

impl FileWriter {
    /// Creates `temp` (which must not exist) and starts its writer thread.
    pub async fn create(temp: PathBuf, target: PathBuf, fsync: bool) -> io::Result<Self> {
        let file = {
            let temp = temp.clone();
            tokio::task::spawn_blocking(move || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&temp)
            })
            .await
            .map_err(io::Error::other)??
        };
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
        let flusher = if fsync {
            Some(Flusher::start(file.try_clone()?))
        } else {
            None
        };
        let thread = tokio::task::spawn_blocking(move || {
            // Chunks come as large as the HTTP side reads them (up to its
            // 1 MiB buffer); small ones are gathered, large ones written
            // as they are (BufWriter passes those through uncopied).
            let mut out = io::BufWriter::with_capacity(WRITE_BUFFER, file);
            let (mut written, mut kicked) = (0usize, 0usize);
            while let Some(chunk) = rx.blocking_recv() {
                out.write_all(&chunk)?;
                written += chunk.len();
                if let Some(f) = &flusher
                    && written - kicked >= FLUSH_EVERY
                {
                    f.kick();
                    kicked = written;
                }
            }
            drop(flusher);
            out.into_inner().map_err(io::IntoInnerError::into_error)
        });
        Ok(Self {
            temp,
            target,
            fsync,
            tx: Some(tx),
            thread: Some(thread),
            committed: false,
        })
    }

    /// Stops the writer thread and returns the file, or its write error.
    async fn finish_thread(&mut self) -> io::Result<std::fs::File> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t.await.map_err(io::Error::other)?,
            None => Err(io::Error::other("the upload was already finished")),
        }
    }
}

#[async_trait]
impl Partial for FileWriter {
    async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped: it failed; return why.
        match self.finish_thread().await {
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other("the writer stopped")),
        }
    }

    async fn commit(mut self: Box<Self>) -> io::Result<()> {
        let file = self.finish_thread().await?;
        let (temp, target, fsync) = (self.temp.clone(), self.target.clone(), self.fsync);
        tokio::task::spawn_blocking(move || {
            if fsync {
                file.sync_all()?;
            }
            drop(file);
            std::fs::hard_link(&temp, &target)?;
            if fsync && let Some(dir) = target.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok::<_, io::Error>(())
        })
        .await
        .map_err(io::Error::other)??;
        self.committed = true;
        // The link is the file now; the temporary name goes (on Drop).
        Ok(())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // Committed or not, the temporary name goes: after a commit the
        // file lives on under its target name; without one, unlinking
        // removes the partial (the writer thread, if still running, ends
        // when the queue closes, writing to an unlinked file).
        self.tx = None;
        let _ = std::fs::remove_file(&self.temp);
        if !self.committed {
            tracing::debug!(temp = %self.temp.display(), "upload: partial file removed");
        }
    }
}

/// `range` of the file at `path`, in chunks of `chunk` bytes.
pub async fn read_range(
    path: PathBuf,
    range: Range<u64>,
    chunk: usize,
) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
    let mut file = tokio::fs::File::open(&path).await?;
    if range.start > 0 {
        file.seek(io::SeekFrom::Start(range.start)).await?;
    }
    let len = range.end.saturating_sub(range.start);
    let reader = file.take(len);
    Ok(tokio_util::io::ReaderStream::with_capacity(reader, chunk).boxed())
}
