//! The agent's peer applier (`OvsPeers`, what `smartnic-agent --tunnel-uplink` runs) against a
//! real Open vSwitch with a private run directory (userspace datapath, in its own netns): the
//! tunnel ports follow the nodes' endpoints, an unchanged set touches nothing, a node that
//! goes away loses its port, and an OVS that is not there is an error naming its socket. Needs
//! root and Open vSwitch; otherwise prints `SKIP <name>: <reason>` and returns.

#![allow(clippy::unwrap_used)]

// the offload crate's private-OVS helpers, shared rather than copied
#[path = "../../offload/tests/common/mod.rs"]
mod common;

use agent::run::overlay::{OvsPeers, PeerApplier};
use common::{Netns, OvsInstance, skip};
use offload::overlay::NodeEndpoint;

fn ports(ovs: &OvsInstance) -> Vec<String> {
    let mut p: Vec<String> = ovs
        .vsctl(&["list-ports", "br-int"])
        .lines()
        .map(str::to_owned)
        .collect();
    p.sort();
    p
}

#[tokio::test]
async fn the_tunnel_ports_follow_the_published_endpoints() {
    if skip("the_tunnel_ports_follow_the_published_endpoints") {
        return;
    }
    let ns = Netns::new("snAgent");
    let ovs = OvsInstance::start(&ns);
    ovs.vsctl(&[
        "add-br",
        "br-int",
        "--",
        "set",
        "bridge",
        "br-int",
        "datapath_type=netdev",
        "fail_mode=secure",
    ]);
    let mut peers = OvsPeers::new(ovs.dir.path(), "br-int", "n1");
    let me = Some("10.0.0.1".parse().unwrap());
    let all = [
        NodeEndpoint::new("n1", Some("10.0.0.1")),
        NodeEndpoint::new("n2", Some("10.0.0.2")),
        NodeEndpoint::new("n3", Some("10.0.0.3")),
        NodeEndpoint::new("n4", None::<String>),
        // two nodes claiming one endpoint: neither gets a tunnel, both are reported
        NodeEndpoint::new("n5", Some("10.0.0.5")),
        NodeEndpoint::new("n6", Some("10.0.0.5")),
    ];
    let out = peers.apply(me, &all).await.unwrap();
    let change = out.change.expect("applied");
    assert_eq!(change.added, ["gnv0a000002", "gnv0a000003"]);
    assert_eq!(ports(&ovs), ["gnv0a000002", "gnv0a000003"]);
    let skipped: Vec<&str> = out.set.skipped.iter().map(|s| s.node.as_str()).collect();
    assert_eq!(skipped, ["n5", "n6"], "{:?}", out.set.skipped);
    // the overlay's flows are in place (table 0 classifies tunnel ingress)
    let flows = common::sh(&[
        "ovs-ofctl",
        "dump-flows",
        &format!("unix:{}/br-int.mgmt", ovs.dir_str()),
    ]);
    assert!(flows.contains("table=0"), "{flows}");

    // the same endpoints: nothing applied
    assert_eq!(peers.apply(me, &all).await.unwrap().change, None);

    // n2 goes away: its port goes
    let without_n2 = [all[0].clone(), all[2].clone()];
    let out = peers.apply(me, &without_n2).await.unwrap();
    assert_eq!(out.change.expect("applied").removed, ["gnv0a000002"]);
    assert_eq!(ports(&ovs), ["gnv0a000003"]);

    // after a reset (ovs-vswitchd restarted) the same set is applied again
    peers.reset();
    let out = peers.apply(me, &without_n2).await.unwrap();
    assert!(
        out.change
            .is_some_and(|c| c.added.is_empty() && c.removed.is_empty())
    );
}

#[tokio::test]
async fn an_absent_ovs_is_an_error_naming_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut peers = OvsPeers::new(dir.path(), "br-int", "n1");
    let err = peers
        .apply(None, &[NodeEndpoint::new("n2", Some("10.0.0.2"))])
        .await
        .unwrap_err();
    let sock = dir.path().join("db.sock");
    assert!(err.contains(&sock.display().to_string()), "{err}");
}
