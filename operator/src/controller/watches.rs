//! One watch per kind, feeding the [`Stores`] and publishing
//! [`Change`]s. Runs on every replica (the webhook reads the caches too); the reconcilers
//! subscribe only on the leader.
//!
//! ```text
//!  apiserver ──watch──► reflector ──► Store<K> (Context.stores) ◄── reconcilers, webhook
//!                           │
//!                           └──► Change ──broadcast──► node-state / network / drain / status
//! ```
//!
//! Only changes a controller reads are published: a spec change (`generation`) of a policy,
//! pool, network or configuration, never their status writes (the operator's own included); a
//! Node's labels or schedulability; a `NicNodeState`'s planning facts or its drain annotations,
//! never the agent's other status writes (see [`node_state_changes`]). At thousands of agents
//! writing status this keeps the controllers idle unless something they decide on moved.

use std::{
    collections::{
        HashMap,
        hash_map::{DefaultHasher, Entry},
    },
    fmt::Debug,
    hash::{Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use crds::{
    ANNOTATION_DRAIN_GRANT, ANNOTATION_DRAIN_GRANTED_AT, ANNOTATION_DRAIN_REQUEST,
    ANNOTATION_DRAIN_REQUESTED_AT, ANNOTATION_DRAIN_RETRY_AFTER, LABEL_MANAGED_BY, LABEL_NETWORK,
    MANAGED_BY, NetworkAttachmentDefinition, NicNetwork, NicNodeState, NicOperatorConfig,
    NicPolicy, NicPool, OPERATOR_CONFIG_NAME, k8s::LabelSelector,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{ObjectRef, store::Writer},
        watcher,
    },
};
use serde::de::DeserializeOwned;

use super::triggers::{Change, PolicyChange, Triggers};
use crate::context::{StoreWriters, Stores};

/// Runs every watch until the process stops; sets `ready` once every cache the reconcilers and
/// the webhook need has had its first full list. `on_config` is called with the
/// `NicOperatorConfig` named `default` whenever its spec changes (`None` once it is deleted),
/// on every replica (the log level applies to the webhook too).
pub async fn run(
    client: Client,
    stores: Stores,
    writers: StoreWriters,
    triggers: Triggers,
    ready: Arc<AtomicBool>,
    mut on_config: impl FnMut(Option<&NicOperatorConfig>) + Send + 'static,
) {
    let any = || watcher::Config::default().any_semantic();
    let mut node_fingerprints = Fingerprints::default();
    let nodes = reflect(
        Api::<Node>::all(client.clone()),
        any(),
        writers.nodes,
        &triggers,
        move |n, deleted| node_change(&mut node_fingerprints, n, deleted),
        |n: &mut Node| n.status = None,
    );
    let mut planning = Fingerprints::default();
    let mut drain = Fingerprints::default();
    let node_states = reflect(
        Api::<NicNodeState>::all(client.clone()),
        any(),
        writers.node_states,
        &triggers,
        move |s, deleted| node_state_changes(&mut planning, &mut drain, s, deleted),
        |_| {},
    );
    let mut policy_selectors: HashMap<String, (u64, LabelSelector)> = HashMap::new();
    let policies = reflect(
        Api::<NicPolicy>::all(client.clone()),
        any(),
        writers.policies,
        &triggers,
        move |p, deleted| policy_change(&mut policy_selectors, p, deleted),
        |_| {},
    );
    let mut pool_fingerprints = Fingerprints::default();
    let pools = reflect(
        Api::<NicPool>::all(client.clone()),
        any(),
        writers.pools,
        &triggers,
        move |p, deleted| {
            spec_changed(&mut pool_fingerprints, p, deleted)
                .then_some(Change::Pool)
                .into_iter()
                .collect()
        },
        |_| {},
    );
    let mut network_fingerprints = Fingerprints::default();
    let networks = reflect(
        Api::<NicNetwork>::all(client.clone()),
        any(),
        writers.networks,
        &triggers,
        move |n, deleted| {
            spec_changed(&mut network_fingerprints, n, deleted)
                .then(|| Change::Network(ObjectRef::from_obj(n)))
                .into_iter()
                .collect()
        },
        |_| {},
    );
    let mut config_fingerprints = Fingerprints::default();
    let configs = reflect(
        Api::<NicOperatorConfig>::all(client.clone()),
        any(),
        writers.configs,
        &triggers,
        move |c, deleted| {
            let changed = spec_changed(&mut config_fingerprints, c, deleted);
            if changed && c.name_any() == OPERATOR_CONFIG_NAME {
                on_config(if deleted { None } else { Some(c) });
            }
            changed
                .then_some(Change::OperatorConfig)
                .into_iter()
                .collect()
        },
        |_| {},
    );
    // every NAD, for the network-resources injector; publishes nothing (no controller reads it)
    let all_nads = reflect(
        Api::<NetworkAttachmentDefinition>::all(client.clone()),
        any(),
        writers.all_nads,
        &triggers,
        |_, _| Vec::new(),
        |nad: &mut NetworkAttachmentDefinition| {
            nad.spec.config = None;
            // only the resource name is read; drop the rest (kubectl's last-applied copy, ...)
            nad.annotations_mut()
                .retain(|k, _| k == crds::ANNOTATION_NAD_RESOURCE_NAME);
        },
    );
    let nads = reflect(
        Api::<NetworkAttachmentDefinition>::all(client),
        any().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")),
        writers.nads,
        &triggers,
        |nad, _| {
            nad.labels()
                .get(LABEL_NETWORK)
                .zip(nad.namespace())
                .map(|(network, ns)| Change::Nad(ObjectRef::new(network).within(&ns)))
                .into_iter()
                .collect()
        },
        |_| {},
    );
    let readiness = async move {
        if stores.wait_until_ready().await.is_ok() {
            tracing::info!("watch caches filled");
            ready.store(true, Ordering::Release);
        }
    };
    tokio::join!(
        nodes,
        node_states,
        policies,
        pools,
        networks,
        configs,
        nads,
        all_nads,
        readiness
    );
}

/// The last fingerprint published per object, so that an update that changes nothing a
/// controller reads is not published.
#[derive(Debug, Default)]
pub struct Fingerprints(HashMap<String, u64>);

impl Fingerprints {
    /// Records `fp` for `key`; whether it differs from the one recorded before (or is new).
    pub fn changed(&mut self, key: String, fp: u64) -> bool {
        match self.0.entry(key) {
            Entry::Occupied(e) if *e.get() == fp => false,
            Entry::Occupied(mut e) => {
                e.insert(fp);
                true
            }
            Entry::Vacant(e) => {
                e.insert(fp);
                true
            }
        }
    }

    /// Forgets `key` (the object was deleted).
    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }
}

fn hash_of(f: impl FnOnce(&mut DefaultHasher)) -> u64 {
    let mut h = DefaultHasher::new();
    f(&mut h);
    h.finish()
}

fn key_of<K: Resource>(o: &K) -> String {
    match o.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", o.meta().name.as_deref().unwrap_or_default()),
        None => o.meta().name.clone().unwrap_or_default(),
    }
}

/// Whether an object's spec changed: a new `generation` (the API server bumps it on spec changes
/// only, never on status writes), a new object under the same name (`uid`), or a deletion.
/// Objects without a generation (not from an API server) count their `resourceVersion`.
pub fn spec_changed<K: Resource>(seen: &mut Fingerprints, o: &K, deleted: bool) -> bool {
    let key = key_of(o);
    if deleted {
        seen.remove(&key);
        return true;
    }
    let m = o.meta();
    let fp = hash_of(|h| {
        m.uid.hash(h);
        match m.generation {
            Some(g) => g.hash(h),
            None => m.resource_version.hash(h),
        }
    });
    seen.changed(key, fp)
}

/// Node status is rewritten by the kubelet every few minutes; only label or schedulability
/// changes matter to the controllers, so other updates are not published.
pub fn node_change(seen: &mut Fingerprints, node: &Node, deleted: bool) -> Vec<Change> {
    let name = node.name_any();
    if deleted {
        seen.remove(&name);
        return vec![Change::Node(name)];
    }
    let fp = hash_of(|h| {
        node.labels().hash(h);
        node.spec.as_ref().and_then(|s| s.unschedulable).hash(h);
        node.metadata.uid.hash(h);
    });
    if seen.changed(name.clone(), fp) {
        vec![Change::Node(name)]
    } else {
        Vec::new()
    }
}

/// The drain annotations (the agent's request and the operator's grant with their times).
const DRAIN_ANNOTATIONS: [&str; 5] = [
    ANNOTATION_DRAIN_REQUEST,
    ANNOTATION_DRAIN_REQUESTED_AT,
    ANNOTATION_DRAIN_GRANT,
    ANNOTATION_DRAIN_GRANTED_AT,
    ANNOTATION_DRAIN_RETRY_AFTER,
];

/// What a `NicNodeState` update means to the controllers. The agent writes its status often
/// (sync status, conditions, every VF's MAC and link state); the node's plan depends only on
/// the planning facts of the inventory ([`planner::planning_fingerprint`]), the spec (its
/// `generation`), the labels and owner the operator sets, and the finalizers and deletion
/// (orphan release), so only a change of those is a [`Change::NodeState`]. The drain arbiter
/// reads the drain annotations: their change is a [`Change::NodeDrain`].
pub fn node_state_changes(
    planning: &mut Fingerprints,
    drain: &mut Fingerprints,
    s: &NicNodeState,
    deleted: bool,
) -> Vec<Change> {
    let name = s.name_any();
    if deleted {
        planning.remove(&name);
        drain.remove(&name);
        return vec![Change::NodeState(name.clone()), Change::NodeDrain(name)];
    }
    let m = &s.metadata;
    let plan_fp = hash_of(|h| {
        m.uid.hash(h);
        m.generation.hash(h);
        if m.generation.is_none() {
            m.resource_version.hash(h);
        }
        s.labels().hash(h);
        for o in s.owner_references() {
            o.uid.hash(h);
        }
        s.finalizers().hash(h);
        m.deletion_timestamp.is_some().hash(h);
        let nics = s
            .status
            .as_ref()
            .map(|st| st.nics.as_slice())
            .unwrap_or_default();
        planner::planning_fingerprint(nics).hash(h);
    });
    let drain_fp = hash_of(|h| {
        m.uid.hash(h);
        let a = s.annotations();
        for k in DRAIN_ANNOTATIONS {
            a.get(k).hash(h);
        }
    });
    let mut out = Vec::new();
    if planning.changed(name.clone(), plan_fp) {
        out.push(Change::NodeState(name.clone()));
    }
    if drain.changed(name.clone(), drain_fp) {
        out.push(Change::NodeDrain(name));
    }
    out
}

/// A policy's spec change, carrying its node selector before and after (see
/// [`PolicyChange`]); `seen` holds the fingerprint and selector of every known policy.
pub fn policy_change(
    seen: &mut HashMap<String, (u64, LabelSelector)>,
    p: &NicPolicy,
    deleted: bool,
) -> Vec<Change> {
    let name = p.name_any();
    if deleted {
        let before = seen.remove(&name).map(|(_, s)| s);
        let before = before.as_ref().unwrap_or(&p.spec.node_selector);
        return vec![Change::Policy(PolicyChange::new(name, Some(before), None))];
    }
    let m = &p.metadata;
    let fp = hash_of(|h| {
        m.uid.hash(h);
        match m.generation {
            Some(g) => g.hash(h),
            None => m.resource_version.hash(h),
        }
    });
    let after = &p.spec.node_selector;
    match seen.insert(name.clone(), (fp, after.clone())) {
        Some((old, _)) if old == fp => Vec::new(),
        Some((_, before)) => vec![Change::Policy(PolicyChange::new(
            name,
            Some(&before),
            Some(after),
        ))],
        None => vec![Change::Policy(PolicyChange::new(name, None, Some(after)))],
    }
}

/// Watches `api` into `writer`, publishing `to_change` of every applied or deleted object and a
/// [`Change::Resync`] after every full (re)list. Watch errors are retried with the default
/// backoff (800 ms doubling to 30 s, as client-go).
async fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    triggers: &Triggers,
    mut to_change: impl FnMut(&K, bool) -> Vec<Change>,
    strip: impl FnMut(&mut K) + Send + 'static,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let mut strip = strip;
    let stream = watcher(api, config)
        .default_backoff()
        .modify(move |o: &mut K| {
            o.managed_fields_mut().clear();
            strip(o);
        })
        .reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let mut initialised = false;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Apply(o)) => {
                for c in to_change(&o, false) {
                    triggers.send(c);
                }
            }
            Ok(watcher::Event::Delete(o)) => {
                for c in to_change(&o, true) {
                    triggers.send(c);
                }
            }
            Ok(watcher::Event::InitApply(o)) => {
                // keeps the fingerprints current; the Resync below covers the objects
                let _ = to_change(&o, false);
            }
            Ok(watcher::Event::InitDone) => {
                if initialised {
                    tracing::debug!(%kind, "relisted");
                }
                initialised = true;
                triggers.send(Change::Resync);
            }
            Ok(watcher::Event::Init) => {}
            Err(error) => tracing::warn!(%kind, %error, "watch failed; retrying with backoff"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crds::{NicNodeStateSpec, NicPoolSpec, pool::NicPoolStatus};

    use super::*;
    use crate::controller::fixtures::{node, node_state, with_inventory};
    use planner::fixtures::cx6;

    #[test]
    fn status_writes_are_not_spec_changes() {
        let mut seen = Fingerprints::default();
        let mut pool = NicPool::new("p", NicPoolSpec::default());
        pool.metadata.uid = Some("u1".into());
        pool.metadata.generation = Some(1);
        pool.metadata.resource_version = Some("1".into());
        assert!(spec_changed(&mut seen, &pool, false), "new");
        pool.status = Some(NicPoolStatus::default());
        pool.metadata.resource_version = Some("2".into());
        assert!(!spec_changed(&mut seen, &pool, false), "status write");
        pool.metadata.generation = Some(2);
        assert!(spec_changed(&mut seen, &pool, false), "spec edit");
        pool.metadata.uid = Some("u2".into());
        assert!(spec_changed(&mut seen, &pool, false), "recreated");
        assert!(spec_changed(&mut seen, &pool, true), "deleted");
    }

    #[test]
    fn node_state_inventory_and_drain_changes_are_told_apart() {
        let (mut planning, mut drain) = (Fingerprints::default(), Fingerprints::default());
        let n = node("n1", &[]);
        let s = with_inventory(
            node_state("n1", &n, NicNodeStateSpec::default()),
            vec![cx6("0000:3b:00.0", "ens1f0")],
        );
        let first = node_state_changes(&mut planning, &mut drain, &s, false);
        assert_eq!(
            first,
            [
                Change::NodeState("n1".into()),
                Change::NodeDrain("n1".into())
            ]
        );
        let mut request = s.clone();
        request
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANNOTATION_DRAIN_REQUEST.into(), "evict-vf-pods".into());
        assert_eq!(
            node_state_changes(&mut planning, &mut drain, &request, false),
            [Change::NodeDrain("n1".into())]
        );
        let mut grown = request.clone();
        grown.status.as_mut().unwrap().nics[0].num_vfs = 8;
        assert_eq!(
            node_state_changes(&mut planning, &mut drain, &grown, false),
            [Change::NodeState("n1".into())]
        );
        let mut deleting = grown.clone();
        deleting.metadata.deletion_timestamp =
            Some(crds::k8s::Time(crds::k8s::jiff::Timestamp::now()));
        assert_eq!(
            node_state_changes(&mut planning, &mut drain, &deleting, false),
            [Change::NodeState("n1".into())]
        );
        assert_eq!(
            node_state_changes(&mut planning, &mut drain, &deleting, true).len(),
            2
        );
    }

    /// A fresh API server answers a list with 429 "storage is (re)initializing" until its
    /// watch cache is ready. The operator's client retries no 429 itself (see `crate::client`),
    /// so the watch must: it backs off, lists again, fills the cache and publishes the resync,
    /// instead of ending and leaving the controllers blind to every later change.
    #[tokio::test]
    async fn a_list_refused_while_the_server_starts_is_retried_after_a_backoff() {
        use std::time::{Duration, Instant};

        use http::Method;
        use kube::runtime::reflector;
        use serde_json::json;

        use crate::controller::fixtures::{mock_client, reply};

        let (client, mut server) = mock_client();
        let (cache, writer) = reflector::store::<NicPolicy>();
        let triggers = Triggers::new();
        let mut changes = triggers.subscribe();
        let watch = tokio::spawn(async move {
            reflect(
                Api::<NicPolicy>::all(client),
                watcher::Config::default().any_semantic(),
                writer,
                &triggers,
                |_, _| Vec::new(),
                |_| {},
            )
            .await;
        });
        let path = "/apis/smartnic.io/v1alpha1/nicpolicies";
        let (_, send) = server.expect(Method::GET, path).await;
        let refused = Instant::now();
        reply(
            send,
            429,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "storage is (re)initializing", "reason": "TooManyRequests",
                "details": {"retryAfterSeconds": 1}, "code": 429}),
        );
        let (_, send) =
            tokio::time::timeout(Duration::from_secs(10), server.expect(Method::GET, path))
                .await
                .expect("the refused list is tried again");
        assert!(
            refused.elapsed() >= Duration::from_millis(500),
            "listed again after {:?}, without backing off",
            refused.elapsed()
        );
        let mut p = planner::fixtures::policy("p1", 10, &["ens1f0"]);
        p.metadata.resource_version = Some("5".into());
        reply(
            send,
            200,
            json!({"apiVersion": "smartnic.io/v1alpha1", "kind": "NicPolicyList",
                "metadata": {"resourceVersion": "5"}, "items": [p]}),
        );
        let resync = tokio::time::timeout(Duration::from_secs(5), changes.next()).await;
        assert_eq!(
            resync.expect("a resync after the list"),
            Some(Change::Resync)
        );
        assert!(cache.get(&ObjectRef::new("p1")).is_some(), "cache filled");
        watch.abort();
    }

    #[test]
    fn node_status_updates_are_not_published() {
        let mut seen = Fingerprints::default();
        let mut n = node("n1", &[("a", "b")]);
        assert_eq!(node_change(&mut seen, &n, false).len(), 1);
        n.status = Some(Default::default());
        n.metadata.resource_version = Some("2".into());
        assert!(node_change(&mut seen, &n, false).is_empty());
        n.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("c".into(), "d".into());
        assert_eq!(
            node_change(&mut seen, &n, false),
            [Change::Node("n1".into())]
        );
    }
}
