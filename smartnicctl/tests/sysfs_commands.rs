//! `smartnicctl discover` and `smartnicctl sriov` against fixture trees: the checked-in examples
//! (read only) and fresh temporary trees (for writes).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crds::inventory::NicInventory;
use nic::fixtures::{CLASS_ETHERNET, FakeHost, FunctionSpec, HostBuilder, NetdevSpec};
use serde_json::Value;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/hosts")
        .join(name)
}

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smartnicctl"))
        .args(args)
        .output()
        .expect("smartnicctl runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(args: &[&str]) -> String {
    let o = ctl(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Runs a failing command; returns stderr after checking the contract (`error: ...`, exit 1).
fn fails(args: &[&str]) -> String {
    let o = ctl(args);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    err
}

fn root(host: &FakeHost) -> &str {
    host.root().to_str().expect("utf-8 temp path")
}

#[test]
fn discover_json_has_the_inventory_shape() {
    let out = ok(&[
        "discover",
        "--root",
        example("cx6dx-switchdev").to_str().unwrap(),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let nics = v["nics"].as_array().unwrap();
    assert_eq!(nics.len(), 2);
    let pf = &nics[0];
    for (key, want) in [
        ("pciAddress", "0000:3b:00.0"),
        ("name", "ens1f0np0"),
        ("vendorId", "15b3"),
        ("deviceId", "101d"),
        ("driver", "mlx5_core"),
        ("linkType", "eth"),
        ("mac", "b8:ce:f6:58:e0:a4"),
        ("eswitchMode", "switchdev"),
        ("switchId", "b8cef6030058e0a4"),
        ("portName", "p0"),
        ("operState", "up"),
    ] {
        assert_eq!(pf[key], want, "{key}");
    }
    assert_eq!(pf["numaNode"], 0);
    assert_eq!(pf["iommuGroup"], 40);
    assert_eq!(pf["mtu"], 1500);
    assert_eq!(pf["speedMbps"], 100_000);
    assert_eq!(pf["totalVfs"], 8);
    assert_eq!(pf["numVfs"], 4);
    let vf = &pf["vfs"][2];
    assert_eq!(vf["vfId"], 2);
    assert_eq!(vf["pciAddress"], "0000:3b:00.4");
    assert_eq!(vf["name"], "ens1f0v2");
    assert_eq!(vf["driver"], "mlx5_core");
    assert_eq!(vf["mac"], "02:3b:00:00:00:02");
    assert_eq!(vf["representor"], "ens1f0npf0vf2");
    assert_eq!(vf["deviceId"], "101e");
    assert_eq!(vf["numaNode"], 0);
    assert_eq!(vf["iommuGroup"], 43);
    assert_eq!(vf["mtu"], 1500);
    // it is exactly the shared inventory type
    let inv: NicInventory = serde_json::from_str(&out).unwrap();
    assert_eq!(inv.nics[1].vfs.len(), 2);
}

#[test]
fn discover_yaml_is_the_same_document() {
    let dir = example("e810");
    let json = ok(&["discover", "--root", dir.to_str().unwrap(), "-o", "json"]);
    let yaml = ok(&["discover", "--root", dir.to_str().unwrap(), "-o", "yaml"]);
    let a: NicInventory = serde_json::from_str(&json).unwrap();
    let b: NicInventory = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(a, b);
    // the vfio-pci VF has no netdev fields
    let vf = &a.nics[0].vfs[1];
    assert_eq!(vf.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(vf.name, None);
}

#[test]
fn discover_table_on_every_example() {
    let t = ok(&["discover", "--root", example("igb-82576").to_str().unwrap()]);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("PCI "), "{t}");
    assert!(lines[1].starts_with("0000:01:00.0  enp1s0  igb "), "{t}");
    assert!(lines[2].trim_start().starts_with("VF  PCI"), "{t}");
    assert!(
        lines[3].starts_with("    0   0000:01:10.0  enp1s0v0  igbvf"),
        "{t}"
    );
    let t = ok(&["discover", "--root", example("e810").to_str().unwrap()]);
    assert!(t.contains("0000:17:02.1  -         vfio-pci"), "{t}");
    let t = ok(&[
        "discover",
        "--root",
        example("cx6dx-switchdev").to_str().unwrap(),
    ]);
    assert!(t.contains("ens1f1npf1vf1"), "{t}");
}

#[test]
fn discover_on_a_host_without_sriov() {
    let mut f = FunctionSpec::new(
        "0000:00:03.0".parse().unwrap(),
        0x1af4,
        0x1041,
        CLASS_ETHERNET,
        "virtio-pci",
    );
    f.netdevs.push(NetdevSpec::eth("eth0", "52:54:00:12:34:56"));
    let host = HostBuilder::new().function(f).build().unwrap();
    let t = ok(&["discover", "--root", root(&host)]);
    assert!(
        t.ends_with("no SR-IOV capable NIC found on this host (1 PCI network function)\n"),
        "{t}"
    );
    let empty = HostBuilder::new().build().unwrap();
    let t = ok(&["discover", "--root", root(&empty)]);
    assert_eq!(
        t,
        "no SR-IOV capable NIC found on this host (0 PCI network functions)\n"
    );
    let json = ok(&["discover", "--root", root(&empty), "-o", "json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        serde_json::json!({"nics": []})
    );
}

#[test]
fn discover_prints_warnings_on_stderr_and_succeeds() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    host.set_attr("0000:01:00.0", "sriov_numvfs", "two\n")
        .unwrap();
    let o = ctl(&["discover", "--root", root(&host), "-o", "json"]);
    assert!(o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.starts_with("warning: 0000:01:00.0: cannot parse "),
        "{err}"
    );
    assert!(
        err.contains("sriov_numvfs: \"two\" is not a number"),
        "{err}"
    );
    let inv: NicInventory = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(inv.nics[0].num_vfs, 2);
}

#[test]
fn discover_with_a_missing_root_fails() {
    let err = fails(&["discover", "--root", "/nonexistent/tree"]);
    assert!(
        err.contains("/nonexistent/tree/sys/bus/pci/devices"),
        "{err}"
    );
}

/// Runs `smartnicctl args` while playing the kernel on `host` until it exits.
fn ctl_with_kernel(host: &FakeHost, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smartnicctl"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("smartnicctl starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        host.settle().expect("fake kernel");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn sriov_numvfs_writes_and_waits_for_the_links() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    let o = ctl_with_kernel(
        &host,
        &[
            "sriov",
            "numvfs",
            "0000:01:00.0",
            "5",
            "--root",
            root(&host),
            "--wait-secs",
            "10",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.starts_with(
            "0000:01:00.0: sriov_numvfs 2 -> 5: destroyed VFs 0-1, created 5; every VF has a netdev after"
        ),
        "{out}"
    );
    assert!(host.device_dir("0000:01:00.0").join("virtfn4").exists());
    // by netdev name, back to 0
    let o = ctl_with_kernel(
        &host,
        &["sriov", "numvfs", "enp1s0", "0", "--root", root(&host)],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout)
            == "enp1s0 (0000:01:00.0): sriov_numvfs 5 -> 0: destroyed VFs 0-4, created 0\n",
        "{}",
        text(&o.stdout)
    );
    assert!(!host.device_dir("0000:01:00.0").join("virtfn0").exists());
    // already there: nothing written
    let out = ok(&["sriov", "numvfs", "enp1s0", "0", "--root", root(&host)]);
    assert_eq!(out, "enp1s0 (0000:01:00.0): sriov_numvfs is already 0\n");
}

#[test]
fn sriov_numvfs_without_waiting() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    let out = ok(&[
        "sriov",
        "numvfs",
        "01:00.0",
        "3",
        "--root",
        root(&host),
        "--wait-secs",
        "0",
    ]);
    assert_eq!(
        out,
        "0000:01:00.0: sriov_numvfs 2 -> 3: destroyed VFs 0-1, created 3; not waiting for the VFs\n"
    );
    let numvfs = host.device_dir("0000:01:00.0").join("sriov_numvfs");
    assert_eq!(std::fs::read_to_string(numvfs).unwrap(), "3");
}

#[test]
fn sriov_autoprobe_show_and_set() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    let r = root(&host);
    let out = ok(&["sriov", "autoprobe", "enp1s0", "--root", r]);
    assert_eq!(out, "enp1s0 (0000:01:00.0): sriov_drivers_autoprobe on\n");
    let out = ok(&["sriov", "autoprobe", "0000:01:00.0", "off", "--root", r]);
    assert_eq!(out, "0000:01:00.0: sriov_drivers_autoprobe off\n");
    let err = fails(&["sriov", "autoprobe", "0000:01:10.0", "--root", r]);
    assert!(err.contains("0000:01:10.0 is not SR-IOV capable"), "{err}");
}

#[test]
fn sriov_numvfs_errors() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    let r = root(&host);
    let err = fails(&["sriov", "numvfs", "enp1s0", "8", "--root", r]);
    assert!(err.contains("enp1s0 (0000:01:00.0)"), "{err}");
    assert!(err.contains("at most 7 VFs"), "{err}");
    let err = fails(&["sriov", "numvfs", "nosuch0", "1", "--root", r]);
    assert!(err.contains("no network interface nosuch0"), "{err}");
    let err = fails(&["sriov", "numvfs", "lo", "1", "--root", r]);
    assert!(err.contains("lo is not a PCI network function"), "{err}");
    let err = fails(&["sriov", "numvfs", "0000:ff:1f.7", "1", "--root", r]);
    assert!(err.contains("no PCI function 0000:ff:1f.7"), "{err}");
    let err = fails(&["sriov", "numvfs", "eth0", "1", "--root", r]);
    assert!(err.contains("no network interface eth0"), "{err}");
    let err = fails(&["sriov", "numvfs", "1", "--root", r]);
    assert!(err.contains("<N>"), "{err}");
    // the kernel never finished: timeout names the PF
    let err = fails(&[
        "sriov",
        "numvfs",
        "0000:01:00.0",
        "4",
        "--root",
        r,
        "--wait-secs",
        "1",
    ]);
    assert!(err.contains("0000:01:00.0: 2 of 4 VFs present"), "{err}");
}

#[test]
fn sriov_driver_bind_unbind_and_back() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    let r = root(&host);
    let vf = "0000:01:10.2";
    let bind = |driver: &str| {
        let o = ctl_with_kernel(
            &host,
            &["sriov", "driver", "--pci", vf, driver, "--root", r],
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let out = bind("vfio-pci");
    assert_eq!(
        out,
        "0000:01:10.2: driver igbvf -> vfio-pci (bound driver checked)\n"
    );
    let json = ok(&["discover", "--root", r, "-o", "json"]);
    let inv: NicInventory = serde_json::from_str(&json).unwrap();
    let v = &inv.nics[0].vfs[1];
    assert_eq!(v.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(v.name, None);
    assert_eq!(v.iommu_group, Some(10));

    let out = ok(&["sriov", "driver", "--pci", vf, "none", "--root", r]);
    assert_eq!(out, "0000:01:10.2: driver vfio-pci -> none\n");
    host.settle().unwrap();
    let out = bind("igbvf");
    assert!(
        out.starts_with("0000:01:10.2: driver none -> igbvf"),
        "{out}"
    );
    let out = ok(&["sriov", "driver", "--pci", vf, "igbvf", "--root", r]);
    assert_eq!(out, "0000:01:10.2: driver is already igbvf\n");

    // a driver that does not take the VF: back on igbvf, driver_override cleared
    host.never_binds("vfio-pci");
    let o = ctl_with_kernel(
        &host,
        &[
            "sriov",
            "driver",
            "--pci",
            vf,
            "vfio-pci",
            "--root",
            r,
            "--wait-secs",
            "1",
        ],
    );
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("bind 0000:01:10.2 to vfio-pci"), "{err}");
    assert!(
        err.contains("rolled back: on igbvf again, driver_override cleared"),
        "{err}"
    );
    let over = std::fs::read_to_string(host.device_dir(vf).join("driver_override")).unwrap();
    assert_eq!(over, "\n");

    let err = fails(&[
        "sriov",
        "driver",
        "--pci",
        "0000:ff:1f.7",
        "vfio-pci",
        "--root",
        r,
    ]);
    assert!(err.contains("0000:ff:1f.7"), "{err}");
    let err = fails(&[
        "sriov",
        "driver",
        "--pci",
        vf,
        "uio_pci_generic",
        "--root",
        r,
    ]);
    assert!(
        err.contains("driver uio_pci_generic is not loaded"),
        "{err}"
    );
}

#[test]
fn sriov_driver_without_a_kernel_fails_and_rolls_back() {
    // no settle: the fixture has no kernel, so the device never reaches vfio-pci
    let host = HostBuilder::new().igb_82576().build().unwrap();
    let err = fails(&[
        "sriov",
        "driver",
        "--pci",
        "0000:01:10.0",
        "vfio-pci",
        "--root",
        root(&host),
        "--wait-secs",
        "0",
    ]);
    assert!(
        err.contains("0000:01:10.0 is bound to igbvf after "),
        "{err}"
    );
    assert!(
        err.contains("not to vfio-pci; rolled back: on igbvf again, driver_override cleared"),
        "{err}"
    );
}

#[test]
fn sriov_representor_looks_up_the_vf_representor_in_sysfs() {
    let r = example("cx6dx-switchdev");
    let r = r.to_str().unwrap();
    let out = ok(&[
        "sriov",
        "representor",
        "ens1f1np1",
        "--vf",
        "1",
        "--root",
        r,
    ]);
    assert_eq!(out.trim(), "ens1f1npf1vf1");
    let err = fails(&[
        "sriov",
        "representor",
        "ens1f0np0",
        "--vf",
        "7",
        "--root",
        r,
    ]);
    assert!(err.contains("VF 7 of ens1f0np0"), "{err}");
    let legacy = example("e810");
    let err = fails(&[
        "sriov",
        "representor",
        "ens2f0np0",
        "--vf",
        "0",
        "--root",
        legacy.to_str().unwrap(),
    ]);
    assert!(err.contains("not a switchdev uplink"), "{err}");
}

#[test]
fn a_long_vf_wait_shows_progress_and_says_its_duration_plainly() {
    // a copy of the igb tree: the write goes through, but no kernel creates the VFs
    let dir = tempfile::tempdir().expect("dir");
    let tree = dir.path().join("h");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(example("igb-82576"))
            .arg(&tree)
            .status()
            .expect("cp")
            .success()
    );
    let o = ctl(&[
        "sriov",
        "numvfs",
        "0000:01:00.0",
        "7",
        "--root",
        tree.to_str().expect("utf-8"),
        "--wait-secs",
        "3",
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.lines().last().is_some_and(|l| l.starts_with("error: ")),
        "{err}"
    );
    assert!(
        err.contains("waiting for the VFs: 2 of 7 present after "),
        "{err}"
    );
    assert!(err.contains("VFs present after 3 s"), "{err}");
}
