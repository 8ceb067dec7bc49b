//! The discovered NIC inventory of one host.
//!
//! One shape, defined once: `smartnicctl discover -o json` prints it and the node agent reports it as
//! `NicNodeState.status`. Every field is camelCase on the wire. Optional fields are omitted when the host
//! does not expose them (a VF bound to vfio-pci has no netdev, an igb PF has no eswitch), so consumers
//! can tell "unknown" from "zero".

use serde::{Deserialize, Serialize};

use crate::guid::Guid;

/// Everything discovered on one host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct NicInventory {
    /// One entry per physical function (a PCI network function that is not a VF of a visible PF),
    /// sorted by PCI address.
    pub nics: Vec<Nic>,
}

/// Link layer of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum LinkType {
    /// Ethernet (`/sys/class/net/<if>/type` = 1).
    Eth,
    /// InfiniBand (`type` = 32, or an `infiniband/` directory on the PCI function).
    Ib,
}

/// Embedded switch mode of a PF (`devlink dev eswitch show`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum EswitchMode {
    /// VFs are switched by the NIC's legacy L2 switch (VEB); no representors.
    Legacy,
    /// Every VF has a representor netdev on the host; flows are programmed through tc/OVS.
    Switchdev,
}

/// A physical function: one PCI network function and, when SR-IOV capable, its VFs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Nic {
    /// PCI address (`0000:3b:00.0`); for a device that is not on PCI (the kernel's netdevsim
    /// test device) its devlink handle (`netdevsim/netdevsim3`), which never parses as one.
    pub pci_address: String,
    /// Kernel netdev name (`ens1f0`); absent when the function has no netdev (vfio-bound, IB-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// PCI vendor id, four lowercase hex digits without `0x` (`15b3`).
    pub vendor_id: String,
    /// PCI device id, four lowercase hex digits without `0x` (`101d`).
    pub device_id: String,
    /// Vendor name from `pci.ids`, when the database is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_name: Option<String>,
    /// Device name from `pci.ids`, when the database is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Bound kernel driver (`mlx5_core`, `ice`, `igb`); absent when unbound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// NUMA node of the PCI function; absent when the platform reports none (`-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<i32>,
    /// IOMMU group number; absent without an IOMMU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu_group: Option<u32>,
    /// Link layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_type: Option<LinkType>,
    /// Permanent or current MAC address of the netdev (`b8:ce:f6:01:02:03`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU of the netdev.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Operational state of the netdev (`up`, `down`, `unknown`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oper_state: Option<String>,
    /// Link speed in Mb/s; absent when the link is down or the driver reports `-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u32>,
    /// `sriov_totalvfs`: 0 when the function is not SR-IOV capable.
    pub total_vfs: u32,
    /// `sriov_numvfs`: VFs currently enabled.
    pub num_vfs: u32,
    /// Eswitch mode; absent when the device has no eswitch (no devlink instance, no switchdev support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eswitch_mode: Option<EswitchMode>,
    /// `phys_switch_id` of the PF netdev: always set in switchdev mode; mlx5 and ice also report it in legacy mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_id: Option<String>,
    /// `phys_port_name` of the PF netdev (`p0`), when exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// Node GUID of the PF's InfiniBand device (`/sys/class/infiniband/<dev>/node_guid`), on
    /// RDMA-capable functions; the VF GUIDs the planner derives start from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_guid: Option<Guid>,
    /// The enabled VFs, sorted by VF index.
    #[serde(default)]
    pub vfs: Vec<Vf>,
}

/// One SR-IOV virtual function.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Vf {
    /// VF index on its PF (the `N` of `virtfnN`).
    pub vf_id: u32,
    /// PCI address of the VF; empty for a VF without a PCI function (netdevsim).
    pub pci_address: String,
    /// Netdev name; absent when bound to vfio-pci or another userspace driver, or unbound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Bound kernel driver (`mlx5_core`, `iavf`, `igbvf`, `vfio-pci`); absent when unbound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// MAC address of the VF netdev.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Representor netdev of this VF on the host (switchdev only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representor: Option<String>,
    /// PCI device id of the VF (`101e`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// NUMA node of the VF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<i32>,
    /// IOMMU group number of the VF (needed for `/dev/vfio/<group>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu_group: Option<u32>,
    /// MTU of the VF netdev.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// InfiniBand node GUID of the VF as its PF reports it (`IFLA_VF_IB_NODE_GUID`, or mlx5's
    /// `sriov/N/node`); absent on Ethernet and while unset (zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_guid: Option<Guid>,
    /// InfiniBand port GUID of the VF (`IFLA_VF_IB_PORT_GUID`, or `sriov/N/port`); absent on
    /// Ethernet and while unset (zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_guid: Option<Guid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_camel_case_and_omits_unknown_fields() {
        let inv = NicInventory {
            nics: vec![Nic {
                pci_address: "0000:3b:00.0".into(),
                name: Some("ens1f0".into()),
                vendor_id: "15b3".into(),
                device_id: "101d".into(),
                total_vfs: 8,
                num_vfs: 1,
                eswitch_mode: Some(EswitchMode::Switchdev),
                vfs: vec![Vf {
                    vf_id: 0,
                    pci_address: "0000:3b:00.2".into(),
                    driver: Some("vfio-pci".into()),
                    ..Vf::default()
                }],
                ..Nic::default()
            }],
        };
        let v = serde_json::to_value(&inv).unwrap();
        let nic = &v["nics"][0];
        assert_eq!(nic["pciAddress"], "0000:3b:00.0");
        assert_eq!(nic["totalVfs"], 8);
        assert_eq!(nic["eswitchMode"], "switchdev");
        assert!(nic.get("mtu").is_none());
        assert_eq!(nic["vfs"][0]["vfId"], 0);
        assert!(nic["vfs"][0].get("name").is_none());
        let back: NicInventory = serde_json::from_value(v).unwrap();
        assert_eq!(back, inv);
    }
}
