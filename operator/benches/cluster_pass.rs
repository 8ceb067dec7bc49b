//! The operator's whole-cluster pass with agents writing status, through the controllers' own
//! reconcile functions (caches filled in memory, the API server answered in-process):
//! 20 policies (`planner::fixtures::cluster`), every node's inventory with its VFs as the agent
//! reports it, 20 `NicNetwork`s rendered to NADs.
//!
//! - `operator_cluster_pass/nodes/N`: what a resync costs: the node-state reconcile of every
//!   node (plan, device-plugin configuration, compare with the stored spec), the status pass
//!   planning every node, the drain pass and every network's NAD. In steady state (the specs,
//!   statuses and NADs as the previous pass left them), so no write is needed: the benchmark
//!   stops if a pass makes any API write.
//! - `operator_one_node_change/nodes/N`: one agent's inventory change (a PF's
//!   `sriov_totalvfs`): the watch's fingerprint, that node's reconcile and the status pass,
//!   which plans only that node. `nodes_as_before/N` is the same change handled as before
//!   per-node re-planning: the status pass plans every node and the drain pass runs too.
//!
//! `cargo bench -p operator --bench cluster_pass` (not run by CI).

// a benchmark's setup that fails is a broken benchmark: stop at once
#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    convert::Infallible,
    hint::black_box,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use crds::{
    LABEL_DEVICE_PLUGIN, NetworkAttachmentDefinition, NicNetwork, NicNetworkSpec, NicNodeState,
    RESOURCE_PREFIX, node_state::NicNodeStateStatus,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use k8s_openapi::api::core::v1::Node;
use kube::{
    Client, Resource,
    client::Body,
    runtime::{
        reflector::{ObjectRef, store::Writer},
        watcher,
    },
};
use operator::{
    context::{Context, StoreWriters, Stores},
    controller::{
        drain, network, node_state, status,
        triggers::Change,
        watches::{Fingerprints, node_state_changes},
    },
    metrics::Metrics,
};
use planner::{
    PolicySet,
    fixtures::cluster::{policies, reported_node},
    with_device_plugin_config,
};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

/// Every call answered at once with its own body (plus the spec a status answer needs to
/// parse); the last body per path is kept, to feed the caches as their watches would.
#[derive(Clone, Default)]
struct Echo {
    calls: Arc<AtomicUsize>,
    last: Arc<Mutex<HashMap<String, Value>>>,
}

impl Echo {
    fn client(&self) -> Client {
        let echo = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let echo = echo.clone();
            async move {
                echo.calls.fetch_add(1, Ordering::Relaxed);
                let path = req.uri().path().to_owned();
                let bytes = req.into_body().collect_bytes().await.unwrap_or_default();
                let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                if body.get("spec").is_none() && path.contains("/nicpolicies/") {
                    body["spec"] = json!({"nodeSelector": {}, "nicSelector": {}, "numVfs": 1, "resourceName": "x"});
                } else if body.get("spec").is_none() && path.contains("/nicnetworks/") {
                    body["spec"] = json!({"resourceName": "x"});
                }
                if body.is_object() {
                    body["metadata"]["resourceVersion"] = json!("2");
                }
                echo.last.lock().unwrap().insert(path, body.clone());
                let response = Response::builder()
                    .status(200)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap();
                Ok::<_, Infallible>(response)
            }
        });
        Client::new(service, "default")
    }
}

fn put<K>(w: &mut Writer<K>, obj: K)
where
    K: Resource + Clone,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    w.apply_watcher_event(&watcher::Event::Apply(obj));
}

struct Cluster {
    rt: Runtime,
    ctx: Arc<Context>,
    writers: StoreWriters,
    echo: Echo,
    names: Vec<String>,
}

fn name(i: usize) -> String {
    format!("worker-{i:05}")
}

/// `n` nodes whose node states carry the specs the operator planned (steady state), the
/// device-plugin label where a pool exists, 20 policies and 20 networks.
fn cluster(n: usize) -> Cluster {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stores, mut writers) = Stores::new();
    let echo = Echo::default();
    let ctx = rt.block_on(async {
        Arc::new(Context::new(
            echo.client(),
            stores.clone(),
            Arc::new(Metrics::new()),
            "smartnic-system",
            Some("bench".into()),
        ))
    });
    let policies = policies();
    let set = PolicySet::new(&policies);
    for (i, p) in policies.iter().enumerate() {
        let mut p = p.clone();
        p.metadata.generation = Some(1);
        p.metadata.uid = Some(format!("uid-p{i}"));
        put(&mut writers.policies, p);
    }
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let generated = reported_node(i);
        let spec = with_device_plugin_config(
            set.plan_node(&generated.labels, &generated.inventory).spec,
            RESOURCE_PREFIX,
        );
        let mut node = Node::default();
        node.metadata.name = Some(name(i));
        node.metadata.uid = Some(format!("uid-{i}"));
        let mut labels = generated.labels;
        if !spec.device_plugin.resource_list.is_empty() {
            labels.insert(LABEL_DEVICE_PLUGIN.to_owned(), "true".to_owned());
        }
        node.metadata.labels = Some(labels);
        let mut state = NicNodeState::new(&name(i), spec);
        state.metadata.labels = Some(node_state::node_state_labels(&name(i)));
        state.metadata.owner_references = node.owner_ref(&()).map(|o| vec![o]);
        state.metadata.generation = Some(1);
        state.metadata.uid = Some(format!("uid-s{i}"));
        state.status = Some(NicNodeStateStatus {
            nics: generated.inventory.nics,
            ..Default::default()
        });
        put(&mut writers.nodes, node);
        put(&mut writers.node_states, state);
        names.push(name(i));
    }
    for (i, p) in policies.iter().enumerate() {
        let mut net = NicNetwork::new(
            &format!("net-{i}"),
            NicNetworkSpec {
                resource_name: Some(p.spec.resource_name.clone()),
                vlan: Some(100 + i as u16),
                ipam: Some(json!({"type": "whereabouts", "range": format!("10.{i}.0.0/16")})),
                ..Default::default()
            },
        );
        net.metadata.namespace = Some("default".into());
        net.metadata.generation = Some(1);
        net.metadata.uid = Some(format!("uid-net{i}"));
        put(&mut writers.networks, net);
    }
    let mut c = Cluster {
        rt,
        ctx,
        writers,
        echo,
        names,
    };
    // two passes: the first writes statuses and NADs, which go back into the caches
    for _ in 0..2 {
        c.whole_pass();
        c.feed_back();
    }
    c
}

impl Cluster {
    fn whole_pass(&self) -> usize {
        let before = self.echo.calls.load(Ordering::Relaxed);
        let ctx = self.ctx.clone();
        let names = &self.names;
        self.rt.block_on(async {
            for name in names {
                let node = ctx.stores.nodes.get(&ObjectRef::new(name)).unwrap();
                node_state::reconcile(node, ctx.clone()).await.unwrap();
            }
            status::relevant(&ctx, &Change::Resync);
            status::reconcile(ctx.clone()).await.unwrap();
            drain::reconcile(ctx.clone()).await.unwrap();
            for net in ctx.stores.networks.state() {
                network::reconcile(net, ctx.clone()).await.unwrap();
            }
        });
        self.echo.calls.load(Ordering::Relaxed) - before
    }

    /// What the watches would deliver after the writes: policy and network statuses, NADs.
    fn feed_back(&mut self) {
        let last = std::mem::take(&mut *self.echo.last.lock().unwrap());
        for (path, body) in last {
            if let Some(rest) = path.strip_prefix("/apis/smartnic.io/v1alpha1/nicpolicies/") {
                let name = rest.trim_end_matches("/status");
                let cached = self.ctx.stores.policies.get(&ObjectRef::new(name)).unwrap();
                let mut p = (*cached).clone();
                p.status = serde_json::from_value(body["status"].clone()).ok();
                put(&mut self.writers.policies, p);
            } else if path.contains("/nicnetworks/") {
                let name = path.rsplit('/').nth(1).unwrap();
                let r = ObjectRef::new(name).within("default");
                let mut net = (*self.ctx.stores.networks.get(&r).unwrap()).clone();
                net.status = serde_json::from_value(body["status"].clone()).ok();
                put(&mut self.writers.networks, net);
            } else if path.contains("/network-attachment-definitions/") {
                let nad: NetworkAttachmentDefinition = serde_json::from_value(body).unwrap();
                put(&mut self.writers.nads, nad);
            }
        }
    }

    /// Node `i`'s agent reports a new `sriov_totalvfs` on its first PF; the operator handles it.
    fn one_node_change(
        &mut self,
        i: usize,
        fps: &mut (Fingerprints, Fingerprints),
        as_before: bool,
    ) {
        let name = &self.names[i];
        let mut state = (*self
            .ctx
            .stores
            .node_states
            .get(&ObjectRef::new(name))
            .unwrap())
        .clone();
        let nics = &mut state.status.as_mut().unwrap().nics;
        // 16 <-> 32: a planning fact changes, the plan itself does not
        nics[0].total_vfs = 48 - nics[0].total_vfs;
        put(&mut self.writers.node_states, state.clone());
        let changes = node_state_changes(&mut fps.0, &mut fps.1, &state, false);
        assert_eq!(changes, [Change::NodeState(name.clone())]);
        let ctx = self.ctx.clone();
        self.rt.block_on(async {
            for c in &changes {
                status::relevant(&ctx, c);
            }
            if as_before {
                status::relevant(&ctx, &Change::Resync);
            }
            let node = ctx.stores.nodes.get(&ObjectRef::new(name)).unwrap();
            node_state::reconcile(node, ctx.clone()).await.unwrap();
            status::reconcile(ctx.clone()).await.unwrap();
            if as_before {
                drain::reconcile(ctx.clone()).await.unwrap();
            }
        });
    }
}

fn bench(c: &mut Criterion) {
    let mut pass = c.benchmark_group("operator_cluster_pass");
    pass.sample_size(10)
        .measurement_time(Duration::from_secs(15));
    let mut clusters = Vec::new();
    for n in [1_000usize, 5_000, 10_000] {
        let cl = cluster(n);
        let writes = cl.whole_pass();
        eprintln!("{n} nodes: {writes} API writes in a steady-state pass");
        // the claim this benchmark rests on: at steady state a pass writes nothing
        assert_eq!(
            writes, 0,
            "{n} nodes: a steady-state pass made {writes} API writes"
        );
        pass.throughput(Throughput::Elements(n as u64));
        pass.bench_with_input(BenchmarkId::new("nodes", n), &cl, |b, cl| {
            b.iter(|| {
                let writes = cl.whole_pass();
                assert_eq!(writes, 0, "{n} nodes: a steady-state pass wrote");
                black_box(writes)
            });
        });
        clusters.push((n, cl));
    }
    pass.finish();

    let mut one = c.benchmark_group("operator_one_node_change");
    one.sample_size(10).measurement_time(Duration::from_secs(5));
    for (n, mut cl) in clusters {
        let mut fps = (Fingerprints::default(), Fingerprints::default());
        for s in cl.ctx.stores.node_states.state() {
            node_state_changes(&mut fps.0, &mut fps.1, &s, false);
        }
        let mut i = 0;
        one.bench_function(BenchmarkId::new("nodes", n), |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                cl.one_node_change(i, &mut fps, false);
            });
        });
        one.bench_function(BenchmarkId::new("nodes_as_before", n), |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                cl.one_node_change(i, &mut fps, true);
            });
        });
    }
    one.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
