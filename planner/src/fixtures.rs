//! Test builders for policies, NICs and nodes.

pub mod cluster;

use std::collections::BTreeMap;

use crds::{
    NicPolicy,
    inventory::{EswitchMode, LinkType, Nic, NicInventory, Vf},
    k8s::LabelSelector,
    policy::{NicPolicySpec, NicSelector},
};

/// `gpu=true`-selecting policy on NVIDIA NICs: 8 VFs, resource `cx6_vf`.
pub fn policy(name: &str, priority: u32, pf_names: &[&str]) -> NicPolicy {
    NicPolicy::new(
        name,
        NicPolicySpec {
            node_selector: LabelSelector {
                match_labels: Some(labels(&[("gpu", "true")])),
                ..Default::default()
            },
            nic_selector: NicSelector {
                vendor: Some("15b3".into()),
                pf_names: pf_names.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            num_vfs: 8,
            resource_name: "cx6_vf".into(),
            priority,
            ..Default::default()
        },
    )
}

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A ConnectX-6 Dx PF (15b3:101d), Ethernet, legacy eswitch, 16 VFs capacity, no VFs yet.
pub fn cx6(pci: &str, name: &str) -> Nic {
    Nic {
        pci_address: pci.into(),
        name: Some(name.into()),
        vendor_id: "15b3".into(),
        device_id: "101d".into(),
        driver: Some("mlx5_core".into()),
        link_type: Some(LinkType::Eth),
        mtu: Some(1500),
        total_vfs: 16,
        num_vfs: 0,
        eswitch_mode: Some(EswitchMode::Legacy),
        ..Default::default()
    }
}

/// An Intel E810 PF (8086:159b), no eswitch reported, 64 VFs capacity.
pub fn e810(pci: &str, name: &str) -> Nic {
    Nic {
        pci_address: pci.into(),
        name: Some(name.into()),
        vendor_id: "8086".into(),
        device_id: "159b".into(),
        driver: Some("ice".into()),
        link_type: Some(LinkType::Eth),
        mtu: Some(1500),
        total_vfs: 64,
        ..Default::default()
    }
}

/// Gives `nic` `n` VFs; VF `i` is on the host with a netdev unless listed in `in_pod` (netdev
/// moved away) or `vfio` (bound to vfio-pci).
pub fn with_vfs(mut nic: Nic, n: u32, in_pod: &[u32], vfio: &[u32]) -> Nic {
    nic.num_vfs = n;
    nic.vfs = (0..n)
        .map(|i| Vf {
            vf_id: i,
            pci_address: format!(
                "{}{}",
                &nic.pci_address[..8],
                format_args!("{:02x}.{}", 2 + i / 8, i % 8)
            ),
            name: (!in_pod.contains(&i) && !vfio.contains(&i))
                .then(|| format!("{}v{i}", nic.name.clone().unwrap_or_default())),
            driver: Some(if vfio.contains(&i) {
                "vfio-pci".into()
            } else {
                "mlx5_core".into()
            }),
            mtu: (!in_pod.contains(&i) && !vfio.contains(&i)).then_some(1500),
            ..Default::default()
        })
        .collect();
    nic
}

/// An inventory from NICs.
pub fn inventory(nics: Vec<Nic>) -> NicInventory {
    NicInventory { nics }
}
