//! Prometheus metrics of the cluster controller and the `/metrics`, `/healthz`, `/readyz` HTTP
//! endpoints.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `smartnic_operator_reconcile_total` | counter | `controller` |
//! | `smartnic_operator_reconcile_errors_total` | counter | `controller`, `error` |
//! | `smartnic_operator_reconcile_duration_seconds` | histogram | `controller` |
//! | `smartnic_operator_drains_granted` | gauge | `pool` (`""` is the implicit default pool) |
//! | `smartnic_operator_drain_timeouts_total` | counter | `pool` (drains given up at the pool's `drainTimeoutSeconds`) |
//! | `smartnic_operator_policy_rejections` | gauge | `policy` (nodes rejecting it) |
//! | `smartnic_operator_leader` | gauge | none (1 on the replica running the controllers) |

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tokio::net::TcpListener;

/// Labels of the per-controller metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `node-state`, `network`, `drain`, `status`.
    pub controller: String,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The controller that failed.
    pub controller: String,
    /// `Error::metric_label()` of the failure (which call failed).
    pub error: String,
}

/// Labels of the per-pool gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `NicPool` name; empty for the implicit default pool.
    pub pool: String,
}

/// Labels of the per-policy gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// `NicPolicy` name.
    pub policy: String,
}

fn duration_histogram() -> Histogram {
    // 1 ms .. ~16 s: a reconcile is a handful of API calls.
    Histogram::new([
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 16.0,
    ])
}

/// Every metric of the operator, registered in one registry.
pub struct Metrics {
    /// Reconciles started, per controller.
    pub reconciles: Family<ControllerLabels, Counter>,
    /// Reconciles failed, per controller and error kind.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Reconcile durations, per controller.
    pub reconcile_duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    /// Nodes holding a drain grant, per pool.
    pub drains_granted: Family<PoolLabels, Gauge>,
    /// Drains given up at their pool's `drainTimeoutSeconds`, per pool.
    pub drain_timeouts: Family<PoolLabels, Counter>,
    /// Nodes on which a policy is rejected (for at least one PF), per policy.
    pub policy_rejections: Family<PolicyLabels, Gauge>,
    /// 1 while this replica holds the leader lease (or runs without leader election).
    pub leader: Gauge,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with every metric registered under the `smartnic_operator` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("smartnic_operator");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration =
            Family::<ControllerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        let drains_granted = Family::<PoolLabels, Gauge>::default();
        let drain_timeouts = Family::<PoolLabels, Counter>::default();
        let policy_rejections = Family::<PolicyLabels, Gauge>::default();
        let leader = Gauge::default();
        registry.register("reconcile", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by the call that failed",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "drains_granted",
            "Nodes holding a drain grant, per NicPool",
            drains_granted.clone(),
        );
        registry.register(
            "drain_timeouts",
            "Drains given up at the NicPool's drainTimeoutSeconds, per NicPool",
            drain_timeouts.clone(),
        );
        registry.register(
            "policy_rejections",
            "Nodes on which a NicPolicy is rejected for at least one PF",
            policy_rejections.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica runs the controllers",
            leader.clone(),
        );
        Self {
            reconciles,
            reconcile_errors,
            reconcile_duration,
            drains_granted,
            drain_timeouts,
            policy_rejections,
            leader,
            registry,
        }
    }

    /// Counts a reconcile start and returns a guard that records its duration when dropped.
    pub fn reconcile_started(&self, controller: &str) -> ReconcileTimer<'_> {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        ReconcileTimer {
            metrics: self,
            labels,
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile.
    pub fn reconcile_failed(&self, controller: &str, error: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                controller: controller.to_owned(),
                error: error.to_owned(),
            })
            .inc();
    }

    /// Failed reconciles counted so far for `controller` and `error` (tests and diagnostics).
    pub fn reconcile_errors_count(&self, controller: &str, error: &str) -> u64 {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                controller: controller.to_owned(),
                error: error.to_owned(),
            })
            .get()
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    labels: ControllerLabels,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .get_or_create(&self.labels)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// What the HTTP endpoints report.
#[derive(Clone, Debug)]
pub struct Health {
    /// The metrics to render on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Set once every watch cache has its first full list; `/readyz` answers 503 until then.
    pub ready: Arc<AtomicBool>,
}

impl Health {
    /// Not ready yet.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// `/metrics` (Prometheus text format), `/healthz` (always 200 while the process serves),
/// `/readyz` (200 once the watch caches are filled).
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics_handler(State(h): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.render(),
    )
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "watch caches not filled yet",
        )
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

/// Serves [`router`] on plain HTTP at `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Serve { addr, source })
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn counters_and_histogram_are_rendered_with_labels() {
        let m = Metrics::new();
        {
            let _t = m.reconcile_started("node-state");
        }
        m.reconcile_failed("node-state", "applynodestate");
        m.drains_granted
            .get_or_create(&PoolLabels {
                pool: "rack1".into(),
            })
            .set(2);
        let text = m.render();
        assert!(
            text.contains("smartnic_operator_reconcile_total{controller=\"node-state\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "smartnic_operator_reconcile_errors_total{controller=\"node-state\",error=\"applynodestate\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains(
            "smartnic_operator_reconcile_duration_seconds_count{controller=\"node-state\"} 1"
        ));
        assert!(text.contains("smartnic_operator_drains_granted{pool=\"rack1\"} 2"));
        assert_eq!(m.reconcile_errors_count("node-state", "applynodestate"), 1);
    }

    #[tokio::test]
    async fn endpoints_answer_and_readyz_follows_the_flag() {
        let health = Health::new(Arc::new(Metrics::new()));
        let app = router(health.clone());
        let get = |path: &'static str| Request::get(path).body(Body::empty()).unwrap();
        let r = app.clone().oneshot(get("/healthz")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = app.clone().oneshot(get("/readyz")).await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        health.ready.store(true, Ordering::Release);
        let r = app.clone().oneshot(get("/readyz")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = app.oneshot(get("/metrics")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("smartnic_operator_leader"));
    }
}
