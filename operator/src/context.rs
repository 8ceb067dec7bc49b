//! What every reconciler and the admission webhook share: the client, the watch caches
//! ([`Stores`]), metrics, the event recorder and per-object error backoff.
//!
//! The caches are filled by one watch per kind ([`crate::controller::watches`]) on every
//! replica, leader or not, because the webhook reads them too. Reconcilers read their inputs
//! from them instead of listing: at 500+ nodes a list per reconcile would dominate the API load.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use crds::{
    NetworkAttachmentDefinition, NicNetwork, NicNodeState, NicOperatorConfig, NicPolicy, NicPool,
    NicPoolSpec, OPERATOR_CONFIG_NAME, RESOURCE_PREFIX, k8s::jiff::Timestamp,
};
use k8s_openapi::api::core::v1::Node;
use kube::{
    Client, ResourceExt,
    runtime::{
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef, Store, store::Writer},
    },
};

use planner::{
    PolicySet,
    validate::{FieldError, PoolContext, validate_pool},
};

use crate::metrics::Metrics;

/// Name the operator reports as in events (`reportingController`).
pub const REPORTER: &str = "smartnic-operator";

/// Read-only views of the watch caches.
#[derive(Clone)]
pub struct Stores {
    /// Every Node (status stripped: only metadata and spec are kept).
    pub nodes: Store<Node>,
    /// Every `NicNodeState`.
    pub node_states: Store<NicNodeState>,
    /// Every `NicPolicy`.
    pub policies: Store<NicPolicy>,
    /// Every `NicPool`.
    pub pools: Store<NicPool>,
    /// Every `NicNetwork`.
    pub networks: Store<NicNetwork>,
    /// Every `NicOperatorConfig` (only `default` is used).
    pub configs: Store<NicOperatorConfig>,
    /// NADs labelled `app.kubernetes.io/managed-by=smartnic-operator`.
    pub nads: Store<NetworkAttachmentDefinition>,
    /// Every NAD of the cluster, metadata only (the CNI config is dropped): the
    /// network-resources injector reads their `k8s.v1.cni.cncf.io/resourceName`.
    pub all_nads: Store<NetworkAttachmentDefinition>,
}

/// The write halves of [`Stores`], consumed by the reflectors (or by tests).
pub struct StoreWriters {
    /// Nodes.
    pub nodes: Writer<Node>,
    /// `NicNodeState`s.
    pub node_states: Writer<NicNodeState>,
    /// `NicPolicy`s.
    pub policies: Writer<NicPolicy>,
    /// `NicPool`s.
    pub pools: Writer<NicPool>,
    /// `NicNetwork`s.
    pub networks: Writer<NicNetwork>,
    /// `NicOperatorConfig`s.
    pub configs: Writer<NicOperatorConfig>,
    /// Managed NADs.
    pub nads: Writer<NetworkAttachmentDefinition>,
    /// Every NAD.
    pub all_nads: Writer<NetworkAttachmentDefinition>,
}

impl Stores {
    /// The admission checks of pool `name` (selector, `maxUnavailable`, overlap with the other
    /// cached pools over the cached nodes): one source for the webhook and the pool `Valid`
    /// condition.
    pub fn check_pool(&self, name: &str, spec: &NicPoolSpec) -> Result<(), Vec<FieldError>> {
        let pools: Vec<NicPool> = self.pools.state().iter().map(|p| (**p).clone()).collect();
        let nodes = self.nodes.state();
        let node_names: Vec<String> = nodes.iter().map(|n| n.name_any()).collect();
        let pairs: Vec<(&str, &BTreeMap<String, String>)> = node_names
            .iter()
            .map(String::as_str)
            .zip(nodes.iter().map(|n| n.labels()))
            .collect();
        validate_pool(
            name,
            spec,
            &PoolContext {
                pools: &pools,
                nodes: &pairs,
            },
        )
    }

    /// Empty caches and their writers.
    pub fn new() -> (Self, StoreWriters) {
        let (nodes, w_nodes) = reflector::store();
        let (node_states, w_node_states) = reflector::store();
        let (policies, w_policies) = reflector::store();
        let (pools, w_pools) = reflector::store();
        let (networks, w_networks) = reflector::store();
        let (configs, w_configs) = reflector::store();
        let (nads, w_nads) = reflector::store();
        let (all_nads, w_all_nads) = reflector::store();
        (
            Self {
                nodes,
                node_states,
                policies,
                pools,
                networks,
                configs,
                nads,
                all_nads,
            },
            StoreWriters {
                nodes: w_nodes,
                node_states: w_node_states,
                policies: w_policies,
                pools: w_pools,
                networks: w_networks,
                configs: w_configs,
                nads: w_nads,
                all_nads: w_all_nads,
            },
        )
    }

    /// The singleton `NicOperatorConfig` named `default`, if it exists.
    pub fn operator_config(&self) -> Option<Arc<NicOperatorConfig>> {
        self.configs.get(&ObjectRef::new(OPERATOR_CONFIG_NAME))
    }

    /// The extended-resource prefix (`NicOperatorConfig.spec.resourcePrefix`, default
    /// `smartnic.io`).
    pub fn resource_prefix(&self) -> String {
        self.operator_config()
            .map(|c| c.spec.resource_prefix.clone())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| RESOURCE_PREFIX.to_owned())
    }

    /// Whether drains are enabled (`NicOperatorConfig.spec.features.drain`, default true).
    pub fn drain_enabled(&self) -> bool {
        self.operator_config().is_none_or(|c| c.spec.features.drain)
    }

    /// Whether the network-resources injector is on
    /// (`NicOperatorConfig.spec.features.networkResourcesInjector`, default true).
    pub fn injector_enabled(&self) -> bool {
        self.operator_config()
            .is_none_or(|c| c.spec.features.network_resources_injector)
    }

    /// Waits until every cache has had its first full list.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.nodes.wait_until_ready().await?;
        self.node_states.wait_until_ready().await?;
        self.policies.wait_until_ready().await?;
        self.pools.wait_until_ready().await?;
        self.networks.wait_until_ready().await?;
        self.configs.wait_until_ready().await?;
        self.all_nads.wait_until_ready().await?;
        Ok(())
    }
}

/// Per-object consecutive failure counts, for exponential requeue delays. kube's `error_policy`
/// is not told about successes, so the reconcilers reset the count themselves.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

/// Longest delay between retries of one object.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Backoff {
    /// Records a failure of `key` and returns the delay before the next attempt:
    /// `base * 2^(failures-1)`, at most [`MAX_BACKOFF`].
    pub fn failed(&self, key: &str, base: Duration) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 1u32
            .checked_shl(n.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        base.saturating_mul(factor).min(MAX_BACKOFF)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Consecutive failures recorded for `key`.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// The compiled policies, rebuilt only when a policy's spec changes.
struct PolicyCache {
    /// `(name, uid, generation)` of every policy the set was built from, sorted (the
    /// `resourceVersion` in place of the generation for objects without one, which only tests
    /// build).
    key: Vec<(String, Option<String>, String)>,
    set: Arc<PolicySet>,
}

/// Shared state of the reconcilers.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The watch caches.
    pub stores: Stores,
    /// Metrics, shared with the `/metrics` endpoint.
    pub metrics: Arc<Metrics>,
    /// Publishes Kubernetes events (`events.k8s.io/v1`) as `smartnic-operator`.
    pub recorder: Recorder,
    /// Namespace the operator runs in (holds the leader lease).
    pub namespace: String,
    /// Per-object failure counts.
    pub backoff: Backoff,
    /// The clock (drain deadlines, condition times): [`Timestamp::now`], fixed in tests.
    pub now: fn() -> Timestamp,
    /// What the status controller keeps between passes.
    pub(crate) status_memo: crate::controller::status::Memo,
    /// The configuration whose node-DaemonSet placement was last carried out.
    pub(crate) placed: crate::controller::placement::Placed,
    /// The DeviceClasses last carried out.
    pub(crate) device_classes: crate::controller::device_classes::Applied,
    policy_cache: Mutex<Option<PolicyCache>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context over `client` and the given caches. `instance` names this replica in events
    /// (the pod name).
    pub fn new(
        client: Client,
        stores: Stores,
        metrics: Arc<Metrics>,
        namespace: impl Into<String>,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: REPORTER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            stores,
            metrics,
            namespace: namespace.into(),
            backoff: Backoff::default(),
            now: Timestamp::now,
            status_memo: Default::default(),
            placed: Default::default(),
            device_classes: Default::default(),
            policy_cache: Mutex::new(None),
        }
    }

    /// Every policy compiled in precedence order. Recompiled only when the set of policies or
    /// one of their specs changed (`metadata.generation`: the operator's and anyone's status
    /// writes leave it alone), so that planning many nodes validates and parses each policy once.
    pub fn policy_set(&self) -> Arc<PolicySet> {
        let policies = self.stores.policies.state();
        let mut key: Vec<(String, Option<String>, String)> = policies
            .iter()
            .map(|p| {
                let version = match p.metadata.generation {
                    Some(g) => g.to_string(),
                    None => format!("rv:{}", p.resource_version().unwrap_or_default()),
                };
                (p.name_any(), p.uid(), version)
            })
            .collect();
        key.sort();
        let mut cache = self.policy_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.as_ref()
            && c.key == key
        {
            return c.set.clone();
        }
        let owned: Vec<NicPolicy> = policies.iter().map(|p| (**p).clone()).collect();
        let set = Arc::new(PolicySet::new(&owned));
        *cache = Some(PolicyCache {
            key,
            set: set.clone(),
        });
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_on_success() {
        let b = Backoff::default();
        let base = Duration::from_secs(1);
        assert_eq!(b.failed("n1", base), Duration::from_secs(1));
        assert_eq!(b.failed("n1", base), Duration::from_secs(2));
        assert_eq!(b.failed("n1", base), Duration::from_secs(4));
        assert_eq!(b.failed("n2", base), Duration::from_secs(1), "per object");
        for _ in 0..40 {
            b.failed("n1", base);
        }
        assert_eq!(b.failed("n1", base), MAX_BACKOFF);
        b.succeeded("n1");
        assert_eq!(b.failures("n1"), 0);
        assert_eq!(b.failed("n1", base), Duration::from_secs(1));
    }
}
