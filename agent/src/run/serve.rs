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
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
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
            },
            metrics,
            health,
            LoopConfig::default(),
        );
        agent.start().await.expect("start");
        assert_eq!(get(r, "/readyz").await.0, StatusCode::OK);
    }
}
