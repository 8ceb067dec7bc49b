//! The device-info document of a network device (the Network Plumbing Working Group's
//! device-info-spec, version [`SPEC_VERSION`], type `pci`) and the directories it is exchanged
//! through. Multus reads a delegate's file back after ADD into the pod's
//! `k8s.v1.cni.cncf.io/network-status` `device-info`.
//!
//! Two writers: the device plugin at Allocate, one file per device in [`DP_DIR`], which Multus
//! copies to the CNI file of the attachment before ADD; and the CNI plugin for a VF a pod got
//! by DRA (no device-plugin file exists for it), straight into the CNI file in [`CNI_DIR`].

use serde::{Deserialize, Serialize};

/// The device-info-spec version written.
pub const SPEC_VERSION: &str = "1.1.0";

/// Where the device plugin writes one file per allocated device.
pub const DP_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/dp";

/// Where Multus names the file of one attachment (`runtimeConfig.CNIDeviceInfoFile`).
pub const CNI_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/cni";

/// [`CNI_DIR`] as it is spelled on hosts where `/var/run` is a symbolic link to `/run`.
pub const CNI_DIR_RUN: &str = "/run/k8s.cni.cncf.io/devinfo/cni";

/// The document's `type`: only `pci` is written here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceInfoType {
    /// A PCI function (a VF or a whole PF).
    #[default]
    #[serde(rename = "pci")]
    Pci,
}

/// One device-info document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Always [`DeviceInfoType::Pci`].
    #[serde(rename = "type")]
    pub kind: DeviceInfoType,
    /// The spec version ([`SPEC_VERSION`]).
    pub version: String,
    /// The PCI function.
    pub pci: PciDeviceInfo,
}

/// The `pci` part of a [`DeviceInfo`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDeviceInfo {
    /// The function's address (`0000:3b:02.1`).
    #[serde(rename = "pci-address")]
    pub pci_address: String,
    /// For a VF, its PF's address.
    #[serde(
        rename = "pf-pci-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pf_pci_address: Option<String>,
    /// The function's RDMA device (`mlx5_3`), when it has one.
    #[serde(
        rename = "rdma-device",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rdma_device: Option<String>,
}

impl DeviceInfo {
    /// The document of the PCI function at `pci_address`.
    pub fn pci(
        pci_address: impl Into<String>,
        pf_pci_address: Option<String>,
        rdma_device: Option<String>,
    ) -> Self {
        Self {
            kind: DeviceInfoType::Pci,
            version: SPEC_VERSION.to_owned(),
            pci: PciDeviceInfo {
                pci_address: pci_address.into(),
                pf_pci_address,
                rdma_device,
            },
        }
    }

    /// The document as JSON text.
    pub fn to_json(&self) -> String {
        // A struct of strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vf_document_has_the_spec_keys_and_omits_what_is_unknown() {
        let full = DeviceInfo::pci(
            "0000:3b:02.1",
            Some("0000:3b:00.0".into()),
            Some("mlx5_3".into()),
        );
        assert_eq!(
            full.to_json(),
            r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1","pf-pci-address":"0000:3b:00.0","rdma-device":"mlx5_3"}}"#
        );
        assert_eq!(
            DeviceInfo::pci("0000:3b:02.1", None, None).to_json(),
            r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1"}}"#
        );
        // another writer's keys (vhost-net, representor-device) are read past
        let read: DeviceInfo = serde_json::from_str(
            r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1","vhost-net":"/dev/vhost-net"}}"#,
        )
        .unwrap();
        assert_eq!(read.pci.pci_address, "0000:3b:02.1");
        assert!(
            serde_json::from_str::<DeviceInfo>(r#"{"type":"vdpa","version":"1.1.0"}"#).is_err()
        );
    }
}
