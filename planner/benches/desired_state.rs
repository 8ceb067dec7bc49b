//! Desired node state for a whole cluster: 20 policies over 500, 5,000 and 50,000 nodes, each
//! node with 2-4 PFs. Measures what the controller does on a full resync: compile the policies
//! once ([`PolicySet::new`]) and plan every node ([`PolicySet::plan_node`]).
//!
//! A second group, `cluster_pass_with_agent_status`, is the operator's whole-cluster pass once
//! agents report: every inventory carries its VFs (as `NicNodeState.status` does), and each node
//! is planned, its device-plugin configuration rendered, and the result compared with the spec
//! it already has (the write is skipped when equal), over 1,000, 5,000 and 10,000 nodes.
//!
//! `cargo bench -p planner --bench desired_state`

use std::{hint::black_box, time::Duration};

use crds::{NicNodeStateSpec, RESOURCE_PREFIX};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use planner::{
    PolicySet,
    fixtures::cluster::{Node, node, policies, reported_node},
    with_device_plugin_config,
};

fn plan_cluster(set: &PolicySet, nodes: &[Node]) -> usize {
    let mut interfaces = 0;
    for n in nodes {
        interfaces += set.plan_node(&n.labels, &n.inventory).spec.interfaces.len();
    }
    interfaces
}

fn bench(c: &mut Criterion) {
    let policies = policies();
    // The workload must exercise composition and rejection, not only the happy path.
    let set = PolicySet::new(&policies);
    assert!(set.invalid().is_empty());
    let plans: Vec<_> = (0..3)
        .map(|i| {
            let n = node(i);
            set.plan_node(&n.labels, &n.inventory)
        })
        .collect();
    assert!(plans.iter().all(|p| p.spec.interfaces.len() >= 2));
    assert!(
        plans
            .iter()
            .any(|p| p.spec.interfaces.iter().any(|i| i.vf_groups.len() >= 2))
    );
    assert!(plans.iter().all(|p| !p.rejections.is_empty()));
    let mut group = c.benchmark_group("desired_state_20_policies");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for n in [500usize, 5_000, 50_000] {
        let nodes: Vec<Node> = (0..n).map(node).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("nodes", n), &nodes, |b, nodes| {
            b.iter(|| {
                let set = PolicySet::new(black_box(&policies));
                black_box(plan_cluster(&set, nodes))
            });
        });
    }
    group.finish();
}

/// The operator's pass for one node: plan, render the device-plugin configuration, and tell
/// whether the stored spec must be rewritten.
fn cluster_pass(set: &PolicySet, nodes: &[Node], stored: &[NicNodeStateSpec]) -> usize {
    let mut writes = 0;
    for (n, old) in nodes.iter().zip(stored) {
        let spec =
            with_device_plugin_config(set.plan_node(&n.labels, &n.inventory).spec, RESOURCE_PREFIX);
        if &spec != old {
            writes += 1;
        }
    }
    writes
}

fn bench_with_status(c: &mut Criterion) {
    let policies = policies();
    let mut group = c.benchmark_group("cluster_pass_with_agent_status");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for n in [1_000usize, 5_000, 10_000] {
        let nodes: Vec<Node> = (0..n).map(reported_node).collect();
        // the specs as stored after the previous pass: nothing changed, no write
        let set = PolicySet::new(&policies);
        let stored: Vec<NicNodeStateSpec> = nodes
            .iter()
            .map(|n| {
                with_device_plugin_config(
                    set.plan_node(&n.labels, &n.inventory).spec,
                    RESOURCE_PREFIX,
                )
            })
            .collect();
        assert!(
            stored
                .iter()
                .any(|s| !s.device_plugin.resource_list.is_empty())
        );
        assert_eq!(cluster_pass(&set, &nodes, &stored), 0);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("nodes", n), &nodes, |b, nodes| {
            b.iter(|| {
                let set = PolicySet::new(black_box(&policies));
                black_box(cluster_pass(&set, nodes, &stored))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_with_status);
criterion_main!(benches);
