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

pub use crate::link::{
    GeneveOptions, IpvlanMode, MacvlanMode, NetworkMode, VfLinkState, VlanProto, VlanRange,
};

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
