//! The network configuration of the `smartnic` CNI plugin, as the operator writes it into a
//! NetworkAttachmentDefinition and the plugin reads it from stdin.
//!
//! Key names are camelCase and equal to the `NicNetwork.spec` field names (`vlanQoS`, `spoofChk`,
//! `linkState`, `minTxRate`, ...). Booleans are JSON booleans, not `"on"`/`"off"`. Unset options are
//! omitted and mean "leave the device as it is". The runtime adds its own keys (`deviceID`,
//! `runtimeConfig`, `prevResult`, ...) next to these; the plugin reads those separately.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::link::{
    GeneveOptions, IpvlanMode, MacvlanMode, NetworkMode, PluginLogLevel, VfLinkState, VlanProto,
    VlanRange,
};

/// The `type` of our plugin in a CNI configuration.
pub const PLUGIN_TYPE: &str = "smartnic";
/// The CNI spec version the operator writes.
pub const CNI_VERSION: &str = "1.1.0";

/// One network configuration for the `smartnic` plugin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmartnicNetConf {
    /// CNI spec version ([`CNI_VERSION`]).
    pub cni_version: String,
    /// Network name (the NicNetwork / NAD name).
    pub name: String,
    /// Plugin type, always [`PLUGIN_TYPE`].
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// How the pod interface is built.
    pub mode: NetworkMode,
    /// Full device-plugin resource name (`smartnic.io/cx6_vf`), when the network uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// VLAN id (sriov: VF VLAN; ovs: access tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// VLAN priority (sriov).
    #[serde(default, rename = "vlanQoS", skip_serializing_if = "Option::is_none")]
    pub vlan_qos: Option<u8>,
    /// VLAN protocol (sriov).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_proto: Option<VlanProto>,
    /// VF spoof checking (sriov).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoof_chk: Option<bool>,
    /// VF trust (sriov).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<bool>,
    /// VF link state (sriov).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_state: Option<VfLinkState>,
    /// Minimum transmit rate in Mb/s (sriov).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tx_rate: Option<u32>,
    /// Maximum transmit rate in Mb/s (sriov).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tx_rate: Option<u32>,
    /// macvlan mode (macvlan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan_mode: Option<MacvlanMode>,
    /// The allowed source MACs of a `source` macvlan (macvlan).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub macvlan_source_macs: Vec<String>,
    /// ipvlan mode (ipvlan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvlan_mode: Option<IpvlanMode>,
    /// Host master interface (macvlan/ipvlan without a resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Pod interface MTU (macvlan/ipvlan/ovs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// OVS bridge (ovs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// OVS trunk VLANs (ovs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunk: Vec<VlanRange>,
    /// Geneve tunnel (ovs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geneve: Option<GeneveOptions>,
    /// CNI capabilities (`ips`, `mac`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capabilities: BTreeMap<String, bool>,
    /// IPAM configuration, passed through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<serde_json::Value>,
    /// Log level of the plugin; unset means `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<PluginLogLevel>,
    /// Absolute path of a file on the node the plugin appends its log lines to, besides stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
}

/// The file whose presence tells the CNI plugin that this node's VFs are configured: the node
/// agent writes it (the node's device-plugin configuration) once the planned VFs exist, and
/// removes it while it reconfigures them. `STATUS` answers "not available" (code 50) for VF
/// networks while it is absent.
pub const NODE_READY_FILE: &str = crate::device_plugin::DEFAULT_CONFIG_FILE;
