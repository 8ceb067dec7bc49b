//! Mode ib on the in-memory host: the pod's GUID (or the VF's own) through the PF, the VF netdev
//! moved like sriov's, the GUID put back by DEL (also after a crash), the refusals of a GUID
//! that cannot address the VF, and the partition key check.
#![allow(missing_docs, clippy::unwrap_used)]

mod common_fake;

use common_fake::*;
use nic::netlink::{Guid, VfSetting};
use smartnic_cni::{env::Command, error::code, host::Host, host::Ns};

const OWN: &str = "ba:ce:f6:5a:20:00:00:01";
const POD: &str = "02:00:00:00:00:00:10:01";

/// A world whose PF `pf0` is an IB port: its VFs' GUIDs are the derived ones the agent set,
/// their P_Key tables hold `pkeys`.
fn ib_world(pkeys: &[u16]) -> World {
    let w = World::new(2);
    w.fake.make_ib("pf0", pkeys);
    for vf in 0..2 {
        let g: Guid = format!("ba:ce:f6:5a:20:00:00:0{vf}").parse().unwrap();
        w.fake.set_vf("pf0", vf, VfSetting::IbNodeGuid(g)).unwrap();
        w.fake.set_vf("pf0", vf, VfSetting::IbPortGuid(g)).unwrap();
    }
    w
}

fn ib_conf(w: &World, extra: serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({
        "cniVersion": "1.1.0", "name": "vfnet", "type": "smartnic", "mode": "ib",
        "deviceID": bdf(1).to_string(), "linkState": "enable",
        "capabilities": {"infinibandGUID": true},
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]],
                 "dataDir": w.data_dir().to_str().unwrap()}
    });
    merge(&mut c, extra);
    c
}

fn guids(w: &World, vf: u32) -> (Option<Guid>, Option<Guid>) {
    let row = &w.fake.vf_rows()[&("pf0".to_string(), vf)];
    (row.node_guid, row.port_guid)
}

#[test]
fn the_pods_guid_is_set_through_the_pf_and_del_puts_the_vfs_own_back() {
    let w = ib_world(&[0xffff]);
    let ns = w.netns("ib1");
    let conf = ib_conf(
        &w,
        serde_json::json!({"runtimeConfig": {"infinibandGUID": POD}}),
    );
    let out = add(&w, &conf, "c1", &ns).unwrap();
    assert_eq!(out["interfaces"][0]["pciID"], bdf(1).to_string());
    let pod: Guid = POD.parse().unwrap();
    assert_eq!(guids(&w, 1), (Some(pod), Some(pod)));
    assert!(w.fake.links(Ns::Pod(&ns)).contains_key("net1"));
    assert!(!w.fake.links(Ns::Host).contains_key("pf0v1"));
    del(&w, &conf, "c1", Some(&ns));
    let own: Guid = OWN.parse().unwrap();
    assert_eq!(guids(&w, 1), (Some(own), Some(own)));
    assert!(w.fake.links(Ns::Host).contains_key("pf0v1"));
    assert_eq!(w.leases(), 0);
}

#[test]
fn without_a_runtime_guid_the_vf_keeps_its_own() {
    let w = ib_world(&[0xffff]);
    let ns = w.netns("ib2");
    let conf = ib_conf(&w, serde_json::json!({}));
    add(&w, &conf, "c1", &ns).unwrap();
    let own: Guid = OWN.parse().unwrap();
    assert_eq!(guids(&w, 1), (Some(own), Some(own)));
    del(&w, &conf, "c1", Some(&ns));
}

#[test]
fn a_zero_or_all_ones_guid_is_refused_and_leaves_nothing() {
    // the VF's own GUID was never set (zero): refused before anything moves
    let w = World::new(2);
    w.fake.make_ib("pf0", &[0xffff]);
    let ns = w.netns("ib3");
    let conf = ib_conf(&w, serde_json::json!({}));
    let err = add(&w, &conf, "c1", &ns).unwrap_err();
    assert_eq!(err.code, code::INVALID_CONFIG);
    assert!(
        err.msg
            .contains("VF GUID 00:00:00:00:00:00:00:00 is not valid"),
        "{}",
        err.msg
    );
    assert!(err.msg.contains("port GUID of VF 1 of pf0"), "{}", err.msg);
    assert!(w.fake.links(Ns::Host).contains_key("pf0v1"));
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
    // a pod asking for the all-ones GUID is refused at parse time
    let conf = ib_conf(
        &w,
        serde_json::json!({"runtimeConfig": {"infinibandGUID": "ff:ff:ff:ff:ff:ff:ff:ff"}}),
    );
    let e = env(Command::Add, "c2", "net1", Some(&ns));
    let err = smartnic_cni::config::NetConf::parse(conf.to_string().as_bytes(), &e).unwrap_err();
    assert!(
        err.msg.contains("runtimeConfig.infinibandGUID"),
        "{}",
        err.msg
    );
    assert!(err.msg.contains("is not valid"), "{}", err.msg);
}

#[test]
fn the_partition_key_must_be_in_the_vfs_table_with_the_membership_asked() {
    // limited member of 0x0003, full member of 0x0001 (0x8001)
    let w = ib_world(&[0x8001, 0x0003]);
    let ns = w.netns("ib4");
    for (pkey, ok) in [
        (0x8001, true),
        (0x0001, true),
        (0x0003, true),
        (0x8003, false),
        (0x8002, false),
    ] {
        let conf = ib_conf(&w, serde_json::json!({"pkey": pkey}));
        match add(&w, &conf, "c1", &ns) {
            Ok(_) => {
                assert!(ok, "pkey {pkey:#06x} was accepted");
                del(&w, &conf, "c1", Some(&ns));
            }
            Err(e) => {
                assert!(!ok, "pkey {pkey:#06x}: {}", e.msg);
                assert!(e.msg.contains("the subnet manager must add"), "{}", e.msg);
                assert!(w.fake.links(Ns::Host).contains_key("pf0v1"));
            }
        }
    }
}

#[test]
fn a_crash_after_the_guid_was_set_is_undone_by_del() {
    let w = ib_world(&[0xffff]);
    let ns = w.netns("ib5");
    let conf = ib_conf(
        &w,
        serde_json::json!({"runtimeConfig": {"infinibandGUID": POD}}),
    );
    let e = env(Command::Add, "c1", "net1", Some(&ns));
    let parsed = parse(&conf, &e);
    smartnic_cni::failpoint::set(Some("addresses"));
    let crashed =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.plugin.add(&parsed, &e)));
    smartnic_cni::failpoint::set(None);
    assert!(crashed.is_err());
    let pod: Guid = POD.parse().unwrap();
    assert_eq!(guids(&w, 1).1, Some(pod));
    del(&w, &conf, "c1", Some(&ns));
    let own: Guid = OWN.parse().unwrap();
    assert_eq!(guids(&w, 1), (Some(own), Some(own)));
    assert!(w.fake.links(Ns::Host).contains_key("pf0v1"));
}

fn host_has_ib_netdev(w: &World) -> bool {
    w.fake.links(Ns::Host).keys().any(|n| n.starts_with("ib"))
}

#[test]
fn the_vf_is_rebound_after_its_guid_is_set_and_before_it_moves() {
    let w = ib_world(&[0xffff]);
    let ns = w.netns("ib6");
    let conf = ib_conf(
        &w,
        serde_json::json!({"runtimeConfig": {"infinibandGUID": POD}}),
    );
    add(&w, &conf, "c1", &ns).unwrap();
    let ev = w.fake.events();
    let vf = bdf(1);
    let at = |e: &str| {
        ev.iter()
            .position(|x| x == e)
            .unwrap_or_else(|| panic!("no {e} in {ev:?}"))
    };
    let last_guid = ev.iter().rposition(|x| x == "guid pf0 1").unwrap();
    let (unbind, bind) = (at(&format!("unbind {vf}")), at(&format!("bind {vf}")));
    let moved = ev.iter().position(|x| x.starts_with("move ")).unwrap();
    assert!(
        last_guid < unbind && unbind < bind && bind < moved,
        "{ev:?}"
    );
    // the netdev moved is the one the bind made (the kernel's new name), not the old one
    assert_ne!(ev[moved], "move pf0v1", "{ev:?}");
    assert_eq!(w.fake.links(Ns::Pod(&ns))["net1"].vf, Some(vf));
    assert_eq!(
        w.fake.vf_device(&vf).unwrap().driver.as_deref(),
        Some("igbvf")
    );
    // DEL: the VF's own GUID back, then rebound, its netdev under its old name again
    let before_del = w.fake.events().len();
    del(&w, &conf, "c1", Some(&ns));
    let ev = w.fake.events()[before_del..].to_vec();
    let g = ev.iter().rposition(|x| x == "guid pf0 1").unwrap();
    let u = ev
        .iter()
        .position(|x| *x == format!("unbind {vf}"))
        .unwrap();
    let b = ev.iter().position(|x| *x == format!("bind {vf}")).unwrap();
    assert!(g < u && u < b, "{ev:?}");
    let own: Guid = OWN.parse().unwrap();
    assert_eq!(guids(&w, 1), (Some(own), Some(own)));
    assert_eq!(w.fake.links(Ns::Host)["pf0v1"].vf, Some(vf));
    assert!(!host_has_ib_netdev(&w));
}

#[test]
fn an_unchanged_guid_is_not_rebound() {
    let w = ib_world(&[0xffff]);
    let ns = w.netns("ib7");
    for (id, extra) in [
        ("c1", serde_json::json!({})),
        (
            "c2",
            serde_json::json!({"runtimeConfig": {"infinibandGUID": OWN}}),
        ),
    ] {
        let conf = ib_conf(&w, extra);
        add(&w, &conf, id, &ns).unwrap();
        del(&w, &conf, id, Some(&ns));
    }
    let ev = w.fake.events();
    assert!(
        !ev.iter()
            .any(|e| e.starts_with("unbind") || e.starts_with("bind")),
        "{ev:?}"
    );
    assert!(w.fake.links(Ns::Host).contains_key("pf0v1"));
}

#[test]
fn a_crash_around_the_rebind_is_undone_by_del() {
    for step in ["vf-configure", "vf-rebind", "vf-bind", "vf-move", "done"] {
        let w = ib_world(&[0xffff]);
        let ns = w.netns("ib8");
        let conf = ib_conf(
            &w,
            serde_json::json!({"runtimeConfig": {"infinibandGUID": POD}}),
        );
        let e = env(Command::Add, "c1", "net1", Some(&ns));
        let parsed = parse(&conf, &e);
        smartnic_cni::failpoint::set(Some(step));
        let crashed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.plugin.add(&parsed, &e)));
        smartnic_cni::failpoint::set(None);
        assert!(crashed.is_err(), "{step}");
        if step == "vf-bind" {
            // between unbind and bind: no driver, no netdev
            let dev = w.fake.vf_device(&bdf(1)).unwrap();
            assert_eq!((dev.driver, dev.netdev), (None, None), "{step}");
        }
        del(&w, &conf, "c1", Some(&ns));
        let own: Guid = OWN.parse().unwrap();
        assert_eq!(guids(&w, 1), (Some(own), Some(own)), "{step}");
        let dev = w.fake.vf_device(&bdf(1)).unwrap();
        assert_eq!(dev.driver.as_deref(), Some("igbvf"), "{step}");
        assert_eq!(dev.netdev.as_deref(), Some("pf0v1"), "{step}");
        assert!(!host_has_ib_netdev(&w), "{step}");
        assert!(w.fake.links(Ns::Pod(&ns)).is_empty(), "{step}");
        assert!(w.plugin.store.vf_owners().unwrap().is_empty(), "{step}");
        assert!(w.plugin.store.attachments().unwrap().is_empty(), "{step}");
        assert_eq!(w.leases(), 0, "{step}");
    }
}

#[test]
fn a_netdev_that_does_not_come_back_fails_the_add_and_leaves_nothing() {
    let w = ib_world(&[0xffff]);
    let ns = w.netns("ib9");
    let conf = ib_conf(
        &w,
        serde_json::json!({"runtimeConfig": {"infinibandGUID": POD}}),
    );
    w.fake.netdev_less_binds(bdf(1), 1);
    let err = add(&w, &conf, "c1", &ns).unwrap_err();
    assert_eq!(err.code, code::HOST);
    assert!(
        err.msg.contains("VF 1 of pf0 (0000:3b:02.1)")
            && err.msg.contains("no netdev appeared within 10s")
            && err.msg.contains("rebound to igbvf"),
        "{}",
        err.msg
    );
    // the ADD's undo put the VF's own GUID back and rebound it: its netdev is back
    let own: Guid = OWN.parse().unwrap();
    assert_eq!(guids(&w, 1), (Some(own), Some(own)));
    let dev = w.fake.vf_device(&bdf(1)).unwrap();
    assert_eq!(dev.driver.as_deref(), Some("igbvf"));
    assert_eq!(dev.netdev.as_deref(), Some("pf0v1"));
    assert!(!host_has_ib_netdev(&w));
    assert!(w.fake.links(Ns::Pod(&ns)).is_empty());
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
    assert!(w.plugin.store.attachments().unwrap().is_empty());
    assert_eq!(w.leases(), 0);
}
