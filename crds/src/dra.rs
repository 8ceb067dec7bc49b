//! Dynamic Resource Allocation (`resource.k8s.io/v1`): the names and node-local files that the
//! DRA driver (`smartnic-dra`), the operator (DeviceClasses), the device plugin and the CNI
//! plugin share.
//!
//! ```text
//!   NicPolicy.spec.allocation ─► applied device-plugin file (ResourcePool.allocation)
//!        ├─ devicePlugin/both ─► smartnic-device-plugin advertises `<prefix>/<resource>`
//!        └─ dra/both ──────────► smartnic-dra publishes ResourceSlices (driver `smartnic.io`)
//!   ResourceClaim allocated by the scheduler ─► kubelet NodePrepareResources ─► smartnic-dra
//!        writes <PREPARED_DIR>/<claim uid>.json and a CDI spec ─► CNI ADD finds the VF by the
//!        pod's UID (or Multus passes the CDI device's name as `deviceID`)
//! ```
//!
//! A device is one VF (or one whole PF of a `wholePf` pool) of one node. Its name in the
//! ResourceSlice is [`device_name`] of its PCI address; its CDI device is
//! `smartnic.io/vf=<PCI address>`, so that Multus, which passes the part after `=` as the
//! delegate's `deviceID`, hands the CNI plugin the same PCI address as for a device-plugin VF.

use serde::{Deserialize, Serialize};

/// The DRA driver's name: `ResourceSlice.spec.driver`, the `driver` of allocation results, and
/// the domain of the attributes below.
pub const DRIVER_NAME: &str = "smartnic.io";

/// CDI kind of the prepared devices (`<vendor>/<class>`); a device's CDI name is
/// `smartnic.io/vf=<PCI address>`.
pub const CDI_KIND: &str = "smartnic.io/vf";

/// Directory of the prepared-claim records ([`PreparedClaim`], one `<claim uid>.json` each,
/// written atomically by the DRA driver, read by the CNI plugin).
pub const PREPARED_DIR: &str = "/var/lib/smartnic/dra/claims";

/// Attribute names published for every device (unqualified: the API server qualifies them
/// with [`DRIVER_NAME`], so a CEL selector reads `device.attributes["smartnic.io"].pfName`).
pub mod attr {
    /// PCI vendor id of the device, four hex digits (`8086`). String.
    pub const VENDOR: &str = "vendor";
    /// PCI device id of the device itself (the VF's id for a VF), four hex digits. String.
    pub const DEVICE: &str = "device";
    /// The device's PCI address (`0000:03:00.2`). String.
    pub const PCI_ADDRESS: &str = "pciAddress";
    /// Netdev name of the PF (`ens4f0np0`). String.
    pub const PF_NAME: &str = "pfName";
    /// PCI address of the PF. String.
    pub const PF_PCI_ADDRESS: &str = "pfPciAddress";
    /// NUMA node of the device; absent when the platform reports none. Int.
    pub const NUMA_NODE: &str = "numaNode";
    /// Link layer: `ether` or `infiniband`. String.
    pub const LINK_TYPE: &str = "linkType";
    /// Eswitch mode of the PF: `legacy` or `switchdev`. String.
    pub const ESWITCH_MODE: &str = "eswitchMode";
    /// The device has an RDMA device. Bool.
    pub const RDMA: &str = "rdma";
    /// VF index on its PF; absent for a whole PF. Int.
    pub const VF_INDEX: &str = "vfIndex";
    /// The pool's resource name without prefix (`cx6_vf`). String.
    pub const RESOURCE_NAME: &str = "resourceName";
    /// Driver the device is bound to: `netdevice` or `vfio-pci` (the pool's device type). String.
    pub const DEVICE_TYPE: &str = "deviceType";
    /// The standard attribute for PCIe topology alignment (qualified, Kubernetes' own domain):
    /// the PCI root the device sits under, `pci<domain>:<bus>` (`pci0000:00`).
    pub const PCIE_ROOT: &str = "resource.kubernetes.io/pcieRoot";
    /// Capacity name: the PF's link speed in Mbit/s, the most a VF can be given as `maxTxRate`.
    pub const MAX_RATE: &str = "maxRate";
}

/// Which kubelet interface offers a pool's devices (`NicPolicy.spec.allocation`, carried into the
/// applied device-plugin file per pool).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum Allocation {
    /// The device plugin: pods request `<prefix>/<resourceName>` in their limits.
    #[default]
    DevicePlugin,
    /// DRA only: pods ask by ResourceClaim; the device plugin does not advertise the pool.
    Dra,
    /// Both, for a migration: each device is offered through both interfaces, and whichever
    /// takes it first holds it. The DRA driver leaves the devices the kubelet's device-plugin
    /// checkpoint assigns to containers out of its ResourceSlices, and the device plugin reports
    /// the devices of prepared claims unhealthy; each follows the other's files within about a
    /// second. In that window the scheduler can allocate a claim a device the device plugin has
    /// just handed out: NodePrepareResources then refuses the claim, naming the device, and its
    /// pod stays pending until it is deleted (never two pods on one VF).
    Both,
}

impl Allocation {
    /// The device plugin advertises the pool.
    pub fn device_plugin(self) -> bool {
        matches!(self, Self::DevicePlugin | Self::Both)
    }

    /// The DRA driver publishes the pool.
    pub fn dra(self) -> bool {
        matches!(self, Self::Dra | Self::Both)
    }

    /// True for the default, so that files written before the field existed stay unchanged.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The ResourceSlice device name of the device at `pci_address`: a DNS label made from the
/// address (`0000:03:00.2` → `pci-0000-03-00-2`). `None` for anything that is not a PCI
/// address (`DDDD:BB:DD.F`, hex digits).
pub fn device_name(pci_address: &str) -> Option<String> {
    if !is_pci_address(pci_address) {
        return None;
    }
    Some(format!(
        "pci-{}",
        pci_address.to_ascii_lowercase().replace([':', '.'], "-")
    ))
}

/// A PCI address `DDDD:BB:DD.F` (domain, bus, device 00-1f, function 0-7), hex digits: the one
/// check of this syntax, for the planner's validation as for the node-side programs.
pub fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 12 || b[4] != b':' || b[7] != b':' || b[10] != b'.' {
        return false;
    }
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    if !(hex(0..4) && hex(5..7) && hex(8..10)) {
        return false;
    }
    let dev = u8::from_str_radix(&s[8..10], 16).unwrap_or(0xff);
    dev <= 0x1f && (b'0'..=b'7').contains(&b[11])
}

/// The CDI device name of the device at `pci_address` (`smartnic.io/vf=0000:03:00.2`).
pub fn cdi_device(pci_address: &str) -> String {
    format!("{CDI_KIND}={pci_address}")
}

/// What the DRA driver prepared for one ResourceClaim on this node: the record the CNI plugin
/// reads to find a pod's claimed VF. Written at `<PREPARED_DIR>/<claim_uid>.json` before
/// NodePrepareResources answers, removed after NodeUnprepareResources has released the devices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreparedClaim {
    /// The claim's UID (also the file's name).
    pub claim_uid: String,
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub name: String,
    /// UIDs of the pods the claim is reserved for (`status.reservedFor`).
    #[serde(default)]
    pub pod_uids: Vec<String>,
    /// The devices of this driver allocated to the claim.
    #[serde(default)]
    pub devices: Vec<PreparedDevice>,
}

/// One prepared device of a claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreparedDevice {
    /// The claim's request the device was allocated for.
    pub request: String,
    /// The ResourceSlice pool (the node's name).
    pub pool: String,
    /// The device's name in the slice ([`device_name`]).
    pub device: String,
    /// The device's PCI address.
    pub pci_address: String,
    /// The pool's resource name without prefix, which a NicNetwork names.
    pub resource_name: String,
    /// The CDI device name handed to the runtime ([`cdi_device`]).
    pub cdi_device: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_dns_labels_of_pci_addresses() {
        assert_eq!(
            device_name("0000:03:00.2").as_deref(),
            Some("pci-0000-03-00-2")
        );
        assert_eq!(
            device_name("0000:AF:01.7").as_deref(),
            Some("pci-0000-af-01-7")
        );
        for bad in [
            "",
            "0000:03:00",
            "../../etc",
            "0000:03:00.2x",
            "g000:03:00.2",
        ] {
            assert_eq!(device_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn allocation_defaults_to_the_device_plugin() {
        let a: Allocation = serde_json::from_str("\"both\"").expect("both");
        assert!(a.device_plugin() && a.dra());
        assert!(Allocation::default().device_plugin() && !Allocation::default().dra());
        assert!(Allocation::Dra.dra() && !Allocation::Dra.device_plugin());
        assert_eq!(cdi_device("0000:03:00.2"), "smartnic.io/vf=0000:03:00.2");
    }
}
