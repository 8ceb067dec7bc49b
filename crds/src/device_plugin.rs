//! Configuration of the `smartnic` device plugin. The operator renders it per node into that
//! node's `NicNodeState.spec.devicePlugin` ([`crate::NicNodeStateSpec::device_plugin`]); the
//! node agent hands the **applied** part of it (only the pools whose VFs are in place) to the
//! plugin through a file on the host (`/var/lib/smartnic/device-plugin.json` by default, written
//! atomically), and rewrites that file without a PF's pools before it destroys or rebinds the
//! PF's VFs. The plugin reads only that file: it never advertises VFs that do not exist yet, and
//! a change on one node wakes only that node's plugin.
//!
//! Unlike the upstream SR-IOV device plugin, selectors name VFs by their PF's PCI address and VF
//! index, which do not change when netdevs are renamed (for example when a PF enters switchdev).

use serde::{Deserialize, Serialize};

use crate::vf::{VfDeviceType, VfIndexRange};

/// Where the node agent writes the applied configuration and the device plugin reads it (the
/// default of both; the CNI plugin's STATUS looks at the same file).
pub const DEFAULT_CONFIG_FILE: &str = "/var/lib/smartnic/device-plugin.json";

/// The whole configuration of one node's device plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DevicePluginConfig {
    /// Resource pools, sorted by resource name; each device belongs to at most one pool. Empty
    /// when no VF group is planned on the node.
    #[serde(default)]
    pub resource_list: Vec<ResourcePool>,
    /// The node's `rdmaMode` is `exclusive` (its `NicNodeState.spec.rdmaMode`): the CNI plugin
    /// moves each VF's RDMA device into the pod with the VF and back on DEL, and refuses such
    /// an ADD while the kernel's RDMA subsystem is not in exclusive mode. Written into the
    /// node's file by the agent; not part of the rendered spec.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[cfg_attr(feature = "k8s", schemars(skip))]
    pub rdma_exclusive: bool,
}

/// One extended resource (`<resourcePrefix>/<resourceName>`) and the devices that back it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResourcePool {
    /// Resource name without prefix (`cx6_vf`).
    pub resource_name: String,
    /// Resource prefix (`smartnic.io`).
    pub resource_prefix: String,
    /// Driver the pool's VFs are bound to; decides what Allocate returns (netdev vs /dev/vfio).
    pub device_type: VfDeviceType,
    /// Mount the VFs' RDMA devices (/dev/infiniband/*) into the pod.
    #[serde(default)]
    pub is_rdma: bool,
    /// Also mount `/dev/vhost-net` and `/dev/net/tun` into the pod (device specs with `rw`
    /// permissions), once per container whatever the number of devices allocated.
    #[serde(default)]
    pub need_vhost_net: bool,
    /// Do not send NUMA topology hints for these devices.
    #[serde(default)]
    pub exclude_topology: bool,
    /// Which kubelet interface offers the pool: the device plugin (the default), DRA
    /// (`smartnic-dra` publishes it in ResourceSlices), or both.
    #[serde(default, skip_serializing_if = "crate::dra::Allocation::is_default")]
    pub allocation: crate::dra::Allocation,
    /// A device belongs to the pool when it matches ANY selector.
    pub selectors: Vec<DeviceSelector>,
}

/// Matches devices; every non-empty field must match (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceSelector {
    /// VFs of these PFs (by PF PCI address, optionally VF index ranges).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pfs: Vec<PfVfs>,
    /// Exact device PCI addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pci_addresses: Vec<String>,
    /// PCI vendor ids (`15b3`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vendors: Vec<String>,
    /// PCI device ids of the devices themselves (the VF device id for VFs, e.g. `101e`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Names of the drivers the devices are bound to (`mlx5_core`, `igb`, `vfio-pci`); a device
    /// bound to no driver matches none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drivers: Vec<String>,
    /// Link layers of the devices (`ether`, `infiniband`), as sriov-network-device-plugin's
    /// `linkTypes`: the netdev's `type` (1 or 32), or for a function without a netdev (vfio-pci)
    /// its PCI class (`0x0200` Ethernet, `0x0207` InfiniBand).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_types: Vec<DeviceLinkType>,
}

/// The link layer a device-plugin selector picks.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum DeviceLinkType {
    /// Ethernet.
    #[default]
    #[serde(rename = "ether")]
    Ether,
    /// InfiniBand.
    #[serde(rename = "infiniband")]
    Infiniband,
}

impl From<crate::inventory::LinkType> for DeviceLinkType {
    fn from(l: crate::inventory::LinkType) -> Self {
        match l {
            crate::inventory::LinkType::Eth => Self::Ether,
            crate::inventory::LinkType::Ib => Self::Infiniband,
        }
    }
}

/// VFs of one PF.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PfVfs {
    /// PCI address of the PF.
    pub pci_address: String,
    /// PF netdev name when planned (informational; the address is authoritative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// VF indices; empty means every VF of the PF.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vfs: Vec<VfIndexRange>,
}
