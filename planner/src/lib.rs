//! Pure planning for smartnic-operator: no Kubernetes client, no I/O. The operator's controller
//! reads objects, calls these, and writes the results; the node agent calls [`drain::classify`];
//! the webhook calls [`validate`], which shares its rules with the planners; [`conditions`]
//! builds the status conditions every component writes.
//!
//! | function | input | output |
//! |---|---|---|
//! | [`desired::desired_node_state`] / [`desired::PolicySet::plan_node`] | policies, node labels, discovered inventory | `NicNodeState.spec` + rejections + warnings |
//! | [`nad::render_nad`] | a `NicNetwork`, resource prefix | its `NetworkAttachmentDefinition` |
//! | [`device_plugin::render_device_plugin_config`] / [`device_plugin::with_device_plugin_config`] | `NicNodeState.spec`, resource prefix | the node's device-plugin config (`spec.devicePlugin`) |
//! | [`dra::render_device_classes`] | policies, resource prefix | a `DeviceClass` per pool offered by DRA |
//! | [`drain::classify`] | last applied spec, new spec, live inventory | change class per PF and node |
//! | [`drain::grant`] | every node's drain annotations, pools | which nodes may start draining |
//! | [`apply::plan_host`] | last applied spec, new spec, live inventory (node agent) | ordered steps per PF + disruption class |
//!
//! Policy precedence is defined once, in [`priority`]; the merge rules are in [`desired`].

pub mod access;
pub mod apply;
pub mod conditions;
pub mod desired;
pub mod device_plugin;
pub mod dra;
pub mod drain;
pub mod facts;
#[cfg(any(test, feature = "test-util"))]
pub mod fixtures;
#[cfg(test)]
mod ib_tests;
pub mod nad;
pub mod node_settings;
pub mod placement;
pub mod pod_networks;
pub mod priority;
pub mod selector;
pub mod validate;
pub mod vf_range;
#[cfg(test)]
mod whole_pf_tests;
pub mod why;

pub use access::{
    AccessDenied, HostAccessDenied, REASON_NAMESPACE_NOT_ALLOWED, REASON_NOT_IN_ALLOW_LIST,
    network_host_access, network_may_use,
};
pub use desired::{NodePlan, PolicySet, Rejection, Warning, desired_node_state};
pub use device_plugin::{render_device_plugin_config, with_device_plugin_config};
pub use drain::{
    ChangeClass, GrantDecision, HolderPool, NodeChange, NodeDrainState, classify, drain_timed_out,
    grant, retry_after,
};
pub use facts::planning_fingerprint;
pub use nad::{NadError, render_cni_config, render_nad, render_nad_config, render_nad_offered};
pub use node_settings::{agent_runs_on, outside_agent_nodes, rdma_mode_for_node};
pub use pod_networks::{ANNOTATION_NETWORKS, uses_pf_through_networks};

/// A value as it is spelled in the CRDs (`vfio-pci`, `switchdev`, `eth`, `{"totalVfs":32}`), for
/// messages.
pub(crate) fn wire<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::from("?"),
    }
}
