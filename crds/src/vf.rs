//! VF index ranges and VF driver kinds, shared by the node state, the device-plugin configuration
//! and the planners. Kubernetes-free; the schema derive comes with the `k8s` feature.

use serde::{Deserialize, Serialize};

/// An inclusive range of VF indices (`first..=last`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct VfIndexRange {
    /// First VF index.
    pub first: u32,
    /// Last VF index (inclusive, >= first).
    pub last: u32,
}

/// Driver the VFs are bound to.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum VfDeviceType {
    /// The vendor's kernel VF driver (mlx5_core, iavf, igbvf); the pod gets a netdev.
    #[default]
    #[serde(rename = "netdevice")]
    Netdevice,
    /// `vfio-pci`; the pod gets `/dev/vfio/<group>` (DPDK, VMs).
    #[serde(rename = "vfio-pci")]
    VfioPci,
}
