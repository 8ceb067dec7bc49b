//! NIC discovery from sysfs alone (no netlink): PCI network functions, their VFs, switchdev facts.
//!
//! [`discover_with_warnings`] walks `/sys/bus/pci/devices` once, in address order. A VF comes after
//! its PF (its routing id is the PF's plus `sriov_offset`), so VFs are read from the PF's
//! `virtfnN` links and never looked at twice. Everything of PCI class `0x02xxxx` (network,
//! including `0x0207xx` InfiniBand) is reported; a VF whose PF is not visible (a VF passed into a
//! VM) is reported as a NIC of its own. netdevsim devices (`/sys/bus/netdevsim/devices`), which
//! are no PCI functions, follow the PCI ones, named by their devlink handle
//! (`netdevsim/netdevsimN`; see [`is_pci_id`] and the `netdevsim` submodule).
//!
//! Bad or missing input never aborts discovery of other devices. Per field:
//!
//! | input | result |
//! |---|---|
//! | `/sys/bus/pci/devices` cannot be listed | [`DiscoveryError`] (nothing to report) |
//! | `class` unreadable | function skipped, warning |
//! | `vendor` / `device` unreadable | taken from `modalias`; else empty, warning |
//! | `driver` link missing | no driver (unbound) |
//! | `numa_node` `-1` or missing | no NUMA node; unparseable: warning |
//! | `iommu_group` link missing | no IOMMU group |
//! | `net/` missing | no netdev fields (normal for vfio-pci, unbound, IB without IPoIB) |
//! | `mtu` / `type` / `address` unreadable | field absent, warning |
//! | `speed` `-1` or unreadable (`EINVAL` with the link down) | no speed |
//! | `phys_port_name` / `phys_switch_id` unreadable (`EOPNOTSUPP`) | field absent |
//! | `sriov_totalvfs` missing | 0: not SR-IOV capable |
//! | `sriov_totalvfs` / `sriov_numvfs` unparseable | warning; the count of `virtfn` links is used |
//! | `virtfnN` dangling or not a PCI address | warning; that VF is skipped, the others are listed |
//!
//! Switchdev: the PF netdev is the uplink (`phys_port_name` `pN`), never one of the representors
//! that mlx5 lists in the same `net/` directory. A VF's representor is the netdev on the PF's
//! switch (`phys_switch_id`) whose `phys_port_name` is `pf<N>vf<index>` (see
//! [`crate::switchdev`]); the PF's own `net/` is searched first, then `/sys/class/net`.
//!
//! The eswitch mode is inferred (devlink, when available, is authoritative: see
//! [`apply_eswitch_modes`]): `compat/devlink/mode` of the PF netdev when present (OFED), else
//! `switchdev` when the uplink has a switch id and representors exist, else `legacy` for an SR-IOV
//! PF whose driver has an eswitch (mlx5_core, ice), else none.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crds::{
    guid::Guid,
    inventory::{EswitchMode, LinkType, Nic, NicInventory, Vf},
};

use crate::pci::{PciAddress, PciIds};
use crate::switchdev::{
    PhysPortName, SwitchPort, find_vf_representor, representor_pf_number, scan_switch_ports,
};
use crate::sysfs::{SysDir, SysFs, SysfsError};

mod netdevsim;

pub use netdevsim::{NETDEVSIM_DEFAULT_MAX_VFS, devlink_instance, is_pci_id, netdevsim_device};

/// Below this many VFs (or `net/` entries) per thread, spreading reads over threads costs more
/// than it saves.
const VFS_PER_THREAD: usize = 64;
const ENTRIES_PER_THREAD: usize = 64;

/// Drivers whose PFs have an eswitch (legacy unless switched to switchdev through devlink).
const ESWITCH_DRIVERS: &[&str] = &["mlx5_core", "ice"];

/// Discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// `/sys/bus/pci/devices` could not be listed (wrong root, no sysfs mounted).
    #[error(transparent)]
    PciBus(#[from] SysfsError),
}

/// Something odd about one device; discovery went on without the affected field or VF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryWarning {
    /// The PCI address of the device (or the bus entry name).
    pub device: String,
    /// What was wrong and what discovery did about it.
    pub message: String,
}

impl fmt::Display for DiscoveryWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.device, self.message)
    }
}

/// The result of a discovery: the inventory and what was odd on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    /// The NICs found.
    pub inventory: NicInventory,
    /// Per-device problems, in discovery order.
    pub warnings: Vec<DiscoveryWarning>,
    /// PCI network functions seen (PFs, their VFs and standalone functions).
    pub network_functions: usize,
}

/// Discovers the NICs under `sysfs`; warnings are logged (`tracing::warn!`) and dropped.
pub fn discover(sysfs: &SysFs) -> Result<NicInventory, DiscoveryError> {
    let d = discover_with_warnings(sysfs)?;
    for w in &d.warnings {
        tracing::warn!("{w}");
    }
    Ok(d.inventory)
}

/// Discovers the NICs under `sysfs` and returns the per-device warnings for the caller to print.
pub fn discover_with_warnings(sysfs: &SysFs) -> Result<Discovery, DiscoveryError> {
    let bus_path = sysfs.pci_devices_dir();
    let names = sysfs.list_dir(&bus_path)?;
    let bus = sysfs.open_dir(&bus_path)?;
    let mut ctx = Ctx {
        sysfs,
        warnings: Vec::new(),
    };
    let mut addrs: Vec<PciAddress> = Vec::with_capacity(names.len());
    for name in names {
        match name.parse() {
            Ok(a) => addrs.push(a),
            Err(_) => ctx.warn(&name, "not a PCI address; skipped".into()),
        }
    }
    addrs.sort_unstable();

    let mut claimed: HashSet<PciAddress> = HashSet::new();
    let mut seen_network: HashSet<PciAddress> = HashSet::new();
    let mut unreadable: HashSet<PciAddress> = HashSet::new();
    let mut nics = Vec::new();
    let mut switches = Vec::new();
    let mut reps = Vec::new();
    for addr in addrs {
        if claimed.contains(&addr) {
            continue;
        }
        let opened = bus
            .open_dir(&addr.to_string())
            .and_then(|dev| Ok((dev.read_hex("class")?, dev)));
        let (class, dev) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                ctx.warn(&addr, format!("{e}; skipped"));
                unreadable.insert(addr);
                continue;
            }
        };
        if class >> 16 != 0x02 {
            continue;
        }
        seen_network.insert(addr);
        if let Ok(pf) = dev.read_link_parsed::<PciAddress>("physfn", "a PCI address") {
            if seen_network.contains(&pf) {
                ctx.warn(
                    &addr,
                    format!("VF of {pf} but not listed by any of its virtfn links; skipped"),
                );
                continue;
            }
            if unreadable.contains(&pf) {
                continue; // its PF was skipped with a warning already
            }
        }
        let (nic, switch) = ctx.read_nic(addr, &dev, class, &mut claimed, &mut reps);
        nics.push(nic);
        switches.push(switch);
    }
    finish_switchdev(sysfs, &mut nics, &switches, &reps);
    fill_names(sysfs, &mut nics);
    let network_functions = nics.len() + claimed.len();
    nics.extend(netdevsim::netdevsim_nics(&mut ctx));
    Ok(Discovery {
        inventory: NicInventory { nics },
        warnings: ctx.warnings,
        network_functions,
    })
}

/// Overrides the inferred eswitch modes with authoritative ones (from devlink), keyed by PF
/// address. PFs missing from `modes` keep the inferred value.
pub fn apply_eswitch_modes(inventory: &mut NicInventory, modes: &HashMap<PciAddress, EswitchMode>) {
    for nic in &mut inventory.nics {
        if let Ok(addr) = nic.pci_address.parse::<PciAddress>()
            && let Some(mode) = modes.get(&addr)
        {
            nic.eswitch_mode = Some(*mode);
        }
    }
}

/// Overrides the inferred eswitch modes with authoritative ones (from devlink), keyed by
/// inventory identity ([`Nic::pci_address`]: a PCI address or `netdevsim/netdevsimN`). NICs
/// missing from `modes` keep the inferred value.
pub fn apply_eswitch_modes_by_id(
    inventory: &mut NicInventory,
    modes: &HashMap<String, EswitchMode>,
) {
    for nic in &mut inventory.nics {
        if let Some(mode) = modes.get(&nic.pci_address) {
            nic.eswitch_mode = Some(*mode);
        }
    }
}

/// Fills vendor and device names from `pci.ids` (parsed once per process).
fn fill_names(sysfs: &SysFs, nics: &mut [Nic]) {
    if nics.is_empty() {
        return;
    }
    let Some((_, ids)) = PciIds::shared(sysfs) else {
        return;
    };
    for nic in nics {
        let (Ok(v), Ok(d)) = (
            u16::from_str_radix(&nic.vendor_id, 16),
            u16::from_str_radix(&nic.device_id, 16),
        ) else {
            continue;
        };
        nic.vendor_name = ids.vendor_name(v).map(str::to_owned);
        nic.device_name = ids.device_name(v, d).map(str::to_owned);
    }
}

/// A netdev under a PCI function's `net/`, with its `phys_port_name` when known, and its
/// `phys_switch_id` when it is a representor.
struct NetEntry {
    name: String,
    /// Its directory below the PCI function (`net/eth0`, `virtio0/net/eth0`).
    rel: String,
    port: Option<PhysPortName>,
    switch_id: Option<String>,
}

/// What [`finish_switchdev`] needs to know about a NIC besides the NIC itself.
struct SwitchFacts {
    /// Mode from `compat/devlink/mode`, when the driver exposes it.
    compat_mode: Option<EswitchMode>,
    /// The `N` in this PF's representor names `pfNvfM`.
    pf_number: u32,
    /// Representors on the PF's switch found in the PF's own `net/`.
    local_reps: usize,
}

/// The facts of one netdev that the inventory reports.
#[derive(Default)]
struct NetdevFacts {
    link_type: Option<LinkType>,
    mac: Option<String>,
    mtu: Option<u32>,
    oper_state: Option<String>,
    speed_mbps: Option<u32>,
}

struct Ctx<'a> {
    sysfs: &'a SysFs,
    warnings: Vec<DiscoveryWarning>,
}

impl Ctx<'_> {
    fn warn(&mut self, device: &dyn fmt::Display, message: String) {
        self.warnings.push(DiscoveryWarning {
            device: device.to_string(),
            message,
        });
    }

    fn read_nic(
        &mut self,
        addr: PciAddress,
        dev: &SysDir,
        class: u32,
        claimed: &mut HashSet<PciAddress>,
        reps: &mut Vec<SwitchPort>,
    ) -> (Nic, SwitchFacts) {
        let (vendor_id, device_id) = self.ids(&addr, dev);
        let mut nic = Nic {
            pci_address: addr.to_string(),
            vendor_id,
            device_id,
            driver: self.driver(&addr, dev),
            numa_node: self.numa_node(&addr, dev),
            iommu_group: self.iommu_group(&addr, dev),
            ..Nic::default()
        };

        // netdevs: the PF's own one, and representors mlx5 lists next to it
        let virtio = nic.driver.as_deref() == Some("virtio-pci");
        let entries = self.net_entries(&addr, dev, virtio);
        let own = pick_own_netdev(dev, &entries);
        let mut facts = NetdevFacts::default();
        let mut compat_mode = None;
        if let Some(i) = own {
            let e = &entries[i];
            match dev.open_dir(&e.rel) {
                Ok(nd) => {
                    facts = self.netdev_facts(&addr, &nd);
                    // not read yet for a single netdev; a form the parser does not know is
                    // still reported
                    nic.port_name = match e.port {
                        Some(p) => Some(p.to_string()),
                        None => self.optional(&addr, &nd, "phys_port_name"),
                    };
                    nic.switch_id = self.optional(&addr, &nd, "phys_switch_id");
                    compat_mode = self.compat_mode(&addr, &nd);
                }
                Err(e) => self.warn(&addr, format!("{e}; netdev fields left out")),
            }
            nic.name = Some(e.name.clone());
        }
        nic.link_type = facts
            .link_type
            .or_else(|| link_type_without_netdev(dev, class));
        nic.mac = facts.mac;
        nic.mtu = facts.mtu;
        nic.oper_state = facts.oper_state;
        nic.speed_mbps = facts.speed_mbps;

        // SR-IOV
        if let Some(total) = self.sriov_count(&addr, dev, "sriov_totalvfs") {
            let num = self.sriov_count(&addr, dev, "sriov_numvfs").flatten();
            let vfs = self.read_vfs(&addr, dev, claimed);
            nic.total_vfs = total.unwrap_or(vfs.len() as u32);
            nic.num_vfs = num.unwrap_or(vfs.len() as u32);
            nic.vfs = vfs;
        }
        read_ib_guids(dev, &mut nic);

        // switchdev: representors listed next to the uplink; they are matched to VFs once every
        // PF has been read (another function's net/ may hold them)
        let mut local_reps = 0;
        for (i, e) in entries.into_iter().enumerate() {
            if let (Some(port_name), Some(switch_id)) = (e.port, e.switch_id)
                && port_name.is_representor()
                && Some(i) != own
            {
                if nic.switch_id.as_ref() == Some(&switch_id) {
                    local_reps += 1;
                }
                reps.push(SwitchPort {
                    netdev: e.name,
                    switch_id,
                    port_name,
                });
            }
        }
        let pf_number = match nic.port_name.as_deref().map(str::parse::<PhysPortName>) {
            Some(Ok(PhysPortName::Uplink { port })) => port,
            _ => u32::from(addr.function),
        };
        let switch = SwitchFacts {
            compat_mode,
            pf_number,
            local_reps,
        };
        (nic, switch)
    }

    /// Vendor and device ids as four lowercase hex digits; `modalias` is the fallback.
    fn ids(&mut self, addr: &PciAddress, dev: &SysDir) -> (String, String) {
        let modalias = || {
            dev.read_string("modalias")
                .ok()
                .and_then(|m| parse_modalias(&m))
        };
        let mut id = |attr: &str, pick: fn((u32, u32)) -> u32| match dev.read_hex(attr) {
            Ok(v) => Some(v),
            Err(e) => {
                let v = modalias().map(pick);
                let note = if v.is_some() {
                    "taken from modalias"
                } else {
                    "left empty"
                };
                self.warn(addr, format!("{e}; {attr} id {note}"));
                v
            }
        };
        let vendor = id("vendor", |(v, _)| v);
        let device = id("device", |(_, d)| d);
        let hex = |v: Option<u32>| v.map(|v| format!("{v:04x}")).unwrap_or_default();
        (hex(vendor), hex(device))
    }

    fn driver(&mut self, addr: &PciAddress, dev: &SysDir) -> Option<String> {
        match dev.read_link_name("driver") {
            Ok(d) => Some(d),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                self.warn(addr, format!("{e}; driver left out"));
                None
            }
        }
    }

    fn numa_node(&mut self, addr: &PciAddress, dev: &SysDir) -> Option<i32> {
        match dev.read_number::<i32>("numa_node") {
            Ok(n) if n >= 0 => Some(n),
            Ok(_) => None,
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                self.warn(addr, format!("{e}; NUMA node left out"));
                None
            }
        }
    }

    fn iommu_group(&mut self, addr: &PciAddress, dev: &SysDir) -> Option<u32> {
        match dev.read_link_parsed::<u32>("iommu_group", "an IOMMU group number") {
            Ok(g) => Some(g),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                self.warn(addr, format!("{e}; IOMMU group left out"));
                None
            }
        }
    }

    /// An optional attribute; read errors other than "unavailable" become warnings.
    fn optional(&mut self, addr: &PciAddress, dir: &SysDir, rel: &str) -> Option<String> {
        match dir.read_optional_string(rel) {
            Ok(v) => v,
            Err(e) => {
                self.warn(addr, format!("{e}; left out"));
                None
            }
        }
    }

    fn compat_mode(&mut self, addr: &PciAddress, nd: &SysDir) -> Option<EswitchMode> {
        let rel = "compat/devlink/mode";
        match self.optional(addr, nd, rel)?.as_str() {
            "switchdev" => Some(EswitchMode::Switchdev),
            "legacy" => Some(EswitchMode::Legacy),
            other => {
                self.warn(
                    addr,
                    format!(
                        "{}: unknown eswitch mode {other:?}; mode inferred instead",
                        nd.join(rel).display()
                    ),
                );
                None
            }
        }
    }

    /// `sriov_totalvfs` / `sriov_numvfs`: `None` when the file is missing (not SR-IOV),
    /// `Some(None)` when it is unreadable or unparseable (warned; the caller counts links instead).
    fn sriov_count(&mut self, addr: &PciAddress, dev: &SysDir, rel: &str) -> Option<Option<u32>> {
        match dev.read_number::<u32>(rel) {
            Ok(n) => Some(Some(n)),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                self.warn(addr, format!("{e}; counting virtfn links instead"));
                Some(None)
            }
        }
    }

    /// The netdevs of a function: `net/*`, or for virtio-net (`virtio` = true) `virtioN/net/*`,
    /// since the netdev hangs off the virtio device below the PCI function.
    fn net_entries(&mut self, addr: &PciAddress, dev: &SysDir, virtio: bool) -> Vec<NetEntry> {
        let mut base = String::from("net");
        let mut listed = dev.list_dir(&base);
        if virtio && listed.as_ref().is_err_and(SysfsError::is_not_found) {
            let child = dev.list_dir(".").ok().and_then(|names| {
                names.into_iter().find(|n| {
                    n.strip_prefix("virtio")
                        .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
                })
            });
            if let Some(child) = child {
                base = format!("{child}/net");
                listed = dev.list_dir(&base);
            }
        }
        let names = match listed {
            Ok(n) => n,
            Err(e) if e.is_not_found() => return Vec::new(),
            Err(e) => {
                self.warn(addr, format!("{e}; netdev fields left out"));
                return Vec::new();
            }
        };
        // With a single netdev there is nothing to choose (and a VF has one): skip the reads.
        if names.len() == 1 {
            return names
                .into_iter()
                .map(|name| NetEntry {
                    rel: format!("{base}/{name}"),
                    name,
                    port: None,
                    switch_id: None,
                })
                .collect();
        }
        // In switchdev a PF lists one representor per VF here: read them on all cores.
        par_chunks(&names, ENTRIES_PER_THREAD, |part| {
            part.iter()
                .map(|name| {
                    let rel = format!("{base}/{name}");
                    let port: Option<PhysPortName> = dev
                        .read_optional_string(&format!("{rel}/phys_port_name"))
                        .ok()
                        .flatten()
                        .and_then(|p| p.parse().ok());
                    let switch_id = if port.is_some_and(|p| p.is_representor()) {
                        dev.read_optional_string(&format!("{rel}/phys_switch_id"))
                            .ok()
                            .flatten()
                    } else {
                        None
                    };
                    NetEntry {
                        name: name.clone(),
                        rel,
                        port,
                        switch_id,
                    }
                })
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect()
    }

    fn netdev_facts(&mut self, addr: &dyn fmt::Display, nd: &SysDir) -> NetdevFacts {
        let link_type = match nd.read_number::<u32>("type") {
            Ok(1) => Some(LinkType::Eth),
            Ok(32) => Some(LinkType::Ib),
            Ok(_) => None,
            Err(e) => {
                self.warn(addr, format!("{e}; link type from the PCI class instead"));
                None
            }
        };
        let (mac, mtu) = self.mac_mtu(addr, nd, "");
        let oper_state = nd.read_optional_string("operstate").ok().flatten();
        // -1 (unknown), a u32 -1 from some drivers, EINVAL with the link down: no speed.
        let speed_mbps = nd
            .read_number::<i64>("speed")
            .ok()
            .and_then(|s| u32::try_from(s).ok())
            .filter(|s| *s != u32::MAX && *s != 0);
        NetdevFacts {
            link_type,
            mac,
            mtu,
            oper_state,
            speed_mbps,
        }
    }

    /// `address` and `mtu` of the netdev directory `prefix` (ending in `/`) below `dir`.
    fn mac_mtu(
        &mut self,
        addr: &dyn fmt::Display,
        dir: &SysDir,
        prefix: &str,
    ) -> (Option<String>, Option<u32>) {
        let mac = match dir.read_string(&format!("{prefix}address")) {
            Ok(m) if !m.is_empty() => Some(m),
            Ok(_) => None,
            Err(e) => {
                self.warn(addr, format!("{e}; MAC left out"));
                None
            }
        };
        let mtu = match dir.read_number::<u32>(&format!("{prefix}mtu")) {
            Ok(m) => Some(m),
            Err(e) => {
                self.warn(addr, format!("{e}; MTU left out"));
                None
            }
        };
        (mac, mtu)
    }

    fn read_vfs(
        &mut self,
        pf: &PciAddress,
        dev: &SysDir,
        claimed: &mut HashSet<PciAddress>,
    ) -> Vec<Vf> {
        let names = match dev.list_dir(".") {
            Ok(n) => n,
            Err(e) => {
                self.warn(pf, format!("{e}; VFs left out"));
                return Vec::new();
            }
        };
        let mut links = Vec::new();
        for name in names {
            let Some(Ok(vf_id)) = name.strip_prefix("virtfn").map(str::parse::<u32>) else {
                continue;
            };
            match dev.read_link_parsed::<PciAddress>(&name, "a link to a PCI device") {
                Ok(addr) => {
                    claimed.insert(addr);
                    links.push((vf_id, addr, name));
                }
                Err(e) => self.warn(pf, format!("{e}; VF {vf_id} skipped")),
            }
        }
        links.sort_by_key(|(vf_id, _, _)| *vf_id);

        // Reading a VF is ~20 syscalls; with hundreds of VFs spread the work over the cores.
        let sysfs = self.sysfs;
        let results = par_chunks(&links, VFS_PER_THREAD, |part| {
            let mut sub = Ctx {
                sysfs,
                warnings: Vec::new(),
            };
            let vfs: Vec<Vf> = part
                .iter()
                .filter_map(|(id, addr, name)| sub.open_and_read_vf(pf, dev, *id, *addr, name))
                .collect();
            (vfs, sub.warnings)
        });
        let mut vfs = Vec::with_capacity(links.len());
        for (part, warnings) in results {
            vfs.extend(part);
            self.warnings.extend(warnings);
        }
        vfs
    }

    fn open_and_read_vf(
        &mut self,
        pf: &PciAddress,
        dev: &SysDir,
        vf_id: u32,
        addr: PciAddress,
        link: &str,
    ) -> Option<Vf> {
        match dev.open_dir(link) {
            Ok(vf_dir) => Some(self.read_vf(vf_id, addr, &vf_dir)),
            Err(e) => {
                let target = dev
                    .read_link(link)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                let why = if e.is_not_found() {
                    format!("is dangling (VF {vf_id} at {addr} is gone)")
                } else {
                    format!(
                        "cannot be opened: {}",
                        e.io_error().map(ToString::to_string).unwrap_or_default()
                    )
                };
                self.warn(
                    pf,
                    format!(
                        "{} -> {target} {why}; VF {vf_id} skipped",
                        dev.join(link).display()
                    ),
                );
                None
            }
        }
    }

    fn read_vf(&mut self, vf_id: u32, addr: PciAddress, dev: &SysDir) -> Vf {
        let device_id = match dev.read_hex("device") {
            Ok(d) => Some(format!("{d:04x}")),
            Err(e) => {
                self.warn(&addr, format!("{e}; VF device id left out"));
                None
            }
        };
        let mut vf = Vf {
            vf_id,
            pci_address: addr.to_string(),
            device_id,
            driver: self.driver(&addr, dev),
            numa_node: self.numa_node(&addr, dev),
            iommu_group: self.iommu_group(&addr, dev),
            ..Vf::default()
        };
        let entries = self.net_entries(&addr, dev, false);
        if let Some(i) = pick_own_netdev(dev, &entries) {
            let name = &entries[i].name;
            (vf.mac, vf.mtu) = self.mac_mtu(&addr, dev, &format!("{}/", entries[i].rel));
            vf.name = Some(name.clone());
        }
        vf
    }
}

/// InfiniBand GUIDs from sysfs: the PF's node GUID (`infiniband/<dev>/node_guid`) and, where
/// mlx5 exposes them (`sriov/<N>/node`, `sriov/<N>/port` on the PF), its VFs' GUIDs. A zero or
/// unreadable GUID is left out; the agent reads the VF GUIDs from netlink as well
/// (`IFLA_VF_IB_*_GUID`), which every IB driver reports.
fn read_ib_guids(dev: &SysDir, nic: &mut Nic) {
    let guid = |rel: &str| {
        dev.read_string(rel)
            .ok()
            .and_then(|s| s.parse::<Guid>().ok())
            .filter(|g| g.is_assignable())
    };
    if let Ok(mut ibdevs) = dev.list_dir("infiniband") {
        ibdevs.sort();
        nic.node_guid = ibdevs
            .first()
            .and_then(|d| guid(&format!("infiniband/{d}/node_guid")));
    }
    if nic.node_guid.is_none() {
        return;
    }
    for vf in &mut nic.vfs {
        vf.node_guid = guid(&format!("sriov/{}/node", vf.vf_id));
        vf.port_guid = guid(&format!("sriov/{}/port", vf.vf_id));
    }
}

/// Applies `f` to contiguous chunks of `items` on up to `available_parallelism` scoped threads
/// (one chunk on the calling thread when there are fewer than `2 * per_thread` items); results
/// keep the order of the chunks. Sysfs scans of many functions use it (discovery here, the device
/// plugin's health pass).
pub fn par_chunks<T, R, F>(items: &[T], per_thread: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&[T]) -> R + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len() / per_thread.max(1))
        .max(1);
    if threads == 1 {
        return vec![f(items)];
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || f(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                // a panic in a reader is a bug: re-raise it on the caller's thread
                Err(payload) => std::panic::resume_unwind(payload),
            })
            .collect()
    })
}

/// Maps VFs to representors and settles each PF's eswitch mode, once every PF has been read.
///
/// Representors are looked up among those found in any PF's `net/` (indexed by VF number: a PF
/// can have hundreds). Only when some remain unmatched and the host shows switchdev at all
/// (representors seen, or `compat/devlink/mode` = switchdev) is `/sys/class/net` scanned, once:
/// a legacy host never pays for it.
fn finish_switchdev(sysfs: &SysFs, nics: &mut [Nic], facts: &[SwitchFacts], reps: &[SwitchPort]) {
    let mut by_vf: HashMap<u32, Vec<&SwitchPort>> = HashMap::new();
    for p in reps {
        if let PhysPortName::VfRepresentor { vf, .. } = p.port_name {
            by_vf.entry(vf).or_default().push(p);
        }
    }
    let switchdev_seen = !reps.is_empty()
        || facts
            .iter()
            .any(|f| f.compat_mode == Some(EswitchMode::Switchdev));
    let mut scanned: Option<Vec<SwitchPort>> = None;
    for (nic, f) in nics.iter_mut().zip(facts) {
        if let Some(sw) = nic.switch_id.as_deref() {
            let mut missing = false;
            for vf in &mut nic.vfs {
                let candidates = by_vf.get(&vf.vf_id).map(Vec::as_slice).unwrap_or_default();
                vf.representor =
                    find_vf_representor(candidates.iter().copied(), sw, f.pf_number, vf.vf_id)
                        .map(|p| p.netdev.clone());
                missing |= vf.representor.is_none();
            }
            if missing && switchdev_seen && f.compat_mode != Some(EswitchMode::Legacy) {
                let all =
                    scanned.get_or_insert_with(|| scan_switch_ports(sysfs).unwrap_or_default());
                let pf = representor_pf_number(all.iter(), sw, f.pf_number);
                for vf in nic.vfs.iter_mut().filter(|v| v.representor.is_none()) {
                    vf.representor =
                        find_vf_representor(all.iter(), sw, pf, vf.vf_id).map(|p| p.netdev.clone());
                }
            }
        }
        let has_reps = f.local_reps > 0 || nic.vfs.iter().any(|v| v.representor.is_some());
        nic.eswitch_mode = f.compat_mode.or_else(|| {
            if nic.switch_id.is_some() && has_reps {
                Some(EswitchMode::Switchdev)
            } else if nic.total_vfs > 0
                && nic
                    .driver
                    .as_deref()
                    .is_some_and(|d| ESWITCH_DRIVERS.contains(&d))
            {
                Some(EswitchMode::Legacy)
            } else {
                None
            }
        });
    }
}

/// Chooses a function's own netdev among its `net/` entries: the uplink (`pN`) if there is one,
/// else the only non-representor, else the non-representor with the lowest `ifindex` (an IPoIB
/// parent before its child interfaces). Representors are never chosen: in switchdev, mlx5 lists
/// them in the PF's `net/` too, and taking the first entry picks one of them.
fn pick_own_netdev(dev: &SysDir, entries: &[NetEntry]) -> Option<usize> {
    if let Some(i) = entries
        .iter()
        .position(|e| matches!(e.port, Some(PhysPortName::Uplink { .. })))
    {
        return Some(i);
    }
    let plain: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.port.is_some_and(|p| p.is_representor()))
        .map(|(i, _)| i)
        .collect();
    match plain.as_slice() {
        [] => None,
        [one] => Some(*one),
        many => many.iter().copied().min_by_key(|&i| {
            dev.read_number::<u32>(&format!("{}/ifindex", entries[i].rel))
                .unwrap_or(u32::MAX)
        }),
    }
}

/// Link type of a function without a netdev: from the PCI subclass (`0x0207` InfiniBand,
/// `0x0200` Ethernet), else an `infiniband/` directory. The directory comes last because RoCE
/// Ethernet functions have one too.
fn link_type_without_netdev(dev: &SysDir, class: u32) -> Option<LinkType> {
    match (class >> 8) & 0xff {
        0x07 => Some(LinkType::Ib),
        0x00 => Some(LinkType::Eth),
        _ if dev.exists("infiniband") => Some(LinkType::Ib),
        _ => None,
    }
}

/// `pci:v000015B3d0000101Dsv...` -> (0x15b3, 0x101d).
fn parse_modalias(m: &str) -> Option<(u32, u32)> {
    let rest = m.strip_prefix("pci:v")?;
    let vendor = u32::from_str_radix(rest.get(..8)?, 16).ok()?;
    let rest = rest.get(8..)?.strip_prefix('d')?;
    let device = u32::from_str_radix(rest.get(..8)?, 16).ok()?;
    Some((vendor, device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modalias_ids() {
        assert_eq!(
            parse_modalias("pci:v000015B3d0000101Dsv000015B3sd00000008bc02sc00i00"),
            Some((0x15b3, 0x101d))
        );
        assert_eq!(parse_modalias("pci:v15B3"), None);
        assert_eq!(parse_modalias("usb:v1234"), None);
    }

    fn empty_dir() -> (tempfile::TempDir, SysDir) {
        let t = tempfile::tempdir().unwrap();
        let d = SysFs::new(t.path()).open_dir(t.path()).unwrap();
        (t, d)
    }

    #[test]
    fn own_netdev_is_never_a_representor() {
        let (_t, dir) = empty_dir();
        let e = |name: &str, port: Option<&str>| NetEntry {
            name: name.into(),
            rel: format!("net/{name}"),
            port: port.map(|p| p.parse().unwrap()),
            switch_id: None,
        };
        // representors sort before the uplink
        let entries = [
            e("eth0", Some("pf0vf0")),
            e("eth1", Some("pf0vf1")),
            e("ens1f0np0", Some("p0")),
        ];
        assert_eq!(pick_own_netdev(&dir, &entries), Some(2));
        let entries = [e("eth0", Some("pf0vf0")), e("ens1f0", None)];
        assert_eq!(pick_own_netdev(&dir, &entries), Some(1));
        let entries = [e("eth0", Some("pf0vf0"))];
        assert_eq!(pick_own_netdev(&dir, &entries), None);
        let entries = [e("enp1s0", None)];
        assert_eq!(pick_own_netdev(&dir, &entries), Some(0));
        assert_eq!(pick_own_netdev(&dir, &[]), None);
    }

    #[test]
    fn link_type_from_class() {
        let (_t, dir) = empty_dir();
        assert_eq!(link_type_without_netdev(&dir, 0x020700), Some(LinkType::Ib));
        assert_eq!(
            link_type_without_netdev(&dir, 0x020000),
            Some(LinkType::Eth)
        );
        assert_eq!(link_type_without_netdev(&dir, 0x028000), None);
    }
}
