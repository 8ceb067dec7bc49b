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

use std::{collections::BTreeMap, hint::black_box, time::Duration};

use crds::{
    NicNodeStateSpec, NicPolicy, RESOURCE_PREFIX,
    inventory::{EswitchMode, LinkType, Nic, NicInventory, Vf},
    k8s::{LabelSelector, LabelSelectorRequirement},
    policy::{NicPolicySpec, NicSelector, VfDeviceType},
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use planner::{PolicySet, with_device_plugin_config};

struct Node {
    labels: BTreeMap<String, String>,
    inventory: NicInventory,
}

fn pf(bus: u32, func: u32, name: &str, vendor: &str, device: &str, total: u32) -> Nic {
    Nic {
        pci_address: format!("0000:{bus:02x}:00.{func}"),
        name: Some(name.to_owned()),
        vendor_id: vendor.to_owned(),
        device_id: device.to_owned(),
        link_type: Some(LinkType::Eth),
        mtu: Some(1500),
        total_vfs: total,
        eswitch_mode: Some(EswitchMode::Legacy),
        ..Nic::default()
    }
}

/// Node `i`: rack `r<i%20>`, every third node a GPU node; 2 to 4 PFs (ConnectX-6 Dx dual port,
/// plus E810 ports on some nodes).
fn node(i: usize) -> Node {
    let mut labels = BTreeMap::new();
    labels.insert(
        "kubernetes.io/hostname".to_owned(),
        format!("worker-{i:05}"),
    );
    labels.insert("kubernetes.io/os".to_owned(), "linux".to_owned());
    labels.insert(
        "topology.kubernetes.io/rack".to_owned(),
        format!("r{}", i % 20),
    );
    labels.insert("gpu".to_owned(), i.is_multiple_of(3).to_string());
    let mut nics = vec![
        pf(0x3b, 0, "ens1f0", "15b3", "101d", 16),
        pf(0x3b, 1, "ens1f1", "15b3", "101d", 16),
    ];
    match i % 3 {
        0 => {}
        1 => nics.push(pf(0xaf, 0, "ens5f0", "8086", "159b", 64)),
        _ => {
            nics.push(pf(0xaf, 0, "ens5f0", "8086", "159b", 64));
            nics.push(pf(0xaf, 1, "ens5f1", "8086", "159b", 64));
        }
    }
    Node {
        labels,
        inventory: NicInventory { nics },
    }
}

fn selector(key: &str, values: &[&str]) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: key.to_owned(),
            operator: "In".to_owned(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }]),
        ..LabelSelector::default()
    }
}

/// 20 policies: GPU-node switchdev ranges on the ConnectX ports, per-rack VF partitions, Intel
/// DPDK pools, and a few conflicting ones that the planner must reject.
fn policies() -> Vec<NicPolicy> {
    let mut out = Vec::new();
    let mut add = |name: String,
                   node_selector: LabelSelector,
                   nic: NicSelector,
                   f: &dyn Fn(&mut NicPolicySpec)| {
        let mut spec = NicPolicySpec {
            node_selector,
            nic_selector: nic,
            num_vfs: 8,
            resource_name: name.replace('-', "_"),
            ..NicPolicySpec::default()
        };
        f(&mut spec);
        out.push(NicPolicy::new(&name, spec));
    };
    let cx = |pfs: &[&str]| NicSelector {
        vendor: Some("15b3".into()),
        device_id: Some("101d".into()),
        pf_names: pfs.iter().map(|s| (*s).to_owned()).collect(),
        ..NicSelector::default()
    };
    let intel = |pfs: &[&str]| NicSelector {
        vendor: Some("8086".into()),
        pf_names: pfs.iter().map(|s| (*s).to_owned()).collect(),
        ..NicSelector::default()
    };
    add(
        "gpu-rdma".into(),
        selector("gpu", &["true"]),
        cx(&["ens1f0#0-3", "ens1f1#0-3"]),
        &|s| {
            s.eswitch_mode = Some(EswitchMode::Switchdev);
            s.is_rdma = true;
            s.mtu = Some(9000);
            s.priority = 10;
        },
    );
    add(
        "gpu-ovs".into(),
        selector("gpu", &["true"]),
        cx(&["ens1f0#4-7", "ens1f1#4-7"]),
        &|s| {
            s.eswitch_mode = Some(EswitchMode::Switchdev);
            s.priority = 20;
        },
    );
    for rack in 0..10 {
        let racks = [format!("r{}", rack * 2), format!("r{}", rack * 2 + 1)];
        let racks: Vec<&str> = racks.iter().map(String::as_str).collect();
        add(
            format!("rack{rack}-net"),
            selector("topology.kubernetes.io/rack", &racks),
            cx(&["ens1f0#0-5"]),
            &|s| {
                s.priority = 50;
                s.mtu = Some(1500 + rack * 100);
            },
        );
    }
    add(
        "intel-dpdk".into(),
        selector("kubernetes.io/os", &["linux"]),
        intel(&["ens5f0#0-15"]),
        &|s| {
            s.num_vfs = 32;
            s.device_type = VfDeviceType::VfioPci;
            s.priority = 30;
        },
    );
    add(
        "intel-net".into(),
        selector("kubernetes.io/os", &["linux"]),
        intel(&["ens5f0#16-31", "ens5f1"]),
        &|s| {
            s.num_vfs = 32;
            s.priority = 40;
        },
    );
    add(
        "intel-too-many".into(),
        selector("kubernetes.io/os", &["linux"]),
        intel(&["ens5f1"]),
        &|s| {
            s.num_vfs = 128;
            s.priority = 5;
        },
    );
    add(
        "cx-whole".into(),
        selector("gpu", &["false"]),
        cx(&["ens1f1"]),
        &|s| s.priority = 60,
    );
    add(
        "cx-overlap".into(),
        selector("gpu", &["false"]),
        cx(&["ens1f1#2-3"]),
        &|s| s.priority = 70,
    );
    add(
        "cx-16".into(),
        selector("gpu", &["false"]),
        cx(&["ens1f0#6-7"]),
        &|s| {
            s.num_vfs = 16;
            s.priority = 80;
        },
    );
    add(
        "fallback".into(),
        selector("kubernetes.io/os", &["linux"]),
        cx(&["ens1f0#7"]),
        &|s| s.priority = 99,
    );
    add(
        "ib-nodes".into(),
        selector("fabric", &["ib"]),
        cx(&[]),
        &|s| {
            s.link_type = Some(LinkType::Ib);
            s.priority = 1;
        },
    );
    assert_eq!(out.len(), 20);
    out
}

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

/// `nic` with half of its capacity enabled as VFs, each on the host with a netdev, as an agent
/// reports it.
fn with_reported_vfs(mut nic: Nic) -> Nic {
    nic.num_vfs = nic.total_vfs / 2;
    let base = nic.pci_address[..8].to_owned();
    let name = nic.name.clone().unwrap_or_default();
    nic.vfs = (0..nic.num_vfs)
        .map(|i| Vf {
            vf_id: i,
            pci_address: format!("{base}{:02x}.{}", 2 + i / 8, i % 8),
            name: Some(format!("{name}v{i}")),
            driver: Some("mlx5_core".to_owned()),
            mac: Some(format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256)),
            mtu: Some(1500),
            iommu_group: Some(100 + i),
            numa_node: Some(0),
            ..Vf::default()
        })
        .collect();
    nic
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
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let mut node = node(i);
                node.inventory.nics = node
                    .inventory
                    .nics
                    .into_iter()
                    .map(with_reported_vfs)
                    .collect();
                node
            })
            .collect();
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
