//! Cluster-wide status: `NicPolicy.status`, the `NicOperatorConfig` `Valid` condition and the
//! release of orphaned node states. One reconcile after any policy, node, node-state or
//! configuration change (debounced), and every five minutes.
//!
//! - **Policy status.** Every node is planned once with the compiled policies (the same
//!   [`planner::PolicySet`] the node-state controller uses), and the rejections are
//!   grouped by policy: `selectedNodes`, `rejectedNodes`, the first 20 rejections (node, PF,
//!   `field: reason`), `Valid` (the single-object checks the webhook also runs, so a cluster
//!   without the webhook still shows bad input) and `Applied`. Also the `policy_rejections`
//!   gauge.
//! - **Orphaned node states.** A `NicNodeState` is garbage-collected with its Node (owner
//!   reference), but its `smartnic.io/pf-reset` finalizer belongs to the agent of that node,
//!   which is gone with it. Once such an object is being deleted and its Node no longer exists,
//!   the operator removes the finalizer (there is no host left to reset).
//!
//! The device-plugin configuration is not written here: it is per node, in each
//! `NicNodeState.spec.devicePlugin`, written by the node-state controller
//! ([`super::node_state`]).
//!
//! Every write is skipped when the cached object already says the same thing.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use crds::{
    CONDITION_APPLIED, CONDITION_VALID, FINALIZER_NODE_STATE, NicNodeState, NicOperatorConfig,
    NicPolicy,
    inventory::NicInventory,
    k8s::jiff::Timestamp,
    operator_config::NicOperatorConfigStatus,
    policy::{NicPolicyStatus, PolicyRejectionStatus},
};
use kube::{Api, ResourceExt, api::Patch, runtime::reflector::ObjectRef};
use serde_json::json;

use super::{ReconcileError, apply_params, is_conflict, merge_params, triggers::Change};
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

/// Whether a change can affect what this controller writes.
pub fn relevant(c: &Change) -> bool {
    matches!(
        c,
        Change::Policy
            | Change::Node(_)
            | Change::NodeState(_)
            | Change::OperatorConfig
            | Change::Resync
    )
}

#[derive(Default)]
struct PolicyTally {
    selected: u32,
    rejected_nodes: BTreeSet<String>,
    rejections: Vec<PolicyRejectionStatus>,
}

/// One status pass. Returns the delay until the next pass.
#[tracing::instrument(skip_all)]
pub async fn reconcile(ctx: Arc<Context>) -> Result<Duration, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let mut first_error = None;
    if let Err(e) = policy_statuses(&ctx).await {
        first_error.get_or_insert(e);
    }
    if let Err(e) = config_status(&ctx).await {
        first_error.get_or_insert(e);
    }
    if let Err(e) = release_orphans(&ctx).await {
        first_error.get_or_insert(e);
    }
    first_error.map_or(Ok(RESYNC), Err)
}

async fn policy_statuses(ctx: &Context) -> Result<(), Error> {
    let set = ctx.policy_set();
    let mut tally: HashMap<String, PolicyTally> = HashMap::new();
    for node in ctx.stores.nodes.state() {
        let name = node.name_any();
        let inventory = NicInventory {
            nics: ctx
                .stores
                .node_states
                .get(&ObjectRef::new(&name))
                .and_then(|s| s.status.as_ref().map(|st| st.nics.clone()))
                .unwrap_or_default(),
        };
        let plan = set.plan_node(node.labels(), &inventory);
        for p in plan.selected_policies {
            tally.entry(p).or_default().selected += 1;
        }
        for r in plan.rejections {
            let t = tally.entry(r.policy.clone()).or_default();
            t.rejected_nodes.insert(name.clone());
            t.rejections.push(PolicyRejectionStatus {
                node: name.clone(),
                pf: r.pf.clone(),
                reason: format!("{}: {}", r.field, r.reason),
            });
        }
    }
    let mut first_error = None;
    for policy in ctx.stores.policies.state() {
        let name = policy.name_any();
        let t = tally.remove(&name).unwrap_or_default();
        let invalid = set.invalid().iter().find(|i| i.name == name);
        let rejected = u32::try_from(t.rejected_nodes.len()).unwrap_or(u32::MAX);
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
                let first = t
                    .rejections
                    .iter()
                    .min_by(|a, b| (&a.node, &a.pf).cmp(&(&b.node, &b.pf)));
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
        let mut rejections = t.rejections;
        rejections.sort_by(|a, b| (&a.node, &a.pf, &a.reason).cmp(&(&b.node, &b.pf, &b.reason)));
        rejections.truncate(MAX_LISTED_REJECTIONS);
        if let Err(e) =
            write_policy_status(ctx, &policy, &conds, t.selected, rejected, rejections).await
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
        conditions: conditions::merge(&current.conditions, conds, generation, Timestamp::now()),
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
            conditions: conditions::merge(
                &current.conditions,
                &[cond],
                generation,
                Timestamp::now(),
            ),
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

async fn release_orphans(ctx: &Context) -> Result<(), Error> {
    let mut first_error = None;
    for s in ctx.stores.node_states.state() {
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
    use crds::NicNodeStateSpec;
    use planner::fixtures::policy;

    use super::*;
    use crate::controller::fixtures::{Scenario, node, node_state, test_context, timeout_after_1s};

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
