//! Two "nodes" (network namespaces, each with its own OVS, userspace datapath) joined by a
//! Geneve overlay built by this crate; pods attached by veth through the `attach` API (what the
//! CNI's `mode: ovs` calls) on two networks with different VNIs: the library's side, with the
//! metrics and the trace. The acceptance test through the CNI binary itself (isolation between
//! networks, CHECK, DEL without the pod's namespace) is `cni/tests/root_ovs_overlay.rs`. Needs
//! root and Open vSwitch; otherwise prints `SKIP <name>: <reason>` and returns.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Netns, OvsInstance, skip};
use nic::netns::{NetnsRef, spawn_in_netns};
use offload::{
    Ovs,
    appctl::Appctl,
    attach::{Attacher, PodAttachment},
    decision::Datapath,
    evidence::{collect::Collector, metrics},
    openflow::Ofctl,
    overlay::{GENEVE_PORT, Overlay, Peer},
    trace,
    vswitch::FailMode,
};

const RED: u32 = 100;
const BLUE: u32 = 200;

struct Node {
    ns: Netns,
    ovs_proc: OvsInstance,
    ovs: Ovs,
    overlay: Overlay,
    underlay_ip: &'static str,
}

/// br-phy (owns the underlay veth, carries the tunnel endpoint IP) and br-int (the overlay).
async fn node(ns: Netns, underlay_ip: &'static str, hw: &str) -> Node {
    let ovs_proc = OvsInstance::start(&ns);
    let ovs = Ovs::connect(&ovs_proc.remote()).await.unwrap();
    ovs.bridge()
        .add("br-phy")
        .datapath_type("netdev")
        .other_config("hwaddr", hw)
        .execute()
        .await
        .unwrap();
    ovs.port().add("br-phy", "u0").execute().await.unwrap();
    ns.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{underlay_ip}/24"),
        "dev",
        "br-phy",
    ]);
    ns.exec(&["ip", "link", "set", "br-phy", "up"]);
    ovs.bridge()
        .add("br-int")
        .datapath_type("netdev")
        .fail_mode(FailMode::Secure)
        .execute()
        .await
        .unwrap();
    let overlay = Overlay::new(
        ovs.clone(),
        "br-int",
        Ofctl::bridge(ovs_proc.dir.path(), "br-int"),
    )
    .with_lock_file(ovs_proc.dir.path().join("overlay.lock"));
    Node {
        ns,
        ovs_proc,
        ovs,
        overlay,
        underlay_ip,
    }
}

/// Attaches a pod netns by veth, the way the CNI will: inside the node's namespace.
async fn attach(node: &Node, pod: &Netns, network: &str, vni: u32, ip: &str) -> PodAttachment {
    let attacher = Attacher::new(node.overlay.clone());
    let pod_ref = NetnsRef::path(pod.path());
    let (net, cid) = (network.to_string(), pod.name.clone());
    let a = spawn_in_netns(NetnsRef::path(node.ns.path()), move || async move {
        attacher
            .veth(pod_ref, "eth0")
            .network(&net, vni)
            .pod(&format!("default/{cid}"))
            .container_id(&cid)
            .mtu(1400)
            .execute()
            .await
    })
    .await
    .unwrap()
    .unwrap();
    pod.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    a
}

fn pings(from: &Netns, to: &str, within: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if from.try_exec(&["ping", "-c1", "-W1", to]) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_two_vnis_ping_across_nodes_with_metrics_and_trace() {
    if skip("pods_on_two_vnis_ping_across_nodes_with_metrics_and_trace") {
        return;
    }
    let (ha, hb) = (Netns::new("snA"), Netns::new("snB"));
    common::sh(&[
        "ip", "link", "add", "u0", "netns", &ha.name, "type", "veth", "peer", "name", "u0",
        "netns", &hb.name,
    ]);
    ha.exec(&["ip", "link", "set", "u0", "up"]);
    hb.exec(&["ip", "link", "set", "u0", "up"]);
    let a = node(ha, "172.31.0.1", "02:00:00:00:00:0a").await;
    let b = node(hb, "172.31.0.2", "02:00:00:00:00:0b").await;
    // Each node learns the other from its published endpoint.
    for (me, other, name) in [(&a, &b, "node-b"), (&b, &a, "node-a")] {
        let change = me
            .overlay
            .set_peers(
                &[Peer {
                    node: name.into(),
                    ip: other.underlay_ip.parse().unwrap(),
                }],
                GENEVE_PORT,
            )
            .await
            .unwrap();
        assert_eq!(change.added.len(), 1, "{change:?}");
    }
    // The same subnet on both networks: only the VNI keeps them apart.
    let (ar, ab, br, bb) = (
        Netns::new("snpar"),
        Netns::new("snpab"),
        Netns::new("snpbr"),
        Netns::new("snpbb"),
    );
    let att_ar = attach(&a, &ar, "default/red", RED, "10.100.0.1").await;
    attach(&a, &ab, "default/blue", BLUE, "10.100.0.11").await;
    attach(&b, &br, "default/red", RED, "10.100.0.2").await;
    attach(&b, &bb, "default/blue", BLUE, "10.100.0.12").await;
    assert_eq!(att_ar.vni, Some(RED));
    assert!(
        att_ar.reason.contains("no offload-capable device"),
        "{att_ar:?}"
    );
    // tx checksum offload is off in the pod (userspace datapath).
    let k = ar.exec(&["ethtool", "-k", "eth0"]);
    assert!(k.contains("tx-checksumming: off"), "{k}");

    assert!(
        pings(&ar, "10.100.0.2", Duration::from_secs(5)),
        "red A -> red B over Geneve"
    );
    assert!(
        pings(&ab, "10.100.0.12", Duration::from_secs(5)),
        "blue A -> blue B over Geneve"
    );
    assert!(
        !pings(&ar, "10.100.0.12", Duration::from_secs(2)),
        "red must not reach blue (B)"
    );

    // The encapsulation really is Geneve with each network's VNI.
    let dp = a
        .ovs_proc
        .appctl(&["dpctl/dump-flows", "netdev@ovs-netdev"]);
    assert!(
        dp.contains("geneve(vni=0x64)") && dp.contains("geneve(vni=0xc8)"),
        "{dp}"
    );

    // The report: every flow in the userspace datapath, and why.
    let appctl = Appctl::connect(&a.ovs_proc.vswitchd_ctl()).await.unwrap();
    let report = Collector::new(a.ovs.clone(), appctl.clone(), "node-a", "br-int")
        .report()
        .await
        .unwrap();
    assert_eq!(report.datapath, Datapath::Netdev);
    assert!(report.counts.ovs > 0 && report.counts.hardware == 0 && report.counts.tc == 0);
    assert_eq!(report.ratio, 0.0);
    let red = report
        .attachments
        .iter()
        .find(|x| x.info.port == att_ar.port)
        .unwrap();
    assert!(red.counts.ovs > 0, "{red:#?}");
    assert!(red.flows.iter().all(|f| f.flow.dp == "ovs"));
    assert!(
        red.fallbacks
            .iter()
            .any(|f| f.contains("no offload-capable device")),
        "{:?}",
        red.fallbacks
    );
    assert!(
        report
            .networks
            .iter()
            .any(|n| n.vni == RED && n.counts.ovs > 0)
    );
    let prom = metrics::render(&report);
    assert!(
        prom.contains(
            "smartnic_offload_ratio{node=\"node-a\",network=\"default/red\",vni=\"100\"} 0"
        ),
        "{prom}"
    );
    // The trace of the red pod: veth → OVS port → rules → datapath → tunnel → node-b.
    let hops = trace::trace_attachment(&a.ovs, &appctl, "br-int", red, "ff:ff:ff:ff:ff:ff")
        .await
        .unwrap();
    let kinds: Vec<&str> = hops.iter().map(|h| h.hop.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "veth",
            "ovs-port",
            "openflow",
            "datapath",
            "tunnel",
            "remote-node"
        ],
        "{}",
        trace::render(&hops)
    );
    assert!(
        hops[5].name.contains("node-b (172.31.0.2)"),
        "{}",
        trace::render(&hops)
    );
    assert_eq!(hops[3].at, trace::Where::Software);
    println!("{}", trace::render(&hops));

    // DEL: the port and the veth go; the pod is cut off; nothing else changes.
    let port = att_ar.port.clone();
    let attacher = Attacher::new(a.overlay.clone());
    spawn_in_netns(NetnsRef::path(a.ns.path()), move || async move {
        attacher.detach(&port).execute().await
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!a.ns.try_exec(&["ip", "link", "show", &att_ar.port]));
    assert!(
        !a.ovs_proc
            .vsctl(&["list-ports", "br-int"])
            .contains(&att_ar.port)
    );
    assert!(
        pings(&ab, "10.100.0.12", Duration::from_secs(3)),
        "blue still works"
    );
    drop((ar, ab, br, bb));
    let _ = (&a.ovs, &b.ovs);
}
