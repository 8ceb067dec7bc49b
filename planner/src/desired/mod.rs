//! Policies + one node's labels + its discovered inventory → that node's `NicNodeState.spec`.
//!
//! # Rules
//!
//! 1. **Selection.** A policy applies to a node when its `nodeSelector` matches the node's labels,
//!    and to a PF when every set field of its `nicSelector` matches (vendor, PF device id, netdev
//!    name from `pfNames`, PCI address from `rootDevices`). Invalid policies (see
//!    [`crate::validate::validate_policy_spec`]) never apply; they are reported once in
//!    [`PolicySet::invalid`].
//! 2. **Order.** Policies are considered in precedence order ([`super::priority`]: lower
//!    `priority` number first, then name ascending).
//! 3. **PF checks** (each policy on its own): the PF must be SR-IOV capable, `numVfs` must not
//!    exceed `sriov_totalvfs` (or `firmware.totalVfs`, which a reboot makes true), VF ranges must
//!    lie below `numVfs`, `switchdev` needs an eswitch and Ethernet, firmware settings and link
//!    type changes need an NVIDIA NIC, and an externally managed PF must already have `numVfs`
//!    VFs (and the requested eswitch mode). A failed check rejects the policy *for that PF only*.
//! 4. **Winner.** The first policy that passes the PF checks decides the PF-level settings:
//!    `numVfs`, `externallyManaged`, and (when it sets them) `eswitchMode`, `linkType`, `firmware`.
//! 5. **Composition.** Each further policy on the same PF adds its own VF group when
//!    - its VF set is disjoint from every group already placed (otherwise it is rejected for this
//!      PF, naming the policy that holds the VFs: never a silent overwrite),
//!    - its `numVfs` and `externallyManaged` equal the winner's, and its `eswitchMode`, `linkType`
//!      and `firmware`, when set, equal the ones already decided (otherwise rejected, naming the
//!      field and the deciding policy). An unset field has no opinion and never conflicts; the
//!      first policy in precedence order that sets it decides it.
//! 6. **Resources.** On one node, all policies that use one `resourceName` must agree on
//!    `deviceType`, `isRdma`, `excludeTopology`, `needVhostNet` and `allocation` (one pool has one
//!    kind of device, offered one way).
//!    The first policy in precedence order that uses the name and claims a PF of the node decides;
//!    the others are rejected on every PF of that node.
//! 7. **MTU.** MTU is per VF group: each group keeps its own policy's `mtu`. The PF gets the
//!    largest `mtu` of all groups composed on it, whatever their priorities (so equal priorities
//!    need no special rule): the PF's port carries every VF's frames, and on mlx5 and ice a VF
//!    frame larger than the PF MTU is dropped on the wire. When this raises the PF MTU above the
//!    winner's own `mtu`, a warning names both policies.
//! 8. **Output order.** Interfaces by PCI address, VF groups by first VF, rejections and warnings
//!    by (policy, PF): equal inputs give identical specs, so the controller never rewrites an
//!    unchanged `NicNodeState`.
//! 9. **Whole PFs.** A `wholePf` winner takes the PF alone: `numVfs` 0, no VF groups, its pool
//!    in `wholePf`; any other policy on that PF is rejected naming it, and one resource name is
//!    whole PFs or VFs, not both (rule 6). A PF without SR-IOV may be offered whole.
//!
//! 10. **GUID pools.** An `ibGuidPool` policy's VF groups take the pool's GUIDs in PF-address
//!     order, each as many as it has VFs (VF index ascending), into `ibGuids`; a group the pool
//!     cannot fill is dropped and the policy rejected for that PF. Without a pool, the agent
//!     derives each IB VF's GUID from the PF's node GUID.
//!
//! PFs no valid policy selects are absent from the spec (the agent resets PFs it configured
//! before). An empty inventory (the agent has not reported yet) gives an empty spec: the caller
//! should wait for the first report rather than write it.

use std::collections::BTreeMap;

use crds::{
    NicPolicy,
    guid::{GuidRange, take_guids},
    inventory::{Nic, NicInventory},
    node_state::NicNodeStateSpec,
    policy::NicPolicySpec,
};

use super::{
    priority::{cmp_policies, policy_name},
    selector::CompiledSelector,
    vf_range::{PfEntry, VfSet},
};
use crate::validate::{FieldError, validate_policy_spec};

mod pf;
#[cfg(test)]
mod tests;

use pf::{PfBuild, check_pf, resource_conflicts};

/// PCI vendor id of NVIDIA/Mellanox, the only vendor whose firmware settings the agent writes.
pub const VENDOR_NVIDIA: &str = "15b3";

/// A policy that was not applied to a PF of a node (or to the whole node when `pf` is `None`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rejection {
    /// The rejected policy.
    pub policy: String,
    /// PCI address of the PF; `None` when the whole policy is rejected.
    pub pf: Option<String>,
    /// Field path in the rejected policy (`spec.numVfs`, `spec.nicSelector.pfNames[0]`).
    pub field: String,
    /// Why, naming the PF, the values and any conflicting policy.
    pub reason: String,
    /// The policy it conflicts with, when the rejection is a conflict.
    pub conflicts_with: Option<String>,
    /// The corresponding field in the conflicting policy.
    pub conflicting_field: Option<String>,
}

/// Something applied differently from what a policy literally asked, without rejecting it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    /// The policy concerned.
    pub policy: String,
    /// PCI address of the PF.
    pub pf: Option<String>,
    /// What happened.
    pub message: String,
}

/// The planner's answer for one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePlan {
    /// The desired state to write into `NicNodeState.spec`.
    pub spec: NicNodeStateSpec,
    /// Policies (or policy/PF pairs) not applied, sorted.
    pub rejections: Vec<Rejection>,
    /// Adjustments worth telling the administrator, sorted.
    pub warnings: Vec<Warning>,
    /// Names of the valid policies whose `nodeSelector` matches the node, in precedence order.
    pub selected_policies: Vec<String>,
}

/// A policy that failed validation and is ignored by the planner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPolicy {
    /// Policy name.
    pub name: String,
    /// What is wrong, by field.
    pub errors: Vec<FieldError>,
}

/// A validated, parsed policy.
#[derive(Clone, Debug)]
struct CompiledPolicy {
    name: String,
    spec: NicPolicySpec,
    node_selector: CompiledSelector,
    vendor: Option<String>,
    device: Option<String>,
    pf_names: Vec<PfEntry>,
    root_devices: Vec<PfEntry>,
}

/// How a policy matched one PF.
struct Claim {
    vfs: VfSet,
    /// Field the VF set comes from (for messages).
    field: String,
}

impl CompiledPolicy {
    fn compile(p: &NicPolicy) -> Result<Self, InvalidPolicy> {
        let name = policy_name(p).to_owned();
        let invalid = |errors| InvalidPolicy {
            name: name.clone(),
            errors,
        };
        validate_policy_spec(&p.spec).map_err(invalid)?;
        let node_selector = CompiledSelector::compile(&p.spec.node_selector).map_err(|e| {
            invalid(vec![FieldError::new(
                format!("spec.nodeSelector.{}", e.relative_path()),
                e.to_string(),
            )])
        })?;
        let parse = |entries: &[String], field: &str| -> Result<Vec<PfEntry>, InvalidPolicy> {
            entries
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    PfEntry::parse(s).map_err(|e| {
                        invalid(vec![FieldError::new(
                            format!("spec.nicSelector.{field}[{i}]"),
                            e.to_string(),
                        )])
                    })
                })
                .collect()
        };
        let sel = &p.spec.nic_selector;
        let mut root_devices = parse(&sel.root_devices, "rootDevices")?;
        for e in &mut root_devices {
            e.name.make_ascii_lowercase();
        }
        Ok(Self {
            pf_names: parse(&sel.pf_names, "pfNames")?,
            root_devices,
            vendor: sel.vendor.as_ref().map(|v| v.to_ascii_lowercase()),
            device: sel.device_id.as_ref().map(|v| v.to_ascii_lowercase()),
            node_selector,
            spec: p.spec.clone(),
            name,
        })
    }

    /// The VFs this policy claims on `nic`, or `None` when its `nicSelector` does not match.
    fn claim(&self, nic: &Nic) -> Option<Claim> {
        if self.vendor.is_none()
            && self.device.is_none()
            && self.pf_names.is_empty()
            && self.root_devices.is_empty()
        {
            return None;
        }
        if self
            .vendor
            .as_ref()
            .is_some_and(|v| !v.eq_ignore_ascii_case(&nic.vendor_id))
            || self
                .device
                .as_ref()
                .is_some_and(|d| !d.eq_ignore_ascii_case(&nic.device_id))
        {
            return None;
        }
        let mut field = "spec.nicSelector".to_owned();
        let mut vfs = None;
        if !self.pf_names.is_empty() {
            let name = nic.name.as_deref()?;
            let (i, e) = self
                .pf_names
                .iter()
                .enumerate()
                .find(|(_, e)| e.name == name)?;
            field = format!("spec.nicSelector.pfNames[{i}]");
            vfs = e.vfs.clone();
        }
        if !self.root_devices.is_empty() {
            let (i, e) = self
                .root_devices
                .iter()
                .enumerate()
                .find(|(_, e)| e.name.eq_ignore_ascii_case(&nic.pci_address))?;
            if e.vfs.is_some() || self.pf_names.is_empty() {
                field = format!("spec.nicSelector.rootDevices[{i}]");
                vfs = vfs.or_else(|| e.vfs.clone());
            }
        }
        Some(Claim {
            vfs: vfs.unwrap_or_else(|| VfSet::first_n(self.spec.num_vfs)),
            field,
        })
    }

    fn label(&self) -> String {
        format!("{} (priority {})", self.name, self.spec.priority)
    }
}

/// Valid policies compiled once, in precedence order, ready to plan many nodes.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    policies: Vec<CompiledPolicy>,
    invalid: Vec<InvalidPolicy>,
}

impl PolicySet {
    /// Validates, parses and orders the policies. Invalid ones are kept aside in
    /// [`PolicySet::invalid`].
    pub fn new(policies: &[NicPolicy]) -> Self {
        let mut sorted: Vec<&NicPolicy> = policies.iter().collect();
        sorted.sort_by(|a, b| cmp_policies(a, b));
        let mut set = Self::default();
        for p in sorted {
            match CompiledPolicy::compile(p) {
                Ok(c) => set.policies.push(c),
                Err(e) => set.invalid.push(e),
            }
        }
        set
    }

    /// Policies that failed validation (sorted by precedence).
    pub fn invalid(&self) -> &[InvalidPolicy] {
        &self.invalid
    }

    /// Names of the valid policies, in precedence order.
    pub fn valid_names(&self) -> impl Iterator<Item = &str> {
        self.policies.iter().map(|p| p.name.as_str())
    }

    /// Plans one node. See the module documentation for the rules.
    pub fn plan_node(
        &self,
        node_labels: &BTreeMap<String, String>,
        inventory: &NicInventory,
    ) -> NodePlan {
        self.plan_nics(node_labels, &inventory.nics)
    }

    /// [`PolicySet::plan_node`] over the PFs of an inventory, for callers that hold them in
    /// another structure (a `NicNodeState.status`) and would otherwise copy them.
    pub fn plan_nics(&self, node_labels: &BTreeMap<String, String>, nics: &[Nic]) -> NodePlan {
        let selected: Vec<&CompiledPolicy> = self
            .policies
            .iter()
            .filter(|p| p.node_selector.matches(node_labels))
            .collect();
        let mut plan = NodePlan {
            selected_policies: selected.iter().map(|p| p.name.clone()).collect(),
            ..NodePlan::default()
        };
        // Rule 6 considers only policies that claim a PF of this node.
        let claiming: Vec<&CompiledPolicy> = selected
            .iter()
            .copied()
            .filter(|p| nics.iter().any(|n| p.claim(n).is_some()))
            .collect();
        let resource_conflicts = resource_conflicts(&claiming);

        let mut nics: Vec<&Nic> = nics.iter().collect();
        nics.sort_by(|a, b| a.pci_address.cmp(&b.pci_address));
        for nic in nics {
            let mut pf: Option<PfBuild<'_>> = None;
            for p in &selected {
                let Some(claim) = p.claim(nic) else { continue };
                let reject = |plan: &mut NodePlan, field: String, reason: String| {
                    plan.rejections.push(Rejection {
                        policy: p.name.clone(),
                        pf: Some(nic.pci_address.clone()),
                        field,
                        reason,
                        conflicts_with: None,
                        conflicting_field: None,
                    });
                };
                if let Some(r) = resource_conflicts.get(p.name.as_str()) {
                    plan.rejections.push(Rejection {
                        pf: Some(nic.pci_address.clone()),
                        ..r.clone()
                    });
                    continue;
                }
                if let Err((field, reason)) = check_pf(p, &claim, nic) {
                    reject(&mut plan, field, reason);
                    continue;
                }
                match pf.as_mut() {
                    None => pf = Some(PfBuild::new(p, claim)),
                    Some(b) => {
                        if let Err(r) = b.compose(p, claim, nic) {
                            plan.rejections.push(*r);
                        }
                    }
                }
            }
            if let Some(b) = pf {
                let (iface, warnings) = b.finish(nic);
                plan.spec.interfaces.push(iface);
                plan.warnings.extend(warnings);
            }
        }
        self.hand_out_guid_pools(&mut plan);
        plan.rejections.sort();
        plan.warnings.sort();
        plan
    }

    /// Rule 10: each `ibGuidPool` policy's groups take the pool's GUIDs in PF-address order, as
    /// many as they have VFs; a group the pool cannot fill is dropped and its PF rejected.
    fn hand_out_guid_pools(&self, plan: &mut NodePlan) {
        for p in self
            .policies
            .iter()
            .filter(|p| !p.spec.ib_guid_pool.is_empty())
        {
            let pool = &p.spec.ib_guid_pool;
            let mut used: u128 = 0;
            for iface in &mut plan.spec.interfaces {
                let mut rejected = None;
                iface.vf_groups.retain_mut(|g| {
                    if g.policy != p.name {
                        return true;
                    }
                    let n: u128 = g.vfs.iter().map(|r| u128::from(r.last - r.first) + 1).sum();
                    match take_guids(pool, used, n) {
                        Some(guids) => {
                            used += n;
                            g.ib_guids = guids;
                            true
                        }
                        None => {
                            rejected = Some(n);
                            false
                        }
                    }
                });
                if let Some(n) = rejected {
                    let total: u128 = pool.iter().map(GuidRange::len).sum();
                    plan.rejections.push(Rejection {
                        policy: p.name.clone(),
                        pf: Some(iface.pci_address.clone()),
                        field: "spec.ibGuidPool".into(),
                        reason: format!(
                            "the GUID pool is exhausted: PF {} needs {n} GUIDs, {} of {total} are left after the PFs before it",
                            iface.pci_address,
                            total - used
                        ),
                        conflicts_with: None,
                        conflicting_field: None,
                    });
                }
            }
        }
    }
}

/// Plans one node from scratch (validates and sorts `policies` first). Invalid policies are
/// reported as whole-policy rejections (`pf: None`); to plan many nodes, build a [`PolicySet`]
/// once and call [`PolicySet::plan_node`], which reports them once in [`PolicySet::invalid`].
pub fn desired_node_state(
    policies: &[NicPolicy],
    node_labels: &BTreeMap<String, String>,
    inventory: &NicInventory,
) -> NodePlan {
    let set = PolicySet::new(policies);
    let mut plan = set.plan_node(node_labels, inventory);
    for inv in set.invalid() {
        for e in &inv.errors {
            plan.rejections.push(Rejection {
                policy: inv.name.clone(),
                pf: None,
                field: e.field.clone(),
                reason: format!("invalid policy: {}", e.message),
                conflicts_with: None,
                conflicting_field: None,
            });
        }
    }
    plan.rejections.sort();
    plan
}

/// `ens1f0 (0000:3b:00.0)`, or the address alone when the PF has no netdev.
pub(crate) fn pf_label(nic: &Nic) -> String {
    match &nic.name {
        Some(n) => format!("{n} ({})", nic.pci_address),
        None => nic.pci_address.clone(),
    }
}
