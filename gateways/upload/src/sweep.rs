//! The expiry sweep, every `sweep_interval` (and once at start):
//! - files older than `expire_after` are deleted, then their rows;
//! - a slot whose PUT window closed without a recorded completion but
//!   whose file is stored (a crash between the two) is marked complete;
//!   slots never used are forgotten a day after their window closed;
//! - partial uploads untouched for `idle_timeout` (left by a crash; a
//!   dropped upload removes its own at once) are deleted;
//! - the storage gauges are refreshed.

use std::sync::Arc;
use std::time::Duration;

use satellite::{BoxError, CancellationToken};

use crate::catalog::Catalog;
use crate::service::{Service, now};

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Expired files deleted.
    pub expired: usize,
    /// Unused slots forgotten.
    pub unused: usize,
    /// Completions repaired.
    pub repaired: usize,
    /// Partial uploads deleted.
    pub partials: usize,
}

/// Sweeps until `shutdown`.
pub async fn run(service: Arc<Service>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(service.settings.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sweep(&service).await {
            Ok(s) if s != Swept::default() => tracing::info!(?s, "upload: swept"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "upload: sweep failed"),
        }
    }
}

/// One sweep.
pub async fn sweep(service: &Service) -> Result<Swept, BoxError> {
    let mut swept = Swept::default();
    let t = now();
    // A slot whose window closed without a completion may have its file
    // (a crash between commit and record): record it first.
    let unfinished = service
        .catalog
        .run(move |c| Catalog::unfinished(c, t))
        .await?;
    for entry in unfinished {
        if let Ok(Some(meta)) = service.storage.stat(&entry.id).await
            && meta.len == entry.size
        {
            let id = entry.id;
            if service
                .catalog
                .run(move |c| Catalog::complete(c, &id, None, t))
                .await?
            {
                swept.repaired += 1;
            }
        }
    }

    let expire_after = service.settings.expire_after.map(|d| d.as_secs() as i64);
    let (files, unused) = service
        .catalog
        .run(move |c| Catalog::expired(c, t, expire_after))
        .await?;
    swept.expired = service.delete(files).await?.len();
    // Unused slots have no file; deleting one is a no-op.
    swept.unused = service.delete(unused).await?.len();

    let idle = service.settings.idle_timeout.max(Duration::from_secs(1));
    swept.partials = service
        .storage
        .sweep_partials(idle, service.uploads_in_progress())
        .await?;
    service.update_usage().await?;
    Ok(swept)
}
