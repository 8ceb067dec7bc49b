//! Tests of the merge rules of [`super`].

use crds::{
    inventory::{EswitchMode, LinkType},
    node_state::VfIndexRange,
    policy::{FirmwareSpec, VfDeviceType},
};

use super::*;
use crate::fixtures::{cx6, e810, inventory, labels, policy, with_vfs};

fn gpu() -> BTreeMap<String, String> {
    labels(&[("gpu", "true")])
}

fn r(first: u32, last: u32) -> VfIndexRange {
    VfIndexRange { first, last }
}

fn groups(plan: &NodePlan, pf: usize) -> Vec<(String, Vec<VfIndexRange>)> {
    plan.spec.interfaces[pf]
        .vf_groups
        .iter()
        .map(|g| (g.policy.clone(), g.vfs.clone()))
        .collect()
}

#[test]
fn issue_example_every_cx6_dx_port_gets_8_switchdev_vfs() {
    let mut p = policy("gpu-cx6", 99, &[]);
    p.spec.nic_selector.device_id = Some("101d".into());
    p.spec.eswitch_mode = Some(EswitchMode::Switchdev);
    let inv = inventory(vec![
        cx6("0000:3b:00.1", "ens1f1"),
        e810("0000:af:00.0", "ens5f0"),
        cx6("0000:3b:00.0", "ens1f0"),
    ]);
    let plan = desired_node_state(&[p], &gpu(), &inv);
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    let addrs: Vec<_> = plan
        .spec
        .interfaces
        .iter()
        .map(|i| i.pci_address.as_str())
        .collect();
    assert_eq!(
        addrs,
        ["0000:3b:00.0", "0000:3b:00.1"],
        "sorted, Intel PF untouched"
    );
    for i in &plan.spec.interfaces {
        assert_eq!(i.num_vfs, 8);
        assert_eq!(i.eswitch_mode, Some(EswitchMode::Switchdev));
        assert_eq!(i.policy, "gpu-cx6");
        assert_eq!(i.vf_groups.len(), 1);
        assert_eq!(i.vf_groups[0].vfs, [r(0, 7)]);
        assert_eq!(i.vf_groups[0].resource_name, "cx6_vf");
    }
    assert_eq!(plan.selected_policies, ["gpu-cx6"]);
}

#[test]
fn unselected_node_gets_an_empty_spec() {
    let plan = desired_node_state(
        &[policy("a", 1, &["ens1f0"])],
        &labels(&[("gpu", "false")]),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert!(plan.spec.interfaces.is_empty());
    assert!(plan.selected_policies.is_empty());
}

#[test]
fn disjoint_ranges_compose_into_groups_sorted_by_first_vf() {
    let mut b = policy("b", 20, &["ens1f0#0-3"]);
    b.spec.resource_name = "low".into();
    let mut a = policy("a", 10, &["ens1f0#4,6-7"]);
    a.spec.resource_name = "high".into();
    let plan = desired_node_state(
        &[b, a],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert!(plan.rejections.is_empty());
    assert_eq!(plan.spec.interfaces.len(), 1);
    assert_eq!(
        plan.spec.interfaces[0].policy, "a",
        "the lower priority number decides the PF"
    );
    assert_eq!(
        groups(&plan, 0),
        [
            ("b".into(), vec![r(0, 3)]),
            ("a".into(), vec![r(4, 4), r(6, 7)])
        ]
    );
}

#[test]
fn overlapping_range_rejects_the_lower_precedence_policy_naming_both() {
    let a = policy("a", 10, &["ens1f0#0-3"]);
    let b = policy("b", 20, &["ens1f0#2-5"]);
    let plan = desired_node_state(
        &[b.clone(), a.clone()],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert_eq!(groups(&plan, 0), [("a".into(), vec![r(0, 3)])]);
    assert_eq!(plan.rejections.len(), 1);
    let rej = &plan.rejections[0];
    assert_eq!(rej.policy, "b");
    assert_eq!(rej.pf.as_deref(), Some("0000:3b:00.0"));
    assert_eq!(rej.field, "spec.nicSelector.pfNames[0]");
    assert_eq!(rej.conflicts_with.as_deref(), Some("a"));
    assert!(
        rej.reason.contains("VFs 2-3 of PF ens1f0 (0000:3b:00.0)"),
        "{}",
        rej.reason
    );
    assert!(
        rej.reason.contains("policy a (priority 10)"),
        "{}",
        rej.reason
    );

    // Swap priorities: now b wins and a is rejected.
    let (mut a2, mut b2) = (a, b);
    a2.spec.priority = 30;
    b2.spec.priority = 5;
    let plan = desired_node_state(
        &[a2, b2],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert_eq!(groups(&plan, 0), [("b".into(), vec![r(2, 5)])]);
    assert_eq!(plan.rejections[0].policy, "a");
}

#[test]
fn equal_priority_is_decided_by_name() {
    let plan = desired_node_state(
        &[
            policy("zeta", 10, &["ens1f0"]),
            policy("alpha", 10, &["ens1f0"]),
        ],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert_eq!(plan.spec.interfaces[0].policy, "alpha");
    assert_eq!(plan.rejections.len(), 1);
    assert_eq!(plan.rejections[0].policy, "zeta");
}

#[test]
fn pf_level_settings_must_agree_or_the_loser_is_rejected() {
    let a = policy("a", 10, &["ens1f0#0-3"]);
    let mut b = policy("b", 20, &["ens1f0#4-7"]);
    b.spec.num_vfs = 16;
    let plan = desired_node_state(
        &[a.clone(), b],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert_eq!(plan.rejections[0].field, "spec.numVfs");
    assert!(
        plan.rejections[0]
            .reason
            .contains("numVfs 16 differs from numVfs 8 set by policy a (priority 10)")
    );

    let mut a = a;
    a.spec.eswitch_mode = Some(EswitchMode::Switchdev);
    let mut c = policy("c", 20, &["ens1f0#4-7"]);
    c.spec.eswitch_mode = Some(EswitchMode::Legacy);
    let plan = desired_node_state(
        &[a.clone(), c],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert_eq!(plan.rejections[0].field, "spec.eswitchMode");

    // An unset eswitchMode has no opinion: it composes, and a later setter decides.
    let mut w = policy("w", 1, &["ens1f0#4-7"]);
    w.spec.eswitch_mode = None;
    let plan = desired_node_state(
        &[w, a],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    assert_eq!(plan.spec.interfaces[0].policy, "w");
    assert_eq!(
        plan.spec.interfaces[0].eswitch_mode,
        Some(EswitchMode::Switchdev)
    );
}

#[test]
fn mtu_is_per_vf_group_and_the_pf_takes_the_largest() {
    let mut a = policy("a", 10, &["ens1f0#0-3"]);
    a.spec.mtu = Some(1500);
    let mut b = policy("b", 10, &["ens1f0#4-7"]);
    b.spec.mtu = Some(9000);
    let plan = desired_node_state(
        &[a, b],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    let i = &plan.spec.interfaces[0];
    assert_eq!(
        i.mtu,
        Some(9000),
        "equal priority, different MTU: the PF gets the higher one"
    );
    assert_eq!(i.vf_groups[0].mtu, Some(1500), "group a keeps its own MTU");
    assert_eq!(i.vf_groups[1].mtu, Some(9000));
    assert_eq!(plan.warnings.len(), 1);
    assert_eq!(plan.warnings[0].policy, "a");
    assert!(plan.warnings[0].message.contains("MTU is 9000, not 1500"));
}

#[test]
fn num_vfs_above_total_vfs_is_rejected_and_the_next_policy_wins() {
    let mut big = policy("big", 1, &["ens1f0"]);
    big.spec.num_vfs = 32;
    let small = policy("small", 50, &["ens1f0"]);
    let plan = desired_node_state(
        &[big, small],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert_eq!(plan.rejections.len(), 1);
    assert_eq!(plan.rejections[0].field, "spec.numVfs");
    assert_eq!(
        plan.rejections[0].reason,
        "numVfs 32 exceeds sriov_totalvfs 16 of PF ens1f0 (0000:3b:00.0)"
    );
    assert_eq!(plan.spec.interfaces[0].policy, "small");
}

#[test]
fn firmware_total_vfs_lifts_the_limit_on_nvidia_only() {
    let mut p = policy("fw", 1, &[]);
    p.spec.nic_selector.vendor = None;
    p.spec.nic_selector.pf_names = vec!["ens1f0".into(), "ens5f0".into()];
    p.spec.num_vfs = 32;
    p.spec.firmware = Some(FirmwareSpec {
        total_vfs: Some(32),
    });
    let plan = desired_node_state(
        &[p],
        &gpu(),
        &inventory(vec![
            cx6("0000:3b:00.0", "ens1f0"),
            e810("0000:af:00.0", "ens5f0"),
        ]),
    );
    assert_eq!(plan.spec.interfaces.len(), 1);
    assert_eq!(
        plan.spec.interfaces[0].firmware,
        Some(FirmwareSpec {
            total_vfs: Some(32)
        })
    );
    assert_eq!(plan.rejections[0].pf.as_deref(), Some("0000:af:00.0"));
    assert_eq!(plan.rejections[0].field, "spec.firmware");
}

#[test]
fn pf_checks_reject_impossible_requests() {
    let node = |nic| {
        desired_node_state(
            &[policy("p", 1, &["ens1f0"])],
            &gpu(),
            &inventory(vec![nic]),
        )
    };
    let mut not_sriov = cx6("0000:3b:00.0", "ens1f0");
    not_sriov.total_vfs = 0;
    assert!(
        node(not_sriov).rejections[0]
            .reason
            .contains("not SR-IOV capable")
    );

    let mut p = policy("p", 1, &["ens1f0"]);
    p.spec.eswitch_mode = Some(EswitchMode::Switchdev);
    let mut no_eswitch = cx6("0000:3b:00.0", "ens1f0");
    no_eswitch.eswitch_mode = None;
    let plan = desired_node_state(&[p.clone()], &gpu(), &inventory(vec![no_eswitch]));
    assert!(plan.rejections[0].reason.contains("has no eswitch"));
    let mut ib = cx6("0000:3b:00.0", "ens1f0");
    ib.link_type = Some(LinkType::Ib);
    let plan = desired_node_state(&[p], &gpu(), &inventory(vec![ib]));
    assert!(
        plan.rejections[0]
            .reason
            .contains("InfiniBand; switchdev needs Ethernet")
    );

    let mut q = policy("q", 1, &[]);
    q.spec.nic_selector.vendor = Some("8086".into());
    q.spec.link_type = Some(LinkType::Ib);
    let mut intel = e810("0000:af:00.0", "ens5f0");
    intel.link_type = Some(LinkType::Eth);
    let plan = desired_node_state(&[q], &gpu(), &inventory(vec![intel]));
    assert_eq!(plan.rejections[0].field, "spec.linkType");
}

#[test]
fn externally_managed_pfs_are_checked_not_changed() {
    let mut p = policy("ext", 1, &["ens1f0"]);
    p.spec.externally_managed = true;
    let plan = desired_node_state(
        &[p.clone()],
        &gpu(),
        &inventory(vec![with_vfs(cx6("0000:3b:00.0", "ens1f0"), 4, &[], &[])]),
    );
    assert!(plan.spec.interfaces.is_empty());
    assert!(
        plan.rejections[0]
            .reason
            .contains("externally managed and has 4 VFs; the policy needs 8")
    );

    let plan = desired_node_state(
        &[p.clone()],
        &gpu(),
        &inventory(vec![with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[])]),
    );
    assert!(plan.rejections.is_empty());
    assert!(plan.spec.interfaces[0].externally_managed);

    p.spec.eswitch_mode = Some(EswitchMode::Switchdev);
    let plan = desired_node_state(
        &[p.clone()],
        &gpu(),
        &inventory(vec![with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[])]),
    );
    assert_eq!(plan.rejections[0].field, "spec.eswitchMode");

    // An operator-managed policy cannot be composed onto an externally managed PF.
    let mut e = policy("e", 1, &["ens1f0#0-3"]);
    e.spec.externally_managed = true;
    let m = policy("m", 2, &["ens1f0#4-7"]);
    let plan = desired_node_state(
        &[e, m],
        &gpu(),
        &inventory(vec![with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[])]),
    );
    assert_eq!(plan.rejections[0].policy, "m");
    assert_eq!(plan.rejections[0].field, "spec.externallyManaged");
}

#[test]
fn one_resource_name_means_one_kind_of_device_on_a_node() {
    let a = policy("a", 1, &["ens1f0"]);
    let mut b = policy("b", 2, &["ens1f1"]);
    b.spec.device_type = VfDeviceType::VfioPci;
    let plan = desired_node_state(
        &[b, a],
        &gpu(),
        &inventory(vec![
            cx6("0000:3b:00.0", "ens1f0"),
            cx6("0000:3b:00.1", "ens1f1"),
        ]),
    );
    assert_eq!(plan.spec.interfaces.len(), 1);
    assert_eq!(plan.rejections.len(), 1);
    assert_eq!(plan.rejections[0].policy, "b");
    assert_eq!(plan.rejections[0].field, "spec.deviceType");
    assert_eq!(plan.rejections[0].pf.as_deref(), Some("0000:3b:00.1"));

    // A policy that claims no PF on the node does not decide the resource's kind there.
    let mut absent = policy("absent", 0, &["ens9f0"]);
    absent.spec.device_type = VfDeviceType::VfioPci;
    let plan = desired_node_state(
        &[absent, policy("a", 1, &["ens1f0"])],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    assert_eq!(plan.spec.interfaces[0].policy, "a");
}

#[test]
fn need_vhost_net_is_carried_to_the_vf_group_and_must_agree_per_resource() {
    let mut a = policy("a", 1, &["ens1f0"]);
    a.spec.need_vhost_net = true;
    let b = policy("b", 2, &["ens1f1"]);
    let plan = desired_node_state(
        &[a.clone(), b],
        &gpu(),
        &inventory(vec![
            cx6("0000:3b:00.0", "ens1f0"),
            cx6("0000:3b:00.1", "ens1f1"),
        ]),
    );
    assert!(plan.spec.interfaces[0].vf_groups[0].need_vhost_net);
    assert_eq!(plan.rejections.len(), 1);
    assert_eq!(plan.rejections[0].policy, "b");
    assert_eq!(plan.rejections[0].field, "spec.needVhostNet");
    let alone = desired_node_state(
        &[a],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    let cfg = crate::render_device_plugin_config(&alone.spec, "smartnic.io");
    assert!(cfg.resource_list[0].need_vhost_net);
}

#[test]
fn allocation_is_carried_to_the_pool_and_must_agree_per_resource() {
    use crds::dra::Allocation;
    let mut a = policy("a", 1, &["ens1f0"]);
    a.spec.allocation = Allocation::Dra;
    let b = policy("b", 2, &["ens1f1"]);
    let nics = || {
        inventory(vec![
            cx6("0000:3b:00.0", "ens1f0"),
            cx6("0000:3b:00.1", "ens1f1"),
        ])
    };
    let plan = desired_node_state(&[a.clone(), b.clone()], &gpu(), &nics());
    assert_eq!(
        plan.spec.interfaces[0].vf_groups[0].allocation,
        Allocation::Dra
    );
    assert_eq!(plan.rejections.len(), 1);
    assert_eq!(plan.rejections[0].policy, "b");
    assert_eq!(plan.rejections[0].field, "spec.allocation");
    assert!(
        plan.rejections[0].reason.contains("allocation dra"),
        "{}",
        plan.rejections[0].reason
    );
    let mut b = b;
    b.spec.allocation = Allocation::Dra;
    let plan = desired_node_state(&[a, b], &gpu(), &nics());
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    let cfg = crate::render_device_plugin_config(&plan.spec, "smartnic.io");
    assert_eq!(cfg.resource_list.len(), 1);
    assert_eq!(cfg.resource_list[0].allocation, Allocation::Dra);
    assert_eq!(
        serde_json::to_value(&cfg).unwrap()["resourceList"][0]["allocation"],
        "dra"
    );
    // the default stays out of the file, as before the field existed
    let plain = desired_node_state(
        &[policy("c", 1, &["ens1f0"])],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    let cfg = crate::render_device_plugin_config(&plain.spec, "smartnic.io");
    assert!(
        serde_json::to_value(&cfg).unwrap()["resourceList"][0]
            .get("allocation")
            .is_none()
    );
}

#[test]
fn invalid_policies_never_apply_and_are_reported() {
    let mut bad = policy("bad", 1, &["ens1f0#0-3"]);
    bad.spec.resource_name = "bad name".into();
    let good = policy("good", 2, &["ens1f0"]);
    let set = PolicySet::new(&[bad.clone(), good.clone()]);
    assert_eq!(set.invalid().len(), 1);
    assert_eq!(set.invalid()[0].errors[0].field, "spec.resourceName");
    let plan = desired_node_state(
        &[bad, good],
        &gpu(),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert_eq!(plan.spec.interfaces[0].policy, "good");
    assert_eq!(plan.rejections[0].pf, None);
    assert!(plan.rejections[0].reason.starts_with("invalid policy"));
}

#[test]
fn root_devices_select_by_pci_address_with_ranges() {
    let mut p = policy("p", 1, &[]);
    p.spec.nic_selector.root_devices = vec!["0000:3B:00.1#2-3".into()];
    let plan = desired_node_state(
        &[p],
        &gpu(),
        &inventory(vec![
            cx6("0000:3b:00.0", "ens1f0"),
            cx6("0000:3b:00.1", "ens1f1"),
        ]),
    );
    assert_eq!(plan.spec.interfaces.len(), 1);
    assert_eq!(plan.spec.interfaces[0].pci_address, "0000:3b:00.1");
    assert_eq!(groups(&plan, 0), [("p".into(), vec![r(2, 3)])]);
}

#[test]
fn output_does_not_depend_on_input_order() {
    let mut ps = vec![
        policy("a", 10, &["ens1f0#0-3", "ens1f1"]),
        policy("b", 20, &["ens1f0#4-7"]),
        policy("c", 20, &["ens1f0#2-5"]),
        policy("d", 5, &["ens1f1#0-1"]),
    ];
    let mut nics = vec![
        cx6("0000:3b:00.0", "ens1f0"),
        cx6("0000:3b:00.1", "ens1f1"),
        e810("0000:af:00.0", "ens5f0"),
    ];
    let first = desired_node_state(&ps, &gpu(), &inventory(nics.clone()));
    ps.reverse();
    nics.reverse();
    let second = desired_node_state(&ps, &gpu(), &inventory(nics));
    assert_eq!(first, second);
    assert_eq!(
        serde_json::to_string(&first.spec).unwrap(),
        serde_json::to_string(&second.spec).unwrap()
    );
}
