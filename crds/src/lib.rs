//! Data types shared across smartnic-operator: the `smartnic.io/v1alpha1` custom resources, the NIC
//! inventory shape that node discovery produces, the device-plugin configuration and the CNI network
//! configuration that the operator renders.
//!
//! This crate is data only: no I/O, no Kubernetes client, no planning logic. The rules that turn
//! these types into per-node instructions live in the `planner` crate, with the admission checks
//! (`planner::validate`).
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

//!
//! # Features
//!
//! Without features the crate holds only the shapes that node-side programs exchange through files
//! and stdin: [`inventory`], [`device_plugin`], [`devinfo`], [`dra`], [`cni`], [`link`], [`vf`], [`guid`] and [`consts`]. They depend
//! on serde alone, so the host layer (`nic`) and the CNI binary link no Kubernetes client. The `k8s`
//! feature adds the custom resources, their JSON schemas and the CRD generator. The
//! `schema-check` feature (tests only) adds `schema_check`, which validates documents against the
//! generated schemas as the API server does.

pub mod cni;
pub mod cni_state;
pub mod consts;
pub mod device_plugin;
pub mod devinfo;
pub mod dra;
#[cfg(feature = "k8s")]
pub mod generate;
pub mod guid;
pub mod host_paths;
pub mod inventory;
pub mod link;
#[cfg(feature = "k8s")]
pub mod nad;
#[cfg(feature = "k8s")]
pub mod network;
#[cfg(feature = "k8s")]
pub mod node_state;
#[cfg(feature = "k8s")]
pub mod operator_config;
#[cfg(feature = "k8s")]
pub mod policy;
#[cfg(feature = "k8s")]
pub mod pool;
pub mod report;
#[cfg(feature = "k8s")]
pub mod rules;
#[cfg(feature = "k8s")]
mod schema;
#[cfg(feature = "k8s")]
pub mod strict;
pub mod vf;

pub use consts::*;
#[cfg(feature = "k8s")]
pub use nad::{NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec};
#[cfg(feature = "k8s")]
pub use network::{NicNetwork, NicNetworkSpec, NicNetworkStatus};
#[cfg(feature = "k8s")]
pub use node_state::{NicNodeState, NicNodeStateSpec, NicNodeStateStatus};
#[cfg(feature = "k8s")]
pub use operator_config::{NicOperatorConfig, NicOperatorConfigSpec, NicOperatorConfigStatus};
#[cfg(feature = "k8s")]
pub use policy::{NicPolicy, NicPolicySpec, NicPolicyStatus};
#[cfg(feature = "k8s")]
pub use pool::{NicPool, NicPoolSpec, NicPoolStatus};

/// Kubernetes types the CRDs embed, re-exported so that callers use the same versions.
#[cfg(feature = "k8s")]
pub mod k8s {
    /// The DRA types the operator renders (`resource.k8s.io/v1`).
    pub use k8s_openapi::api::resource::v1::{
        CELDeviceSelector as CelDeviceSelector, DeviceClass, DeviceClassSpec,
        DeviceSelector as DraDeviceSelector,
    };
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
#[cfg(feature = "schema-check")]
pub mod schema_check;
