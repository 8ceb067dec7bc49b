//! Node-wide settings that come from objects other than the policies: the RDMA namespace mode of
//! the node's `NicPool`, and whether the node is one the agent runs on
//! (`NicOperatorConfig.spec.nodeSelector`).

use std::collections::BTreeMap;

use crds::{NicPool, operator_config::NicOperatorConfigSpec, pool::RdmaMode};

use crate::{Rejection, desired::NodePlan, selector::CompiledSelector};

/// The `rdmaMode` of the one pool that selects the node. `None` when no pool selects it, the
/// pool leaves the mode alone, or several pools select it (an error reported on the pools; the
/// node's mode is then left as it is rather than picked from one of them).
pub fn rdma_mode_for_node(
    pools: &[NicPool],
    labels: &BTreeMap<String, String>,
) -> Option<RdmaMode> {
    let mut selecting = pools.iter().filter(|p| {
        CompiledSelector::compile(&p.spec.node_selector).is_ok_and(|s| s.matches(labels))
    });
    let first = selecting.next()?;
    if selecting.next().is_some() {
        return None;
    }
    first.spec.rdma_mode
}

/// Whether the agent runs on a node with these labels. Without a `NicOperatorConfig` object
/// every node is eligible.
pub fn agent_runs_on(
    config: Option<&NicOperatorConfigSpec>,
    labels: &BTreeMap<String, String>,
) -> bool {
    config.is_none_or(|c| c.selects_node(labels))
}

/// The plan of a node the agent does not run on: nothing is planned there, and every policy that
/// selects the node is rejected for the whole node, saying why (so its status tells).
pub fn outside_agent_nodes(plan: NodePlan) -> NodePlan {
    let rejections = plan
        .selected_policies
        .iter()
        .map(|p| Rejection {
            policy: p.clone(),
            pf: None,
            field: "spec.nodeSelector".into(),
            reason:
                "selects a node outside NicOperatorConfig spec.nodeSelector, where no agent runs"
                    .into(),
            conflicts_with: None,
            conflicting_field: None,
        })
        .collect();
    NodePlan {
        spec: Default::default(),
        rejections,
        warnings: Vec::new(),
        selected_policies: plan.selected_policies,
    }
}

#[cfg(test)]
mod tests {
    use crds::{k8s::LabelSelector, pool::NicPoolSpec};

    use super::*;
    use crate::{
        desired::desired_node_state,
        fixtures::{cx6, inventory, labels, policy},
    };

    fn pool(name: &str, rack: &str, mode: Option<RdmaMode>) -> NicPool {
        NicPool::new(
            name,
            NicPoolSpec {
                node_selector: LabelSelector {
                    match_labels: Some(labels(&[("rack", rack)])),
                    ..Default::default()
                },
                rdma_mode: mode,
                ..Default::default()
            },
        )
    }

    #[test]
    fn rdma_mode_comes_from_the_one_pool_of_the_node() {
        let pools = [
            pool("a", "r1", Some(RdmaMode::Exclusive)),
            pool("b", "r2", None),
        ];
        assert_eq!(
            rdma_mode_for_node(&pools, &labels(&[("rack", "r1")])),
            Some(RdmaMode::Exclusive)
        );
        assert_eq!(rdma_mode_for_node(&pools, &labels(&[("rack", "r2")])), None);
        assert_eq!(rdma_mode_for_node(&pools, &labels(&[("rack", "r3")])), None);
        let twice = [
            pool("a", "r1", Some(RdmaMode::Exclusive)),
            pool("c", "r1", Some(RdmaMode::Shared)),
        ];
        assert_eq!(rdma_mode_for_node(&twice, &labels(&[("rack", "r1")])), None);
    }

    #[test]
    fn nodes_outside_the_agent_selector_get_nothing_and_the_policies_say_why() {
        let cfg = NicOperatorConfigSpec {
            node_selector: labels(&[("smartnic", "yes")]),
            ..Default::default()
        };
        let node = labels(&[("gpu", "true")]);
        assert!(!agent_runs_on(Some(&cfg), &node));
        assert!(agent_runs_on(None, &node));
        assert!(agent_runs_on(
            Some(&cfg),
            &labels(&[("gpu", "true"), ("smartnic", "yes")])
        ));
        let plan = desired_node_state(
            &[policy("p", 10, &["ens1f0"])],
            &node,
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert_eq!(plan.spec.interfaces.len(), 1);
        let out = outside_agent_nodes(plan);
        assert!(out.spec.interfaces.is_empty());
        assert_eq!(out.selected_policies, ["p"]);
        assert_eq!(out.rejections.len(), 1);
        assert_eq!(out.rejections[0].field, "spec.nodeSelector");
        assert!(out.rejections[0].reason.contains("NicOperatorConfig"));
    }
}
