//! `NicPolicy` checks.

use std::collections::{BTreeMap, BTreeSet};

use crds::{
    MAX_POLICY_PRIORITY, NicPolicy,
    guid::{Guid, GuidRange},
    inventory::{EswitchMode, LinkType, NicInventory},
    policy::{NicPolicySpec, VfDeviceType},
};

use super::{
    FieldError,
    common::{
        check_selector, is_dns_label, is_hex4, is_netdev_name, is_pci_address, resource_name_error,
    },
    finish,
};
use crate::{
    desired::PolicySet,
    priority::policy_name,
    selector::CompiledSelector,
    vf_range::{MAX_VF_INDEX, PfEntry, VfSet},
    wire,
};

pub use crds::{MAX_MTU, MIN_MTU};

/// A node as the cross-object checks see it.
#[derive(Clone, Copy, Debug)]
pub struct NodeFacts<'a> {
    /// Node name.
    pub name: &'a str,
    /// Node labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Discovered inventory (`NicNodeState.status.nics`).
    pub inventory: &'a NicInventory,
}

/// What a policy is checked against besides itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct PolicyContext<'a> {
    /// The other policies (an object with the same name as the one checked is ignored, so the
    /// stored version of an object being updated can be passed as is).
    pub policies: &'a [NicPolicy],
    /// Known nodes; empty when unknown.
    pub nodes: &'a [NodeFacts<'a>],
}

/// Single-object checks of a policy spec. The planner ignores policies that fail them.
pub fn validate_policy_spec(spec: &NicPolicySpec) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let e = |errors: &mut Vec<FieldError>, f: &str, m: String| errors.push(FieldError::new(f, m));

    let ns = &spec.node_selector;
    if ns.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && ns.match_expressions.as_ref().is_none_or(Vec::is_empty)
    {
        e(&mut errors, "spec.nodeSelector", "must select nodes; an empty selector would configure NICs on every node (to mean that, select e.g. kubernetes.io/os: linux explicitly)".into());
    }
    check_selector(ns, "spec.nodeSelector", &mut errors);

    let sel = &spec.nic_selector;
    if sel.vendor.is_none()
        && sel.device_id.is_none()
        && sel.pf_names.is_empty()
        && sel.root_devices.is_empty()
    {
        e(
            &mut errors,
            "spec.nicSelector",
            "is empty and would match no NIC; set vendor, deviceId, pfNames or rootDevices".into(),
        );
    }
    if let Some(v) = &sel.vendor
        && !is_hex4(v)
    {
        e(
            &mut errors,
            "spec.nicSelector.vendor",
            format!("\"{v}\" is not a PCI vendor id; write four hex digits without 0x, e.g. 15b3"),
        );
    }
    if let Some(d) = &sel.device_id
        && !is_hex4(d)
    {
        e(
            &mut errors,
            "spec.nicSelector.deviceId",
            format!("\"{d}\" is not a PCI device id; write four hex digits without 0x, e.g. 101d"),
        );
    }

    if spec.whole_pf {
        whole_pf_errors(spec, &mut errors);
    } else if spec.num_vfs == 0 {
        e(
            &mut errors,
            "spec.numVfs",
            "must be at least 1 (delete the policy to remove its VFs; 0 only with wholePf)".into(),
        );
    } else if spec.num_vfs > MAX_VF_INDEX + 1 {
        e(
            &mut errors,
            "spec.numVfs",
            format!(
                "{} is above the SR-IOV maximum {}",
                spec.num_vfs,
                MAX_VF_INDEX + 1
            ),
        );
    }

    let mut ranged_pf_names = false;
    for (field, entries, is_pci) in [
        ("pfNames", &sel.pf_names, false),
        ("rootDevices", &sel.root_devices, true),
    ] {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, raw) in entries.iter().enumerate() {
            let path = format!("spec.nicSelector.{field}[{i}]");
            let entry = match PfEntry::parse(raw) {
                Ok(p) => p,
                Err(err) => {
                    e(&mut errors, &path, err.to_string());
                    continue;
                }
            };
            if is_pci && !is_pci_address(&entry.name) {
                e(
                    &mut errors,
                    &path,
                    format!("\"{}\" is not a PCI address like 0000:3b:00.0", entry.name),
                );
            }
            if !is_pci && !is_netdev_name(&entry.name) {
                e(
                    &mut errors,
                    &path,
                    format!(
                        "\"{}\" is not a network interface name (1-15 characters, no '/', ':' or spaces)",
                        entry.name
                    ),
                );
            }
            let key = entry.name.to_ascii_lowercase();
            if let Some(first) = seen.insert(key, i) {
                e(
                    &mut errors,
                    &path,
                    format!(
                        "{} is already listed as {field}[{first}]; list each PF once with all its VF ranges (e.g. {}#0,2-7)",
                        entry.name, entry.name
                    ),
                );
            }
            if let Some(vfs) = &entry.vfs {
                if is_pci && ranged_pf_names {
                    e(&mut errors, &path, "VF ranges are given in pfNames already; give them in pfNames or rootDevices, not both".into());
                }
                if !is_pci {
                    ranged_pf_names = true;
                }
                if spec.num_vfs > 0
                    && let Some(max) = vfs.max()
                    && max >= spec.num_vfs
                {
                    e(
                        &mut errors,
                        &path,
                        format!(
                            "VF range {vfs} goes beyond numVfs {} (VF indices are 0-{})",
                            spec.num_vfs,
                            spec.num_vfs - 1
                        ),
                    );
                }
            }
        }
    }

    if let Some(mtu) = spec.mtu
        && !(MIN_MTU..=MAX_MTU).contains(&mtu)
    {
        e(
            &mut errors,
            "spec.mtu",
            format!("{mtu} is outside {MIN_MTU}-{MAX_MTU}"),
        );
    }
    if spec.device_type == VfDeviceType::VfioPci && spec.is_rdma {
        e(
            &mut errors,
            "spec.isRdma",
            "RDMA needs the vendor's kernel VF driver; it cannot be used with deviceType vfio-pci"
                .into(),
        );
    }
    if spec.eswitch_mode == Some(EswitchMode::Switchdev) && spec.link_type == Some(LinkType::Ib) {
        e(
            &mut errors,
            "spec.eswitchMode",
            "switchdev needs Ethernet; it cannot be used with linkType ib".into(),
        );
    }
    if let Some(msg) = resource_name_error(&spec.resource_name) {
        e(&mut errors, "spec.resourceName", msg);
    }
    for (i, ns) in spec.network_namespaces.iter().flatten().enumerate() {
        if !is_dns_label(ns) {
            e(
                &mut errors,
                &format!("spec.networkNamespaces[{i}]"),
                format!(
                    "\"{ns}\" is not a namespace name (a DNS label: lowercase letters, digits and '-', at most 63)"
                ),
            );
        }
    }
    if spec.priority > MAX_POLICY_PRIORITY {
        e(
            &mut errors,
            "spec.priority",
            format!(
                "{} is above {MAX_POLICY_PRIORITY}; use 0 (highest precedence) to {MAX_POLICY_PRIORITY} (lowest)",
                spec.priority
            ),
        );
    }
    ib_guid_pool_errors(spec, &mut errors);
    if let Some(fw) = &spec.firmware {
        if spec.externally_managed {
            e(&mut errors, "spec.firmware", "not allowed with externallyManaged: the operator does not touch firmware of externally managed PFs".into());
        }
        if let Some(total) = fw.total_vfs
            && total < spec.num_vfs
        {
            e(
                &mut errors,
                "spec.firmware.totalVfs",
                format!("{total} is below numVfs {}", spec.num_vfs),
            );
        }
    }
    finish(errors)
}

/// The label a GUID pool's `nodeSelector` must name its one node by.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// The rules of `ibGuidPool`: InfiniBand VFs only, one node, ranges that are ranges, hold no
/// reserved GUID, do not overlap and hold at least `numVfs` GUIDs.
fn ib_guid_pool_errors(spec: &NicPolicySpec, errors: &mut Vec<FieldError>) {
    let pool = &spec.ib_guid_pool;
    if pool.is_empty() {
        return;
    }
    let mut e = |f: String, m: String| errors.push(FieldError::new(f, m));
    if spec.link_type != Some(LinkType::Ib) || spec.whole_pf {
        e(
            "spec.ibGuidPool".into(),
            "gives InfiniBand VFs their GUIDs: it needs linkType ib and VFs (not wholePf)".into(),
        );
    }
    let named = spec
        .node_selector
        .match_labels
        .as_ref()
        .is_some_and(|l| l.contains_key(HOSTNAME_LABEL));
    if !named {
        e(
            "spec.ibGuidPool".into(),
            format!(
                "GUIDs must be unique on the fabric, and every selected node would take the same ones: a policy with a pool must select one node by nodeSelector.matchLabels {HOSTNAME_LABEL}"
            ),
        );
    }
    for (i, r) in pool.iter().enumerate() {
        let field = format!("spec.ibGuidPool[{i}]");
        if r.is_empty() {
            e(
                field.clone(),
                format!("end {} is below start {}", r.end, r.start),
            );
            continue;
        }
        if r.start.0 == 0 || r.end == Guid::ALL_ONES {
            let bad = if r.start.0 == 0 {
                Guid(0)
            } else {
                Guid::ALL_ONES
            };
            e(
                field.clone(),
                format!(
                    "holds the reserved GUID {bad}, which a VF cannot have (pods fail with \"VF GUID is not valid\"); start above it or end below it"
                ),
            );
        }
        if let Some((j, _)) = pool[..i]
            .iter()
            .enumerate()
            .find(|(_, o)| !o.is_empty() && o.overlaps(r))
        {
            e(
                field,
                format!("overlaps spec.ibGuidPool[{j}]: a GUID may be given to one VF only"),
            );
        }
    }
    let total: u128 = pool.iter().map(GuidRange::len).sum();
    if total < u128::from(spec.num_vfs) {
        e(
            "spec.ibGuidPool".into(),
            format!(
                "holds {total} GUIDs, fewer than numVfs {} (one GUID per VF)",
                spec.num_vfs
            ),
        );
    }
}

/// The rules of a `wholePf` policy: no VFs, and none of the settings that only concern VFs.
fn whole_pf_errors(spec: &NicPolicySpec, errors: &mut Vec<FieldError>) {
    let mut e = |f: &str, m: &str| errors.push(FieldError::new(f, m.to_owned()));
    if spec.num_vfs != 0 {
        e(
            "spec.wholePf",
            "a whole-PF pool creates no VFs: numVfs must be 0 or unset",
        );
    }
    if spec.eswitch_mode.is_some() || spec.firmware.is_some() || spec.externally_managed {
        e(
            "spec.wholePf",
            "not allowed with eswitchMode, externallyManaged or firmware: those concern VFs, and a whole-PF pool has none",
        );
    }
    let sel = &spec.nic_selector;
    if sel
        .pf_names
        .iter()
        .chain(&sel.root_devices)
        .any(|n| n.contains('#'))
    {
        e(
            "spec.wholePf",
            "a whole-PF pool takes whole PFs: no VF ranges (#...) in pfNames or rootDevices",
        );
    }
}

/// Single-object and cross-object checks of the policy `name`.
///
/// Cross-object checks (run only when the spec itself is valid):
/// - two pools offered by DRA must not map to one DeviceClass name (`cx6_vf` and `cx6-vf`);
/// - a resource name means one kind of device cluster-wide: policies sharing `resourceName` must
///   agree on `wholePf`, `deviceType`, `isRdma`, `excludeTopology`, `needVhostNet`, `allocation`
///   and `networkNamespaces`
///   (as a set);
/// - no two policies whose node selectors can match a common node may claim the same VF of the
///   same PF (same `pfNames`/`rootDevices` entry with overlapping ranges, or both selecting by
///   vendor/device only), or disagree on PF-level settings (`numVfs`, `eswitchMode`, `linkType`)
///   of a PF they both name; priority does not make such a claim acceptable;
/// - on every known node the policy selects, the planner must not reject it (e.g. `numVfs` above
///   `sriov_totalvfs`) and must not reject another policy because of it.
pub fn validate_policy(
    name: &str,
    spec: &NicPolicySpec,
    ctx: &PolicyContext<'_>,
) -> Result<(), Vec<FieldError>> {
    validate_policy_spec(spec)?;
    let mut errors = Vec::new();
    let others: Vec<&NicPolicy> = ctx
        .policies
        .iter()
        .filter(|p| policy_name(p) != name && validate_policy_spec(&p.spec).is_ok())
        .collect();
    let mut flagged: BTreeSet<String> = BTreeSet::new();
    syntactic_conflicts(spec, &others, &mut errors, &mut flagged);
    if !ctx.nodes.is_empty() {
        node_conflicts(name, spec, &others, ctx.nodes, &flagged, &mut errors);
    }
    finish(errors)
}

/// `networkNamespaces` as a set (order and repeats do not matter); `None` = every namespace.
fn namespace_set(list: &Option<Vec<String>>) -> Option<BTreeSet<&str>> {
    list.as_ref()
        .map(|l| l.iter().map(String::as_str).collect())
}

/// The part of a pool's DeviceClass name that comes from its resource name.
fn class_key(resource_name: &str) -> String {
    crate::dra::device_class_name(resource_name, "")
        .trim_end_matches('.')
        .to_owned()
}

fn syntactic_conflicts(
    spec: &NicPolicySpec,
    others: &[&NicPolicy],
    errors: &mut Vec<FieldError>,
    flagged: &mut BTreeSet<String>,
) {
    let parse = |v: &[String]| -> Vec<PfEntry> {
        v.iter().filter_map(|s| PfEntry::parse(s).ok()).collect()
    };
    let my_sel = CompiledSelector::compile(&spec.node_selector).unwrap_or_default();
    let my_pf = parse(&spec.nic_selector.pf_names);
    let my_root = parse(&spec.nic_selector.root_devices);
    for other in others {
        let oname = policy_name(other);
        let o = &other.spec;
        if o.resource_name == spec.resource_name {
            let diff = [
                (
                    "wholePf",
                    o.whole_pf != spec.whole_pf,
                    o.whole_pf.to_string(),
                ),
                (
                    "deviceType",
                    o.device_type != spec.device_type,
                    wire(&o.device_type),
                ),
                ("isRdma", o.is_rdma != spec.is_rdma, o.is_rdma.to_string()),
                (
                    "excludeTopology",
                    o.exclude_topology != spec.exclude_topology,
                    o.exclude_topology.to_string(),
                ),
                (
                    "needVhostNet",
                    o.need_vhost_net != spec.need_vhost_net,
                    o.need_vhost_net.to_string(),
                ),
                (
                    "allocation",
                    o.allocation != spec.allocation,
                    wire(&o.allocation),
                ),
                (
                    "networkNamespaces",
                    namespace_set(&o.network_namespaces) != namespace_set(&spec.network_namespaces),
                    match &o.network_namespaces {
                        None => "unset (every namespace)".to_owned(),
                        Some(l) => format!("[{}]", l.join(", ")),
                    },
                ),
            ];
            for (field, differs, theirs) in diff {
                if differs {
                    errors.push(FieldError::new(
                        format!("spec.{field}"),
                        format!("resource {} has {field} {theirs} in policy {oname}; one resource name must mean one kind of device", spec.resource_name),
                    ));
                }
            }
        }
        if o.resource_name != spec.resource_name
            && o.allocation.dra()
            && spec.allocation.dra()
            && class_key(&o.resource_name) == class_key(&spec.resource_name)
        {
            errors.push(FieldError::new(
                "spec.resourceName",
                format!(
                    "resource {} and resource {} of policy {oname} would have one DeviceClass, {}.<resourcePrefix> (`_` is written `-` and letters in lower case in DeviceClass names); give one of them another name",
                    spec.resource_name,
                    o.resource_name,
                    class_key(&spec.resource_name)
                ),
            ));
        }
        let o_sel = CompiledSelector::compile(&o.node_selector).unwrap_or_default();
        if !my_sel.may_overlap(&o_sel) {
            continue;
        }
        if (spec.nic_selector.vendor.is_some()
            && o.nic_selector.vendor.is_some()
            && !spec
                .nic_selector
                .vendor
                .as_deref()
                .unwrap_or_default()
                .eq_ignore_ascii_case(o.nic_selector.vendor.as_deref().unwrap_or_default()))
            || (spec.nic_selector.device_id.is_some()
                && o.nic_selector.device_id.is_some()
                && !spec
                    .nic_selector
                    .device_id
                    .as_deref()
                    .unwrap_or_default()
                    .eq_ignore_ascii_case(o.nic_selector.device_id.as_deref().unwrap_or_default()))
        {
            continue;
        }
        let o_pf = parse(&o.nic_selector.pf_names);
        let o_root = parse(&o.nic_selector.root_devices);
        let mut report = |field: String, msg: String| {
            flagged.insert(oname.to_owned());
            errors.push(FieldError::new(field, msg));
        };
        if my_pf.is_empty() && my_root.is_empty() && o_pf.is_empty() && o_root.is_empty() {
            report(
                "spec.nicSelector".into(),
                format!(
                    "policy {oname} selects the same NICs by vendor/device and both claim VFs from 0; select PFs with pfNames/rootDevices and disjoint VF ranges (e.g. ens1f0#0-3 and ens1f0#4-7), or make the node selectors disjoint"
                ),
            );
            continue;
        }
        for (field, mine, theirs) in [
            ("pfNames", &my_pf, &o_pf),
            ("rootDevices", &my_root, &o_root),
        ] {
            for (i, m) in mine.iter().enumerate() {
                let Some(t) = theirs.iter().find(|t| t.name.eq_ignore_ascii_case(&m.name)) else {
                    continue;
                };
                let mv = m
                    .vfs
                    .clone()
                    .unwrap_or_else(|| VfSet::first_n(spec.num_vfs));
                let tv = t.vfs.clone().unwrap_or_else(|| VfSet::first_n(o.num_vfs));
                let shared = mv.intersection(&tv);
                let path = format!("spec.nicSelector.{field}[{i}]");
                if !shared.is_empty() {
                    report(
                        path,
                        format!(
                            "VFs {shared} of {} are also claimed by policy {oname} (on nodes both node selectors can match); VF ranges of one PF must be disjoint",
                            m.name
                        ),
                    );
                    continue;
                }
                if o.num_vfs != spec.num_vfs {
                    report(
                        "spec.numVfs".into(),
                        format!(
                            "{} differs from numVfs {} of policy {oname}, which also configures {}; policies sharing a PF must agree on numVfs",
                            spec.num_vfs, o.num_vfs, m.name
                        ),
                    );
                }
                if let (Some(a), Some(b)) = (spec.eswitch_mode, o.eswitch_mode)
                    && a != b
                {
                    report(
                        "spec.eswitchMode".into(),
                        format!(
                            "differs from eswitchMode {} of policy {oname}, which also configures {}",
                            wire(&b),
                            m.name
                        ),
                    );
                }
                if let (Some(a), Some(b)) = (spec.link_type, o.link_type)
                    && a != b
                {
                    report(
                        "spec.linkType".into(),
                        format!(
                            "differs from linkType {} of policy {oname}, which also configures {}",
                            wire(&b),
                            m.name
                        ),
                    );
                }
            }
        }
    }
}

fn node_conflicts(
    name: &str,
    spec: &NicPolicySpec,
    others: &[&NicPolicy],
    nodes: &[NodeFacts<'_>],
    flagged: &BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) {
    let Ok(my_sel) = CompiledSelector::compile(&spec.node_selector) else {
        return;
    };
    let mut all: Vec<NicPolicy> = others.iter().map(|p| (*p).clone()).collect();
    all.push(NicPolicy::new(name, spec.clone()));
    let set = PolicySet::new(&all);
    // (field, message) -> nodes
    let mut found: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for node in nodes.iter().filter(|n| my_sel.matches(n.labels)) {
        for r in set.plan_node(node.labels, node.inventory).rejections {
            let key = if r.policy == name {
                if r.conflicts_with
                    .as_ref()
                    .is_some_and(|o| flagged.contains(o))
                {
                    continue;
                }
                (r.field, r.reason)
            } else if r.conflicts_with.as_deref() == Some(name) {
                if flagged.contains(&r.policy) {
                    continue;
                }
                (
                    r.conflicting_field.unwrap_or_else(|| "spec".into()),
                    format!(
                        "conflicts with policy {}, which would be rejected: {}",
                        r.policy, r.reason
                    ),
                )
            } else {
                continue;
            };
            found.entry(key).or_default().push(node.name);
        }
    }
    for ((field, reason), nodes) in found {
        let shown: Vec<&str> = nodes.iter().take(3).copied().collect();
        let more = if nodes.len() > 3 {
            format!(" and {} more", nodes.len() - 3)
        } else {
            String::new()
        };
        errors.push(FieldError::new(
            field,
            format!("on node {}{more}: {reason}", shown.join(", ")),
        ));
    }
}
