//! The netdevsim order: a bus device whose VFs have no driver or netdev, with a real eswitch.

use std::collections::BTreeMap;

use crds::{
    inventory::{EswitchMode, LinkType, Nic, NicInventory, Vf},
    node_state::{InterfaceSpec, NicNodeStateSpec, VfGroup, VfIndexRange},
    policy::VfDeviceType,
};

use super::{tests::steps, *};
use crate::drain::ChangeClass;

const ID: &str = "netdevsim/netdevsim3";
const PF_MAC: &str = "02:11:22:33:44:55";

/// A legacy netdevsim device as discovery lists it: port `eth2`, no VFs, 4 allowed.
fn nsim() -> Nic {
    Nic {
        pci_address: ID.into(),
        name: Some("eth2".into()),
        driver: Some("netdevsim".into()),
        link_type: Some(LinkType::Eth),
        mac: Some(PF_MAC.into()),
        mtu: Some(1500),
        total_vfs: 4,
        eswitch_mode: Some(EswitchMode::Legacy),
        port_name: Some("p1".into()),
        ..Nic::default()
    }
}

fn want(n: u32, mode: Option<EswitchMode>) -> InterfaceSpec {
    InterfaceSpec {
        pci_address: ID.into(),
        name: Some("eth2".into()),
        num_vfs: n,
        eswitch_mode: mode,
        policy: "p".into(),
        vf_groups: vec![VfGroup {
            policy: "p".into(),
            resource_name: "nsim".into(),
            vfs: vec![VfIndexRange {
                first: 0,
                last: n.saturating_sub(1),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn spec(ifaces: Vec<InterfaceSpec>) -> NicNodeStateSpec {
    NicNodeStateSpec {
        interfaces: ifaces,
        ..Default::default()
    }
}

/// The device after the plan for `n` VFs in switchdev ran, and what the PF reports of it.
fn applied(n: u32) -> (Nic, BTreeMap<String, PfFacts>) {
    let mut nic = nsim();
    nic.num_vfs = n;
    nic.eswitch_mode = Some(EswitchMode::Switchdev);
    nic.vfs = (0..n)
        .map(|vf| Vf {
            vf_id: vf,
            representor: Some(format!("eth{}", 3 + vf)),
            ..Vf::default()
        })
        .collect();
    let facts = PfFacts {
        hw_tc_offload: Some(true),
        admin_up: Some(true),
        vf_admin_macs: Some(
            (0..n)
                .map(|vf| (vf, stable_vf_mac(PF_MAC, vf).unwrap()))
                .collect(),
        ),
        ..Default::default()
    };
    (nic, BTreeMap::from([(ID.to_owned(), facts)]))
}

fn plan(
    applied: &NicNodeStateSpec,
    desired: &NicNodeStateSpec,
    nic: Nic,
    facts: &BTreeMap<String, PfFacts>,
) -> HostPlan {
    plan_host(applied, desired, &NicInventory { nics: vec![nic] }, facts)
}

fn macs(n: u32) -> Vec<String> {
    (0..n)
        .map(|vf| format!("vf {vf} mac {}", stable_vf_mac(PF_MAC, vf).unwrap()))
        .collect()
}

#[test]
fn legacy_to_four_vfs_in_switchdev() {
    let desired = spec(vec![want(4, Some(EswitchMode::Switchdev))]);
    let p = plan(&spec(vec![]), &desired, nsim(), &BTreeMap::new());
    let mut expected = vec!["sriov_numvfs 4".to_owned()];
    expected.extend(macs(4));
    expected.extend([
        "eswitch mode switchdev".into(),
        "find 4 representors".into(),
        "hw-tc-offload on".into(),
    ]);
    assert_eq!(
        steps(&p),
        expected,
        "no wait, no binding: the VFs have no driver"
    );
    assert_eq!(p.pfs[0].vendor, Vendor::Netdevsim);
    assert_eq!(p.pfs[0].pci_address, ID);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(p.class, ChangeClass::NonDisruptive, "no VF existed");
}

#[test]
fn in_sync_after_the_apply() {
    let desired = spec(vec![want(4, Some(EswitchMode::Switchdev))]);
    let (host, facts) = applied(4);
    let p = plan(&desired, &desired, host, &facts);
    assert!(p.in_sync(), "{:?} {:?}", steps(&p), p.problems);
    assert_eq!(p.ready_pfs().collect::<Vec<_>>(), [ID]);
}

#[test]
fn missing_representors_and_macs_are_planned_again_after_a_crash() {
    let desired = spec(vec![want(4, Some(EswitchMode::Switchdev))]);
    let (mut host, mut facts) = applied(4);
    host.vfs[2].representor = None;
    facts.get_mut(ID).unwrap().vf_admin_macs = Some(BTreeMap::new());
    let p = plan(&desired, &desired, host, &facts);
    let mut expected = macs(4);
    expected.push("find 4 representors".into());
    assert_eq!(steps(&p), expected);
}

#[test]
fn a_new_count_in_switchdev_goes_through_legacy() {
    let desired = spec(vec![want(4, Some(EswitchMode::Switchdev))]);
    let (host, facts) = applied(2);
    let p = plan(&desired, &desired, host, &facts);
    let mut expected = vec![
        "eswitch mode legacy".to_owned(),
        "sriov_numvfs 0".into(),
        "sriov_numvfs 4".into(),
    ];
    expected.extend(macs(4));
    expected.extend([
        "eswitch mode switchdev".into(),
        "find 4 representors".into(),
        // after a mode switch, as on mlx5 (the step is idempotent)
        "hw-tc-offload on".into(),
    ]);
    assert_eq!(steps(&p), expected);
}

#[test]
fn released_device_is_reset_to_zero_vfs_and_legacy() {
    let was = spec(vec![want(4, Some(EswitchMode::Switchdev))]);
    let (host, facts) = applied(4);
    let p = plan(&was, &spec(vec![]), host, &facts);
    assert_eq!(steps(&p), ["sriov_numvfs 0", "eswitch mode legacy"]);
    assert_eq!(p.pfs[0].action, PfAction::Reset);
}

#[test]
fn vfio_pci_vf_mtu_and_too_many_vfs_are_refused() {
    let mut w = want(2, None);
    w.vf_groups[0].device_type = VfDeviceType::VfioPci;
    let p = plan(&spec(vec![]), &spec(vec![w]), nsim(), &BTreeMap::new());
    assert!(steps(&p).is_empty());
    assert_eq!(
        p.problems[0].message,
        "PF eth2 (netdevsim/netdevsim3): netdevsim VFs have no PCI function or netdev: VF group nsim asks for vfio-pci"
    );
    let mut w = want(2, None);
    w.vf_groups[0].mtu = Some(9000);
    let p = plan(&spec(vec![]), &spec(vec![w]), nsim(), &BTreeMap::new());
    assert!(p.problems[0].message.ends_with("asks for a VF MTU"));
    let p = plan(
        &spec(vec![]),
        &spec(vec![want(5, None)]),
        nsim(),
        &BTreeMap::new(),
    );
    assert_eq!(
        p.problems[0].message,
        "PF eth2 (netdevsim/netdevsim3): 5 VFs asked, sriov_totalvfs allows 4"
    );
}

#[test]
fn device_plugin_rendering_leaves_a_netdevsim_device_out() {
    let desired = spec(vec![want(4, Some(EswitchMode::Switchdev))]);
    let dp = crate::device_plugin::render_device_plugin_config(&desired, "smartnic.io");
    assert!(dp.resource_list.is_empty(), "{dp:?}");
}
