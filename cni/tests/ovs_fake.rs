//! `mode: ovs` on the in-memory host and switch: the decision (veth or VF + representor) in the
//! result, the port on the bridge with the network's VNI, CHECK, DEL (twice, with the pod's
//! namespace gone), a failed attach undone, STATUS.
#![allow(missing_docs, clippy::unwrap_used)]

mod common_fake;

use common_fake::*;
use smartnic_cni::{env::Command, error::code, host::Ns};

#[test]
fn without_an_offload_capable_device_the_pod_gets_a_veth_on_the_overlay() {
    let w = World::new(2);
    let host_before = w.fake.links(Ns::Host);
    let ns = w.netns("pod1");
    let conf = w.ovs_conf(serde_json::json!({}));
    let out = add(&w, &conf, "c1", &ns).unwrap();
    let ext = &out["smartnic.io/ovs"];
    assert_eq!(ext["attachment"], "veth", "{out:#}");
    assert_eq!(ext["reason"], "no offload-capable device");
    assert_eq!(ext["offloadPossible"], false);
    assert_eq!(ext["bridge"], "br-int");
    assert_eq!(ext["vni"], 100);
    let port = ext["port"].as_str().unwrap().to_string();
    assert!(port.starts_with("sn") && port.len() == 10, "{port}");
    assert_eq!(out["interfaces"][0]["name"], "net1");
    assert_eq!(out["interfaces"][1]["name"], port.as_str());
    assert!(out["interfaces"][1].get("sandbox").is_none());
    assert_eq!(out["ips"][0]["address"], "10.7.0.2/24");
    assert_eq!(out["ips"][0]["interface"], 0);
    let pod = w.fake.links(Ns::Pod(&ns));
    assert_eq!(pod["net1"].mtu, 1400);
    assert!(pod["net1"].up);
    assert_eq!(pod["net1"].addrs[0].to_string(), "10.7.0.2/24");
    let ports = w.switch.ports();
    assert_eq!(ports[&port].vni, Some(100));
    assert!(ports[&port].veth);

    // CHECK: passes; fails when the port leaves the bridge.
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = out.clone();
    let e = env(Command::Check, "c1", "net1", Some(&ns));
    w.plugin.check(&parse(&check_conf, &e), &e).unwrap();
    let mut other_vni = check_conf.clone();
    other_vni["geneve"]["vni"] = 200.into();
    let err = w.plugin.check(&parse(&other_vni, &e), &e).unwrap_err();
    assert!(err.msg.contains("VNI"), "{}", err.msg);

    del(&w, &conf, "c1", Some(&ns));
    del(&w, &conf, "c1", Some(&ns));
    assert!(w.switch.ports().is_empty());
    assert!(w.fake.links(Ns::Pod(&ns)).is_empty());
    assert_eq!(w.fake.links(Ns::Host), host_before);
    assert_eq!(w.leases(), 0);
    let err = w.plugin.check(&parse(&check_conf, &e), &e).unwrap_err();
    assert_eq!(err.code, code::UNKNOWN_CONTAINER);
}

#[test]
fn a_switchdev_vf_goes_into_the_pod_and_its_representor_onto_the_bridge() {
    let w = World::new(4);
    w.switch.switchdev_vf(&bdf(1).to_string(), "pf0_1");
    let rows_before = w.fake.vf_rows();
    let host_before = w.fake.links(Ns::Host);
    let ns = w.netns("pod1");
    let conf = w.ovs_conf(serde_json::json!({
        "deviceID": bdf(1).to_string(), "vlan": 10,
        "runtimeConfig": {"mac": "02:00:00:00:aa:07"}
    }));
    let out = add(&w, &conf, "c1", &ns).unwrap();
    let ext = &out["smartnic.io/ovs"];
    assert_eq!(ext["attachment"], "representor", "{out:#}");
    assert_eq!(ext["representor"], "pf0_1");
    assert_eq!(ext["vf"], bdf(1).to_string());
    // The fake bridge is userspace: the representor joins, but flows stay in software.
    assert_eq!(ext["offloadPossible"], false);
    assert!(
        ext["reason"]
            .as_str()
            .unwrap()
            .contains("userspace datapath")
    );
    assert_eq!(out["interfaces"][0]["pciID"], bdf(1).to_string());
    assert_eq!(out["interfaces"][0]["mac"], "02:00:00:00:aa:07");
    let pod = w.fake.links(Ns::Pod(&ns));
    assert_eq!(pod["net1"].vf, Some(bdf(1)));
    assert_eq!(pod["net1"].mtu, 1400);
    assert!(!w.fake.links(Ns::Host).contains_key("pf0v1"));
    let p = &w.switch.ports()["pf0_1"];
    assert!(!p.veth);
    assert_eq!((p.vni, p.vlan), (Some(100), Some(10)));
    // vlan is the port's tag, not the VF's: only the MAC went through the PF.
    let row = &w.fake.vf_rows()[&("pf0".to_string(), 1)];
    assert_eq!(row.vlan, rows_before[&("pf0".to_string(), 1)].vlan);
    assert_eq!(row.mac.unwrap().to_string(), "02:00:00:00:aa:07");

    // A second pod asking for the same VF is refused while the first holds it.
    let ns2 = w.netns("pod2");
    let err = add(&w, &conf, "c2", &ns2).unwrap_err();
    assert_eq!(err.code, code::DEVICE_BUSY, "{}", err.msg);

    del(&w, &conf, "c1", Some(&ns));
    assert!(w.switch.ports().is_empty());
    assert_eq!(w.fake.vf_rows(), rows_before);
    assert_eq!(
        w.fake.links(Ns::Host).keys().collect::<Vec<_>>(),
        host_before.keys().collect::<Vec<_>>()
    );
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
    assert_eq!(w.leases(), 0);
}

#[test]
fn a_legacy_vf_falls_back_to_a_veth_and_says_why() {
    let w = World::new(2);
    w.switch.switchdev_vf(&bdf(0).to_string(), "pf0_0");
    let ns = w.netns("pod1");
    let conf = w.ovs_conf(serde_json::json!({"deviceID": bdf(1).to_string()}));
    let out = add(&w, &conf, "c1", &ns).unwrap();
    assert_eq!(out["smartnic.io/ovs"]["attachment"], "veth");
    let reason = out["smartnic.io/ovs"]["reason"].as_str().unwrap();
    assert!(reason.contains("not in switchdev mode"), "{reason}");
    // The VF was not taken.
    assert!(w.fake.links(Ns::Host).contains_key("pf0v1"));
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
    del(&w, &conf, "c1", Some(&ns));
}

#[test]
fn del_after_the_pod_namespace_is_gone_removes_the_port_and_frees_the_address() {
    let w = World::new(2);
    w.switch.switchdev_vf(&bdf(0).to_string(), "pf0_0");
    let host_before = w.fake.links(Ns::Host);
    let rows_before = w.fake.vf_rows();
    for (id, dev) in [("c1", None), ("c2", Some(bdf(0)))] {
        let ns = w.netns(id);
        let mut extra = serde_json::json!({});
        if let Some(d) = dev {
            extra["deviceID"] = d.to_string().into();
        }
        let conf = w.ovs_conf(extra);
        add(&w, &conf, id, &ns).unwrap();
        w.fake.remove_netns(&ns);
        del(&w, &conf, id, Some(&ns));
        del(&w, &conf, id, None);
        assert!(w.switch.ports().is_empty(), "{id}");
        assert_eq!(w.fake.links(Ns::Host), host_before, "{id}");
        assert_eq!(w.fake.vf_rows(), rows_before, "{id}");
        assert_eq!(w.leases(), 0, "{id}");
        assert!(w.plugin.store.attachments().unwrap().is_empty());
    }
}

#[test]
fn a_failed_attach_leaves_nothing_behind() {
    let w = World::new(1);
    let host_before = w.fake.links(Ns::Host);
    let ns = w.netns("pod1");
    let conf = w.ovs_conf(serde_json::json!({}));
    w.switch
        .fail_attach_of(&offload::attach::host_veth_name("c1", "net1"));
    let err = add(&w, &conf, "c1", &ns).unwrap_err();
    assert!(err.msg.contains("could not add interface"), "{}", err.msg);
    assert!(w.switch.ports().is_empty());
    assert!(w.fake.links(Ns::Pod(&ns)).is_empty());
    assert_eq!(w.fake.links(Ns::Host), host_before);
    assert_eq!(w.leases(), 0);
    assert!(w.plugin.store.attachments().unwrap().is_empty());
    // The interface name taken in the pod: a clear error, and the pod's link is left alone.
    w.fake.add_veth("other0", &ns, "net1", None).unwrap();
    let err = add(&w, &conf, "c1", &ns).unwrap_err();
    assert!(err.msg.contains("already exists"), "{}", err.msg);
    assert!(w.fake.links(Ns::Pod(&ns)).contains_key("net1"));
}

#[test]
fn a_plain_bridge_network_gets_its_tag_or_trunk_and_no_vni() {
    let w = World::new(1);
    w.switch
        .add_bridge("br-phys", offload::decision::Datapath::System);
    let ns = w.netns("pod1");
    let mut conf = w.ovs_conf(serde_json::json!({
        "bridge": "br-phys", "trunk": [{"minId": 10, "maxId": 12}, {"minId": 20, "maxId": 20}]
    }));
    conf.as_object_mut().unwrap().remove("geneve");
    let out = add(&w, &conf, "c1", &ns).unwrap();
    let port = out["smartnic.io/ovs"]["port"].as_str().unwrap().to_string();
    assert!(out["smartnic.io/ovs"].get("vni").is_none());
    let p = &w.switch.ports()[&port];
    assert_eq!((p.bridge.as_str(), p.vni), ("br-phys", None));
    assert_eq!(p.trunks, [10, 11, 12, 20]);
    del(&w, &conf, "c1", Some(&ns));
}

#[test]
fn bad_ovs_keys_are_named_and_status_needs_the_bridge() {
    let w = World::new(1);
    let e = env(Command::Add, "c1", "net1", Some(std::path::Path::new("/x")));
    for (extra, key) in [
        (
            serde_json::json!({"vlan": 10, "trunk": [{"minId": 1, "maxId": 2}]}),
            "key trunk",
        ),
        (
            serde_json::json!({"trunk": [{"minId": 9, "maxId": 2}]}),
            "key trunk",
        ),
        (
            serde_json::json!({"geneve": {"vni": 16_777_216u32}}),
            "key geneve.vni",
        ),
        (serde_json::json!({"bridge": "../br"}), "bridge"),
    ] {
        let conf = w.ovs_conf(extra);
        let err =
            smartnic_cni::config::NetConf::parse(conf.to_string().as_bytes(), &e).unwrap_err();
        assert_eq!(err.code, code::INVALID_CONFIG, "{}", err.msg);
        assert!(err.msg.contains(key), "{key}: {}", err.msg);
    }
    let s = env(Command::Status, "", "", None);
    w.plugin
        .status(&parse(&w.ovs_conf(serde_json::json!({})), &s), &s)
        .unwrap();
    let err = w
        .plugin
        .status(
            &parse(&w.ovs_conf(serde_json::json!({"bridge": "br-nope"})), &s),
            &s,
        )
        .unwrap_err();
    assert_eq!(err.code, code::NOT_AVAILABLE);
    assert!(err.msg.contains("br-nope"), "{}", err.msg);
}
