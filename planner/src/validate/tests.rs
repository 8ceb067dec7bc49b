//! Admission cases: every listed case must be rejected with an error on the named field whose
//! message contains the given text; the baseline objects must pass.

use std::collections::BTreeMap;

use crds::{
    NicPolicy, NicPool,
    inventory::{EswitchMode, LinkType, NicInventory},
    k8s::{IntOrString, LabelSelector, LabelSelectorRequirement},
    network::{GeneveOptions, NetworkMode, NicNetworkSpec, OvsOptions, VlanProto, VlanRange},
    operator_config::NicOperatorConfigSpec,
    policy::{FirmwareSpec, NicPolicySpec, VfDeviceType},
    pool::NicPoolSpec,
};
use serde_json::json;

use super::*;
use crate::fixtures::{cx6, inventory, labels, policy, with_vfs};

type Mutate<T> = fn(&mut T);

fn expect_error<T>(
    case: &str,
    result: Result<(), Vec<FieldError>>,
    field: &str,
    text: &str,
    what: &T,
) where
    T: fmt::Debug,
{
    let errors = result.expect_err(&format!("case {case:?} was accepted: {what:?}"));
    assert!(
        errors
            .iter()
            .any(|e| e.field == field && e.message.contains(text)),
        "case {case:?}: expected {field}: ...{text}..., got: {}",
        to_message(&errors)
    );
}

fn base_policy() -> NicPolicySpec {
    let mut p = policy("p", 10, &["ens1f0#0-3"]).spec;
    p.mtu = Some(9000);
    p
}

#[test]
fn baseline_objects_pass() {
    assert_eq!(validate_policy_spec(&base_policy()), Ok(()));
    assert_eq!(validate_network(&base_network()), Ok(()));
    assert_eq!(
        validate_pool("p", &base_pool(), &PoolContext::default()),
        Ok(())
    );
    assert_eq!(
        validate_operator_config("default", &NicOperatorConfigSpec::default()),
        Ok(())
    );
}

#[test]
fn policy_single_object_cases() {
    let cases: Vec<(&str, Mutate<NicPolicySpec>, &str, &str)> = vec![
        (
            "empty node selector",
            |p| p.node_selector = LabelSelector::default(),
            "spec.nodeSelector",
            "must select nodes",
        ),
        (
            "label written as key=value",
            |p| p.node_selector.match_labels = Some(labels(&[("gpu=true", "")])),
            "spec.nodeSelector.matchLabels",
            "not a valid label key",
        ),
        (
            "unknown selector operator",
            |p| {
                p.node_selector.match_expressions = Some(vec![LabelSelectorRequirement {
                    key: "gpu".into(),
                    operator: "Equals".into(),
                    values: Some(vec!["true".into()]),
                }])
            },
            "spec.nodeSelector.matchExpressions[0].operator",
            "unknown operator \"Equals\"",
        ),
        (
            "In without values",
            |p| {
                p.node_selector.match_expressions = Some(vec![LabelSelectorRequirement {
                    key: "gpu".into(),
                    operator: "In".into(),
                    values: None,
                }])
            },
            "spec.nodeSelector.matchExpressions[0].values",
            "needs at least one value",
        ),
        (
            "empty nic selector",
            |p| p.nic_selector = Default::default(),
            "spec.nicSelector",
            "would match no NIC",
        ),
        (
            "vendor with 0x",
            |p| p.nic_selector.vendor = Some("0x15b3".into()),
            "spec.nicSelector.vendor",
            "four hex digits",
        ),
        (
            "device id not hex",
            |p| p.nic_selector.device_id = Some("cx6d".into()),
            "spec.nicSelector.deviceId",
            "not a PCI device id",
        ),
        (
            "VF range beyond numVfs",
            |p| p.nic_selector.pf_names = vec!["ens1f0#4-9".into()],
            "spec.nicSelector.pfNames[0]",
            "goes beyond numVfs 8 (VF indices are 0-7)",
        ),
        (
            "reversed VF range",
            |p| p.nic_selector.pf_names = vec!["ens1f0#3-1".into()],
            "spec.nicSelector.pfNames[0]",
            "range start is after its end",
        ),
        (
            "VF range without PF name",
            |p| p.nic_selector.pf_names = vec!["#0-3".into()],
            "spec.nicSelector.pfNames[0]",
            "is empty",
        ),
        (
            "garbage VF range",
            |p| p.nic_selector.pf_names = vec!["ens1f0#0-x".into()],
            "spec.nicSelector.pfNames[0]",
            "is not a VF index or range",
        ),
        (
            "overlapping items in one entry",
            |p| p.nic_selector.pf_names = vec!["ens1f0#0-3,2".into()],
            "spec.nicSelector.pfNames[0]",
            "overlap",
        ),
        (
            "PF listed twice",
            |p| p.nic_selector.pf_names = vec!["ens1f0#0-1".into(), "ens1f0#4-5".into()],
            "spec.nicSelector.pfNames[1]",
            "already listed as pfNames[0]",
        ),
        (
            "PF name too long",
            |p| p.nic_selector.pf_names = vec!["enp175s0f0np0vf1".into()],
            "spec.nicSelector.pfNames[0]",
            "not a network interface name",
        ),
        (
            "bad root device",
            |p| p.nic_selector.root_devices = vec!["3b:00.0".into()],
            "spec.nicSelector.rootDevices[0]",
            "not a PCI address",
        ),
        (
            "ranges in pfNames and rootDevices",
            |p| p.nic_selector.root_devices = vec!["0000:3b:00.0#4-5".into()],
            "spec.nicSelector.rootDevices[0]",
            "not both",
        ),
        ("zero VFs", |p| p.num_vfs = 0, "spec.numVfs", "at least 1"),
        (
            "absurd VF count",
            |p| p.num_vfs = 100_000,
            "spec.numVfs",
            "above the SR-IOV maximum",
        ),
        (
            "MTU too small",
            |p| p.mtu = Some(40),
            "spec.mtu",
            "outside 68-65535",
        ),
        (
            "vfio-pci with isRdma",
            |p| {
                p.device_type = VfDeviceType::VfioPci;
                p.is_rdma = true;
            },
            "spec.isRdma",
            "cannot be used with deviceType vfio-pci",
        ),
        (
            "switchdev with linkType ib",
            |p| {
                p.eswitch_mode = Some(EswitchMode::Switchdev);
                p.link_type = Some(LinkType::Ib);
            },
            "spec.eswitchMode",
            "switchdev needs Ethernet",
        ),
        (
            "resourceName with a dot",
            |p| p.resource_name = "cx6.vf".into(),
            "spec.resourceName",
            "contains '.'",
        ),
        (
            "resourceName with a space",
            |p| p.resource_name = "cx6 vf".into(),
            "spec.resourceName",
            "contains ' '",
        ),
        (
            "resourceName with prefix",
            |p| p.resource_name = "smartnic.io/cx6_vf".into(),
            "spec.resourceName",
            "write \"cx6_vf\"",
        ),
        (
            "resourceName empty",
            |p| p.resource_name = String::new(),
            "spec.resourceName",
            "must not be empty",
        ),
        (
            "resourceName too long",
            |p| p.resource_name = "a".repeat(64),
            "spec.resourceName",
            "at most 63",
        ),
        (
            "resourceName ending in dash",
            |p| p.resource_name = "cx6-".into(),
            "spec.resourceName",
            "start and end with a letter or digit",
        ),
        (
            "network namespace not a DNS label",
            |p| p.network_namespaces = Some(vec!["Team_A".into()]),
            "spec.networkNamespaces[0]",
            "is not a namespace name",
        ),
        (
            "priority above 99",
            |p| p.priority = 100,
            "spec.priority",
            "above 99",
        ),
        (
            "firmware on an external PF",
            |p| {
                p.externally_managed = true;
                p.firmware = Some(FirmwareSpec {
                    total_vfs: Some(16),
                });
            },
            "spec.firmware",
            "not allowed with externallyManaged",
        ),
        (
            "firmware capacity below numVfs",
            |p| p.firmware = Some(FirmwareSpec { total_vfs: Some(4) }),
            "spec.firmware.totalVfs",
            "below numVfs 8",
        ),
        (
            "whole PF with VFs",
            |p| p.whole_pf = true,
            "spec.wholePf",
            "numVfs must be 0",
        ),
        (
            "whole PF in switchdev",
            |p| {
                p.whole_pf = true;
                p.num_vfs = 0;
                p.eswitch_mode = Some(EswitchMode::Switchdev);
            },
            "spec.wholePf",
            "not allowed with eswitchMode",
        ),
        (
            "whole PF with a VF range",
            |p| {
                p.whole_pf = true;
                p.num_vfs = 0;
                p.nic_selector.pf_names = vec!["ens1f0#0-3".into()];
            },
            "spec.wholePf",
            "no VF ranges",
        ),
    ];
    assert!(cases.len() >= 30);
    for (name, mutate, field, text) in cases {
        let mut spec = base_policy();
        mutate(&mut spec);
        expect_error(name, validate_policy_spec(&spec), field, text, &spec);
        // The full check (webhook) reports the same error.
        expect_error(
            name,
            validate_policy("p", &spec, &PolicyContext::default()),
            field,
            text,
            &spec,
        );
    }
}

struct Cluster {
    labels: BTreeMap<String, String>,
    inventory: NicInventory,
}

impl Cluster {
    fn new(inv: NicInventory) -> Self {
        Self {
            labels: labels(&[("gpu", "true")]),
            inventory: inv,
        }
    }
    fn facts(&self, name: &'static str) -> NodeFacts<'_> {
        NodeFacts {
            name,
            labels: &self.labels,
            inventory: &self.inventory,
        }
    }
}

#[test]
fn two_policies_claiming_one_vf_range_are_rejected_whatever_their_priority() {
    let existing = [policy("b", 50, &["ens1f0#2-5"])];
    let ctx = PolicyContext {
        policies: &existing,
        nodes: &[],
    };
    let a = policy("a", 10, &["ens1f0#0-3"]).spec;
    let errs = validate_policy("a", &a, &ctx).unwrap_err();
    assert_eq!(errs[0].field, "spec.nicSelector.pfNames[0]");
    assert!(
        errs[0]
            .message
            .contains("VFs 2-3 of ens1f0 are also claimed by policy b"),
        "{}",
        errs[0].message
    );

    // Disjoint node selectors make the same ranges fine.
    let mut other_rack = policy("b", 50, &["ens1f0#2-5"]);
    other_rack.spec.node_selector.match_labels = Some(labels(&[("gpu", "false")]));
    let existing = [other_rack];
    assert_eq!(
        validate_policy(
            "a",
            &a,
            &PolicyContext {
                policies: &existing,
                nodes: &[]
            }
        ),
        Ok(())
    );

    // Updating a policy does not conflict with its own stored version.
    let stored = [policy("a", 10, &["ens1f0#0-3"])];
    assert_eq!(
        validate_policy(
            "a",
            &a,
            &PolicyContext {
                policies: &stored,
                nodes: &[]
            }
        ),
        Ok(())
    );
}

#[test]
fn whole_pf_policies_by_vendor_conflict_with_each_other() {
    let existing = [policy("b", 50, &[])];
    let errs = validate_policy(
        "a",
        &policy("a", 10, &[]).spec,
        &PolicyContext {
            policies: &existing,
            nodes: &[],
        },
    )
    .unwrap_err();
    assert_eq!(errs[0].field, "spec.nicSelector");
}

#[test]
fn policies_sharing_a_pf_must_agree_on_num_vfs() {
    let existing = [policy("b", 50, &["ens1f0#4-7"])];
    let mut a = policy("a", 10, &["ens1f0#0-3"]).spec;
    a.num_vfs = 16;
    expect_error(
        "numVfs disagreement",
        validate_policy(
            "a",
            &a,
            &PolicyContext {
                policies: &existing,
                nodes: &[],
            },
        ),
        "spec.numVfs",
        "must agree on numVfs",
        &a,
    );
}

#[test]
fn a_resource_name_means_one_kind_of_device() {
    let mut b = policy("b", 50, &["ens1f1"]);
    b.spec.device_type = VfDeviceType::VfioPci;
    let existing = [b];
    let a = policy("a", 10, &["ens1f0"]).spec;
    expect_error(
        "resource kind",
        validate_policy(
            "a",
            &a,
            &PolicyContext {
                policies: &existing,
                nodes: &[],
            },
        ),
        "spec.deviceType",
        "one resource name must mean one kind of device",
        &a,
    );
    // whole PFs and VFs under one name
    let mut b = policy("b", 50, &["ens1f1"]);
    b.spec.whole_pf = true;
    b.spec.num_vfs = 0;
    let existing = [b];
    expect_error(
        "whole PFs and VFs",
        validate_policy(
            "a",
            &a,
            &PolicyContext {
                policies: &existing,
                nodes: &[],
            },
        ),
        "spec.wholePf",
        "one resource name must mean one kind of device",
        &a,
    );
}

#[test]
fn two_dra_pools_may_not_share_a_device_class_name() {
    use crds::dra::Allocation;
    let mut b = policy("b", 50, &["ens1f1"]);
    b.spec.resource_name = "cx6-vf".into();
    b.spec.allocation = Allocation::Dra;
    let existing = [b];
    let ctx = PolicyContext {
        policies: &existing,
        nodes: &[],
    };
    let mut a = policy("a", 10, &["ens1f0"]).spec;
    a.resource_name = "CX6_vf".into();
    a.allocation = Allocation::Both;
    expect_error(
        "class names collide",
        validate_policy("a", &a, &ctx),
        "spec.resourceName",
        "resource CX6_vf and resource cx6-vf of policy b would have one DeviceClass, cx6-vf.<resourcePrefix>",
        &a,
    );
    // through the device plugin only, the names stay apart
    a.allocation = Allocation::DevicePlugin;
    assert_eq!(validate_policy("a", &a, &ctx), Ok(()));
}

#[test]
fn policies_sharing_a_resource_agree_on_vhost_net_and_network_namespaces() {
    let mut b = policy("b", 50, &["ens1f1"]);
    b.spec.need_vhost_net = true;
    b.spec.network_namespaces = Some(vec!["team-b".into(), "team-a".into()]);
    let existing = [b];
    let ctx = PolicyContext {
        policies: &existing,
        nodes: &[],
    };
    let mut a = policy("a", 10, &["ens1f0"]).spec;
    a.need_vhost_net = true;
    expect_error(
        "namespaces differ",
        validate_policy("a", &a, &ctx),
        "spec.networkNamespaces",
        "has networkNamespaces [team-b, team-a] in policy b",
        &a,
    );
    // the same set in another order agrees
    a.network_namespaces = Some(vec!["team-a".into(), "team-b".into()]);
    assert_eq!(validate_policy("a", &a, &ctx), Ok(()));
    a.need_vhost_net = false;
    expect_error(
        "vhost-net differs",
        validate_policy("a", &a, &ctx),
        "spec.needVhostNet",
        "has needVhostNet true in policy b",
        &a,
    );
    a.need_vhost_net = true;
    a.allocation = crds::dra::Allocation::Both;
    expect_error(
        "allocation differs",
        validate_policy("a", &a, &ctx),
        "spec.allocation",
        "has allocation devicePlugin in policy b",
        &a,
    );
}

#[test]
fn num_vfs_above_total_vfs_on_a_known_node_is_rejected() {
    let node = Cluster::new(inventory(vec![cx6("0000:3b:00.0", "ens1f0")]));
    let nodes = [node.facts("w1")];
    let mut a = policy("a", 10, &["ens1f0"]).spec;
    a.num_vfs = 32;
    let errs = validate_policy(
        "a",
        &a,
        &PolicyContext {
            policies: &[],
            nodes: &nodes,
        },
    )
    .unwrap_err();
    assert_eq!(errs[0].field, "spec.numVfs");
    assert_eq!(
        errs[0].message,
        "on node w1: numVfs 32 exceeds sriov_totalvfs 16 of PF ens1f0 (0000:3b:00.0)"
    );
}

#[test]
fn known_nodes_catch_conflicts_the_syntax_cannot_see() {
    // b selects by PCI address, a by name: only the inventory shows it is the same PF.
    let mut b = policy("b", 50, &[]);
    b.spec.nic_selector.root_devices = vec!["0000:3b:00.0#0-1".into()];
    let existing = [b];
    let node = Cluster::new(inventory(vec![cx6("0000:3b:00.0", "ens1f0")]));
    let (n1, n2, n3, n4) = (
        node.facts("w1"),
        node.facts("w2"),
        node.facts("w3"),
        node.facts("w4"),
    );
    let nodes = [n1, n2, n3, n4];
    let a = policy("a", 10, &["ens1f0#0-3"]).spec;
    assert_eq!(
        validate_policy(
            "a",
            &a,
            &PolicyContext {
                policies: &existing,
                nodes: &[]
            }
        ),
        Ok(())
    );
    let errs = validate_policy(
        "a",
        &a,
        &PolicyContext {
            policies: &existing,
            nodes: &nodes,
        },
    )
    .unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec.nicSelector.pfNames[0]");
    assert!(
        errs[0]
            .message
            .starts_with("on node w1, w2, w3 and 1 more: conflicts with policy b"),
        "{}",
        errs[0].message
    );
}

#[test]
fn externally_managed_policy_needs_existing_vfs_on_known_nodes() {
    let node = Cluster::new(inventory(vec![with_vfs(
        cx6("0000:3b:00.0", "ens1f0"),
        2,
        &[],
        &[],
    )]));
    let nodes = [node.facts("w1")];
    let mut a = policy("a", 10, &["ens1f0"]).spec;
    a.externally_managed = true;
    expect_error(
        "external",
        validate_policy(
            "a",
            &a,
            &PolicyContext {
                policies: &[],
                nodes: &nodes,
            },
        ),
        "spec.numVfs",
        "externally managed and has 2 VFs",
        &a,
    );
}

fn base_network() -> NicNetworkSpec {
    NicNetworkSpec {
        resource_name: Some("cx6_vf".into()),
        vlan: Some(100),
        ipam: Some(json!({"type": "host-local", "subnet": "10.56.0.0/24"})),
        ..Default::default()
    }
}

#[test]
fn network_cases() {
    let cases: Vec<(&str, Mutate<NicNetworkSpec>, &str, &str)> = vec![
        (
            "meta plugin without type",
            |n| n.meta_plugins = vec![json!({"sysctl": {}})],
            "spec.metaPlugins[0].type",
            "is required",
        ),
        (
            "meta plugin that is not an object",
            |n| n.meta_plugins = vec![json!("tuning")],
            "spec.metaPlugins[0]",
            "must be a CNI plugin object",
        ),
        (
            "our own plugin chained again",
            |n| n.meta_plugins = vec![json!({"type": "smartnic"})],
            "spec.metaPlugins[0].type",
            "always comes first",
        ),
        (
            "log file as a path anywhere on the node",
            |n| n.log_file = Some("/etc/cron.d/smartnic".into()),
            "spec.logFile",
            "not a plain file name",
        ),
        (
            "log file escaping with ..",
            |n| n.log_file = Some("../../etc/shadow".into()),
            "spec.logFile",
            "not a plain file name",
        ),
        (
            "shell syntax in a master",
            |n| {
                n.mode = NetworkMode::Macvlan;
                n.master = Some("$(touch${IFS}Y)".into());
                n.resource_name = None;
                n.vlan = None;
            },
            "spec.master",
            "not a network interface name",
        ),
        (
            "ipvlan mode with a VLAN",
            |n| {
                n.mode = NetworkMode::Ipvlan;
                n.master = Some("ens1f0".into());
                n.resource_name = None;
            },
            "spec.vlan",
            "not supported in mode ipvlan",
        ),
        (
            "macvlan mode with a VLAN",
            |n| n.mode = NetworkMode::Macvlan,
            "spec.vlan",
            "not supported in mode macvlan",
        ),
        (
            "VLAN 4095",
            |n| n.vlan = Some(4095),
            "spec.vlan",
            "outside 0-4094",
        ),
        (
            "QoS above 7",
            |n| n.vlan_qos = Some(8),
            "spec.vlanQoS",
            "outside 0-7",
        ),
        (
            "QoS without VLAN",
            |n| {
                n.vlan = None;
                n.vlan_qos = Some(3);
            },
            "spec.vlanQoS",
            "needs a non-zero vlan",
        ),
        (
            "802.1ad without VLAN",
            |n| {
                n.vlan = Some(0);
                n.vlan_proto = Some(VlanProto::Dot1Ad);
            },
            "spec.vlanProto",
            "needs a non-zero vlan",
        ),
        (
            "min rate above max rate",
            |n| {
                n.min_tx_rate = Some(2000);
                n.max_tx_rate = Some(1000);
            },
            "spec.minTxRate",
            "above maxTxRate",
        ),
        (
            "sriov without resource",
            |n| n.resource_name = None,
            "spec.resourceName",
            "required in mode sriov",
        ),
        (
            "ovs without resource",
            |n| {
                n.mode = NetworkMode::Ovs;
                n.resource_name = None;
            },
            "spec.resourceName",
            "required in mode ovs",
        ),
        (
            "macvlan without master or resource",
            |n| {
                n.mode = NetworkMode::Macvlan;
                n.vlan = None;
                n.resource_name = None;
            },
            "spec.resourceName",
            "either resourceName",
        ),
        (
            "macvlan with master and resource",
            |n| {
                n.mode = NetworkMode::Macvlan;
                n.vlan = None;
                n.master = Some("ens1f0".into());
            },
            "spec.master",
            "not both",
        ),
        (
            "master in sriov mode",
            |n| n.master = Some("ens1f0".into()),
            "spec.master",
            "only for modes macvlan and ipvlan",
        ),
        (
            "macvlanMode in sriov mode",
            |n| n.macvlan_mode = Some(Default::default()),
            "spec.macvlanMode",
            "only for mode macvlan",
        ),
        (
            "ipvlanMode in macvlan mode",
            |n| {
                n.mode = NetworkMode::Macvlan;
                n.vlan = None;
                n.ipvlan_mode = Some(Default::default());
            },
            "spec.ipvlanMode",
            "only for mode ipvlan",
        ),
        (
            "spoofChk in ovs mode",
            |n| {
                n.mode = NetworkMode::Ovs;
                n.spoof_chk = Some(false);
            },
            "spec.spoofChk",
            "only for mode sriov",
        ),
        (
            "MTU in sriov mode",
            |n| n.mtu = Some(9000),
            "spec.mtu",
            "set by the NicPolicy",
        ),
        (
            "ovs options in sriov mode",
            |n| n.ovs = Some(OvsOptions::default()),
            "spec.ovs",
            "only for mode ovs",
        ),
        (
            "trunk and vlan together",
            |n| {
                n.mode = NetworkMode::Ovs;
                n.ovs = Some(OvsOptions {
                    trunk: vec![VlanRange {
                        min_id: 10,
                        max_id: 20,
                    }],
                    ..Default::default()
                });
            },
            "spec.ovs.trunk",
            "not both",
        ),
        (
            "reversed trunk",
            |n| {
                n.mode = NetworkMode::Ovs;
                n.vlan = None;
                n.ovs = Some(OvsOptions {
                    trunk: vec![VlanRange {
                        min_id: 20,
                        max_id: 10,
                    }],
                    ..Default::default()
                });
            },
            "spec.ovs.trunk[0]",
            "minId <= maxId",
        ),
        (
            "geneve VNI too large",
            |n| {
                n.mode = NetworkMode::Ovs;
                n.ovs = Some(OvsOptions {
                    geneve: Some(GeneveOptions {
                        vni: 1 << 24,
                        dst_port: None,
                    }),
                    ..Default::default()
                });
            },
            "spec.ovs.geneve.vni",
            "24 bits",
        ),
        (
            "geneve UDP port 0",
            |n| {
                n.mode = NetworkMode::Ovs;
                n.ovs = Some(OvsOptions {
                    geneve: Some(GeneveOptions {
                        vni: 1,
                        dst_port: Some(0),
                    }),
                    ..Default::default()
                });
            },
            "spec.ovs.geneve.dstPort",
            "must not be 0",
        ),
        (
            "ipam not an object",
            |n| n.ipam = Some(json!("host-local")),
            "spec.ipam",
            "must be a JSON object",
        ),
        (
            "ipam without type",
            |n| n.ipam = Some(json!({"subnet": "10.0.0.0/24"})),
            "spec.ipam.type",
            "is required",
        ),
        (
            "resource with bad characters",
            |n| n.resource_name = Some("cx6/vf".into()),
            "spec.resourceName",
            "bare name",
        ),
    ];
    for (name, mutate, field, text) in cases {
        let mut spec = base_network();
        mutate(&mut spec);
        expect_error(name, validate_network(&spec), field, text, &spec);
    }
}

fn base_pool() -> NicPoolSpec {
    NicPoolSpec {
        node_selector: LabelSelector {
            match_labels: Some(labels(&[("rack", "r1")])),
            ..Default::default()
        },
        max_unavailable: Some(IntOrString::String("25%".into())),
        drain_timeout_seconds: None,
        rdma_mode: None,
    }
}

#[test]
fn pool_cases() {
    let cases: Vec<(&str, Mutate<NicPoolSpec>, &str, &str)> = vec![
        (
            "negative",
            |p| p.max_unavailable = Some(IntOrString::Int(-1)),
            "spec.maxUnavailable",
            "negative",
        ),
        (
            "over 100%",
            |p| p.max_unavailable = Some(IntOrString::String("150%".into())),
            "spec.maxUnavailable",
            "outside 1%-100%",
        ),
        (
            "0%",
            |p| p.max_unavailable = Some(IntOrString::String("0%".into())),
            "spec.maxUnavailable",
            "outside 1%-100%",
        ),
        (
            "not a number",
            |p| p.max_unavailable = Some(IntOrString::String("two".into())),
            "spec.maxUnavailable",
            "neither a number nor a percentage",
        ),
        (
            "bad operator",
            |p| {
                p.node_selector.match_expressions = Some(vec![LabelSelectorRequirement {
                    key: "rack".into(),
                    operator: "Exists".into(),
                    values: Some(vec!["r1".into()]),
                }])
            },
            "spec.nodeSelector.matchExpressions[0].values",
            "takes no values",
        ),
    ];
    for (name, mutate, field, text) in cases {
        let mut spec = base_pool();
        mutate(&mut spec);
        expect_error(
            name,
            validate_pool("p", &spec, &PoolContext::default()),
            field,
            text,
            &spec,
        );
    }
    // Integer 0 pauses the pool and is valid.
    let mut paused = base_pool();
    paused.max_unavailable = Some(IntOrString::Int(0));
    assert_eq!(validate_pool("p", &paused, &PoolContext::default()), Ok(()));
}

#[test]
fn a_node_in_two_pools_is_rejected() {
    let gpu = NicPool::new(
        "gpu",
        NicPoolSpec {
            node_selector: LabelSelector {
                match_labels: Some(labels(&[("gpu", "true")])),
                ..Default::default()
            },
            max_unavailable: None,
            drain_timeout_seconds: None,
            rdma_mode: None,
        },
    );
    let l1 = labels(&[("gpu", "true"), ("rack", "r1")]);
    let l2 = labels(&[("rack", "r2")]);
    let nodes = [("w1", &l1), ("w2", &l2)];
    let pools = [gpu];
    let errs = validate_pool(
        "rack1",
        &base_pool(),
        &PoolContext {
            pools: &pools,
            nodes: &nodes,
        },
    )
    .unwrap_err();
    assert_eq!(errs[0].field, "spec.nodeSelector");
    assert!(
        errs[0]
            .message
            .contains("node w1 would be in this pool and in pool gpu")
    );
}

#[test]
fn operator_config_cases() {
    let bad = NicOperatorConfigSpec {
        resource_prefix: "Smartnic_IO".into(),
        ..Default::default()
    };
    expect_error(
        "prefix",
        validate_operator_config("default", &bad),
        "spec.resourcePrefix",
        "not a DNS subdomain",
        &bad,
    );
    let ok = NicOperatorConfigSpec::default();
    expect_error(
        "name",
        validate_operator_config("config", &ok),
        "metadata.name",
        "only the object named \"default\"",
        &ok,
    );
}

#[test]
fn admission_message_names_every_field() {
    let mut spec = base_policy();
    spec.num_vfs = 0;
    spec.resource_name = "a b".into();
    let errs = validate_policy_spec(&spec).unwrap_err();
    let msg = to_message(&errs);
    assert!(msg.contains("spec.numVfs: must be at least 1"), "{msg}");
    assert!(msg.contains("; spec.resourceName: "), "{msg}");
}

#[test]
fn the_planner_refuses_what_admission_refuses() {
    // Without the webhook, a bad policy still never reaches a node: the planner ignores it and
    // reports the same field errors.
    let mut bad = policy("bad", 1, &["ens1f0"]);
    bad.spec.device_type = VfDeviceType::VfioPci;
    bad.spec.is_rdma = true;
    let plan = crate::desired_node_state(
        &[bad.clone()],
        &labels(&[("gpu", "true")]),
        &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
    );
    assert!(plan.spec.interfaces.is_empty());
    let admission = validate_policy_spec(&bad.spec).unwrap_err();
    assert_eq!(plan.rejections[0].field, admission[0].field);
    let _: &NicPolicy = &bad;
}
