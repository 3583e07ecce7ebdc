//! The service's Prometheus series (served by the framework's `[metrics]`
//! endpoint), labelled `component="<jid>"`:
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `satellite_upload_slots_total` | counter | slots issued |
//! | `satellite_upload_refused_total` | counter | slot requests, PUTs and connections refused, label `reason` (e.g. `daily_quota`, `open_slots`, `forged`, `stalled`, `busy`: `max_uploads` full, `connections`: `max_connections` full) |
//! | `satellite_upload_files_total` | counter | uploads completed |
//! | `satellite_upload_received_bytes_total` | counter | bytes of completed uploads |
//! | `satellite_upload_sent_bytes_total` | counter | bytes of downloads started (ranges: their length) |
//! | `satellite_upload_downloads_total` | counter | GET responses with a body |
//! | `satellite_upload_stored_files` | gauge | files stored |
//! | `satellite_upload_stored_bytes` | gauge | bytes stored |

use crate::catalog::Usage;

/// Records the service's figures.
#[derive(Debug, Clone)]
pub struct Metrics {
    component: String,
}

impl Metrics {
    /// Series for the component `component`.
    pub fn new(component: &str) -> Self {
        Self {
            component: component.to_owned(),
        }
    }

    /// A slot was issued.
    pub fn slot(&self) {
        metrics::counter!("satellite_upload_slots_total", "component" => self.component.clone())
            .increment(1);
    }

    /// A slot request or PUT was refused.
    pub fn refused(&self, reason: &'static str) {
        metrics::counter!("satellite_upload_refused_total", "component" => self.component.clone(), "reason" => reason)
            .increment(1);
    }

    /// An upload of `bytes` completed (the storage gauges grow with it
    /// until the next sweep sets them from the catalog).
    pub fn uploaded(&self, bytes: u64) {
        metrics::counter!("satellite_upload_files_total", "component" => self.component.clone())
            .increment(1);
        metrics::counter!("satellite_upload_received_bytes_total", "component" => self.component.clone())
            .increment(bytes);
        metrics::gauge!("satellite_upload_stored_files", "component" => self.component.clone())
            .increment(1.0);
        metrics::gauge!("satellite_upload_stored_bytes", "component" => self.component.clone())
            .increment(bytes as f64);
    }

    /// A download of `bytes` started.
    pub fn downloaded(&self, bytes: u64) {
        metrics::counter!("satellite_upload_downloads_total", "component" => self.component.clone())
            .increment(1);
        metrics::counter!("satellite_upload_sent_bytes_total", "component" => self.component.clone())
            .increment(bytes);
    }

    /// What is stored now.
    pub fn storage(&self, usage: Usage) {
        metrics::gauge!("satellite_upload_stored_files", "component" => self.component.clone())
            .set(usage.files as f64);
        metrics::gauge!("satellite_upload_stored_bytes", "component" => self.component.clone())
            .set(usage.bytes as f64);
    }
}
