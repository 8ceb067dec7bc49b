//! The per-PF rules of [`super`]: resource conflicts (6), PF checks (3), the winner (4),
//! composition of VF groups (5) and MTU (7).

use std::collections::HashMap;

use crds::{
    inventory::{EswitchMode, LinkType, Nic},
    node_state::{InterfaceSpec, PfPool, VfGroup},
    policy::FirmwareSpec,
};

use super::{Claim, CompiledPolicy, Rejection, VENDOR_NVIDIA, Warning, pf_label};
use crate::{vf_range::VfSet, wire};

/// Rule 6: per resource name, the first policy (precedence order) decides the device kind.
pub(super) fn resource_conflicts<'a>(
    selected: &[&'a CompiledPolicy],
) -> HashMap<&'a str, Rejection> {
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
        } else if a.allocation != b.allocation {
            Some(("allocation", wire(&a.allocation), wire(&b.allocation)))
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
pub(super) fn check_pf(
    p: &CompiledPolicy,
    claim: &Claim,
    nic: &Nic,
) -> Result<(), (String, String)> {
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

pub(super) fn eswitch_str(m: EswitchMode) -> &'static str {
    match m {
        EswitchMode::Legacy => "legacy",
        EswitchMode::Switchdev => "switchdev",
    }
}

/// A PF-level setting and the policy that decided it.
#[derive(Clone, Debug)]
pub(super) struct Decided<'a, T> {
    value: T,
    by: &'a CompiledPolicy,
}

/// A PF being assembled from its winner and composed policies.
pub(super) struct PfBuild<'a> {
    winner: &'a CompiledPolicy,
    eswitch: Option<Decided<'a, EswitchMode>>,
    link: Option<Decided<'a, LinkType>>,
    firmware: Option<Decided<'a, FirmwareSpec>>,
    groups: Vec<(VfSet, &'a CompiledPolicy, String)>,
}

impl<'a> PfBuild<'a> {
    pub(super) fn new(p: &'a CompiledPolicy, claim: Claim) -> Self {
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
    pub(super) fn compose(
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

    pub(super) fn finish(mut self, nic: &Nic) -> (InterfaceSpec, Vec<Warning>) {
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
            allocation: whole.allocation,
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
                    allocation: p.spec.allocation,
                    ib_guids: Vec::new(),
                })
                .collect(),
        };
        (iface, warnings)
    }
}
