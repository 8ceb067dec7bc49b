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
    GeneveOptions, IpvlanMode, MacvlanMode, NetworkMode, PluginLogLevel, VfLinkState, VlanProto,
    VlanRange,
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
#[schemars(transform = crate::rules::network_spec_rules)]
pub struct NicNetworkSpec {
    /// How the pod interface is built: `sriov` (the VF itself moves into the pod), `macvlan` or
    /// `ipvlan` (a child of `master` or of the allocated VF), `ovs` (the VF moves into the pod and
    /// its representor joins an OVS bridge; needs a switchdev policy), `ib` (an InfiniBand VF's
    /// IPoIB netdev moves into the pod with the GUID from the pod's runtime config,
    /// `infinibandGUID`, or the VF's own; needs a `linkType: ib` policy). Default `sriov`.
    #[serde(default)]
    pub mode: NetworkMode,
    /// Device-plugin resource name without prefix, as in `NicPolicy.spec.resourceName`. Required
    /// for `sriov` and `ovs`; for `macvlan`/`ipvlan` give either this (the allocated VF becomes
    /// the master) or `master`. The policies offering the resource may limit which namespaces'
    /// networks use it (`NicPolicy.spec.networkNamespaces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = crate::MAX_RESOURCE_NAME_LEN), pattern(crate::RESOURCE_NAME_PATTERN))]
    pub resource_name: Option<String>,
    /// VLAN id 0-4094 (0 = untagged). `sriov`: programmed on the VF through the PF. `ovs`: access
    /// tag on the representor port. Not allowed for `macvlan`/`ipvlan`, nor with `ovs.trunk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = crate::MAX_VLAN))]
    pub vlan: Option<u16>,
    /// VLAN priority (PCP) 0-7; `sriov` only; needs a non-zero `vlan` when non-zero.
    #[serde(default, rename = "vlanQoS", skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = crate::MAX_VLAN_QOS))]
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
    /// VF link state `auto`, `enable` or `disable`; `sriov` and `ib`; not every driver
    /// supports it (igb does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_state: Option<VfLinkState>,
    /// InfiniBand partition key (P_Key), `ib` only: 16 bits, the low 15 the partition (not 0),
    /// the top bit the membership: set (`0x8001`) asks for full membership, clear (`0x0001`)
    /// accepts limited membership too. The subnet manager owns the VF's P_Key table; the CNI
    /// plugin checks that the VF is in the partition with that membership and refuses the pod
    /// otherwise. Unset: no check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = crate::MAX_PKEY))]
    pub pkey: Option<u16>,
    /// Minimum transmit rate in Mb/s (0 = none); `sriov` only; must not exceed `maxTxRate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tx_rate: Option<u32>,
    /// Maximum transmit rate in Mb/s (0 = no limit); `sriov` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tx_rate: Option<u32>,
    /// macvlan mode `bridge` (default), `private`, `vepa`, `passthru` or `source` (with
    /// `macvlanSourceMacs`); `macvlan` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan_mode: Option<MacvlanMode>,
    /// The source MACs a `macvlanMode: source` child receives frames from (at least one);
    /// `source` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(pattern(crate::MAC_PATTERN)))]
    pub macvlan_source_macs: Vec<String>,
    /// ipvlan mode `l2` (default), `l3` or `l3s`; `ipvlan` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvlan_mode: Option<IpvlanMode>,
    /// Host interface the macvlan/ipvlan child is created on; `macvlan`/`ipvlan` only, exclusive
    /// with `resourceName`. Only an interface the administrator lists in `NicOperatorConfig`
    /// `spec.tenantAllowList.masters` for this namespace (letters, digits, `_`, `.`, `-`, `@`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::cni::HOST_IFNAME_PATTERN))]
    pub master: Option<String>,
    /// MTU of the pod interface for `macvlan`, `ipvlan` and `ovs` (at most the master's MTU). For
    /// `sriov` the VF MTU comes from the NicPolicy and this field is not allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = crate::MIN_MTU, max = crate::MAX_MTU))]
    pub mtu: Option<u32>,
    /// Options for mode `ovs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovs: Option<OvsOptions>,
    /// IPAM configuration passed through unchanged to the CNI plugin, e.g.
    /// `{"type": "host-local", "subnet": "10.56.0.0/24"}`. Must be an object with a `type`.
    /// Unset: no IP addresses (L2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "plugin_object")]
    pub ipam: Option<serde_json::Value>,
    /// CNI capabilities the plugin accepts from the runtime, e.g. `{"ips": true, "mac": true}`.
    /// Keys are capability names (letters and digits).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub capabilities: BTreeMap<String, bool>,
    /// Further CNI plugins chained after ours, in order, e.g.
    /// `[{"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}},
    /// {"type": "bandwidth", "ingressRate": 1000000000, "ingressBurst": 1000000}]`. Each is an
    /// object with a `type`, passed through unchanged. When set, the NetworkAttachmentDefinition
    /// holds a conflist: `plugins` is our plugin first, then these. At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "plugin_list")]
    pub meta_plugins: Vec<serde_json::Value>,
    /// Log level of the CNI plugin for this network: `error`, `warning`, `info` (default) or
    /// `debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<PluginLogLevel>,
    /// Name of a file in the CNI plugin's log directory on the node (`/var/log/smartnic/cni`)
    /// the plugin appends its log lines to, besides stderr: a plain file name, not a path.
    /// Unset: stderr only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), pattern(crate::cni::LOG_FILE_NAME_PATTERN))]
    pub log_file: Option<String>,
}

/// Schema of a CNI plugin or IPAM object: an object with a non-empty `type`, every other key kept
/// as written (no pruning).
fn plugin_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "minLength": 1, "maxLength": 253}
        },
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Schema of `metaPlugins`: at most 16 plugin objects.
fn plugin_list(generator: &mut SchemaGenerator) -> Schema {
    let item = plugin_object(generator);
    json_schema!({
        "type": "array",
        "maxItems": 16,
        "items": item
    })
}

/// Options for mode `ovs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OvsOptions {
    /// OVS bridge the representor joins. Unset: the bridge whose uplink is the VF's PF. Only a
    /// bridge the administrator lists in `NicOperatorConfig` `spec.tenantAllowList.bridges` for
    /// this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::cni::HOST_IFNAME_PATTERN))]
    pub bridge: Option<String>,
    /// Trunk VLANs of the representor port (exclusive with `vlan`). At most 64 ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
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
