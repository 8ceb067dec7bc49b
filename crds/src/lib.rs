//! Data types shared across smartnic-operator: the `smartnic.io/v1alpha1` custom resources, the NIC
//! inventory shape that node discovery produces, the device-plugin configuration and the CNI network
//! configuration that the operator renders.
//!
//! This crate is data only: no I/O, no Kubernetes client, no planning logic. The rules that turn
//! these types into per-node instructions live in `operator::planner`; the admission checks live in
//! `operator::validate`.
//!
//! ```text
//!   NicPolicy (admin) ─┐
//!   Node labels ───────┼─► planner ─► NicNodeState.spec ─► agent ─► host (VFs, eswitch, MTU)
//!   NicNodeState.status (inventory from the agent) ─┘        │
//!                                                          └─► .spec.devicePlugin ─► its device plugin
//!   NicNetwork (admin) ─► planner ─► NetworkAttachmentDefinition { config: SmartnicNetConf } ─► CNI
//!   NicPool (admin) + drain annotations ─► drain arbiter ─► drain grants
//! ```
//!
//! `cargo run -p crds --bin crdgen` writes the CRD YAML into `deploy/crds/`; a test fails when the
//! checked-in files drift from these types.

pub mod cni;
pub mod consts;
pub mod device_plugin;
pub mod generate;
pub mod inventory;
pub mod nad;
pub mod network;
pub mod node_state;
pub mod operator_config;
pub mod policy;
pub mod pool;
mod schema;

pub use consts::*;
pub use nad::{NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec};
pub use network::{NicNetwork, NicNetworkSpec, NicNetworkStatus};
pub use node_state::{NicNodeState, NicNodeStateSpec, NicNodeStateStatus};
pub use operator_config::{NicOperatorConfig, NicOperatorConfigSpec, NicOperatorConfigStatus};
pub use policy::{NicPolicy, NicPolicySpec, NicPolicyStatus};
pub use pool::{NicPool, NicPoolSpec, NicPoolStatus};

/// Kubernetes types the CRDs embed, re-exported so that callers use the same versions.
pub mod k8s {
    pub use k8s_openapi::{
        apimachinery::pkg::{
            apis::meta::v1::{
                Condition, LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
                Time,
            },
            util::intstr::IntOrString,
        },
        jiff,
    };
}
