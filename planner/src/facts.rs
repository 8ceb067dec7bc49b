//! Which parts of a node's inventory the planner reads: a fingerprint that tells the operator
//! whether an agent's status write can change the node's plan.
//!
//! Agents rewrite `NicNodeState.status` whenever anything on the host changes (a VF's MAC, a
//! link going down, the sync status, a condition). [`PolicySet::plan_node`](crate::PolicySet)
//! reads only a handful of facts per PF; hashing exactly those lets a status write that does not
//! touch them cost nothing in the operator (no re-plan, no write).

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
};

use crds::inventory::Nic;

/// A hash of the inventory facts [`crate::PolicySet::plan_node`] reads: per PF (in the given
/// order) its PCI address, name, vendor and device ids, `sriov_totalvfs`, `sriov_numvfs`, link
/// type and eswitch mode. VFs, MACs, MTUs, link state, speed, NUMA and driver are not part of
/// it: the plan does not depend on them. Keep this list in step with `desired/`.
pub fn planning_fingerprint(nics: &[Nic]) -> u64 {
    let mut h = DefaultHasher::new();
    nics.len().hash(&mut h);
    for n in nics {
        n.pci_address.hash(&mut h);
        n.name.hash(&mut h);
        n.vendor_id.to_ascii_lowercase().hash(&mut h);
        n.device_id.to_ascii_lowercase().hash(&mut h);
        n.total_vfs.hash(&mut h);
        n.num_vfs.hash(&mut h);
        n.link_type.hash(&mut h);
        n.eswitch_mode.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use crds::inventory::{EswitchMode, Vf};

    use super::*;
    use crate::fixtures::cx6;

    #[test]
    fn host_noise_keeps_the_fingerprint_and_planning_facts_change_it() {
        let base = vec![cx6("0000:3b:00.0", "ens1f0")];
        let fp = planning_fingerprint(&base);
        let mut noisy = base.clone();
        noisy[0].oper_state = Some("down".into());
        noisy[0].mac = Some("02:00:00:00:00:01".into());
        noisy[0].mtu = Some(9000);
        noisy[0].speed_mbps = Some(100_000);
        noisy[0].vfs = vec![Vf {
            vf_id: 0,
            pci_address: "0000:3b:00.2".into(),
            mac: Some("02:00:00:00:00:02".into()),
            ..Default::default()
        }];
        assert_eq!(planning_fingerprint(&noisy), fp);

        let changes: [fn(&mut Nic); 6] = [
            |n| n.total_vfs = 8,
            |n| n.num_vfs = 4,
            |n| n.eswitch_mode = Some(EswitchMode::Switchdev),
            |n| n.name = Some("ens9".into()),
            |n| n.device_id = "1017".into(),
            |n| n.link_type = None,
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut c = base.clone();
            change(&mut c[0]);
            assert_ne!(planning_fingerprint(&c), fp, "change {i}");
        }
        let mut two = base.clone();
        two.push(cx6("0000:3b:00.1", "ens1f1"));
        assert_ne!(planning_fingerprint(&two), fp);
        assert_ne!(planning_fingerprint(&[]), fp);
    }
}
