//! `NicPool`: a set of nodes that may be drained in parallel, up to `maxUnavailable` at a time.

// clippy reads the repeated `type_ = ...` inside separate `printcolumn(...)` groups of `#[kube]` as
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::{
    apis::meta::v1::{Condition, LabelSelector},
    util::intstr::IntOrString,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Nodes that may be drained for NIC changes in parallel. A node must be selected by at most one
/// pool; a node selected by none belongs to an implicit pool with `maxUnavailable: 1`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "smartnic.io",
    version = "v1alpha1",
    kind = "NicPool",
    plural = "nicpools",
    shortname = "nicpool",
    category = "smartnic",
    status = "NicPoolStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Nodes that may be drained for NIC changes in parallel, at most maxUnavailable at a time.",
    printcolumn(
        name = "MaxUnavailable",
        type_ = "string",
        json_path = ".spec.maxUnavailable"
    ),
    printcolumn(name = "Nodes", type_ = "integer", json_path = ".status.nodes"),
    printcolumn(name = "Draining", type_ = "integer", json_path = ".status.draining"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NicPoolSpec {
    /// Nodes in this pool (standard label selector; an empty selector selects every node).
    pub node_selector: LabelSelector,
    /// How many of the pool's nodes may be draining at once: an integer (0 pauses new drains) or
    /// a percentage `"1%"`-`"100%"` of the pool's node count, rounded down but at least 1.
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::rules::max_unavailable_rules)]
    pub max_unavailable: Option<IntOrString>,
    /// Seconds a node may spend evicting pods (drain grant `draining`) before the operator gives
    /// up: it stops evicting, uncordons the node (if it cordoned it), frees the drain slot and
    /// lets the node wait `max(drainTimeoutSeconds, 60)` seconds before it may be granted again.
    /// The pending change is not applied meanwhile; the node keeps running its pods. The
    /// `Draining` condition (reason `DrainTimedOut`) names the pods that blocked. Once eviction
    /// is complete (grant `drained`) the timeout no longer applies. Default 600; 0 waits
    /// forever. Nodes in no pool use the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout_seconds: Option<u32>,
    /// RDMA network-namespace mode of the pool's nodes (`rdma system set netns shared|exclusive`):
    /// `shared` (every network namespace sees every RDMA device, the kernel default) or
    /// `exclusive` (each RDMA device belongs to one network namespace and does not follow its
    /// netdev; the smartnic CNI moves a VF's RDMA device into the pod with the VF in mode sriov
    /// and back on DEL, and refuses that ADD while the kernel is not in exclusive mode; what
    /// isolated multi-tenant RDMA needs). Unset:
    /// leave the node's mode as it is. Carried to each member node's `NicNodeState.spec.rdmaMode`;
    /// the agent applies it (the kernel's `ib_core` `netns_mode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdma_mode: Option<RdmaMode>,
}

/// RDMA network-namespace mode of a node (`rdma system show netns`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::schema::drop_description)]
pub enum RdmaMode {
    /// RDMA devices are visible in every network namespace (`ib_core netns_mode=1`).
    Shared,
    /// An RDMA device is visible only in the network namespace it was moved to (the initial one
    /// until then), whatever namespace its netdev is in (`ib_core netns_mode=0`).
    Exclusive,
}

impl RdmaMode {
    /// The mode as `rdma system set netns` spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Exclusive => "exclusive",
        }
    }
}

impl NicPoolSpec {
    /// `drainTimeoutSeconds` with its default applied (0 = no timeout).
    pub fn drain_timeout_seconds(&self) -> u32 {
        self.drain_timeout_seconds
            .unwrap_or(crate::DEFAULT_DRAIN_TIMEOUT_SECONDS)
    }
}

/// Observed state of the pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NicPoolStatus {
    /// `Valid` (no node is in two pools), with `observedGeneration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = crate::schema::conditions_list_map)]
    pub conditions: Vec<Condition>,
    /// Nodes the selector matches.
    #[serde(default)]
    pub nodes: u32,
    /// Nodes currently holding a drain grant.
    #[serde(default)]
    pub draining: u32,
    /// `maxUnavailable` resolved to a node count.
    #[serde(default)]
    pub max_unavailable_nodes: u32,
}
