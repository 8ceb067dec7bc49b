//! What the plugin needs to know of the host, read from sysfs in one pass: every PCI network
//! function (class `0x02xxxx`) with the facts pools, health and Allocate use, and the link state
//! of every PF that has VFs.
//!
//! This is deliberately leaner than `nic::discovery` (no names, MACs, representors): it runs every
//! few hundred milliseconds while polling. Per function it reads `modalias` (vendor, device and
//! class in one read; `class`, `vendor` and `device` when it is unreadable), `numa_node` and the
//! `driver`, `iommu_group` and `physfn` links; a PF also lists its `virtfnN`
//! links and reads its netdev's `operstate` and `flags`; RDMA names are read only where an
//! `infiniband/` directory exists.
//!
//! `carrier` is deliberately not read: its sysfs handler takes the RTNL lock with a trylock and
//! restarts the read until it gets it, so a poll would spin for as long as any link change holds
//! the lock (seconds for `ip link set down` on igb under emulation). `operstate` carries the
//! carrier state (no carrier: `down` or `lowerlayerdown`) and is read without the lock.
//!
//! ```text
//!   <bdf>/class vendor device numa_node driver-> iommu_group-> physfn->
//!   <pf>/sriov_numvfs virtfnN-> net/<pf>/{operstate,flags}
//!   <bdf>/infiniband/<dev>  infiniband_verbs/uverbsN  infiniband_mad/{umadN,issmN}
//!   /sys/kernel/iommu_groups/<g>/name   ("vfio-noiommu": the node is /dev/vfio/noiommu-<g>)
//! ```

use std::collections::BTreeMap;

use crds::device_plugin::DeviceLinkType;
use nic::pci::PciAddress;
use nic::sysfs::{SysDir, SysFs, SysfsError};

/// Below this many functions per thread, spreading the reads over threads costs more than it
/// saves.
const FUNCTIONS_PER_THREAD: usize = 128;

/// `IFF_UP` in a netdev's `flags` (include/uapi/linux/if.h).
const IFF_UP: u32 = 0x1;

/// The host could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// `/sys/bus/pci/devices` could not be listed (wrong `--root`, no sysfs).
    #[error(transparent)]
    PciBus(#[from] SysfsError),
}

/// One PCI network function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// PCI address.
    pub addr: PciAddress,
    /// PCI vendor id (0 when unreadable).
    pub vendor: u16,
    /// PCI device id (0 when unreadable).
    pub device: u16,
    /// Bound driver.
    pub driver: Option<String>,
    /// NUMA node (`None` for `-1` or missing).
    pub numa_node: Option<i32>,
    /// IOMMU group.
    pub iommu_group: Option<u32>,
    /// The IOMMU group is a `vfio-noiommu` one (its node is `/dev/vfio/noiommu-<g>`).
    pub noiommu: bool,
    /// For a VF: its PF (when visible) and VF index.
    pub vf_of: Option<(PciAddress, u32)>,
    /// The function is a PF with VFs enabled (never a device itself).
    pub has_vfs: bool,
    /// For a PF with VFs: its own netdev's link state.
    pub link: Option<LinkState>,
    /// Link layer: InfiniBand when the function's netdev has `type` 32 (ARPHRD_INFINIBAND) or,
    /// without a netdev (vfio-pci), its PCI class is `0x0207`; Ethernet otherwise.
    pub link_type: DeviceLinkType,
    /// RDMA devices of the function (`mlx5_2`) and their character devices.
    pub rdma: Rdma,
}

/// Link state of a PF's netdev.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    /// The netdev (`ens1f0np0`); `None` when the PF has none (its driver is unbound).
    pub netdev: Option<String>,
    /// `operstate` (`up`, `down`, `lowerlayerdown`, `unknown`, ...).
    pub operstate: Option<String>,
    /// `IFF_UP` of `flags`: the administrative state, set when `ip link set down` completes,
    /// while `operstate` follows through the kernel's link watch, up to a second later.
    pub admin_up: Option<bool>,
}

/// RDMA facts of a function, empty when it has none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rdma {
    /// Names under `infiniband/` (`mlx5_2`).
    pub devices: Vec<String>,
    /// Names under `infiniband_verbs/` (`uverbs2`).
    pub verbs: Vec<String>,
    /// Names under `infiniband_mad/` (`umad2`, `issm2`).
    pub mad: Vec<String>,
}

/// Every PCI network function of the host, by address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostState {
    /// The functions.
    pub functions: BTreeMap<PciAddress, Function>,
}

impl HostState {
    /// The function at `addr`.
    pub fn get(&self, addr: &PciAddress) -> Option<&Function> {
        self.functions.get(addr)
    }
}

/// Reads the host. Unreadable functions are left out (they cannot be handed to a pod anyway).
pub fn scan(sysfs: &SysFs) -> Result<HostState, ScanError> {
    let bus_path = sysfs.pci_devices_dir();
    let bus = sysfs.open_dir(&bus_path)?;
    let names = bus.list_dir(".")?;
    let addrs: Vec<PciAddress> = names.iter().filter_map(|n| n.parse().ok()).collect();
    let groups_dir = sysfs.path("sys/kernel/iommu_groups");
    let read = |part: &[PciAddress]| -> Vec<Function> {
        part.iter()
            .filter_map(|a| read_function(&bus, *a, sysfs, &groups_dir))
            .collect()
    };
    let parts = nic::discovery::par_chunks(&addrs, FUNCTIONS_PER_THREAD, read);
    let mut functions: BTreeMap<PciAddress, Function> =
        parts.into_iter().flatten().map(|f| (f.addr, f)).collect();
    // VF indices come from the PF's virtfnN links: the VF itself does not know its index.
    let mut indices = Vec::new();
    for f in functions.values().filter(|f| f.has_vfs) {
        if let Ok(dev) = bus.open_dir(&f.addr.to_string()) {
            for name in dev.list_dir(".").unwrap_or_default() {
                let Some(Ok(index)) = name.strip_prefix("virtfn").map(str::parse::<u32>) else {
                    continue;
                };
                if let Ok(vf) = dev.read_link_parsed::<PciAddress>(&name, "a PCI address") {
                    indices.push((vf, f.addr, index));
                }
            }
        }
    }
    for (vf, pf, index) in indices {
        if let Some(f) = functions.get_mut(&vf) {
            f.vf_of = Some((pf, index));
        }
    }
    Ok(HostState { functions })
}

fn read_function(
    bus: &SysDir,
    addr: PciAddress,
    sysfs: &SysFs,
    groups_dir: &std::path::Path,
) -> Option<Function> {
    let dev = bus.open_dir(&addr.to_string()).ok()?;
    // One read of `modalias` gives vendor, device and class (three reads otherwise).
    let (vendor, device, class, subclass) = match dev
        .read_string("modalias")
        .ok()
        .and_then(|m| parse_modalias(&m))
    {
        Some(ids) => ids,
        None => {
            let id = |attr: &str| {
                dev.read_hex(attr)
                    .ok()
                    .and_then(|v| u16::try_from(v).ok())
                    .unwrap_or(0)
            };
            let class = dev.read_hex("class").ok()?;
            (
                id("vendor"),
                id("device"),
                (class >> 16) as u8,
                (class >> 8) as u8,
            )
        }
    };
    if class != 0x02 {
        return None;
    }
    let driver = dev.read_link_name("driver").ok();
    let iommu_group = dev
        .read_link_parsed::<u32>("iommu_group", "an IOMMU group number")
        .ok();
    // Only a vfio-pci device's node name depends on it.
    let noiommu = driver.as_deref() == Some("vfio-pci")
        && iommu_group.is_some_and(|g| {
            sysfs
                .read_optional_string(&groups_dir.join(g.to_string()).join("name"))
                .ok()
                .flatten()
                .is_some_and(|n| n == "vfio-noiommu")
        });
    let is_vf = dev.is_link("physfn");
    let has_vfs = !is_vf && dev.read_number::<u32>("sriov_numvfs").is_ok_and(|n| n > 0);
    let mut f = Function {
        addr,
        vendor,
        device,
        driver,
        numa_node: dev.read_number::<i32>("numa_node").ok().filter(|n| *n >= 0),
        iommu_group,
        noiommu,
        vf_of: None,
        has_vfs,
        link: None,
        link_type: link_type(&dev, subclass),
        rdma: Rdma::default(),
    };
    if has_vfs {
        f.link = Some(read_link(&dev));
    }
    if let Ok(devices) = dev.list_dir("infiniband") {
        f.rdma = Rdma {
            devices,
            verbs: dev.list_dir("infiniband_verbs").unwrap_or_default(),
            mad: dev.list_dir("infiniband_mad").unwrap_or_default(),
        };
    }
    Some(f)
}

/// `pci:v000015B3d0000101Esv...bc02sc00i00` -> (vendor, device, base class, subclass).
fn parse_modalias(m: &str) -> Option<(u16, u16, u8, u8)> {
    let rest = m.strip_prefix("pci:v")?;
    let vendor = u32::from_str_radix(rest.get(..8)?, 16).ok()?;
    let rest = rest.get(8..)?.strip_prefix('d')?;
    let device = u32::from_str_radix(rest.get(..8)?, 16).ok()?;
    let bc = rest.find("bc")?;
    let class = u8::from_str_radix(rest.get(bc + 2..bc + 4)?, 16).ok()?;
    let subclass = rest
        .get(bc + 4..)
        .and_then(|r| r.strip_prefix("sc"))
        .and_then(|r| r.get(..2))
        .and_then(|h| u8::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    Some((
        u16::try_from(vendor).ok()?,
        u16::try_from(device).ok()?,
        class,
        subclass,
    ))
}

/// The link layer of a function: its netdev's `type` (32 is ARPHRD_INFINIBAND), else its PCI
/// subclass (`0x07` InfiniBand controller).
fn link_type(dev: &SysDir, subclass: u8) -> DeviceLinkType {
    let netdev_type = dev
        .list_dir("net")
        .ok()
        .and_then(|n| n.into_iter().next())
        .and_then(|n| dev.read_number::<u32>(&format!("net/{n}/type")).ok());
    match netdev_type {
        Some(32) => DeviceLinkType::Infiniband,
        Some(_) => DeviceLinkType::Ether,
        None if subclass == 0x07 => DeviceLinkType::Infiniband,
        None => DeviceLinkType::Ether,
    }
}

/// The PF's own netdev and its state. In switchdev mlx5 lists representors (`pfNvfM`) next to the
/// uplink (`pN`) in `net/`: the uplink, else the netdev without a representor port name, is the
/// PF's own.
fn read_link(dev: &SysDir) -> LinkState {
    let names = dev.list_dir("net").unwrap_or_default();
    let port = |n: &str| {
        dev.read_optional_string(&format!("net/{n}/phys_port_name"))
            .ok()
            .flatten()
    };
    let netdev = if names.len() <= 1 {
        names.into_iter().next()
    } else {
        let ports: Vec<(String, Option<String>)> = names
            .into_iter()
            .map(|n| {
                let p = port(&n);
                (n, p)
            })
            .collect();
        let uplink = ports.iter().find(|(_, p)| {
            p.as_deref().is_some_and(|p| {
                p.strip_prefix('p')
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
        });
        let plain = ports
            .iter()
            .find(|(_, p)| !p.as_deref().is_some_and(|p| p.starts_with("pf")));
        uplink.or(plain).map(|(n, _)| n.clone())
    };
    let Some(netdev) = netdev else {
        return LinkState::default();
    };
    let operstate = dev
        .read_optional_string(&format!("net/{netdev}/operstate"))
        .ok()
        .flatten();
    let admin_up = dev
        .read_hex(&format!("net/{netdev}/flags"))
        .ok()
        .map(|f| f & IFF_UP != 0);
    LinkState {
        netdev: Some(netdev),
        operstate,
        admin_up,
    }
}

#[cfg(test)]
mod tests {
    use crds::inventory::EswitchMode;
    use nic::fixtures::HostBuilder;

    use super::*;

    fn a(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    #[test]
    fn reads_pfs_vfs_and_links() {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Switchdev)
            .e810()
            .build()
            .unwrap();
        let s = scan(&host.sysfs()).unwrap();
        let pf = s.get(&a("0000:3b:00.0")).unwrap();
        assert!(pf.has_vfs);
        assert_eq!(pf.vendor, 0x15b3);
        let link = pf.link.as_ref().unwrap();
        // the uplink, not one of the representors listed next to it
        assert_eq!(link.netdev.as_deref(), Some("ens1f0np0"));
        assert_eq!(link.operstate.as_deref(), Some("up"));
        let vf = s.get(&a("0000:3b:00.3")).unwrap();
        assert_eq!(vf.vf_of, Some((a("0000:3b:00.0"), 1)));
        assert_eq!(vf.device, 0x101e);
        assert_eq!(vf.driver.as_deref(), Some("mlx5_core"));
        assert_eq!(vf.numa_node, Some(0));
        assert_eq!(vf.iommu_group, Some(42));
        assert!(!vf.has_vfs && vf.link.is_none());
        let e810_vf1 = s.get(&a("0000:17:02.1")).unwrap();
        assert_eq!(e810_vf1.driver.as_deref(), Some("vfio-pci"));
        assert_eq!(e810_vf1.numa_node, Some(1));
        // 2 CX6 PFs + 6 VFs, E810 PF + 4 VFs
        assert_eq!(s.functions.len(), 13);
    }

    /// ConnectX IB VFs are InfiniBand by their netdev's type 32, and by their PCI class 0x0207
    /// once bound to vfio-pci (no netdev); Ethernet functions are Ethernet.
    #[test]
    fn link_types_from_the_netdev_type_or_the_pci_class() {
        let host = HostBuilder::new()
            .connectx6_ib()
            .edit_pf("0000:af:00.0", |pf| pf.set_num_vfs(2))
            .igb_82576()
            .build()
            .unwrap();
        let s = scan(&host.sysfs()).unwrap();
        let vf0 = s.get(&a("0000:af:00.1")).unwrap();
        assert_eq!(vf0.link_type, DeviceLinkType::Infiniband);
        assert_eq!(
            s.get(&a("0000:01:10.0")).unwrap().link_type,
            DeviceLinkType::Ether
        );
        host.remove_net_dir("0000:af:00.2").unwrap();
        let s = scan(&host.sysfs()).unwrap();
        assert_eq!(
            s.get(&a("0000:af:00.2")).unwrap().link_type,
            DeviceLinkType::Infiniband
        );
    }

    #[test]
    fn modalias_ids() {
        assert_eq!(
            parse_modalias("pci:v000015B3d0000101Esv000015B3sd00000008bc02sc00i00"),
            Some((0x15b3, 0x101e, 0x02, 0x00))
        );
        assert_eq!(
            parse_modalias("pci:v000015B3d0000101Csv000015B3sd00000006bc02sc07i00"),
            Some((0x15b3, 0x101c, 0x02, 0x07))
        );
        assert_eq!(parse_modalias("pci:v15B3"), None);
        // without modalias the ids come from their own files
        let host = HostBuilder::new().igb_82576().build().unwrap();
        host.remove_attr("0000:01:10.0", "modalias").unwrap();
        let s = scan(&host.sysfs()).unwrap();
        let vf = s.get(&a("0000:01:10.0")).unwrap();
        assert_eq!((vf.vendor, vf.device), (0x8086, 0x10ca));
    }

    #[test]
    fn link_state_and_rdma() {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        let pf = host.device_dir("0000:3b:00.0");
        std::fs::write(pf.join("net/ens1f0np0/operstate"), "down\n").unwrap();
        std::fs::write(pf.join("net/ens1f0np0/flags"), "0x1002\n").unwrap();
        let s = scan(&host.sysfs()).unwrap();
        let link = s.get(&a("0000:3b:00.0")).unwrap().link.clone().unwrap();
        assert_eq!(link.admin_up, Some(false));
        assert_eq!(link.operstate.as_deref(), Some("down"));
        assert_eq!(s.get(&a("0000:3b:00.0")).unwrap().rdma.devices, ["mlx5_0"]);
    }
}
