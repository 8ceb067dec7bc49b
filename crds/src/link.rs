//! Link-level options that `NicNetwork.spec` and the CNI network configuration share: how the pod
//! interface is built and the VF, macvlan, ipvlan and tunnel settings. Kubernetes-free, so that the
//! CNI plugin reads them without linking a Kubernetes client; the schema derive comes with the `k8s`
//! feature.

use serde::{Deserialize, Serialize};

/// How the pod interface is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum NetworkMode {
    /// The VF netdev moves into the pod (or, for vfio-pci VFs, only its VF settings are applied).
    #[default]
    Sriov,
    /// A macvlan child of `master` or of the allocated VF.
    Macvlan,
    /// An ipvlan child of `master` or of the allocated VF.
    Ipvlan,
    /// The VF moves into the pod; its representor is plugged into an OVS bridge (hardware offload).
    Ovs,
    /// An InfiniBand VF: its IPoIB netdev moves into the pod, with the GUID from the pod's
    /// runtime config (`infinibandGUID`) or the VF's own (what ib-sriov-cni does).
    Ib,
}

impl NetworkMode {
    /// The mode's name as written in the CRD and the CNI config.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sriov => "sriov",
            Self::Macvlan => "macvlan",
            Self::Ipvlan => "ipvlan",
            Self::Ovs => "ovs",
            Self::Ib => "ib",
        }
    }
}

/// VLAN protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum VlanProto {
    /// Customer VLAN (0x8100).
    #[default]
    #[serde(rename = "802.1q")]
    Dot1Q,
    /// Service VLAN, QinQ (0x88a8).
    #[serde(rename = "802.1ad")]
    Dot1Ad,
}

/// Administrative link state of a VF (`ip link set $PF vf N state ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum VfLinkState {
    /// Follow the PF's link.
    Auto,
    /// Always up.
    Enable,
    /// Always down.
    Disable,
}

/// macvlan mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum MacvlanMode {
    /// Children of one master talk to each other directly.
    #[default]
    Bridge,
    /// Children cannot talk to each other.
    Private,
    /// All traffic goes out to the external switch.
    Vepa,
    /// One child takes over the master (one pod per master).
    Passthru,
    /// The child receives only frames whose source MAC is listed (`macvlanSourceMacs`): traffic
    /// from known upstream devices, such as radio units in a RAN fronthaul.
    Source,
}

/// ipvlan mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum IpvlanMode {
    /// Layer 2 switching on the master.
    #[default]
    L2,
    /// Layer 3 routing on the master.
    L3,
    /// Layer 3 with netfilter/conntrack on the master.
    L3s,
}

/// An inclusive VLAN id range for an OVS trunk port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "k8s", schemars(transform = crate::rules::vlan_range_rules))]
pub struct VlanRange {
    /// First VLAN id (1-4094).
    #[cfg_attr(feature = "k8s", schemars(range(min = 1, max = crate::MAX_VLAN)))]
    pub min_id: u16,
    /// Last VLAN id (min_id-4094).
    #[cfg_attr(feature = "k8s", schemars(range(min = 1, max = crate::MAX_VLAN)))]
    pub max_id: u16,
}

/// The network's Geneve overlay between nodes (offloaded when the NIC supports Geneve encap).
/// The tunnel peers are not configured here: every node publishes its endpoint in
/// `NicNodeState.status.tunnelEndpoint` and learns the others from theirs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct GeneveOptions {
    /// The network's virtual network identifier, 0-16777215; one VNI per network.
    #[cfg_attr(feature = "k8s", schemars(range(max = crate::MAX_VNI)))]
    pub vni: u32,
    /// UDP destination port; default 6081.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "k8s", schemars(range(min = 1)))]
    pub dst_port: Option<u16>,
}

/// How much the CNI plugin logs (to stderr, which the runtime collects, and to `logFile` when
/// set). Default `info`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "k8s", schemars(transform = crate::schema::drop_description))]
pub enum PluginLogLevel {
    /// Only failures of the command.
    Error,
    /// Failures and what was left behind or skipped.
    Warning,
    /// One line per ADD/DEL/CHECK with the device and the settings applied.
    #[default]
    Info,
    /// Every netlink and sysfs step.
    Debug,
}
