//! Drain planning: how disruptive a change is ([`classify`]) and which nodes may start draining
//! now ([`grant`]).
//!
//! # Change classes
//!
//! [`classify`] compares the spec the agent last applied with the new one, per PF, and uses the
//! live inventory to tell which VFs are in use. A VF counts as *in use* when it is bound to
//! `vfio-pci` (we cannot see its user), or bound to a kernel driver but its netdev is not in the
//! host namespace (a CNI moved it into a pod). A VF whose netdev is on the host, or that is
//! unbound, is free.
//!
//! | change | class | why |
//! |---|---|---|
//! | VFs created on a PF that has none | non-disruptive | no VF can be in use |
//! | VF group added, resource name / `isRdma` / `excludeTopology` changed, group removed | non-disruptive | only the device-plugin configuration changes; our plugin re-reads it, pods keep the VFs they hold |
//! | PF MTU changed | non-disruptive | the PF MTU only ever grows past the VF MTUs (planner rule 7); VFs keep working |
//! | any change on an externally managed PF's VF count or eswitch | non-disruptive | the agent never changes them |
//! | `numVfs` changed while VFs exist; PF released (reset to 0 VFs) | evict VF pods **if any VF of the PF is in use**, else non-disruptive | the kernel needs `sriov_numvfs` 0 before a new count: every VF is destroyed |
//! | eswitch mode changed while VFs exist | evict VF pods if any VF of the PF is in use, else non-disruptive | mlx5 needs every VF unbound for the mode switch, ice needs 0 VFs |
//! | VF driver changed (`netdevice` ↔ `vfio-pci`) | evict VF pods if that VF is in use | rebinding pulls the device from under its user |
//! | VF MTU changed | evict VF pods if that VF is in use | the netdev sits in the pod's namespace (or a DPDK app cached it) |
//! | a whole PF's driver changed (`wholePf` pool's `deviceType`, or the pool removed from a PF on `vfio-pci`) | evict pods if the PF may be in use (on `vfio-pci`, or its netdev not on the host) | rebinding pulls the port from under its pod |
//! | `linkType` changed | reboot | NVIDIA `LINK_TYPE_Px` is firmware; it takes effect after a reboot/firmware reset |
//! | `firmware.totalVfs` differs from `sriov_totalvfs` | reboot | NV-config `NUM_OF_VFS` takes effect after a reboot/firmware reset |
//!
//! The node's class is the most disruptive of its PFs. `EvictVfPods` evicts only pods that use
//! this operator's resources on the node; `Reboot` drains the node. Because "no VF in use" is a
//! snapshot, an agent that applies a destructive change as non-disruptive must first stop
//! advertising the PF's VFs to the kubelet and classify again with a fresh inventory.
//! Pods that attach macvlan/ipvlan children to a PF directly (`master`) are not visible in the
//! inventory; the agent's plan ([`crate::apply::plan_host`], from its `PfFacts`) counts them as
//! users of a PF whose VFs or eswitch it changes.
//!
//! # Grants
//!
//! [`grant`] implements the operator side of the drain handshake described in
//! [`crds::consts`]. Each node belongs to the one `NicPool` whose selector matches it, or to an
//! implicit default pool (`maxUnavailable` [`crds::DEFAULT_POOL_MAX_UNAVAILABLE`]). A node that
//! two pools select is never granted and is reported. `maxUnavailable` is an integer (0 pauses
//! the pool) or a percentage of the pool's nodes, rounded down but at least 1; unset means 1.
//! Nodes holding a grant keep it and count against their pool. Waiting nodes are granted oldest
//! request first (then by name; a request without a time goes last) while their pool stays
//! within `maxUnavailable`. A node whose drain timed out carries a retry-after time
//! ([`crds::ANNOTATION_DRAIN_RETRY_AFTER`]); until then it is *deferred*: skipped without
//! taking a slot, so the next node in the queue gets it. Afterwards it queues again at its old
//! request time.
//!
//! # Drain timeout
//!
//! A node holding `draining` for longer than its pool's `drainTimeoutSeconds`
//! ([`crds::DEFAULT_DRAIN_TIMEOUT_SECONDS`] when unset or for the default pool; 0 = never) is
//! [`drain_timed_out`]; the operator then gives the slot up and defers the node until
//! [`retry_after`].

use std::collections::BTreeMap;

use crds::{
    DEFAULT_DRAIN_TIMEOUT_SECONDS, DEFAULT_POOL_MAX_UNAVAILABLE, DrainGrant, DrainRequest,
    MIN_DRAIN_RETRY_AFTER_SECONDS, NicPool,
    inventory::{Nic, NicInventory},
    k8s::{
        Time,
        jiff::{SignedDuration, Timestamp},
    },
    node_state::{InterfaceSpec, NicNodeStateSpec, VfGroup, VfIndexRange},
    policy::VfDeviceType,
};

use super::{selector::CompiledSelector, vf_range::VfSet, wire};
use crate::validate::pool_max_unavailable;

/// How disruptive a change is. Ordered: `NonDisruptive < EvictVfPods < Reboot`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeClass {
    /// Applied without disturbing pods.
    #[default]
    NonDisruptive,
    /// Pods using this operator's VFs on the node must be evicted first.
    EvictVfPods,
    /// The node must be drained and rebooted.
    Reboot,
}

impl ChangeClass {
    /// The drain request the agent writes for this class.
    pub const fn drain_request(self) -> DrainRequest {
        match self {
            Self::NonDisruptive => DrainRequest::None,
            Self::EvictVfPods => DrainRequest::EvictVfPods,
            Self::Reboot => DrainRequest::Reboot,
        }
    }
}

/// What changes on one PF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfChange {
    /// PCI address of the PF.
    pub pci_address: String,
    /// The most disruptive class among `reasons`.
    pub class: ChangeClass,
    /// Each change with its class, e.g. "numVfs 8 -> 16 recreates every VF; VFs 0,3 are in use".
    pub reasons: Vec<(ChangeClass, String)>,
}

/// What changes on one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeChange {
    /// The most disruptive class of any PF (`NonDisruptive` when nothing changes).
    pub class: ChangeClass,
    /// PFs with at least one change, sorted by PCI address.
    pub pfs: Vec<PfChange>,
}

/// Classifies the move from `current` (last applied) to `desired` on a host whose live state is
/// `host`. See the module table.
pub fn classify(
    current: &NicNodeStateSpec,
    desired: &NicNodeStateSpec,
    host: &NicInventory,
) -> NodeChange {
    let mut addrs: Vec<&str> = current
        .interfaces
        .iter()
        .chain(desired.interfaces.iter())
        .map(|i| i.pci_address.as_str())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    let mut out = NodeChange::default();
    for a in addrs {
        let nic = host
            .nics
            .iter()
            .find(|n| n.pci_address.eq_ignore_ascii_case(a));
        let reasons = classify_pf(find_iface(current, a), find_iface(desired, a), nic);
        if reasons.is_empty() {
            continue;
        }
        let class = reasons.iter().map(|(c, _)| *c).max().unwrap_or_default();
        out.class = out.class.max(class);
        out.pfs.push(PfChange {
            pci_address: a.to_owned(),
            class,
            reasons,
        });
    }
    out
}

fn find_iface<'s>(spec: &'s NicNodeStateSpec, pci: &str) -> Option<&'s InterfaceSpec> {
    spec.interfaces.iter().find(|i| i.pci_address == pci)
}

/// The VFs of `nic` in use (see the module docs).
fn vfs_in_use(nic: Option<&Nic>) -> VfSet {
    let Some(nic) = nic else {
        return VfSet::empty();
    };
    let used: Vec<u32> = nic
        .vfs
        .iter()
        .filter(|vf| vf_in_use(vf))
        .map(|vf| vf.vf_id)
        .collect();
    vf_set(&used)
}

fn vf_in_use(vf: &crds::inventory::Vf) -> bool {
    match vf.driver.as_deref() {
        Some("vfio-pci") => true,
        Some(_) => vf.name.is_none(),
        None => false,
    }
}

/// A PF offered whole that must change driver kind to `want`: evict its pod when one may hold
/// it (on `vfio-pci` we cannot see its user; on a kernel driver, its netdev is not on the host).
fn whole_pf_rebind(nic: &Nic, want: VfDeviceType) -> Option<(ChangeClass, String)> {
    let on_vfio = nic.driver.as_deref() == Some("vfio-pci");
    if on_vfio == (want == VfDeviceType::VfioPci) {
        return None;
    }
    let what = format!("the whole PF is rebound to {}", wire(&want));
    Some(if on_vfio || (nic.driver.is_some() && nic.name.is_none()) {
        (
            ChangeClass::EvictVfPods,
            format!("{what}: its pod loses it"),
        )
    } else {
        (
            ChangeClass::NonDisruptive,
            format!("{what} while no pod holds it"),
        )
    })
}

fn evict_if(in_use: &VfSet, what: String) -> (ChangeClass, String) {
    if in_use.is_empty() {
        (
            ChangeClass::NonDisruptive,
            format!("{what}; no VF is in use"),
        )
    } else {
        (
            ChangeClass::EvictVfPods,
            format!("{what}; VFs {in_use} are in use"),
        )
    }
}

fn group_of(iface: Option<&InterfaceSpec>, vf: u32) -> Option<&VfGroup> {
    iface?
        .vf_groups
        .iter()
        .find(|g| g.vfs.iter().any(|r| r.first <= vf && vf <= r.last))
}

fn classify_pf(
    old: Option<&InterfaceSpec>,
    new: Option<&InterfaceSpec>,
    nic: Option<&Nic>,
) -> Vec<(ChangeClass, String)> {
    const ND: ChangeClass = ChangeClass::NonDisruptive;
    let mut reasons = Vec::new();
    let host_vfs = nic.map_or(0, |n| n.num_vfs);
    let in_use = vfs_in_use(nic);

    let Some(new) = new else {
        if let Some(old) = old {
            // a PF offered whole on vfio-pci goes back to its kernel driver
            if old.whole_pf.is_some()
                && let Some(r) = nic.and_then(|n| whole_pf_rebind(n, VfDeviceType::Netdevice))
            {
                reasons.push(r);
            }
            if old.externally_managed || host_vfs == 0 {
                reasons.push((
                    ND,
                    "PF released; its VFs are no longer advertised".to_owned(),
                ));
            } else {
                reasons.push(evict_if(
                    &in_use,
                    format!("PF released: its {host_vfs} VFs are removed"),
                ));
            }
        }
        return reasons;
    };

    // PF-level settings, compared with the host: that is what the agent will change.
    let mut recreated = false;
    if !new.externally_managed {
        if host_vfs != new.num_vfs {
            if host_vfs == 0 {
                reasons.push((
                    ND,
                    format!("creates {} VFs on a PF that has none", new.num_vfs),
                ));
            } else {
                recreated = true;
                reasons.push(evict_if(
                    &in_use,
                    format!("numVfs {host_vfs} -> {} recreates every VF", new.num_vfs),
                ));
            }
        }
        let have = nic.and_then(|n| n.eswitch_mode);
        if let (Some(want), Some(have)) = (new.eswitch_mode, have)
            && want != have
        {
            let what = format!("eswitch mode {} -> {}", wire(&have), wire(&want));
            if host_vfs == 0 || recreated {
                reasons.push((ND, format!("{what} while the PF has no VF in use")));
            } else {
                recreated = true;
                reasons.push(evict_if(&in_use, format!("{what} unbinds every VF")));
            }
        }
        if let (Some(total), Some(nic)) = (new.firmware.as_ref().and_then(|f| f.total_vfs), nic)
            && nic.total_vfs != total
        {
            reasons.push((
                ChangeClass::Reboot,
                format!(
                    "firmware totalVfs {} -> {total} takes effect after a reboot",
                    nic.total_vfs
                ),
            ));
        }
    }
    if let (Some(want), Some(have)) = (new.link_type, nic.and_then(|n| n.link_type))
        && want != have
    {
        reasons.push((
            ChangeClass::Reboot,
            format!(
                "link type {} -> {} is a firmware setting (reboot)",
                wire(&have),
                wire(&want)
            ),
        ));
    }
    if let (Some(pool), Some(nic)) = (&new.whole_pf, nic)
        && let Some(r) = whole_pf_rebind(nic, pool.device_type)
    {
        reasons.push(r);
    }
    if let Some(mtu) = new.mtu
        && nic.and_then(|n| n.mtu) != Some(mtu)
    {
        reasons.push((ND, format!("PF MTU -> {mtu}")));
    }

    // VF-level settings, only for VFs that survive. Group membership is not visible on the host,
    // so it is compared with the last applied spec; driver and MTU with the host when visible.
    if !recreated {
        let (mut rebind, mut mtu) = (Vec::new(), Vec::new());
        let mut dp_only = false;
        for vf in 0..new.num_vfs {
            let (og, ng) = (group_of(old, vf), group_of(Some(new), vf));
            let Some(ng) = ng else {
                dp_only |= og.is_some();
                continue;
            };
            let host_vf = nic.and_then(|n| n.vfs.iter().find(|v| v.vf_id == vf));
            let cur_type = host_vf
                .and_then(|v| v.driver.as_deref())
                .map(|d| {
                    if d == "vfio-pci" {
                        VfDeviceType::VfioPci
                    } else {
                        VfDeviceType::Netdevice
                    }
                })
                .or(og.map(|g| g.device_type));
            if cur_type.is_some_and(|t| t != ng.device_type) {
                rebind.push(vf);
            }
            let cur_mtu = host_vf.and_then(|v| v.mtu).or(og.and_then(|g| g.mtu));
            if ng.mtu.is_some() && host_vf.is_some() && cur_mtu != ng.mtu {
                mtu.push(vf);
            }
            dp_only |= og.is_none_or(|g| {
                g.resource_name != ng.resource_name
                    || g.is_rdma != ng.is_rdma
                    || g.exclude_topology != ng.exclude_topology
                    || g.policy != ng.policy
            });
        }
        if !rebind.is_empty() {
            let set = vf_set(&rebind);
            reasons.push(evict_if(
                &in_use.intersection(&set),
                format!("VF driver changes on VFs {set}"),
            ));
        }
        if !mtu.is_empty() {
            let set = vf_set(&mtu);
            reasons.push(evict_if(
                &in_use.intersection(&set),
                format!("VF MTU changes on VFs {set}"),
            ));
        }
        if dp_only {
            reasons.push((
                ND,
                "VF groups changed (device-plugin configuration only)".to_owned(),
            ));
        }
    }
    reasons
}

fn vf_set(vfs: &[u32]) -> VfSet {
    VfSet::from_ranges(vfs.iter().map(|&v| VfIndexRange { first: v, last: v }))
}

/// One node as the drain arbiter sees it.
#[derive(Clone, Debug)]
pub struct NodeDrainState<'a> {
    /// Node name.
    pub name: &'a str,
    /// Node labels (for pool membership).
    pub labels: &'a BTreeMap<String, String>,
    /// The agent's request ([`crds::ANNOTATION_DRAIN_REQUEST`]).
    pub request: DrainRequest,
    /// When the agent first asked ([`crds::ANNOTATION_DRAIN_REQUESTED_AT`]).
    pub requested_at: Option<Time>,
    /// The operator's grant ([`crds::ANNOTATION_DRAIN_GRANT`]).
    pub grant: DrainGrant,
    /// Not granted before this time ([`crds::ANNOTATION_DRAIN_RETRY_AFTER`], set when a drain
    /// timed out).
    pub retry_after: Option<Time>,
}

/// The pool of a node holding a grant, as the drain timeout needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderPool {
    /// Pool name; `None` for the implicit default pool (and for a node in several pools).
    pub pool: Option<String>,
    /// The pool's `drainTimeoutSeconds` with the default applied; 0 = no timeout.
    pub drain_timeout_seconds: u32,
}

/// Usage of one pool after granting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    /// Pool name; `None` for the implicit default pool.
    pub pool: Option<String>,
    /// Nodes in the pool.
    pub nodes: u32,
    /// `maxUnavailable` as a node count.
    pub max_unavailable: u32,
    /// Nodes holding a grant, including the ones granted now.
    pub draining: u32,
}

/// The arbiter's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantDecision {
    /// Nodes that may start draining now (set their grant to `draining`), in grant order.
    pub granted: Vec<String>,
    /// Nodes that already hold a grant and keep it.
    pub holding: Vec<String>,
    /// Nodes that asked and must wait, in queue order.
    pub waiting: Vec<String>,
    /// Nodes that asked but whose drain timed out and whose retry-after time has not come, in
    /// queue order. They take no slot.
    pub deferred: Vec<String>,
    /// The earliest retry-after time among `deferred`.
    pub next_retry: Option<Time>,
    /// Pool and drain timeout of every node in `holding`.
    pub holder_pools: BTreeMap<String, HolderPool>,
    /// Nodes selected by more than one pool (never granted), with the pools' names.
    pub conflicts: Vec<(String, Vec<String>)>,
    /// Per-pool usage, the default pool last.
    pub pools: Vec<PoolUsage>,
}

/// Whether a drain granted at `granted_at` has run out of time at `now`. `timeout_seconds` 0
/// never times out; a grant without a time (written before grant times were recorded) does not
/// time out either (the operator records one first).
pub fn drain_timed_out(granted_at: Option<&Time>, timeout_seconds: u32, now: Timestamp) -> bool {
    match granted_at {
        Some(at) if timeout_seconds > 0 => {
            now.duration_since(at.0) >= SignedDuration::from_secs(i64::from(timeout_seconds))
        }
        _ => false,
    }
}

/// When a node whose drain timed out at `now` may be granted again: `now` plus the timeout, at
/// least [`MIN_DRAIN_RETRY_AFTER_SECONDS`].
pub fn retry_after(now: Timestamp, timeout_seconds: u32) -> Timestamp {
    let wait = timeout_seconds.max(MIN_DRAIN_RETRY_AFTER_SECONDS);
    now.saturating_add(SignedDuration::from_secs(i64::from(wait)))
        .unwrap_or(now)
}

/// Decides which waiting nodes may start draining now. See the module documentation.
pub fn grant(nodes: &[NodeDrainState<'_>], pools: &[NicPool], now: Timestamp) -> GrantDecision {
    let compiled: Vec<(&str, Option<CompiledSelector>, &NicPool)> = pools
        .iter()
        .map(|p| {
            (
                p.metadata.name.as_deref().unwrap_or_default(),
                CompiledSelector::compile(&p.spec.node_selector).ok(),
                p,
            )
        })
        .collect();
    let default_idx = compiled.len();
    let mut decision = GrantDecision::default();
    // node index -> pool index
    let mut member: Vec<Option<usize>> = Vec::with_capacity(nodes.len());
    let mut count = vec![0u32; default_idx + 1];
    for n in nodes {
        let hits: Vec<usize> = compiled
            .iter()
            .enumerate()
            .filter(|(_, (_, s, _))| s.as_ref().is_some_and(|s| s.matches(n.labels)))
            .map(|(i, _)| i)
            .collect();
        match hits.as_slice() {
            [] => member.push(Some(default_idx)),
            [one] => member.push(Some(*one)),
            many => {
                decision.conflicts.push((
                    n.name.to_owned(),
                    many.iter().map(|&i| compiled[i].0.to_owned()).collect(),
                ));
                member.push(None);
            }
        }
        if let Some(Some(i)) = member.last() {
            count[*i] += 1;
        }
    }
    let max: Vec<u32> = (0..=default_idx)
        .map(|i| match compiled.get(i) {
            None => DEFAULT_POOL_MAX_UNAVAILABLE,
            Some((_, _, p)) => pool_max_unavailable(&p.spec, count[i]),
        })
        .collect();
    let mut draining = vec![0u32; default_idx + 1];
    for (n, m) in nodes.iter().zip(&member) {
        if n.grant != DrainGrant::None {
            if let Some(i) = m {
                draining[*i] += 1;
            }
            decision.holding.push(n.name.to_owned());
            let pool = m.and_then(|i| compiled.get(i));
            decision.holder_pools.insert(
                n.name.to_owned(),
                HolderPool {
                    pool: pool.map(|(name, _, _)| (*name).to_owned()),
                    drain_timeout_seconds: pool
                        .map_or(DEFAULT_DRAIN_TIMEOUT_SECONDS, |(_, _, p)| {
                            p.spec.drain_timeout_seconds()
                        }),
                },
            );
        }
    }
    let mut queue: Vec<(usize, &NodeDrainState<'_>)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.request != DrainRequest::None && n.grant == DrainGrant::None)
        .collect();
    queue.sort_by(|(_, a), (_, b)| {
        (a.requested_at.is_none(), &a.requested_at, a.name).cmp(&(
            b.requested_at.is_none(),
            &b.requested_at,
            b.name,
        ))
    });
    for (idx, n) in queue {
        if let Some(until) = n.retry_after.as_ref().filter(|t| t.0 > now) {
            decision.deferred.push(n.name.to_owned());
            if decision.next_retry.as_ref().is_none_or(|t| until < t) {
                decision.next_retry = Some(until.clone());
            }
            continue;
        }
        match member[idx] {
            Some(i) if draining[i] < max[i] => {
                draining[i] += 1;
                decision.granted.push(n.name.to_owned());
            }
            Some(_) => decision.waiting.push(n.name.to_owned()),
            None => {}
        }
    }
    decision.holding.sort();
    decision.pools = (0..=default_idx)
        .map(|i| PoolUsage {
            pool: compiled.get(i).map(|(n, _, _)| (*n).to_owned()),
            nodes: count[i],
            max_unavailable: max[i],
            draining: draining[i],
        })
        .collect();
    decision
}

#[cfg(test)]
mod tests {
    use crds::{
        inventory::{EswitchMode, LinkType},
        k8s::{IntOrString, LabelSelector, jiff::Timestamp},
        policy::FirmwareSpec,
        pool::NicPoolSpec,
    };

    use super::*;
    use crate::{
        desired::desired_node_state,
        fixtures::{cx6, inventory, labels, policy, with_vfs},
    };

    fn spec_for(policies: &[crds::NicPolicy], nic: Nic) -> NicNodeStateSpec {
        let plan = desired_node_state(policies, &labels(&[("gpu", "true")]), &inventory(vec![nic]));
        assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
        plan.spec
    }

    fn class(current: &NicNodeStateSpec, desired: &NicNodeStateSpec, host: Nic) -> ChangeClass {
        classify(current, desired, &inventory(vec![host])).class
    }

    #[test]
    fn nothing_changes_when_the_host_already_matches() {
        let host = with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[0, 1], &[]);
        let spec = spec_for(
            &[policy("a", 1, &["ens1f0"])],
            cx6("0000:3b:00.0", "ens1f0"),
        );
        let c = classify(&spec, &spec, &inventory(vec![host]));
        assert_eq!(c, NodeChange::default());
    }

    #[test]
    fn creating_vfs_on_an_empty_pf_is_non_disruptive() {
        let host = cx6("0000:3b:00.0", "ens1f0");
        let mut p = policy("a", 1, &["ens1f0"]);
        p.spec.eswitch_mode = Some(EswitchMode::Switchdev);
        let desired = spec_for(&[p], host.clone());
        assert_eq!(
            class(&NicNodeStateSpec::default(), &desired, host),
            ChangeClass::NonDisruptive
        );
    }

    #[test]
    fn num_vfs_change_evicts_only_when_a_vf_is_in_use() {
        let old = spec_for(
            &[policy("a", 1, &["ens1f0"])],
            cx6("0000:3b:00.0", "ens1f0"),
        );
        let mut p = policy("a", 1, &["ens1f0"]);
        p.spec.num_vfs = 12;
        let new = spec_for(&[p], cx6("0000:3b:00.0", "ens1f0"));
        let idle = with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[]);
        assert_eq!(class(&old, &new, idle), ChangeClass::NonDisruptive);
        let busy = with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[3], &[]);
        let c = classify(&old, &new, &inventory(vec![busy]));
        assert_eq!(c.class, ChangeClass::EvictVfPods);
        assert_eq!(c.class.drain_request(), DrainRequest::EvictVfPods);
        assert!(
            c.pfs[0]
                .reasons
                .iter()
                .any(|(_, r)| r == "numVfs 8 -> 12 recreates every VF; VFs 3 are in use"),
            "{:?}",
            c.pfs
        );
    }

    #[test]
    fn eswitch_change_with_vfs_in_use_evicts() {
        let old = spec_for(
            &[policy("a", 1, &["ens1f0"])],
            cx6("0000:3b:00.0", "ens1f0"),
        );
        let mut p = policy("a", 1, &["ens1f0"]);
        p.spec.eswitch_mode = Some(EswitchMode::Switchdev);
        let new = spec_for(&[p], cx6("0000:3b:00.0", "ens1f0"));
        let vfio_in_use = with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[5]);
        assert_eq!(class(&old, &new, vfio_in_use), ChangeClass::EvictVfPods);
    }

    #[test]
    fn resource_name_and_new_groups_are_non_disruptive() {
        let old = spec_for(
            &[policy("a", 1, &["ens1f0#0-3"])],
            cx6("0000:3b:00.0", "ens1f0"),
        );
        let mut a = policy("a", 1, &["ens1f0#0-3"]);
        a.spec.resource_name = "renamed".into();
        a.spec.is_rdma = true;
        let mut b = policy("b", 2, &["ens1f0#4-7"]);
        b.spec.resource_name = "other".into();
        let new = spec_for(&[a, b], cx6("0000:3b:00.0", "ens1f0"));
        let host = with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[0, 1, 2, 3], &[]);
        let c = classify(&old, &new, &inventory(vec![host]));
        assert_eq!(c.class, ChangeClass::NonDisruptive);
        assert_eq!(c.pfs.len(), 1, "reported for logging");
    }

    #[test]
    fn vf_driver_and_mtu_changes_evict_only_for_used_vfs() {
        let old = spec_for(
            &[
                policy("a", 1, &["ens1f0#0-3"]),
                policy("b", 2, &["ens1f0#4-7"]),
            ],
            cx6("0000:3b:00.0", "ens1f0"),
        );
        let mut b = policy("b", 2, &["ens1f0#4-7"]);
        b.spec.device_type = VfDeviceType::VfioPci;
        b.spec.resource_name = "dpdk".into();
        let new = spec_for(
            &[policy("a", 1, &["ens1f0#0-3"]), b],
            cx6("0000:3b:00.0", "ens1f0"),
        );
        // VF 1 (group a, unchanged) is in use; group b's VFs are free.
        let host = with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[1], &[]);
        assert_eq!(class(&old, &new, host), ChangeClass::NonDisruptive);
        let host = with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[6], &[]);
        assert_eq!(class(&old, &new, host), ChangeClass::EvictVfPods);

        let mut a = policy("a", 1, &["ens1f0"]);
        a.spec.mtu = Some(9000);
        let new = spec_for(&[a], cx6("0000:3b:00.0", "ens1f0"));
        let old = spec_for(
            &[policy("a", 1, &["ens1f0"])],
            cx6("0000:3b:00.0", "ens1f0"),
        );
        let free = with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[]);
        assert_eq!(class(&old, &new, free), ChangeClass::NonDisruptive);
        let used = with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[2], &[]);
        let c = classify(&old, &new, &inventory(vec![used]));
        assert_eq!(c.class, ChangeClass::EvictVfPods);
        assert!(
            c.pfs[0]
                .reasons
                .iter()
                .any(|(k, r)| *k == ChangeClass::EvictVfPods
                    && r.contains("VF MTU changes")
                    && r.contains("VFs 2 are in use"))
        );
    }

    #[test]
    fn link_type_and_firmware_changes_need_a_reboot() {
        let old = spec_for(
            &[policy("a", 1, &["ens1f0"])],
            cx6("0000:3b:00.0", "ens1f0"),
        );
        let mut p = policy("a", 1, &["ens1f0"]);
        p.spec.link_type = Some(LinkType::Ib);
        let new = spec_for(&[p], cx6("0000:3b:00.0", "ens1f0"));
        assert_eq!(
            class(
                &old,
                &new,
                with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[])
            ),
            ChangeClass::Reboot
        );

        let mut p = policy("a", 1, &["ens1f0"]);
        p.spec.firmware = Some(FirmwareSpec {
            total_vfs: Some(32),
        });
        let new = spec_for(&[p], cx6("0000:3b:00.0", "ens1f0"));
        assert_eq!(
            class(
                &old,
                &new,
                with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[])
            ),
            ChangeClass::Reboot
        );
    }

    #[test]
    fn releasing_a_pf_evicts_only_if_its_vfs_are_used_and_never_for_external_pfs() {
        let old = spec_for(
            &[policy("a", 1, &["ens1f0"])],
            cx6("0000:3b:00.0", "ens1f0"),
        );
        let none = NicNodeStateSpec::default();
        assert_eq!(
            class(
                &old,
                &none,
                with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[])
            ),
            ChangeClass::NonDisruptive
        );
        assert_eq!(
            class(
                &old,
                &none,
                with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[7], &[])
            ),
            ChangeClass::EvictVfPods
        );
        let mut p = policy("a", 1, &["ens1f0"]);
        p.spec.externally_managed = true;
        let ext = spec_for(&[p], with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[], &[]));
        assert_eq!(
            class(
                &ext,
                &none,
                with_vfs(cx6("0000:3b:00.0", "ens1f0"), 8, &[7], &[])
            ),
            ChangeClass::NonDisruptive
        );
    }

    struct N {
        name: &'static str,
        labels: BTreeMap<String, String>,
        request: DrainRequest,
        at: Option<&'static str>,
        grant: DrainGrant,
        retry_after: Option<&'static str>,
    }

    fn n(
        name: &'static str,
        pool: &str,
        request: DrainRequest,
        at: Option<&'static str>,
        grant: DrainGrant,
    ) -> N {
        N {
            name,
            labels: labels(&[("pool", pool)]),
            request,
            at,
            grant,
            retry_after: None,
        }
    }

    fn ts(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    const NOW: &str = "2026-01-01T12:00:00Z";

    fn run(nodes: &[N], pools: &[NicPool]) -> GrantDecision {
        run_at(nodes, pools, NOW)
    }

    fn run_at(nodes: &[N], pools: &[NicPool], now: &str) -> GrantDecision {
        let states: Vec<NodeDrainState<'_>> = nodes
            .iter()
            .map(|n| NodeDrainState {
                name: n.name,
                labels: &n.labels,
                request: n.request,
                requested_at: n.at.map(|t| Time(t.parse::<Timestamp>().unwrap())),
                grant: n.grant,
                retry_after: n.retry_after.map(|t| Time(ts(t))),
            })
            .collect();
        grant(&states, pools, ts(now))
    }

    fn pool(name: &str, value: &str, max: Option<IntOrString>) -> NicPool {
        NicPool::new(
            name,
            NicPoolSpec {
                node_selector: LabelSelector {
                    match_labels: Some(labels(&[("pool", value)])),
                    ..Default::default()
                },
                max_unavailable: max,
                drain_timeout_seconds: None,
                rdma_mode: None,
            },
        )
    }

    const EVICT: DrainRequest = DrainRequest::EvictVfPods;

    #[test]
    fn max_unavailable_two_grants_exactly_two_of_five() {
        let nodes: Vec<N> = ["w1", "w2", "w3", "w4", "w5"]
            .into_iter()
            .map(|name| n(name, "gpu", EVICT, None, DrainGrant::None))
            .collect();
        let d = run(&nodes, &[pool("gpu", "gpu", Some(IntOrString::Int(2)))]);
        assert_eq!(d.granted, ["w1", "w2"]);
        assert_eq!(d.waiting, ["w3", "w4", "w5"]);
        assert_eq!(
            d.pools[0],
            PoolUsage {
                pool: Some("gpu".into()),
                nodes: 5,
                max_unavailable: 2,
                draining: 2
            }
        );
    }

    #[test]
    fn holders_keep_their_grant_and_count_oldest_request_goes_first() {
        let nodes = vec![
            n(
                "a",
                "gpu",
                EVICT,
                Some("2026-01-01T10:00:00Z"),
                DrainGrant::None,
            ),
            n(
                "b",
                "gpu",
                DrainRequest::Reboot,
                Some("2026-01-01T09:00:00Z"),
                DrainGrant::None,
            ),
            n("c", "gpu", EVICT, None, DrainGrant::None),
            n("d", "gpu", DrainRequest::None, None, DrainGrant::Drained),
        ];
        let d = run(&nodes, &[pool("gpu", "gpu", Some(IntOrString::Int(2)))]);
        assert_eq!(d.holding, ["d"]);
        assert_eq!(d.granted, ["b"], "d holds one of two slots; b asked first");
        assert_eq!(
            d.waiting,
            ["a", "c"],
            "then a by time; c without a time goes last"
        );
    }

    #[test]
    fn percentages_round_down_but_allow_at_least_one() {
        let nodes: Vec<N> = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
            .into_iter()
            .map(|name| n(name, "p", EVICT, None, DrainGrant::None))
            .collect();
        let d = run(
            &nodes,
            &[pool("p", "p", Some(IntOrString::String("25%".into())))],
        );
        assert_eq!(d.granted.len(), 2, "25% of 10 = 2.5 -> 2");
        let d = run(
            &nodes[..3],
            &[pool("p", "p", Some(IntOrString::String("10%".into())))],
        );
        assert_eq!(d.granted.len(), 1, "10% of 3 = 0.3 -> at least 1");
    }

    #[test]
    fn zero_pauses_and_unpooled_nodes_use_the_default_pool_of_one() {
        let nodes = vec![
            n("a", "frozen", EVICT, None, DrainGrant::None),
            n("b", "none", EVICT, None, DrainGrant::None),
            n("c", "none", EVICT, None, DrainGrant::None),
        ];
        let d = run(
            &nodes,
            &[pool("frozen", "frozen", Some(IntOrString::Int(0)))],
        );
        assert_eq!(d.granted, ["b"]);
        assert_eq!(d.waiting, ["a", "c"]);
        assert_eq!(d.pools.last().unwrap().pool, None);
        assert_eq!(d.pools.last().unwrap().max_unavailable, 1);
    }

    #[test]
    fn a_node_in_two_pools_is_never_granted() {
        let mut both = n("x", "gpu", EVICT, None, DrainGrant::None);
        both.labels.insert("rack".into(), "r1".into());
        let mut rack = pool("rack", "", Some(IntOrString::Int(5)));
        rack.spec.node_selector = LabelSelector {
            match_labels: Some(labels(&[("rack", "r1")])),
            ..Default::default()
        };
        let d = run(
            &[both],
            &[pool("gpu", "gpu", Some(IntOrString::Int(5))), rack],
        );
        assert!(d.granted.is_empty());
        assert_eq!(
            d.conflicts,
            [("x".to_string(), vec!["gpu".to_string(), "rack".to_string()])]
        );
    }

    #[test]
    fn a_timed_out_node_is_deferred_and_its_slot_goes_to_the_next_in_queue() {
        let mut first = n(
            "a",
            "gpu",
            EVICT,
            Some("2026-01-01T09:00:00Z"),
            DrainGrant::None,
        );
        first.retry_after = Some("2026-01-01T12:10:00Z");
        let nodes = vec![
            first,
            n(
                "b",
                "gpu",
                EVICT,
                Some("2026-01-01T10:00:00Z"),
                DrainGrant::None,
            ),
            n(
                "c",
                "gpu",
                EVICT,
                Some("2026-01-01T11:00:00Z"),
                DrainGrant::None,
            ),
        ];
        let pools = [pool("gpu", "gpu", Some(IntOrString::Int(1)))];
        let d = run(&nodes, &pools);
        assert_eq!(d.granted, ["b"], "a asked first but must wait");
        assert_eq!(d.deferred, ["a"]);
        assert_eq!(
            d.waiting,
            ["c"],
            "a deferred node takes no place in the queue"
        );
        assert_eq!(d.next_retry, Some(Time(ts("2026-01-01T12:10:00Z"))));
        assert_eq!(d.pools[0].draining, 1);
    }

    #[test]
    fn once_retry_after_has_passed_the_node_queues_again_at_its_old_request_time() {
        let mut first = n(
            "a",
            "gpu",
            EVICT,
            Some("2026-01-01T09:00:00Z"),
            DrainGrant::None,
        );
        first.retry_after = Some("2026-01-01T12:10:00Z");
        let nodes = vec![
            first,
            n(
                "b",
                "gpu",
                EVICT,
                Some("2026-01-01T10:00:00Z"),
                DrainGrant::None,
            ),
        ];
        let pools = [pool("gpu", "gpu", Some(IntOrString::Int(1)))];
        let d = run_at(&nodes, &pools, "2026-01-01T12:10:00Z");
        assert_eq!(d.granted, ["a"], "retry-after is inclusive");
        assert_eq!(d.waiting, ["b"]);
        assert!(d.deferred.is_empty());
        assert_eq!(d.next_retry, None);
    }

    #[test]
    fn holders_report_their_pool_and_drain_timeout() {
        let nodes = vec![
            n("a", "gpu", EVICT, None, DrainGrant::Draining),
            n("b", "other", EVICT, None, DrainGrant::Draining),
            n("c", "fast", EVICT, None, DrainGrant::Drained),
        ];
        let mut fast = pool("fast", "fast", None);
        fast.spec.drain_timeout_seconds = Some(0);
        let d = run(&nodes, &[pool("gpu", "gpu", None), fast]);
        assert_eq!(
            d.holder_pools["a"],
            HolderPool {
                pool: Some("gpu".into()),
                drain_timeout_seconds: DEFAULT_DRAIN_TIMEOUT_SECONDS
            }
        );
        assert_eq!(
            d.holder_pools["b"],
            HolderPool {
                pool: None,
                drain_timeout_seconds: DEFAULT_DRAIN_TIMEOUT_SECONDS
            },
            "the default pool uses the default timeout"
        );
        assert_eq!(d.holder_pools["c"].drain_timeout_seconds, 0);
    }

    #[test]
    fn drain_timeout_counts_from_the_grant_and_zero_never_expires() {
        let at = Time(ts("2026-01-01T12:00:00Z"));
        assert!(!drain_timed_out(Some(&at), 600, ts("2026-01-01T12:09:59Z")));
        assert!(drain_timed_out(Some(&at), 600, ts("2026-01-01T12:10:00Z")));
        assert!(!drain_timed_out(Some(&at), 0, ts("2030-01-01T00:00:00Z")));
        assert!(!drain_timed_out(None, 600, ts("2030-01-01T00:00:00Z")));
    }

    #[test]
    fn retry_after_is_the_timeout_but_at_least_a_minute() {
        let now = ts("2026-01-01T12:00:00Z");
        assert_eq!(retry_after(now, 600), ts("2026-01-01T12:10:00Z"));
        assert_eq!(retry_after(now, 5), ts("2026-01-01T12:01:00Z"));
    }
}
