//! Whole-PF pools (`wholePf`) through the planner: the node's desired state, the device-plugin
//! configuration the operator renders, the part the agent hands over, and the agent's steps.

use std::collections::BTreeMap;

use crds::{
    device_plugin::DeviceSelector,
    inventory::{LinkType, Nic},
    node_state::{InterfaceSpec, NicNodeStateSpec, PfPool},
    policy::VfDeviceType,
};
use serde_json::json;

use crate::{
    apply::{Step, applied_device_plugin_config, plan_host},
    desired::desired_node_state,
    device_plugin::render_device_plugin_config,
    drain::{ChangeClass, classify},
    fixtures::{cx6, inventory, labels, policy, with_vfs},
};

/// QEMU's igb PF (8086:10c9), 7 VFs possible.
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

/// `ports` offered whole as `igb_pf` (Intel NICs, pfNames).
fn whole(name: &str, priority: u32, ports: &[&str]) -> crds::NicPolicy {
    let mut p = policy(name, priority, ports);
    p.spec.nic_selector.vendor = Some("8086".into());
    p.spec.whole_pf = true;
    p.spec.num_vfs = 0;
    p.spec.resource_name = "igb_pf".into();
    p.spec.mtu = Some(9000);
    p
}

fn vf_policy(name: &str, priority: u32, ports: &[&str]) -> crds::NicPolicy {
    let mut p = policy(name, priority, ports);
    p.spec.nic_selector.vendor = Some("8086".into());
    p.spec.num_vfs = 4;
    p
}

fn gpu() -> BTreeMap<String, String> {
    labels(&[("gpu", "true")])
}

#[test]
fn a_whole_pf_policy_gives_the_pf_no_vfs_and_its_own_pool() {
    let plan = desired_node_state(
        &[whole("pf", 10, &["enp1s0"])],
        &gpu(),
        &inventory(vec![
            with_vfs(igb("0000:01:00.0", "enp1s0"), 2, &[], &[]),
            igb("0000:02:00.0", "enp2s0"),
        ]),
    );
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    assert_eq!(plan.spec.interfaces.len(), 1);
    let i = &plan.spec.interfaces[0];
    assert_eq!((i.pci_address.as_str(), i.num_vfs), ("0000:01:00.0", 0));
    assert!(i.vf_groups.is_empty());
    assert_eq!(i.mtu, Some(9000));
    assert_eq!(
        i.whole_pf,
        Some(PfPool {
            resource_name: "igb_pf".into(),
            device_type: VfDeviceType::Netdevice,
            ..Default::default()
        })
    );
}

#[test]
fn a_whole_pf_is_taken_alone_and_a_resource_is_whole_pfs_or_vfs() {
    // a VF policy of lower precedence on the same PF: rejected, naming the whole-PF policy
    let plan = desired_node_state(
        &[
            whole("pf", 10, &["enp1s0"]),
            vf_policy("vfs", 20, &["enp1s0"]),
        ],
        &gpu(),
        &inventory(vec![igb("0000:01:00.0", "enp1s0")]),
    );
    assert_eq!(plan.spec.interfaces[0].policy, "pf");
    assert_eq!(plan.rejections.len(), 1);
    let r = &plan.rejections[0];
    assert_eq!(
        (r.policy.as_str(), r.field.as_str()),
        ("vfs", "spec.wholePf")
    );
    assert!(
        r.reason.contains("offered whole by policy pf"),
        "{}",
        r.reason
    );
    // the other way round: the VF policy wins, the whole-PF one is rejected
    let plan = desired_node_state(
        &[
            whole("pf", 30, &["enp1s0"]),
            vf_policy("vfs", 20, &["enp1s0"]),
        ],
        &gpu(),
        &inventory(vec![igb("0000:01:00.0", "enp1s0")]),
    );
    assert_eq!(plan.spec.interfaces[0].num_vfs, 4);
    assert_eq!(plan.rejections[0].policy, "pf");
    // one resource name for VFs on one PF and a whole other PF: the later policy is rejected
    let mut vfs = vf_policy("vfs", 20, &["enp2s0"]);
    vfs.spec.resource_name = "igb_pf".into();
    let plan = desired_node_state(
        &[whole("pf", 10, &["enp1s0"]), vfs],
        &gpu(),
        &inventory(vec![
            igb("0000:01:00.0", "enp1s0"),
            igb("0000:02:00.0", "enp2s0"),
        ]),
    );
    assert_eq!(plan.spec.interfaces.len(), 1);
    assert_eq!(plan.rejections[0].field, "spec.wholePf");
    assert!(
        plan.rejections[0]
            .reason
            .contains("one resource must be one kind of device"),
        "{}",
        plan.rejections[0].reason
    );
}

#[test]
fn a_pf_without_sr_iov_can_be_offered_whole_but_not_split() {
    let mut plain = igb("0000:01:00.0", "enp1s0");
    plain.total_vfs = 0;
    let plan = desired_node_state(
        &[whole("pf", 10, &["enp1s0"])],
        &gpu(),
        &inventory(vec![plain.clone()]),
    );
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    assert!(plan.spec.interfaces[0].whole_pf.is_some());
    let plan = desired_node_state(
        &[vf_policy("vfs", 10, &["enp1s0"])],
        &gpu(),
        &inventory(vec![plain]),
    );
    assert!(plan.spec.interfaces.is_empty());
    assert!(plan.rejections[0].reason.contains("not SR-IOV capable"));
}

#[test]
fn the_pool_lists_whole_pfs_by_address_and_only_ready_ones_are_handed_over() {
    let mut dpdk = whole("dpdk", 10, &["enp2s0"]);
    dpdk.spec.resource_name = "igb_dpdk".into();
    dpdk.spec.device_type = VfDeviceType::VfioPci;
    let plan = desired_node_state(
        &[
            whole("pf", 10, &["enp1s0", "enp3s0"]),
            dpdk,
            policy("net", 10, &["ens1f0"]),
        ],
        &gpu(),
        &inventory(vec![
            igb("0000:01:00.0", "enp1s0"),
            igb("0000:02:00.0", "enp2s0"),
            igb("0000:03:00.0", "enp3s0"),
            cx6("0000:3b:00.0", "ens1f0"),
        ]),
    );
    assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
    let cfg = render_device_plugin_config(&plan.spec, "smartnic.io");
    assert_eq!(
        serde_json::to_value(&cfg).unwrap(),
        json!({"resourceList": [
            {"resourceName": "cx6_vf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
             "isRdma": false, "needVhostNet": false, "excludeTopology": false,
             "selectors": [{"pfs": [{"pciAddress": "0000:3b:00.0", "name": "ens1f0", "vfs": [{"first": 0, "last": 7}]}]}]},
            {"resourceName": "igb_dpdk", "resourcePrefix": "smartnic.io", "deviceType": "vfio-pci",
             "isRdma": false, "needVhostNet": false, "excludeTopology": false,
             "selectors": [{"pciAddresses": ["0000:02:00.0"]}]},
            {"resourceName": "igb_pf", "resourcePrefix": "smartnic.io", "deviceType": "netdevice",
             "isRdma": false, "needVhostNet": false, "excludeTopology": false,
             "selectors": [{"pciAddresses": ["0000:01:00.0", "0000:03:00.0"]}]}
        ]})
    );
    // enp3s0 and enp2s0 are still being set up: only enp1s0 (and the VFs) are handed over
    let applied =
        applied_device_plugin_config(&cfg, |pf| pf == "0000:01:00.0" || pf == "0000:3b:00.0");
    let names: Vec<&str> = applied
        .resource_list
        .iter()
        .map(|p| p.resource_name.as_str())
        .collect();
    assert_eq!(names, ["cx6_vf", "igb_pf"]);
    assert_eq!(
        applied.resource_list[1].selectors,
        [DeviceSelector {
            pci_addresses: vec!["0000:01:00.0".into()],
            ..DeviceSelector::default()
        }]
    );
}

fn spec_of(i: InterfaceSpec) -> NicNodeStateSpec {
    NicNodeStateSpec {
        interfaces: vec![i],
        ..Default::default()
    }
}

fn whole_iface(nic: &Nic, device_type: VfDeviceType, mtu: Option<u32>) -> InterfaceSpec {
    InterfaceSpec {
        pci_address: nic.pci_address.clone(),
        name: nic.name.clone(),
        mtu,
        policy: "pf".into(),
        whole_pf: Some(PfPool {
            resource_name: "igb_pf".into(),
            device_type,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn steps(applied: &NicNodeStateSpec, desired: &NicNodeStateSpec, nic: &Nic) -> Vec<Step> {
    let plan = plan_host(
        applied,
        desired,
        &inventory(vec![nic.clone()]),
        &BTreeMap::new(),
    );
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    plan.pfs.into_iter().flat_map(|p| p.steps).collect()
}

#[test]
fn the_agent_removes_vfs_sets_the_mtu_and_binds_the_pf_as_its_pool_says() {
    let none = NicNodeStateSpec::default();
    let nic = with_vfs(igb("0000:01:00.0", "enp1s0"), 2, &[], &[]);
    let want = spec_of(whole_iface(&nic, VfDeviceType::Netdevice, Some(9000)));
    assert_eq!(
        steps(&none, &want, &nic),
        [Step::SetNumVfs { count: 0 }, Step::PfMtu { mtu: 9000 }]
    );
    assert!(Step::SetNumVfs { count: 0 }.disturbs_vfs());
    // in sync: nothing to do
    let mut done = igb("0000:01:00.0", "enp1s0");
    done.mtu = Some(9000);
    assert_eq!(steps(&want, &want, &done), []);
    // the PF is in a pod (no netdev on the host): left alone
    let mut in_pod = igb("0000:01:00.0", "enp1s0");
    in_pod.name = None;
    in_pod.mtu = None;
    assert_eq!(steps(&want, &want, &in_pod), []);
    // vfio-pci: bound, no MTU (no netdev); and back to the kernel driver when the policy goes
    let vfio = spec_of(whole_iface(&done, VfDeviceType::VfioPci, None));
    assert_eq!(
        steps(&none, &vfio, &done),
        [Step::BindPf {
            device_type: VfDeviceType::VfioPci
        }]
    );
    assert!(
        Step::BindPf {
            device_type: VfDeviceType::VfioPci
        }
        .disturbs_vfs()
    );
    let mut on_vfio = done.clone();
    on_vfio.driver = Some("vfio-pci".into());
    on_vfio.name = None;
    assert_eq!(steps(&vfio, &vfio, &on_vfio), []);
    assert_eq!(
        steps(&vfio, &none, &on_vfio),
        [Step::BindPf {
            device_type: VfDeviceType::Netdevice
        }]
    );
    assert_eq!(
        Step::BindPf {
            device_type: VfDeviceType::VfioPci
        }
        .to_string(),
        "bind the PF to vfio-pci (IOMMU group checked)"
    );
}

#[test]
fn rebinding_a_whole_pf_evicts_its_pod_only_when_one_may_hold_it() {
    let none = NicNodeStateSpec::default();
    let free = igb("0000:01:00.0", "enp1s0");
    let net = spec_of(whole_iface(&free, VfDeviceType::Netdevice, None));
    let vfio = spec_of(whole_iface(&free, VfDeviceType::VfioPci, None));
    let class = |old: &NicNodeStateSpec, new: &NicNodeStateSpec, nic: &Nic| {
        classify(old, new, &inventory(vec![nic.clone()])).class
    };
    // netdevice -> vfio-pci: free on the host, or in a pod
    assert_eq!(class(&net, &vfio, &free), ChangeClass::NonDisruptive);
    let mut in_pod = free.clone();
    in_pod.name = None;
    assert_eq!(class(&net, &vfio, &in_pod), ChangeClass::EvictVfPods);
    // on vfio-pci its user is invisible: back to netdevice, or the policy removed
    let mut on_vfio = in_pod.clone();
    on_vfio.driver = Some("vfio-pci".into());
    assert_eq!(class(&vfio, &net, &on_vfio), ChangeClass::EvictVfPods);
    assert_eq!(class(&vfio, &none, &on_vfio), ChangeClass::EvictVfPods);
    assert_eq!(class(&vfio, &vfio, &on_vfio), ChangeClass::NonDisruptive);
}
