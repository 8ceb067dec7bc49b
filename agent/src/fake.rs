//! A fake host for executor tests: an inventory that every step changes as the kernel would, a
//! log of the calls, and a failure on demand. Planning again from [`FakeHost::inventory`] after a
//! partial run gives the remaining steps, as on a real host.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crds::{
    device_plugin::DevicePluginConfig,
    inventory::{NicInventory, Vf},
    policy::VfDeviceType,
    pool::RdmaMode,
};
use planner::apply::{PfFacts, PfPlan, Step};

use crate::executor::{HostOps, StepDone, StepError};
use crate::files::read_json;

/// The fake host.
#[derive(Debug, Default)]
pub struct FakeHost {
    inventory: Mutex<NicInventory>,
    facts: Mutex<BTreeMap<String, PfFacts>>,
    calls: Mutex<Vec<String>>,
    /// Fail the `n`th call (0-based, over all PFs) of this PF.
    fail: Mutex<Option<(String, usize)>>,
    /// Hand-off file to check at each call.
    handoff: Option<PathBuf>,
    /// Disturbing steps that ran while their PF was still advertised.
    violations: Mutex<Vec<String>>,
    per_pf: Mutex<BTreeMap<String, usize>>,
    /// Administrative MACs set through the PF: a VF netdev takes it at probe.
    admin_macs: Mutex<BTreeMap<(String, u32), String>>,
    /// The RDMA netns mode; `None`: a host without the `rdma` tool.
    rdma: Mutex<Option<RdmaMode>>,
}

impl FakeHost {
    /// A host showing `inventory`; when `handoff` is given, every step that disturbs VFs checks
    /// that the file no longer lists its PF.
    pub fn new(inventory: NicInventory, handoff: Option<PathBuf>) -> Self {
        Self {
            inventory: Mutex::new(inventory),
            handoff,
            ..Default::default()
        }
    }

    /// What the host shows now.
    pub fn inventory(&self) -> NicInventory {
        self.inventory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Facts as a real host reports them: `hw-tc-offload` and the VFs' administrative MACs, as
    /// the steps left them.
    pub fn facts(&self) -> BTreeMap<String, PfFacts> {
        let mut facts = self.facts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let admin = self.admin_macs.lock().unwrap_or_else(|e| e.into_inner());
        for nic in &self.inventory().nics {
            let macs = admin
                .iter()
                .filter(|((p, _), _)| *p == nic.pci_address)
                .map(|((_, vf), mac)| (*vf, mac.clone()))
                .collect();
            facts
                .entry(nic.pci_address.clone())
                .or_default()
                .vf_admin_macs = Some(macs);
        }
        facts
    }

    /// The calls so far, `PCI: step`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fails the `nth` call on PF `pci` from now on (counted from the start).
    pub fn fail_at(&self, pci: &str, nth: usize) {
        *self.fail.lock().unwrap_or_else(|e| e.into_inner()) = Some((pci.to_owned(), nth));
    }

    /// The RDMA netns mode the host shows (`None`: no `rdma` tool).
    pub fn rdma(&self) -> Option<RdmaMode> {
        *self.rdma.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the RDMA netns mode the host shows (`None`: no `rdma` tool).
    pub fn set_rdma(&self, mode: Option<RdmaMode>) {
        *self.rdma.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// Stops failing.
    pub fn heal(&self) {
        *self.fail.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Steps that destroyed or rebound VFs still advertised to the device plugin.
    pub fn violations(&self) -> Vec<String> {
        self.violations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn advertised(&self, pci: &str) -> bool {
        let Some(path) = &self.handoff else {
            return false;
        };
        let cfg: DevicePluginConfig = read_json(path).ok().flatten().unwrap_or_default();
        cfg.resource_list
            .iter()
            .flat_map(|p| &p.selectors)
            .flat_map(|s| &s.pfs)
            .any(|p| p.pci_address == pci)
    }
}

const NO_RDMA: &str = "rdmaMode: the rdma tool (iproute2) is not installed on the node";

impl HostOps for FakeHost {
    fn rdma_netns_mode(&self) -> Result<RdmaMode, String> {
        self.rdma().ok_or_else(|| NO_RDMA.to_owned())
    }

    fn set_rdma_netns_mode(&self, mode: RdmaMode) -> Result<(), String> {
        let mut rdma = self.rdma.lock().unwrap_or_else(|e| e.into_inner());
        if rdma.is_none() {
            return Err(NO_RDMA.to_owned());
        }
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("node: rdma system set netns {}", mode.as_str()));
        *rdma = Some(mode);
        Ok(())
    }

    fn apply(&self, pf: &PfPlan, step: &Step) -> Result<StepDone, StepError> {
        let pci = pf.pci_address.as_str();
        let n = {
            let mut per = self.per_pf.lock().unwrap_or_else(|e| e.into_inner());
            let c = per.entry(pci.to_owned()).or_default();
            *c += 1;
            *c - 1
        };
        if step.disturbs_vfs() && self.advertised(pci) {
            self.violations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{pci}: {step}"));
        }
        let failing = self
            .fail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|(p, k)| p == pci && *k == n);
        if failing {
            return Err(StepError::new(pf, step, "injected failure"));
        }
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{pci}: {step}"));
        let mut admin = self.admin_macs.lock().unwrap_or_else(|e| e.into_inner());
        let mut inv = self.inventory.lock().unwrap_or_else(|e| e.into_inner());
        let Some(nic) = inv.nics.iter_mut().find(|n| n.pci_address == pci) else {
            return Err(StepError::new(pf, step, "no such PF"));
        };
        let kernel = nic
            .driver
            .as_deref()
            .and_then(crate::host::kernel_vf_driver)
            .unwrap_or("vf-driver");
        let name = nic.name.clone().unwrap_or_default();
        let vfs_in = |ranges: &[crds::node_state::VfIndexRange], vf: u32| {
            ranges.iter().any(|r| r.first <= vf && vf <= r.last)
        };
        match step {
            Step::Firmware(_) => return Ok(StepDone::RebootNeeded),
            Step::SetNumVfs { count } | Step::SetNumVfsUnprobed { count } => {
                let probed = matches!(step, Step::SetNumVfs { .. });
                if *count != 0 && nic.num_vfs != 0 {
                    return Err(StepError::new(pf, step, "EBUSY: sriov_numvfs is not 0"));
                }
                if *count > nic.total_vfs {
                    return Err(StepError::new(pf, step, "ERANGE"));
                }
                nic.num_vfs = *count;
                admin.retain(|(p, _), _| p != pci);
                nic.vfs = (0..*count)
                    .map(|i| Vf {
                        vf_id: i,
                        pci_address: format!("{}.{}", &pci[..10], i + 2),
                        name: probed.then(|| format!("{name}v{i}")),
                        driver: probed.then(|| kernel.to_owned()),
                        mac: probed.then(|| format!("aa:bb:cc:00:00:{i:02x}")),
                        mtu: probed.then_some(1500),
                        iommu_group: Some(100 + i),
                        ..Default::default()
                    })
                    .collect();
            }
            Step::WaitVfs { count } => {
                if nic.vfs.len() != *count as usize {
                    return Err(StepError::new(pf, step, "VFs did not appear"));
                }
            }
            Step::EswitchMode { mode } => {
                if nic.vfs.iter().any(|v| v.driver.is_some())
                    && nic.driver.as_deref() == Some("mlx5_core")
                {
                    return Err(StepError::new(pf, step, "EBUSY: VFs are bound"));
                }
                nic.eswitch_mode = Some(*mode);
                nic.vfs.iter_mut().for_each(|v| v.representor = None);
            }
            Step::SetVfMac { vf, mac } => {
                admin.insert((pci.to_owned(), *vf), mac.clone());
                if let Some(v) = nic.vfs.iter_mut().find(|v| v.vf_id == *vf) {
                    v.mac = Some(mac.clone());
                }
            }
            Step::SetVfGuid { vf, guid } => {
                if nic.link_type != Some(crds::inventory::LinkType::Ib) {
                    return Err(StepError::new(pf, step, "EOPNOTSUPP: not an InfiniBand PF"));
                }
                if let Some(v) = nic.vfs.iter_mut().find(|v| v.vf_id == *vf) {
                    (v.node_guid, v.port_guid) = (Some(*guid), Some(*guid));
                }
            }
            Step::UnbindVfs { vfs } => {
                for v in nic.vfs.iter_mut().filter(|v| vfs_in(vfs, v.vf_id)) {
                    v.driver = None;
                    v.name = None;
                    v.mac = None;
                    v.mtu = None;
                }
            }
            Step::BindVfs { vfs, device_type } => {
                for v in nic.vfs.iter_mut().filter(|v| vfs_in(vfs, v.vf_id)) {
                    if *device_type == VfDeviceType::VfioPci {
                        if v.iommu_group.is_none() {
                            return Err(StepError::new(pf, step, "no IOMMU group"));
                        }
                        v.driver = Some("vfio-pci".into());
                        v.name = None;
                        v.mac = None;
                        v.mtu = None;
                    } else {
                        v.driver = Some(kernel.to_owned());
                        v.name = Some(format!("{name}v{}", v.vf_id));
                        v.mtu = Some(1500);
                        v.mac = Some(
                            admin
                                .get(&(pci.to_owned(), v.vf_id))
                                .cloned()
                                .unwrap_or_else(|| format!("aa:bb:cc:00:01:{:02x}", v.vf_id)),
                        );
                    }
                }
            }
            Step::RebindVfs { .. } => {}
            Step::Representors { .. } => {
                for v in &mut nic.vfs {
                    v.representor = Some(format!("{name}_{}", v.vf_id));
                }
            }
            Step::HwTcOffload { on } => {
                self.facts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(pci.to_owned())
                    .or_default()
                    .hw_tc_offload = Some(*on);
            }
            Step::PfMtu { mtu } => nic.mtu = Some(*mtu),
            Step::PfUp => {
                self.facts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(pci.to_owned())
                    .or_default()
                    .admin_up = Some(true);
            }
            Step::VfMtu { vfs, mtu } => {
                for v in nic.vfs.iter_mut().filter(|v| vfs_in(vfs, v.vf_id)) {
                    v.mtu = Some(*mtu);
                }
            }
            Step::BindPf { device_type } => match device_type {
                VfDeviceType::VfioPci => {
                    nic.driver = Some("vfio-pci".into());
                    nic.name = None;
                    nic.mtu = None;
                }
                // the fake's PFs are all igb-like when they come back from vfio-pci
                VfDeviceType::Netdevice => {
                    nic.driver = Some("igb".into());
                    nic.mtu = Some(1500);
                }
            },
        }
        Ok(StepDone::Done)
    }
}

impl FakeHost {
    /// Sets the pods holding a macvlan/ipvlan child of PF `pci` ([`PfFacts::upper_users`]).
    pub fn set_upper_users(&self, pci: &str, users: Vec<String>) {
        self.facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(pci.to_owned())
            .or_default()
            .upper_users = users;
    }
}

impl crate::run::host::NodeHost for FakeHost {
    fn discover(&self) -> Result<NicInventory, String> {
        Ok(self.inventory())
    }

    fn pf_facts(
        &self,
        _inventory: &NicInventory,
        _spec: &crds::node_state::NicNodeStateSpec,
    ) -> BTreeMap<String, PfFacts> {
        self.facts()
    }
}
