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
    /// VF link state (sriov, ib).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_state: Option<VfLinkState>,
    /// InfiniBand partition key the VF must be a member of (ib): the low 15 bits name the
    /// partition, the top bit (0x8000) asks for full membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkey: Option<u16>,
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
    /// Name of a file in [`PLUGIN_LOG_DIR`] on the node the plugin appends its log lines to,
    /// besides stderr (a plain file name, never a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
}

/// The one directory the plugin writes `logFile` into (created 0700, files 0600, opened
/// without following a symbolic link).
pub const PLUGIN_LOG_DIR: &str = "/var/log/smartnic/cni";

/// The pattern of a `logFile` value: a plain file name.
pub const LOG_FILE_NAME_PATTERN: &str = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$";

/// The pattern of a host interface or bridge name a network may name (`master`, `ovs.bridge`):
/// an interface name without shell or log syntax.
pub const HOST_IFNAME_PATTERN: &str = r"^[A-Za-z0-9_.@-]{1,15}$";

/// The file whose presence tells the CNI plugin that this node's VFs are configured: the node
/// agent writes it (the node's device-plugin configuration) once the planned VFs exist, and
/// removes it while it reconfigures them. `STATUS` answers "not available" (code 50) for VF
/// networks while it is absent.
pub const NODE_READY_FILE: &str = crate::device_plugin::DEFAULT_CONFIG_FILE;

/// Where the node's [`TenantAllowList`] lives: the node agent writes it there (atomically,
/// 0644) from `NicNodeState.spec.cniAllowList`, the operator's copy of
/// `NicOperatorConfig.spec.tenantAllowList`; the plugin reads it on every call. Absent: nothing
/// beyond the defaults is allowed.
pub const NODE_ALLOW_LIST_FILE: &str = "/etc/smartnic/cni-allow-list.json";

/// The IPAM `dataDir` a tenant network may always use: the reference `host-local` layout's.
pub const DEFAULT_IPAM_DATA_DIR: &str = "/var/lib/cni/networks";

/// What the cluster administrator lets tenant network configurations name on the nodes: paths
/// on the host the plugin (running as root) would otherwise read or write for a tenant, and host
/// interfaces a tenant would otherwise attach pods to. Set in `NicOperatorConfig`, never in a
/// network; the operator, its webhook and the plugin on the node all check against it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TenantAllowList {
    /// IPAM `dataDir` values a network may give besides `/var/lib/cni/networks`, the
    /// reference layout's (absolute paths, compared exactly).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "k8s",
        schemars(
            length(max = 32),
            inner(length(max = 1024), pattern(crate::ABSOLUTE_PATH_PATTERN))
        )
    )]
    pub ipam_data_dirs: Vec<String>,
    /// Files a network's IPAM `resolvConf` may name (absolute paths, compared exactly); any
    /// other `resolvConf` is dropped (the result carries no DNS from it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "k8s",
        schemars(
            length(max = 32),
            inner(length(max = 1024), pattern(crate::ABSOLUTE_PATH_PATTERN))
        )
    )]
    pub resolv_confs: Vec<String>,
    /// Host interfaces a macvlan/ipvlan network may name as `master`, and by which namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "k8s", schemars(length(max = 256)))]
    pub masters: Vec<HostInterfaceGrant>,
    /// OVS bridges an ovs network may name as `ovs.bridge`, and by which namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "k8s", schemars(length(max = 256)))]
    pub bridges: Vec<HostInterfaceGrant>,
}

/// One host interface (or bridge) that networks may name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct HostInterfaceGrant {
    /// The interface name.
    #[cfg_attr(feature = "k8s", schemars(pattern(HOST_IFNAME_PATTERN)))]
    pub name: String,
    /// Namespaces whose networks may name it. Unset: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "k8s",
        schemars(
            length(max = 256),
            inner(length(max = 63), pattern(crate::DNS_LABEL_PATTERN))
        )
    )]
    pub namespaces: Option<Vec<String>>,
}

impl HostInterfaceGrant {
    /// Whether a network in `namespace` may name this interface (`None`: the namespace is not
    /// known, which only an unrestricted grant allows).
    pub fn admits(&self, namespace: Option<&str>) -> bool {
        match (&self.namespaces, namespace) {
            (None, _) => true,
            (Some(list), Some(ns)) => list.iter().any(|n| n == ns),
            (Some(_), None) => false,
        }
    }
}

/// Why a value of a network's configuration is not allowed by a [`TenantAllowList`]; `None`
/// when it is. `key` names the configuration key (`master`, `bridge`).
pub fn interface_refusal(
    grants: &[HostInterfaceGrant],
    key: &str,
    name: &str,
    namespace: Option<&str>,
) -> Option<String> {
    match grants.iter().find(|g| g.name == name) {
        None => Some(format!(
            "{key} {name:?} is not in the administrator's allow-list (NicOperatorConfig spec.tenantAllowList)"
        )),
        Some(g) if !g.admits(namespace) => Some(format!(
            "{key} {name:?} is not allowed for namespace {}",
            namespace.unwrap_or("(unknown)")
        )),
        Some(_) => None,
    }
}

impl TenantAllowList {
    /// Whether a network may use `dir` as IPAM `dataDir`.
    pub fn admits_data_dir(&self, dir: &str) -> bool {
        dir == DEFAULT_IPAM_DATA_DIR || self.ipam_data_dirs.iter().any(|d| d == dir)
    }

    /// Whether a network may use `file` as IPAM `resolvConf`.
    pub fn admits_resolv_conf(&self, file: &str) -> bool {
        self.resolv_confs.iter().any(|f| f == file)
    }
}
