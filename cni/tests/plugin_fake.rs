//! The plugin's commands on the in-memory host: sriov, macvlan, ipvlan; DEL restoring the VF;
//! late and missed DELs; CHECK; STATUS; GC.
#![allow(missing_docs, clippy::unwrap_used)]

mod common_fake;

use common_fake::*;
use nic::netlink::{MacAddr, VfInfo, VlanProto};
use smartnic_cni::{env::Command, error::code, host::Ns, result::AddResult};

#[test]
fn sriov_add_moves_and_configures_the_vf_and_del_restores_it() {
    let w = World::new(4);
    let before_rows = w.fake.vf_rows();
    let before_host = w.fake.links(Ns::Host);
    let ns = w.netns("pod1");
    let conf = w.sriov_conf(1, serde_json::json!({}));
    let out = add(&w, &conf, "c1", &ns).unwrap();
    assert_eq!(out["cniVersion"], "1.1.0");
    assert_eq!(out["interfaces"][0]["name"], "net1");
    assert_eq!(out["interfaces"][0]["pciID"], "0000:3b:02.1");
    assert_eq!(out["interfaces"][0]["mac"], "02:00:00:00:aa:01");
    assert_eq!(out["interfaces"][0]["sandbox"], ns.to_str().unwrap());
    assert_eq!(out["ips"][0]["address"], "10.9.0.2/24");
    assert_eq!(out["ips"][0]["interface"], 0);
    let row = &w.fake.vf_rows()[&("pf0".to_string(), 1)];
    assert_eq!(
        (row.vlan, row.qos, row.vlan_proto),
        (Some(10), Some(2), Some(VlanProto::Dot1Q))
    );
    assert_eq!(
        (row.spoofchk, row.trust, row.max_tx_rate),
        (Some(false), Some(true), Some(100))
    );
    assert_eq!(
        row.mac,
        Some("02:00:00:00:aa:01".parse::<MacAddr>().unwrap())
    );
    let pod = w.fake.links(Ns::Pod(&ns));
    assert!(pod["net1"].up);
    assert_eq!(pod["net1"].addrs[0].to_string(), "10.9.0.2/24");
    assert!(!w.fake.links(Ns::Host).contains_key("pf0v1"));
    // ifname taken: a second ADD fails before touching anything.
    let err = add(&w, &w.sriov_conf(2, serde_json::json!({})), "c2", &ns).unwrap_err();
    assert!(err.msg.contains("already exists"), "{}", err.msg);

    // CHECK passes, then fails once an address is removed.
    let prev = AddResult::from_json(&out).unwrap();
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = out.clone();
    let e = env(Command::Check, "c1", "net1", Some(&ns));
    w.plugin.check(&parse(&check_conf, &e), &e).unwrap();
    w.fake
        .remove_address(Ns::Pod(&ns), "net1", &prev.ips[0].address);
    let err = w.plugin.check(&parse(&check_conf, &e), &e).unwrap_err();
    assert!(err.msg.contains("10.9.0.2/24 is missing"), "{}", err.msg);

    del(&w, &conf, "c1", Some(&ns));
    del(&w, &conf, "c1", Some(&ns));
    assert_eq!(w.fake.vf_rows(), before_rows);
    assert_eq!(
        w.fake.links(Ns::Host).keys().collect::<Vec<_>>(),
        before_host.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        w.fake.links(Ns::Host)["pf0v1"].mac,
        before_host["pf0v1"].mac
    );
    assert!(w.fake.links(Ns::Pod(&ns)).is_empty());
    assert_eq!(w.leases(), 0);
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
}

#[test]
fn del_after_the_pod_netns_is_gone_renames_the_vf_back() {
    let w = World::new(2);
    let ns = w.netns("pod1");
    let conf = w.sriov_conf(0, serde_json::json!({}));
    add(&w, &conf, "c1", &ns).unwrap();
    w.fake.remove_netns(&ns);
    assert!(w.fake.links(Ns::Host).contains_key("net1"));
    del(&w, &conf, "c1", Some(&ns));
    del(&w, &conf, "c1", None);
    let host = w.fake.links(Ns::Host);
    assert!(host.contains_key("pf0v0") && !host.contains_key("net1"));
    assert_eq!(
        w.fake.vf_rows()[&("pf0".to_string(), 0)],
        VfInfo::new_default(0)
    );
    assert_eq!(w.leases(), 0);
}

#[test]
fn del_waits_for_a_vf_the_kernel_hands_back_late_from_a_destroyed_netns() {
    let w = World::new(2);
    let ns = w.netns("pod1");
    let conf = w.sriov_conf(0, serde_json::json!({}));
    add(&w, &conf, "c1", &ns).unwrap();
    w.fake.remove_netns_late(&ns, 5);
    assert!(!w.fake.links(Ns::Host).contains_key("net1"));
    del(&w, &conf, "c1", Some(&ns));
    let host = w.fake.links(Ns::Host);
    assert!(
        host.contains_key("pf0v0") && !host.contains_key("net1"),
        "{host:?}"
    );
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
}

#[test]
fn del_leaves_a_netdev_mac_the_vf_driver_refuses_and_restores_the_rest() {
    let w = World::new(2);
    let ns = w.netns("pod1");
    let conf = w.sriov_conf(
        0,
        serde_json::json!({"runtimeConfig": {"mac": "02:00:00:00:00:33"}}),
    );
    let before = w.fake.links(Ns::Host)["pf0v0"].mac;
    add(&w, &conf, "c1", &ns).unwrap();
    w.fake.refuse_mac(before);
    del(&w, &conf, "c1", Some(&ns));
    let host = w.fake.links(Ns::Host);
    assert!(host.contains_key("pf0v0"), "{host:?}");
    assert_eq!(
        w.fake.vf_rows()[&("pf0".to_string(), 0)],
        VfInfo::new_default(0)
    );
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
}

#[test]
fn a_vf_held_by_a_live_pod_is_busy_and_a_late_del_cannot_reset_a_new_owner() {
    let w = World::new(2);
    let ns_a = w.netns("a");
    let ns_b = w.netns("b");
    let conf = w.sriov_conf(0, serde_json::json!({}));
    add(&w, &conf, "a", &ns_a).unwrap();
    let err = add(&w, &conf, "b", &ns_b).unwrap_err();
    assert_eq!(err.code, code::DEVICE_BUSY);
    assert!(err.msg.contains("held by container a"), "{}", err.msg);
    // Pod a dies and its DEL is missed: b's ADD reclaims the VF.
    w.fake.remove_netns(&ns_a);
    let conf_b = w.sriov_conf(0, serde_json::json!({"vlan": 20}));
    add(&w, &conf_b, "b", &ns_b).unwrap();
    assert_eq!(w.fake.vf_rows()[&("pf0".to_string(), 0)].vlan, Some(20));
    // a's DEL arrives late: b's VF is untouched.
    del(&w, &conf, "a", Some(&ns_a));
    assert_eq!(w.fake.vf_rows()[&("pf0".to_string(), 0)].vlan, Some(20));
    assert!(w.fake.links(Ns::Pod(&ns_b)).contains_key("net1"));
    del(&w, &conf_b, "b", Some(&ns_b));
    assert_eq!(
        w.fake.vf_rows()[&("pf0".to_string(), 0)],
        VfInfo::new_default(0)
    );
    assert_eq!(w.leases(), 0);
}

#[test]
fn vfio_vfs_get_pf_side_settings_only() {
    let w = World::new(0);
    w.fake.add_pf(
        "pf1",
        2,
        |i| nic::pci::PciAddress::new(0, 0x5e, 1, i as u8).unwrap(),
        "vfio-pci",
    );
    let ns = w.netns("dpdk");
    let mut conf = w.sriov_conf(0, serde_json::json!({}));
    conf["deviceID"] = "0000:5e:01.1".into();
    conf["ipam"] = serde_json::json!({});
    let out = add(&w, &conf, "d1", &ns).unwrap();
    assert_eq!(out["interfaces"][0]["pciID"], "0000:5e:01.1");
    assert!(out.get("ips").is_none());
    assert!(w.fake.links(Ns::Pod(&ns)).is_empty());
    assert_eq!(w.fake.vf_rows()[&("pf1".to_string(), 1)].vlan, Some(10));
    del(&w, &conf, "d1", Some(&ns));
    assert_eq!(
        w.fake.vf_rows()[&("pf1".to_string(), 1)],
        VfInfo::new_default(1)
    );
}

#[test]
fn macvlan_in_every_mode_and_offload_reporting() {
    let w = World::new(0);
    for (i, mode) in ["bridge", "private", "vepa", "passthru"].iter().enumerate() {
        let ns = w.netns(&format!("mv{i}"));
        let conf = w.macvlan_conf(mode);
        let out = add(&w, &conf, &format!("m{i}"), &ns).unwrap();
        assert_eq!(out["cniVersion"], "1.0.0");
        assert_eq!(out["smartnic.io/macvlanForwarding"], "software");
        assert_eq!(
            w.fake.links(Ns::Pod(&ns))["net1"].kind.as_deref(),
            Some("macvlan")
        );
        del(&w, &conf, &format!("m{i}"), Some(&ns));
        del(&w, &conf, &format!("m{i}"), Some(&ns));
        assert!(w.fake.links(Ns::Pod(&ns)).is_empty());
    }
    w.fake.with_l2_fwd_offload("master0");
    let ns = w.netns("mvhw");
    let out = add(&w, &w.macvlan_conf("bridge"), "hw", &ns).unwrap();
    assert_eq!(out["smartnic.io/macvlanForwarding"], "l2-fwd-offload");
    assert_eq!(w.leases(), 1);
    del(&w, &w.macvlan_conf("bridge"), "hw", Some(&ns));
    assert_eq!(w.leases(), 0);
}

#[test]
fn ipvlan_without_kernel_support_says_so_and_leaks_nothing() {
    let w = World::new(0);
    w.fake.without_ipvlan();
    let ns = w.netns("ipv");
    let mut conf = w.macvlan_conf("bridge");
    conf["mode"] = "ipvlan".into();
    conf["ipvlanMode"] = "l3s".into();
    conf.as_object_mut().unwrap().remove("macvlanMode");
    let err = add(&w, &conf, "i1", &ns).unwrap_err();
    assert!(err.msg.contains("no ipvlan support"), "{}", err.msg);
    assert_eq!(w.leases(), 0);
    assert!(w.plugin.store.attachments().unwrap().is_empty());
}

#[test]
fn status_and_gc() {
    let w = World::new(3);
    let conf = w.sriov_conf(0, serde_json::json!({}));
    let e = env(Command::Status, "", "", None);
    let err = w.plugin.status(&parse(&conf, &e), &e).unwrap_err();
    assert_eq!(err.code, code::NOT_AVAILABLE);
    std::fs::write(w.dir.path().join("ready"), "{}").unwrap();
    w.plugin.status(&parse(&conf, &e), &e).unwrap();
    let mut old = conf.clone();
    old["cniVersion"] = "1.0.0".into();
    assert_eq!(
        w.plugin.status(&parse(&old, &e), &e).unwrap_err().code,
        code::INCOMPATIBLE_VERSION
    );

    let (ns0, ns1) = (w.netns("g0"), w.netns("g1"));
    add(&w, &conf, "keep", &ns0).unwrap();
    add(&w, &w.sriov_conf(1, serde_json::json!({})), "drop", &ns1).unwrap();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] =
        serde_json::json!([{"containerID": "keep", "ifname": "net1"}]);
    let e = env(Command::Gc, "", "", None);
    w.plugin.gc(&parse(&gc, &e), &e).unwrap();
    assert_eq!(w.leases(), 1);
    assert_eq!(w.plugin.store.vf_owners().unwrap().len(), 1);
    assert!(w.fake.links(Ns::Host).contains_key("pf0v1"));
    assert_eq!(
        w.fake.vf_rows()[&("pf0".to_string(), 1)],
        VfInfo::new_default(1)
    );
    // The lock file of the VF nobody holds is gone; the kept one's stays.
    assert_eq!(w.plugin.store.vf_locks(), vec!["0000:3b:02.0".to_string()]);
}

#[test]
fn an_add_repeated_after_a_crash_without_del_starts_from_the_original_vf() {
    let w = World::new(2);
    let ns = w.netns("again");
    let conf = w.sriov_conf(0, serde_json::json!({}));
    let e = env(Command::Add, "again", "net1", Some(&ns));
    let parsed = parse(&conf, &e);
    smartnic_cni::failpoint::set(Some("addresses"));
    let crashed =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.plugin.add(&parsed, &e)));
    smartnic_cni::failpoint::set(None);
    assert!(crashed.is_err());
    // The runtime retries the ADD without a DEL in between.
    add(&w, &conf, "again", &ns).unwrap();
    del(&w, &conf, "again", Some(&ns));
    assert_eq!(
        w.fake.vf_rows()[&("pf0".to_string(), 0)],
        VfInfo::new_default(0)
    );
    assert!(w.fake.links(Ns::Host).contains_key("pf0v0"));
    assert_eq!(w.leases(), 0);
}

#[test]
fn sriov_cni_examples_at_cni_version_0_3_1_run_with_only_type_and_mode_changed() {
    // sriov-cni's README "extended kernel driver config" (deviceID added as Multus adds it).
    let w = World::new(2);
    let ns = w.netns("old");
    let before = w.fake.vf_rows();
    let conf = serde_json::json!({
        "cniVersion": "0.3.1", "name": "sriov-advanced", "type": "smartnic", "mode": "sriov",
        "vlan": 1000, "spoofchk": "off", "trust": "on", "deviceID": bdf(1).to_string(),
        "ipam": {"type": "host-local", "subnet": "10.56.217.0/24", "routes": [{"dst": "0.0.0.0/0"}],
                 "gateway": "10.56.217.1", "dataDir": w.data_dir().to_str().unwrap()}
    });
    let out = add(&w, &conf, "c1", &ns).unwrap();
    assert_eq!(out["cniVersion"], "0.3.1");
    assert_eq!(out["ips"][0]["version"], "4");
    assert_eq!(out["ips"][0]["address"], "10.56.217.2/24");
    assert_eq!(out["ips"][0]["gateway"], "10.56.217.1");
    let row = &w.fake.vf_rows()[&("pf0".to_string(), 1)];
    assert_eq!(
        (row.vlan, row.spoofchk, row.trust),
        (Some(1000), Some(false), Some(true))
    );
    // 0.3.x has no CHECK.
    let mut check = conf.clone();
    check["prevResult"] = out;
    let e = env(Command::Check, "c1", "net1", Some(&ns));
    let err = w.plugin.check(&parse(&check, &e), &e).unwrap_err();
    assert_eq!(err.code, code::INCOMPATIBLE_VERSION, "{}", err.msg);
    del(&w, &conf, "c1", Some(&ns));
    assert_eq!(w.fake.vf_rows(), before);
}

/// The node agent names the pod holding a VF from the plugin's records (crds::cni_state): the
/// owner file gives the attachment, its journal's first line the pod from `CNI_ARGS`.
#[test]
fn the_records_name_the_pod_holding_the_vf() {
    use crds::cni_state::{AttachmentBegin, AttachmentPod, journal_path, vf_owner_path};
    let w = World::new(2);
    let ns = w.netns("p1");
    let conf = w.sriov_conf(1, serde_json::json!({}));
    let mut e = env(Command::Add, "c1", "net1", Some(&ns));
    e.args = vec![
        ("IgnoreUnknown".into(), "1".into()),
        ("K8S_POD_NAMESPACE".into(), "team-a".into()),
        ("K8S_POD_NAME".into(), "trainer-0".into()),
    ];
    w.plugin.add(&parse(&conf, &e), &e).unwrap();
    let state = w.plugin.store.root();
    let key = std::fs::read_to_string(vf_owner_path(state, &bdf(1).to_string())).unwrap();
    let journal = std::fs::read_to_string(journal_path(state, key.trim())).unwrap();
    let first = journal.lines().next().unwrap();
    let begin: AttachmentBegin = serde_json::from_str(first).unwrap();
    assert_eq!(
        begin.pod,
        Some(AttachmentPod {
            namespace: "team-a".into(),
            name: "trainer-0".into()
        })
    );
    del(&w, &conf, "c1", Some(&ns));
    assert!(!vf_owner_path(state, &bdf(1).to_string()).exists());
}
