//! The agent's OVS node setup (`OvsNodeSetup` with the setup its inventory asks for, what
//! `smartnic-agent --tunnel-uplink` runs in each pass) against a real Open vSwitch with a
//! private run directory (userspace datapath, in its own netns): a bare OVS gets `br-int`
//! (`fail_mode=secure`, `datapath_type=netdev`) and `hw-offload` is left alone on a node without
//! a switchdev PF; a second run writes nothing (OVSDB's `next_cfg` does not move); the peers
//! then apply on the bridge it created; a switchdev node's `hw-offload=true` says that
//! ovs-vswitchd must be restarted, once. Needs root and Open vSwitch; otherwise prints
//! `SKIP <name>: <reason>` and returns.

#![allow(clippy::unwrap_used)]

// the offload crate's private-OVS helpers, shared rather than copied
#[path = "../../offload/tests/common/mod.rs"]
mod common;

use agent::run::overlay::{NodeSetupApplier, OvsNodeSetup, OvsPeers, PeerApplier};
use agent::run::overlay_decide::node_setup;
use common::{Netns, OvsInstance, skip};
use crds::inventory::{EswitchMode, Nic, NicInventory};
use offload::decision::Datapath;
use offload::overlay::NodeEndpoint;

fn next_cfg(ovs: &OvsInstance) -> String {
    ovs.vsctl(&["get", "Open_vSwitch", ".", "next_cfg"])
        .trim()
        .to_owned()
}

#[tokio::test]
async fn the_agents_setup_creates_br_int_and_a_second_run_changes_nothing() {
    let name = "the_agents_setup_creates_br_int_and_a_second_run_changes_nothing";
    if skip(name) {
        return;
    }
    let ns = Netns::new("snSetup");
    let ovs = OvsInstance::start(&ns);
    let setup = OvsNodeSetup::new(ovs.dir.path());

    // a node without a switchdev PF
    let cfg = node_setup("br-int", Datapath::Netdev, &NicInventory::default());
    let out = setup.setup(&cfg).await.unwrap();
    assert!(out.bridge_created, "{out:?}");
    assert!(out.changed_other_config.is_empty(), "{out:?}");
    assert!(!out.restart_required);
    assert_eq!(ovs.vsctl(&["list-br"]).trim(), "br-int");
    assert_eq!(
        ovs.vsctl(&["get", "bridge", "br-int", "datapath_type"])
            .trim(),
        "netdev"
    );
    assert_eq!(
        ovs.vsctl(&["get", "bridge", "br-int", "fail_mode"]).trim(),
        "secure"
    );
    let oc = ovs.vsctl(&["get", "Open_vSwitch", ".", "other_config"]);
    assert!(!oc.contains("hw-offload"), "left alone: {oc}");

    // again: nothing to do, nothing written
    let before = next_cfg(&ovs);
    let out = setup.setup(&cfg).await.unwrap();
    assert!(!out.changed(), "{out:?}");
    assert_eq!(next_cfg(&ovs), before, "a second setup wrote to OVSDB");

    // the peers now apply on the bridge the setup created
    let mut peers = OvsPeers::new(ovs.dir.path(), "br-int", "n1");
    let all = [
        NodeEndpoint::new("n1", Some("10.0.0.1")),
        NodeEndpoint::new("n2", Some("10.0.0.2")),
    ];
    let out = peers
        .apply(Some("10.0.0.1".parse().unwrap()), &all)
        .await
        .unwrap();
    assert_eq!(out.change.expect("applied").added, ["gnv0a000002"]);

    // a node with a switchdev PF (no netdev here, so no device to touch): hw-offload=true,
    // which ovs-vswitchd takes only when it starts
    let inv = NicInventory {
        nics: vec![Nic {
            pci_address: "0000:03:00.0".into(),
            eswitch_mode: Some(EswitchMode::Switchdev),
            ..Default::default()
        }],
    };
    let cfg = node_setup("br-int", Datapath::Netdev, &inv);
    let out = setup.setup(&cfg).await.unwrap();
    assert_eq!(out.changed_other_config, ["hw-offload"]);
    assert!(out.restart_required);
    assert!(!out.bridge_created);
    assert_eq!(
        ovs.vsctl(&["get", "Open_vSwitch", ".", "other_config:hw-offload"])
            .trim(),
        "\"true\""
    );
    let before = next_cfg(&ovs);
    let out = setup.setup(&cfg).await.unwrap();
    assert!(!out.changed() && !out.restart_required, "{out:?}");
    assert_eq!(next_cfg(&ovs), before);
    // the tunnel port is still there
    assert!(ovs.vsctl(&["list-ports", "br-int"]).contains("gnv0a000002"));
}

#[tokio::test]
async fn an_absent_ovs_is_an_error_naming_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let err = OvsNodeSetup::new(dir.path())
        .setup(&node_setup(
            "br-int",
            Datapath::Netdev,
            &NicInventory::default(),
        ))
        .await
        .unwrap_err();
    let sock = dir.path().join("db.sock");
    assert!(err.contains(&sock.display().to_string()), "{err}");
}
