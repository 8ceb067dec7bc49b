//! Cluster-wide status: `NicPolicy.status`, the `NicOperatorConfig` `Valid` condition and the
//! release of orphaned node states. One reconcile after any policy, node, node-state or
//! configuration change (debounced), and every five minutes.
//!
//! - **Policy status.** Each node is planned with the compiled policies (the same
//!   [`planner::PolicySet`] the node-state controller uses) and its selections and rejections
//!   are kept per node ([`Memo`]); a pass plans again only the nodes that changed (labels, the
//!   planning facts of their inventory, the nodes a changed policy selects; every node at start,
//!   after a configuration change and every five minutes), off the async runtime. The tallies are
//!   grouped by policy: `selectedNodes`, `rejectedNodes`, the first 20 rejections (node, PF,
//!   `field: reason`), `Valid` (the single-object checks the webhook also runs, so a cluster
//!   without the webhook still shows bad input) and `Applied`. Also the `policy_rejections`
//!   gauge.
//! - **Orphaned node states.** A `NicNodeState` is garbage-collected with its Node (owner
//!   reference), but its `smartnic.io/pf-reset` finalizer belongs to the agent of that node,
//!   which is gone with it. Once such an object is being deleted and its Node no longer exists,
//!   the operator removes the finalizer (there is no host left to reset).
//! - **DeviceClasses** of the pools offered by DRA ([`super::device_classes`]).
//!
//! The device-plugin configuration is not written here: it is per node, in each
//! `NicNodeState.spec.devicePlugin`, written by the node-state controller
//! ([`super::node_state`]).
//!
//! Every write is skipped when the cached object already says the same thing.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use crds::{
    CONDITION_APPLIED, CONDITION_VALID, FINALIZER_NODE_STATE, NicNodeState, NicOperatorConfig,
    NicPolicy,
    operator_config::NicOperatorConfigStatus,
    policy::{NicPolicyStatus, PolicyRejectionStatus},
};
use kube::{Api, ResourceExt, api::Patch, runtime::reflector::ObjectRef};
use serde_json::json;

use super::{
    ReconcileError, apply_params, is_conflict, merge_params,
    tally::{Dirty, NodeOutcome, PolicyCounts, Tallies},
    triggers::Change,
};
use planner::conditions::{self, Cond};
use planner::validate::{to_message, validate_operator_config};

use crate::{context::Context, metrics::PolicyLabels};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "status";

/// Pass interval without changes.
pub const RESYNC: Duration = Duration::from_secs(300);

/// At most this many rejections are listed in a policy's status.
pub const MAX_LISTED_REJECTIONS: usize = 20;

/// Why a status pass failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a policy's status failed.
    #[error("cannot apply status of NicPolicy {policy}: {source}")]
    PolicyStatus {
        /// Policy name.
        policy: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Removing the finalizer of a node state whose Node is gone failed.
    #[error(
        "cannot remove finalizer {FINALIZER_NODE_STATE} from NicNodeState {node} (its Node is gone): {source}"
    )]
    ReleaseOrphan {
        /// Node name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Setting a node DaemonSet's nodeSelector failed.
    #[error(transparent)]
    Placement(#[from] super::placement::Error),
    /// Applying or deleting a DeviceClass failed.
    #[error(transparent)]
    DeviceClass(#[from] super::device_classes::Error),
    /// Writing the operator configuration's status failed.
    #[error("cannot apply status of NicOperatorConfig {name}: {source}")]
    ConfigStatus {
        /// Object name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Short label naming the failed call.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::PolicyStatus { .. } => "policystatus",
            Self::ConfigStatus { .. } => "configstatus",
            Self::ReleaseOrphan { .. } => "releaseorphan",
            Self::Placement(_) => "placement",
            Self::DeviceClass(_) => "deviceclass",
        }
    }
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        Error::metric_label(self)
    }

    fn retry_base(&self) -> Duration {
        match self {
            Self::PolicyStatus { source, .. }
            | Self::ConfigStatus { source, .. }
            | Self::ReleaseOrphan { source, .. }
                if is_conflict(source) =>
            {
                Duration::from_secs(1)
            }
            _ => Duration::from_secs(5),
        }
    }
}

/// Whether a change can affect what this controller writes; records which nodes it makes
/// stale.
pub fn relevant(ctx: &Context, c: &Change) -> bool {
    ctx.status_memo.note(c)
}

/// What the status controller keeps between passes: each node's contribution to the policy
/// status ([`Tallies`]) and the nodes that changed since the last pass ([`Dirty`]). A pass plans
/// only the stale nodes: one agent's inventory change costs one node's plan, not the cluster's.
#[derive(Debug, Default)]
pub struct Memo {
    dirty: Mutex<Dirty>,
    tallies: Mutex<Tallies>,
}

impl Memo {
    /// Records what `change` makes stale; whether the policy status may change because of it.
    pub fn note(&self, change: &Change) -> bool {
        lock(&self.dirty).note(change)
    }

    /// Plans the stale nodes (every node after a resync) and updates their tallies. Returns the
    /// nodes planned, `None` for all of them. CPU-bound: run it off the async runtime.
    pub fn refresh(&self, ctx: &Context) -> Option<HashSet<String>> {
        let dirty = std::mem::replace(&mut *lock(&self.dirty), Dirty::clean());
        let all = dirty.all;
        let set = ctx.policy_set();
        let config = ctx.stores.operator_config();
        let mut tallies = lock(&self.tallies);
        let names: HashSet<String> = if dirty.all {
            ctx.stores
                .nodes
                .state()
                .iter()
                .map(|n| n.name_any())
                .chain(tallies.nodes().map(str::to_owned))
                .collect()
        } else {
            let mut names = dirty.nodes;
            let selectors: Vec<_> = dirty.policies.iter().flat_map(|p| p.compiled()).collect();
            if !selectors.is_empty() {
                for n in ctx.stores.nodes.state() {
                    if selectors.iter().any(|s| s.matches(n.labels())) {
                        names.insert(n.name_any());
                    }
                }
            }
            names
        };
        for name in &names {
            let outcome = ctx.stores.nodes.get(&ObjectRef::new(name)).map(|node| {
                let state = ctx.stores.node_states.get(&ObjectRef::new(name));
                let nics = state
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .map(|s| s.nics.as_slice())
                    .unwrap_or_default();
                let mut plan = set.plan_nics(node.labels(), nics);
                if !planner::agent_runs_on(config.as_ref().map(|c| &c.spec), node.labels()) {
                    plan = planner::outside_agent_nodes(plan);
                }
                NodeOutcome::of(plan)
            });
            tallies.set(name, outcome);
        }
        (!all).then_some(names)
    }

    fn counts(&self, policy: &str) -> PolicyCounts {
        lock(&self.tallies).policy(policy, MAX_LISTED_REJECTIONS)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One status pass. Returns the delay until the next pass.
#[tracing::instrument(skip_all)]
pub async fn reconcile(ctx: Arc<Context>) -> Result<Duration, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let c = ctx.clone();
    let Some(planned) = super::off_runtime(move || c.status_memo.refresh(&c)).await else {
        return Ok(RESYNC);
    };
    tracing::debug!(
        planned = planned
            .as_ref()
            .map_or("all".to_owned(), |p| p.len().to_string()),
        "policy tallies refreshed"
    );
    let mut first_error = None;
    if let Err(e) = policy_statuses(&ctx).await {
        first_error.get_or_insert(e);
    }
    if let Err(e) = config_status(&ctx).await {
        first_error.get_or_insert(e);
    }
    if let Err(e) = super::placement::place(&ctx).await {
        first_error.get_or_insert(e.into());
    }
    if let Err(e) = super::device_classes::reconcile(&ctx).await {
        first_error.get_or_insert(e.into());
    }
    if let Err(e) = release_orphans(&ctx, planned.as_ref()).await {
        first_error.get_or_insert(e);
    }
    first_error.map_or(Ok(RESYNC), Err)
}

async fn policy_statuses(ctx: &Context) -> Result<(), Error> {
    let set = ctx.policy_set();
    let mut first_error = None;
    for policy in ctx.stores.policies.state() {
        let name = policy.name_any();
        let t = ctx.status_memo.counts(&name);
        let invalid = set.invalid().iter().find(|i| i.name == name);
        let rejected = t.rejected;
        ctx.metrics
            .policy_rejections
            .get_or_create(&PolicyLabels {
                policy: name.clone(),
            })
            .set(i64::from(rejected));
        let conds = match invalid {
            Some(i) => vec![
                Cond::new(CONDITION_VALID, false, "InvalidSpec", to_message(&i.errors)),
                Cond::new(
                    CONDITION_APPLIED,
                    false,
                    "InvalidSpec",
                    "an invalid policy is applied nowhere",
                ),
            ],
            None if rejected == 0 => vec![
                Cond::new(CONDITION_VALID, true, "Valid", "spec passed validation"),
                Cond::new(
                    CONDITION_APPLIED,
                    true,
                    "Applied",
                    format!("planned on {} selected node(s)", t.selected),
                ),
            ],
            None => {
                let first = t.first.first();
                vec![
                    Cond::new(CONDITION_VALID, true, "Valid", "spec passed validation"),
                    Cond::new(
                        CONDITION_APPLIED,
                        false,
                        "RejectedOnSomeNodes",
                        format!(
                            "rejected on {rejected} of {} node(s); first: node {}{}: {}",
                            t.selected,
                            first.map(|r| r.node.as_str()).unwrap_or_default(),
                            first
                                .and_then(|r| r.pf.as_deref())
                                .map(|pf| format!(" PF {pf}"))
                                .unwrap_or_default(),
                            first.map(|r| r.reason.as_str()).unwrap_or_default()
                        ),
                    ),
                ]
            }
        };
        if let Err(e) =
            write_policy_status(ctx, &policy, &conds, t.selected, rejected, t.first).await
        {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn write_policy_status(
    ctx: &Context,
    policy: &NicPolicy,
    conds: &[Cond],
    selected: u32,
    rejected: u32,
    rejections: Vec<PolicyRejectionStatus>,
) -> Result<(), Error> {
    let generation = policy.metadata.generation;
    let current = policy.status.clone().unwrap_or_default();
    if conditions::up_to_date(&current.conditions, conds, generation)
        && current.selected_nodes == selected
        && current.rejected_nodes == rejected
        && current.rejections == rejections
    {
        return Ok(());
    }
    let status = NicPolicyStatus {
        conditions: conditions::merge(&current.conditions, conds, generation, (ctx.now)()),
        selected_nodes: selected,
        rejected_nodes: rejected,
        rejections,
    };
    let name = policy.name_any();
    let body = json!({"apiVersion": crds::API_VERSION, "kind": "NicPolicy", "metadata": {"name": name}, "status": status});
    let api: Api<NicPolicy> = Api::all(ctx.client.clone());
    api.patch_status(&name, &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(|source| Error::PolicyStatus {
            policy: name.clone(),
            source,
        })?;
    Ok(())
}

async fn config_status(ctx: &Context) -> Result<(), Error> {
    let mut first_error = None;
    for cfg in ctx.stores.configs.state() {
        let name = cfg.name_any();
        let cond = match validate_operator_config(&name, &cfg.spec) {
            Ok(()) => Cond::new(CONDITION_VALID, true, "Valid", "spec passed validation"),
            Err(errors) => Cond::new(CONDITION_VALID, false, "InvalidSpec", to_message(&errors)),
        };
        let generation = cfg.metadata.generation;
        let current = cfg.status.clone().unwrap_or_default();
        if conditions::up_to_date(&current.conditions, std::slice::from_ref(&cond), generation) {
            continue;
        }
        let status = NicOperatorConfigStatus {
            conditions: conditions::merge(&current.conditions, &[cond], generation, (ctx.now)()),
        };
        let body = json!({"apiVersion": crds::API_VERSION, "kind": "NicOperatorConfig", "metadata": {"name": name}, "status": status});
        let api: Api<NicOperatorConfig> = Api::all(ctx.client.clone());
        if let Err(source) = api
            .patch_status(&name, &apply_params(), &Patch::Apply(&body))
            .await
        {
            first_error.get_or_insert(Error::ConfigStatus { name, source });
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Releases the node states of deleted Nodes among `nodes` (every node state when `None`): a
/// node becomes an orphan only through a change to its Node or node state, which marks it stale.
async fn release_orphans(ctx: &Context, nodes: Option<&HashSet<String>>) -> Result<(), Error> {
    let mut first_error = None;
    let states = match nodes {
        None => ctx.stores.node_states.state(),
        Some(names) => names
            .iter()
            .filter_map(|n| ctx.stores.node_states.get(&ObjectRef::new(n)))
            .collect(),
    };
    for s in states {
        let name = s.name_any();
        if s.metadata.deletion_timestamp.is_none()
            || !s.finalizers().iter().any(|f| f == FINALIZER_NODE_STATE)
            || ctx.stores.nodes.get(&ObjectRef::new(&name)).is_some()
        {
            continue;
        }
        tracing::info!(node = %name, "Node is gone; removing the agent's finalizer from its NicNodeState");
        let remaining: Vec<&String> = s
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER_NODE_STATE)
            .collect();
        let body =
            json!({"metadata": {"finalizers": remaining, "resourceVersion": s.resource_version()}});
        let api: Api<NicNodeState> = Api::all(ctx.client.clone());
        if let Err(source) = api
            .patch(&name, &merge_params(), &Patch::Merge(&body))
            .await
        {
            first_error.get_or_insert(Error::ReleaseOrphan { node: name, source });
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use crds::{
        NicNodeStateSpec, k8s::jiff::Timestamp, node_state::NicNodeStateStatus,
        operator_config::NicOperatorConfigSpec,
    };
    use planner::fixtures::{cx6, policy};

    use super::*;
    use crate::controller::fixtures::{
        Scenario, node, node_state, reply, test_context, test_now, timeout_after_1s, with_rv,
        with_spec,
    };

    /// `lastTransitionTime` as the injected clock writes it.
    fn clock() -> serde_json::Value {
        serde_json::to_value(crds::k8s::Time(test_now())).unwrap()
    }

    #[tokio::test]
    async fn policy_rejected_on_some_nodes_lists_the_first_20_sorted_with_the_total() {
        let (ctx, mut fakeserver, mut stores) = test_context();
        let mut p = policy("p1", 10, &["ens1f0"]);
        p.metadata.generation = Some(2);
        stores.policy(p);
        // 25 nodes whose PF offers 4 VFs (the policy wants 8), one that fits
        for i in (0..25).rev() {
            let name = format!("n{i:02}");
            let mut nic = cx6("0000:3b:00.0", "ens1f0");
            nic.total_vfs = 4;
            add_node(&mut stores, &name, nic);
        }
        add_node(&mut stores, "ok", cx6("0000:3b:00.0", "ens1f0"));
        let mocksrv = tokio::spawn(async move {
            let (seen, send) = fakeserver
                .expect_apply("/apis/smartnic.io/v1alpha1/nicpolicies/p1/status")
                .await;
            let st = &seen.body["status"];
            assert_eq!(st["selectedNodes"], 26);
            assert_eq!(st["rejectedNodes"], 25);
            let listed = st["rejections"].as_array().expect("rejections");
            assert_eq!(listed.len(), MAX_LISTED_REJECTIONS);
            let nodes: Vec<&str> = listed.iter().map(|r| r["node"].as_str().unwrap()).collect();
            let want: Vec<String> = (0..20).map(|i| format!("n{i:02}")).collect();
            assert_eq!(nodes, want, "sorted by node, the first 20");
            assert_eq!(listed[0]["pf"], "0000:3b:00.0");
            let conds = st["conditions"].as_array().expect("conditions");
            let applied = conds.iter().find(|c| c["type"] == "Applied").unwrap();
            assert_eq!(applied["status"], "False");
            assert_eq!(applied["reason"], "RejectedOnSomeNodes");
            let msg = applied["message"].as_str().unwrap();
            assert!(
                msg.starts_with(
                    "rejected on 25 of 26 node(s); first: node n00 PF 0000:3b:00.0: spec.numVfs"
                ),
                "{msg}"
            );
            assert_eq!(applied["observedGeneration"], 2);
            assert_eq!(applied["lastTransitionTime"], clock(), "the injected clock");
            let valid = conds.iter().find(|c| c["type"] == "Valid").unwrap();
            assert_eq!(valid["status"], "True");
            let spec =
                json!({"nodeSelector": {}, "nicSelector": {}, "numVfs": 8, "resourceName": "x"});
            reply(send, 200, with_rv(with_spec(seen.body, spec), "9"));
        });
        reconcile(ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    fn add_node(
        stores: &mut crate::controller::fixtures::TestStores,
        name: &str,
        nic: crds::inventory::Nic,
    ) {
        let n = node(name, &[("gpu", "true")]);
        let mut s = node_state(name, &n, NicNodeStateSpec::default());
        s.status = Some(NicNodeStateStatus {
            nics: vec![nic],
            ..Default::default()
        });
        stores.node(n);
        stores.node_state(s);
    }

    #[tokio::test]
    async fn operator_config_gets_its_valid_condition_on_the_injected_clock() {
        let (ctx, mut fakeserver, mut stores) = test_context();
        let mut cfg = NicOperatorConfig::new("mine", NicOperatorConfigSpec::default());
        cfg.metadata.generation = Some(4);
        stores.config(cfg);
        let mocksrv = tokio::spawn(async move {
            let (seen, send) = fakeserver
                .expect_apply("/apis/smartnic.io/v1alpha1/nicoperatorconfigs/mine/status")
                .await;
            let conds = seen.body["status"]["conditions"]
                .as_array()
                .unwrap()
                .clone();
            assert_eq!(conds.len(), 1);
            assert_eq!(conds[0]["type"], "Valid");
            assert_eq!(conds[0]["status"], "False");
            assert_eq!(conds[0]["reason"], "InvalidSpec");
            assert!(
                conds[0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("metadata.name")
            );
            assert_eq!(conds[0]["observedGeneration"], 4);
            assert_eq!(conds[0]["lastTransitionTime"], clock());
            reply(send, 200, with_rv(with_spec(seen.body, json!({})), "2"));
        });
        reconcile(ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn invalid_policy_gets_valid_false_naming_the_field_without_a_webhook() {
        let (ctx, fakeserver, mut stores) = test_context();
        let mut p = policy("p0", 10, &["ens1f0"]);
        p.spec.num_vfs = 0;
        p.metadata.generation = Some(3);
        stores.policy(p);
        let mocksrv = fakeserver.run(Scenario::PolicyInvalidStatus {
            policy: "p0".into(),
            field: "spec.numVfs".into(),
        });
        let next = reconcile(ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
        assert_eq!(next, RESYNC);
    }

    #[tokio::test]
    async fn node_state_of_a_deleted_node_gets_the_agent_finalizer_removed() {
        let (ctx, fakeserver, mut stores) = test_context();
        let mut gone = node_state("n7", &node("n7", &[]), NicNodeStateSpec::default());
        gone.metadata.finalizers =
            Some(vec![FINALIZER_NODE_STATE.into(), "example.com/keep".into()]);
        gone.metadata.deletion_timestamp = Some(crds::k8s::Time(Timestamp::now()));
        stores.node_state(gone.clone());
        // a node state being deleted whose Node still exists is left to its agent
        let mut alive = node_state("n8", &node("n8", &[]), NicNodeStateSpec::default());
        alive.metadata.finalizers = Some(vec![FINALIZER_NODE_STATE.into()]);
        alive.metadata.deletion_timestamp = Some(crds::k8s::Time(Timestamp::now()));
        stores.node_state(alive);
        stores.node(node("n8", &[]));
        let mocksrv = fakeserver.run(Scenario::OrphanFinalizer {
            node: "n7".into(),
            keep: vec!["example.com/keep".into()],
        });
        reconcile(ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }
}
