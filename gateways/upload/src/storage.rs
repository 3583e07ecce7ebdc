//! Where file contents live, behind a small trait so that an
//! S3-compatible store can stand beside the local file system.
//!
//! The contract every store keeps: a file becomes visible only when its
//! upload is committed with exactly the expected bytes; a partial upload
//! is never served, and one dropped without a commit is removed.

use std::collections::HashSet;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// A stored file's size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Bytes.
    pub len: u64,
    /// When it was committed.
    pub modified: SystemTime,
}

/// A file store.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Starts receiving the contents of `id`. Nothing is visible until
    /// [`Partial::commit`].
    async fn create(&self, id: &str) -> io::Result<Box<dyn Partial>>;

    /// Size and time of a committed file, `None` if there is none.
    async fn stat(&self, id: &str) -> io::Result<Option<Meta>>;

    /// The bytes `range` of a committed file, as a stream of chunks.
    async fn read(
        &self,
        id: &str,
        range: Range<u64>,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>>;

    /// A committed file opened for reading, where the store keeps files
    /// in the local file system (`None` otherwise): the download is then
    /// sent straight from it ([`read`](Self::read) is used otherwise).
    async fn open(&self, _id: &str) -> io::Result<Option<std::fs::File>> {
        Ok(None)
    }

    /// Removes a committed file (no error if there is none).
    async fn remove(&self, id: &str) -> io::Result<()>;

    /// Removes partial uploads untouched for `idle` (left by a crash; a
    /// dropped upload removes its own), except those of the slot ids in
    /// `busy`. Returns how many.
    async fn sweep_partials(&self, idle: Duration, busy: HashSet<String>) -> io::Result<usize>;

    /// Free bytes where files are stored, if the store can tell.
    fn free_space(&self) -> Option<u64>;
}

/// An upload in progress. Dropping it without a commit removes it.
#[async_trait]
pub trait Partial: Send {
    /// Appends bytes.
    async fn write(&mut self, chunk: Bytes) -> io::Result<()>;

    /// Makes the file visible, durable first. Fails with
    /// [`io::ErrorKind::AlreadyExists`] if the file was committed by
    /// another upload meanwhile (the first one wins).
    async fn commit(self: Box<Self>) -> io::Result<()>;
}

/// Files on the local file system: `files/<id>` when committed,
/// `partial/<id>.<random>` while uploading.
#[derive(Debug, Clone)]
pub struct FsStorage {
    files: PathBuf,
    partial: PathBuf,
    /// Chunk size for reads.
    read_chunk: usize,
    /// fsync a file (and its directory) before it becomes visible.
    fsync: bool,
}

impl FsStorage {
    /// Opens (creating) the directories under `root`. With `fsync`, a
    /// committed file is on disk before it becomes visible.
    pub fn open(root: &Path, fsync: bool) -> io::Result<Self> {
        let files = root.join("files");
        let partial = root.join("partial");
        std::fs::create_dir_all(&files)?;
        std::fs::create_dir_all(&partial)?;
        Ok(Self {
            files,
            partial,
            read_chunk: 1024 * 1024,
            fsync,
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.files.join(id)
    }
}

#[async_trait]
impl Storage for FsStorage {
    async fn create(&self, id: &str) -> io::Result<Box<dyn Partial>> {
        let temp = self
            .partial
            .join(format!("{id}.{:016x}", rand::random::<u64>()));
        let target = self.path(id);
        let writer = crate::fs_io::FileWriter::create(temp, target, self.fsync).await?;
        Ok(Box::new(writer))
    }

    async fn stat(&self, id: &str) -> io::Result<Option<Meta>> {
        match tokio::fs::metadata(self.path(id)).await {
            Ok(m) => Ok(Some(Meta {
                len: m.len(),
                modified: m.modified()?,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read(
        &self,
        id: &str,
        range: Range<u64>,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        crate::fs_io::read_range(self.path(id), range, self.read_chunk).await
    }

    async fn open(&self, id: &str) -> io::Result<Option<std::fs::File>> {
        let file = tokio::fs::File::open(self.path(id)).await?;
        Ok(Some(file.into_std().await))
    }

    async fn remove(&self, id: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    async fn sweep_partials(&self, idle: Duration, busy: HashSet<String>) -> io::Result<usize> {
        let dir = self.partial.clone();
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let id = name.to_string_lossy();
                if busy.contains(id.split('.').next().unwrap_or_default()) {
                    continue;
                }
                let age = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                if age.is_some_and(|a| a >= idle) && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(io::Error::other)?
    }

    fn free_space(&self) -> Option<u64> {
        let stat = nix::sys::statvfs::statvfs(&self.files).ok()?;
        Some((stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64))
    }
}
