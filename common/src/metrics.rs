//! The Prometheus endpoint every coordinator and worker can serve
//! (`metrics_listen`): the `metrics` facade's recorder, exported over HTTP
//! at `/metrics` by the field's exporter.

use std::net::SocketAddr;
use std::time::Duration;

/// A series not updated for this long is dropped: a task that moved to
/// another worker, or a leader that stepped down, stops reporting it.
const IDLE: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {address}: {detail}")]
pub struct MetricsError {
    pub address: SocketAddr,
    pub detail: String,
}

/// Serves `/metrics` on `address` from now on (inside the current Tokio
/// runtime).
pub fn serve(address: SocketAddr) -> Result<(), MetricsError> {
    // Bind first, so a taken port is told as such rather than logged later.
    std::net::TcpListener::bind(address).map_err(|e| MetricsError {
        address,
        detail: e.to_string(),
    })?;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(address)
        .idle_timeout(metrics_util::MetricKindMask::GAUGE, Some(IDLE))
        .install()
        .map_err(|e| MetricsError {
            address,
            detail: e.to_string(),
        })
}
