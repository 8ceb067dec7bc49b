use std::collections::BTreeMap;

use crds::{
    device_plugin::{DevicePluginConfig, DeviceSelector, PfVfs, ResourcePool},
    inventory::{EswitchMode, LinkType, Nic},
    node_state::{InterfaceSpec, NicNodeStateSpec, VfGroup, VfIndexRange},
    policy::{FirmwareSpec, VfDeviceType},
};

use super::*;
use crate::fixtures::{cx6, e810, inventory, with_vfs};

const PF_MAC: &str = "b8:ce:f6:01:02:03";

fn r(first: u32, last: u32) -> VfIndexRange {
    VfIndexRange { first, last }
}

fn group(vfs: VfIndexRange, device_type: VfDeviceType, mtu: Option<u32>) -> VfGroup {
    VfGroup {
        policy: "p".into(),
        resource_name: "vf".into(),
        vfs: vec![vfs],
        device_type,
        mtu,
        ..Default::default()
    }
}

/// `n` netdevice VFs in one group.
fn iface(nic: &Nic, n: u32) -> InterfaceSpec {
    InterfaceSpec {
        pci_address: nic.pci_address.clone(),
        name: nic.name.clone(),
        num_vfs: n,
        policy: "p".into(),
        vf_groups: if n == 0 {
            Vec::new()
        } else {
            vec![group(r(0, n - 1), VfDeviceType::Netdevice, None)]
        },
        ..Default::default()
    }
}

fn spec(ifaces: Vec<InterfaceSpec>) -> NicNodeStateSpec {
    NicNodeStateSpec {
        interfaces: ifaces,
        ..Default::default()
    }
}

fn with_mac(mut nic: Nic) -> Nic {
    nic.mac = Some(PF_MAC.into());
    nic
}

fn igb(pci: &str, name: &str) -> Nic {
    Nic {
        pci_address: pci.into(),
        name: Some(name.into()),
        vendor_id: "8086".into(),
        device_id: "10c9".into(),
        driver: Some("igb".into()),
        link_type: Some(LinkType::Eth),
        mtu: Some(1500),
        mac: Some("52:54:00:12:34:56".into()),
        total_vfs: 7,
        ..Default::default()
    }
}

/// What the igb PF of [`igb`] at `0000:00:04.0` reports: its first `n` VFs have their stable
/// administrative MACs.
fn igb_admin_macs(n: u32) -> BTreeMap<String, PfFacts> {
    let admin: BTreeMap<u32, String> = (0..n)
        .map(|vf| (vf, stable_vf_mac("52:54:00:12:34:56", vf).unwrap()))
        .collect();
    BTreeMap::from([(
        "0000:00:04.0".to_owned(),
        PfFacts {
            vf_admin_macs: Some(admin),
            ..Default::default()
        },
    )])
}

/// What the host shows once `want` is applied: VFs bound as their group says, netdevs on the
/// host with the stable MACs and MTUs, representors in switchdev.
fn synced(mut nic: Nic, want: &InterfaceSpec) -> Nic {
    let kernel = nic.driver.clone().unwrap_or_default();
    nic = with_vfs(nic, want.num_vfs, &[], &[]);
    if let Some(m) = want.eswitch_mode {
        nic.eswitch_mode = Some(m);
    }
    if let Some(mtu) = want.mtu {
        nic.mtu = Some(mtu);
    }
    let switchdev = nic.eswitch_mode == Some(EswitchMode::Switchdev);
    let pf_mac = nic.mac.clone();
    let pf_name = nic.name.clone().unwrap_or_default();
    for vf in &mut nic.vfs {
        let g = want.vf_groups.iter().find(|g| {
            g.vfs
                .iter()
                .any(|r| r.first <= vf.vf_id && vf.vf_id <= r.last)
        });
        if g.is_some_and(|g| g.device_type == VfDeviceType::VfioPci) {
            vf.driver = Some("vfio-pci".into());
            vf.name = None;
            vf.mtu = None;
        } else {
            vf.driver = Some(kernel.clone());
            vf.mac = pf_mac.as_deref().and_then(|m| stable_vf_mac(m, vf.vf_id));
            vf.mtu = g.and_then(|g| g.mtu).or(Some(1500));
        }
        if switchdev {
            vf.representor = Some(format!("{pf_name}_{}", vf.vf_id));
        }
    }
    nic
}

fn offload_on(pci: &str) -> BTreeMap<String, PfFacts> {
    BTreeMap::from([(
        pci.to_owned(),
        PfFacts {
            hw_tc_offload: Some(true),
            ..Default::default()
        },
    )])
}

fn plan(
    applied: &NicNodeStateSpec,
    desired: &NicNodeStateSpec,
    nics: Vec<Nic>,
    facts: &BTreeMap<String, PfFacts>,
) -> HostPlan {
    plan_host(applied, desired, &inventory(nics), facts)
}

/// Every step of the plan, as it prints.
pub(super) fn steps(p: &HostPlan) -> Vec<String> {
    p.pfs
        .iter()
        .flat_map(|pf| pf.steps.iter().map(ToString::to_string))
        .collect()
}

fn macs(n: u32) -> Vec<String> {
    (0..n)
        .map(|vf| format!("vf {vf} mac {}", stable_vf_mac(PF_MAC, vf).unwrap()))
        .collect()
}

#[test]
fn stable_vf_mac_is_local_unicast_and_distinct_per_vf_and_pf() {
    assert_eq!(
        stable_vf_mac(PF_MAC, 3).as_deref(),
        Some("ba:01:02:03:00:03")
    );
    assert_eq!(
        stable_vf_mac("01:00:5e:aa:bb:cc", 0).as_deref(),
        Some("02:aa:bb:cc:00:00"),
        "multicast bit cleared, local bit set"
    );
    assert_ne!(
        stable_vf_mac("b8:ce:f6:01:02:04", 3),
        stable_vf_mac(PF_MAC, 3)
    );
    assert_eq!(stable_vf_mac("not a mac", 0), None);
    assert_eq!(stable_vf_mac("00:00:00:00:00:00", 0), None);
}

#[test]
fn mlx5_legacy_to_switchdev_follows_the_nvidia_order() {
    let nic = with_mac(cx6("0000:3b:00.0", "ens1f0"));
    let mut want = iface(&nic, 4);
    want.eswitch_mode = Some(EswitchMode::Switchdev);
    let p = plan(
        &spec(vec![]),
        &spec(vec![want]),
        vec![nic],
        &BTreeMap::new(),
    );
    let mut expected = vec![
        "sriov_numvfs 4".to_owned(),
        "wait for 4 VFs (driver, netdev)".into(),
    ];
    expected.extend(macs(4));
    expected.extend([
        "unbind VFs 0-3".into(),
        "eswitch mode switchdev".into(),
        "find 4 representors".into(),
        "hw-tc-offload on".into(),
        "bind VFs 0-3 to netdevice".into(),
    ]);
    assert_eq!(steps(&p), expected);
    assert_eq!(p.pfs[0].vendor, Vendor::Mlx5);
    assert_eq!(p.pfs[0].action, PfAction::Configure);
    assert_eq!(p.class, ChangeClass::NonDisruptive, "no VF existed");
    assert!(p.pfs[0].disturbs_vfs());
}

#[test]
fn mlx5_switchdev_in_sync_is_a_no_op() {
    let nic = with_mac(cx6("0000:3b:00.0", "ens1f0"));
    let mut want = iface(&nic, 4);
    want.eswitch_mode = Some(EswitchMode::Switchdev);
    want.mtu = Some(9000);
    want.vf_groups = vec![
        group(r(0, 1), VfDeviceType::Netdevice, Some(9000)),
        group(r(2, 3), VfDeviceType::VfioPci, None),
    ];
    let host = synced(nic, &want);
    let desired = spec(vec![want]);
    let p = plan(&desired, &desired, vec![host], &offload_on("0000:3b:00.0"));
    assert!(p.in_sync(), "{:?}", steps(&p));
    assert_eq!(p.class, ChangeClass::NonDisruptive);
    assert_eq!(p.ready_pfs().collect::<Vec<_>>(), ["0000:3b:00.0"]);
}

#[test]
fn mlx5_switchdev_count_change_goes_through_legacy_and_evicts_vf_users() {
    let nic = with_mac(cx6("0000:3b:00.0", "ens1f0"));
    let mut old = iface(&nic, 4);
    old.eswitch_mode = Some(EswitchMode::Switchdev);
    let mut host = synced(nic.clone(), &old);
    host.vfs[1].name = None; // in a pod
    let mut want = iface(&nic, 8);
    want.eswitch_mode = Some(EswitchMode::Switchdev);
    let p = plan(
        &spec(vec![old]),
        &spec(vec![want]),
        vec![host],
        &offload_on("0000:3b:00.0"),
    );
    let s = steps(&p);
    assert_eq!(
        s[..6],
        [
            "unbind VFs 0-3",
            "eswitch mode legacy",
            "sriov_numvfs 0",
            "sriov_numvfs 8",
            "wait for 8 VFs (driver, netdev)",
            "vf 0 mac ba:01:02:03:00:00",
        ]
    );
    assert_eq!(
        s[s.len() - 5..],
        [
            "unbind VFs 0-7",
            "eswitch mode switchdev",
            "find 8 representors",
            "hw-tc-offload on",
            "bind VFs 0-7 to netdevice",
        ]
    );
    assert_eq!(p.class, ChangeClass::EvictVfPods);
    assert!(
        p.pfs[0]
            .reasons
            .iter()
            .any(|r| r.contains("VFs 1 are in use"))
    );
}

#[test]
fn mlx5_firmware_change_is_the_only_step_and_needs_a_reboot() {
    let nic = with_mac(cx6("0000:3b:00.0", "ens1f0"));
    let mut want = iface(&nic, 32);
    want.firmware = Some(FirmwareSpec {
        total_vfs: Some(32),
    });
    let p = plan(
        &spec(vec![]),
        &spec(vec![want]),
        vec![nic],
        &BTreeMap::new(),
    );
    assert_eq!(
        steps(&p),
        ["firmware: query, then set SRIOV_EN=True NUM_OF_VFS=32 (reboot)"]
    );
    assert_eq!(p.class, ChangeClass::Reboot);
    assert!(p.pfs[0].needs_reboot());

    let mut want = iface(&cx6("0000:3b:00.0", "ens1f0"), 4);
    want.link_type = Some(LinkType::Ib);
    let p = plan(
        &spec(vec![]),
        &spec(vec![want]),
        vec![cx6("0000:3b:00.0", "ens1f0")],
        &BTreeMap::new(),
    );
    assert_eq!(
        steps(&p),
        ["firmware: query, then set LINK_TYPE=IB (reboot)"]
    );
    assert_eq!(p.class, ChangeClass::Reboot);
}

#[test]
fn ice_mode_change_needs_zero_vfs_first_then_the_count() {
    let mut nic = with_mac(e810("0000:af:00.0", "ens2f0"));
    nic.eswitch_mode = Some(EswitchMode::Legacy);
    let old = iface(&nic, 4);
    let host = synced(nic.clone(), &old);
    let mut want = iface(&nic, 4);
    want.eswitch_mode = Some(EswitchMode::Switchdev);
    let p = plan(
        &spec(vec![old]),
        &spec(vec![want]),
        vec![host],
        &BTreeMap::new(),
    );
    let mut expected: Vec<String> = [
        "sriov_numvfs 0",
        "eswitch mode switchdev",
        "sriov_numvfs 4",
        "wait for 4 VFs (driver, netdev)",
        "find 4 representors",
        "hw-tc-offload on",
    ]
    .map(String::from)
    .to_vec();
    expected.extend(macs(4));
    assert_eq!(steps(&p), expected);
    assert_eq!(p.pfs[0].vendor, Vendor::Ice);
    assert_eq!(p.class, ChangeClass::NonDisruptive, "no VF in use");
}

#[test]
fn ice_vfio_group_is_bound_after_creation() {
    let nic = with_mac(e810("0000:af:00.0", "ens2f0"));
    let mut want = iface(&nic, 4);
    want.vf_groups = vec![
        group(r(0, 1), VfDeviceType::Netdevice, Some(9000)),
        group(r(2, 3), VfDeviceType::VfioPci, None),
    ];
    want.mtu = Some(9000);
    let p = plan(
        &spec(vec![]),
        &spec(vec![want.clone()]),
        vec![nic.clone()],
        &BTreeMap::new(),
    );
    let mut expected = vec![
        "sriov_numvfs 4".to_owned(),
        "wait for 4 VFs (driver, netdev)".into(),
        "PF mtu 9000".into(),
    ];
    expected.extend(macs(4));
    expected.extend([
        "bind VFs 2-3 to vfio-pci (IOMMU group checked)".into(),
        "VFs 0-1 mtu 9000".into(),
    ]);
    assert_eq!(steps(&p), expected);
    let host = synced(nic, &want);
    let desired = spec(vec![want]);
    assert!(plan(&desired, &desired, vec![host], &BTreeMap::new()).in_sync());
}

#[test]
fn igb_creates_its_vfs_without_a_driver_and_binds_them_after_their_macs() {
    let nic = igb("0000:00:04.0", "enp0s4");
    let want = iface(&nic, 7);
    let p = plan(
        &spec(vec![]),
        &spec(vec![want.clone()]),
        vec![nic.clone()],
        &BTreeMap::new(),
    );
    let s = steps(&p);
    assert_eq!(s[0], "sriov_numvfs 7, no driver yet (drivers_autoprobe 0)");
    assert_eq!(s[1], "vf 0 mac 52:12:34:56:00:00");
    assert_eq!(s[7], "vf 6 mac 52:12:34:56:00:06");
    assert_eq!(
        s[8..],
        ["bind VFs 0-6 to netdevice"],
        "igbvf probes once, after its MAC: no rebind"
    );
    assert_eq!(p.pfs[0].vendor, Vendor::Igb);

    let host = synced(nic.clone(), &want);
    let desired = spec(vec![want.clone()]);
    assert!(plan(&desired, &desired, vec![host.clone()], &BTreeMap::new()).in_sync());

    // a crash after the creation: the VFs are found without a driver, and are free for MACs
    let mut unbound = with_vfs(nic.clone(), 7, &[], &[]);
    for vf in &mut unbound.vfs {
        vf.driver = None;
        vf.name = None;
        vf.mac = None;
    }
    let s = steps(&plan(&desired, &desired, vec![unbound], &BTreeMap::new()));
    assert_eq!(s.len(), 8, "{s:?}");
    assert_eq!(s[0], "vf 0 mac 52:12:34:56:00:00");
    assert_eq!(s[7], "bind VFs 0-6 to netdevice");

    // VFs already on igbvf that need their MAC (back from pods): set, then rebind
    let mut bound = with_vfs(nic.clone(), 7, &[], &[]);
    for vf in &mut bound.vfs {
        vf.driver = Some("igbvf".into());
    }
    let s = steps(&plan(&desired, &desired, vec![bound], &BTreeMap::new()));
    assert_eq!(
        s.last().map(String::as_str),
        Some("rebind VFs 0-6"),
        "{s:?}"
    );

    // and back to 0: one step
    let back = spec(vec![iface(&nic, 0)]);
    let p = plan(&desired, &back, vec![host], &BTreeMap::new());
    assert_eq!(steps(&p), ["sriov_numvfs 0"]);
}

#[test]
fn igb_sets_the_macs_of_vfio_pci_vfs_before_binding_them() {
    let nic = igb("0000:00:04.0", "enp0s4");
    let mut want = iface(&nic, 4);
    want.vf_groups = vec![
        group(r(0, 1), VfDeviceType::Netdevice, None),
        group(r(2, 3), VfDeviceType::VfioPci, None),
    ];
    let p = plan(
        &spec(vec![]),
        &spec(vec![want.clone()]),
        vec![nic.clone()],
        &BTreeMap::new(),
    );
    assert_eq!(
        steps(&p)[1..],
        [
            "vf 0 mac 52:12:34:56:00:00",
            "vf 1 mac 52:12:34:56:00:01",
            "vf 2 mac 52:12:34:56:00:02",
            "vf 3 mac 52:12:34:56:00:03",
            "bind VFs 0-1 to netdevice",
            "bind VFs 2-3 to vfio-pci (IOMMU group checked)",
        ],
        "a crash after the binding must find every MAC set: a VF on vfio-pci is never free again"
    );
    // after a crash between the MACs and the binding: the binding and the rebind remain
    let mut host = with_vfs(nic.clone(), 4, &[], &[]);
    for vf in &mut host.vfs {
        vf.driver = Some("igbvf".into());
    }
    let facts = igb_admin_macs(4);
    let desired = spec(vec![want]);
    assert_eq!(
        steps(&plan(&desired, &desired, vec![host], &facts)),
        ["bind VFs 2-3 to vfio-pci (IOMMU group checked)"]
    );
}

#[test]
fn a_pf_that_is_down_is_brought_up_when_it_gets_vfs_and_then_is_in_sync() {
    let nic = igb("0000:00:04.0", "enp0s4");
    let want = iface(&nic, 2);
    let down = BTreeMap::from([(
        nic.pci_address.clone(),
        PfFacts {
            admin_up: Some(false),
            ..Default::default()
        },
    )]);
    let p = plan(
        &spec(vec![]),
        &spec(vec![want.clone()]),
        vec![nic.clone()],
        &down,
    );
    let s = steps(&p);
    assert_eq!(
        s[..3],
        [
            "sriov_numvfs 2, no driver yet (drivers_autoprobe 0)",
            "PF up",
            "vf 0 mac 52:12:34:56:00:00"
        ],
        "the PF is up before any VF driver asks it for a MAC"
    );
    assert_eq!(
        p.class,
        ChangeClass::NonDisruptive,
        "bringing a PF up disrupts nobody"
    );

    let desired = spec(vec![want.clone()]);
    let up = BTreeMap::from([(
        nic.pci_address.clone(),
        PfFacts {
            admin_up: Some(true),
            ..Default::default()
        },
    )]);
    let host = synced(nic.clone(), &want);
    assert!(plan(&desired, &desired, vec![host.clone()], &up).in_sync());
    // unknown: no step; and a PF without VFs is left down
    assert!(plan(&desired, &desired, vec![host], &BTreeMap::new()).in_sync());
    let none = spec(vec![iface(&nic, 0)]);
    assert!(plan(&none, &none, vec![nic], &down).in_sync());
}

#[test]
fn igb_cannot_go_switchdev() {
    let nic = igb("0000:00:04.0", "enp0s4");
    let mut want = iface(&nic, 2);
    want.eswitch_mode = Some(EswitchMode::Switchdev);
    let p = plan(
        &spec(vec![]),
        &spec(vec![want]),
        vec![nic],
        &BTreeMap::new(),
    );
    assert!(p.pfs[0].steps.is_empty());
    assert_eq!(
        p.problems[0].message,
        "PF enp0s4 (0000:00:04.0) has no eswitch: switchdev is not possible"
    );
}

#[test]
fn unknown_vendor_uses_the_generic_order() {
    let mut nic = with_mac(e810("0000:5e:00.0", "ens3f0"));
    nic.driver = Some("i40e".into());
    nic.eswitch_mode = Some(EswitchMode::Legacy);
    let mut old = iface(&nic, 2);
    old.eswitch_mode = Some(EswitchMode::Switchdev);
    let host = synced(nic.clone(), &old);
    let mut want = iface(&nic, 2);
    want.eswitch_mode = Some(EswitchMode::Legacy);
    let p = plan(
        &spec(vec![old]),
        &spec(vec![want]),
        vec![host],
        &BTreeMap::new(),
    );
    assert_eq!(p.pfs[0].vendor, Vendor::Generic);
    assert_eq!(
        steps(&p),
        [
            "unbind VFs 0-1",
            "eswitch mode legacy",
            "bind VFs 0-1 to netdevice"
        ]
    );
}

#[test]
fn externally_managed_pf_is_only_validated() {
    let nic = with_mac(cx6("0000:3b:00.0", "ens1f0"));
    let mut want = iface(&nic, 4);
    want.externally_managed = true;
    want.eswitch_mode = Some(EswitchMode::Switchdev);
    // no VFs at all on the host: problems, never a step
    let p = plan(
        &spec(vec![]),
        &spec(vec![want.clone()]),
        vec![nic.clone()],
        &BTreeMap::new(),
    );
    assert_eq!(p.pfs[0].action, PfAction::Validate);
    assert_eq!(p.step_count(), 0);
    let msgs: Vec<&str> = p.problems.iter().map(|x| x.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "externally managed PF ens1f0 (0000:3b:00.0) has 0 VFs, the spec needs 4; the agent does not create them",
            "externally managed PF ens1f0 (0000:3b:00.0) is in eswitch mode legacy, the spec needs switchdev; the agent does not change it",
        ]
    );
    // created by someone else, different MACs and unbound VFs: still nothing to do
    let mut host = synced(nic, &want);
    host.vfs[0].mac = Some("02:00:00:00:00:99".into());
    host.vfs[1].driver = None;
    let desired = spec(vec![want]);
    let p = plan(&desired, &desired, vec![host], &BTreeMap::new());
    assert!(p.in_sync());
    // and a released externally managed PF is not reset
    let p = plan(
        &desired,
        &spec(vec![]),
        vec![cx6("0000:3b:00.0", "x")],
        &BTreeMap::new(),
    );
    assert!(p.pfs.is_empty());
}

#[test]
fn mtu_only_change_needs_no_drain_even_with_vfs_in_use() {
    let nic = with_mac(cx6("0000:3b:00.0", "ens1f0"));
    let old = iface(&nic, 4);
    let mut host = synced(nic.clone(), &old);
    host.vfs[0].name = None; // in a pod
    host.vfs[0].mtu = None;
    let mut want = old.clone();
    want.mtu = Some(9000);
    let facts = BTreeMap::from([(
        "0000:3b:00.0".to_owned(),
        PfFacts {
            upper_users: vec!["default/macvlan-pod".into()],
            ..Default::default()
        },
    )]);
    let p = plan(&spec(vec![old]), &spec(vec![want]), vec![host], &facts);
    assert_eq!(steps(&p), ["PF mtu 9000"]);
    assert_eq!(p.class, ChangeClass::NonDisruptive);
    assert!(!p.pfs[0].disturbs_vfs(), "the pools stay advertised");
}

#[test]
fn num_vfs_change_evicts_the_pods_using_vfs() {
    let nic = with_mac(cx6("0000:3b:00.0", "ens1f0"));
    let old = iface(&nic, 4);
    let host = with_vfs(nic.clone(), 4, &[2], &[3]);
    let p = plan(
        &spec(vec![old]),
        &spec(vec![iface(&nic, 8)]),
        vec![host.clone()],
        &BTreeMap::new(),
    );
    assert_eq!(p.class, ChangeClass::EvictVfPods);
    assert_eq!(p.class.drain_request(), crds::DrainRequest::EvictVfPods);
    assert_eq!(steps(&p)[..2], ["sriov_numvfs 0", "sriov_numvfs 8"]);

    // no VF in use: none
    let free = with_vfs(nic.clone(), 4, &[], &[]);
    let p = plan(
        &spec(vec![iface(&nic, 4)]),
        &spec(vec![iface(&nic, 8)]),
        vec![free],
        &BTreeMap::new(),
    );
    assert_eq!(p.class, ChangeClass::NonDisruptive);
}

#[test]
fn macvlan_users_of_the_pf_count_when_the_pf_is_reset() {
    let nic = with_mac(cx6("0000:3b:00.0", "ens1f0"));
    let free = with_vfs(nic.clone(), 4, &[], &[]);
    let facts = BTreeMap::from([(
        "0000:3b:00.0".to_owned(),
        PfFacts {
            upper_users: vec!["default/web-0".into(), "default/web-1".into()],
            ..Default::default()
        },
    )]);
    let p = plan(
        &spec(vec![iface(&nic, 4)]),
        &spec(vec![iface(&nic, 8)]),
        vec![free],
        &facts,
    );
    assert_eq!(p.class, ChangeClass::EvictVfPods);
    assert!(
        p.pfs[0]
            .reasons
            .last()
            .unwrap()
            .ends_with("macvlan/ipvlan users: default/web-0, default/web-1")
    );
}

#[test]
fn released_pf_is_reset_to_zero_vfs_and_legacy() {
    let nic = with_mac(cx6("0000:3b:00.0", "ens1f0"));
    let mut old = iface(&nic, 4);
    old.eswitch_mode = Some(EswitchMode::Switchdev);
    let host = synced(nic, &old);
    let p = plan(
        &spec(vec![old]),
        &spec(vec![]),
        vec![host],
        &BTreeMap::new(),
    );
    assert_eq!(p.pfs[0].action, PfAction::Reset);
    assert_eq!(steps(&p), ["sriov_numvfs 0", "eswitch mode legacy"]);
    assert_eq!(p.ready_pfs().count(), 0);
}

#[test]
fn more_vfs_than_sriov_totalvfs_is_a_problem_naming_the_counts() {
    let nic = igb("0000:00:04.0", "enp0s4");
    let p = plan(
        &spec(vec![]),
        &spec(vec![iface(&nic, 8)]),
        vec![nic],
        &BTreeMap::new(),
    );
    assert_eq!(p.step_count(), 0);
    assert_eq!(
        p.problems[0].message,
        "PF enp0s4 (0000:00:04.0): 8 VFs asked, sriov_totalvfs allows 7"
    );
    assert!(!p.in_sync());
}

#[test]
fn missing_pf_is_a_problem() {
    let nic = cx6("0000:3b:00.0", "ens1f0");
    let p = plan(
        &spec(vec![]),
        &spec(vec![iface(&nic, 2)]),
        vec![],
        &BTreeMap::new(),
    );
    assert_eq!(
        p.problems[0].message,
        "PF 0000:3b:00.0 is not on this host (removed or renumbered?)"
    );
}

/// A crash after any prefix of the steps: planning again from what the host then shows gives
/// steps that reach the same end state, and the end state plans nothing.
#[test]
fn a_plan_resumed_after_a_crash_converges() {
    let nic = with_mac(cx6("0000:3b:00.0", "ens1f0"));
    let mut want = iface(&nic, 4);
    want.eswitch_mode = Some(EswitchMode::Switchdev);
    let desired = spec(vec![want.clone()]);

    // crash after "sriov_numvfs 4" and the MACs: legacy, 4 VFs with their MACs
    let mut mid = synced(nic.clone(), &iface(&nic, 4));
    mid.eswitch_mode = Some(EswitchMode::Legacy);
    let p = plan(&spec(vec![]), &desired, vec![mid], &BTreeMap::new());
    assert_eq!(
        steps(&p),
        [
            "unbind VFs 0-3",
            "eswitch mode switchdev",
            "find 4 representors",
            "hw-tc-offload on",
            "bind VFs 0-3 to netdevice",
        ]
    );

    // crash after "unbind VFs 0-3": the VFs have no driver, no netdev
    let mut unbound = synced(nic.clone(), &iface(&nic, 4));
    for vf in &mut unbound.vfs {
        vf.driver = None;
        vf.name = None;
        vf.mac = None;
    }
    let p = plan(&spec(vec![]), &desired, vec![unbound], &BTreeMap::new());
    let s = steps(&p);
    assert_eq!(
        s[..5],
        [
            "unbind VFs 0-3",
            "eswitch mode switchdev",
            "find 4 representors",
            "hw-tc-offload on",
            "bind VFs 0-3 to netdevice",
        ]
    );
    assert_eq!(
        s[5..],
        macs(4)[..],
        "MACs checked once the netdevs are back"
    );

    // crash after the mode switch, before the rebind
    let mut switched = synced(nic.clone(), &want);
    for vf in &mut switched.vfs {
        vf.driver = None;
        vf.name = None;
        vf.mac = None;
        vf.mtu = None;
    }
    let p = plan(
        &spec(vec![]),
        &desired,
        vec![switched],
        &offload_on("0000:3b:00.0"),
    );
    let mut expected = vec!["bind VFs 0-3 to netdevice".to_owned()];
    expected.extend(macs(4));
    assert_eq!(steps(&p), expected);

    // done
    let p = plan(
        &desired,
        &desired,
        vec![synced(nic, &want)],
        &offload_on("0000:3b:00.0"),
    );
    assert!(p.in_sync());
}

#[test]
fn applied_device_plugin_config_lists_only_ready_pfs() {
    let pool = |name: &str, pfs: &[&str]| ResourcePool {
        resource_name: name.into(),
        resource_prefix: "smartnic.io".into(),
        device_type: VfDeviceType::Netdevice,
        is_rdma: false,
        need_vhost_net: false,
        exclude_topology: false,
        // the agent hands the pool's allocation on unchanged
        allocation: crds::dra::Allocation::Both,
        selectors: vec![DeviceSelector {
            pfs: pfs
                .iter()
                .map(|p| PfVfs {
                    pci_address: (*p).into(),
                    name: None,
                    vfs: vec![r(0, 3)],
                })
                .collect(),
            ..Default::default()
        }],
    };
    let desired = DevicePluginConfig {
        resource_list: vec![
            pool("a", &["0000:3b:00.0", "0000:3b:00.1"]),
            pool("b", &["0000:3b:00.1"]),
        ],
        rdma_exclusive: true,
    };
    let applied = applied_device_plugin_config(&desired, |pf| pf == "0000:3b:00.0");
    assert_eq!(
        applied,
        DevicePluginConfig {
            resource_list: vec![pool("a", &["0000:3b:00.0"])],
            rdma_exclusive: true,
        },
        "pool b has no PF left: dropped, never widened; the RDMA mode stays"
    );
    assert_eq!(
        applied_device_plugin_config(&desired, |_| false),
        DevicePluginConfig {
            rdma_exclusive: true,
            ..DevicePluginConfig::default()
        }
    );
}

#[test]
fn steps_serialize_with_their_kind() {
    let v = serde_json::to_value(Step::BindVfs {
        vfs: vec![r(2, 3)],
        device_type: VfDeviceType::VfioPci,
    })
    .unwrap();
    assert_eq!(
        v,
        serde_json::json!({"step": "bindVfs", "vfs": [{"first": 2, "last": 3}], "deviceType": "vfio-pci"})
    );
    assert_eq!(
        serde_json::to_value(ChangeClass::EvictVfPods).unwrap(),
        "evict-vf-pods"
    );
}

#[test]
fn admin_macs_reported_by_the_pf_decide_the_mac_steps() {
    let nic = igb("0000:00:04.0", "enp0s4");
    let want = iface(&nic, 2);
    let mut host = synced(nic.clone(), &want);
    // igbvf shows a MAC of its own until it is reset; the PF has the administrative ones
    for vf in &mut host.vfs {
        vf.mac = Some("02:00:00:00:00:99".into());
    }
    let facts = igb_admin_macs(2);
    let desired = spec(vec![want]);
    assert!(plan(&desired, &desired, vec![host.clone()], &facts).in_sync());
    // without the PF's answer the netdev MACs are all there is
    assert_eq!(
        plan(&desired, &desired, vec![host], &BTreeMap::new()).step_count(),
        3,
        "2 MACs and the rebind"
    );
}
