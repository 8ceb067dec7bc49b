//! The operator's Kubernetes client.
//!
//! kube's default client retries every 429, 503 and 504 answer inside the request, up to 15
//! times with a backoff that grows to minutes. For the operator a 429 is often an answer, not
//! throttling: the Eviction API refuses with 429 while a PodDisruptionBudget allows no
//! disruption. Retried inside the call, one budget-protected pod held the whole drain pass
//! (every node, every pool) for minutes and the pool's `drainTimeoutSeconds` could not fire. So
//! the client does not retry: each controller already requeues a failed reconcile with its own
//! backoff, and the drain pass retries refused evictions on its next pass.

use kube::{Client, Config};

/// A client from the in-cluster service account or the kubeconfig ([`Config::infer`]), see
/// [`client_from`].
pub async fn client() -> Result<Client, kube::Error> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    client_from(config)
}

/// A client for `config` that returns every answer as it comes (no retry of 429/503/504 inside
/// the request).
pub fn client_from(mut config: Config) -> Result<Client, kube::Error> {
    config.default_retry = false;
    Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    use std::time::{Duration, Instant};

    use axum::{Router, http::StatusCode, routing::post};
    use k8s_openapi::api::core::v1::Pod;
    use kube::Api;

    use super::*;

    /// An API server that refuses every eviction like a PodDisruptionBudget does; counts them.
    async fn refusing_server() -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let app = Router::new().route(
            "/api/v1/namespaces/{ns}/pods/{pod}/eviction",
            post(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("content-type", "application/json")],
                        r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"TooManyRequests","message":"Cannot evict pod as it would violate the pod's disruption budget.","code":429}"#,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), calls)
    }

    #[tokio::test]
    async fn an_eviction_refused_by_a_budget_returns_at_once() {
        let (url, calls) = refusing_server().await;
        let client = client_from(Config::new(url.parse().unwrap())).unwrap();
        let pods: Api<Pod> = Api::namespaced(client, "app");
        let started = Instant::now();
        let err = pods
            .evict("db-0", &Default::default())
            .await
            .expect_err("the budget refuses");
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 429),
            "{err:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1, "asked exactly once");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
