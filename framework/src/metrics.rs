//! Prometheus metrics.
//!
//! The framework records through the [`metrics`](https://docs.rs/metrics)
//! facade, so a gateway records its own figures the same way
//! (`metrics::counter!("upload_bytes_total").increment(n)`), and
//! `[metrics] listen = "127.0.0.1:9100"` serves them all on `/metrics`.
//!
//! The framework's own series, labelled `component="<jid>"`:
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `satellite_link_up` | gauge | 1 while the link is up |
//! | `satellite_connects_total` | counter | successful handshakes |
//! | `satellite_stanzas_received_total` | counter | elements read from the server |
//! | `satellite_stanzas_sent_total` | counter | stanzas written to the server |
//! | `satellite_invalid_stanzas_total` | counter | stanzas answered with `bad-request` because they did not parse |
//! | `satellite_refused_total` | counter | stanzas refused by a limit, label `reason` (`lane_full`, `queue_full`, `stopping`) |

use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;

use crate::error::BoxError;

/// Installs the global recorder and serves `/metrics` on `listen`.
pub fn serve_prometheus(listen: SocketAddr) -> Result<(), BoxError> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .install()
        .map_err(|e| format!("metrics: cannot serve on {listen}: {e}").into())
}

pub(crate) fn link_up(component: &str, up: bool) {
    metrics::gauge!("satellite_link_up", "component" => component.to_owned()).set(if up {
        1.0
    } else {
        0.0
    });
    if up {
        metrics::counter!("satellite_connects_total", "component" => component.to_owned())
            .increment(1);
    }
}

pub(crate) fn received(component: &str) {
    metrics::counter!("satellite_stanzas_received_total", "component" => component.to_owned())
        .increment(1);
}

pub(crate) fn sent(component: &str, n: usize) {
    metrics::counter!("satellite_stanzas_sent_total", "component" => component.to_owned())
        .increment(n as u64);
}

pub(crate) fn invalid(component: &str) {
    metrics::counter!("satellite_invalid_stanzas_total", "component" => component.to_owned())
        .increment(1);
}

pub(crate) fn refused(component: &str, reason: &'static str) {
    metrics::counter!("satellite_refused_total", "component" => component.to_owned(), "reason" => reason).increment(1);
}
