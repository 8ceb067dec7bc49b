//! Node-wide settings of the plan, outside any PF: today the RDMA network-namespace mode
//! (`rdma system set netns shared|exclusive`, RDMA netlink `RDMA_NLDEV_CMD_SYS_SET` with
//! `RDMA_NLDEV_SYS_ATTR_NETNS_MODE`).
//!
//! Planned like the PF steps, from what the host shows: a spec whose `rdmaMode` the host already
//! has gets no step; a host whose mode could not be read (no `rdma` tool, no RDMA core) gets the
//! step, and its execution reports why it cannot be done. A node step never holds up a PF.

use std::fmt;

use crds::{node_state::NicNodeStateSpec, pool::RdmaMode};
use serde::Serialize;

/// What the host shows of the node-wide settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// The RDMA network-namespace mode (`rdma system show netns`); `None` when it could not be
    /// read (the step is then planned, and its execution says why it fails).
    pub rdma_mode: Option<RdmaMode>,
}

/// One node-wide step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "step"
)]
pub enum NodeStep {
    /// `rdma system set netns shared|exclusive` (the `rdmaMode` of the node's pool).
    RdmaNetnsMode {
        /// The mode to set.
        mode: RdmaMode,
    },
}

impl NodeStep {
    /// A short name for metrics and logs (`rdma-netns-mode`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RdmaNetnsMode { .. } => "rdma-netns-mode",
        }
    }

    /// The spec field the step makes true (`rdmaMode`), for errors.
    pub fn setting(&self) -> &'static str {
        match self {
            Self::RdmaNetnsMode { .. } => "rdmaMode",
        }
    }
}

impl fmt::Display for NodeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RdmaNetnsMode { mode } => write!(f, "rdma system set netns {}", mode.as_str()),
        }
    }
}

/// The node-wide steps that move the host (`facts`) to `desired`; empty when it shows them.
pub fn plan_node(desired: &NicNodeStateSpec, facts: &NodeFacts) -> Vec<NodeStep> {
    let mut steps = Vec::new();
    if let Some(mode) = desired.rdma_mode
        && facts.rdma_mode != Some(mode)
    {
        steps.push(NodeStep::RdmaNetnsMode { mode });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: Option<RdmaMode>) -> NicNodeStateSpec {
        NicNodeStateSpec {
            rdma_mode: mode,
            ..Default::default()
        }
    }

    fn host(mode: Option<RdmaMode>) -> NodeFacts {
        NodeFacts { rdma_mode: mode }
    }

    #[test]
    fn rdma_mode_gets_a_step_only_when_the_host_differs() {
        use RdmaMode::{Exclusive, Shared};
        let set = |mode| vec![NodeStep::RdmaNetnsMode { mode }];
        // the host's mode differs: one step
        assert_eq!(
            plan_node(&spec(Some(Exclusive)), &host(Some(Shared))),
            set(Exclusive)
        );
        assert_eq!(
            plan_node(&spec(Some(Shared)), &host(Some(Exclusive))),
            set(Shared)
        );
        // it matches: none
        assert!(plan_node(&spec(Some(Exclusive)), &host(Some(Exclusive))).is_empty());
        assert!(plan_node(&spec(Some(Shared)), &host(Some(Shared))).is_empty());
        // unset: the node's mode is left as it is, whatever it is or whether it can be read
        assert!(plan_node(&spec(None), &host(Some(Exclusive))).is_empty());
        assert!(plan_node(&spec(None), &host(None)).is_empty());
        // unreadable (no rdma tool, no RDMA core): planned, the execution says why it fails
        assert_eq!(
            plan_node(&spec(Some(Exclusive)), &host(None)),
            set(Exclusive)
        );
        let step = &set(Exclusive)[0];
        assert_eq!(step.to_string(), "rdma system set netns exclusive");
        assert_eq!(
            (step.kind(), step.setting()),
            ("rdma-netns-mode", "rdmaMode")
        );
        assert_eq!(
            serde_json::to_value(step).unwrap(),
            serde_json::json!({"step": "rdmaNetnsMode", "mode": "exclusive"})
        );
    }
}
