//! Node-state controller: one reconcile per Node, writing that node's `NicNodeState.spec`.
//!
//! Triggered by the Node (labels), its `NicNodeState` (the planning facts of the agent's
//! inventory in `status`, see [`super::watches::node_state_changes`]: an agent's other status
//! writes plan nothing), and a `NicPolicy` spec change (the nodes it selects before and after the
//! change, not every node). Inputs come from the caches; the planner
//! ([`planner::PolicySet::plan_node`]) decides; this module only writes:
//!
//! 1. `NicNodeState/<node>` by server-side apply (field manager `smartnic.io/operator`): labels
//!    `app.kubernetes.io/managed-by` and `smartnic.io/node`, an owner reference to the Node (so
//!    it is garbage-collected with it), and `spec`. It is created, with an empty spec, for every
//!    node some valid policy selects; the agent then reports the inventory into `status`, which
//!    triggers the planning. Unchanged specs are not rewritten.
//!
//!    `spec.devicePlugin` is the node's device-plugin configuration
//!    ([`planner::with_device_plugin_config`], with the resource prefix of
//!    `NicOperatorConfig`), written in the same apply. The device plugin watches only its own
//!    node's object, so each node's configuration costs O(1) in object size and watch traffic
//!    however large the cluster (a single cluster-wide ConfigMap would hit the 1 MiB object
//!    limit at a few thousand nodes and wake every plugin on every change). A change that only
//!    affects the device plugin (a resource rename, a new prefix) is a spec change like any other.
//! 2. The Node label `smartnic.io/device-plugin=true` while the node's device-plugin
//!    configuration has at least one resource pool (the device-plugin DaemonSet selects on it),
//!    removed otherwise.
//!
//! While the agent has not reported an inventory, an existing spec is left alone rather than
//! emptied (an empty inventory would plan to release every PF).
//!
//! `spec.cniAllowList` is `NicOperatorConfig.spec.tenantAllowList` (unset while there is no
//! `NicOperatorConfig`): the agent writes it to the file the CNI plugin reads on the node.
//!
//! `spec.rdmaMode` is the `rdmaMode` of the node's `NicPool`
//! ([`planner::rdma_mode_for_node`]). A node outside `NicOperatorConfig.spec.nodeSelector`
//! ([`planner::agent_runs_on`]) gets no `NicNodeState` and an existing one is emptied: no agent
//! runs there to apply it.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use crds::{
    FIELD_MANAGER_OPERATOR, LABEL_DEVICE_PLUGIN, LABEL_MANAGED_BY, LABEL_NODE, MANAGED_BY,
    NicNodeState, NicNodeStateSpec, inventory::NicInventory,
};
use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Resource, ResourceExt,
    api::Patch,
    runtime::{controller::Action, reflector::ObjectRef},
};
use serde_json::json;

use super::{ReconcileError, apply_params, is_conflict};
use planner::with_device_plugin_config;

use crate::context::Context;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "node-state";

/// Requeue after a successful reconcile (safety net against missed watch events).
pub const RESYNC: Duration = Duration::from_secs(300);

/// Why a node could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Node from the cache has no name (never happens for objects read from the API).
    #[error("Node object without metadata.name")]
    UnnamedNode,
    /// Server-side apply of the `NicNodeState` failed.
    #[error("cannot apply NicNodeState {node} (field manager {FIELD_MANAGER_OPERATOR}): {source}")]
    ApplyNodeState {
        /// Node name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Setting or removing the device-plugin label on the Node failed.
    #[error("cannot {action} label {LABEL_DEVICE_PLUGIN} on Node {node}: {source}")]
    LabelNode {
        /// Node name.
        node: String,
        /// `set` or `remove`.
        action: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Short label naming the failed call, for the `error` label of the error counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::UnnamedNode => "unnamednode",
            Self::ApplyNodeState { .. } => "applynodestate",
            Self::LabelNode { .. } => "labelnode",
        }
    }
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        Error::metric_label(self)
    }

    fn retry_base(&self) -> Duration {
        match self {
            Self::ApplyNodeState { source, .. } | Self::LabelNode { source, .. }
                if is_conflict(source) =>
            {
                Duration::from_secs(1)
            }
            Self::UnnamedNode => Duration::from_secs(60),
            _ => Duration::from_secs(5),
        }
    }
}

/// The labels the operator puts on a `NicNodeState`.
pub fn node_state_labels(node: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        (LABEL_NODE.to_owned(), node.to_owned()),
    ])
}

/// Reconciles one node. See the module documentation.
#[tracing::instrument(skip_all, fields(node = %node.name_any()))]
pub async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let name = node.metadata.name.clone().ok_or(Error::UnnamedNode)?;
    let key = backoff_key(&name);
    let result = reconcile_node(&node, &name, &ctx).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

async fn reconcile_node(node: &Node, name: &str, ctx: &Context) -> Result<Action, Error> {
    let labels = node.labels();
    let set = ctx.policy_set();
    let state = ctx.stores.node_states.get(&ObjectRef::new(name));
    let inventory = NicInventory {
        nics: state
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .map(|s| s.nics.clone())
            .unwrap_or_default(),
    };
    let config = ctx.stores.operator_config();
    let agent_here = planner::agent_runs_on(config.as_ref().map(|c| &c.spec), labels);
    let plan = set.plan_node(labels, &inventory);
    // a node the agent does not run on gets no NicNodeState (nothing would apply it)
    let selected = agent_here && !plan.selected_policies.is_empty();
    let plan = if agent_here {
        plan
    } else {
        planner::outside_agent_nodes(plan)
    };
    let prefix = ctx.stores.resource_prefix();
    let pools: Vec<crds::NicPool> = ctx
        .stores
        .pools
        .state()
        .iter()
        .map(|p| (**p).clone())
        .collect();
    let rdma_mode = planner::rdma_mode_for_node(&pools, labels);
    let cni_allow_list = config
        .as_ref()
        .filter(|_| agent_here)
        .map(|c| c.spec.tenant_allow_list.clone());
    let complete = |spec: NicNodeStateSpec| NicNodeStateSpec {
        rdma_mode,
        cni_allow_list: cni_allow_list.clone(),
        ..with_device_plugin_config(spec, &prefix)
    };

    let effective_spec: NicNodeStateSpec = match &state {
        None if !selected => NicNodeStateSpec::default(),
        None => {
            tracing::info!(policies = ?plan.selected_policies, "creating NicNodeState");
            let empty = complete(NicNodeStateSpec::default());
            apply_node_state(ctx, node, name, &empty).await?;
            empty
        }
        Some(s) if s.metadata.deletion_timestamp.is_some() => {
            // the agent is resetting the node's PFs; it is recreated once gone
            complete(s.spec.clone())
        }
        Some(s) => {
            let inventory_known = !inventory.nics.is_empty();
            // without an inventory the interfaces are kept, but `devicePlugin` is still
            // re-rendered from them (the prefix may have changed)
            let desired = complete(if inventory_known || !selected {
                plan.spec.clone()
            } else {
                s.spec.clone()
            });
            let owned = owner_is(s, node) && labels_ok(s, name);
            if s.spec != desired || !owned {
                tracing::info!(
                    interfaces = desired.interfaces.len(),
                    resource_pools = desired.device_plugin.resource_list.len(),
                    rejections = plan.rejections.len(),
                    "applying NicNodeState spec"
                );
                apply_node_state(ctx, node, name, &desired).await?;
            }
            desired
        }
    };
    for r in &plan.rejections {
        tracing::debug!(policy = %r.policy, pf = ?r.pf, field = %r.field, reason = %r.reason, "policy rejected");
    }

    let want_label = !effective_spec.device_plugin.resource_list.is_empty();
    let has_label = labels.get(LABEL_DEVICE_PLUGIN).is_some_and(|v| v == "true");
    if want_label != has_label {
        set_device_plugin_label(ctx, name, want_label).await?;
    }
    Ok(Action::requeue(RESYNC))
}

fn owner_is(state: &NicNodeState, node: &Node) -> bool {
    let uid = node.uid();
    state
        .owner_references()
        .iter()
        .any(|o| o.kind == "Node" && Some(&o.uid) == uid.as_ref())
}

fn labels_ok(state: &NicNodeState, name: &str) -> bool {
    let l = state.labels();
    l.get(LABEL_MANAGED_BY).is_some_and(|v| v == MANAGED_BY)
        && l.get(LABEL_NODE).is_some_and(|v| v == name)
}

/// `kubectl apply --server-side --field-manager smartnic.io/operator` of the node state.
async fn apply_node_state(
    ctx: &Context,
    node: &Node,
    name: &str,
    spec: &NicNodeStateSpec,
) -> Result<(), Error> {
    let mut obj = NicNodeState::new(name, spec.clone());
    obj.metadata.labels = Some(node_state_labels(name));
    obj.metadata.owner_references = node.owner_ref(&()).map(|o| vec![o]);
    let api: Api<NicNodeState> = Api::all(ctx.client.clone());
    api.patch(name, &apply_params(), &Patch::Apply(&obj))
        .await
        .map_err(|source| Error::ApplyNodeState {
            node: name.to_owned(),
            source,
        })?;
    Ok(())
}

/// `kubectl label node $NODE smartnic.io/device-plugin=true` (or its removal), as a server-side
/// apply of only that label: applying without it releases (and so removes) the label.
async fn set_device_plugin_label(ctx: &Context, name: &str, on: bool) -> Result<(), Error> {
    let body = if on {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {LABEL_DEVICE_PLUGIN: "true"}}})
    } else {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    };
    let api: Api<Node> = Api::all(ctx.client.clone());
    api.patch(name, &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(|source| Error::LabelNode {
            node: name.to_owned(),
            action: if on { "set" } else { "remove" },
            source,
        })?;
    Ok(())
}

fn backoff_key(node: &str) -> String {
    format!("{CONTROLLER}/{node}")
}

/// Counts the failure and requeues the node with per-node exponential backoff.
pub fn error_policy(node: Arc<Node>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failed(CONTROLLER, error.metric_label());
    let delay = ctx.backoff.failed(
        &backoff_key(&node.name_any()),
        ReconcileError::retry_base(error),
    );
    tracing::warn!(node = %node.name_any(), %error, ?delay, "node-state reconcile failed");
    Action::requeue(delay)
}

/// The nodes a change concerns.
pub(crate) fn affected(change: super::triggers::Change, ctx: &Context) -> Vec<ObjectRef<Node>> {
    use super::triggers::Change;
    match change {
        Change::Node(n) | Change::NodeState(n) => vec![ObjectRef::new(&n)],
        // a policy decides only on the nodes it selects, before or after its change
        Change::Policy(p) => {
            let selectors = p.compiled();
            ctx.stores
                .nodes
                .state()
                .iter()
                .filter(|n| selectors.iter().any(|s| s.matches(n.labels())))
                .map(|n| ObjectRef::from_obj(&**n))
                .collect()
        }
        // the operator configuration holds the resource prefix and the agent node selector,
        // and a pool the RDMA mode, all part of the nodes' specs
        Change::OperatorConfig | Change::Pool | Change::Resync => ctx
            .stores
            .nodes
            .state()
            .iter()
            .map(|n| ObjectRef::from_obj(&**n))
            .collect(),
        Change::NodeDrain(_) | Change::Network(_) | Change::Nad(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use crds::{
        device_plugin::{DevicePluginConfig, DeviceSelector, PfVfs, ResourcePool},
        node_state::{InterfaceSpec, VfGroup, VfIndexRange},
        policy::VfDeviceType,
    };

    use super::*;
    use crate::controller::fixtures::{
        ApiServerVerifier, Scenario, node, node_state, test_context, timeout_after_1s,
        with_inventory,
    };
    use crate::controller::triggers::Change;
    use planner::fixtures::{cx6, policy};

    fn expected_spec(num_vfs: u32) -> NicNodeStateSpec {
        expected_spec_with(num_vfs, "cx6_vf", "smartnic.io")
    }

    /// The spec of one cx6 PF with `num_vfs` VFs in one group of `resource`, and the matching
    /// device-plugin pool (written out, not rendered, so that the renderer is checked too).
    fn expected_spec_with(num_vfs: u32, resource: &str, prefix: &str) -> NicNodeStateSpec {
        let vfs = vec![VfIndexRange {
            first: 0,
            last: num_vfs - 1,
        }];
        NicNodeStateSpec {
            interfaces: vec![InterfaceSpec {
                pci_address: "0000:3b:00.0".into(),
                name: Some("ens1f0".into()),
                num_vfs,
                policy: "p1".into(),
                vf_groups: vec![VfGroup {
                    policy: "p1".into(),
                    resource_name: resource.into(),
                    vfs: vfs.clone(),
                    device_type: VfDeviceType::Netdevice,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            device_plugin: DevicePluginConfig {
                resource_list: vec![ResourcePool {
                    resource_name: resource.into(),
                    resource_prefix: prefix.into(),
                    device_type: VfDeviceType::Netdevice,
                    is_rdma: false,
                    need_vhost_net: false,
                    exclude_topology: false,
                    allocation: Default::default(),
                    selectors: vec![DeviceSelector {
                        pfs: vec![PfVfs {
                            pci_address: "0000:3b:00.0".into(),
                            name: Some("ens1f0".into()),
                            vfs,
                        }],
                        ..Default::default()
                    }],
                }],
                ..Default::default()
            },
            rdma_mode: None,
            cni_allow_list: None,
        }
    }

    fn policy_with_vfs(num_vfs: u32) -> crds::NicPolicy {
        let mut p = policy("p1", 10, &["ens1f0"]);
        p.spec.num_vfs = num_vfs;
        p.metadata.resource_version = Some(format!("rv-{num_vfs}"));
        p
    }

    #[tokio::test]
    async fn policy_and_inventory_cause_node_state_spec_apply_and_device_plugin_label() {
        let (ctx, fakeserver, mut stores) = test_context();
        let n1 = node("n1", &[("gpu", "true")]);
        stores.node(n1.clone());
        stores.node_state(with_inventory(
            node_state("n1", &n1, NicNodeStateSpec::default()),
            vec![cx6("0000:3b:00.0", "ens1f0")],
        ));
        stores.policy(policy_with_vfs(4));

        let mocksrv = fakeserver.run(Scenario::NodeStateApply {
            node: "n1".into(),
            spec: expected_spec(4),
            label: Some(true),
        });
        let action = reconcile(Arc::new(n1), ctx.clone())
            .await
            .expect("reconcile");
        assert_eq!(action, Action::requeue(RESYNC));
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn policy_edit_updates_the_spec_from_4_to_8_vfs() {
        let (ctx, fakeserver, mut stores) = test_context();
        let n1 = node("n1", &[("gpu", "true"), (LABEL_DEVICE_PLUGIN, "true")]);
        stores.node(n1.clone());
        stores.node_state(with_inventory(
            node_state("n1", &n1, expected_spec(4)),
            vec![cx6("0000:3b:00.0", "ens1f0")],
        ));
        stores.policy(policy_with_vfs(4));

        // spec already matches 4 VFs and the label is set: no call at all
        let mocksrv = fakeserver.run(Scenario::RadioSilence);
        reconcile(Arc::new(n1.clone()), ctx.clone())
            .await
            .expect("reconcile");
        timeout_after_1s(mocksrv).await;

        // the edit arrives through the policy cache
        let (ctx2, fakeserver2) = ctx_with_same_stores(&ctx);
        stores.policy(policy_with_vfs(8));
        let mocksrv = fakeserver2.run(Scenario::NodeStateApply {
            node: "n1".into(),
            spec: expected_spec(8),
            label: None,
        });
        reconcile(Arc::new(n1), ctx2).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    /// A second mock API server over the same caches (each verifier serves one scenario).
    fn ctx_with_same_stores(ctx: &Arc<Context>) -> (Arc<Context>, ApiServerVerifier) {
        crate::controller::fixtures::context_over(ctx.stores.clone())
    }

    #[tokio::test]
    async fn resource_rename_changes_only_the_device_plugin_pool_and_is_applied() {
        let (ctx, fakeserver, mut stores) = test_context();
        let n1 = node("n1", &[("gpu", "true"), (LABEL_DEVICE_PLUGIN, "true")]);
        stores.node(n1.clone());
        stores.node_state(with_inventory(
            node_state("n1", &n1, expected_spec(4)),
            vec![cx6("0000:3b:00.0", "ens1f0")],
        ));
        let mut p = policy_with_vfs(4);
        p.spec.resource_name = "fast_vf".into();
        p.metadata.resource_version = Some("rv-renamed".into());
        stores.policy(p);
        // same VFs, same PF settings: only the group's resource and the pool change; the label
        // stays (the node still has a pool)
        let mocksrv = fakeserver.run(Scenario::NodeStateApply {
            node: "n1".into(),
            spec: expected_spec_with(4, "fast_vf", "smartnic.io"),
            label: None,
        });
        reconcile(Arc::new(n1), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn a_node_outside_the_agent_selector_is_emptied_and_loses_the_device_plugin_label() {
        let (ctx, fakeserver, mut stores) = test_context();
        let n1 = node("n1", &[("gpu", "true"), (LABEL_DEVICE_PLUGIN, "true")]);
        stores.node(n1.clone());
        stores.node_state(with_inventory(
            node_state("n1", &n1, expected_spec(4)),
            vec![cx6("0000:3b:00.0", "ens1f0")],
        ));
        stores.policy(policy_with_vfs(4));
        let mut cfg = crds::NicOperatorConfig::new("default", Default::default());
        cfg.spec.node_selector = [("smartnic".to_owned(), "yes".to_owned())].into();
        stores.config(cfg);
        let mocksrv = fakeserver.run(Scenario::NodeStateApply {
            node: "n1".into(),
            spec: NicNodeStateSpec::default(),
            label: Some(false),
        });
        reconcile(Arc::new(n1), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn the_pool_rdma_mode_is_written_into_the_node_state() {
        let (ctx, fakeserver, mut stores) = test_context();
        let n1 = node("n1", &[("gpu", "true"), (LABEL_DEVICE_PLUGIN, "true")]);
        stores.node(n1.clone());
        stores.node_state(with_inventory(
            node_state("n1", &n1, expected_spec(4)),
            vec![cx6("0000:3b:00.0", "ens1f0")],
        ));
        stores.policy(policy_with_vfs(4));
        let mut pool = crds::NicPool::new(
            "gpu",
            crds::pool::NicPoolSpec {
                node_selector: crds::k8s::LabelSelector {
                    match_labels: Some([("gpu".to_owned(), "true".to_owned())].into()),
                    ..Default::default()
                },
                rdma_mode: Some(crds::pool::RdmaMode::Exclusive),
                ..Default::default()
            },
        );
        pool.metadata.generation = Some(1);
        stores.pool(pool);
        let mocksrv = fakeserver.run(Scenario::NodeStateApply {
            node: "n1".into(),
            spec: NicNodeStateSpec {
                rdma_mode: Some(crds::pool::RdmaMode::Exclusive),
                ..expected_spec(4)
            },
            label: None,
        });
        reconcile(Arc::new(n1), ctx.clone())
            .await
            .expect("reconcile");
        timeout_after_1s(mocksrv).await;
        // a pool change concerns the nodes
        assert!(!affected(Change::Pool, &ctx).is_empty());
    }

    #[tokio::test]
    async fn resource_prefix_change_reapplies_every_node_with_the_new_prefix() {
        let (ctx, fakeserver, mut stores) = test_context();
        // a config object brings its default node selector, kubernetes.io/os: linux
        let n1 = node(
            "n1",
            &[
                ("gpu", "true"),
                (LABEL_DEVICE_PLUGIN, "true"),
                (crds::LABEL_OS, "linux"),
            ],
        );
        stores.node(n1.clone());
        stores.node(node("n2", &[]));
        stores.node_state(with_inventory(
            node_state("n1", &n1, expected_spec(4)),
            vec![cx6("0000:3b:00.0", "ens1f0")],
        ));
        stores.policy(policy_with_vfs(4));
        let mut cfg = crds::NicOperatorConfig::new("default", Default::default());
        cfg.spec.resource_prefix = "nics.example.com".into();
        stores.config(cfg);
        // the prefix lives in NicOperatorConfig: its change concerns every node
        let mut nodes: Vec<String> = affected(Change::OperatorConfig, &ctx)
            .into_iter()
            .map(|r| r.name)
            .collect();
        nodes.sort();
        assert_eq!(nodes, ["n1", "n2"]);

        let mocksrv = fakeserver.run(Scenario::NodeStateApply {
            node: "n1".into(),
            spec: NicNodeStateSpec {
                cni_allow_list: Some(Default::default()),
                ..expected_spec_with(4, "cx6_vf", "nics.example.com")
            },
            label: None,
        });
        reconcile(Arc::new(n1), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn the_tenant_allow_list_is_copied_into_the_node_state() {
        let (ctx, fakeserver, mut stores) = test_context();
        let n1 = node(
            "n1",
            &[
                ("gpu", "true"),
                (LABEL_DEVICE_PLUGIN, "true"),
                (crds::LABEL_OS, "linux"),
            ],
        );
        stores.node(n1.clone());
        stores.node_state(with_inventory(
            node_state("n1", &n1, expected_spec(4)),
            vec![cx6("0000:3b:00.0", "ens1f0")],
        ));
        stores.policy(policy_with_vfs(4));
        let mut cfg = crds::NicOperatorConfig::new("default", Default::default());
        let list = crds::cni::TenantAllowList {
            ipam_data_dirs: vec!["/var/lib/smartnic/ipam".into()],
            masters: vec![crds::cni::HostInterfaceGrant {
                name: "eth1".into(),
                namespaces: Some(vec!["team-a".into()]),
            }],
            ..Default::default()
        };
        cfg.spec.tenant_allow_list = list.clone();
        stores.config(cfg);
        let mocksrv = fakeserver.run(Scenario::NodeStateApply {
            node: "n1".into(),
            spec: NicNodeStateSpec {
                cni_allow_list: Some(list),
                ..expected_spec(4)
            },
            label: None,
        });
        reconcile(Arc::new(n1), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn losing_the_last_pool_empties_the_config_and_removes_the_label() {
        let (ctx, fakeserver, mut stores) = test_context();
        // the node no longer matches the policy's nodeSelector
        let n1 = node("n1", &[("gpu", "false"), (LABEL_DEVICE_PLUGIN, "true")]);
        stores.node(n1.clone());
        stores.node_state(with_inventory(
            node_state("n1", &n1, expected_spec(4)),
            vec![cx6("0000:3b:00.0", "ens1f0")],
        ));
        stores.policy(policy_with_vfs(4));
        let mocksrv = fakeserver.run(Scenario::NodeStateApply {
            node: "n1".into(),
            spec: NicNodeStateSpec::default(),
            label: Some(false),
        });
        reconcile(Arc::new(n1), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn unselected_node_without_state_gets_no_calls() {
        let (ctx, fakeserver, mut stores) = test_context();
        let n2 = node("n2", &[("gpu", "false")]);
        stores.node(n2.clone());
        stores.policy(policy_with_vfs(4));
        let mocksrv = fakeserver.run(Scenario::RadioSilence);
        reconcile(Arc::new(n2), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn selected_node_without_state_gets_an_empty_node_state_created() {
        let (ctx, fakeserver, mut stores) = test_context();
        let n1 = node("n1", &[("gpu", "true")]);
        stores.node(n1.clone());
        stores.policy(policy_with_vfs(4));
        let mocksrv = fakeserver.run(Scenario::NodeStateApply {
            node: "n1".into(),
            spec: NicNodeStateSpec::default(),
            label: None,
        });
        reconcile(Arc::new(n1), ctx).await.expect("reconcile");
        timeout_after_1s(mocksrv).await;
    }

    #[tokio::test]
    async fn apiserver_error_fails_the_reconcile_and_counts_the_error() {
        let (ctx, fakeserver, mut stores) = test_context();
        let n1 = node("n1", &[("gpu", "true")]);
        stores.node(n1.clone());
        stores.node_state(with_inventory(
            node_state("n1", &n1, NicNodeStateSpec::default()),
            vec![cx6("0000:3b:00.0", "ens1f0")],
        ));
        stores.policy(policy_with_vfs(4));
        let mocksrv = fakeserver.run(Scenario::ServerError {
            method: http::Method::PATCH,
            path: "/apis/smartnic.io/v1alpha1/nicnodestates/n1".into(),
            code: 500,
        });
        let err = reconcile(Arc::new(n1.clone()), ctx.clone())
            .await
            .expect_err("must fail");
        timeout_after_1s(mocksrv).await;
        assert!(
            matches!(err, Error::ApplyNodeState { ref node, .. } if node == "n1"),
            "{err}"
        );
        assert!(
            err.to_string().contains("cannot apply NicNodeState n1"),
            "{err}"
        );

        let action = error_policy(Arc::new(n1.clone()), &err, ctx.clone());
        assert_eq!(action, Action::requeue(Duration::from_secs(5)));
        assert_eq!(
            ctx.metrics
                .reconcile_errors_count(CONTROLLER, "applynodestate"),
            1
        );
        let action = error_policy(Arc::new(n1), &err, ctx.clone());
        assert_eq!(
            action,
            Action::requeue(Duration::from_secs(10)),
            "second failure doubles the delay"
        );
        assert_eq!(
            ctx.metrics
                .reconcile_errors_count(CONTROLLER, "applynodestate"),
            2
        );
        assert!(
            ctx.metrics
                .render()
                .contains("smartnic_operator_reconcile_total{controller=\"node-state\"} 1")
        );
    }
}
