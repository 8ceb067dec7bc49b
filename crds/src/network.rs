//! `NicNetwork`: a pod network on top of the VFs (or PFs) the policies prepared. The operator
//! renders it into a `NetworkAttachmentDefinition` of the same name in the same namespace, owned
//! by the `NicNetwork`, whose CNI config is a [`crate::cni::SmartnicNetConf`].

// clippy reads the repeated `type_ = ...` inside separate `printcolumn(...)` groups of `#[kube]` as
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A pod network served by the `smartnic` CNI plugin. Field names are also the CNI config keys.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "smartnic.io",
    version = "v1alpha1",
    kind = "NicNetwork",
    plural = "nicnetworks",
    shortname = "nicnet",
    category = "smartnic",
    namespaced,
    status = "NicNetworkStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A pod network on smartnic VFs; rendered into a NetworkAttachmentDefinition of the same name in the same namespace.",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Resource", type_ = "string", json_path = ".spec.resourceName"),
    printcolumn(name = "VLAN", type_ = "integer", json_path = ".spec.vlan"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NicNetworkSpec {
    /// How the pod interface is built: `sriov` (the VF itself moves into the pod), `macvlan` or
    /// `ipvlan` (a child of `master` or of the allocated VF), `ovs` (the VF moves into the pod and
    /// its representor joins an OVS bridge; needs a switchdev policy). Default `sriov`.
    #[serde(default)]
    pub mode: NetworkMode,
    /// Device-plugin resource name without prefix, as in `NicPolicy.spec.resourceName`. Required
    /// for `sriov` and `ovs`; for `macvlan`/`ipvlan` give either this (the allocated VF becomes
    /// the master) or `master`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// VLAN id 0-4094 (0 = untagged). `sriov`: programmed on the VF through the PF. `ovs`: access
    /// tag on the representor port. Not allowed for `macvlan`/`ipvlan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// VLAN priority (PCP) 0-7; `sriov` only; needs a non-zero `vlan` when non-zero.
    #[serde(default, rename = "vlanQoS", skip_serializing_if = "Option::is_none")]
    pub vlan_qos: Option<u8>,
    /// VLAN protocol `802.1q` (default) or `802.1ad`; `sriov` only; `802.1ad` needs a non-zero
    /// `vlan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_proto: Option<VlanProto>,
    /// VF MAC spoof checking; `sriov` only. Unset: leave the driver setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoof_chk: Option<bool>,
    /// VF trust (allows promiscuous mode and more MAC filters); `sriov` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<bool>,
    /// VF link state `auto`, `enable` or `disable`; `sriov` only; not every driver supports it
    /// (igb does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_state: Option<VfLinkState>,
    /// Minimum transmit rate in Mb/s (0 = none); `sriov` only; must not exceed `maxTxRate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tx_rate: Option<u32>,
    /// Maximum transmit rate in Mb/s (0 = no limit); `sriov` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tx_rate: Option<u32>,
    /// macvlan mode `bridge` (default), `private`, `vepa` or `passthru`; `macvlan` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan_mode: Option<MacvlanMode>,
    /// ipvlan mode `l2` (default), `l3` or `l3s`; `ipvlan` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvlan_mode: Option<IpvlanMode>,
    /// Host interface the macvlan/ipvlan child is created on; `macvlan`/`ipvlan` only, exclusive
    /// with `resourceName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// MTU of the pod interface for `macvlan`, `ipvlan` and `ovs` (at most the master's MTU). For
    /// `sriov` the VF MTU comes from the NicPolicy and this field is not allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Options for mode `ovs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovs: Option<OvsOptions>,
    /// IPAM configuration passed through unchanged to the CNI plugin, e.g.
    /// `{"type": "host-local", "subnet": "10.56.0.0/24"}`. Must be an object with a `type`.
    /// Unset: no IP addresses (L2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub ipam: Option<serde_json::Value>,
    /// CNI capabilities the plugin accepts from the runtime, e.g. `{"ips": true, "mac": true}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capabilities: BTreeMap<String, bool>,
}

/// Schema of a free-form JSON object (kept as written: no pruning).
fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// How the pod interface is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::schema::drop_description)]
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
}

impl NetworkMode {
    /// The mode's name as written in the CRD and the CNI config.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sriov => "sriov",
            Self::Macvlan => "macvlan",
            Self::Ipvlan => "ipvlan",
            Self::Ovs => "ovs",
        }
    }
}

/// VLAN protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::schema::drop_description)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::schema::drop_description)]
pub enum VfLinkState {
    /// Follow the PF's link.
    Auto,
    /// Always up.
    Enable,
    /// Always down.
    Disable,
}

/// macvlan mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::schema::drop_description)]
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
}

/// ipvlan mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::schema::drop_description)]
pub enum IpvlanMode {
    /// Layer 2 switching on the master.
    #[default]
    L2,
    /// Layer 3 routing on the master.
    L3,
    /// Layer 3 with netfilter/conntrack on the master.
    L3s,
}

/// Options for mode `ovs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OvsOptions {
    /// OVS bridge the representor joins. Unset: the bridge whose uplink is the VF's PF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// Trunk VLANs of the representor port (exclusive with `vlan`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunk: Vec<VlanRange>,
    /// Carry the attachment's traffic in a Geneve tunnel from the bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geneve: Option<GeneveOptions>,
}

/// An inclusive VLAN id range for an OVS trunk port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VlanRange {
    /// First VLAN id (1-4094).
    pub min_id: u16,
    /// Last VLAN id (min_id-4094).
    pub max_id: u16,
}

/// A Geneve tunnel port on the OVS bridge (offloaded when the NIC supports Geneve encap).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneveOptions {
    /// Virtual network identifier, 0-16777215.
    pub vni: u32,
    /// Remote tunnel endpoint IP address (IPv4 or IPv6).
    pub remote_ip: String,
    /// UDP destination port; default 6081.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
}

/// What the operator observed when rendering the network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NicNetworkStatus {
    /// `Valid` and `Ready` (the NAD exists and matches), each with `observedGeneration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = crate::schema::conditions_list_map)]
    pub conditions: Vec<Condition>,
    /// Name of the rendered NetworkAttachmentDefinition (same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_attachment_definition: Option<String>,
}
