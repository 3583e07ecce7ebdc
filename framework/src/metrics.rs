//! Prometheus metrics.
//!
//! The framework records through the [`metrics`](https://docs.rs/metrics)
//! facade, so a gateway records its own figures the same way
//! (`metrics::counter!("satellite_mygateway_posts_total", "component" => jid).increment(1)`;
//! one scheme for every series: `satellite_<service>_…`), and
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
//! | `satellite_refused_total` | counter | stanzas refused by a limit, label `reason` (`lane_full`, `lanes`, `queue_full`, `stopping`, `unserved_host`) |

use std::net::SocketAddr;

use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::error::BoxError;

/// Installs the global recorder and serves `/metrics` on `listen`.
pub fn serve_prometheus(listen: SocketAddr) -> Result<(), BoxError> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .install()
        .map_err(|e| format!("metrics: cannot serve on {listen}: {e}").into())
}

/// The framework's series for one component, registered once: recording
/// on the per-stanza path is then an atomic add, with no label strings
/// built per stanza.
pub(crate) struct ComponentMetrics {
    link_up: Gauge,
    connects: Counter,
    pub(crate) received: Counter,
    pub(crate) sent: Counter,
    pub(crate) invalid: Counter,
    pub(crate) refused_lane_full: Counter,
    pub(crate) refused_lanes: Counter,
    pub(crate) refused_queue_full: Counter,
    pub(crate) refused_stopping: Counter,
    pub(crate) refused_unserved: Counter,
}

impl ComponentMetrics {
    pub(crate) fn new(component: &str) -> Self {
        let c = || component.to_owned();
        let refused = |reason: &'static str| metrics::counter!("satellite_refused_total", "component" => c(), "reason" => reason);
        let this = Self {
            link_up: metrics::gauge!("satellite_link_up", "component" => c()),
            connects: metrics::counter!("satellite_connects_total", "component" => c()),
            received: metrics::counter!("satellite_stanzas_received_total", "component" => c()),
            sent: metrics::counter!("satellite_stanzas_sent_total", "component" => c()),
            invalid: metrics::counter!("satellite_invalid_stanzas_total", "component" => c()),
            refused_lane_full: refused("lane_full"),
            refused_lanes: refused("lanes"),
            refused_queue_full: refused("queue_full"),
            refused_stopping: refused("stopping"),
            refused_unserved: refused("unserved_host"),
        };
        // Present (and 0) from the start, so a component that never
        // connects can be alerted on.
        this.link_up.set(0.0);
        this
    }

    pub(crate) fn link_up(&self, up: bool) {
        self.link_up.set(if up { 1.0 } else { 0.0 });
        if up {
            self.connects.increment(1);
        }
    }
}
