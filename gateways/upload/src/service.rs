//! What the XMPP side and the HTTP side share: settings, the store, the
//! catalog, the slot key, uploads in flight, metrics.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use satellite::{BoxError, HandlerError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::catalog::{Catalog, Entry, Usage};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::storage::{FsStorage, Storage};
use crate::token::SlotKey;

/// The running service, once the plugin's `on_start` has opened it; shared
/// by the plugin and its ad-hoc commands.
pub type Started = Arc<OnceLock<Arc<Service>>>;

/// The service behind `started`, or an internal error before the start
/// (which cannot happen once the component is connected).
pub fn started(started: &Started) -> Result<&Arc<Service>, HandlerError> {
    started
        .get()
        .ok_or_else(|| HandlerError::internal("the upload service has not started"))
}

/// The service's state.
pub struct Service {
    /// Validated settings.
    pub settings: Settings,
    /// File contents.
    pub storage: Arc<dyn Storage>,
    /// Slots and files.
    pub catalog: Catalog,
    /// Signs and checks slot URLs.
    pub key: SlotKey,
    /// Slot ids with a PUT in progress (a second PUT is refused).
    uploading: Mutex<HashSet<String>>,
    /// PUTs receiving a body (`max_uploads`).
    uploads: Arc<Semaphore>,
    /// Counters and gauges.
    pub metrics: Metrics,
}

impl Service {
    /// Opens the storage directory: files, catalog and slot key (created
    /// on first use). Errors name the path.
    pub fn open(settings: Settings) -> Result<Arc<Self>, BoxError> {
        let dir = settings.storage_dir.clone();
        // Creates `dir` too.
        let storage = FsStorage::open(&dir, settings.fsync)
            .map_err(|e| format!("storage_dir `{}`: {e}", dir.display()))?;
        let catalog_path = dir.join("catalog.sqlite3");
        let catalog = Catalog::open(&catalog_path)
            .map_err(|e| format!("catalog `{}`: {e}", catalog_path.display()))?;
        let key = match &settings.slot_key {
            Some(k) => SlotKey::new(k.expose().as_bytes().to_vec()),
            None => SlotKey::new(load_or_create_key(&dir.join("slot.key"))?),
        }
        .ok_or("the slot key is shorter than 16 bytes")?;
        let metrics = Metrics::new(&settings.component);
        let uploads = Arc::new(Semaphore::new(settings.max_uploads));
        Ok(Arc::new(Self {
            settings,
            storage: Arc::new(storage),
            catalog,
            key,
            uploading: Mutex::new(HashSet::new()),
            uploads,
            metrics,
        }))
    }

    /// Claims a slot for a PUT; `None` if another PUT holds it. The claim
    /// ends when the guard drops.
    pub fn claim(self: &Arc<Self>, id: &str) -> Option<UploadClaim> {
        let mut set = self.uploading.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(id.to_owned()).then(|| UploadClaim {
            service: Arc::clone(self),
            id: id.to_owned(),
        })
    }

    /// A place among the `max_uploads` PUTs receiving a body, waiting at
    /// most `wait` for one; held until the permit drops.
    pub async fn upload_permit(&self, wait: Duration) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(wait, Arc::clone(&self.uploads).acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Slot ids with a PUT running now.
    pub fn uploads_in_progress(&self) -> HashSet<String> {
        self.uploading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The file at `<id>/<filename>`, as the catalog records it.
    pub async fn find(&self, id: &str, filename: &str) -> Result<Option<Entry>, rusqlite::Error> {
        let lookup = id.to_owned();
        let entry = self.catalog.run(move |c| Catalog::get(c, &lookup)).await?;
        Ok(entry.filter(|e| e.filename == filename))
    }

    /// Deletes files and then their catalog rows; a file that cannot be
    /// deleted keeps its row (the next sweep tries again). Returns the ids
    /// deleted.
    pub async fn delete(&self, ids: Vec<String>) -> Result<Vec<String>, rusqlite::Error> {
        let mut gone = Vec::with_capacity(ids.len());
        for id in ids {
            match self.storage.remove(&id).await {
                Ok(()) => gone.push(id),
                Err(e) => tracing::error!(%id, error = %e, "upload: cannot delete a file"),
            }
        }
        if !gone.is_empty() {
            let rows = gone.clone();
            self.catalog.run(move |c| Catalog::remove(c, &rows)).await?;
        }
        Ok(gone)
    }

    /// Refreshes the storage gauges from the catalog.
    pub async fn update_usage(&self) -> Result<Usage, BoxError> {
        let usage = self.catalog.run(Catalog::usage).await?;
        self.metrics.storage(usage);
        Ok(usage)
    }
}

/// A PUT's hold on its slot id.
pub struct UploadClaim {
    service: Arc<Service>,
    id: String,
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        let mut set = self
            .service
            .uploading
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        set.remove(&self.id);
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Reads the slot key at `path`, or creates it (32 random bytes, hex,
/// mode 0600). Instances sharing the directory race safely: the file is
/// created exclusively and the loser reads the winner's.
fn load_or_create_key(path: &Path) -> Result<Vec<u8>, BoxError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let read = |path: &Path| -> Result<Vec<u8>, BoxError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("slot key `{}`: {e}", path.display()))?;
        Ok(text.trim().as_bytes().to_vec())
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            let bytes: [u8; 32] = rand::random();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            file.write_all(hex.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("slot key `{}`: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "upload: created a slot signing key");
            Ok(hex.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(format!("slot key `{}`: cannot create: {e}", path.display()).into()),
    }
}
