//! The native OVSDB client against a real ovsdb-server + ovs-vswitchd (userspace datapath,
//! private run directory, own network namespace). Needs root and Open vSwitch; otherwise each
//! test prints `SKIP <name>: <reason>` and returns.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Netns, OvsInstance, skip};
use offload::{Ovs, VswitchError, ovsdb::Client};
use serde_json::json;

#[tokio::test]
async fn list_dbs_echo_and_a_failed_transaction() {
    if skip("list_dbs_echo_and_a_failed_transaction") {
        return;
    }
    let ns = Netns::new("sno");
    let ovs = OvsInstance::start_with(&ns, false);
    let c = Client::connect(&ovs.remote()).await.unwrap();
    let dbs = c.list_dbs().await.unwrap();
    assert!(dbs.contains(&"Open_vSwitch".to_string()), "{dbs:?}");
    assert_eq!(
        c.echo(json!(["ping", 1])).await.unwrap(),
        json!(["ping", 1])
    );
    // A Port without its Interface: the commit is refused and the error says why.
    let e = c
        .transact(
            "Open_vSwitch",
            vec![json!({"op": "insert", "table": "Port", "row": {"name": "lonely"}})],
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("(commit)") && e.to_string().contains("integrity violation"),
        "{e}"
    );
}

#[tokio::test]
async fn bridge_and_port_wait_for_the_ofport_like_ovs_vsctl() {
    if skip("bridge_and_port_wait_for_the_ofport_like_ovs_vsctl") {
        return;
    }
    let ns = Netns::new("sno");
    let inst = OvsInstance::start(&ns);
    let ovs = Ovs::connect(&inst.remote()).await.unwrap();
    ovs.bridge()
        .add("br-t")
        .datapath_type("netdev")
        .execute()
        .await
        .unwrap();
    // may_exist on an existing bridge is fine.
    ovs.bridge()
        .add("br-t")
        .may_exist()
        .execute()
        .await
        .unwrap();
    ns.exec(&[
        "ip", "link", "add", "p0", "type", "veth", "peer", "name", "p0p",
    ]);
    ns.exec(&["ip", "link", "set", "p0", "up"]);
    let ofport = ovs
        .port()
        .add("br-t", "p0")
        .external_id("smartnic.io/pod", "ns/a")
        .execute()
        .await
        .unwrap()
        .unwrap();
    assert!(ofport >= 1);
    // ovs-vsctl sees the same port number.
    assert_eq!(
        inst.vsctl(&["get", "interface", "p0", "ofport"]).trim(),
        ofport.to_string()
    );
    // --may-exist returns the same port; without it the second add is refused.
    assert_eq!(
        ovs.port()
            .add("br-t", "p0")
            .may_exist()
            .execute()
            .await
            .unwrap(),
        Some(ofport)
    );
    assert!(matches!(
        ovs.port().add("br-t", "p0").execute().await,
        Err(VswitchError::PortElsewhere { .. })
    ));
    assert_eq!(
        ovs.port()
            .find_by_external_id("br-t", "smartnic.io/pod", "ns/a")
            .len(),
        1
    );
    // A device that does not exist: ovs-vswitchd's error comes back, naming the interface.
    let e = ovs
        .port()
        .add("br-t", "nosuchdev")
        .execute()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("nosuchdev") && e.to_string().contains("could not"),
        "{e}"
    );
    ovs.port().del("nosuchdev").execute().await.unwrap();
    // A missing bridge is named.
    let e = ovs.port().add("br-none", "x").execute().await.unwrap_err();
    assert!(e.to_string().contains("no bridge named br-none"), "{e}");
    // Geneve tunnel port with per-flow keys.
    let t = ovs
        .port()
        .add("br-t", "gnv-test")
        .interface_type("geneve")
        .option("remote_ip", "192.0.2.7")
        .option("key", "flow")
        .execute()
        .await
        .unwrap();
    assert!(t.is_some());
    assert_eq!(
        inst.vsctl(&["get", "interface", "gnv-test", "options:key"])
            .trim(),
        "flow"
    );
    ovs.port().del("p0").execute().await.unwrap();
    ovs.port().del("p0").if_exists().execute().await.unwrap();
    assert!(matches!(
        ovs.port().del("p0").execute().await,
        Err(VswitchError::NoPort { .. })
    ));
    assert_eq!(inst.vsctl(&["list-ports", "br-t"]).trim(), "gnv-test");
    ovs.bridge().del("br-t").execute().await.unwrap();
    assert_eq!(inst.vsctl(&["list-br"]).trim(), "");
}

#[tokio::test]
async fn other_config_hw_offload_and_tc_policy() {
    if skip("other_config_hw_offload_and_tc_policy") {
        return;
    }
    let ns = Netns::new("sno");
    let inst = OvsInstance::start(&ns);
    let ovs = Ovs::connect(&inst.remote()).await.unwrap();
    ovs.open_vswitch()
        .set_other_config("hw-offload", "true")
        .set("tc-policy", "skip_sw")
        .execute()
        .await
        .unwrap();
    let oc = ovs.open_vswitch().other_config();
    assert_eq!(oc.get("hw-offload").map(String::as_str), Some("true"));
    assert_eq!(
        inst.vsctl(&["get", "Open_vSwitch", ".", "other_config:tc-policy"])
            .trim(),
        "skip_sw"
    );
    ovs.open_vswitch()
        .remove_other_config("tc-policy")
        .execute()
        .await
        .unwrap();
    assert!(!ovs.open_vswitch().other_config().contains_key("tc-policy"));
}

#[tokio::test]
async fn waiting_without_vswitchd_times_out_with_a_clear_error() {
    if skip("waiting_without_vswitchd_times_out_with_a_clear_error") {
        return;
    }
    let ns = Netns::new("sno");
    let inst = OvsInstance::start_with(&ns, false);
    let ovs = Ovs::connect(&inst.remote())
        .await
        .unwrap()
        .with_wait_timeout(std::time::Duration::from_millis(300));
    let e = ovs.bridge().add("br-x").execute().await.unwrap_err();
    assert!(e.to_string().contains("is ovs-vswitchd running"), "{e}");
}
