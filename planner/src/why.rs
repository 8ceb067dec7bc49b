//! Why a policy selects no PF of a node: which part of its selectors did not match, PF by PF.
//! `smartnicctl plan` prints it when a policy plans nothing, so that a newcomer whose example
//! says `pfNames: [ens1f0]` learns that the host's port is called `ens1f0np0`.
//!
//! The rules are those of the planner (`desired`): the `nodeSelector` must match the node's
//! labels; in the `nicSelector`, every set field must match (ANDed) and an empty selector matches
//! nothing; `pfNames` and `rootDevices` entries are compared without their `#` VF ranges.

use std::collections::BTreeMap;

use crds::{NicPolicy, inventory::Nic, inventory::NicInventory};

use crate::selector::CompiledSelector;

/// A policy that selects no PF of the node, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unselected {
    /// `metadata.name` of the policy.
    pub policy: String,
    /// One sentence per reason: the node selector, or per PF the first selector field that
    /// excludes it.
    pub reasons: Vec<String>,
}

/// The policies among `policies` that select no PF of `inventory` on a node with `labels`, each
/// with its reasons. Policies that select a PF are left out (what they do, or why they were
/// rejected, is in the plan).
pub fn unselected(
    policies: &[NicPolicy],
    labels: &BTreeMap<String, String>,
    inventory: &NicInventory,
) -> Vec<Unselected> {
    policies
        .iter()
        .filter_map(|p| {
            let reasons = reasons(p, labels, inventory)?;
            Some(Unselected {
                policy: p.metadata.name.clone().unwrap_or_default(),
                reasons,
            })
        })
        .collect()
}

/// `None` when the policy selects some PF.
fn reasons(
    p: &NicPolicy,
    labels: &BTreeMap<String, String>,
    inventory: &NicInventory,
) -> Option<Vec<String>> {
    if let Ok(sel) = CompiledSelector::compile(&p.spec.node_selector)
        && !sel.matches(labels)
    {
        return Some(vec![format!(
            "its nodeSelector does not match this node's labels ({})",
            if labels.is_empty() {
                "none given".to_owned()
            } else {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            }
        )]);
    }
    let s = &p.spec.nic_selector;
    if s.vendor.is_none()
        && s.device_id.is_none()
        && s.pf_names.is_empty()
        && s.root_devices.is_empty()
    {
        return Some(vec![
            "its nicSelector is empty, which selects no PF (set vendor, deviceId, pfNames or rootDevices)"
                .to_owned(),
        ]);
    }
    if inventory.nics.is_empty() {
        return Some(vec!["this host has no SR-IOV PF".to_owned()]);
    }
    let mut out = Vec::new();
    for nic in &inventory.nics {
        match mismatch(p, nic) {
            Some(why) => out.push(format!("PF {}: {why}", label(nic))),
            None => return None,
        }
    }
    Some(out)
}

/// The first field of the policy's `nicSelector` that excludes `nic`.
fn mismatch(p: &NicPolicy, nic: &Nic) -> Option<String> {
    let s = &p.spec.nic_selector;
    if let Some(v) = &s.vendor
        && !v.eq_ignore_ascii_case(&nic.vendor_id)
    {
        return Some(format!(
            "nicSelector.vendor is {v}, the PF's vendor is {}",
            nic.vendor_id
        ));
    }
    if let Some(d) = &s.device_id
        && !d.eq_ignore_ascii_case(&nic.device_id)
    {
        return Some(format!(
            "nicSelector.deviceId is {d}, the PF's device is {}",
            nic.device_id
        ));
    }
    let base = |e: &String| e.split('#').next().unwrap_or_default().trim().to_owned();
    if !s.pf_names.is_empty() {
        let names: Vec<String> = s.pf_names.iter().map(base).collect();
        let name = nic.name.as_deref().unwrap_or("");
        if !names.iter().any(|n| n == name) {
            let near = names.iter().find(|n| {
                !n.is_empty()
                    && !name.is_empty()
                    && (name.starts_with(n.as_str()) || n.starts_with(name))
            });
            return Some(format!(
                "nicSelector.pfNames [{}] does not name {}{}",
                names.join(", "),
                if name.is_empty() {
                    "it (the PF has no netdev)"
                } else {
                    name
                },
                near.map(|n| format!(
                    " (write {name} for {n}: the netdev name as `ip link` shows it)"
                ))
                .unwrap_or_default()
            ));
        }
    }
    if !s.root_devices.is_empty() {
        let addrs: Vec<String> = s.root_devices.iter().map(base).collect();
        if !addrs
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&nic.pci_address))
        {
            return Some(format!(
                "nicSelector.rootDevices [{}] does not name {}",
                addrs.join(", "),
                nic.pci_address
            ));
        }
    }
    None
}

/// `ens1f0np0 (0000:3b:00.0, 15b3:101d mlx5_core)`.
pub fn label(nic: &Nic) -> String {
    format!(
        "{} ({}, {}:{}{})",
        nic.name.as_deref().unwrap_or("-"),
        nic.pci_address,
        nic.vendor_id,
        nic.device_id,
        nic.driver
            .as_deref()
            .map(|d| format!(" {d}"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(name: &str, pci: &str, vendor: &str, device: &str) -> Nic {
        Nic {
            pci_address: pci.into(),
            name: Some(name.into()),
            vendor_id: vendor.into(),
            device_id: device.into(),
            ..Nic::default()
        }
    }

    fn policy(f: impl FnOnce(&mut NicPolicy)) -> NicPolicy {
        let mut p = NicPolicy::new("p", Default::default());
        p.spec.num_vfs = 4;
        p.spec.resource_name = "p".into();
        f(&mut p);
        p
    }

    fn host() -> NicInventory {
        NicInventory {
            nics: vec![
                nic("ens1f0np0", "0000:3b:00.0", "15b3", "101d"),
                nic("ens2f0", "0000:5e:00.0", "8086", "1593"),
            ],
        }
    }

    #[test]
    fn each_pf_gets_the_first_part_that_excludes_it() {
        let p = policy(|p| {
            p.spec.nic_selector.vendor = Some("15b3".into());
            p.spec.nic_selector.pf_names = vec!["ens1f0#0-3".into()];
        });
        let u = unselected(&[p], &BTreeMap::new(), &host());
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].policy, "p");
        assert_eq!(
            u[0].reasons,
            vec![
                "PF ens1f0np0 (0000:3b:00.0, 15b3:101d): nicSelector.pfNames [ens1f0] does not name ens1f0np0 (write ens1f0np0 for ens1f0: the netdev name as `ip link` shows it)",
                "PF ens2f0 (0000:5e:00.0, 8086:1593): nicSelector.vendor is 15b3, the PF's vendor is 8086",
            ]
        );
    }

    #[test]
    fn a_policy_that_selects_a_pf_is_not_listed() {
        let p = policy(|p| p.spec.nic_selector.device_id = Some("1593".into()));
        assert!(unselected(&[p], &BTreeMap::new(), &host()).is_empty());
    }

    #[test]
    fn node_selector_and_empty_selector_are_explained() {
        let mut p = policy(|p| p.spec.nic_selector.vendor = Some("8086".into()));
        p.spec.node_selector.match_labels = Some(BTreeMap::from([("gpu".into(), "true".into())]));
        let u = unselected(&[p], &BTreeMap::new(), &host());
        assert!(u[0].reasons[0].contains("nodeSelector"), "{u:?}");
        let u = unselected(&[policy(|_| {})], &BTreeMap::new(), &host());
        assert!(u[0].reasons[0].contains("nicSelector is empty"), "{u:?}");
    }
}
