//! File I/O of [`FsStorage`](crate::storage::FsStorage): an upload is
//! written by one blocking thread fed through a short queue (the HTTP side
//! never waits on the disk for each chunk, and memory per upload stays
//! bounded), and committed by a hard link, which fails if the name is
//! taken: two PUTs racing for one slot cannot overwrite each other.

use std::io::{self, Read as _, Write as _};
use std::ops::Range;
use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::io::AsyncSeekExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::storage::Partial;

/// Bytes handed to the writer thread at once. The HTTP side copies each
/// body chunk into such a block and lets the chunk go at once, so the
/// HTTP/1 connection reuses its read buffer for every read (rather than
/// allocating a new one while chunks wait in a queue), and the writer
/// thread is woken once per block, not once per read (8–64 KiB).
pub const BLOCK: usize = 1024 * 1024;
/// Blocks per upload: one being filled, the others queued or being
/// written; the memory of an upload stays at most this many blocks.
const BLOCKS: usize = 4;

/// A large upload's pages are written back to disk and dropped from the
/// page cache this often, by a thread beside the writer ("drop behind"),
/// so that the upload's memory is written to again and again instead of
/// claiming fresh pages for every byte. Claiming fresh pages is what made
/// large PUTs bimodal: as fast as memory where pages had just been freed,
/// four times slower, and four times the CPU, where the kernel had to take
/// them from elsewhere (reclaim, or a VM host backing them on first touch).
/// With `fsync`, it also means the commit's fsync waits only for the
/// tail. Uploads smaller than this are left to the kernel's writeback.
const FLUSH_EVERY: usize = 16 * 1024 * 1024;

/// A thread that writes a file back to disk and drops what it wrote from
/// the page cache when kicked, while its writer goes on writing (a kick
/// while it is busy is dropped: the next one covers its bytes).
struct Flusher {
    kick: Option<std::sync::mpsc::SyncSender<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn start(file: std::fs::File) -> Self {
        let (kick, kicks) = std::sync::mpsc::sync_channel::<u64>(1);
        let thread = std::thread::Builder::new()
            .name("upload-flush".into())
            .spawn(move || {
                while let Ok(upto) = kicks.recv() {
                    // An error shows again at the commit's fsync, or is
                    // left to the kernel's writeback without one.
                    if file.sync_data().is_ok() {
                        let _ = nix::fcntl::posix_fadvise(
                            &file,
                            0,
                            i64::try_from(upto).unwrap_or(i64::MAX),
                            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
                        );
                    }
                }
            })
            .ok();
        Self {
            kick: Some(kick),
            thread,
        }
    }

    /// The first `upto` bytes are written: write them back and drop them.
    fn kick(&self, upto: usize) {
        if let Some(k) = &self.kick {
            let _ = k.try_send(upto as u64);
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
    /// The block being filled.
    block: Vec<u8>,
    /// Blocks allocated so far (at most [`BLOCKS`]).
    allocated: usize,
    /// Full blocks to the writer thread.
    tx: Option<mpsc::Sender<Vec<u8>>>,
    /// Written blocks back from it, for reuse.
    free: mpsc::Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<std::fs::File>>>,
    committed: bool,
}

impl FileWriter {
    /// Creates `temp` (which must not exist) and starts its writer thread.
    pub async fn create(temp: PathBuf, target: PathBuf, fsync: bool) -> io::Result<Self> {
        let mut file = {
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
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(BLOCKS);
        let (give_back, free) = mpsc::channel::<Vec<u8>>(BLOCKS);
        let thread = tokio::task::spawn_blocking(move || {
            let (mut written, mut kicked) = (0usize, 0usize);
            // Started once the upload is large enough to need it.
            let mut flusher: Option<Flusher> = None;
            while let Some(mut block) = rx.blocking_recv() {
                file.write_all(&block)?;
                written += block.len();
                if written - kicked >= FLUSH_EVERY {
                    if flusher.is_none() {
                        flusher = Some(Flusher::start(file.try_clone()?));
                    }
                    if let Some(f) = &flusher {
                        f.kick(written);
                    }
                    kicked = written;
                }
                block.clear();
                // Never full: at most BLOCKS blocks exist.
                let _ = give_back.try_send(block);
            }
            drop(flusher);
            Ok(file)
        });
        Ok(Self {
            temp,
            target,
            fsync,
            block: Vec::new(),
            allocated: 1,
            tx: Some(tx),
            free,
            thread: Some(thread),
            committed: false,
        })
    }

    /// Hands the block being filled to the writer thread and takes an
    /// empty one: a written one if there is one, a new one while fewer
    /// than [`BLOCKS`] exist, else waits for one to be written.
    async fn send_block(&mut self) -> io::Result<()> {
        let next = match self.free.try_recv() {
            Ok(b) => Some(b),
            Err(_) if self.allocated < BLOCKS => {
                self.allocated += 1;
                Some(Vec::with_capacity(BLOCK))
            }
            Err(_) => None,
        };
        let full = std::mem::replace(&mut self.block, next.unwrap_or_default());
        let sent = match &self.tx {
            Some(tx) => tx.send(full).await.is_ok(),
            None => false,
        };
        if !sent {
            // The thread stopped: it failed; return why.
            return match self.finish_thread().await {
                Err(e) => Err(e),
                Ok(_) => Err(io::Error::other("the writer stopped")),
            };
        }
        if self.block.capacity() == 0 {
            match self.free.recv().await {
                Some(b) => self.block = b,
                None => return Err(io::Error::other("the writer stopped")),
            }
        }
        Ok(())
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
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let room = BLOCK - self.block.len();
            let (now, later) = rest.split_at(rest.len().min(room));
            let needed = self.block.len() + now.len();
            if needed > self.block.capacity() {
                // The first block grows with a small upload's bytes, never
                // past BLOCK.
                let target = (self.block.capacity() * 2).clamp(needed, BLOCK);
                self.block.reserve_exact(target - self.block.len());
            }
            self.block.extend_from_slice(now);
            rest = later;
            if self.block.len() == BLOCK {
                self.send_block().await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> io::Result<()> {
        if !self.block.is_empty() {
            let last = std::mem::take(&mut self.block);
            if let Some(tx) = &self.tx {
                // A closed queue shows as the thread's error below.
                let _ = tx.send(last).await;
            }
        }
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

/// `range` of the file at `path`, in chunks of `chunk` bytes. Each chunk
/// is read on a blocking thread straight into the buffer that goes out
/// (no copy between buffers), the next one while the current one is
/// being sent; no thread is held between chunks, so a slow client holds
/// none.
pub async fn read_range(
    path: PathBuf,
    range: Range<u64>,
    chunk: usize,
) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
    let mut file = tokio::fs::File::open(&path).await?;
    if range.start > 0 {
        file.seek(io::SeekFrom::Start(range.start)).await?;
    }
    let file = file.into_std().await;
    let left = range.end.saturating_sub(range.start);
    let first = read_chunk(file, left, chunk);
    let stream = futures::stream::unfold(Some((first, left)), move |state| async move {
        let (pending, left) = state?;
        if left == 0 {
            return None;
        }
        match pending.await.map_err(io::Error::other).and_then(|r| r) {
            Ok((_, data)) if data.is_empty() => Some((
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is shorter than its range",
                )),
                None,
            )),
            Ok((file, data)) => {
                let left = left - data.len() as u64;
                let next = read_chunk(file, left, chunk);
                Some((Ok(Bytes::from(data)), Some((next, left))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(stream.boxed())
}

/// Reads up to `chunk` of the `left` bytes at `file`'s position, on a
/// blocking thread; gives the file back with them.
fn read_chunk(
    mut file: std::fs::File,
    left: u64,
    chunk: usize,
) -> JoinHandle<io::Result<(std::fs::File, Vec<u8>)>> {
    tokio::task::spawn_blocking(move || {
        let n = left.min(chunk as u64);
        let mut data = Vec::with_capacity(n as usize);
        if n > 0 {
            (&mut file).take(n).read_to_end(&mut data)?;
        }
        Ok((file, data))
    })
}
