//! `NicNodeState`: one per node, named after it. The operator writes `spec` (the desired state
//! computed from every `NicPolicy`); the node agent writes `status` (the discovered inventory and
//! the sync result).

// clippy reads the repeated `type_ = ...` inside separate `printcolumn(...)` groups of `#[kube]` as
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::vf::VfIndexRange;

use crate::{
    device_plugin::DevicePluginConfig,
    guid::GuidRange,
    inventory::{EswitchMode, LinkType, Nic},
    policy::{FirmwareSpec, VfDeviceType},
    pool::RdmaMode,
};

/// Desired NIC configuration of one node, computed by the operator from every matching
/// `NicPolicy`. Interfaces are sorted by PCI address and VF groups by their first VF, so equal
/// inputs always give byte-identical objects.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "smartnic.io",
    version = "v1alpha1",
    kind = "NicNodeState",
    plural = "nicnodestates",
    shortname = "nicns",
    category = "smartnic",
    status = "NicNodeStateStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Desired (spec, from the operator) and discovered (status, from the node agent) NIC state of one node; named after the node.",
    printcolumn(name = "Sync", type_ = "string", json_path = ".status.syncStatus"),
    printcolumn(
        name = "Generation",
        type_ = "integer",
        json_path = ".metadata.generation"
    ),
    printcolumn(
        name = "Applied",
        type_ = "integer",
        json_path = ".status.appliedGeneration"
    ),
    printcolumn(
        name = "Drain",
        type_ = "string",
        json_path = ".metadata.annotations.smartnic\\.io/drain-request"
    ),
    printcolumn(
        name = "Grant",
        type_ = "string",
        json_path = ".metadata.annotations.smartnic\\.io/drain-grant"
    ),
    printcolumn(
        name = "Error",
        type_ = "string",
        json_path = ".status.lastSyncError",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NicNodeStateSpec {
    /// PFs to configure, sorted by PCI address. A PF the operator configured earlier that is no
    /// longer listed is reset by the agent (VFs removed, eswitch mode restored).
    #[serde(default)]
    pub interfaces: Vec<InterfaceSpec>,
    /// The node's device-plugin configuration, rendered by the operator from `interfaces` (and
    /// the resource prefix of `NicOperatorConfig`) in the same write. The node agent hands the
    /// pools whose VFs are in place to the device plugin through a file on the host; the plugin
    /// does not read this object.
    #[serde(default)]
    pub device_plugin: DevicePluginConfig,
    /// RDMA network-namespace mode the agent sets on the node, from the `rdmaMode` of the node's
    /// `NicPool`. Unset: leave it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdma_mode: Option<RdmaMode>,
    /// The administrator's allow-list for tenant network configurations
    /// (`NicOperatorConfig.spec.tenantAllowList`), copied by the operator. The agent writes it
    /// to the node's `/etc/smartnic/cni-allow-list.json`, which the CNI plugin reads on every
    /// call. Unset (no `NicOperatorConfig`): the node's file is left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_allow_list: Option<crate::cni::TenantAllowList>,
}

/// Desired configuration of one PF.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceSpec {
    /// PCI address of the PF (`0000:3b:00.0`); the identity of the PF.
    pub pci_address: String,
    /// PF netdev name at planning time (informational; names can change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Number of VFs.
    pub num_vfs: u32,
    /// PF MTU: the largest MTU of the VF groups on it; unset when no policy gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Eswitch mode; unset means keep the current mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eswitch_mode: Option<EswitchMode>,
    /// Link type; unset means keep the current link type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_type: Option<LinkType>,
    /// VFs are created by someone else: the agent only checks `numVfs` and the eswitch mode.
    #[serde(default)]
    pub externally_managed: bool,
    /// Firmware settings to apply (reboot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareSpec>,
    /// The policy that decided the PF-level settings (the one with precedence on this PF).
    pub policy: String,
    /// VF groups, sorted by first VF index; their VF ranges are disjoint and below `numVfs`.
    #[serde(default)]
    pub vf_groups: Vec<VfGroup>,
    /// The PF itself is offered to pods as one device (a `wholePf` policy): `numVfs` is 0 and
    /// there are no VF groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_pf: Option<PfPool>,
}

/// A PF offered whole as one device of a device-plugin resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PfPool {
    /// Device-plugin resource name (without prefix).
    pub resource_name: String,
    /// Driver of the PF: its own kernel driver (`netdevice`) or `vfio-pci`.
    pub device_type: VfDeviceType,
    /// Expose the PF's RDMA device to pods.
    #[serde(default)]
    pub is_rdma: bool,
    /// Also give pods `/dev/vhost-net` and `/dev/net/tun`.
    #[serde(default)]
    pub need_vhost_net: bool,
    /// Do not report NUMA topology for the PF.
    #[serde(default)]
    pub exclude_topology: bool,
    /// Which kubelet interface offers the PF (the policy's `allocation`).
    #[serde(default, skip_serializing_if = "crate::dra::Allocation::is_default")]
    pub allocation: crate::dra::Allocation,
}

/// A set of VFs on one PF configured alike and advertised as one device-plugin resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VfGroup {
    /// The policy this group comes from.
    pub policy: String,
    /// Device-plugin resource name (without prefix).
    pub resource_name: String,
    /// VF indices, as sorted disjoint inclusive ranges.
    pub vfs: Vec<VfIndexRange>,
    /// VF driver.
    pub device_type: VfDeviceType,
    /// Expose the RDMA device to pods.
    #[serde(default)]
    pub is_rdma: bool,
    /// Also give pods `/dev/vhost-net` and `/dev/net/tun`.
    #[serde(default)]
    pub need_vhost_net: bool,
    /// VF MTU; unset means the driver default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Do not report NUMA topology for these VFs.
    #[serde(default)]
    pub exclude_topology: bool,
    /// Which kubelet interface offers these VFs (the policy's `allocation`).
    #[serde(default, skip_serializing_if = "crate::dra::Allocation::is_default")]
    pub allocation: crate::dra::Allocation,
    /// InfiniBand: the GUIDs of this group's VFs from the policy's pool, one per VF in
    /// ascending VF order (node and port GUID alike). Empty: on an IB PF each VF gets the GUID
    /// derived from the PF's node GUID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ib_guids: Vec<GuidRange>,
}

/// Result of the agent's last apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::schema::drop_description)]
pub enum SyncStatus {
    /// The spec at `appliedGeneration` is applied.
    Succeeded,
    /// The agent is applying (or waiting for a drain grant).
    InProgress,
    /// The last apply failed; see `lastSyncError`.
    Failed,
}

/// What the node agent discovered and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NicNodeStateStatus {
    /// The discovered PFs and their VFs, the same shape as `smartnicctl discover -o json` (`nics`).
    #[serde(default)]
    pub nics: Vec<Nic>,
    /// Result of the last apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_status: Option<SyncStatus>,
    /// Error of the last failed apply, naming the PF/VF and the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_error: Option<String>,
    /// `metadata.generation` of the spec last applied successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_generation: Option<i64>,
    /// `Synced` and `Draining` conditions, each with `observedGeneration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = crate::schema::conditions_list_map)]
    pub conditions: Vec<Condition>,
    /// This node's Geneve tunnel endpoint (an address of its uplink); the other nodes build
    /// their tunnel ports to it. Unset: the node takes no part in the overlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_endpoint: Option<TunnelEndpoint>,
}

/// A node's overlay tunnel endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TunnelEndpoint {
    /// The endpoint IP address (IPv4 or IPv6).
    pub ip: String,
    /// The uplink interface that carries it.
    pub interface: String,
}
