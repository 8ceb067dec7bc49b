//! Discovery over fixture trees: every reported field, switchdev mapping, and malformed input.

use std::collections::HashMap;
use std::fs;

use crds::inventory::{EswitchMode, LinkType, Nic, NicInventory};
use nic::discovery::{Discovery, apply_eswitch_modes, discover, discover_with_warnings};
use nic::fixtures::{CLASS_NVME, FakeHost, FunctionSpec, HostBuilder, NetdevSpec};
use nic::pci::PciAddress;
use nic::sysfs::SysFs;

fn run(host: &FakeHost) -> Discovery {
    discover_with_warnings(&host.sysfs()).expect("discovery")
}

fn nic<'a>(inv: &'a NicInventory, bdf: &str) -> &'a Nic {
    inv.nics
        .iter()
        .find(|n| n.pci_address == bdf)
        .unwrap_or_else(|| panic!("{bdf} not discovered"))
}

#[test]
fn cx6dx_legacy_pf_fields() {
    let host = HostBuilder::new()
        .cx6dx(EswitchMode::Legacy)
        .build()
        .unwrap();
    let d = run(&host);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert_eq!(d.inventory.nics.len(), 2);
    assert_eq!(d.network_functions, 2 + 4 + 2);
    let pf = nic(&d.inventory, "0000:3b:00.0");
    assert_eq!(pf.name.as_deref(), Some("ens1f0np0"));
    assert_eq!(pf.vendor_id, "15b3");
    assert_eq!(pf.device_id, "101d");
    assert_eq!(pf.vendor_name.as_deref(), Some("Mellanox Technologies"));
    assert_eq!(
        pf.device_name.as_deref(),
        Some("MT2892 Family [ConnectX-6 Dx]")
    );
    assert_eq!(pf.driver.as_deref(), Some("mlx5_core"));
    assert_eq!(pf.numa_node, Some(0));
    assert_eq!(pf.iommu_group, Some(40));
    assert_eq!(pf.link_type, Some(LinkType::Eth));
    assert_eq!(pf.mac.as_deref(), Some("b8:ce:f6:58:e0:a4"));
    assert_eq!(pf.mtu, Some(1500));
    assert_eq!(pf.oper_state.as_deref(), Some("up"));
    assert_eq!(pf.speed_mbps, Some(100_000));
    assert_eq!(pf.total_vfs, 8);
    assert_eq!(pf.num_vfs, 4);
    // mlx5 reports p0 and a switch id in legacy too; without representors it is still legacy
    assert_eq!(pf.port_name.as_deref(), Some("p0"));
    assert_eq!(pf.switch_id.as_deref(), Some("b8cef6030058e0a4"));
    assert_eq!(pf.eswitch_mode, Some(EswitchMode::Legacy));
    assert_eq!(pf.vfs.len(), 4);
    assert!(pf.vfs.iter().all(|v| v.representor.is_none()));

    let vf = &pf.vfs[3];
    assert_eq!(vf.vf_id, 3);
    assert_eq!(vf.pci_address, "0000:3b:00.5");
    assert_eq!(vf.name.as_deref(), Some("ens1f0v3"));
    assert_eq!(vf.driver.as_deref(), Some("mlx5_core"));
    assert_eq!(vf.mac.as_deref(), Some("02:3b:00:00:00:03"));
    assert_eq!(vf.device_id.as_deref(), Some("101e"));
    assert_eq!(vf.numa_node, Some(0));
    assert_eq!(vf.iommu_group, Some(44));
    assert_eq!(vf.mtu, Some(1500));

    let pf1 = nic(&d.inventory, "0000:3b:00.1");
    assert_eq!(pf1.name.as_deref(), Some("ens1f1np1"));
    assert_eq!(pf1.num_vfs, 2);
    assert_eq!(pf1.vfs[1].pci_address, "0000:3b:01.3");
}

#[test]
fn cx6dx_switchdev_uplink_and_representors() {
    let host = HostBuilder::new()
        .cx6dx(EswitchMode::Switchdev)
        .build()
        .unwrap();
    let d = run(&host);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let pf = nic(&d.inventory, "0000:3b:00.0");
    // the PF's net/ lists ens1f0np0 and ens1f0npf0vf0..3; the uplink is the name
    assert_eq!(pf.name.as_deref(), Some("ens1f0np0"));
    assert_eq!(pf.eswitch_mode, Some(EswitchMode::Switchdev));
    assert_eq!(pf.port_name.as_deref(), Some("p0"));
    let reps: Vec<_> = pf.vfs.iter().map(|v| v.representor.as_deref()).collect();
    assert_eq!(
        reps,
        [
            Some("ens1f0npf0vf0"),
            Some("ens1f0npf0vf1"),
            Some("ens1f0npf0vf2"),
            Some("ens1f0npf0vf3")
        ]
    );
    // both ports share the switch id; port 1's VFs map to pf1vfN, not to port 0's pf0vfN
    let pf1 = nic(&d.inventory, "0000:3b:00.1");
    assert_eq!(pf1.switch_id, pf.switch_id);
    assert_eq!(pf1.vfs[0].representor.as_deref(), Some("ens1f1npf1vf0"));
    assert_eq!(pf1.vfs[1].representor.as_deref(), Some("ens1f1npf1vf1"));
}

#[test]
fn representors_under_another_function_are_found_through_class_net() {
    // Move port 1's representors to port 0's net/ (one eswitch for both ports).
    let mut b = HostBuilder::new().cx6dx(EswitchMode::Switchdev);
    let reps: Vec<NetdevSpec> = b.pfs()[1].function.netdevs[1..].to_vec();
    b = b
        .edit_pf("0000:3b:00.1", |pf| pf.function.netdevs.truncate(1))
        .edit_pf("0000:3b:00.0", |pf| pf.function.netdevs.extend(reps));
    let host = b.build().unwrap();
    let d = run(&host);
    let pf1 = nic(&d.inventory, "0000:3b:00.1");
    assert_eq!(pf1.vfs[1].representor.as_deref(), Some("ens1f1npf1vf1"));
    assert_eq!(pf1.eswitch_mode, Some(EswitchMode::Switchdev));
    let pf0 = nic(&d.inventory, "0000:3b:00.0");
    assert_eq!(pf0.name.as_deref(), Some("ens1f0np0"));
    assert_eq!(pf0.vfs[0].representor.as_deref(), Some("ens1f0npf0vf0"));
}

#[test]
fn representors_outside_any_pci_function_are_found_through_class_net() {
    let mut b = HostBuilder::new().cx6dx(EswitchMode::Switchdev);
    let reps: Vec<NetdevSpec> = b.pfs()[1].function.netdevs[1..].to_vec();
    b = b.edit_pf("0000:3b:00.1", |pf| pf.function.netdevs.truncate(1));
    let host = b.build().unwrap();
    for r in &reps {
        host.add_virtual_netdev(r).unwrap();
    }
    let d = run(&host);
    let pf1 = nic(&d.inventory, "0000:3b:00.1");
    assert_eq!(pf1.vfs[0].representor.as_deref(), Some("ens1f1npf1vf0"));
    assert_eq!(pf1.vfs[1].representor.as_deref(), Some("ens1f1npf1vf1"));
    assert_eq!(pf1.eswitch_mode, Some(EswitchMode::Switchdev));
}

#[test]
fn compat_devlink_mode_wins_over_inference() {
    let host = HostBuilder::new()
        .cx6dx(EswitchMode::Legacy)
        .edit_pf("0000:3b:00.0", |pf| {
            pf.function.netdevs[0].compat_devlink_mode = Some("switchdev".into())
        })
        .edit_pf("0000:3b:00.1", |pf| {
            pf.function.netdevs[0].compat_devlink_mode = Some("bogus".into())
        })
        .build()
        .unwrap();
    let d = run(&host);
    assert_eq!(
        nic(&d.inventory, "0000:3b:00.0").eswitch_mode,
        Some(EswitchMode::Switchdev)
    );
    // unknown text: warning, then inference
    assert_eq!(
        nic(&d.inventory, "0000:3b:00.1").eswitch_mode,
        Some(EswitchMode::Legacy)
    );
    assert_eq!(d.warnings.len(), 1);
    assert!(
        d.warnings[0]
            .message
            .contains("unknown eswitch mode \"bogus\""),
        "{:?}",
        d.warnings
    );
    assert!(d.warnings[0].message.contains("compat/devlink/mode"));
}

#[test]
fn devlink_modes_override_inference() {
    let host = HostBuilder::new()
        .cx6dx(EswitchMode::Legacy)
        .igb_82576()
        .build()
        .unwrap();
    let mut inv = discover(&host.sysfs()).unwrap();
    let pf: PciAddress = "0000:3b:00.1".parse().unwrap();
    apply_eswitch_modes(&mut inv, &HashMap::from([(pf, EswitchMode::Switchdev)]));
    assert_eq!(
        nic(&inv, "0000:3b:00.1").eswitch_mode,
        Some(EswitchMode::Switchdev)
    );
    assert_eq!(
        nic(&inv, "0000:3b:00.0").eswitch_mode,
        Some(EswitchMode::Legacy)
    );
    assert_eq!(nic(&inv, "0000:01:00.0").eswitch_mode, None);
}

#[test]
fn e810_with_a_vfio_vf() {
    let host = HostBuilder::new().e810().build().unwrap();
    let d = run(&host);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let pf = nic(&d.inventory, "0000:17:00.0");
    assert_eq!(
        (pf.vendor_id.as_str(), pf.device_id.as_str()),
        ("8086", "1593")
    );
    assert_eq!(
        pf.device_name.as_deref(),
        Some("Ethernet Controller E810-C for SFP")
    );
    assert_eq!(pf.driver.as_deref(), Some("ice"));
    assert_eq!(pf.numa_node, Some(1));
    assert_eq!(pf.speed_mbps, Some(25_000));
    assert_eq!((pf.total_vfs, pf.num_vfs), (128, 4));
    assert_eq!(pf.eswitch_mode, Some(EswitchMode::Legacy));
    let vfio = &pf.vfs[1];
    assert_eq!(vfio.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(vfio.name, None);
    assert_eq!(vfio.mac, None);
    assert_eq!(vfio.mtu, None);
    assert_eq!(vfio.device_id.as_deref(), Some("1889"));
    assert_eq!(vfio.iommu_group, Some(22));
    assert_eq!(pf.vfs[0].driver.as_deref(), Some("iavf"));
    assert_eq!(pf.vfs[2].name.as_deref(), Some("ens2f0v2"));
}

#[test]
fn igb_82576_as_qemu_emulates_it() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    let d = run(&host);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let pf = nic(&d.inventory, "0000:01:00.0");
    assert_eq!(pf.name.as_deref(), Some("enp1s0"));
    assert_eq!(pf.driver.as_deref(), Some("igb"));
    assert_eq!(pf.numa_node, None); // -1
    assert_eq!(pf.port_name, None);
    assert_eq!(pf.switch_id, None);
    assert_eq!(pf.eswitch_mode, None); // igb has no eswitch
    assert_eq!((pf.total_vfs, pf.num_vfs), (7, 2));
    assert_eq!(pf.vfs[1].pci_address, "0000:01:10.2");
    assert_eq!(pf.vfs[1].driver.as_deref(), Some("igbvf"));
    assert_eq!(pf.vfs[1].device_id.as_deref(), Some("10ca"));
    assert_eq!(pf.speed_mbps, Some(1000));
}

#[test]
fn infiniband_port() {
    let host = HostBuilder::new().connectx6_ib().build().unwrap();
    let d = run(&host);
    let pf = nic(&d.inventory, "0000:af:00.0");
    assert_eq!(pf.link_type, Some(LinkType::Ib));
    assert_eq!(pf.name.as_deref(), Some("ibp175s0"));
    assert_eq!(pf.mtu, Some(4092));
    assert_eq!(
        pf.mac.as_deref(),
        Some("00:00:10:87:fe:80:00:00:00:00:00:00:b8:ce:f6:03:00:5a:20:00")
    );
    assert_eq!((pf.total_vfs, pf.num_vfs), (8, 0));
    assert!(pf.vfs.is_empty());
    // IB link type also without the netdev (class 0x0207)
    host.remove_net_dir("0000:af:00.0").unwrap();
    let d = run(&host);
    let pf = nic(&d.inventory, "0000:af:00.0");
    assert_eq!(pf.name, None);
    assert_eq!(pf.link_type, Some(LinkType::Ib));
}

/// The PF's node GUID comes from `infiniband/mlx5_2/node_guid` (sysfs form `b8ce:f603:005a:2000`);
/// a VF's GUIDs from mlx5's `sriov/N/{node,port}`, left out while they are zero (unset).
#[test]
fn infiniband_guids_of_the_pf_and_its_vfs() {
    let host = HostBuilder::new()
        .connectx6_ib()
        .edit_pf("0000:af:00.0", |pf| pf.set_num_vfs(2))
        .build()
        .unwrap();
    assert_eq!(
        fs::read_to_string(host.path("sys/class/infiniband/mlx5_2/node_guid")).unwrap(),
        "b8ce:f603:005a:2000\n"
    );
    let d = run(&host);
    let pf = nic(&d.inventory, "0000:af:00.0");
    assert_eq!(pf.node_guid.unwrap().to_string(), "b8:ce:f6:03:00:5a:20:00");
    assert_eq!(pf.vfs.len(), 2);
    assert_eq!((pf.vfs[0].node_guid, pf.vfs[0].port_guid), (None, None));
    host.set_attr("0000:af:00.0", "sriov/1/node", "02:c9:03:00:00:00:10:01\n")
        .unwrap();
    host.set_attr("0000:af:00.0", "sriov/1/port", "02:c9:03:00:00:00:10:01\n")
        .unwrap();
    let d = run(&host);
    let vf1 = &nic(&d.inventory, "0000:af:00.0").vfs[1];
    assert_eq!(
        vf1.node_guid.unwrap().to_string(),
        "02:c9:03:00:00:00:10:01"
    );
    assert_eq!(vf1.port_guid, vf1.node_guid);
    // Ethernet PFs report no GUID
    let host = HostBuilder::new().igb_82576().build().unwrap();
    assert_eq!(nic(&run(&host).inventory, "0000:01:00.0").node_guid, None);
}

#[test]
fn non_network_functions_are_skipped_and_lone_vfs_are_nics() {
    let nvme = FunctionSpec::new(
        "0000:5e:00.0".parse().unwrap(),
        0x144d,
        0xa808,
        CLASS_NVME,
        "nvme",
    );
    // a VF passed into a VM: no visible PF, no physfn
    let mut lone = FunctionSpec::new(
        "0000:00:05.0".parse().unwrap(),
        0x8086,
        0x10ca,
        nic::fixtures::CLASS_ETHERNET,
        "igbvf",
    );
    lone.netdevs
        .push(NetdevSpec::eth("eth0", "52:54:00:aa:bb:cc"));
    let host = HostBuilder::new()
        .function(nvme)
        .function(lone)
        .build()
        .unwrap();
    let d = run(&host);
    assert_eq!(d.inventory.nics.len(), 1);
    let n = &d.inventory.nics[0];
    assert_eq!(n.pci_address, "0000:00:05.0");
    assert_eq!(n.total_vfs, 0);
    assert_eq!(n.eswitch_mode, None);
    assert_eq!(d.network_functions, 1);
}

#[test]
fn virtio_net_netdev_below_the_virtio_device() {
    let mut f = FunctionSpec::new(
        "0000:00:03.0".parse().unwrap(),
        0x1af4,
        0x1041,
        nic::fixtures::CLASS_ETHERNET,
        "virtio-pci",
    );
    f.netdevs.push(NetdevSpec::eth("eth0", "52:54:00:12:34:56"));
    let host = HostBuilder::new().function(f).build().unwrap();
    // move net/ to virtio0/net/, as the virtio bus lays it out
    let dev = host.device_dir("0000:00:03.0");
    fs::create_dir(dev.join("virtio0")).unwrap();
    fs::rename(dev.join("net"), dev.join("virtio0/net")).unwrap();
    let d = run(&host);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let n = nic(&d.inventory, "0000:00:03.0");
    assert_eq!(n.name.as_deref(), Some("eth0"));
    assert_eq!(n.mac.as_deref(), Some("52:54:00:12:34:56"));
    assert_eq!(n.mtu, Some(1500));
}

#[test]
fn empty_host_and_wrong_root() {
    let host = HostBuilder::new().build().unwrap();
    let d = run(&host);
    assert!(d.inventory.nics.is_empty());
    assert_eq!(d.network_functions, 0);
    let e = discover(&SysFs::new(host.path("nope"))).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("cannot list "), "{msg}");
    assert!(msg.contains("nope/sys/bus/pci/devices"), "{msg}");
}

#[test]
fn nics_are_sorted_by_address_and_vfs_by_index() {
    let host = HostBuilder::new()
        .connectx6_ib()
        .cx6dx(EswitchMode::Switchdev)
        .igb_82576()
        .e810()
        .build()
        .unwrap();
    let d = run(&host);
    let addrs: Vec<_> = d
        .inventory
        .nics
        .iter()
        .map(|n| n.pci_address.as_str())
        .collect();
    assert_eq!(
        addrs,
        [
            "0000:01:00.0",
            "0000:17:00.0",
            "0000:3b:00.0",
            "0000:3b:00.1",
            "0000:af:00.0"
        ]
    );
    for n in &d.inventory.nics {
        let ids: Vec<u32> = n.vfs.iter().map(|v| v.vf_id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);
    }
}

#[test]
fn many_vfs_sort_numerically() {
    let host = HostBuilder::new()
        .generated(1, 12, EswitchMode::Switchdev)
        .build()
        .unwrap();
    let d = run(&host);
    let n = &d.inventory.nics[0];
    let ids: Vec<u32> = n.vfs.iter().map(|v| v.vf_id).collect();
    assert_eq!(ids, (0..12).collect::<Vec<_>>());
    assert_eq!(n.vfs[10].representor.as_deref(), Some("gen0npf0vf10"));
}

#[test]
fn without_pci_ids_names_are_absent() {
    let host = HostBuilder::new()
        .igb_82576()
        .without_pci_ids()
        .build()
        .unwrap();
    let d = run(&host);
    let pf = nic(&d.inventory, "0000:01:00.0");
    assert_eq!(pf.vendor_name, None);
    assert_eq!(pf.device_name, None);
    assert_eq!(pf.vendor_id, "8086");
}

// ---- malformed input ----

#[test]
fn non_numeric_numvfs_warns_and_counts_links() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    host.set_attr("0000:01:00.0", "sriov_numvfs", "eight\n")
        .unwrap();
    let d = run(&host);
    let pf = nic(&d.inventory, "0000:01:00.0");
    assert_eq!(pf.num_vfs, 2);
    assert_eq!(pf.vfs.len(), 2);
    assert_eq!(d.warnings.len(), 1);
    let w = d.warnings[0].to_string();
    assert!(w.starts_with("0000:01:00.0: cannot parse "), "{w}");
    assert!(
        w.contains("0000:01:00.0/sriov_numvfs: \"eight\" is not a number"),
        "{w}"
    );
    assert!(w.contains("counting virtfn links"), "{w}");
}

#[test]
fn non_numeric_totalvfs_warns() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    host.set_attr("0000:01:00.0", "sriov_totalvfs", "\n")
        .unwrap();
    let d = run(&host);
    let pf = nic(&d.inventory, "0000:01:00.0");
    assert_eq!(pf.total_vfs, 2);
    assert!(
        d.warnings[0].message.contains("sriov_totalvfs"),
        "{:?}",
        d.warnings
    );
}

#[test]
fn dangling_virtfn_hides_only_that_vf() {
    let host = HostBuilder::new()
        .cx6dx(EswitchMode::Switchdev)
        .build()
        .unwrap();
    host.dangle_virtfn("0000:3b:00.0", 1).unwrap();
    let d = run(&host);
    let pf = nic(&d.inventory, "0000:3b:00.0");
    let ids: Vec<u32> = pf.vfs.iter().map(|v| v.vf_id).collect();
    assert_eq!(ids, [0, 2, 3]);
    assert_eq!(pf.num_vfs, 4); // what the kernel file says
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    let w = d.warnings[0].to_string();
    assert!(w.starts_with("0000:3b:00.0: "), "{w}");
    assert!(w.contains("virtfn1 -> ../0000:3b:00.3 is dangling"), "{w}");
    assert!(w.contains("VF 1 skipped"), "{w}");
    // the dangling VF's address is not reported as a NIC of its own
    assert_eq!(d.inventory.nics.len(), 2);
}

#[test]
fn virtfn_to_garbage_is_skipped() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    let link = host.device_dir("0000:01:00.0").join("virtfn0");
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../not-a-device", &link).unwrap();
    let d = run(&host);
    let pf = nic(&d.inventory, "0000:01:00.0");
    assert_eq!(pf.vfs.len(), 1);
    assert_eq!(pf.vfs[0].vf_id, 1);
    // VF 0 is no longer claimed: it has a physfn to a visible PF, so it is skipped, with a warning
    assert_eq!(d.inventory.nics.len(), 1);
    let msgs: Vec<String> = d.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].contains("\"not-a-device\" is not a link to a PCI device"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].starts_with("0000:01:10.0: VF of 0000:01:00.0 but not listed"),
        "{msgs:?}"
    );
}

#[test]
fn missing_net_dir_leaves_netdev_fields_out() {
    let host = HostBuilder::new().e810().build().unwrap();
    host.remove_net_dir("0000:17:00.0").unwrap();
    host.remove_net_dir("0000:17:02.2").unwrap();
    let d = run(&host);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let pf = nic(&d.inventory, "0000:17:00.0");
    assert_eq!(pf.name, None);
    assert_eq!(pf.mac, None);
    assert_eq!(pf.mtu, None);
    assert_eq!(pf.speed_mbps, None);
    assert_eq!(pf.link_type, Some(LinkType::Eth)); // from the PCI class
    assert_eq!(pf.driver.as_deref(), Some("ice"));
    assert_eq!(pf.vfs.len(), 4);
    assert_eq!(pf.vfs[2].name, None);
    assert_eq!(pf.vfs[3].name.as_deref(), Some("ens2f0v3"));
}

#[test]
fn unreadable_or_odd_attributes() {
    let host = HostBuilder::new().igb_82576().build().unwrap();
    let pf = "0000:01:00.0";
    let net = host.device_dir(pf).join("net/enp1s0");
    fs::write(net.join("speed"), "-1\n").unwrap();
    fs::write(net.join("mtu"), "big\n").unwrap();
    fs::write(host.device_dir(pf).join("numa_node"), "x\n").unwrap();
    host.remove_attr(pf, "vendor").unwrap();
    host.remove_attr(pf, "iommu_group").unwrap();
    host.remove_attr(pf, "driver").unwrap();
    let d = run(&host);
    let n = nic(&d.inventory, pf);
    assert_eq!(n.speed_mbps, None);
    assert_eq!(n.mtu, None);
    assert_eq!(n.numa_node, None);
    assert_eq!(n.vendor_id, "8086"); // from modalias
    assert_eq!(n.iommu_group, None);
    assert_eq!(n.driver, None);
    let msgs: Vec<String> = d.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert!(
        msgs.iter()
            .any(|m| m.contains("vendor id taken from modalias")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("numa_node") && m.contains("NUMA node left out"))
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("/mtu: \"big\" is not a number"))
    );
}

#[test]
fn unreadable_class_skips_the_function_with_a_warning() {
    let host = HostBuilder::new().igb_82576().e810().build().unwrap();
    host.remove_attr("0000:17:00.0", "class").unwrap();
    let d = run(&host);
    // the PF's VFs are not reported as NICs of their own either
    assert_eq!(d.inventory.nics.len(), 1);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(
        d.warnings[0]
            .to_string()
            .starts_with("0000:17:00.0: cannot read ")
    );
}
