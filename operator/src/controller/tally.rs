//! What every node contributes to the policies' status, kept per node so that one node's change
//! updates the counts in O(its policies) instead of planning the whole cluster again.
//!
//! Pure: the status controller ([`super::status`]) plans the nodes that changed and hands each
//! outcome to [`Tallies::set`]; [`Tallies::policy`] reads a policy's counts and first
//! rejections.

use std::collections::{BTreeMap, HashMap, HashSet};

use crds::policy::PolicyRejectionStatus;
use planner::NodePlan;

use super::triggers::{Change, PolicyChange};

/// One node's part of the policy status: the policies selecting it and their rejections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeOutcome {
    /// Valid policies whose node selector matches the node.
    pub selected: Vec<String>,
    /// `(policy, pf, "field: reason")` per rejection.
    pub rejections: Vec<(String, Option<String>, String)>,
}

impl NodeOutcome {
    /// The outcome of a node's plan.
    pub fn of(plan: NodePlan) -> Self {
        Self {
            selected: plan.selected_policies,
            rejections: plan
                .rejections
                .into_iter()
                .map(|r| (r.policy, r.pf, format!("{}: {}", r.field, r.reason)))
                .collect(),
        }
    }
}

/// Sort key of a listed rejection: node, PF, reason.
type RejectionKey = (String, Option<String>, String);

#[derive(Debug, Default)]
struct PolicyTally {
    selected: u32,
    /// Rejections per rejected node.
    rejected_nodes: BTreeMap<String, u32>,
    /// Every rejection (with its multiplicity), sorted as listed in the status.
    rejections: BTreeMap<RejectionKey, u32>,
}

/// A policy's counts as its status shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyCounts {
    /// Nodes the policy selects.
    pub selected: u32,
    /// Nodes where at least one PF rejected it.
    pub rejected: u32,
    /// The first `limit` rejections sorted by node, PF and reason.
    pub first: Vec<PolicyRejectionStatus>,
}

/// Per-node outcomes and their sums per policy.
#[derive(Debug, Default)]
pub struct Tallies {
    nodes: HashMap<String, NodeOutcome>,
    policies: HashMap<String, PolicyTally>,
}

impl Tallies {
    /// Replaces node `node`'s outcome (`None`: the node is gone). Returns whether it changed.
    pub fn set(&mut self, node: &str, outcome: Option<NodeOutcome>) -> bool {
        if self.nodes.get(node) == outcome.as_ref() {
            return false;
        }
        if let Some(old) = self.nodes.remove(node) {
            self.sub(node, &old);
        }
        if let Some(new) = outcome {
            self.add(node, &new);
            self.nodes.insert(node.to_owned(), new);
        }
        true
    }

    fn add(&mut self, node: &str, o: &NodeOutcome) {
        for p in &o.selected {
            self.policies.entry(p.clone()).or_default().selected += 1;
        }
        for (p, pf, reason) in &o.rejections {
            let t = self.policies.entry(p.clone()).or_default();
            *t.rejected_nodes.entry(node.to_owned()).or_default() += 1;
            *t.rejections
                .entry((node.to_owned(), pf.clone(), reason.clone()))
                .or_default() += 1;
        }
    }

    fn sub(&mut self, node: &str, o: &NodeOutcome) {
        for p in &o.selected {
            if let Some(t) = self.policies.get_mut(p) {
                t.selected = t.selected.saturating_sub(1);
            }
        }
        for (p, pf, reason) in &o.rejections {
            let Some(t) = self.policies.get_mut(p) else {
                continue;
            };
            decrement(&mut t.rejected_nodes, node.to_owned());
            decrement(
                &mut t.rejections,
                (node.to_owned(), pf.clone(), reason.clone()),
            );
        }
        self.policies
            .retain(|_, t| t.selected > 0 || !t.rejections.is_empty());
    }

    /// Names of the nodes with an outcome.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// Policy `name`'s counts, listing at most `limit` rejections.
    pub fn policy(&self, name: &str, limit: usize) -> PolicyCounts {
        let Some(t) = self.policies.get(name) else {
            return PolicyCounts::default();
        };
        PolicyCounts {
            selected: t.selected,
            rejected: u32::try_from(t.rejected_nodes.len()).unwrap_or(u32::MAX),
            first: t
                .rejections
                .iter()
                .flat_map(|(k, n)| std::iter::repeat_n(k, *n as usize))
                .take(limit)
                .map(|(node, pf, reason)| PolicyRejectionStatus {
                    node: node.clone(),
                    pf: pf.clone(),
                    reason: reason.clone(),
                })
                .collect(),
        }
    }
}

fn decrement<K: Ord>(m: &mut BTreeMap<K, u32>, k: K) {
    if let Some(n) = m.get_mut(&k) {
        *n -= 1;
        if *n == 0 {
            m.remove(&k);
        }
    }
}

/// The nodes whose outcome a status pass must recompute.
#[derive(Debug)]
pub struct Dirty {
    /// Every node (at start, after a resync or a configuration change).
    pub all: bool,
    /// Nodes whose labels or node state changed.
    pub nodes: HashSet<String>,
    /// Policy changes: the nodes they select before or after.
    pub policies: Vec<PolicyChange>,
}

impl Default for Dirty {
    fn default() -> Self {
        Self {
            all: true,
            nodes: HashSet::new(),
            policies: Vec::new(),
        }
    }
}

impl Dirty {
    /// Nothing to recompute.
    pub fn clean() -> Self {
        Self {
            all: false,
            ..Self::default()
        }
    }

    /// Records what `change` makes stale; whether the policy status may change because of it.
    pub fn note(&mut self, change: &Change) -> bool {
        match change {
            Change::Node(n) | Change::NodeState(n) => {
                if !self.all {
                    self.nodes.insert(n.clone());
                }
                true
            }
            Change::Policy(p) => {
                if !self.all {
                    self.policies.push(p.clone());
                }
                true
            }
            Change::OperatorConfig | Change::Resync => {
                *self = Self::default();
                true
            }
            Change::NodeDrain(_) | Change::Pool | Change::Network(_) | Change::Nad(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(selected: &[&str], rejections: &[(&str, &str)]) -> NodeOutcome {
        NodeOutcome {
            selected: selected.iter().map(|s| (*s).to_owned()).collect(),
            rejections: rejections
                .iter()
                .map(|(p, r)| {
                    (
                        (*p).to_owned(),
                        Some("0000:3b:00.0".to_owned()),
                        (*r).to_owned(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn one_node_change_moves_only_its_counts() {
        let mut t = Tallies::default();
        assert!(t.set(
            "n2",
            Some(outcome(&["p1", "p2"], &[("p1", "spec.numVfs: too many")]))
        ));
        assert!(t.set(
            "n1",
            Some(outcome(&["p1"], &[("p1", "spec.numVfs: too many")]))
        ));
        assert!(!t.set(
            "n1",
            Some(outcome(&["p1"], &[("p1", "spec.numVfs: too many")]))
        ));
        let p1 = t.policy("p1", 20);
        assert_eq!((p1.selected, p1.rejected), (2, 2));
        let nodes: Vec<&str> = p1.first.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(nodes, ["n1", "n2"], "sorted by node");
        assert_eq!(t.policy("p1", 1).first.len(), 1);

        // n2's PF grew: no more rejection there
        assert!(t.set("n2", Some(outcome(&["p1", "p2"], &[]))));
        let p1 = t.policy("p1", 20);
        assert_eq!((p1.selected, p1.rejected, p1.first.len()), (2, 1, 1));
        assert_eq!(t.policy("p2", 20).selected, 1);

        // n1 deleted
        assert!(t.set("n1", None));
        assert!(!t.set("n1", None));
        assert_eq!(
            t.policy("p1", 20),
            PolicyCounts {
                selected: 1,
                rejected: 0,
                first: vec![]
            }
        );
        assert_eq!(t.policy("gone", 20), PolicyCounts::default());
    }

    #[test]
    fn dirty_collects_nodes_and_policies_until_everything_is_stale() {
        let mut d = Dirty::clean();
        assert!(!d.note(&Change::NodeDrain("n1".into())));
        assert!(d.note(&Change::NodeState("n1".into())));
        assert!(d.note(&Change::Policy(PolicyChange::new("p", None, None))));
        assert!(!d.all);
        assert_eq!(d.nodes.len(), 1);
        assert_eq!(d.policies.len(), 1);
        assert!(d.note(&Change::Resync));
        assert!(d.all && d.nodes.is_empty() && d.policies.is_empty());
    }
}
