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
//!    `deviceType`, `isRdma`, `excludeTopology` and `needVhostNet` (one device-plugin pool has one kind of device).
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
//! PFs no valid policy selects are absent from the spec (the agent resets PFs it configured
//! before). An empty inventory (the agent has not reported yet) gives an empty spec: the caller
//! should wait for the first report rather than write it.

use std::collections::{BTreeMap, HashMap};

use crds::{
    NicPolicy,
    inventory::{EswitchMode, LinkType, Nic, NicInventory},
    node_state::{InterfaceSpec, NicNodeStateSpec, PfPool, VfGroup},
    policy::{FirmwareSpec, NicPolicySpec},
};

use super::{
    priority::{cmp_policies, policy_name},
    selector::CompiledSelector,
    vf_range::{PfEntry, VfSet},
    wire,
};
use crate::validate::{FieldError, validate_policy_spec};

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
        plan.rejections.sort();
        plan.warnings.sort();
        plan
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

/// Rule 6: per resource name, the first policy (precedence order) decides the device kind.
fn resource_conflicts<'a>(selected: &[&'a CompiledPolicy]) -> HashMap<&'a str, Rejection> {
    let mut owner: HashMap<&str, &CompiledPolicy> = HashMap::new();
    let mut out = HashMap::new();
    for p in selected {
        let Some(o) = owner.get(p.spec.resource_name.as_str()) else {
            owner.insert(p.spec.resource_name.as_str(), p);
            continue;
        };
        let (a, b) = (&o.spec, &p.spec);
        let diff = if a.whole_pf != b.whole_pf {
            Some(("wholePf", a.whole_pf.to_string(), b.whole_pf.to_string()))
        } else if a.device_type != b.device_type {
            Some(("deviceType", wire(&a.device_type), wire(&b.device_type)))
        } else if a.is_rdma != b.is_rdma {
            Some(("isRdma", a.is_rdma.to_string(), b.is_rdma.to_string()))
        } else if a.exclude_topology != b.exclude_topology {
            Some((
                "excludeTopology",
                a.exclude_topology.to_string(),
                b.exclude_topology.to_string(),
            ))
        } else if a.need_vhost_net != b.need_vhost_net {
            Some((
                "needVhostNet",
                a.need_vhost_net.to_string(),
                b.need_vhost_net.to_string(),
            ))
        } else {
            None
        };
        if let Some((field, theirs, mine)) = diff {
            out.insert(
                p.name.as_str(),
                Rejection {
                    policy: p.name.clone(),
                    pf: None,
                    field: format!("spec.{field}"),
                    reason: format!(
                        "resource {} has {field} {theirs} in policy {}, which takes precedence; \
                         this policy has {mine}, and one resource must be one kind of device",
                        b.resource_name,
                        o.label()
                    ),
                    conflicts_with: Some(o.name.clone()),
                    conflicting_field: Some(format!("spec.{field}")),
                },
            );
        }
    }
    out
}

/// Rule 3: checks of one policy against one PF, independent of other policies.
fn check_pf(p: &CompiledPolicy, claim: &Claim, nic: &Nic) -> Result<(), (String, String)> {
    let s = &p.spec;
    let pf = pf_label(nic);
    let nvidia = nic.vendor_id.eq_ignore_ascii_case(VENDOR_NVIDIA);
    let fw_total = s.firmware.as_ref().and_then(|f| f.total_vfs);
    if s.firmware.is_some() && !nvidia {
        return Err((
            "spec.firmware".into(),
            format!(
                "PF {pf} has vendor {}; firmware settings are supported on NVIDIA ({VENDOR_NVIDIA}) NICs only",
                nic.vendor_id
            ),
        ));
    }
    match fw_total {
        // a PF offered whole needs no SR-IOV
        _ if s.whole_pf => {}
        None if nic.total_vfs == 0 => {
            return Err((
                "spec.numVfs".into(),
                format!("PF {pf} is not SR-IOV capable (sriov_totalvfs is 0)"),
            ));
        }
        None if s.num_vfs > nic.total_vfs => {
            return Err((
                "spec.numVfs".into(),
                format!(
                    "numVfs {} exceeds sriov_totalvfs {} of PF {pf}",
                    s.num_vfs, nic.total_vfs
                ),
            ));
        }
        _ => {}
    }
    if let Some(max) = claim.vfs.max()
        && max >= s.num_vfs
    {
        let beyond =
            claim
                .vfs
                .intersection(&VfSet::from_ranges([crds::node_state::VfIndexRange {
                    first: s.num_vfs,
                    last: u32::MAX,
                }]));
        return Err((
            claim.field.clone(),
            format!(
                "VFs {beyond} of PF {pf} are beyond numVfs {} (VF indices are 0-{})",
                s.num_vfs,
                s.num_vfs.saturating_sub(1)
            ),
        ));
    }
    if let Some(want) = s.link_type
        && nic.link_type.is_some_and(|have| have != want)
        && !nvidia
    {
        return Err((
            "spec.linkType".into(),
            format!(
                "PF {pf} is {} and its link type cannot be changed (vendor {})",
                wire(&nic.link_type.unwrap_or(want)),
                nic.vendor_id
            ),
        ));
    }
    if s.eswitch_mode == Some(EswitchMode::Switchdev) {
        if nic.eswitch_mode.is_none() {
            return Err((
                "spec.eswitchMode".into(),
                format!(
                    "PF {pf} has no eswitch (no devlink eswitch support), so switchdev is not possible"
                ),
            ));
        }
        let link = s.link_type.or(nic.link_type);
        if link == Some(LinkType::Ib) {
            return Err((
                "spec.eswitchMode".into(),
                format!("PF {pf} is InfiniBand; switchdev needs Ethernet (set linkType: eth)"),
            ));
        }
    }
    if s.externally_managed {
        if s.num_vfs > nic.num_vfs {
            return Err((
                "spec.numVfs".into(),
                format!(
                    "PF {pf} is externally managed and has {} VFs; the policy needs {} (the operator does not create VFs on it)",
                    nic.num_vfs, s.num_vfs
                ),
            ));
        }
        if let Some(want) = s.eswitch_mode
            && nic.eswitch_mode != Some(want)
        {
            return Err((
                "spec.eswitchMode".into(),
                format!(
                    "PF {pf} is externally managed and its eswitch is {}; the policy asks for {} (the operator does not change it)",
                    nic.eswitch_mode.map_or("absent", eswitch_str),
                    eswitch_str(want)
                ),
            ));
        }
    }
    Ok(())
}

fn eswitch_str(m: EswitchMode) -> &'static str {
    match m {
        EswitchMode::Legacy => "legacy",
        EswitchMode::Switchdev => "switchdev",
    }
}

/// A PF-level setting and the policy that decided it.
#[derive(Clone, Debug)]
struct Decided<'a, T> {
    value: T,
    by: &'a CompiledPolicy,
}

/// A PF being assembled from its winner and composed policies.
struct PfBuild<'a> {
    winner: &'a CompiledPolicy,
    eswitch: Option<Decided<'a, EswitchMode>>,
    link: Option<Decided<'a, LinkType>>,
    firmware: Option<Decided<'a, FirmwareSpec>>,
    groups: Vec<(VfSet, &'a CompiledPolicy, String)>,
}

impl<'a> PfBuild<'a> {
    fn new(p: &'a CompiledPolicy, claim: Claim) -> Self {
        Self {
            winner: p,
            eswitch: p.spec.eswitch_mode.map(|value| Decided { value, by: p }),
            link: p.spec.link_type.map(|value| Decided { value, by: p }),
            firmware: p
                .spec
                .firmware
                .clone()
                .map(|value| Decided { value, by: p }),
            groups: vec![(claim.vfs, p, claim.field)],
        }
    }

    /// Rule 5.
    fn compose(
        &mut self,
        p: &'a CompiledPolicy,
        claim: Claim,
        nic: &Nic,
    ) -> Result<(), Box<Rejection>> {
        let pf = pf_label(nic);
        let conflict = |field: &str, reason: String, other: &CompiledPolicy, other_field: &str| {
            Box::new(Rejection {
                policy: p.name.clone(),
                pf: Some(nic.pci_address.clone()),
                field: field.to_owned(),
                reason,
                conflicts_with: Some(other.name.clone()),
                conflicting_field: Some(other_field.to_owned()),
            })
        };
        let setting = |field: &str, mine: String, theirs: String, by: &CompiledPolicy| {
            conflict(
                &format!("spec.{field}"),
                format!(
                    "PF {pf}: {field} {mine} differs from {field} {theirs} set by policy {}, which takes precedence on this PF",
                    by.label()
                ),
                by,
                &format!("spec.{field}"),
            )
        };
        for (vfs, owner, owner_field) in &self.groups {
            let shared = vfs.intersection(&claim.vfs);
            if !shared.is_empty() {
                return Err(conflict(
                    &claim.field,
                    format!(
                        "VFs {shared} of PF {pf} are already claimed by policy {}, which takes precedence",
                        owner.label()
                    ),
                    owner,
                    owner_field,
                ));
            }
        }
        let w = self.winner;
        if w.spec.whole_pf || p.spec.whole_pf {
            let (whole, other) = if w.spec.whole_pf { (w, p) } else { (p, w) };
            return Err(conflict(
                "spec.wholePf",
                format!(
                    "PF {pf} is offered whole by policy {} and has VFs or another pool from policy {}; \
                     a whole-PF pool takes the PF alone",
                    whole.label(),
                    other.label()
                ),
                w,
                "spec.wholePf",
            ));
        }
        if p.spec.num_vfs != w.spec.num_vfs {
            return Err(setting(
                "numVfs",
                p.spec.num_vfs.to_string(),
                w.spec.num_vfs.to_string(),
                w,
            ));
        }
        if p.spec.externally_managed != w.spec.externally_managed {
            return Err(setting(
                "externallyManaged",
                p.spec.externally_managed.to_string(),
                w.spec.externally_managed.to_string(),
                w,
            ));
        }
        if let (Some(mine), Some(d)) = (p.spec.eswitch_mode, &self.eswitch)
            && mine != d.value
        {
            return Err(setting(
                "eswitchMode",
                eswitch_str(mine).into(),
                eswitch_str(d.value).into(),
                d.by,
            ));
        }
        if let (Some(mine), Some(d)) = (p.spec.link_type, &self.link)
            && mine != d.value
        {
            return Err(setting("linkType", wire(&mine), wire(&d.value), d.by));
        }
        if let (Some(mine), Some(d)) = (&p.spec.firmware, &self.firmware)
            && *mine != d.value
        {
            return Err(setting("firmware", wire(mine), wire(&d.value), d.by));
        }
        if self.eswitch.is_none() {
            self.eswitch = p.spec.eswitch_mode.map(|value| Decided { value, by: p });
        }
        if self.link.is_none() {
            self.link = p.spec.link_type.map(|value| Decided { value, by: p });
        }
        if self.firmware.is_none() {
            self.firmware = p
                .spec
                .firmware
                .clone()
                .map(|value| Decided { value, by: p });
        }
        self.groups.push((claim.vfs, p, claim.field));
        Ok(())
    }

    fn finish(mut self, nic: &Nic) -> (InterfaceSpec, Vec<Warning>) {
        self.groups.sort_by_key(|(vfs, _, _)| vfs.min());
        let mtu = self.groups.iter().filter_map(|(_, p, _)| p.spec.mtu).max();
        let mut warnings = Vec::new();
        if let (Some(pf_mtu), Some(own)) = (mtu, self.winner.spec.mtu)
            && pf_mtu > own
            && let Some((_, by, _)) = self
                .groups
                .iter()
                .find(|(_, p, _)| p.spec.mtu == Some(pf_mtu))
        {
            warnings.push(Warning {
                policy: self.winner.name.clone(),
                pf: Some(nic.pci_address.clone()),
                message: format!(
                    "PF {} MTU is {pf_mtu}, not {own}: policy {} has VFs with MTU {pf_mtu} on it, and the PF must carry their frames",
                    pf_label(nic),
                    by.label()
                ),
            });
        }
        let whole = &self.winner.spec;
        let whole_pf = whole.whole_pf.then(|| PfPool {
            resource_name: whole.resource_name.clone(),
            device_type: whole.device_type,
            is_rdma: whole.is_rdma,
            need_vhost_net: whole.need_vhost_net,
            exclude_topology: whole.exclude_topology,
        });
        if whole_pf.is_some() {
            // the claim of a whole-PF policy is the PF, not VFs
            self.groups.clear();
        }
        let iface = InterfaceSpec {
            whole_pf,
            pci_address: nic.pci_address.clone(),
            name: nic.name.clone(),
            num_vfs: self.winner.spec.num_vfs,
            mtu,
            eswitch_mode: self.eswitch.map(|d| d.value),
            link_type: self.link.map(|d| d.value),
            externally_managed: self.winner.spec.externally_managed,
            firmware: self.firmware.map(|d| d.value),
            policy: self.winner.name.clone(),
            vf_groups: self
                .groups
                .into_iter()
                .map(|(vfs, p, _)| VfGroup {
                    policy: p.name.clone(),
                    resource_name: p.spec.resource_name.clone(),
                    vfs: vfs.into_ranges(),
                    device_type: p.spec.device_type,
                    is_rdma: p.spec.is_rdma,
                    need_vhost_net: p.spec.need_vhost_net,
                    mtu: p.spec.mtu,
                    exclude_topology: p.spec.exclude_topology,
                })
                .collect(),
        };
        (iface, warnings)
    }
}

#[cfg(test)]
mod tests {
    use crds::{
        inventory::{EswitchMode, LinkType},
        node_state::VfIndexRange,
        policy::{FirmwareSpec, VfDeviceType},
    };

    use super::*;
    use crate::fixtures::{cx6, e810, inventory, labels, policy, with_vfs};

    fn gpu() -> BTreeMap<String, String> {
        labels(&[("gpu", "true")])
    }

    fn r(first: u32, last: u32) -> VfIndexRange {
        VfIndexRange { first, last }
    }

    fn groups(plan: &NodePlan, pf: usize) -> Vec<(String, Vec<VfIndexRange>)> {
        plan.spec.interfaces[pf]
            .vf_groups
            .iter()
            .map(|g| (g.policy.clone(), g.vfs.clone()))
            .collect()
    }

    #[test]
    fn issue_example_every_cx6_dx_port_gets_8_switchdev_vfs() {
        let mut p = policy("gpu-cx6", 99, &[]);
        p.spec.nic_selector.device_id = Some("101d".into());
        p.spec.eswitch_mode = Some(EswitchMode::Switchdev);
        let inv = inventory(vec![
            cx6("0000:3b:00.1", "ens1f1"),
            e810("0000:af:00.0", "ens5f0"),
            cx6("0000:3b:00.0", "ens1f0"),
        ]);
        let plan = desired_node_state(&[p], &gpu(), &inv);
        assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
        let addrs: Vec<_> = plan
            .spec
            .interfaces
            .iter()
            .map(|i| i.pci_address.as_str())
            .collect();
        assert_eq!(
            addrs,
            ["0000:3b:00.0", "0000:3b:00.1"],
            "sorted, Intel PF untouched"
        );
        for i in &plan.spec.interfaces {
            assert_eq!(i.num_vfs, 8);
            assert_eq!(i.eswitch_mode, Some(EswitchMode::Switchdev));
            assert_eq!(i.policy, "gpu-cx6");
            assert_eq!(i.vf_groups.len(), 1);
            assert_eq!(i.vf_groups[0].vfs, [r(0, 7)]);
            assert_eq!(i.vf_groups[0].resource_name, "cx6_vf");
        }
        assert_eq!(plan.selected_policies, ["gpu-cx6"]);
    }

    #[test]
    fn unselected_node_gets_an_empty_spec() {
        let plan = desired_node_state(
            &[policy("a", 1, &["ens1f0"])],
            &labels(&[("gpu", "false")]),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert!(plan.spec.interfaces.is_empty());
        assert!(plan.selected_policies.is_empty());
    }

    #[test]
    fn disjoint_ranges_compose_into_groups_sorted_by_first_vf() {
        let mut b = policy("b", 20, &["ens1f0#0-3"]);
        b.spec.resource_name = "low".into();
        let mut a = policy("a", 10, &["ens1f0#4,6-7"]);
        a.spec.resource_name = "high".into();
        let plan = desired_node_state(
            &[b, a],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert!(plan.rejections.is_empty());
        assert_eq!(plan.spec.interfaces.len(), 1);
        assert_eq!(
            plan.spec.interfaces[0].policy, "a",
            "the lower priority number decides the PF"
        );
        assert_eq!(
            groups(&plan, 0),
            [
                ("b".into(), vec![r(0, 3)]),
                ("a".into(), vec![r(4, 4), r(6, 7)])
            ]
        );
    }

    #[test]
    fn overlapping_range_rejects_the_lower_precedence_policy_naming_both() {
        let a = policy("a", 10, &["ens1f0#0-3"]);
        let b = policy("b", 20, &["ens1f0#2-5"]);
        let plan = desired_node_state(
            &[b.clone(), a.clone()],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert_eq!(groups(&plan, 0), [("a".into(), vec![r(0, 3)])]);
        assert_eq!(plan.rejections.len(), 1);
        let rej = &plan.rejections[0];
        assert_eq!(rej.policy, "b");
        assert_eq!(rej.pf.as_deref(), Some("0000:3b:00.0"));
        assert_eq!(rej.field, "spec.nicSelector.pfNames[0]");
        assert_eq!(rej.conflicts_with.as_deref(), Some("a"));
        assert!(
            rej.reason.contains("VFs 2-3 of PF ens1f0 (0000:3b:00.0)"),
            "{}",
            rej.reason
        );
        assert!(
            rej.reason.contains("policy a (priority 10)"),
            "{}",
            rej.reason
        );

        // Swap priorities: now b wins and a is rejected.
        let (mut a2, mut b2) = (a, b);
        a2.spec.priority = 30;
        b2.spec.priority = 5;
        let plan = desired_node_state(
            &[a2, b2],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert_eq!(groups(&plan, 0), [("b".into(), vec![r(2, 5)])]);
        assert_eq!(plan.rejections[0].policy, "a");
    }

    #[test]
    fn equal_priority_is_decided_by_name() {
        let plan = desired_node_state(
            &[
                policy("zeta", 10, &["ens1f0"]),
                policy("alpha", 10, &["ens1f0"]),
            ],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert_eq!(plan.spec.interfaces[0].policy, "alpha");
        assert_eq!(plan.rejections.len(), 1);
        assert_eq!(plan.rejections[0].policy, "zeta");
    }

    #[test]
    fn pf_level_settings_must_agree_or_the_loser_is_rejected() {
        let a = policy("a", 10, &["ens1f0#0-3"]);
        let mut b = policy("b", 20, &["ens1f0#4-7"]);
        b.spec.num_vfs = 16;
        let plan = desired_node_state(
            &[a.clone(), b],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert_eq!(plan.rejections[0].field, "spec.numVfs");
        assert!(
            plan.rejections[0]
                .reason
                .contains("numVfs 16 differs from numVfs 8 set by policy a (priority 10)")
        );

        let mut a = a;
        a.spec.eswitch_mode = Some(EswitchMode::Switchdev);
        let mut c = policy("c", 20, &["ens1f0#4-7"]);
        c.spec.eswitch_mode = Some(EswitchMode::Legacy);
        let plan = desired_node_state(
            &[a.clone(), c],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert_eq!(plan.rejections[0].field, "spec.eswitchMode");

        // An unset eswitchMode has no opinion: it composes, and a later setter decides.
        let mut w = policy("w", 1, &["ens1f0#4-7"]);
        w.spec.eswitch_mode = None;
        let plan = desired_node_state(
            &[w, a],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
        assert_eq!(plan.spec.interfaces[0].policy, "w");
        assert_eq!(
            plan.spec.interfaces[0].eswitch_mode,
            Some(EswitchMode::Switchdev)
        );
    }

    #[test]
    fn mtu_is_per_vf_group_and_the_pf_takes_the_largest() {
        let mut a = policy("a", 10, &["ens1f0#0-3"]);
        a.spec.mtu = Some(1500);
        let mut b = policy("b", 10, &["ens1f0#4-7"]);
        b.spec.mtu = Some(9000);
        let plan = desired_node_state(
            &[a, b],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        let i = &plan.spec.interfaces[0];
        assert_eq!(
            i.mtu,
            Some(9000),
            "equal priority, different MTU: the PF gets the higher one"
        );
        assert_eq!(i.vf_groups[0].mtu, Some(1500), "group a keeps its own MTU");
        assert_eq!(i.vf_groups[1].mtu, Some(9000));
        assert_eq!(plan.warnings.len(), 1);
        assert_eq!(plan.warnings[0].policy, "a");
        assert!(plan.warnings[0].message.contains("MTU is 9000, not 1500"));
    }

    #[test]
    fn num_vfs_above_total_vfs_is_rejected_and_the_next_policy_wins() {
        let mut big = policy("big", 1, &["ens1f0"]);
        big.spec.num_vfs = 32;
        let small = policy("small", 50, &["ens1f0"]);
        let plan = desired_node_state(
            &[big, small],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert_eq!(plan.rejections.len(), 1);
        assert_eq!(plan.rejections[0].field, "spec.numVfs");
        assert_eq!(
            plan.rejections[0].reason,
            "numVfs 32 exceeds sriov_totalvfs 16 of PF ens1f0 (0000:3b:00.0)"
        );
        assert_eq!(plan.spec.interfaces[0].policy, "small");
    }

    #[test]
    fn firmware_total_vfs_lifts_the_limit_on_nvidia_only() {
        let mut p = policy("fw", 1, &[]);
        p.spec.nic_selector.vendor = None;
        p.spec.nic_selector.pf_names = vec!["ens1f0".into(), "ens5f0".into()];
        p.spec.num_vfs = 32;
        p.spec.firmware = Some(FirmwareSpec {
            total_vfs: Some(32),
        });
        let plan = desired_node_state(
            &[p],
            &gpu(),
            &inventory(vec![
                cx6("0000:3b:00.0", "ens1f0"),
                e810("0000:af:00.0", "ens5f0"),
            ]),
        );
        assert_eq!(plan.spec.interfaces.len(), 1);
        assert_eq!(
            plan.spec.interfaces[0].firmware,
            Some(FirmwareSpec {
                total_vfs: Some(32)
            })
        );
        assert_eq!(plan.rejections[0].pf.as_deref(), Some("0000:af:00.0"));
        assert_eq!(plan.rejections[0].field, "spec.firmware");
    }

    #[test]
    fn pf_checks_reject_impossible_requests() {
        let node = |nic| {
            desired_node_state(
                &[policy("p", 1, &["ens1f0"])],
                &gpu(),
                &inventory(vec![nic]),
            )
        };
        let mut not_sriov = cx6("0000:3b:00.0", "ens1f0");
        not_sriov.total_vfs = 0;
        assert!(
            node(not_sriov).rejections[0]
                .reason
                .contains("not SR-IOV capable")
        );

        let mut p = policy("p", 1, &["ens1f0"]);
        p.spec.eswitch_mode = Some(EswitchMode::Switchdev);
        let mut no_eswitch = cx6("0000:3b:00.0", "ens1f0");
        no_eswitch.eswitch_mode = None;
        let plan = desired_node_state(&[p.clone()], &gpu(), &inventory(vec![no_eswitch]));
        assert!(plan.rejections[0].reason.contains("has no eswitch"));
        let mut ib = cx6("0000:3b:00.0", "ens1f0");
        ib.link_type = Some(LinkType::Ib);
        let plan = desired_node_state(&[p], &gpu(), &inventory(vec![ib]));
        assert!(
            plan.rejections[0]
                .reason
                .contains("InfiniBand; switchdev needs Ethernet")
        );

        let mut q = policy("q", 1, &[]);
        q.spec.nic_selector.vendor = Some("8086".into());
        q.spec.link_type = Some(LinkType::Ib);
        let mut intel = e810("0000:af:00.0", "ens5f0");
        intel.link_type = Some(LinkType::Eth);
        let plan = desired_node_state(&[q], &gpu(), &inventory(vec![intel]));
        assert_eq!(plan.rejections[0].field, "spec.linkType");
    }

    #[test]
    fn externally_managed_pfs_are_checked_not_changed() {
        let mut p = policy("ext", 1, &["ens1f0"]);
        p.spec.externally_managed = true;
        let plan = desired_node_state(
            &[p.clone()],
            &gpu(),
            &inventory(vec![with_vfs(cx6("0000:3b:00.0", "ens1f0"), 4, &[], &[])]),
        );
        assert!(plan.spec.interfaces.is_empty());
        assert!(
            plan.rejections[0]
                .reason
                .contains("externally managed and has 4 VFs; the policy needs 8")
        );

        let plan = desired_node_state(
            &[p.clone()],
            &gpu(),
            &inventory(vec![with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[])]),
        );
        assert!(plan.rejections.is_empty());
        assert!(plan.spec.interfaces[0].externally_managed);

        p.spec.eswitch_mode = Some(EswitchMode::Switchdev);
        let plan = desired_node_state(
            &[p.clone()],
            &gpu(),
            &inventory(vec![with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[])]),
        );
        assert_eq!(plan.rejections[0].field, "spec.eswitchMode");

        // An operator-managed policy cannot be composed onto an externally managed PF.
        let mut e = policy("e", 1, &["ens1f0#0-3"]);
        e.spec.externally_managed = true;
        let m = policy("m", 2, &["ens1f0#4-7"]);
        let plan = desired_node_state(
            &[e, m],
            &gpu(),
            &inventory(vec![with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[])]),
        );
        assert_eq!(plan.rejections[0].policy, "m");
        assert_eq!(plan.rejections[0].field, "spec.externallyManaged");
    }

    #[test]
    fn one_resource_name_means_one_kind_of_device_on_a_node() {
        let a = policy("a", 1, &["ens1f0"]);
        let mut b = policy("b", 2, &["ens1f1"]);
        b.spec.device_type = VfDeviceType::VfioPci;
        let plan = desired_node_state(
            &[b, a],
            &gpu(),
            &inventory(vec![
                cx6("0000:3b:00.0", "ens1f0"),
                cx6("0000:3b:00.1", "ens1f1"),
            ]),
        );
        assert_eq!(plan.spec.interfaces.len(), 1);
        assert_eq!(plan.rejections.len(), 1);
        assert_eq!(plan.rejections[0].policy, "b");
        assert_eq!(plan.rejections[0].field, "spec.deviceType");
        assert_eq!(plan.rejections[0].pf.as_deref(), Some("0000:3b:00.1"));

        // A policy that claims no PF on the node does not decide the resource's kind there.
        let mut absent = policy("absent", 0, &["ens9f0"]);
        absent.spec.device_type = VfDeviceType::VfioPci;
        let plan = desired_node_state(
            &[absent, policy("a", 1, &["ens1f0"])],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
        assert_eq!(plan.spec.interfaces[0].policy, "a");
    }

    #[test]
    fn need_vhost_net_is_carried_to_the_vf_group_and_must_agree_per_resource() {
        let mut a = policy("a", 1, &["ens1f0"]);
        a.spec.need_vhost_net = true;
        let b = policy("b", 2, &["ens1f1"]);
        let plan = desired_node_state(
            &[a.clone(), b],
            &gpu(),
            &inventory(vec![
                cx6("0000:3b:00.0", "ens1f0"),
                cx6("0000:3b:00.1", "ens1f1"),
            ]),
        );
        assert!(plan.spec.interfaces[0].vf_groups[0].need_vhost_net);
        assert_eq!(plan.rejections.len(), 1);
        assert_eq!(plan.rejections[0].policy, "b");
        assert_eq!(plan.rejections[0].field, "spec.needVhostNet");
        let alone = desired_node_state(
            &[a],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        let cfg = crate::render_device_plugin_config(&alone.spec, "smartnic.io");
        assert!(cfg.resource_list[0].need_vhost_net);
    }

    #[test]
    fn invalid_policies_never_apply_and_are_reported() {
        let mut bad = policy("bad", 1, &["ens1f0#0-3"]);
        bad.spec.resource_name = "bad name".into();
        let good = policy("good", 2, &["ens1f0"]);
        let set = PolicySet::new(&[bad.clone(), good.clone()]);
        assert_eq!(set.invalid().len(), 1);
        assert_eq!(set.invalid()[0].errors[0].field, "spec.resourceName");
        let plan = desired_node_state(
            &[bad, good],
            &gpu(),
            &inventory(vec![cx6("0000:3b:00.0", "ens1f0")]),
        );
        assert_eq!(plan.spec.interfaces[0].policy, "good");
        assert_eq!(plan.rejections[0].pf, None);
        assert!(plan.rejections[0].reason.starts_with("invalid policy"));
    }

    #[test]
    fn root_devices_select_by_pci_address_with_ranges() {
        let mut p = policy("p", 1, &[]);
        p.spec.nic_selector.root_devices = vec!["0000:3B:00.1#2-3".into()];
        let plan = desired_node_state(
            &[p],
            &gpu(),
            &inventory(vec![
                cx6("0000:3b:00.0", "ens1f0"),
                cx6("0000:3b:00.1", "ens1f1"),
            ]),
        );
        assert_eq!(plan.spec.interfaces.len(), 1);
        assert_eq!(plan.spec.interfaces[0].pci_address, "0000:3b:00.1");
        assert_eq!(groups(&plan, 0), [("p".into(), vec![r(2, 3)])]);
    }

    #[test]
    fn output_does_not_depend_on_input_order() {
        let mut ps = vec![
            policy("a", 10, &["ens1f0#0-3", "ens1f1"]),
            policy("b", 20, &["ens1f0#4-7"]),
            policy("c", 20, &["ens1f0#2-5"]),
            policy("d", 5, &["ens1f1#0-1"]),
        ];
        let mut nics = vec![
            cx6("0000:3b:00.0", "ens1f0"),
            cx6("0000:3b:00.1", "ens1f1"),
            e810("0000:af:00.0", "ens5f0"),
        ];
        let first = desired_node_state(&ps, &gpu(), &inventory(nics.clone()));
        ps.reverse();
        nics.reverse();
        let second = desired_node_state(&ps, &gpu(), &inventory(nics));
        assert_eq!(first, second);
        assert_eq!(
            serde_json::to_string(&first.spec).unwrap(),
            serde_json::to_string(&second.spec).unwrap()
        );
    }
}
