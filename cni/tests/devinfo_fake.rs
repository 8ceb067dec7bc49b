//! The device-info file of an attachment on the in-memory host: an ADD of a VF claimed by DRA
//! writes it where the runtime asked (in the device-info directory only), an ADD of a
//! device-plugin VF writes none, an existing file is left, and DEL removes what the ADD wrote,
//! also after a crash.
#![allow(missing_docs, clippy::unwrap_used)]

mod common_fake;

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
};

use common_fake::*;
use nic::pci::PciAddress;
use serde_json::{Value, json};
use smartnic_cni::{env::Command, failpoint};

const PF: &str = "0000:3b:00.0";

fn world() -> World {
    let w = World::new(2);
    w.fake.set_pf_bdf("pf0", PF.parse::<PciAddress>().unwrap());
    w.fake.add_rdma_device("mlx5_3", bdf(1));
    w
}

fn devinfo_dir(w: &World) -> PathBuf {
    w.plugin.paths.devinfo_dirs[0].clone()
}

/// VF 1 with `file` as `runtimeConfig.CNIDeviceInfoFile`.
fn conf(w: &World, file: &Path) -> Value {
    w.sriov_conf(
        1,
        json!({"runtimeConfig": {"mac": "02:00:00:00:aa:01",
                                 "CNIDeviceInfoFile": file.to_str().unwrap()}}),
    )
}

/// ADD of `conf` as container `id`, its device from a DRA claim when `dra`.
fn add_from(w: &World, conf: &Value, id: &str, ns: &Path, dra: bool) -> Result<Value, String> {
    let e = env(Command::Add, id, "net1", Some(ns));
    let mut c = parse(conf, &e);
    c.dra_claimed = dra;
    w.plugin.add(&c, &e).map_err(|e| e.msg)
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_dra_claimed_vf_gets_its_device_info_written_and_del_removes_it() {
    let w = world();
    let ns = w.netns("pod1");
    let file = devinfo_dir(&w).join("team-a-web-net1-device.json");
    let c = conf(&w, &file);
    add_from(&w, &c, "c1", &ns, true).unwrap();
    assert_eq!(
        read(&file),
        json!({"type": "pci", "version": "1.1.0",
               "pci": {"pci-address": "0000:3b:02.1", "pf-pci-address": PF,
                       "rdma-device": "mlx5_3"}})
    );
    del(&w, &c, "c1", Some(&ns));
    assert!(!file.exists(), "DEL removes the file its ADD wrote");
    assert!(w.plugin.store.vf_owners().unwrap().is_empty());
}

#[test]
fn a_device_plugin_vf_gets_none_written_and_its_copied_file_is_left() {
    let w = world();
    let ns = w.netns("pod1");
    let file = devinfo_dir(&w).join("team-a-web-net1-device.json");
    let c = conf(&w, &file);
    add_from(&w, &c, "c1", &ns, false).unwrap();
    assert!(
        !file.exists(),
        "Multus copies the device plugin's file; the plugin writes none"
    );
    del(&w, &c, "c1", Some(&ns));
    // Multus' copy of the device plugin's file, naming this very VF: DEL leaves it to Multus
    std::fs::create_dir_all(devinfo_dir(&w)).unwrap();
    let copied = r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1"}}"#;
    std::fs::write(&file, copied).unwrap();
    add_from(&w, &c, "c2", &ns, false).unwrap();
    del(&w, &c, "c2", Some(&ns));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), copied);
    // a DRA ADD finding a file there leaves it, and so does its DEL (it does not name the VF)
    std::fs::write(&file, "{}").unwrap();
    add_from(&w, &c, "c3", &ns, true).unwrap();
    del(&w, &c, "c3", Some(&ns));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{}");
}

#[test]
fn a_device_info_file_outside_the_directory_is_not_written_and_the_add_succeeds() {
    let w = world();
    let ns = w.netns("pod1");
    let outside = w.dir.path().join("etc");
    // (a path with `..` is refused already as the configuration is read)
    for file in [
        outside.join("passwd"),
        w.dir.path().join("x"),
        devinfo_dir(&w).join("sub/x"),
    ] {
        let c = conf(&w, &file);
        add_from(&w, &c, "c1", &ns, true).unwrap();
        del(&w, &c, "c1", Some(&ns));
    }
    assert!(!outside.exists() && !devinfo_dir(&w).exists() && !w.dir.path().join("x").exists());
}

#[test]
fn a_crash_after_the_file_is_journaled_then_del_leaves_nothing() {
    let w = world();
    let ns = w.netns("pod1");
    let file = devinfo_dir(&w).join("team-a-web-net1-device.json");
    let c = conf(&w, &file);
    for step in ["device-info", "done"] {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        failpoint::set(Some(step));
        let crashed = catch_unwind(AssertUnwindSafe(|| add_from(&w, &c, "c1", &ns, true)));
        failpoint::set(None);
        std::panic::set_hook(hook);
        assert!(crashed.is_err(), "{step}: the failpoint was not hit");
        del(&w, &c, "c1", Some(&ns));
        assert!(!file.exists(), "{step}");
        assert!(w.plugin.store.vf_owners().unwrap().is_empty(), "{step}");
    }
}
