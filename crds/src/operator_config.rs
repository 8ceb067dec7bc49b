//! `NicOperatorConfig`: the operator's own settings. A singleton named `default`.

// clippy reads the repeated `type_ = ...` inside separate `printcolumn(...)` groups of `#[kube]` as
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Operator-wide settings. Only the object named `default` is read.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "smartnic.io",
    version = "v1alpha1",
    kind = "NicOperatorConfig",
    plural = "nicoperatorconfigs",
    shortname = "nicconf",
    category = "smartnic",
    status = "NicOperatorConfigStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Operator-wide settings; only the object named 'default' is read.",
    validation = Rule::new(crate::rules::OPERATOR_CONFIG_RULES[0].rule).message(crate::rules::OPERATOR_CONFIG_RULES[0].message),
    printcolumn(name = "LogLevel", type_ = "string", json_path = ".spec.logLevel"),
    printcolumn(name = "Prefix", type_ = "string", json_path = ".spec.resourcePrefix"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NicOperatorConfigSpec {
    /// Log level of the operator: `error`, `warn`, `info` (default), `debug`, `trace`. Applied
    /// at once, without a restart; it replaces the default level of the operator's
    /// `--log-level`/`RUST_LOG` filter and keeps that filter's per-target directives. The node
    /// agents and device plugins take theirs from their own `--log-level`/`RUST_LOG`.
    #[serde(default)]
    pub log_level: LogLevel,
    /// Prefix of the extended resources (`<prefix>/<resourceName>`); a DNS subdomain. Default
    /// `smartnic.io`.
    #[serde(default = "default_prefix")]
    #[schemars(length(min = 1, max = 253), pattern(crate::DNS_SUBDOMAIN_PATTERN))]
    pub resource_prefix: String,
    /// Nodes the node agent, the device plugin and the CNI plugin run on: a plain label map as in
    /// a pod's `nodeSelector` (every label must match). The operator plans NIC configuration only
    /// for these nodes: another node gets no `NicNodeState` (an existing one is emptied), and a
    /// `NicPolicy` selecting it lists it as rejected in its status. The operator sets the pod
    /// `nodeSelector` of the agent and CNI-installer DaemonSets in its namespace to this map, and
    /// of the device-plugin DaemonSet to this map plus `smartnic.io/device-plugin: "true"`.
    /// Default: every Linux node
    /// (`kubernetes.io/os: linux`); without a `NicOperatorConfig` object, every node.
    #[serde(default = "default_node_selector")]
    #[schemars(extend("maxProperties" = 32))]
    pub node_selector: BTreeMap<String, String>,
    /// Feature switches.
    #[serde(default)]
    pub features: Features,
    /// What networks (written by namespace admins) may name on the nodes: host interfaces as
    /// `master`, OVS bridges, IPAM `dataDir`s besides `/var/lib/cni/networks`, `resolvConf`
    /// files. Empty: none of these. The webhook and the operator refuse a NicNetwork that names
    /// anything else. The CNI plugin checks the list in `/etc/smartnic/cni-allow-list.json` on
    /// each node (same shape), which the administrator keeps equal to this one.
    #[serde(default, skip_serializing_if = "is_default")]
    pub tenant_allow_list: crate::cni::TenantAllowList,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Default for NicOperatorConfigSpec {
    fn default() -> Self {
        Self {
            log_level: LogLevel::default(),
            resource_prefix: default_prefix(),
            node_selector: default_node_selector(),
            features: Features::default(),
            tenant_allow_list: crate::cni::TenantAllowList::default(),
        }
    }
}

impl NicOperatorConfigSpec {
    /// Whether a node with these labels is one the agent, device plugin and CNI run on.
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

fn default_node_selector() -> BTreeMap<String, String> {
    BTreeMap::from([(crate::LABEL_OS.to_owned(), "linux".to_owned())])
}

fn default_prefix() -> String {
    crate::RESOURCE_PREFIX.to_owned()
}

fn yes() -> bool {
    true
}

/// Log level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::schema::drop_description)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Normal operation.
    #[default]
    Info,
    /// Verbose.
    Debug,
    /// Very verbose.
    Trace,
}

/// Feature switches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Drain nodes before disruptive changes (default true). When false the operator grants a
    /// drain request at once without cordoning or evicting: only for single-node or test
    /// clusters.
    #[serde(default = "yes")]
    pub drain: bool,
    /// Network-resources injector (default true): a pod whose `k8s.v1.cni.cncf.io/networks`
    /// annotation names NADs carrying `k8s.v1.cni.cncf.io/resourceName` gets the matching
    /// extended-resource requests and limits on its first container (values it set itself are
    /// kept). A namespace labelled `smartnic.io/network-resources-injector: disabled` opts out.
    #[serde(default = "yes")]
    pub network_resources_injector: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self {
            drain: true,
            network_resources_injector: true,
        }
    }
}

/// Observed state of the operator configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NicOperatorConfigStatus {
    /// `Valid`, with `observedGeneration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = crate::schema::conditions_list_map)]
    pub conditions: Vec<Condition>,
}
