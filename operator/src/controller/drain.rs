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
    CONDITION_VALID, DEFAULT_DRAIN_TIMEOUT_SECONDS, DrainGrant, DrainRequest, NicNetwork,
    NicNodeState, NicPool,
    k8s::{Time, jiff::Timestamp},
    pool::NicPoolStatus,
};
use k8s_openapi::api::{
    core::v1::{Node, Pod},
    policy::v1::Eviction,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, Patch, PostParams},
    runtime::events::EventType,
};
use serde_json::{Value, json};

use super::{
    ReconcileError, api_code, apply_params, is_conflict, merge_params, publish, triggers::Change,
};
use planner::conditions::{self, Cond};
use planner::{
    GrantDecision, HolderPool, NodeDrainState, drain_timed_out, grant, retry_after,
    validate::to_message,
};

use crate::{context::Context, metrics::PoolLabels};

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
async fn set_grant(
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

/// Whether a drain may evict the pod at all: not finished, not a mirror pod, not a DaemonSet's.
fn evictable(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    if pod
        .annotations()
        .contains_key("kubernetes.io/config.mirror")
    {
        return false;
    }
    // kubectl drain --ignore-daemonsets: the DaemonSet controller would recreate them at once
    !pod.owner_references().iter().any(|o| o.kind == "DaemonSet")
}

/// Which pods a drain removes from a node, counting as VF users only the pods that request
/// `<prefix>/*` resources (see [`must_leave_for`] for the PF users too).
pub fn must_leave(pod: &Pod, request: DrainRequest, prefix: &str) -> bool {
    if !evictable(pod) {
        return false;
    }
    match request {
        DrainRequest::None => false,
        DrainRequest::Reboot => true,
        DrainRequest::EvictVfPods => uses_resources_with_prefix(pod, prefix),
    }
}

/// What makes a pod a user of a node's NICs for an `evict-vf-pods` drain.
pub struct NicUsers<'a> {
    /// Extended-resource prefix: pods requesting `<prefix>/*` use VFs.
    pub prefix: &'a str,
    /// Every `NicNetwork`: a pod naming a `macvlan`/`ipvlan` one whose master is in `pfs` uses
    /// that PF.
    pub networks: &'a [NicNetwork],
    /// Netdev names of the PFs the drain is for (those the node's spec configures).
    pub pfs: &'a BTreeSet<String>,
}

/// Which pods a drain removes from a node: [`must_leave`], and for `evict-vf-pods` also the
/// pods whose `macvlan`/`ipvlan` interfaces hang off one of the node's configured PFs
/// ([`planner::uses_pf_through_networks`]): changing the PF takes their link away too.
pub fn must_leave_for(pod: &Pod, request: DrainRequest, users: &NicUsers<'_>) -> bool {
    must_leave(pod, request, users.prefix)
        || (matches!(request, DrainRequest::EvictVfPods)
            && evictable(pod)
            && planner::uses_pf_through_networks(
                pod.annotations()
                    .get(planner::ANNOTATION_NETWORKS)
                    .map(String::as_str),
                pod.namespace().as_deref().unwrap_or_default(),
                users.networks,
                users.pfs,
            ))
}

/// Whether a container of the pod requests or limits a `<prefix>/...` extended resource.
pub fn uses_resources_with_prefix(pod: &Pod, prefix: &str) -> bool {
    let p = format!("{prefix}/");
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| {
                c.resources.as_ref().is_some_and(|r| {
                    r.requests
                        .iter()
                        .chain(r.limits.iter())
                        .flatten()
                        .any(|(k, _)| k.starts_with(&p))
                })
            })
    })
}

/// What [`progress`] needs besides the node.
struct Step<'a> {
    request: DrainRequest,
    prefix: &'a str,
    drain_enabled: bool,
    holder: Option<&'a HolderPool>,
    now: Timestamp,
}

/// One step of draining a node holding `draining`.
async fn progress(
    ctx: &Context,
    s: &NicNodeState,
    node: Option<&Arc<Node>>,
    step: Step<'_>,
) -> Result<(), Error> {
    let Step {
        request,
        prefix,
        drain_enabled,
        holder,
        now,
    } = step;
    let name = s.name_any();
    let mut rv = s.resource_version();
    if !drain_enabled {
        set_grant(ctx, &name, DrainGrant::Drained, json!({}), rv.as_deref()).await?;
        return Ok(());
    }
    let timeout = holder.map_or(DEFAULT_DRAIN_TIMEOUT_SECONDS, |h| h.drain_timeout_seconds);
    let granted_at = match drain_times(s).0 {
        Some(at) => at,
        None => {
            // granted before grant times were recorded: the deadline counts from now
            rv = set_grant(
                ctx,
                &name,
                DrainGrant::Draining,
                json!({ ANNOTATION_DRAIN_GRANTED_AT: now.to_string() }),
                rv.as_deref(),
            )
            .await?;
            Time(now)
        }
    };
    let expired = drain_timed_out(Some(&granted_at), timeout, now);
    let cordoned = node
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let mut ours = node.is_some_and(|n| n.annotations().contains_key(ANNOTATION_CORDONED));
    if node.is_some() && !cordoned {
        cordon(ctx, &name, true).await?;
        ours = true;
    }
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let list = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
        .await
        .map_err(|source| Error::ListPods {
            node: name.clone(),
            source,
        })?;
    let networks: Vec<NicNetwork> = ctx
        .stores
        .networks
        .state()
        .iter()
        .map(|n| (**n).clone())
        .collect();
    let pfs: BTreeSet<String> = s
        .spec
        .interfaces
        .iter()
        .filter_map(|i| i.name.clone())
        .collect();
    let users = NicUsers {
        prefix,
        networks: &networks,
        pfs: &pfs,
    };
    let leaving: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| must_leave_for(p, request, &users))
        .collect();
    if leaving.is_empty() {
        let msg = match request {
            DrainRequest::Reboot => {
                "node drained; the agent may apply the change and reboot".to_owned()
            }
            _ => {
                format!(
                    "no pod uses {prefix}/* resources or a macvlan/ipvlan network on the node's PFs any more; the agent may apply the change"
                )
            }
        };
        rv = set_draining_condition(
            ctx,
            s,
            rv,
            Cond::new(CONDITION_DRAINING, true, "Drained", msg),
        )
        .await?;
        set_grant(ctx, &name, DrainGrant::Drained, json!({}), rv.as_deref()).await?;
        publish(
            ctx,
            EventType::Normal,
            "DrainComplete",
            "drain finished".into(),
            "Drain",
            &s.object_ref(&()),
        )
        .await;
        return Ok(());
    }
    if expired {
        let deadline = Deadline {
            timeout,
            pool: holder.and_then(|h| h.pool.clone()).unwrap_or_default(),
            uncordon: ours,
            now,
        };
        return time_out(ctx, s, rv, &leaving, deadline).await;
    }
    let mut evicting = 0usize;
    let mut terminating = 0usize;
    let mut blocked: Vec<String> = Vec::new();
    let mut failed: Option<Error> = None;
    for pod in &leaving {
        let (ns, pod_name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        if pod.metadata.deletion_timestamp.is_some() {
            terminating += 1;
            continue;
        }
        match evict(ctx, &ns, &pod_name).await {
            Ok(()) => evicting += 1,
            Err(e) if api_code(&e) == Some(429) => blocked.push(format!("{ns}/{pod_name}")),
            Err(e) if api_code(&e) == Some(404) => {}
            Err(source) => {
                failed.get_or_insert(Error::Evict {
                    namespace: ns,
                    pod: pod_name,
                    node: name.clone(),
                    source,
                });
            }
        }
    }
    let mut msg = format!(
        "{} pod(s) must leave ({evicting} evicted now, {terminating} terminating)",
        leaving.len()
    );
    if !blocked.is_empty() {
        msg.push_str(&format!(
            "; blocked by a PodDisruptionBudget: {}",
            blocked.join(", ")
        ));
    }
    set_draining_condition(
        ctx,
        s,
        rv,
        Cond::new(CONDITION_DRAINING, true, "Evicting", msg.clone()),
    )
    .await?;
    if !blocked.is_empty() {
        publish(
            ctx,
            EventType::Warning,
            "EvictionBlocked",
            msg,
            "Evict",
            &s.object_ref(&()),
        )
        .await;
    }
    failed.map_or(Ok(()), Err)
}

/// What [`time_out`] needs besides the node.
struct Deadline {
    timeout: u32,
    /// Pool label of the metric (`""` for the default pool).
    pool: String,
    /// Whether the operator cordoned the node.
    uncordon: bool,
    now: Timestamp,
}

/// The drain ran out of time with `leaving` still on the node: give the slot up. See the module
/// documentation.
async fn time_out(
    ctx: &Context,
    s: &NicNodeState,
    rv: Option<String>,
    leaving: &[&Pod],
    deadline: Deadline,
) -> Result<(), Error> {
    let name = s.name_any();
    let mut why = Vec::new();
    for pod in leaving {
        let (ns, pod_name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let reason = if pod.metadata.deletion_timestamp.is_some() {
            "still terminating".to_owned()
        } else {
            // a dry run tells why without evicting: the drain is over
            match evict_with(ctx, &ns, &pod_name, true).await {
                Ok(()) => "evictable now, but not gone before the deadline".to_owned(),
                Err(e) if api_code(&e) == Some(429) => {
                    "eviction refused by a PodDisruptionBudget (429)".to_owned()
                }
                Err(e) if api_code(&e) == Some(404) => continue,
                Err(e) => format!("eviction fails: {e}"),
            }
        };
        why.push(format!("{ns}/{pod_name}: {reason}"));
    }
    if deadline.uncordon {
        cordon(ctx, &name, false).await?;
    }
    let until = retry_after(deadline.now, deadline.timeout);
    let rv = set_grant(
        ctx,
        &name,
        DrainGrant::None,
        json!({
            ANNOTATION_DRAIN_GRANTED_AT: null,
            ANNOTATION_DRAIN_RETRY_AFTER: until.to_string(),
        }),
        rv.as_deref(),
    )
    .await?;
    ctx.metrics
        .drain_timeouts
        .get_or_create(&PoolLabels {
            pool: deadline.pool,
        })
        .inc();
    let msg = format!(
        "drain did not finish within {}s; gave up{}, the change is not applied; retry after {until}; blocked by {}",
        deadline.timeout,
        if deadline.uncordon {
            " and uncordoned the node"
        } else {
            ""
        },
        if why.is_empty() {
            "no pod any more".to_owned()
        } else {
            why.join(", ")
        }
    );
    tracing::warn!(node = %name, %msg, "drain timed out");
    set_draining_condition(
        ctx,
        s,
        rv,
        Cond::new(CONDITION_DRAINING, false, "DrainTimedOut", msg.clone()),
    )
    .await?;
    publish(
        ctx,
        EventType::Warning,
        "DrainTimedOut",
        msg,
        "Drain",
        &s.object_ref(&()),
    )
    .await;
    Ok(())
}

/// `kubectl drain` uses the same call: POST `pods/<name>/eviction` (policy/v1 Eviction), which
/// honours PodDisruptionBudgets (429 when one forbids it now).
async fn evict(ctx: &Context, namespace: &str, pod: &str) -> Result<(), kube::Error> {
    evict_with(ctx, namespace, pod, false).await
}

/// [`evict`], or with `dry_run` (`?dryRun=All`) only asks whether the eviction would be allowed.
async fn evict_with(
    ctx: &Context,
    namespace: &str,
    pod: &str,
    dry_run: bool,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let mut eviction = Eviction::default();
    eviction.metadata.name = Some(pod.to_owned());
    eviction.metadata.namespace = Some(namespace.to_owned());
    tracing::info!(%namespace, %pod, dry_run, "evicting pod");
    let params = PostParams {
        dry_run,
        ..PostParams::default()
    };
    let _: Value = api
        .create_subresource("eviction", pod, &params, &eviction)
        .await?;
    Ok(())
}

/// `kubectl cordon`/`uncordon`, recording in [`ANNOTATION_CORDONED`] that the operator did it.
async fn cordon(ctx: &Context, node: &str, on: bool) -> Result<(), Error> {
    let body = if on {
        json!({"spec": {"unschedulable": true}, "metadata": {"annotations": {ANNOTATION_CORDONED: "true"}}})
    } else {
        json!({"spec": {"unschedulable": null}, "metadata": {"annotations": {ANNOTATION_CORDONED: null}}})
    };
    tracing::info!(%node, cordon = on, "changing node schedulability");
    let api: Api<Node> = Api::all(ctx.client.clone());
    api.patch(node, &merge_params(), &Patch::Merge(&body))
        .await
        .map_err(|source| {
            if on {
                Error::Cordon {
                    node: node.to_owned(),
                    source,
                }
            } else {
                Error::Uncordon {
                    node: node.to_owned(),
                    source,
                }
            }
        })?;
    Ok(())
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
async fn set_draining_condition(
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

#[cfg(test)]
mod tests {
    use crds::{
        NicNodeStateSpec, k8s::IntOrString, node_state::NicNodeStateStatus, pool::NicPoolSpec,
    };
    use planner::fixtures::labels;

    use super::*;
    use crate::controller::fixtures::{
        Scenario, node, node_state, test_context, test_context_at, timeout_after_1s,
    };

    fn requesting(
        name: &str,
        n: &Node,
        request: DrainRequest,
        at: &str,
        grant: DrainGrant,
    ) -> NicNodeState {
        let mut s = node_state(name, n, NicNodeStateSpec::default());
        s.metadata.annotations = Some(BTreeMap::from([
            (
                ANNOTATION_DRAIN_REQUEST.to_owned(),
                request.as_str().to_owned(),
            ),
            (ANNOTATION_DRAIN_REQUESTED_AT.to_owned(), at.to_owned()),
            (ANNOTATION_DRAIN_GRANT.to_owned(), grant.as_str().to_owned()),
        ]));
        if grant != DrainGrant::None {
            // granted when asked, in these tests
            s.annotations_mut()
                .insert(ANNOTATION_DRAIN_GRANTED_AT.to_owned(), at.to_owned());
        }
        s.status = Some(NicNodeStateStatus {
            conditions: conditions::merge(
                &[],
                &[Cond::new("Synced", false, "WaitingForDrain", "")],
                Some(1),
                Timestamp::now(),
            ),
            ..Default::default()
        });
        s
    }

    fn pool(name: &str, max: IntOrString) -> NicPool {
        let mut p = NicPool::new(
            name,
            NicPoolSpec {
                node_selector: crds::k8s::LabelSelector {
                    match_labels: Some(labels(&[("rack", name)])),
                    ..Default::default()
                },
                max_unavailable: Some(max),
                drain_timeout_seconds: None,
                rdma_mode: None,
            },
        );
        p.metadata.generation = Some(1);
        p
    }

    #[tokio::test]
    async fn pools_sharing_a_node_both_get_valid_false_on_the_injected_clock() {
        let (ctx, mut fakeserver, mut stores) = test_context();
        stores.pool(pool("r1", IntOrString::Int(1)));
        let mut twin = pool("r1", IntOrString::Int(1));
        twin.metadata.name = Some("r1-twin".into());
        stores.pool(twin);
        stores.node(node("n1", &[("rack", "r1")]));
        let mocksrv = tokio::spawn(async move {
            let mut seen_pools = Vec::new();
            for _ in 0..2 {
                let (method, path, seen, send) = fakeserver.next_any().await.expect("a request");
                assert_eq!(method, http::Method::PATCH, "{path}");
                let name = path
                    .strip_prefix("/apis/smartnic.io/v1alpha1/nicpools/")
                    .and_then(|p| p.strip_suffix("/status"))
                    .unwrap_or_else(|| panic!("unexpected call {path}"))
                    .to_owned();
                let conds = seen.body["status"]["conditions"]
                    .as_array()
                    .unwrap()
                    .clone();
                let valid = conds.iter().find(|c| c["type"] == "Valid").unwrap();
                assert_eq!(valid["status"], "False", "{name}");
                let msg = valid["message"].as_str().unwrap();
                assert!(
                    msg.contains("n1") && msg.contains("one pool only"),
                    "{name}: {msg}"
                );
                assert_eq!(
                    valid["lastTransitionTime"],
                    serde_json::to_value(Time(crate::controller::fixtures::test_now())).unwrap()
                );
                // a node in two pools counts in neither: it is never granted a drain
                assert_eq!(seen.body["status"]["nodes"], 0);
                let spec = json!({"nodeSelector": {}});
                crate::controller::fixtures::reply(
                    send,
                    200,
                    crate::controller::fixtures::with_rv(
                        crate::controller::fixtures::with_spec(seen.body, spec),
                        "3",
                    ),
                );
                seen_pools.push(name);
            }
            seen_pools.sort();
            assert_eq!(seen_pools, ["r1", "r1-twin"]);
        });
        reconcile(ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn pool_with_max_unavailable_2_grants_exactly_the_two_oldest_of_5_requests() {
        let (ctx, fakeserver, mut stores) = test_context();
        stores.pool(pool("r1", IntOrString::Int(2)));
        // request times deliberately not in name order: n4 and n2 asked first
        let times = [
            ("n1", "2026-11-26T10:00:05Z"),
            ("n2", "2026-11-26T10:00:02Z"),
            ("n3", "2026-11-26T10:00:04Z"),
            ("n4", "2026-11-26T10:00:01Z"),
            ("n5", "2026-11-26T10:00:03Z"),
        ];
        for (name, at) in times {
            let n = node(name, &[("rack", "r1")]);
            stores.node(n.clone());
            stores.node_state(requesting(
                name,
                &n,
                DrainRequest::EvictVfPods,
                at,
                DrainGrant::None,
            ));
        }
        let mocksrv = fakeserver.run(Scenario::DrainGrants {
            grants: vec![("n4".into(), "rv-n4".into()), ("n2".into(), "rv-n2".into())],
            pool: "r1".into(),
            nodes: 5,
            draining: 2,
            max_unavailable: 2,
        });
        let next = reconcile(ctx.clone()).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
        assert_eq!(next, WHILE_DRAINING);
        assert!(
            ctx.metrics
                .render()
                .contains("smartnic_operator_drains_granted{pool=\"r1\"} 2")
        );
    }

    #[tokio::test]
    async fn percentage_counts_every_node_of_the_pool_not_only_those_with_a_node_state() {
        let (ctx, fakeserver, mut stores) = test_context();
        stores.pool(pool("r2", IntOrString::String("50%".into())));
        for (name, at) in [
            ("a", "2026-11-26T10:00:03Z"),
            ("b", "2026-11-26T10:00:01Z"),
            ("c", "2026-11-26T10:00:02Z"),
        ] {
            let n = node(name, &[("rack", "r2")]);
            stores.node(n.clone());
            stores.node_state(requesting(
                name,
                &n,
                DrainRequest::EvictVfPods,
                at,
                DrainGrant::None,
            ));
        }
        // a fourth node of the pool without any node state: 50% of 4 is 2, not 50% of 3
        stores.node(node("d", &[("rack", "r2")]));
        let mocksrv = fakeserver.run(Scenario::DrainGrants {
            grants: vec![("b".into(), "rv-b".into()), ("c".into(), "rv-c".into())],
            pool: "r2".into(),
            nodes: 4,
            draining: 2,
            max_unavailable: 2,
        });
        reconcile(ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    fn pod(ns: &str, name: &str, resource: Option<&str>, owner_kind: Option<&str>) -> Value {
        let mut p = json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running"}
        });
        if let Some(r) = resource {
            p["spec"]["containers"][0]["resources"] =
                json!({"requests": {r: "1"}, "limits": {r: "1"}});
        }
        if let Some(k) = owner_kind {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": k, "name": "o", "uid": "u", "controller": true}]);
        }
        p
    }

    #[tokio::test]
    async fn draining_node_is_cordoned_and_only_vf_pods_are_evicted_with_pdb_429_reported() {
        let (ctx, fakeserver, mut stores) = test_context();
        let n1 = node("n1", &[]);
        stores.node(n1.clone());
        stores.node_state(requesting(
            "n1",
            &n1,
            DrainRequest::EvictVfPods,
            "2026-11-26T10:00:00Z",
            DrainGrant::Draining,
        ));
        let pods = vec![
            pod(
                "app",
                "dpdk-0",
                Some("smartnic.io/cx6_vf"),
                Some("ReplicaSet"),
            ),
            pod("app", "web-0", None, Some("ReplicaSet")),
            pod(
                "app",
                "dpdk-1",
                Some("smartnic.io/cx6_vf"),
                Some("StatefulSet"),
            ),
            pod(
                "kube-system",
                "ds-vf",
                Some("smartnic.io/cx6_vf"),
                Some("DaemonSet"),
            ),
            pod("app", "other-vendor", Some("intel.com/sriov"), None),
        ];
        let mocksrv = fakeserver.run(Scenario::DrainEvict {
            node: "n1".into(),
            pods,
            evictions: vec![
                ("app".into(), "dpdk-0".into(), 201),
                ("app".into(), "dpdk-1".into(), 429),
            ],
            reason: "Evicting".into(),
            pool: None,
        });
        let next = reconcile(ctx.clone())
            .await
            .expect("a PDB refusal is not an error");
        timeout_after_1s(mocksrv).await;
        assert_eq!(next, WHILE_DRAINING, "retry the blocked eviction soon");
    }

    #[tokio::test]
    async fn finished_agent_gets_node_uncordoned_and_slot_released() {
        let (ctx, fakeserver, mut stores) = test_context();
        let mut n1 = node("n1", &[]);
        n1.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION_CORDONED.to_owned(),
            "true".to_owned(),
        )]));
        n1.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            unschedulable: Some(true),
            ..Default::default()
        });
        stores.node(n1.clone());
        stores.node_state(requesting(
            "n1",
            &n1,
            DrainRequest::None,
            "2026-11-26T10:00:00Z",
            DrainGrant::Drained,
        ));
        let mocksrv = fakeserver.run(Scenario::DrainRelease { node: "n1".into() });
        let next = reconcile(ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
        assert_eq!(next, IDLE);
    }

    #[tokio::test]
    async fn conflict_on_a_grant_is_an_error_retried_after_one_second() {
        let (ctx, fakeserver, mut stores) = test_context();
        let n = node("n1", &[]);
        stores.node(n.clone());
        stores.node_state(requesting(
            "n1",
            &n,
            DrainRequest::Reboot,
            "2026-11-26T10:00:00Z",
            DrainGrant::None,
        ));
        let mocksrv = fakeserver.run(Scenario::ServerError {
            method: http::Method::PATCH,
            path: "/apis/smartnic.io/v1alpha1/nicnodestates/n1".into(),
            code: 409,
        });
        let err = reconcile(ctx.clone()).await.expect_err("conflict");
        timeout_after_1s(mocksrv).await;
        assert_eq!(err.metric_label(), "grant");
        assert_eq!(ReconcileError::retry_base(&err), Duration::from_secs(1));
    }

    /// Pool `r1` of one node at a time with this drain timeout.
    fn pool_with_timeout(seconds: u32) -> NicPool {
        let mut p = pool("r1", IntOrString::Int(1));
        p.spec.drain_timeout_seconds = Some(seconds);
        p
    }

    fn cordoned_by_operator(name: &str) -> Node {
        let mut n = node(name, &[("rack", "r1")]);
        n.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION_CORDONED.to_owned(),
            "true".to_owned(),
        )]));
        n.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            unschedulable: Some(true),
            ..Default::default()
        });
        n
    }

    #[tokio::test]
    async fn drain_past_its_deadline_uncordons_frees_the_slot_and_names_the_blocking_pods() {
        // the test clock is 10:05:00; granted at 10:00:00 with a 300 s timeout: just expired
        let (ctx, fakeserver, mut stores) = test_context();
        stores.pool(pool_with_timeout(300));
        let n1 = cordoned_by_operator("n1");
        stores.node(n1.clone());
        stores.node_state(requesting(
            "n1",
            &n1,
            DrainRequest::EvictVfPods,
            "2026-11-26T10:00:00Z",
            DrainGrant::Draining,
        ));
        let mut leaving = pod("app", "dpdk-1", Some("smartnic.io/cx6_vf"), None);
        leaving["metadata"]["deletionTimestamp"] = json!("2026-11-26T10:04:00Z");
        let pods = vec![
            pod(
                "app",
                "dpdk-0",
                Some("smartnic.io/cx6_vf"),
                Some("ReplicaSet"),
            ),
            leaving,
            pod("app", "web-0", None, Some("ReplicaSet")),
        ];
        let mocksrv = fakeserver.run(Scenario::DrainTimeout {
            node: "n1".into(),
            pods,
            dry_runs: vec![("app".into(), "dpdk-0".into(), 429)],
            uncordon: true,
            retry_after: "2026-11-26T10:10:00Z".into(),
            blocked: vec![
                "app/dpdk-0: eviction refused by a PodDisruptionBudget (429)".into(),
                "app/dpdk-1: still terminating".into(),
                "within 300s".into(),
            ],
            pool: Some(("r1".into(), 1, 1, 1)),
        });
        let next = reconcile(ctx.clone()).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
        assert_eq!(next, WHILE_DRAINING);
        assert!(
            ctx.metrics
                .render()
                .contains("smartnic_operator_drain_timeouts_total{pool=\"r1\"} 1")
        );
    }

    /// n1 (asked first) timed out and may retry at 10:10:00; n2 waits behind it.
    fn after_timeout(stores: &mut crate::controller::fixtures::TestStores) {
        stores.pool(pool("r1", IntOrString::Int(1)));
        let n1 = node("n1", &[("rack", "r1")]);
        let mut s1 = requesting(
            "n1",
            &n1,
            DrainRequest::EvictVfPods,
            "2026-11-26T09:00:00Z",
            DrainGrant::None,
        );
        s1.annotations_mut().insert(
            ANNOTATION_DRAIN_RETRY_AFTER.to_owned(),
            "2026-11-26T10:10:00Z".to_owned(),
        );
        let n2 = node("n2", &[("rack", "r1")]);
        stores.node(n1);
        stores.node(n2.clone());
        stores.node_state(s1);
        stores.node_state(requesting(
            "n2",
            &n2,
            DrainRequest::EvictVfPods,
            "2026-11-26T09:30:00Z",
            DrainGrant::None,
        ));
    }

    #[tokio::test]
    async fn after_a_timeout_the_next_waiting_node_gets_the_slot() {
        let (ctx, fakeserver, mut stores) = test_context();
        after_timeout(&mut stores);
        let mocksrv = fakeserver.run(Scenario::DrainGrants {
            grants: vec![("n2".into(), "rv-n2".into())],
            pool: "r1".into(),
            nodes: 2,
            draining: 1,
            max_unavailable: 1,
        });
        reconcile(ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn once_retry_after_has_passed_the_timed_out_node_is_granted_again() {
        fn at_retry_time() -> Timestamp {
            Timestamp::constant(1_795_687_800, 0) // 2026-11-26T10:10:00Z
        }
        let (ctx, fakeserver, mut stores) = test_context_at(at_retry_time);
        after_timeout(&mut stores);
        let mocksrv = fakeserver.run(Scenario::DrainGrants {
            grants: vec![("n1".into(), "rv-n1".into())],
            pool: "r1".into(),
            nodes: 2,
            draining: 1,
            max_unavailable: 1,
        });
        reconcile(ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn a_deferred_node_alone_brings_the_next_pass_forward_to_its_retry_time() {
        let (ctx, fakeserver, mut stores) = test_context();
        stores.pool(pool("r1", IntOrString::Int(1)));
        let n1 = node("n1", &[("rack", "r1")]);
        let mut s1 = requesting(
            "n1",
            &n1,
            DrainRequest::EvictVfPods,
            "2026-11-26T09:00:00Z",
            DrainGrant::None,
        );
        s1.annotations_mut().insert(
            ANNOTATION_DRAIN_RETRY_AFTER.to_owned(),
            "2026-11-26T10:05:30Z".to_owned(),
        );
        stores.node(n1);
        stores.node_state(s1);
        let mocksrv = fakeserver.run(Scenario::DrainGrants {
            grants: vec![],
            pool: "r1".into(),
            nodes: 1,
            draining: 0,
            max_unavailable: 1,
        });
        let next = reconcile(ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
        assert_eq!(next, Duration::from_secs(30));
    }

    #[tokio::test]
    async fn drain_timeout_zero_keeps_evicting_forever() {
        let (ctx, fakeserver, mut stores) = test_context();
        stores.pool(pool_with_timeout(0));
        let n1 = node("n1", &[("rack", "r1")]);
        stores.node(n1.clone());
        stores.node_state(requesting(
            "n1",
            &n1,
            DrainRequest::EvictVfPods,
            "2026-01-01T00:00:00Z",
            DrainGrant::Draining,
        ));
        let mocksrv = fakeserver.run(Scenario::DrainEvict {
            node: "n1".into(),
            pods: vec![pod("app", "dpdk-0", Some("smartnic.io/cx6_vf"), None)],
            evictions: vec![("app".into(), "dpdk-0".into(), 429)],
            reason: "Evicting".into(),
            pool: Some(("r1".into(), 1, 1, 1)),
        });
        let next = reconcile(ctx.clone()).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
        assert_eq!(next, WHILE_DRAINING);
        assert!(!ctx.metrics.render().contains("drain_timeouts_total{"));
    }

    #[tokio::test]
    async fn a_drained_node_is_never_timed_out() {
        let (ctx, fakeserver, mut stores) = test_context();
        stores.pool(pool_with_timeout(60));
        let n1 = cordoned_by_operator("n1");
        stores.node(n1.clone());
        stores.node_state(requesting(
            "n1",
            &n1,
            DrainRequest::Reboot,
            "2026-01-01T00:00:00Z",
            DrainGrant::Drained,
        ));
        let mocksrv = fakeserver.run(Scenario::DrainGrants {
            grants: vec![],
            pool: "r1".into(),
            nodes: 1,
            draining: 1,
            max_unavailable: 1,
        });
        let next = reconcile(ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
        assert_eq!(next, WHILE_DRAINING, "the agent is applying");
    }

    #[test]
    fn reboot_drains_everything_but_daemonsets_mirrors_and_finished_pods() {
        let p = |v: Value| serde_json::from_value::<Pod>(v).unwrap();
        let mut done = pod("a", "done", None, None);
        done["status"]["phase"] = json!("Succeeded");
        let mut mirror = pod("kube-system", "etcd", None, None);
        mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
        assert!(must_leave(
            &p(pod("a", "web", None, Some("ReplicaSet"))),
            DrainRequest::Reboot,
            "smartnic.io"
        ));
        assert!(!must_leave(
            &p(pod("a", "ds", None, Some("DaemonSet"))),
            DrainRequest::Reboot,
            "smartnic.io"
        ));
        assert!(!must_leave(&p(done), DrainRequest::Reboot, "smartnic.io"));
        assert!(!must_leave(&p(mirror), DrainRequest::Reboot, "smartnic.io"));
        assert!(!must_leave(
            &p(pod("a", "web", None, None)),
            DrainRequest::EvictVfPods,
            "smartnic.io"
        ));
        assert!(must_leave(
            &p(pod("a", "vf", Some("smartnic.io/x"), None)),
            DrainRequest::EvictVfPods,
            "smartnic.io"
        ));
        assert!(!must_leave(
            &p(pod("a", "vf", Some("smartnic.io/x"), None)),
            DrainRequest::None,
            "smartnic.io"
        ));
    }

    #[test]
    fn evict_vf_pods_takes_pods_on_a_macvlan_of_a_configured_pf() {
        let p = |v: Value| serde_json::from_value::<Pod>(v).unwrap();
        let mut mv = NicNetwork::new(
            "mv",
            crds::NicNetworkSpec {
                mode: crds::link::NetworkMode::Macvlan,
                master: Some("ens1f0".into()),
                ..Default::default()
            },
        );
        mv.metadata.namespace = Some("a".into());
        let networks = [mv];
        let pfs: BTreeSet<String> = ["ens1f0".to_owned()].into();
        let users = NicUsers {
            prefix: "smartnic.io",
            networks: &networks,
            pfs: &pfs,
        };
        let on = |owner: Option<&str>| {
            let mut v = pod("a", "web", None, owner);
            v["metadata"]["annotations"] = json!({"k8s.v1.cni.cncf.io/networks": "mv@net1"});
            p(v)
        };
        assert!(must_leave_for(&on(None), DrainRequest::EvictVfPods, &users));
        assert!(!must_leave(
            &on(None),
            DrainRequest::EvictVfPods,
            "smartnic.io"
        ));
        assert!(!must_leave_for(
            &on(Some("DaemonSet")),
            DrainRequest::EvictVfPods,
            &users
        ));
        assert!(!must_leave_for(&on(None), DrainRequest::None, &users));
        let other_pf: BTreeSet<String> = ["ens2f0".to_owned()].into();
        let elsewhere = NicUsers {
            pfs: &other_pf,
            ..users
        };
        assert!(!must_leave_for(
            &on(None),
            DrainRequest::EvictVfPods,
            &elsewhere
        ));
        assert!(must_leave_for(
            &p(pod("a", "vf", Some("smartnic.io/x"), None)),
            DrainRequest::EvictVfPods,
            &elsewhere
        ));
    }
}
