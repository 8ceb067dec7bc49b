//! One watch per kind, feeding the [`Stores`] and publishing
//! [`Change`]s. Runs on every replica (the webhook reads the caches too); the reconcilers
//! subscribe only on the leader.
//!
//! ```text
//!  apiserver ──watch──► reflector ──► Store<K> (Context.stores) ◄── reconcilers, webhook
//!                           │
//!                           └──► Change ──broadcast──► node-state / network / drain / status
//! ```

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
    LABEL_MANAGED_BY, LABEL_NETWORK, MANAGED_BY, NetworkAttachmentDefinition, NicNetwork,
    NicNodeState, NicOperatorConfig, NicPolicy, NicPool,
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

use super::triggers::{Change, Triggers};
use crate::context::{StoreWriters, Stores};

/// Runs every watch until the process stops; sets `ready` once every cache the reconcilers and
/// the webhook need has had its first full list.
pub async fn run(
    client: Client,
    stores: Stores,
    writers: StoreWriters,
    triggers: Triggers,
    ready: Arc<AtomicBool>,
) {
    let any = || watcher::Config::default().any_semantic();
    let mut node_fingerprints: HashMap<String, u64> = HashMap::new();
    let nodes = reflect(
        Api::<Node>::all(client.clone()),
        any(),
        writers.nodes,
        &triggers,
        move |n, deleted| node_change(&mut node_fingerprints, n, deleted),
        |n: &mut Node| n.status = None,
    );
    let node_states = reflect(
        Api::<NicNodeState>::all(client.clone()),
        any(),
        writers.node_states,
        &triggers,
        |s, _| Some(Change::NodeState(s.name_any())),
        |_| {},
    );
    let policies = reflect(
        Api::<NicPolicy>::all(client.clone()),
        any(),
        writers.policies,
        &triggers,
        |_, _| Some(Change::Policy),
        |_| {},
    );
    let pools = reflect(
        Api::<NicPool>::all(client.clone()),
        any(),
        writers.pools,
        &triggers,
        |_, _| Some(Change::Pool),
        |_| {},
    );
    let networks = reflect(
        Api::<NicNetwork>::all(client.clone()),
        any(),
        writers.networks,
        &triggers,
        |n, _| Some(Change::Network(ObjectRef::from_obj(n))),
        |_| {},
    );
    let configs = reflect(
        Api::<NicOperatorConfig>::all(client.clone()),
        any(),
        writers.configs,
        &triggers,
        |_, _| Some(Change::OperatorConfig),
        |_| {},
    );
    let nads = reflect(
        Api::<NetworkAttachmentDefinition>::all(client),
        any().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")),
        writers.nads,
        &triggers,
        |nad, _| {
            let network = nad.labels().get(LABEL_NETWORK)?;
            Some(Change::Nad(
                ObjectRef::new(network).within(&nad.namespace()?),
            ))
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
        readiness
    );
}

/// Node status is rewritten by the kubelet every few minutes; only label or schedulability
/// changes matter to the controllers, so other updates are not published.
fn node_change(seen: &mut HashMap<String, u64>, node: &Node, deleted: bool) -> Option<Change> {
    let name = node.name_any();
    if deleted {
        seen.remove(&name);
        return Some(Change::Node(name));
    }
    let mut h = DefaultHasher::new();
    node.labels().hash(&mut h);
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .hash(&mut h);
    node.metadata.uid.hash(&mut h);
    let fp = h.finish();
    match seen.entry(name.clone()) {
        Entry::Occupied(e) if *e.get() == fp => None,
        Entry::Occupied(mut e) => {
            e.insert(fp);
            Some(Change::Node(name))
        }
        Entry::Vacant(e) => {
            e.insert(fp);
            Some(Change::Node(name))
        }
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
    mut to_change: impl FnMut(&K, bool) -> Option<Change>,
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
                if let Some(c) = to_change(&o, false) {
                    triggers.send(c);
                }
            }
            Ok(watcher::Event::Delete(o)) => {
                if let Some(c) = to_change(&o, true) {
                    triggers.send(c);
                }
            }
            Ok(watcher::Event::InitApply(o)) => {
                // keeps the node fingerprints current; the Resync below covers the objects
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
