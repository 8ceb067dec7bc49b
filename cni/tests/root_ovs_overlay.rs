//! Issue 11's acceptance through the CNI: two "nodes" (network namespaces, each with its own
//! Open vSwitch, userspace datapath) joined by Geneve; pods attached by the `smartnic` binary in
//! `mode: ovs`, invoked as a runtime invokes it (CNI_* environment, config on stdin) inside each
//! node's namespace, on two networks with different VNIs and the same subnet. The peers come
//! from the nodes' published endpoints (`node::tunnel_endpoint`, `PeerSync`), as the agent does. Pods ping across
//! nodes within a network and not across networks; the offload report says `dp:ovs` with the
//! reason "no offload-capable device"; CHECK passes; DEL (twice, and after the pod's namespace
//! is gone) leaves no port, veth or journal. Needs root and Open vSwitch; otherwise prints
//! `SKIP <name>: <reason>` and returns.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../offload/tests/common/mod.rs"]
mod ovs_common;

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use nic::netns::{NetnsRef, spawn_in_netns};
use offload::{
    Ovs,
    appctl::Appctl,
    decision::Datapath,
    evidence::collect::Collector,
    overlay::{GENEVE_PORT, NodeEndpoint, Overlay, PeerSync},
    vswitch::FailMode,
};
use ovs_common::{Netns, OvsInstance, skip};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_smartnic");
const RED: u32 = 100;
const BLUE: u32 = 200;

struct Node {
    name: &'static str,
    ns: Netns,
    ovs_proc: OvsInstance,
    ovs: Ovs,
    overlay: Overlay,
    ip: &'static str,
    state: tempfile::TempDir,
}

/// What the agent does on a node: br-phy owns the underlay and carries the endpoint IP, br-int
/// is the overlay bridge (userspace datapath, fail_mode=secure).
async fn node(name: &'static str, ns: Netns, ip: &'static str, hw: &str) -> Node {
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
    ns.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "br-phy"]);
    ns.exec(&["ip", "link", "set", "br-phy", "up"]);
    ovs.bridge()
        .add("br-int")
        .datapath_type("netdev")
        .fail_mode(FailMode::Secure)
        .execute()
        .await
        .unwrap();
    let overlay = Overlay::in_rundir(ovs.clone(), ovs_proc.dir.path(), "br-int");
    Node {
        name,
        ns,
        ovs_proc,
        ovs,
        overlay,
        ip,
        state: tempfile::tempdir().unwrap(),
    }
}

fn conf(network: &str, vni: u32, ip: &str) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": network, "type": "smartnic", "mode": "ovs",
        "bridge": "br-int", "mtu": 1400, "geneve": {"vni": vni},
        "ipam": {"type": "static", "addresses": [{"address": format!("{ip}/24")}]}
    })
}

/// Runs the plugin in the node's namespace as a runtime would; (exit ok, stdout JSON).
fn cni(node: &Node, command: &str, id: &str, netns: &Path, conf: &Value) -> (bool, Value) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &node.ns.name, BIN])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .env(
            "CNI_ARGS",
            format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME={id}"),
        )
        .env("OVS_RUNDIR", node.ovs_proc.dir.path())
        .env("SMARTNIC_CNI_STATE_DIR", node.state.path())
        .env("SMARTNIC_CNI_ALLOW_LIST", allow_list(node.state.path()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{command}: {e}: {stdout}"))
    };
    if !out.status.success() {
        eprintln!(
            "{command} {id} failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (out.status.success(), v)
}

fn add(node: &Node, pod: &Netns, network: &str, vni: u32, ip: &str) -> Value {
    let (ok, v) = cni(node, "ADD", &pod.name, &pod.path(), &conf(network, vni, ip));
    assert!(ok, "ADD {} on {}: {v}", pod.name, node.name);
    v
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
async fn pods_attached_by_the_cni_ping_within_their_vni_across_nodes_only() {
    let name = "pods_attached_by_the_cni_ping_within_their_vni_across_nodes_only";
    if skip(name) {
        return;
    }
    let (ha, hb) = (Netns::new("scA"), Netns::new("scB"));
    ovs_common::sh(&[
        "ip", "link", "add", "u0", "netns", &ha.name, "type", "veth", "peer", "name", "u0",
        "netns", &hb.name,
    ]);
    ha.exec(&["ip", "link", "set", "u0", "up"]);
    hb.exec(&["ip", "link", "set", "u0", "up"]);
    let a = node("node-a", ha, "172.31.1.1", "02:00:00:00:01:0a").await;
    let b = node("node-b", hb, "172.31.1.2", "02:00:00:00:01:0b").await;
    // What the agents do: each publishes the endpoint of its uplink, and learns its peers
    // from every node's published endpoint.
    let mut published = Vec::new();
    for n in [&a, &b] {
        let ip = spawn_in_netns(NetnsRef::path(n.ns.path()), || async {
            offload::node::tunnel_endpoint("br-phy").await
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(ip.to_string(), n.ip);
        published.push(NodeEndpoint::new(n.name, Some(ip.to_string())));
    }
    for me in [&a, &b] {
        let mut sync = PeerSync::new(me.overlay.clone(), me.name, GENEVE_PORT);
        let own = Some(me.ip.parse().unwrap());
        let out = sync.apply(own, &published).await.unwrap();
        assert_eq!(out.set.peers.len(), 1, "{out:?}");
        assert_eq!(out.change.unwrap().added.len(), 1);
        assert!(sync.apply(own, &published).await.unwrap().change.is_none());
    }
    // The same subnet on both networks: only the VNI keeps them apart.
    let (ar, ab, br, bb) = (
        Netns::new("scpar"),
        Netns::new("scpab"),
        Netns::new("scpbr"),
        Netns::new("scpbb"),
    );
    let res_ar = add(&a, &ar, "red", RED, "10.100.0.1");
    add(&a, &ab, "blue", BLUE, "10.100.0.11");
    add(&b, &br, "red", RED, "10.100.0.2");
    add(&b, &bb, "blue", BLUE, "10.100.0.12");

    // The result: the decision and why, the pod interface, the host port.
    let ext = &res_ar["smartnic.io/ovs"];
    assert_eq!(ext["attachment"], "veth", "{res_ar:#}");
    assert_eq!(ext["reason"], "no offload-capable device");
    assert_eq!(ext["vni"], RED);
    assert_eq!(ext["bridge"], "br-int");
    let port = ext["port"].as_str().unwrap().to_string();
    assert_eq!(res_ar["interfaces"][0]["name"], "eth0");
    assert_eq!(res_ar["interfaces"][0]["mtu"], 1400);
    assert_eq!(res_ar["interfaces"][1]["name"], port.as_str());
    assert_eq!(res_ar["ips"][0]["address"], "10.100.0.1/24");
    assert!(a.ovs_proc.vsctl(&["list-ports", "br-int"]).contains(&port));
    let ext_ids = a
        .ovs_proc
        .vsctl(&["get", "interface", &port, "external_ids"]);
    assert!(
        ext_ids.contains("\"smartnic.io/vni\"=\"100\"")
            && ext_ids.contains("\"smartnic.io/pod\"=\"default/scpar"),
        "{ext_ids}"
    );
    // tx checksum offload is off in the pod (userspace datapath).
    let k = ar.exec(&["ethtool", "-k", "eth0"]);
    assert!(k.contains("tx-checksumming: off"), "{k}");

    assert!(
        pings(&ar, "10.100.0.2", Duration::from_secs(5)),
        "red A -> red B over Geneve"
    );
    assert!(
        pings(&bb, "10.100.0.11", Duration::from_secs(5)),
        "blue B -> blue A over Geneve"
    );
    assert!(
        !pings(&ar, "10.100.0.12", Duration::from_secs(2)),
        "red must not reach blue (B)"
    );
    assert!(
        !pings(&ar, "10.100.0.11", Duration::from_secs(2)),
        "red must not reach blue (A)"
    );
    let dp = a
        .ovs_proc
        .appctl(&["dpctl/dump-flows", "netdev@ovs-netdev"]);
    assert!(
        dp.contains("geneve(vni=0x64)") && dp.contains("geneve(vni=0xc8)"),
        "{dp}"
    );

    // CHECK with the ADD's result.
    let mut check = conf("red", RED, "10.100.0.1");
    check["prevResult"] = res_ar.clone();
    let (ok, v) = cni(&a, "CHECK", &ar.name, &ar.path(), &check);
    assert!(ok, "CHECK: {v}");

    // The report: every flow in the userspace datapath, and why.
    let appctl = Appctl::connect(&a.ovs_proc.vswitchd_ctl()).await.unwrap();
    let report = Collector::new(a.ovs.clone(), appctl, "node-a", "br-int")
        .report()
        .await
        .unwrap();
    assert_eq!(report.datapath, Datapath::Netdev);
    assert!(report.counts.ovs > 0 && report.counts.hardware == 0 && report.counts.tc == 0);
    let red = report
        .attachments
        .iter()
        .find(|x| x.info.port == port)
        .unwrap_or_else(|| panic!("{report:#?}"));
    assert!(red.counts.ovs > 0 && red.flows.iter().all(|f| f.flow.dp == "ovs"));
    assert!(
        red.fallbacks
            .iter()
            .any(|f| f.contains("no offload-capable device")),
        "{:?}",
        red.fallbacks
    );

    // DEL twice: the port and the veth go, the pod is cut off, blue still works.
    for _ in 0..2 {
        let (ok, v) = cni(
            &a,
            "DEL",
            &ar.name,
            &ar.path(),
            &conf("red", RED, "10.100.0.1"),
        );
        assert!(ok, "DEL: {v}");
    }
    assert!(!a.ovs_proc.vsctl(&["list-ports", "br-int"]).contains(&port));
    assert!(!a.ns.try_exec(&["ip", "link", "show", &port]));
    assert!(!ar.try_exec(&["ip", "link", "show", "eth0"]));
    assert!(pings(&ab, "10.100.0.12", Duration::from_secs(3)), "blue");

    // DEL after the pod's namespace is gone.
    let bb_path = bb.path();
    let bb_name = bb.name.clone();
    drop(bb);
    let (ok, v) = cni(
        &b,
        "DEL",
        &bb_name,
        &bb_path,
        &conf("blue", BLUE, "10.100.0.12"),
    );
    assert!(ok, "DEL without netns: {v}");
    let ports = b.ovs_proc.vsctl(&["list-ports", "br-int"]);
    assert_eq!(
        ports.lines().filter(|l| l.starts_with("sn")).count(),
        1,
        "{ports}"
    );
    for (node, pod, net, vni, ip) in [
        (&a, &ab, "blue", BLUE, "10.100.0.11"),
        (&b, &br, "red", RED, "10.100.0.2"),
    ] {
        let (ok, v) = cni(node, "DEL", &pod.name, &pod.path(), &conf(net, vni, ip));
        assert!(ok, "DEL: {v}");
    }
    for n in [&a, &b] {
        let ports = n.ovs_proc.vsctl(&["list-ports", "br-int"]);
        assert!(!ports.lines().any(|l| l.starts_with("sn")), "{ports}");
        let left = std::fs::read_dir(n.state.path().join("attachments"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(left, 0, "journals left on {}", n.name);
    }
    drop((ar, ab, br));
}

/// The administrator's allow-list of the test's node: the integration bridge.
fn allow_list(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("allow-list.json");
    std::fs::write(&path, r#"{"bridges": [{"name": "br-int"}]}"#).unwrap();
    path
}
