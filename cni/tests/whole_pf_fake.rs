//! `mode: sriov` with a whole PF on the in-memory host: the PF netdev moves into the pod and
//! comes back under its name, MAC and MTU; only a PF the node's device-plugin configuration
//! offers whole is handed out; a crash at any journaled step is undone by DEL; a pod gone
//! without DEL gives the PF back to the next ADD.
#![allow(missing_docs, clippy::unwrap_used)]

mod common_fake;

use common_fake::*;
use nic::{netlink::MacAddr, pci::PciAddress};
use smartnic_cni::{env::Command, error::code, host::Ns, store::STEP_NAMES};

fn pf_bdf() -> PciAddress {
    "0000:01:00.0".parse().unwrap()
}

/// A world with PF `enp1s0` (igb, no VFs) offered whole as `smartnic.io/igb_pf`.
fn world() -> World {
    let w = World::new(1);
    w.fake.add_whole_pf("enp1s0", pf_bdf(), "igb");
    offer(&w, &["0000:01:00.0"]);
    w
}

/// Writes the node's applied device-plugin configuration with `addrs` in the whole-PF pool.
fn offer(w: &World, addrs: &[&str]) {
    let cfg = serde_json::json!({"resourceList": [
        {"resourceName": "igb_pf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
         "selectors": [{"pciAddresses": addrs}]},
        {"resourceName": "igb_vf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
         "selectors": [{"pfs": [{"pciAddress": "0000:3b:00.0"}]}]}
    ]});
    std::fs::write(&w.plugin.paths.ready_file, cfg.to_string()).unwrap();
}

fn pf_conf(w: &World, extra: serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({
        "cniVersion": "1.1.0", "name": "vfnet", "type": "smartnic", "mode": "sriov",
        "resourceName": "smartnic.io/igb_pf",
        "deviceID": "0000:01:00.0",
        "runtimeConfig": {"mac": "02:00:00:00:bb:07"},
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]],
                 "dataDir": w.data_dir().to_str().unwrap()}
    });
    merge(&mut c, extra);
    c
}

#[test]
fn the_pf_netdev_moves_into_the_pod_and_del_restores_name_mac_and_mtu() {
    let w = world();
    let before = w.fake.links(Ns::Host)["enp1s0"].clone();
    let ns = w.netns("pod1");
    let conf = pf_conf(&w, serde_json::json!({}));
    let out = add(&w, &conf, "c1", &ns).unwrap();
    assert_eq!(out["interfaces"][0]["name"], "net1");
    assert_eq!(out["interfaces"][0]["pciID"], "0000:01:00.0");
    assert_eq!(out["interfaces"][0]["mac"], "02:00:00:00:bb:07");
    assert_eq!(out["ips"][0]["address"], "10.9.0.2/24");
    assert!(!w.fake.links(Ns::Host).contains_key("enp1s0"));
    let pod = w.fake.links(Ns::Pod(&ns));
    assert!(pod["net1"].up);
    assert_eq!(pod["net1"].vf, Some(pf_bdf()));
    // a second pod asking for the same PF: busy
    let ns2 = w.netns("pod2");
    let e = add(&w, &conf, "c2", &ns2).unwrap_err();
    assert_eq!(e.code, code::DEVICE_BUSY, "{}", e.msg);
    // CHECK of the attachment passes
    let mut check = conf.clone();
    check["prevResult"] = out;
    let e = env(Command::Check, "c1", "net1", Some(&ns));
    w.plugin.check(&parse(&check, &e), &e).unwrap();

    del(&w, &conf, "c1", Some(&ns));
    del(&w, &conf, "c1", Some(&ns));
    let host = w.fake.links(Ns::Host);
    let after = &host["enp1s0"];
    assert_eq!((after.mac, after.mtu), (before.mac, before.mtu));
    assert!(!host.contains_key("net1"));
    assert!(w.fake.links(Ns::Pod(&ns)).is_empty());
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
    assert_eq!(w.leases(), 0);
}

#[test]
fn only_a_pf_offered_whole_for_this_resource_is_handed_out() {
    let w = world();
    let ns = w.netns("pod1");
    // another resource's pool does not offer it
    let other = pf_conf(
        &w,
        serde_json::json!({"resourceName": "smartnic.io/igb_vf"}),
    );
    let e = add(&w, &other, "c1", &ns).unwrap_err();
    assert_eq!(e.code, code::INVALID_CONFIG);
    assert!(
        e.msg.contains(
            "key deviceID: 0000:01:00.0 is a PF, and no whole-PF pool of smartnic.io/igb_vf on this node offers it"
        ),
        "{}",
        e.msg
    );
    // not offered at all (the agent has not handed it over, or never will)
    offer(&w, &[]);
    let conf = pf_conf(&w, serde_json::json!({}));
    let e = add(&w, &conf, "c1", &ns).unwrap_err();
    assert_eq!(e.code, code::INVALID_CONFIG, "{}", e.msg);
    std::fs::remove_file(&w.plugin.paths.ready_file).unwrap();
    let e = add(&w, &conf, "c1", &ns).unwrap_err();
    assert!(e.msg.contains("cannot be read"), "{}", e.msg);
    // offered, but VF settings asked for
    offer(&w, &["0000:01:00.0"]);
    let e = add(&w, &pf_conf(&w, serde_json::json!({"vlan": 10})), "c1", &ns).unwrap_err();
    assert_eq!(e.code, code::INVALID_CONFIG);
    assert!(
        e.msg.contains("key vlan: 0000:01:00.0 is a whole PF"),
        "{}",
        e.msg
    );
    // offered, but VFs were enabled on it meanwhile
    w.fake.set_pf_num_vfs(pf_bdf(), 2);
    let e = add(&w, &conf, "c1", &ns).unwrap_err();
    assert!(e.msg.contains("has 2 VFs enabled"), "{}", e.msg);
    // nothing was touched by the refusals
    assert!(w.fake.links(Ns::Host).contains_key("enp1s0"));
    assert!(w.fake.links(Ns::Pod(&ns)).is_empty());
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
    assert_eq!(w.leases(), 0);
}

#[test]
fn a_crash_at_any_step_is_undone_by_del() {
    for step in STEP_NAMES {
        let w = world();
        let before = w.fake.links(Ns::Host)["enp1s0"].clone();
        let ns = w.netns("pod1");
        let conf = pf_conf(&w, serde_json::json!({}));
        let e = env(Command::Add, "c1", "net1", Some(&ns));
        let parsed = parse(&conf, &e);
        smartnic_cni::failpoint::set(Some(step));
        let crashed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.plugin.add(&parsed, &e)));
        smartnic_cni::failpoint::set(None);
        del(&w, &conf, "c1", Some(&ns));
        let host = w.fake.links(Ns::Host);
        let after = host
            .get("enp1s0")
            .unwrap_or_else(|| panic!("{step}: enp1s0 missing ({crashed:?}): {host:?}"));
        assert_eq!((after.mac, after.mtu), (before.mac, before.mtu), "{step}");
        assert!(w.fake.links(Ns::Pod(&ns)).is_empty(), "{step}");
        assert!(w.plugin.store.vf_owners().unwrap().is_empty(), "{step}");
        assert_eq!(w.leases(), 0, "{step}");
    }
}

#[test]
fn a_pod_gone_without_del_gives_the_pf_back_to_the_next_add() {
    let w = world();
    let ns = w.netns("a");
    let conf = pf_conf(&w, serde_json::json!({}));
    add(&w, &conf, "a", &ns).unwrap();
    // the namespace is destroyed; the kernel hands the netdev back late, under its pod name
    w.fake.remove_netns_late(&ns, 3);
    let ns_b = w.netns("b");
    add(&w, &conf, "b", &ns_b).unwrap();
    assert!(w.fake.links(Ns::Pod(&ns_b)).contains_key("net1"));
    let host = w.fake.links(Ns::Host);
    assert!(!host.contains_key("net1") && !host.contains_key("enp1s0"));
    // a late DEL of the first pod does not touch the new owner's PF
    del(&w, &conf, "a", Some(&ns));
    assert!(w.fake.links(Ns::Pod(&ns_b)).contains_key("net1"));
    del(&w, &conf, "b", Some(&ns_b));
    assert!(w.fake.links(Ns::Host).contains_key("enp1s0"));
    assert_eq!(w.leases(), 0);
}

#[test]
fn a_pf_on_vfio_pci_is_claimed_without_a_netdev() {
    let w = World::new(1);
    w.fake.add_whole_pf("unused", pf_bdf(), "vfio-pci");
    offer(&w, &["0000:01:00.0"]);
    let ns = w.netns("dpdk");
    let conf = pf_conf(&w, serde_json::json!({}));
    let out = add(&w, &conf, "c1", &ns).unwrap();
    assert_eq!(out["interfaces"][0]["pciID"], "0000:01:00.0");
    assert_eq!(
        out["interfaces"][0]["mac"],
        MacAddr([2, 0, 0, 0, 0xbb, 7]).to_string()
    );
    assert_eq!(w.plugin.store.vf_owners().unwrap().len(), 1);
    del(&w, &conf, "c1", Some(&ns));
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
}
