//! Prometheus metrics of the device plugin and the `/metrics` and `/healthz` HTTP endpoints.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `smartnic_device_plugin_devices` | gauge | `resource`, `health` (`healthy` / `unhealthy`) |
//! | `smartnic_device_plugin_allocations_total` | counter | `resource` (devices handed out) |
//! | `smartnic_device_plugin_allocation_errors_total` | counter | `resource` |
//! | `smartnic_device_plugin_registrations_total` | counter | `resource` (successful Register calls) |
//! | `smartnic_device_plugin_registration_errors_total` | counter | `resource` |
//! | `smartnic_device_plugin_config_reloads_total` | counter | `result` (`ok` / `error`) |

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::net::TcpListener;

use crate::pool::PoolDevice;

/// Labels of the per-pool metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// `smartnic.io/cx6_vf`.
    pub resource: String,
}

/// Labels of the device gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabels {
    /// `smartnic.io/cx6_vf`.
    pub resource: String,
    /// `healthy` or `unhealthy`.
    pub health: String,
}

/// Labels of the reload counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or `error`.
    pub result: String,
}

/// Every metric of the plugin, registered in one registry.
pub struct Metrics {
    /// Devices per pool and health.
    pub devices: Family<DeviceLabels, Gauge>,
    /// Devices allocated.
    pub allocations: Family<ResourceLabels, Counter>,
    /// Allocate calls refused.
    pub allocation_errors: Family<ResourceLabels, Counter>,
    /// Successful registrations with the kubelet.
    pub registrations: Family<ResourceLabels, Counter>,
    /// Failed registration attempts.
    pub registration_errors: Family<ResourceLabels, Counter>,
    /// Configuration reloads.
    pub config_reloads: Family<ResultLabels, Counter>,
    registry: Registry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(resource: &str) -> ResourceLabels {
    ResourceLabels {
        resource: resource.to_owned(),
    }
}

impl Metrics {
    /// A registry with every metric registered under the `smartnic_device_plugin` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("smartnic_device_plugin");
        let m = Metrics {
            devices: Family::default(),
            allocations: Family::default(),
            allocation_errors: Family::default(),
            registrations: Family::default(),
            registration_errors: Family::default(),
            config_reloads: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "devices",
            "Devices advertised, per pool and health",
            m.devices.clone(),
        );
        registry.register(
            "allocations",
            "Devices handed to containers",
            m.allocations.clone(),
        );
        registry.register(
            "allocation_errors",
            "Allocate calls refused",
            m.allocation_errors.clone(),
        );
        registry.register(
            "registrations",
            "Successful registrations with the kubelet",
            m.registrations.clone(),
        );
        registry.register(
            "registration_errors",
            "Failed registration attempts",
            m.registration_errors.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration file reloads, by result",
            m.config_reloads.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the device gauges of a pool.
    pub fn set_pool(&self, resource: &str, devices: &[PoolDevice]) {
        let healthy = devices.iter().filter(|d| d.health.is_healthy()).count();
        for (health, n) in [("healthy", healthy), ("unhealthy", devices.len() - healthy)] {
            self.devices
                .get_or_create(&DeviceLabels {
                    resource: resource.to_owned(),
                    health: health.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Drops the gauges of a removed pool.
    pub fn remove_pool(&self, resource: &str) {
        for health in ["healthy", "unhealthy"] {
            self.devices.remove(&DeviceLabels {
                resource: resource.to_owned(),
                health: health.to_owned(),
            });
        }
    }

    /// Counts devices allocated.
    pub fn allocated(&self, resource: &str, n: usize) {
        self.allocations
            .get_or_create(&labels(resource))
            .inc_by(n as u64);
    }

    /// Counts a refused Allocate.
    pub fn allocation_failed(&self, resource: &str) {
        self.allocation_errors
            .get_or_create(&labels(resource))
            .inc();
    }

    /// Counts a registration attempt.
    pub fn registered(&self, resource: &str, ok: bool) {
        let family = if ok {
            &self.registrations
        } else {
            &self.registration_errors
        };
        family.get_or_create(&labels(resource)).inc();
    }

    /// Counts a configuration reload.
    pub fn config_reloaded(&self, ok: bool) {
        self.config_reloads
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc();
    }

    /// Successful registrations of `resource` so far.
    pub fn registrations_of(&self, resource: &str) -> u64 {
        self.registrations.get_or_create(&labels(resource)).get()
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Why the metrics server stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("metrics server on {addr} failed: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `/metrics` (Prometheus text format) and `/healthz`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(metrics)
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}

/// Serves [`router`] at `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    tracing::info!(%addr, "serving /metrics and /healthz");
    axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Serve { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_pool_gauges_and_counters() {
        let m = Metrics::new();
        m.set_pool("smartnic.io/vf", &[]);
        m.allocated("smartnic.io/vf", 2);
        m.registered("smartnic.io/vf", true);
        m.config_reloaded(false);
        let text = m.render();
        for want in [
            r#"smartnic_device_plugin_devices{resource="smartnic.io/vf",health="healthy"} 0"#,
            r#"smartnic_device_plugin_allocations_total{resource="smartnic.io/vf"} 2"#,
            r#"smartnic_device_plugin_registrations_total{resource="smartnic.io/vf"} 1"#,
            r#"smartnic_device_plugin_config_reloads_total{result="error"} 1"#,
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        m.remove_pool("smartnic.io/vf");
        assert!(!m.render().contains("healthy\"}"));
    }
}
