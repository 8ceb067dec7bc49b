//! `NicPolicy`: what an administrator wants on a set of nodes' NICs.

// clippy reads the repeated `type_ = ...` inside separate `printcolumn(...)` groups of `#[kube]` as
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::vf::VfDeviceType;

use crate::{
    guid::GuidRange,
    inventory::{EswitchMode, LinkType},
};

/// Desired SR-IOV configuration for the NICs that `nicSelector` picks on the nodes that
/// `nodeSelector` picks.
///
/// Precedence between policies: a LOWER `priority` number wins; equal priorities are ordered by
/// policy name, ascending ("a" beats "b"). The same rule is used by the planner, the admission
/// webhook and the status messages. The winning policy on a PF decides PF-level settings
/// (`numVfs`, `eswitchMode`, `linkType`, `externallyManaged`, `firmware`); other policies on the
/// same PF are composed into it as extra VF groups when their VF ranges are disjoint and their
/// PF-level settings agree, and are rejected for that PF (with a reason naming both policies)
/// otherwise. The PF MTU is the largest `mtu` of the policies composed on it; each VF group keeps
/// its own policy's `mtu`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "smartnic.io",
    version = "v1alpha1",
    kind = "NicPolicy",
    plural = "nicpolicies",
    shortname = "nicp",
    category = "smartnic",
    status = "NicPolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Desired SR-IOV configuration for the NICs selected on the nodes selected. Lower priority number wins; ties go to the name that sorts first.",
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "VFs", type_ = "integer", json_path = ".spec.numVfs"),
    printcolumn(name = "Resource", type_ = "string", json_path = ".spec.resourceName"),
    printcolumn(name = "Driver", type_ = "string", json_path = ".spec.deviceType"),
    printcolumn(
        name = "Eswitch",
        type_ = "string",
        json_path = ".spec.eswitchMode",
        priority = 1
    ),
    printcolumn(name = "Nodes", type_ = "integer", json_path = ".status.selectedNodes"),
    printcolumn(
        name = "Rejected",
        type_ = "integer",
        json_path = ".status.rejectedNodes"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::rules::policy_spec_rules)]
pub struct NicPolicySpec {
    /// Nodes this policy applies to (standard label selector). Required and must not be empty:
    /// to target every Linux node, say so explicitly, e.g. matchLabels
    /// `kubernetes.io/os: linux`.
    pub node_selector: LabelSelector,
    /// Physical functions this policy configures on each selected node. Every field that is set
    /// must match (AND). An empty selector matches nothing and is rejected.
    pub nic_selector: NicSelector,
    /// Number of VFs to create on each selected PF (1 or more; 0, the default, only with
    /// `wholePf`). Must not exceed the PF's `sriov_totalvfs` (or `firmware.totalVfs` when that
    /// is set, which costs a reboot). VF ranges in `nicSelector` must lie below this number. At
    /// most 65535, the PCI SR-IOV limit (TotalVFs is a 16-bit register); the device's own limit
    /// is checked on each node.
    #[serde(default)]
    #[schemars(range(max = crate::MAX_NUM_VFS))]
    pub num_vfs: u32,
    /// Offer the selected PFs themselves as the pool, with no VFs (`numVfs` 0): a pod gets a
    /// whole port (its netdev moved into the pod with `deviceType: netdevice`, the PCI function
    /// with `vfio-pci`). The PF is taken by this policy alone: no VF ranges, no other policy on
    /// it, no `eswitchMode`, `externallyManaged` or `firmware`. A PF that is not SR-IOV capable
    /// can be offered this way too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole_pf: bool,
    /// MTU for this policy's VFs (68-65535). The PF gets the largest MTU of all policies composed
    /// on it, because the PF port carries every VF's frames; other VF groups keep their own MTU.
    /// Unset: VFs keep the driver default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = crate::MIN_MTU, max = crate::MAX_MTU))]
    pub mtu: Option<u32>,
    /// Driver the VFs (or, with `wholePf`, the PFs) are bound to: `netdevice` (the vendor's
    /// kernel driver; pods get a netdev) or `vfio-pci` (userspace/DPDK; pods get /dev/vfio).
    /// Default `netdevice`.
    #[serde(default)]
    pub device_type: VfDeviceType,
    /// Eswitch mode of the PF: `legacy` (VEB switching in the NIC) or `switchdev` (representors,
    /// OVS/tc hardware offload; Ethernet only). Unset: keep the PF's current mode unless another
    /// policy on the same PF sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eswitch_mode: Option<EswitchMode>,
    /// Link layer: `eth` or `ib`. On NVIDIA NICs this is a firmware setting (LINK_TYPE_Px) and a
    /// change needs a reboot. Unset: keep the current link type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_type: Option<LinkType>,
    /// InfiniBand only (`linkType: ib`): the GUIDs this policy's VFs get as node and port GUID
    /// (each VF one GUID, used for both), as inclusive ranges taken in the order given. On a
    /// node, the policy's PFs take them in PCI-address order, each as many as it has VFs of this
    /// policy, VF index ascending; a PF left without enough is rejected. GUIDs must be unique on
    /// the fabric, so a pool is for one node: the policy's `nodeSelector` must name it
    /// (`matchLabels` `kubernetes.io/hostname`). The ranges may not overlap, and may not hold
    /// the zero or the all-ones GUID; together they hold at least `numVfs`. Unset: each VF
    /// gets a stable GUID derived from the PF's node GUID and the VF index (like the VF MACs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::MAX_GUID_RANGES))]
    pub ib_guid_pool: Vec<GuidRange>,
    /// Give pods the VF's RDMA device (/dev/infiniband/*). Not allowed with `vfio-pci`.
    #[serde(default)]
    pub is_rdma: bool,
    /// Also give pods `/dev/vhost-net` and `/dev/net/tun` (virtio/vhost datapaths such as DPDK's
    /// exception path or KubeVirt). Policies sharing a resource name must agree on it.
    #[serde(default)]
    pub need_vhost_net: bool,
    /// Device-plugin resource name WITHOUT prefix (`cx6_vf`); pods request
    /// `<resourcePrefix>/<resourceName>` (prefix from NicOperatorConfig, default `smartnic.io`).
    /// 1-63 characters, letters, digits, `_` and `-`, starting and ending with a letter or digit.
    /// Policies sharing a resource name must agree on `deviceType`, `isRdma`,
    /// `excludeTopology`, `needVhostNet`, `allocation` and `networkNamespaces`.
    #[schemars(length(min = 1, max = crate::MAX_RESOURCE_NAME_LEN), pattern(crate::RESOURCE_NAME_PATTERN))]
    pub resource_name: String,
    /// How pods get this policy's devices: `devicePlugin` (the default: pods request
    /// `<resourcePrefix>/<resourceName>` in their limits), `dra` (Dynamic Resource Allocation
    /// only: the `smartnic-dra` driver publishes the devices in ResourceSlices, the operator
    /// keeps a DeviceClass for the pool, pods ask by ResourceClaim; the device plugin does not
    /// advertise the pool) or `both` (each device offered through both; whichever takes it
    /// first holds it). Policies sharing a resource name must agree on it. The DeviceClass is
    /// named `<resourceName in lower case, '_' written '-'>.<resourcePrefix>` (`cx6_vf` →
    /// `cx6-vf.smartnic.io`); two pools offered by DRA may not map to one name.
    #[serde(default, skip_serializing_if = "crate::dra::Allocation::is_default")]
    pub allocation: crate::dra::Allocation,
    /// Namespaces whose `NicNetwork`s may use this policy's resource (and so choose VLAN, trust,
    /// spoof checking and rates of its VFs). Unset: every namespace. An empty list: none (pods
    /// may still request the resource directly, without a network). A `NicNetwork` in any other
    /// namespace is rejected by the webhook and, without the webhook, gets `Ready=False` (reason
    /// `NamespaceNotAllowed`) and no NetworkAttachmentDefinition. Policies sharing a resource
    /// name must agree on this list; when they do not (no webhook), a namespace must be allowed
    /// by every one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 256),
        inner(length(min = 1, max = 63), pattern(crate::DNS_LABEL_PATTERN))
    )]
    pub network_namespaces: Option<Vec<String>>,
    /// Precedence, 0-99: LOWER number wins; equal numbers are ordered by policy name, ascending.
    /// Default 99.
    #[serde(default = "default_priority")]
    #[schemars(range(max = crate::MAX_POLICY_PRIORITY))]
    pub priority: u32,
    /// The VFs are created by someone else (e.g. at boot): the operator never changes `numVfs`,
    /// eswitch mode or firmware of these PFs. It checks that at least `numVfs` VFs exist (and the
    /// eswitch mode matches, when set), configures the VF groups and hands them to the device
    /// plugin. Not allowed with `firmware`.
    #[serde(default)]
    pub externally_managed: bool,
    /// Do not report the VFs' NUMA node to the kubelet (no topology-manager alignment).
    #[serde(default)]
    pub exclude_topology: bool,
    /// Firmware (NV-config) settings. Any change to them needs a reboot of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareSpec>,
}

fn default_priority() -> u32 {
    crate::MAX_POLICY_PRIORITY
}

/// Which physical functions a policy configures. Set fields are ANDed; an empty selector matches
/// nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NicSelector {
    /// PCI vendor id, four hex digits without `0x` (`15b3` NVIDIA, `8086` Intel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::HEX4_PATTERN))]
    pub vendor: Option<String>,
    /// PCI device id of the PF, four hex digits without `0x` (`101d` ConnectX-6 Dx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::HEX4_PATTERN))]
    pub device_id: Option<String>,
    /// PF netdev names, each optionally with the VFs this policy takes: `ens1f0` (VFs
    /// 0..numVfs-1), `ens1f0#0-3`, `ens1f0#0,2-7`. VF indices are 0-based and must be below
    /// `numVfs`. Two policies may not claim the same VF on the same PF.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(max = 128), pattern(crate::PF_NAME_ENTRY_PATTERN))
    )]
    pub pf_names: Vec<String>,
    /// PF PCI addresses (`0000:3b:00.0`), each optionally with VF ranges as in `pfNames`
    /// (`0000:3b:00.0#4-7`). VF ranges may be given in `pfNames` or `rootDevices`, not both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(max = 128), pattern(crate::ROOT_DEVICE_ENTRY_PATTERN))
    )]
    pub root_devices: Vec<String>,
}

/// Firmware (NV-config) settings of a PF. Applying any of them needs a reboot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirmwareSpec {
    /// VF capacity the firmware exposes (NVIDIA `NUM_OF_VFS`, which becomes `sriov_totalvfs` after
    /// a reboot). Must be at least `numVfs`. Dual-port cards share one value, which the agent does
    /// not merge across the two ports yet: each PF's own request is written, so give both ports
    /// of a card the same value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = crate::MAX_NUM_VFS))]
    pub total_vfs: Option<u32>,
}

/// What the operator observed when applying a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NicPolicyStatus {
    /// `Valid` (spec passed validation) and `Applied` (no node rejected it), each with
    /// `observedGeneration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = crate::schema::conditions_list_map)]
    pub conditions: Vec<Condition>,
    /// Nodes whose labels match `nodeSelector`.
    #[serde(default)]
    pub selected_nodes: u32,
    /// Nodes where the policy was rejected for at least one PF.
    #[serde(default)]
    pub rejected_nodes: u32,
    /// The first rejections (at most 20), sorted by node and PF; `rejectedNodes` has the total.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<PolicyRejectionStatus>,
}

/// Why a policy was not applied to a PF (or to a whole node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRejectionStatus {
    /// Node name.
    pub node: String,
    /// PF PCI address; absent when the rejection concerns the whole policy on that node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pf: Option<String>,
    /// Human-readable reason naming the conflicting policy or field.
    pub reason: String,
}
