//! Drain arbiter: the operator side of the drain handshake described in [`crds::consts`].
//!
//! One cluster-wide reconcile, run after any change to node states, nodes or pools:
//!
//! 1. **Grant.** [`planner::grant`] picks the waiting nodes that fit in their pool's
//!    `maxUnavailable`, oldest request first. Each gets `smartnic.io/drain-grant: draining` by a
//!    JSON merge patch that carries the `resourceVersion` it was decided on, so a decision taken
//!    on a stale view fails with 409 and is retaken (the operator's server-side apply of the spec
//!    is a separate `managedFields` entry and does not touch the annotation).
//! 2. **Drain.** For a node holding `draining`: cordon it (remembering, in the Node annotation
//!    `smartnic.io/cordoned`, that the operator did it), evict through the Eviction subresource
//!    the pods that use this operator's resources or a `macvlan`/`ipvlan` `NicNetwork` on one of
//!    the node's configured PFs (`evict-vf-pods`, [`must_leave_for`]) or every pod except
//!    DaemonSet and mirror pods (`reboot`), and set `drained` once none is left. An eviction
//!    refused with 429 (a PodDisruptionBudget) is retried on the next pass (every 5 s while any
//!    node drains); nothing waits inside the reconcile, so one stuck pod never blocks other
//!    nodes or pools. Progress is reported in the `Draining` condition and events.
//!    **Deadline:** a node still evicting `drainTimeoutSeconds` (of its pool; default 600, 0 =
//!    never) after `smartnic.io/drain-granted-at` is given up: evictions stop, the node is
//!    uncordoned if the operator cordoned it, its grant goes back to `none` (freeing the slot for
//!    the next node in the queue) with `smartnic.io/drain-retry-after` set, `Draining=False`
//!    with reason `DrainTimedOut` names each pod that blocked and why (a dry-run eviction tells
//!    a PodDisruptionBudget refusal apart), a `DrainTimedOut` Warning event is published and
//!    `drain_timeouts_total{pool}` counted. The change stays pending; the drain starts over
//!    after the retry-after time. A `drained` node is never timed out.
//! 3. **Release.** When the agent sets its request back to `none`: uncordon (only if the operator
//!    cordoned), set the grant to `none` (which frees the pool slot), `Draining=False`.
//! 4. **Pool status** (`nodes`, `draining`, `maxUnavailableNodes`, `Valid`) and the
//!    `drains_granted` gauge.
//!
//! With `NicOperatorConfig.spec.features.drain: false` a granted node goes straight to
//! `drained` without cordon or eviction.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use crds::{
    ANNOTATION_DRAIN_GRANT, ANNOTATION_DRAIN_GRANTED_AT, ANNOTATION_DRAIN_REQUEST,
    ANNOTATION_DRAIN_REQUESTED_AT, ANNOTATION_DRAIN_RETRY_AFTER, CONDITION_DRAINING,
    CONDITION_VALID, DrainGrant, DrainRequest, NicNodeState, NicPool,
    k8s::{Time, jiff::Timestamp},
    pool::NicPoolStatus,
};
use k8s_openapi::api::core::v1::Node;
use kube::{Api, Resource, ResourceExt, api::Patch, runtime::events::EventType};
use serde_json::{Value, json};

use super::{ReconcileError, apply_params, is_conflict, merge_params, publish, triggers::Change};
use planner::conditions::{self, Cond};
use planner::{GrantDecision, NodeDrainState, grant, validate::to_message};

use crate::{context::Context, metrics::PoolLabels};

mod node;
mod pods;
#[cfg(test)]
mod tests;

use node::{Step, cordon, progress};
pub use pods::{NicUsers, must_leave, must_leave_for, uses_resources_with_prefix};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "drain";

/// Node annotation set when the operator cordoned the node, so that it uncordons only nodes it
/// cordoned (an administrator's cordon is left alone).
pub const ANNOTATION_CORDONED: &str = "smartnic.io/cordoned";

/// Pass interval while any node holds a grant (evictions are retried this often).
pub const WHILE_DRAINING: Duration = Duration::from_secs(5);
/// Pass interval when no node holds a grant.
pub const IDLE: Duration = Duration::from_secs(60);

/// Why a drain pass failed. Other nodes are still processed; the first error is returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Setting the drain-grant annotation failed (409: the node state changed since it was read).
    #[error("cannot set {ANNOTATION_DRAIN_GRANT}={grant} on NicNodeState {node}: {source}")]
    Grant {
        /// Node name.
        node: String,
        /// The grant value.
        grant: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// `kubectl cordon` failed.
    #[error("cannot cordon Node {node}: {source}")]
    Cordon {
        /// Node name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// `kubectl uncordon` failed.
    #[error("cannot uncordon Node {node}: {source}")]
    Uncordon {
        /// Node name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Listing the node's pods failed.
    #[error("cannot list pods on Node {node}: {source}")]
    ListPods {
        /// Node name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// An eviction failed for another reason than a PodDisruptionBudget.
    #[error("cannot evict pod {namespace}/{pod} from Node {node}: {source}")]
    Evict {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Node name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Writing the `Draining` condition failed.
    #[error("cannot update the {CONDITION_DRAINING} condition of NicNodeState {node}: {source}")]
    DrainingCondition {
        /// Node name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Writing a pool's status failed.
    #[error("cannot apply status of NicPool {pool}: {source}")]
    PoolStatus {
        /// Pool name.
        pool: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Short label naming the failed call.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Grant { .. } => "grant",
            Self::Cordon { .. } => "cordon",
            Self::Uncordon { .. } => "uncordon",
            Self::ListPods { .. } => "listpods",
            Self::Evict { .. } => "evict",
            Self::DrainingCondition { .. } => "drainingcondition",
            Self::PoolStatus { .. } => "poolstatus",
        }
    }

    fn source(&self) -> &kube::Error {
        match self {
            Self::Grant { source, .. }
            | Self::Cordon { source, .. }
            | Self::Uncordon { source, .. }
            | Self::ListPods { source, .. }
            | Self::Evict { source, .. }
            | Self::DrainingCondition { source, .. }
            | Self::PoolStatus { source, .. } => source,
        }
    }
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        Error::metric_label(self)
    }

    fn retry_base(&self) -> Duration {
        if is_conflict(self.source()) {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        }
    }
}

/// Whether a change can affect drains: the agent's inventory and status writes are not (only
/// its drain annotations are).
pub fn relevant(_ctx: &Context, c: &Change) -> bool {
    matches!(
        c,
        Change::Node(_)
            | Change::NodeDrain(_)
            | Change::Pool
            | Change::OperatorConfig
            | Change::Resync
    )
}

/// The agent's request, its time and the operator's grant, read from a node state.
pub fn drain_annotations(s: &NicNodeState) -> (DrainRequest, Option<Time>, DrainGrant) {
    let a = s.annotations();
    let request = a
        .get(ANNOTATION_DRAIN_REQUEST)
        .and_then(|v| DrainRequest::from_annotation(v))
        .unwrap_or_default();
    let at = a
        .get(ANNOTATION_DRAIN_REQUESTED_AT)
        .and_then(|v| v.parse::<Timestamp>().ok())
        .map(Time);
    let grant = a
        .get(ANNOTATION_DRAIN_GRANT)
        .and_then(|v| DrainGrant::from_annotation(v))
        .unwrap_or_default();
    (request, at, grant)
}

/// The operator's grant time and retry-after time, read from a node state.
pub fn drain_times(s: &NicNodeState) -> (Option<Time>, Option<Time>) {
    let a = s.annotations();
    let time = |key: &str| {
        a.get(key)
            .and_then(|v| v.parse::<Timestamp>().ok())
            .map(Time)
    };
    (
        time(ANNOTATION_DRAIN_GRANTED_AT),
        time(ANNOTATION_DRAIN_RETRY_AFTER),
    )
}

/// One drain pass. Returns the delay until the next pass.
#[tracing::instrument(skip_all)]
pub async fn reconcile(ctx: Arc<Context>) -> Result<Duration, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let states = ctx.stores.node_states.state();
    let pools: Vec<NicPool> = ctx
        .stores
        .pools
        .state()
        .iter()
        .map(|p| (**p).clone())
        .collect();
    let now = (ctx.now)();
    // the decision reads every node: off the async runtime
    let (all_states, all_nodes, all_pools) =
        (states.clone(), ctx.stores.nodes.state(), pools.clone());
    let Some((nodes, decision)) =
        super::off_runtime(move || decide(&all_states, all_nodes, &all_pools, now)).await
    else {
        return Ok(IDLE);
    };
    let by_name: HashMap<String, &Arc<NicNodeState>> =
        states.iter().map(|s| (s.name_any(), s)).collect();
    let drain_enabled = ctx.stores.drain_enabled();
    let mut first_error: Option<Error> = None;
    let mut keep = |r: Result<(), Error>| {
        if let Err(e) = r {
            tracing::warn!(error = %e, "drain step failed");
            first_error.get_or_insert(e);
        }
    };

    // 1. grants
    let granted_to = if drain_enabled {
        DrainGrant::Draining
    } else {
        DrainGrant::Drained
    };
    for name in &decision.granted {
        let Some(s) = by_name.get(name) else {
            continue;
        };
        // the grant time starts the drain timeout; a former retry-after is spent
        let times = json!({
            ANNOTATION_DRAIN_GRANTED_AT: now.to_string(),
            ANNOTATION_DRAIN_RETRY_AFTER: null,
        });
        let r = set_grant(
            &ctx,
            name,
            granted_to,
            times,
            s.resource_version().as_deref(),
        )
        .await;
        if r.is_ok() {
            publish(
                &ctx,
                EventType::Normal,
                "DrainGranted",
                format!(
                    "drain slot granted for {}; {} other node(s) wait for a slot",
                    drain_annotations(s).0.as_str(),
                    decision.waiting.len()
                ),
                "Grant",
                &s.object_ref(&()),
            )
            .await;
        }
        keep(r.map(|_| ()));
    }
    for (node, pools) in &decision.conflicts {
        tracing::warn!(%node, ?pools, "node is selected by several NicPools and is never granted a drain");
    }

    // 2./3. nodes that held a grant when this pass started
    let prefix = ctx.stores.resource_prefix();
    let mut busy = false;
    for s in &states {
        let (request, _, held) = drain_annotations(s);
        let name = s.name_any();
        let node = nodes.get(&name);
        match (held, request) {
            (DrainGrant::None, _) => {}
            (_, DrainRequest::None) => keep(release(&ctx, s, node).await),
            (DrainGrant::Draining, request) => {
                busy = true;
                let step = Step {
                    request,
                    prefix: &prefix,
                    drain_enabled,
                    holder: decision.holder_pools.get(&name),
                    now,
                };
                keep(progress(&ctx, s, node, step).await);
            }
            (DrainGrant::Drained, _) => busy = true,
        }
    }

    // 4. pools
    for usage in &decision.pools {
        let label = PoolLabels {
            pool: usage.pool.clone().unwrap_or_default(),
        };
        ctx.metrics
            .drains_granted
            .get_or_create(&label)
            .set(i64::from(usage.draining));
        let Some(pool_name) = &usage.pool else {
            continue;
        };
        let Some(pool) = pools
            .iter()
            .find(|p| p.metadata.name.as_ref() == Some(pool_name))
        else {
            continue;
        };
        keep(write_pool_status(&ctx, pool, usage, &decision).await);
    }

    match first_error {
        Some(e) => Err(e),
        None if busy || !decision.granted.is_empty() || !decision.waiting.is_empty() => {
            Ok(WHILE_DRAINING)
        }
        // come back when the first deferred node may be granted again
        None => Ok(decision.next_retry.map_or(IDLE, |t| {
            Duration::try_from(t.0.duration_since(now))
                .unwrap_or_default()
                .clamp(Duration::from_secs(1), IDLE)
        })),
    }
}

/// The grant decision over every node and node state (see [`planner::grant`]), and the Nodes
/// by name.
fn decide(
    states: &[Arc<NicNodeState>],
    nodes: Vec<Arc<Node>>,
    pools: &[NicPool],
    now: Timestamp,
) -> (HashMap<String, Arc<Node>>, GrantDecision) {
    let nodes: HashMap<String, Arc<Node>> = nodes.into_iter().map(|n| (n.name_any(), n)).collect();
    let no_labels = BTreeMap::new();
    let by_name: HashMap<String, &Arc<NicNodeState>> =
        states.iter().map(|s| (s.name_any(), s)).collect();
    // every Node counts towards its pool's size (percentages), whether or not it has a node
    // state; a node state whose Node is gone still releases its slot
    let names: BTreeSet<&String> = nodes.keys().chain(by_name.keys()).collect();
    let inputs: Vec<NodeDrainState<'_>> = names
        .iter()
        .map(|name| {
            let (request, requested_at, grant) = by_name
                .get(*name)
                .map_or((DrainRequest::None, None, DrainGrant::None), |s| {
                    drain_annotations(s)
                });
            let retry_after = by_name.get(*name).and_then(|s| drain_times(s).1);
            NodeDrainState {
                name,
                labels: nodes.get(*name).map_or(&no_labels, |n| n.labels()),
                request,
                requested_at,
                grant,
                retry_after,
            }
        })
        .collect();
    let decision = grant(&inputs, pools, now);
    (nodes, decision)
}

/// `smartnic.io/drain-grant: <grant>` plus the operator's other drain annotations in `times`
/// (a JSON object; `null` removes one), conditional on `resource_version` when given.
/// Returns the object's new resourceVersion.
pub(super) async fn set_grant(
    ctx: &Context,
    node: &str,
    grant: DrainGrant,
    times: Value,
    resource_version: Option<&str>,
) -> Result<Option<String>, Error> {
    let mut annotations = match times {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    annotations.insert(ANNOTATION_DRAIN_GRANT.to_owned(), json!(grant.as_str()));
    let mut meta = json!({ "annotations": annotations });
    if let Some(rv) = resource_version {
        meta["resourceVersion"] = json!(rv);
    }
    tracing::info!(%node, grant = grant.as_str(), "setting drain grant");
    let api: Api<NicNodeState> = Api::all(ctx.client.clone());
    let updated = api
        .patch(
            node,
            &merge_params(),
            &Patch::Merge(&json!({"metadata": meta})),
        )
        .await
        .map_err(|source| Error::Grant {
            node: node.to_owned(),
            grant: grant.as_str(),
            source,
        })?;
    Ok(updated.resource_version())
}

/// The agent finished: uncordon (if the operator cordoned), free the slot, `Draining=False`.
async fn release(ctx: &Context, s: &NicNodeState, node: Option<&Arc<Node>>) -> Result<(), Error> {
    let name = s.name_any();
    if node.is_some_and(|n| n.annotations().contains_key(ANNOTATION_CORDONED)) {
        cordon(ctx, &name, false).await?;
    }
    let rv = set_grant(
        ctx,
        &name,
        DrainGrant::None,
        json!({ ANNOTATION_DRAIN_GRANTED_AT: null }),
        s.resource_version().as_deref(),
    )
    .await?;
    set_draining_condition(
        ctx,
        s,
        rv,
        Cond::new(
            CONDITION_DRAINING,
            false,
            "Idle",
            "the agent applied the change; drain slot released",
        ),
    )
    .await?;
    Ok(())
}

/// Replaces the `Draining` condition in the node state's status, keeping the agent's
/// conditions, by a merge patch conditional on `resource_version`.
///
/// `status.conditions` is an atomic list in the CRD schema, so a server-side apply of one
/// condition by the operator would take the whole list from the agent (or conflict); the
/// conditional merge patch instead rewrites the list as read, and a concurrent agent write
/// makes it fail with 409 and be retried.
pub(super) async fn set_draining_condition(
    ctx: &Context,
    s: &NicNodeState,
    resource_version: Option<String>,
    cond: Cond,
) -> Result<Option<String>, Error> {
    let existing = s
        .status
        .as_ref()
        .map(|st| st.conditions.clone())
        .unwrap_or_default();
    let generation = s.metadata.generation;
    if conditions::up_to_date(&existing, std::slice::from_ref(&cond), generation) {
        return Ok(resource_version);
    }
    let merged = conditions::merge(&existing, &[cond], generation, (ctx.now)());
    let name = s.name_any();
    let mut body = json!({"status": {"conditions": merged}});
    if let Some(rv) = &resource_version {
        body["metadata"] = json!({"resourceVersion": rv});
    }
    let api: Api<NicNodeState> = Api::all(ctx.client.clone());
    let updated = api
        .patch_status(&name, &merge_params(), &Patch::Merge(&body))
        .await
        .map_err(|source| Error::DrainingCondition {
            node: name.clone(),
            source,
        })?;
    Ok(updated.resource_version())
}

async fn write_pool_status(
    ctx: &Context,
    pool: &NicPool,
    usage: &planner::drain::PoolUsage,
    decision: &GrantDecision,
) -> Result<(), Error> {
    let name = pool.name_any();
    let in_two: Vec<&str> = decision
        .conflicts
        .iter()
        .filter(|(_, pools)| pools.iter().any(|p| p == &name))
        .map(|(n, _)| n.as_str())
        .collect();
    // the webhook's checks (selector, maxUnavailable, overlap with other pools), for clusters
    // without it; then what the arbiter saw while granting
    let checked = ctx.stores.check_pool(&name, &pool.spec);
    let valid = match checked {
        Err(errors) => Cond::new(CONDITION_VALID, false, "InvalidSpec", to_message(&errors)),
        Ok(()) if !in_two.is_empty() => Cond::new(
            CONDITION_VALID,
            false,
            "NodeInSeveralPools",
            format!(
                "spec.nodeSelector: node(s) {} are also selected by another NicPool and are never drained",
                in_two.join(", ")
            ),
        ),
        Ok(()) => Cond::new(CONDITION_VALID, true, "Valid", "no node is in another pool"),
    };
    let generation = pool.metadata.generation;
    let current = pool.status.clone().unwrap_or_default();
    let fresh = current.nodes == usage.nodes
        && current.draining == usage.draining
        && current.max_unavailable_nodes == usage.max_unavailable
        && conditions::up_to_date(
            &current.conditions,
            std::slice::from_ref(&valid),
            generation,
        );
    if fresh {
        return Ok(());
    }
    let status = NicPoolStatus {
        conditions: conditions::merge(&current.conditions, &[valid], generation, (ctx.now)()),
        nodes: usage.nodes,
        draining: usage.draining,
        max_unavailable_nodes: usage.max_unavailable,
    };
    let body = json!({"apiVersion": crds::API_VERSION, "kind": "NicPool", "metadata": {"name": name}, "status": status});
    let api: Api<NicPool> = Api::all(ctx.client.clone());
    api.patch_status(&name, &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(|source| Error::PoolStatus {
            pool: name.clone(),
            source,
        })?;
    Ok(())
}
