//! The cluster controller: four reconcilers over the shared watch caches.
//!
//! ```text
//!                      ┌──────────────── Stores (one watch per kind) ───────────────┐
//!                      │ Node  NicNodeState  NicPolicy  NicPool  NicNetwork  NAD     │
//!                      └───┬──────────┬───────────┬─────────┬────────────┬──────────┘
//!        Change (broadcast)│          │           │         │            │
//!   ┌──────────────────────▼───┐ ┌────▼────────┐ ┌▼─────────▼─┐ ┌────────▼─────────┐
//!   │ node_state (per Node)    │ │ drain       │ │ status     │ │ network          │
//!   │ planner::plan_node       │ │ planner::   │ │ policy     │ │ (per NicNetwork) │
//!   │ → NicNodeState.spec (SSA)│ │ grant →     │ │ status,    │ │ planner::        │
//!   │   incl. devicePlugin     │ │ annotations,│ │ config     │ │ render_nad → NAD │
//!   │ → Node label             │ │ cordon,evict│ │ status     │ │ (SSA) + status   │
//!   └──────────────────────────┘ └─────────────┘ └────────────┘ └──────────────────┘
//! ```
//!
//! Per-object controllers ([`node_state`], [`network`]) run on kube-runtime's `applier` (no two
//! concurrent reconciles of one object, debounced triggers); the cluster-wide ones ([`drain`],
//! [`status`]) are single loops with a debounce that plan off the async runtime
//! ([`off_runtime`]). Each runs in its own task, only on the leader ([`crate::leader`]); every
//! write uses the field manager `smartnic.io/operator`.

pub mod device_classes;
pub mod drain;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod load_tests;
pub mod network;
pub mod node_state;
pub mod placement;
pub mod status;
pub mod tally;
pub mod triggers;
pub mod watches;

use std::{future::Future, sync::Arc, time::Duration};

use crds::FIELD_MANAGER_OPERATOR;
use futures::{Stream, StreamExt, stream};
use kube::{
    api::PatchParams,
    runtime::controller::{self, applier},
};
use tokio::time::Instant;

use self::triggers::{Change, Triggers, queue, resync_every};
use crate::context::Context;

/// Delay between a change and the reconciles it triggers, merging bursts (a policy edit touches
/// every node's state within a second).
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// What the per-module error enums provide to the generic loops.
pub trait ReconcileError: std::error::Error + Send + Sync + 'static {
    /// Short label naming the failed call (`error` label of the error counter).
    fn metric_label(&self) -> &'static str;
    /// First retry delay; doubled per consecutive failure of the same object.
    fn retry_base(&self) -> Duration;
}

/// Server-side apply as `smartnic.io/operator`, forced: these fields are the operator's.
pub(crate) fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER_OPERATOR).force()
}

/// A merge patch recorded under the operator's field manager (an `Update` entry in
/// `managedFields`, separate from the operator's `Apply` entry, so applies do not drop it).
pub(crate) fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER_OPERATOR.to_owned()),
        ..PatchParams::default()
    }
}

/// The HTTP status of an API error.
pub(crate) fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// 409: someone changed the object since it was read; retry soon with fresh data.
pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    api_code(e) == Some(409)
}

/// Runs every controller until `changes` ends or the future is dropped (on shutdown or loss of
/// leadership). Waits for the caches first, so no decision is taken on a partial view.
///
/// Each controller runs in its own task, so that a slow one (a whole-cluster pass, an API
/// server that answers slowly) never holds up the others, nor the watches and the leader
/// election that run in tasks of their own. Dropping the returned future aborts every
/// controller task at its next await point: after a lost lease nothing more is written.
pub async fn run(ctx: Arc<Context>, triggers: Triggers) {
    // subscribe before waiting so that nothing published meanwhile is lost
    let node_changes = triggers.subscribe();
    let network_changes = triggers.subscribe();
    let drain_changes = triggers.subscribe();
    let status_changes = triggers.subscribe();
    if ctx.stores.wait_until_ready().await.is_err() {
        tracing::error!("watch caches dropped before they were filled");
        return;
    }
    tracing::info!("caches ready; starting controllers");
    let tasks = AbortOnDrop(vec![
        tokio::spawn(run_node_state(ctx.clone(), node_changes)),
        tokio::spawn(run_network(ctx.clone(), network_changes)),
        tokio::spawn(run_singleton(
            drain::CONTROLLER,
            ctx.clone(),
            drain_changes,
            drain::relevant,
            drain::reconcile,
        )),
        tokio::spawn(run_singleton(
            status::CONTROLLER,
            ctx,
            status_changes,
            status::relevant,
            status::reconcile,
        )),
    ]);
    tasks.join().await;
}

/// Tasks aborted when this is dropped.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    /// Waits for every task; a panic in one is logged (the others keep running).
    async fn join(mut self) {
        for t in &mut self.0 {
            if let Err(e) = t.await
                && e.is_panic()
            {
                tracing::error!(error = %e, "controller task panicked");
            }
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Runs CPU-bound work (a whole-cluster planning pass) on the blocking pool, off the async
/// worker threads that serve the watches, the webhook and the lease renewals. `None` when the
/// runtime is shutting down; a panic in `f` is resumed here.
pub async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

async fn run_node_state(
    ctx: Arc<Context>,
    changes: impl Stream<Item = Change> + Send + Unpin + 'static,
) {
    let c = ctx.clone();
    let changes = stream::select(
        stream::iter([Change::Resync]).chain(changes),
        resync_every(node_state::RESYNC),
    );
    let q = queue(changes, move |change| node_state::affected(change, &c));
    let config = controller::Config::default()
        .concurrency(8)
        .debounce(DEBOUNCE);
    applier(
        |n, ctx| Box::pin(node_state::reconcile(n, ctx)),
        node_state::error_policy,
        ctx.clone(),
        ctx.stores.nodes.clone(),
        q,
        config,
    )
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "node-state applier");
        }
    })
    .await;
}

async fn run_network(
    ctx: Arc<Context>,
    changes: impl Stream<Item = Change> + Send + Unpin + 'static,
) {
    let c = ctx.clone();
    let changes = stream::select(
        stream::iter([Change::Resync]).chain(changes),
        resync_every(network::RESYNC),
    );
    let q = queue(changes, move |change| network::affected(change, &c));
    let config = controller::Config::default()
        .concurrency(4)
        .debounce(DEBOUNCE);
    applier(
        |n, ctx| Box::pin(network::reconcile(n, ctx)),
        network::error_policy,
        ctx.clone(),
        ctx.stores.networks.clone(),
        q,
        config,
    )
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "network applier");
        }
    })
    .await;
}

/// Runs a cluster-wide reconcile: at start, after every relevant change (debounced: a burst of
/// changes is one pass), and when the previous run asked for it (`Ok(delay)`); after an error,
/// with exponential backoff. `relevant` sees every change (also those merged into a burst), so
/// a controller can note what it makes stale; a pass woken by the clock counts as a
/// [`Change::Resync`].
async fn run_singleton<F, Fut, E>(
    name: &'static str,
    ctx: Arc<Context>,
    mut changes: impl Stream<Item = Change> + Send + Unpin,
    relevant: fn(&Context, &Change) -> bool,
    reconcile: F,
) where
    F: Fn(Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Duration, E>>,
    E: ReconcileError,
{
    let mut next = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {
                relevant(&ctx, &Change::Resync);
            }
            c = changes.next() => match c {
                None => return,
                Some(c) if relevant(&ctx, &c) => {
                    // merge the burst this change belongs to
                    let deadline = Instant::now() + DEBOUNCE;
                    loop {
                        tokio::select! {
                            () = tokio::time::sleep_until(deadline) => break,
                            c = changes.next() => match c {
                                None => return,
                                Some(c) => {
                                    relevant(&ctx, &c);
                                }
                            },
                        }
                    }
                }
                Some(_) => continue,
            },
        }
        next = match reconcile(ctx.clone()).await {
            Ok(delay) => {
                ctx.backoff.succeeded(name);
                Instant::now() + delay
            }
            Err(error) => {
                ctx.metrics.reconcile_failed(name, error.metric_label());
                let delay = ctx.backoff.failed(name, error.retry_base());
                tracing::warn!(controller = name, %error, ?delay, "reconcile failed");
                Instant::now() + delay
            }
        };
    }
}

/// Publishes an event; a failure is logged, never fatal (events are best effort).
pub(crate) async fn publish(
    ctx: &Context,
    type_: kube::runtime::events::EventType,
    reason: &str,
    note: String,
    action: &str,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
) {
    let ev = kube::runtime::events::Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&ev, regarding).await {
        tracing::warn!(%error, reason, "cannot publish event");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crds::NicNodeStateSpec;
    use http::Method;
    use serde_json::json;

    use planner::fixtures::{cx6, policy};

    use super::*;
    use crate::controller::fixtures::{node, node_state, reply, test_context, with_inventory};

    /// The whole controller set, driven by the change stream as in production: a policy and a
    /// node with an inventory converge to the node-state apply (carrying the device-plugin
    /// configuration), the device-plugin label and the policy status, in whatever order the
    /// controllers run. Any other call (such as a cluster-wide ConfigMap) fails the test.
    #[tokio::test]
    async fn controllers_wire_up_and_converge_from_the_caches() {
        let (ctx, mut fake, mut stores) = test_context();
        let n1 = node("n1", &[("gpu", "true")]);
        stores.node(n1.clone());
        stores.node_state(with_inventory(
            node_state("n1", &n1, NicNodeStateSpec::default()),
            vec![cx6("0000:3b:00.0", "ens1f0")],
        ));
        let mut p = policy("p1", 10, &["ens1f0"]);
        p.metadata.resource_version = Some("1".into());
        stores.policy(p);
        stores.mark_ready();
        let triggers = Triggers::new();
        let controllers = tokio::spawn(run(ctx.clone(), triggers.clone()));

        let want: BTreeSet<&str> = ["nodestate", "label", "policystatus"].into();
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !want.is_subset(&seen) {
            let next = tokio::time::timeout_at(deadline, fake.next_any()).await;
            let (method, path, s, send) = next
                .expect("controllers converge within 5 s")
                .expect("request");
            let what = match (method.clone(), path.as_str()) {
                (Method::PATCH, "/apis/smartnic.io/v1alpha1/nicnodestates/n1") => {
                    assert_eq!(s.body["spec"]["interfaces"][0]["numVfs"], 8);
                    let pool = &s.body["spec"]["devicePlugin"]["resourceList"][0];
                    assert_eq!(pool["resourceName"], "cx6_vf", "{}", s.body);
                    assert_eq!(pool["resourcePrefix"], "smartnic.io");
                    assert_eq!(
                        pool["selectors"][0]["pfs"][0],
                        json!({"pciAddress": "0000:3b:00.0", "name": "ens1f0", "vfs": [{"first": 0, "last": 7}]})
                    );
                    "nodestate"
                }
                (Method::PATCH, "/api/v1/nodes/n1") => "label",
                (Method::PATCH, "/apis/smartnic.io/v1alpha1/nicpolicies/p1/status") => {
                    assert_eq!(s.body["status"]["selectedNodes"], 1);
                    "policystatus"
                }
                (m, p) => panic!("unexpected call {m} {p}"),
            };
            seen.insert(what);
            let mut body = s.body;
            body["metadata"]["resourceVersion"] = json!("2");
            if what == "policystatus" {
                body["spec"] = json!({"nodeSelector": {}, "nicSelector": {}, "numVfs": 1, "resourceName": "x"});
            }
            reply(send, 200, body);
        }
        controllers.abort();
        assert!(
            ctx.metrics
                .render()
                .contains("smartnic_operator_reconcile_total{controller=\"node-state\"}")
        );
    }
}
