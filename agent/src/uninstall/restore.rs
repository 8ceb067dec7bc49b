//! Each PF as it was before the agent's first change, and the plan that puts it back (pure).
//!
//! Before the executor's first step on a PF the agent has not touched yet (not in its applied or
//! in-progress spec), [`record_originals`] notes what the host shows of it: VF count, eswitch
//! mode, MTU, driver. The record lives in the state file (`AgentState::originals`, written
//! atomically before the step). [`plan_restore`] turns the records back into steps on the
//! uninstall; they run through the ordinary executor.
//!
//! A PF the agent configured with a state file that predates these records (it is in the
//! applied spec but has no record) is reset as a PF removed from the spec is: 0 VFs, eswitch
//! legacy, its own kernel driver.

use std::collections::BTreeMap;

use crds::{
    inventory::{EswitchMode, Nic, NicInventory},
    node_state::NicNodeStateSpec,
    policy::VfDeviceType,
};
use planner::{
    ChangeClass,
    apply::{HostPlan, PfAction, PfPlan, Step, Vendor},
};
use serde::{Deserialize, Serialize};

use crate::state::AgentState;

const VFIO_PCI: &str = "vfio-pci";

/// What a PF showed before the agent changed it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PfOriginal {
    /// `sriov_numvfs`.
    pub num_vfs: u32,
    /// Eswitch mode (`None`: the PF has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eswitch_mode: Option<EswitchMode>,
    /// MTU of the PF netdev (`None`: no netdev).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The PF's driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

impl PfOriginal {
    /// What `nic` shows now.
    pub fn of(nic: &Nic) -> Self {
        Self {
            num_vfs: nic.num_vfs,
            eswitch_mode: nic.eswitch_mode,
            mtu: nic.mtu,
            driver: nic.driver.clone(),
        }
    }
}

/// Adds to `state` the original of every PF `plan` changes that the agent never touched before
/// (not in its applied or in-progress spec, no record yet), as `inventory` shows it. Returns
/// whether anything was added (the caller then stores the state before the first step).
pub fn record_originals(state: &mut AgentState, plan: &HostPlan, inventory: &NicInventory) -> bool {
    let touched = |pci: &str| {
        state
            .applied
            .iter()
            .chain(state.in_progress.as_ref().map(|p| &p.spec))
            .any(|s| s.interfaces.iter().any(|i| i.pci_address == pci))
    };
    let mut added = false;
    for pf in &plan.pfs {
        if pf.action != PfAction::Configure
            || pf.steps.is_empty()
            || state.originals.contains_key(&pf.pci_address)
            || touched(&pf.pci_address)
        {
            continue;
        }
        let Some(nic) = inventory
            .nics
            .iter()
            .find(|n| n.pci_address.eq_ignore_ascii_case(&pf.pci_address))
        else {
            continue;
        };
        state
            .originals
            .insert(pf.pci_address.clone(), PfOriginal::of(nic));
        added = true;
    }
    added
}

/// The plan that puts every PF the agent configured (the `applied` spec's, except the externally
/// managed ones, and every recorded one) back as `originals` records it, from what `inventory`
/// shows now. Each PF's steps: its own kernel driver again (a whole PF on vfio-pci), 0 VFs, the
/// eswitch mode, the VF count, the MTU: only what differs.
pub fn plan_restore(
    applied: &NicNodeStateSpec,
    originals: &BTreeMap<String, PfOriginal>,
    inventory: &NicInventory,
) -> HostPlan {
    let mut addrs: Vec<&str> = applied
        .interfaces
        .iter()
        .filter(|i| !i.externally_managed)
        .map(|i| i.pci_address.as_str())
        .chain(originals.keys().map(String::as_str))
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    let mut plan = HostPlan::default();
    for addr in addrs {
        let Some(nic) = inventory
            .nics
            .iter()
            .find(|n| n.pci_address.eq_ignore_ascii_case(addr))
        else {
            continue;
        };
        let fallback = PfOriginal {
            num_vfs: 0,
            eswitch_mode: nic.eswitch_mode.map(|_| EswitchMode::Legacy),
            mtu: None,
            driver: None,
        };
        let want = originals.get(addr).unwrap_or(&fallback);
        let steps = steps(nic, want);
        if steps.is_empty() {
            continue;
        }
        plan.class = ChangeClass::EvictVfPods;
        plan.pfs.push(PfPlan {
            pci_address: addr.to_owned(),
            name: nic.name.clone(),
            vendor: Vendor::of(nic),
            action: PfAction::Reset,
            steps,
            class: ChangeClass::EvictVfPods,
            reasons: vec!["uninstall: back as before the agent's first change".into()],
            desired: None,
        });
    }
    plan
}

fn steps(nic: &Nic, want: &PfOriginal) -> Vec<Step> {
    let mut steps = Vec::new();
    if nic.driver.as_deref() == Some(VFIO_PCI) && want.driver.as_deref() != Some(VFIO_PCI) {
        steps.push(Step::BindPf {
            device_type: VfDeviceType::Netdevice,
        });
    }
    let mode_differs =
        matches!((nic.eswitch_mode, want.eswitch_mode), (Some(a), Some(b)) if a != b);
    let count_differs = nic.num_vfs != want.num_vfs;
    // the kernel takes a new count only from 0, and mlx5 changes the eswitch mode only without VFs
    if nic.num_vfs > 0 && (count_differs || mode_differs) {
        steps.push(Step::SetNumVfs { count: 0 });
    }
    if mode_differs && let Some(mode) = want.eswitch_mode {
        steps.push(Step::EswitchMode { mode });
    }
    if want.num_vfs > 0 && (count_differs || mode_differs) {
        steps.push(Step::SetNumVfs {
            count: want.num_vfs,
        });
    }
    if let Some(mtu) = want.mtu
        && nic.mtu.is_some_and(|m| m != mtu)
    {
        steps.push(Step::PfMtu { mtu });
    }
    steps
}

#[cfg(test)]
mod tests {
    use crds::node_state::InterfaceSpec;
    use planner::fixtures::{cx6, with_vfs};

    use super::*;
    use crate::state::InProgress;

    const PF: &str = "0000:3b:00.0";

    fn spec(pci: &str, n: u32) -> NicNodeStateSpec {
        NicNodeStateSpec {
            interfaces: vec![InterfaceSpec {
                pci_address: pci.into(),
                num_vfs: n,
                policy: "p".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn configure(pci: &str, steps: Vec<Step>) -> HostPlan {
        HostPlan {
            pfs: vec![PfPlan {
                pci_address: pci.into(),
                name: None,
                vendor: Vendor::Mlx5,
                action: PfAction::Configure,
                steps,
                class: ChangeClass::NonDisruptive,
                reasons: Vec::new(),
                desired: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_original_is_recorded_once_before_the_first_change() {
        let mut nic = cx6(PF, "ens1f0np0");
        nic.mtu = Some(1500);
        let inv = NicInventory { nics: vec![nic] };
        let plan = configure(PF, vec![Step::SetNumVfs { count: 4 }]);
        let mut st = AgentState::default();
        assert!(record_originals(&mut st, &plan, &inv));
        let want = PfOriginal {
            num_vfs: 0,
            eswitch_mode: Some(EswitchMode::Legacy),
            mtu: Some(1500),
            driver: Some("mlx5_core".into()),
        };
        assert_eq!(st.originals.get(PF), Some(&want));
        // later plans (the PF now has 4 VFs) never overwrite it
        let changed = NicInventory {
            nics: vec![with_vfs(cx6(PF, "ens1f0np0"), 4, &[], &[])],
        };
        assert!(!record_originals(&mut st, &plan, &changed));
        assert_eq!(st.originals.get(PF), Some(&want));
    }

    #[test]
    fn a_pf_configured_before_the_records_existed_is_not_recorded_as_original() {
        let inv = NicInventory {
            nics: vec![with_vfs(cx6(PF, "ens1f0np0"), 4, &[], &[])],
        };
        let plan = configure(PF, vec![Step::PfMtu { mtu: 9000 }]);
        let mut st = AgentState {
            applied: Some(spec(PF, 4)),
            ..Default::default()
        };
        assert!(!record_originals(&mut st, &plan, &inv));
        st.applied = None;
        st.in_progress = Some(InProgress {
            spec: spec(PF, 4),
            ..Default::default()
        });
        assert!(!record_originals(&mut st, &plan, &inv));
        assert!(st.originals.is_empty());
        // nor one in sync (no step): nothing is changed, nothing to restore
        st.in_progress = None;
        assert!(!record_originals(&mut st, &configure(PF, vec![]), &inv));
    }

    #[test]
    fn restore_puts_count_mode_and_mtu_back() {
        let mut now = with_vfs(cx6(PF, "ens1f0np0"), 8, &[], &[]);
        now.eswitch_mode = Some(EswitchMode::Switchdev);
        now.mtu = Some(9000);
        let inv = NicInventory { nics: vec![now] };
        let originals = BTreeMap::from([(
            PF.to_owned(),
            PfOriginal {
                num_vfs: 2,
                eswitch_mode: Some(EswitchMode::Legacy),
                mtu: Some(1500),
                driver: Some("mlx5_core".into()),
            },
        )]);
        let plan = plan_restore(&spec(PF, 8), &originals, &inv);
        assert_eq!(plan.pfs.len(), 1);
        assert_eq!(plan.pfs[0].action, PfAction::Reset);
        assert_eq!(
            plan.pfs[0].steps,
            vec![
                Step::SetNumVfs { count: 0 },
                Step::EswitchMode {
                    mode: EswitchMode::Legacy
                },
                Step::SetNumVfs { count: 2 },
                Step::PfMtu { mtu: 1500 },
            ]
        );
    }

    #[test]
    fn restore_without_a_record_resets_and_a_restored_pf_gets_no_step() {
        let mut now = with_vfs(cx6(PF, "ens1f0np0"), 8, &[], &[]);
        now.eswitch_mode = Some(EswitchMode::Switchdev);
        now.driver = Some("vfio-pci".into());
        let inv = NicInventory { nics: vec![now] };
        let plan = plan_restore(&spec(PF, 8), &BTreeMap::new(), &inv);
        assert_eq!(
            plan.pfs[0].steps,
            vec![
                Step::BindPf {
                    device_type: VfDeviceType::Netdevice
                },
                Step::SetNumVfs { count: 0 },
                Step::EswitchMode {
                    mode: EswitchMode::Legacy
                },
            ]
        );
        // as recorded: nothing to do; an externally managed PF is never touched
        let inv = NicInventory {
            nics: vec![cx6(PF, "ens1f0np0")],
        };
        assert!(plan_restore(&spec(PF, 8), &BTreeMap::new(), &inv).in_sync());
        let mut external = spec(PF, 8);
        external.interfaces[0].externally_managed = true;
        let inv = NicInventory {
            nics: vec![with_vfs(cx6(PF, "ens1f0np0"), 8, &[], &[])],
        };
        assert!(plan_restore(&external, &BTreeMap::new(), &inv).in_sync());
    }
}
