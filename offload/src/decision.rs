//! The attachment decision: a pure function of probed capabilities → a VF representor or a veth,
//! with the reason. The CNI logs it and returns it in its result; the offload report repeats it.

use serde::{Deserialize, Serialize};

/// What the node can offer one attachment, as probed by the caller (sysfs, devlink, ethtool,
/// OVSDB); no I/O here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// The VF the device plugin allocated to this attachment (`deviceID` from Multus), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf: Option<VfProbe>,
    /// Number of PFs on the node in switchdev mode (0: no offload-capable device).
    pub switchdev_pfs: u32,
    /// `Open_vSwitch.other_config:hw-offload` is `true`.
    pub ovs_hw_offload: bool,
    /// The bridge's datapath: `system` (kernel, can offload to tc) or `netdev` (userspace).
    pub datapath: Datapath,
    /// The network asks for a software attachment (no VF even when one is available).
    pub network_wants_software: bool,
}

/// The allocated VF, probed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VfProbe {
    /// VF PCI address.
    pub pci_address: String,
    /// Its PF's netdev.
    pub pf: String,
    /// The PF's eswitch is in switchdev mode.
    pub switchdev: bool,
    /// The VF's representor netdev (switchdev only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representor: Option<String>,
    /// `hw-tc-offload` is on for the PF (ethtool).
    pub hw_tc_offload: bool,
}

/// The bridge's datapath type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datapath {
    /// openvswitch.ko; flows can go to tc (and from there to the NIC).
    #[default]
    System,
    /// The userspace datapath; no tc offload.
    Netdev,
}

/// How the attachment is built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Attachment {
    /// The VF moves into the pod; its representor joins the bridge.
    Representor {
        /// VF PCI address.
        vf: String,
        /// Representor netdev.
        representor: String,
    },
    /// A veth pair: one end in the pod, the other on the bridge.
    Veth,
}

/// Why the attachment is (or is not) expected in hardware. The `Display` text is what reports
/// and logs print.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Reason {
    /// A switchdev VF with everything needed for offload.
    #[error("switchdev VF {vf} with representor {representor}")]
    SwitchdevVf {
        /// VF.
        vf: String,
        /// Representor.
        representor: String,
    },
    /// The network asked for software.
    #[error("the network asks for a software attachment")]
    NetworkWantsSoftware,
    /// No switchdev PF on the node.
    #[error("no offload-capable device")]
    NoOffloadCapableDevice,
    /// Switchdev PFs exist but no VF was allocated to this pod.
    #[error("no VF allocated (the switchdev pool is exhausted or the pod requested none)")]
    PoolExhausted,
    /// The allocated VF's PF is in legacy mode.
    #[error("device {pf} is not in switchdev mode (VF {vf} has no representor)")]
    NotSwitchdev {
        /// PF.
        pf: String,
        /// VF.
        vf: String,
    },
    /// Switchdev, but the representor could not be found.
    #[error("no representor found for VF {vf} on {pf}")]
    NoRepresentor {
        /// PF.
        pf: String,
        /// VF.
        vf: String,
    },
    /// Representor attached, but flows will stay in software.
    #[error("{0}")]
    SoftwareOnly(SoftwareCause),
}

/// Why a representor attachment still runs in software.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
pub enum SoftwareCause {
    /// `other_config:hw-offload` is not true.
    #[error("OVS hw-offload is off (other_config:hw-offload=true and a restart of ovs-vswitchd)")]
    OvsHwOffloadOff,
    /// The bridge uses the userspace datapath.
    #[error("the bridge uses the userspace datapath (netdev): no tc offload")]
    UserspaceDatapath,
    /// `hw-tc-offload` is off on the PF.
    #[error("hw-tc-offload is off on {0}")]
    HwTcOffloadOff(String),
}

/// The decision and its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// How to attach.
    pub attachment: Attachment,
    /// Whether the flows can be offloaded to hardware at all (still to be proven by the
    /// evidence).
    pub offload_possible: bool,
    /// Why.
    pub reason: Reason,
}

/// Decides how to attach one pod interface.
pub fn decide(c: &Capabilities) -> Decision {
    let veth = |reason| Decision {
        attachment: Attachment::Veth,
        offload_possible: false,
        reason,
    };
    if c.network_wants_software {
        return veth(Reason::NetworkWantsSoftware);
    }
    let Some(vf) = &c.vf else {
        return veth(if c.switchdev_pfs == 0 {
            Reason::NoOffloadCapableDevice
        } else {
            Reason::PoolExhausted
        });
    };
    if !vf.switchdev {
        return veth(Reason::NotSwitchdev {
            pf: vf.pf.clone(),
            vf: vf.pci_address.clone(),
        });
    }
    let Some(rep) = &vf.representor else {
        return veth(Reason::NoRepresentor {
            pf: vf.pf.clone(),
            vf: vf.pci_address.clone(),
        });
    };
    let attachment = Attachment::Representor {
        vf: vf.pci_address.clone(),
        representor: rep.clone(),
    };
    let software = if c.datapath == Datapath::Netdev {
        Some(SoftwareCause::UserspaceDatapath)
    } else if !c.ovs_hw_offload {
        Some(SoftwareCause::OvsHwOffloadOff)
    } else if !vf.hw_tc_offload {
        Some(SoftwareCause::HwTcOffloadOff(vf.pf.clone()))
    } else {
        None
    };
    match software {
        Some(cause) => Decision {
            attachment,
            offload_possible: false,
            reason: Reason::SoftwareOnly(cause),
        },
        None => Decision {
            attachment,
            offload_possible: true,
            reason: Reason::SwitchdevVf {
                vf: vf.pci_address.clone(),
                representor: rep.clone(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vf(switchdev: bool, rep: bool, tc: bool) -> VfProbe {
        VfProbe {
            pci_address: "0000:03:00.2".into(),
            pf: "enp3s0f0".into(),
            switchdev,
            representor: rep.then(|| "enp3s0f0_0".into()),
            hw_tc_offload: tc,
        }
    }

    fn caps(vf: Option<VfProbe>, pfs: u32) -> Capabilities {
        Capabilities {
            vf,
            switchdev_pfs: pfs,
            ovs_hw_offload: true,
            datapath: Datapath::System,
            network_wants_software: false,
        }
    }

    #[test]
    fn a_switchdev_vf_with_everything_goes_in_through_its_representor() {
        let d = decide(&caps(Some(vf(true, true, true)), 1));
        assert!(d.offload_possible);
        assert_eq!(
            d.attachment,
            Attachment::Representor {
                vf: "0000:03:00.2".into(),
                representor: "enp3s0f0_0".into()
            }
        );
    }

    #[test]
    fn every_fallback_is_a_veth_with_its_reason() {
        let cases = [
            (caps(None, 0), "no offload-capable device"),
            (caps(None, 2), "pool is exhausted"),
            (
                caps(Some(vf(false, false, true)), 1),
                "not in switchdev mode",
            ),
            (caps(Some(vf(true, false, true)), 1), "no representor"),
            (
                Capabilities {
                    network_wants_software: true,
                    ..caps(Some(vf(true, true, true)), 1)
                },
                "asks for a software",
            ),
        ];
        for (c, want) in cases {
            let d = decide(&c);
            assert_eq!(d.attachment, Attachment::Veth, "{c:?}");
            assert!(!d.offload_possible);
            assert!(
                d.reason.to_string().contains(want),
                "{} !~ {want}",
                d.reason
            );
        }
    }

    #[test]
    fn a_representor_without_offload_says_what_keeps_it_in_software() {
        let mut c = caps(Some(vf(true, true, false)), 1);
        assert!(
            decide(&c)
                .reason
                .to_string()
                .contains("hw-tc-offload is off on enp3s0f0")
        );
        c.ovs_hw_offload = false;
        assert!(decide(&c).reason.to_string().contains("hw-offload is off"));
        c.datapath = Datapath::Netdev;
        let d = decide(&c);
        assert!(matches!(d.attachment, Attachment::Representor { .. }));
        assert!(d.reason.to_string().contains("userspace datapath"));
    }
}
