//! [`HostOps`] on a real host (or a sysfs fixture tree for the sysfs-only steps): sysfs for VF
//! counts and drivers (`nic::sriov`), rtnetlink for MACs and MTUs, devlink for the eswitch mode
//! and representors, ethtool for `hw-tc-offload`. Each call blocks; the netlink families are
//! asked from a small runtime of the calling thread (the executor runs one thread per PF).
//!
//! A netdevsim device (`netdevsim/netdevsimN`, no PCI function) takes its VF count through
//! `/sys/bus/netdevsim/devices/netdevsimN/sriov_numvfs` and its eswitch mode through devlink
//! `netdevsim/netdevsimN`; the steps that need a VF's PCI function (bind, unbind, VF MTU) are
//! refused naming the device.

use std::future::Future;
use std::time::{Duration, Instant};

use crds::policy::VfDeviceType;
use nic::{
    devlink::{DevlinkDev, DevlinkHandle, EswitchMode},
    ethtool::EthtoolHandle,
    netlink::{MacAddr, NetlinkHandle},
    pci::PciAddress,
    sriov::{SriovHandle, VfReadiness},
    sysfs::SysFs,
};
use planner::apply::{PfPlan, Step, VfRanges};

use crate::executor::{HostOps, StepDone, StepError};

/// The longest [`SysHost`] waits for a PF's link after setting it up (an emulated 82576 takes one to
/// three seconds, a real port's autonegotiation a few).
const PF_LINK_WAIT: Duration = Duration::from_secs(10);
use crate::firmware::SystemRunner;

/// The kernel VF driver of a PF driver (`mlx5_core` → `mlx5_core`, `ice` → `iavf`).
pub fn kernel_vf_driver(pf_driver: &str) -> Option<&'static str> {
    Some(match pf_driver {
        "mlx5_core" => "mlx5_core",
        "ice" | "i40e" => "iavf",
        "igb" => "igbvf",
        "ixgbe" => "ixgbevf",
        "bnxt_en" => "bnxt_en",
        _ => return None,
    })
}

/// The host behind the steps.
#[derive(Clone, Debug)]
pub struct SysHost {
    sysfs: SysFs,
    /// How long VF creation, driver binds and representors may take.
    pub timeout: Duration,
}

impl SysHost {
    /// Over `sysfs` (the host's, or a fixture tree).
    pub fn new(sysfs: SysFs) -> Self {
        Self {
            sysfs,
            timeout: Duration::from_secs(120),
        }
    }

    /// After `ip link set $PF up`: waits until the PF's operstate is `up`, at most
    /// [`PF_LINK_WAIT`] (or the step timeout, when shorter). A VF driver asks the PF for its MAC and link over the PF's mailbox when it
    /// probes, and a VF probed while the PF is still coming up keeps a random MAC and no carrier
    /// until it is probed again (igbvf logs "PF still in reset state. Is the PF interface up?");
    /// the steps after this one bind or rebind VFs. A PF without a cable never gets there: then the plan
    /// goes on after the wait, with a warning.
    fn wait_pf_link(&self, pf: &str) {
        let operstate = self.sysfs.netdev_dir(pf).join("operstate");
        let wait = PF_LINK_WAIT.min(self.timeout);
        let deadline = Instant::now() + wait;
        loop {
            if self
                .sysfs
                .read_string(&operstate)
                .is_ok_and(|s| s.trim() == "up")
            {
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    pf,
                    "the PF's link is not up {wait:?} after setting it up; VFs probed now may get no MAC and no link"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn vf_addr(&self, pf: PciAddress, vf: u32) -> Result<PciAddress, String> {
        let link = self.sysfs.pci_device_dir(&pf).join(format!("virtfn{vf}"));
        self.sysfs
            .read_link_parsed(&link, "a PCI address")
            .map_err(|e| e.to_string())
    }

    fn pf_driver(&self, pf: PciAddress) -> Result<String, String> {
        SriovHandle::new(&self.sysfs)
            .driver(pf)
            .get()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the PF has no driver".to_owned())
    }

    fn vf_netdev(&self, vf: PciAddress) -> Option<String> {
        self.sysfs
            .list_dir(&self.sysfs.pci_device_dir(&vf).join("net"))
            .ok()?
            .into_iter()
            .next()
    }

    fn bind(&self, pf: PciAddress, vfs: &[u32], device_type: VfDeviceType) -> Result<(), String> {
        let driver = match device_type {
            VfDeviceType::VfioPci => "vfio-pci".to_owned(),
            VfDeviceType::Netdevice => {
                let pf_driver = self.pf_driver(pf)?;
                kernel_vf_driver(&pf_driver)
                    .ok_or_else(|| format!("no known VF driver for PF driver {pf_driver}"))?
                    .to_owned()
            }
        };
        let sriov = SriovHandle::new(&self.sysfs);
        for &vf in vfs {
            let addr = self.vf_addr(pf, vf)?;
            if device_type == VfDeviceType::VfioPci
                && !self
                    .sysfs
                    .exists(&self.sysfs.pci_device_dir(&addr).join("iommu_group"))
            {
                return Err(format!(
                    "VF {vf} ({addr}) has no IOMMU group: enable the IOMMU (intel_iommu=on iommu=pt or amd_iommu=on) for vfio-pci"
                ));
            }
            sriov
                .driver(addr)
                .bind(driver.clone())
                .timeout(self.timeout)
                .execute()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The PF itself to `vfio-pci`, or back to the kernel driver that claims it
    /// (`drivers_probe` with no `driver_override`), waiting for its netdev.
    fn bind_pf(&self, pf: PciAddress, device_type: VfDeviceType) -> Result<(), String> {
        let sriov = SriovHandle::new(&self.sysfs);
        let dir = self.sysfs.pci_device_dir(&pf);
        match device_type {
            VfDeviceType::VfioPci => {
                if !self.sysfs.exists(&dir.join("iommu_group")) {
                    return Err(format!(
                        "PF {pf} has no IOMMU group: enable the IOMMU (intel_iommu=on iommu=pt or amd_iommu=on) for vfio-pci"
                    ));
                }
                sriov
                    .driver(pf)
                    .bind("vfio-pci")
                    .timeout(self.timeout)
                    .execute()
                    .map_err(|e| e.to_string())?;
            }
            VfDeviceType::Netdevice => {
                sriov
                    .driver(pf)
                    .unbind()
                    .execute()
                    .map_err(|e| e.to_string())?;
                self.sysfs
                    .write(&self.sysfs.pci_drivers_probe(), pf)
                    .map_err(|e| e.to_string())?;
                let deadline = Instant::now() + self.timeout;
                while self.vf_netdev(pf).is_none() {
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "PF {pf} has no netdev {:?} after drivers_probe (no kernel driver claimed it?)",
                            self.timeout
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Ok(())
    }

    fn unbind(&self, pf: PciAddress, vfs: &[u32]) -> Result<(), String> {
        let sriov = SriovHandle::new(&self.sysfs);
        for &vf in vfs {
            let addr = self.vf_addr(pf, vf)?;
            sriov
                .driver(addr)
                .unbind()
                .execute()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn block_on<F: Future>(fut: F) -> Result<F::Output, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    Ok(rt.block_on(fut))
}

impl HostOps for SysHost {
    fn rdma_netns_mode(&self) -> Result<crds::pool::RdmaMode, String> {
        crate::rdma::netns_mode(&SystemRunner).map_err(|e| e.to_string())
    }

    fn set_rdma_netns_mode(&self, mode: crds::pool::RdmaMode) -> Result<(), String> {
        crate::rdma::set_netns_mode(&SystemRunner, mode).map_err(|e| e.to_string())
    }

    fn apply(&self, pf: &PfPlan, step: &Step) -> Result<StepDone, StepError> {
        let fail = |m: String| StepError::new(pf, step, m);
        let nsim = nic::discovery::netdevsim_device(&pf.pci_address);
        let pci = || -> Result<PciAddress, StepError> {
            match nsim {
                Some(_) => Err(fail(format!(
                    "{} is a netdevsim device: its VFs have no PCI function, driver or netdev",
                    pf.pci_address
                ))),
                None => pf
                    .pci_address
                    .parse()
                    .map_err(|_| fail(format!("{} is not a PCI address", pf.pci_address))),
            }
        };
        let name = || {
            pf.name
                .clone()
                .ok_or_else(|| fail("the PF has no netdev".into()))
        };
        let sriov = SriovHandle::new(&self.sysfs);
        match step {
            Step::Firmware(_) => {
                return Err(fail(
                    "firmware steps run through the firmware interface".into(),
                ));
            }
            Step::SetNumVfs { count } if let Some(dev) = nsim => {
                // `echo N > /sys/bus/netdevsim/devices/$DEV/sriov_numvfs`: synchronous, and the
                // VFs have no driver or netdev to wait for
                let path = self
                    .sysfs
                    .path("sys/bus/netdevsim/devices")
                    .join(dev)
                    .join("sriov_numvfs");
                self.sysfs
                    .write(&path, count)
                    .map_err(|e| fail(e.to_string()))?;
            }
            Step::WaitVfs { .. } if nsim.is_some() => {}
            Step::SetNumVfs { count } => {
                let pf = pci()?;
                // VFs this step creates are the kernel's to probe, as before the agent (an igb
                // PF's autoprobe is off since its last `SetNumVfsUnprobed`; an uninstall ends
                // with this step and so leaves it on)
                let autoprobe = sriov.autoprobe(pf);
                if matches!(autoprobe.get(), Ok(false)) {
                    autoprobe.set(true).map_err(|e| fail(e.to_string()))?;
                }
                sriov
                    .numvfs(pf)
                    .set(*count)
                    .no_wait()
                    .execute()
                    .map_err(|e| fail(e.to_string()))?;
            }
            Step::SetNumVfsUnprobed { count } => {
                // Autoprobe stays off: the VF driver's module, loaded by udev for the first VF
                // whenever that happens, would otherwise bind every unbound VF as it registers.
                // The plan binds each VF itself (driver_override, which probes whatever
                // autoprobe says), and `SetNumVfs` turns autoprobe back on.
                let pf = pci()?;
                sriov
                    .autoprobe(pf)
                    .set(false)
                    .map_err(|e| fail(e.to_string()))?;
                sriov
                    .numvfs(pf)
                    .set(*count)
                    .ready(VfReadiness::Present)
                    .timeout(self.timeout)
                    .execute()
                    .map_err(|e| fail(e.to_string()))?;
            }
            Step::WaitVfs { count } => {
                // no write (the count is already set): polls each VF's driver and netdev
                sriov
                    .numvfs(pci()?)
                    .set(*count)
                    .ready(VfReadiness::Netdev)
                    .timeout(self.timeout)
                    .execute()
                    .map_err(|e| fail(e.to_string()))?;
            }
            Step::UnbindVfs { vfs } => self.unbind(pci()?, &vfs.indices()).map_err(fail)?,
            Step::BindVfs { vfs, device_type } => {
                self.bind(pci()?, &vfs.indices(), *device_type)
                    .map_err(fail)?;
            }
            Step::RebindVfs { vfs } => {
                let vfs = vfs.indices();
                let addr = pci()?;
                self.unbind(addr, &vfs).map_err(fail)?;
                self.bind(addr, &vfs, VfDeviceType::Netdevice)
                    .map_err(fail)?;
            }
            Step::SetVfMac { vf, mac } => {
                let mac: MacAddr = mac
                    .parse()
                    .map_err(|_| fail(format!("{mac} is not a MAC")))?;
                let pf_name = name()?;
                block_on(async {
                    let nl = NetlinkHandle::connect()?;
                    nl.vf(pf_name.as_str()).set(*vf).mac(mac).execute().await
                })
                .map_err(fail)?
                .map_err(|e| fail(e.to_string()))?;
            }
            Step::SetVfGuid { vf, guid } => {
                // node GUID first, then port GUID, as `ip link set $PF vf N node_guid G
                // port_guid G` sends them; each its own request so an error names the one refused
                let pf_name = name()?;
                block_on(async {
                    let nl = NetlinkHandle::connect()?;
                    let vf = nl.vf(pf_name.as_str()).set(*vf);
                    vf.node_guid(*guid).port_guid(*guid).execute().await
                })
                .map_err(fail)?
                .map_err(|e| fail(e.to_string()))?;
            }
            Step::PfMtu { mtu } => {
                let pf_name = name()?;
                block_on(async {
                    let nl = NetlinkHandle::connect()?;
                    nl.link().set(pf_name.as_str()).mtu(*mtu).execute().await
                })
                .map_err(fail)?
                .map_err(|e| fail(e.to_string()))?;
            }
            Step::PfUp => {
                let pf_name = name()?;
                block_on(async {
                    let nl = NetlinkHandle::connect()?;
                    nl.link().set(pf_name.as_str()).up().execute().await
                })
                .map_err(fail)?
                .map_err(|e| fail(e.to_string()))?;
                self.wait_pf_link(&pf_name);
            }
            Step::BindPf { device_type } => {
                self.bind_pf(pci()?, *device_type).map_err(fail)?;
            }
            Step::VfMtu { vfs, mtu } => {
                let addr = pci()?;
                let mut names = Vec::new();
                for vf in vfs.indices() {
                    let a = self.vf_addr(addr, vf).map_err(fail)?;
                    names.push(
                        self.vf_netdev(a)
                            .ok_or_else(|| fail(format!("VF {vf} ({a}) has no netdev")))?,
                    );
                }
                block_on(async {
                    let nl = NetlinkHandle::connect()?;
                    for n in names {
                        nl.link().set(n.as_str()).mtu(*mtu).execute().await?;
                    }
                    Ok::<(), nic::netlink::NetlinkError>(())
                })
                .map_err(fail)?
                .map_err(|e| fail(e.to_string()))?;
            }
            Step::EswitchMode { mode } => {
                let m = match mode {
                    crds::inventory::EswitchMode::Legacy => EswitchMode::Legacy,
                    crds::inventory::EswitchMode::Switchdev => EswitchMode::Switchdev,
                };
                // `devlink dev eswitch set pci/$PF|netdevsim/$DEV mode M`
                let dev = match nsim {
                    Some(_) => nic::discovery::devlink_instance(&pf.pci_address),
                    None => DevlinkDev::pci(pci()?),
                };
                block_on(async {
                    let dl = DevlinkHandle::connect().await?;
                    dl.eswitch(&dev).set().mode(m).execute().await
                })
                .map_err(fail)?
                .map_err(|e| fail(e.to_string()))?;
            }
            Step::Representors { count } => {
                let uplink = name()?;
                let deadline = Instant::now() + self.timeout;
                let missing = block_on(async {
                    let dl = DevlinkHandle::connect_optional().await.ok().flatten();
                    loop {
                        let mut missing = Vec::new();
                        for vf in 0..*count {
                            let r = nic::representor::vf_representor(
                                dl.as_ref(),
                                &self.sysfs,
                                &uplink,
                                vf,
                            )
                            .await;
                            if !matches!(r, Ok(Some(_))) {
                                missing.push(vf);
                            }
                        }
                        if missing.is_empty() || Instant::now() >= deadline {
                            return missing;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
                .map_err(fail)?;
                if !missing.is_empty() {
                    return Err(fail(format!(
                        "no representor for VFs {missing:?} of uplink {uplink} after {}",
                        crds::report::human_duration(self.timeout)
                    )));
                }
            }
            Step::HwTcOffload { on } => {
                let pf_name = name()?;
                block_on(async {
                    let et = EthtoolHandle::connect().await?;
                    et.features()
                        .set(&pf_name)
                        .feature("hw-tc-offload", *on)
                        .execute()
                        .await
                })
                .map_err(fail)?
                .map_err(|e| fail(e.to_string()))?;
            }
        }
        Ok(StepDone::Done)
    }
}

/// Fills the VF GUIDs of the InfiniBand PFs of `inventory` from their PFs' VF tables
/// (`IFLA_VF_IB_NODE_GUID`/`PORT_GUID` in `IFLA_VF_INFO`), which every IB driver reports; sysfs
/// shows them only on some mlx5 builds.
pub fn vf_guids_from_netlink(inventory: &mut crds::inventory::NicInventory) {
    let ib: Vec<usize> = inventory
        .nics
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            n.link_type == Some(crds::inventory::LinkType::Ib) && n.name.is_some() && n.num_vfs > 0
        })
        .map(|(i, _)| i)
        .collect();
    if ib.is_empty() {
        return;
    }
    let _ = block_on(async {
        let Ok(nl) = NetlinkHandle::connect() else {
            return;
        };
        for i in ib {
            let nic = &mut inventory.nics[i];
            let Some(name) = nic.name.clone() else {
                continue;
            };
            match nl.vf(name.as_str()).list().execute().await {
                Ok(rows) => merge_vf_guids(nic, &rows),
                Err(e) => tracing::warn!(pf = %name, "cannot read the VF GUIDs: {e}"),
            }
        }
    });
}

/// The GUIDs of `rows` (a PF's VF table) into the PF's VFs; a GUID the PF does not report (or
/// reports as zero) keeps what sysfs showed.
pub fn merge_vf_guids(nic: &mut crds::inventory::Nic, rows: &[nic::netlink::VfInfo]) {
    for vf in &mut nic.vfs {
        if let Some(row) = rows.iter().find(|r| r.vf == vf.vf_id) {
            vf.node_guid = row.node_guid.or(vf.node_guid);
            vf.port_guid = row.port_guid.or(vf.port_guid);
        }
    }
}

/// What the plan needs beyond the inventory: the VFs' administrative MACs as each PF of the spec
/// reports them (rtnetlink), and `hw-tc-offload` of each PF the spec wants in switchdev (ethtool).
/// What does not answer stays unknown, and the plan then falls back to the inventory (MACs) or
/// plans the step (`hw-tc-offload`).
pub fn pf_facts(
    inventory: &crds::inventory::NicInventory,
    spec: &crds::node_state::NicNodeStateSpec,
) -> std::collections::BTreeMap<String, planner::apply::PfFacts> {
    let pfs: Vec<(String, String, bool)> = spec
        .interfaces
        .iter()
        .filter_map(|i| {
            let nic = inventory
                .nics
                .iter()
                .find(|n| n.pci_address == i.pci_address)?;
            let switchdev = i.eswitch_mode == Some(crds::inventory::EswitchMode::Switchdev);
            Some((i.pci_address.clone(), nic.name.clone()?, switchdev))
        })
        .collect();
    if pfs.is_empty() {
        return Default::default();
    }
    block_on(async {
        let mut out = std::collections::BTreeMap::new();
        let nl = NetlinkHandle::connect().ok();
        let et = EthtoolHandle::connect().await.ok();
        for (pci, name, switchdev) in pfs {
            let mut facts = planner::apply::PfFacts::default();
            if let Some(nl) = &nl
                && let Ok(link) = nl.link().get(name.as_str()).execute().await
            {
                facts.admin_up = Some(link.up);
            }
            if let Some(nl) = &nl
                && let Ok(vfs) = nl.vf(name.as_str()).list().execute().await
            {
                facts.vf_admin_macs = Some(
                    vfs.into_iter()
                        .filter_map(|v| {
                            let mac = v.mac?.to_string();
                            (mac != "00:00:00:00:00:00").then_some((v.vf, mac))
                        })
                        .collect(),
                );
            }
            if switchdev && let Some(et) = &et {
                facts.hw_tc_offload = et
                    .features()
                    .get(&name)
                    .execute()
                    .await
                    .ok()
                    .and_then(|f| f.features.get("hw-tc-offload").map(|s| s.active));
            }
            out.insert(pci, facts);
        }
        out
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use planner::ChangeClass;
    use planner::apply::{PfAction, Vendor};

    use super::*;

    fn nsim_plan() -> PfPlan {
        PfPlan {
            pci_address: "netdevsim/netdevsim3".into(),
            name: Some("eth2".into()),
            vendor: Vendor::Netdevsim,
            action: PfAction::Configure,
            steps: Vec::new(),
            class: ChangeClass::NonDisruptive,
            reasons: Vec::new(),
            desired: None,
        }
    }

    #[test]
    fn the_pf_link_wait_ends_when_the_link_is_up_or_the_wait_is_over() {
        let root = tempfile::tempdir().unwrap();
        let operstate = root.path().join("sys/class/net/eth0/operstate");
        std::fs::create_dir_all(operstate.parent().unwrap()).unwrap();
        std::fs::write(&operstate, "down\n").unwrap();
        let mut host = SysHost::new(SysFs::new(root.path()));
        host.timeout = Duration::from_millis(300);
        // down all along: returns after the (shortened) wait, the plan goes on
        let t = Instant::now();
        host.wait_pf_link("eth0");
        assert!(t.elapsed() >= Duration::from_millis(300));
        // up: returns at once; a link that comes up while waiting ends the wait
        std::fs::write(&operstate, "up\n").unwrap();
        host.timeout = Duration::from_secs(3600);
        host.wait_pf_link("eth0");
        std::fs::write(&operstate, "down\n").unwrap();
        let flip = std::thread::spawn({
            let operstate = operstate.clone();
            move || {
                std::thread::sleep(Duration::from_millis(100));
                std::fs::write(&operstate, "up\n").unwrap();
            }
        });
        host.wait_pf_link("eth0");
        flip.join().unwrap();
    }

    #[test]
    fn netdevsim_vf_count_goes_to_the_netdevsim_bus_and_pci_steps_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let numvfs = root
            .path()
            .join("sys/bus/netdevsim/devices/netdevsim3/sriov_numvfs");
        std::fs::create_dir_all(numvfs.parent().unwrap()).unwrap();
        std::fs::write(&numvfs, "0\n").unwrap();
        let host = SysHost::new(SysFs::new(root.path()));
        let pf = nsim_plan();

        let step = Step::SetNumVfs { count: 4 };
        assert_eq!(host.apply(&pf, &step), Ok(StepDone::Done));
        assert_eq!(std::fs::read_to_string(&numvfs).unwrap().trim(), "4");
        assert_eq!(
            host.apply(&pf, &Step::WaitVfs { count: 4 }),
            Ok(StepDone::Done),
            "nothing to wait for"
        );

        let bind = Step::BindVfs {
            vfs: vec![crds::node_state::VfIndexRange { first: 0, last: 3 }],
            device_type: VfDeviceType::VfioPci,
        };
        let err = host.apply(&pf, &bind).unwrap_err();
        assert_eq!(err.pf, "eth2 (netdevsim/netdevsim3)");
        assert_eq!(
            err.message,
            "netdevsim/netdevsim3 is a netdevsim device: its VFs have no PCI function, driver or netdev"
        );
    }

    #[test]
    fn a_vanished_netdevsim_device_names_the_path() {
        let root = tempfile::tempdir().unwrap();
        let host = SysHost::new(SysFs::new(root.path()));
        let err = host
            .apply(&nsim_plan(), &Step::SetNumVfs { count: 4 })
            .unwrap_err();
        assert!(
            err.message
                .contains("sys/bus/netdevsim/devices/netdevsim3/sriov_numvfs"),
            "{err}"
        );
    }
}
