//! The agent's plain-HTTP endpoints: `/metrics` (the [`AgentMetrics`] registry: step and plan
//! durations, failed steps, sync status), `/healthz` (200 while the process serves) and
//! `/readyz` (200 once no post-boot re-apply or interrupted plan is pending, see
//! [`crate::run::decide::Readiness`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::net::TcpListener;

use crate::metrics::AgentMetrics;
use crate::run::Health;

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the metrics server on {addr} failed: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct Shared {
    metrics: Arc<AgentMetrics>,
    health: Arc<Health>,
}

/// The routes.
pub fn router(metrics: Arc<AgentMetrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(Shared { metrics, health })
}

async fn metrics_handler(State(s): State<Shared>) -> impl IntoResponse {
    let body = match s.metrics.vf_scraper() {
        // the per-VF counters are read now, off the runtime (crate::vf_metrics)
        Some(scraper) => {
            let reading = scraper
                .scrape()
                .await
                .inspect_err(|error| tracing::warn!(%error, "per-VF counters"))
                .ok();
            let mut vf = String::new();
            crate::vf_metrics::render(reading.as_ref(), &mut vf);
            s.metrics.render_with(&vf)
        }
        None => s.metrics.render(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

async fn readyz(State(s): State<Shared>) -> impl IntoResponse {
    if s.health.ready() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the VFs are not re-applied yet after the reboot (or the interrupted plan is not finished)",
        )
    }
}

/// Serves the routes on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<AgentMetrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, router(metrics, health))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Serve { addr, source })
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use crds::node_state::SyncStatus;
    use tower::ServiceExt;

    use super::*;
    use crate::run::{Agent, HostSide, LoopConfig};

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let resp = router
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let body = to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn metrics_health_and_readiness_after_the_post_boot_reapply() {
        let metrics = Arc::new(AgentMetrics::new());
        let health = Arc::new(Health::default());
        metrics.set_sync(SyncStatus::InProgress);
        let r = router(metrics.clone(), health.clone());
        assert_eq!(get(r.clone(), "/healthz").await.0, StatusCode::OK);
        // not ready before the start-up ran
        assert_eq!(
            get(r.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (code, text) = get(r.clone(), "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            text.contains("smartnic_agent_sync_status{status=\"InProgress\"} 1"),
            "{text}"
        );

        // a start-up after a reboot: ready once the last spec is re-applied
        let dir = tempfile::tempdir().expect("dir");
        let state = Arc::new(crate::state::StateFile::new(dir.path().join("s.json")));
        state
            .store(&crate::state::AgentState {
                boot_id: Some("b0".into()),
                applied: Some(Default::default()),
                ..Default::default()
            })
            .expect("state");
        let (svc, _handle) = tower_test::mock::pair::<
            Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let mut agent = Agent::new(
            crate::cluster::NodeApi::new(kube::Client::new(svc, "default"), "n1"),
            HostSide {
                host: Arc::new(crate::fake::FakeHost::default()),
                firmware: None,
                state,
                handoff: Arc::new(crate::handoff::DevicePluginFile::new(
                    dir.path().join("dp.json"),
                )),
                boot_id: "b1".into(),
                applying: Default::default(),
            },
            metrics,
            health,
            LoopConfig::default(),
        );
        agent.start().await.expect("start");
        assert_eq!(get(r, "/readyz").await.0, StatusCode::OK);
    }

    struct Canned;

    impl crate::vf_metrics::VfCounterSource for Canned {
        fn read(&self) -> Result<crate::vf_metrics::Reading, String> {
            Ok(crate::vf_metrics::Reading {
                samples: vec![crate::vf_metrics::VfSample {
                    pf: "enp1s0".into(),
                    pci_address: Some("0000:01:10.0".into()),
                    pod: None,
                    stats: nic::netlink::VfStats {
                        vf: 0,
                        tx_bytes: 42,
                        ..Default::default()
                    },
                }],
                errors: vec![],
            })
        }
    }

    #[tokio::test]
    async fn the_vf_counters_are_read_at_scrape_time_into_one_document() {
        let metrics = Arc::new(AgentMetrics::new());
        let r = router(metrics.clone(), Arc::new(Health::default()));
        let (_, text) = get(r.clone(), "/metrics").await;
        assert!(!text.contains("smartnic_vf_"), "{text}");
        metrics.set_vf_scraper(crate::vf_metrics::VfScraper::new(
            Arc::new(Canned),
            std::time::Duration::from_secs(5),
        ));
        let (code, text) = get(r, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            text.contains(
                "smartnic_vf_tx_bytes_total{pf=\"enp1s0\",vf=\"0\",pci_address=\"0000:01:10.0\"} 42"
            ),
            "{text}"
        );
        assert!(
            text.contains("smartnic_agent_plan_duration_seconds_count 0"),
            "{text}"
        );
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
