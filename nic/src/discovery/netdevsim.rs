//! netdevsim devices (`/sys/bus/netdevsim/devices/netdevsimN`), the kernel's simulated NIC with
//! a real devlink eswitch.
//!
//! A netdevsim device is no PCI function: its identity in the inventory ([`Nic::pci_address`])
//! is its devlink handle `netdevsim/netdevsimN`, which never parses as a PCI address, so every
//! consumer that needs a PCI function (the device plugin, the CNI, the VF driver steps) can tell
//! it apart with [`is_pci_id`]. Its VFs exist only as `sriov_numvfs` and, in switchdev mode, as
//! devlink ports with representor netdevs: they have no PCI function, driver or netdev of their
//! own, so each [`Vf`] carries its index and representor and an empty `pci_address`.
//!
//! | field | source |
//! |---|---|
//! | `name`, MAC, MTU, `port_name`, `switch_id` | the port netdev in `net/` whose `phys_port_name` is an uplink (`pN`; the lowest when the device has several ports) |
//! | `total_vfs` | debugfs `netdevsim/netdevsimN/max_vfs`; unreadable (debugfs not mounted, not root): the module's default, [`NETDEVSIM_DEFAULT_MAX_VFS`] |
//! | `num_vfs` | `sriov_numvfs` of the bus device |
//! | representors | the `pf<P>vf<N>` netdevs in `net/` (devlink's port dump overrides them where the caller asks devlink) |
//! | `eswitch_mode` | `switchdev` when representors exist, else `legacy` (devlink, when asked, is authoritative: with 0 VFs the names cannot tell) |

use std::collections::BTreeMap;

use crds::inventory::{EswitchMode, LinkType, Nic, Vf};

use super::Ctx;
use crate::devlink::DevlinkDev;
use crate::pci::PciAddress;
use crate::switchdev::PhysPortName;

/// The VFs a netdevsim device allows when its debugfs `max_vfs` cannot be read: the module sets
/// `max_vfs` to `NSIM_BUS_DEV_MAX_VFS` (4) at `new_device`, and a larger `sriov_numvfs` write
/// fails with `ENOMEM` (drivers/net/netdevsim/bus.c, 6.12).
pub const NETDEVSIM_DEFAULT_MAX_VFS: u32 = 4;

/// Whether an inventory identity ([`Nic::pci_address`]) is a PCI address; `false` for a
/// netdevsim device's `netdevsim/netdevsimN`.
pub fn is_pci_id(id: &str) -> bool {
    id.parse::<PciAddress>().is_ok()
}

/// The bus device name (`netdevsim3`) of a netdevsim identity `netdevsim/netdevsim3`; `None`
/// for anything else.
pub fn netdevsim_device(id: &str) -> Option<&str> {
    id.strip_prefix("netdevsim/")
        .filter(|d| d.starts_with("netdevsim") && !d.contains('/') && d.len() > "netdevsim".len())
}

/// The devlink instance of an inventory identity: `netdevsim/netdevsimN` for a netdevsim
/// device, `pci/<addr>` otherwise.
pub fn devlink_instance(id: &str) -> DevlinkDev {
    match netdevsim_device(id) {
        Some(dev) => DevlinkDev::new("netdevsim", dev),
        None => DevlinkDev::pci(id),
    }
}

/// Every netdevsim device under the root, by device number. No bus directory (the module is not
/// loaded, the usual case): none.
pub(super) fn netdevsim_nics(ctx: &mut Ctx<'_>) -> Vec<Nic> {
    let sysfs = ctx.sysfs;
    let bus = sysfs.path("sys/bus/netdevsim/devices");
    let Ok(names) = sysfs.list_dir(&bus) else {
        return Vec::new();
    };
    let mut devs: Vec<(u32, String)> = names
        .into_iter()
        .filter_map(|n| Some((n.strip_prefix("netdevsim")?.parse().ok()?, n)))
        .collect();
    devs.sort_unstable();
    devs.into_iter()
        .filter_map(|(_, name)| read_device(ctx, &name))
        .collect()
}

fn read_device(ctx: &mut Ctx<'_>, dev_name: &str) -> Option<Nic> {
    let sysfs = ctx.sysfs;
    let id = format!("netdevsim/{dev_name}");
    let dev = match sysfs.open_dir(&sysfs.path("sys/bus/netdevsim/devices").join(dev_name)) {
        Ok(d) => d,
        Err(e) => {
            ctx.warn(&id, format!("{e}; skipped"));
            return None;
        }
    };
    let mut uplinks: Vec<(u32, String)> = Vec::new();
    let mut reps: BTreeMap<u32, String> = BTreeMap::new();
    for netdev in dev.list_dir("net").unwrap_or_default() {
        let port = dev
            .read_optional_string(&format!("net/{netdev}/phys_port_name"))
            .ok()
            .flatten()
            .and_then(|p| p.parse::<PhysPortName>().ok());
        match port {
            Some(PhysPortName::Uplink { port }) => uplinks.push((port, netdev)),
            Some(PhysPortName::VfRepresentor { vf, .. }) => {
                reps.insert(vf, netdev);
            }
            _ => {}
        }
    }
    uplinks.sort_unstable();
    let mut nic = Nic {
        pci_address: id.clone(),
        driver: Some(
            dev.read_link_name("driver")
                .unwrap_or_else(|_| "netdevsim".to_owned()),
        ),
        link_type: Some(LinkType::Eth),
        ..Nic::default()
    };
    if let Some((_, uplink)) = uplinks.first() {
        match dev.open_dir(&format!("net/{uplink}")) {
            Ok(nd) => {
                let f = ctx.netdev_facts(&id, &nd);
                nic.mac = f.mac;
                nic.mtu = f.mtu;
                nic.oper_state = f.oper_state;
                nic.speed_mbps = f.speed_mbps;
                nic.port_name = nd.read_optional_string("phys_port_name").ok().flatten();
                nic.switch_id = nd.read_optional_string("phys_switch_id").ok().flatten();
            }
            Err(e) => ctx.warn(&id, format!("{e}; netdev fields left out")),
        }
        nic.name = Some(uplink.clone());
    }
    let debugfs = sysfs.path("sys/kernel/debug/netdevsim").join(dev_name);
    nic.total_vfs = sysfs
        .read_number::<u32>(&debugfs.join("max_vfs"))
        .unwrap_or(NETDEVSIM_DEFAULT_MAX_VFS);
    nic.num_vfs = match dev.read_number::<u32>("sriov_numvfs") {
        Ok(n) => n,
        Err(e) => {
            ctx.warn(&id, format!("{e}; numVfs taken as 0"));
            0
        }
    };
    nic.vfs = (0..nic.num_vfs)
        .map(|vf| Vf {
            vf_id: vf,
            representor: reps.get(&vf).cloned(),
            ..Vf::default()
        })
        .collect();
    nic.eswitch_mode = Some(if reps.is_empty() {
        EswitchMode::Legacy
    } else {
        EswitchMode::Switchdev
    });
    Some(nic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::discover_with_warnings;
    use crate::sysfs::SysFs;

    fn write(root: &std::path::Path, rel: &str, v: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, v).unwrap();
    }

    /// A netdevsim device with port `eth2` (`p1`) and `vfs` VFs, with representors when
    /// `switchdev`.
    fn nsim(root: &std::path::Path, vfs: u32, switchdev: bool) {
        std::fs::create_dir_all(root.join("sys/bus/pci/devices")).unwrap();
        let d = "sys/bus/netdevsim/devices/netdevsim3";
        write(root, &format!("{d}/sriov_numvfs"), &format!("{vfs}\n"));
        let port = |name: &str, pn: &str| {
            write(root, &format!("{d}/net/{name}/phys_port_name"), pn);
            write(root, &format!("{d}/net/{name}/phys_switch_id"), "aabbcc");
            write(
                root,
                &format!("{d}/net/{name}/address"),
                "02:11:22:33:44:55",
            );
            write(root, &format!("{d}/net/{name}/mtu"), "1500");
            write(root, &format!("{d}/net/{name}/type"), "1");
        };
        port("eth2", "p1");
        if switchdev {
            for vf in 0..vfs {
                port(&format!("eth{}", 3 + vf), &format!("pf0vf{vf}"));
            }
        }
    }

    #[test]
    fn lists_a_netdevsim_device_by_its_devlink_handle() {
        let dir = tempfile::tempdir().unwrap();
        nsim(dir.path(), 2, true);
        let d = discover_with_warnings(&SysFs::new(dir.path())).unwrap();
        let [nic] = d.inventory.nics.as_slice() else {
            panic!("{:?}", d.inventory);
        };
        assert_eq!(nic.pci_address, "netdevsim/netdevsim3");
        assert!(!is_pci_id(&nic.pci_address));
        assert_eq!(netdevsim_device(&nic.pci_address), Some("netdevsim3"));
        assert_eq!(nic.name.as_deref(), Some("eth2"));
        assert_eq!(nic.port_name.as_deref(), Some("p1"));
        assert_eq!(nic.driver.as_deref(), Some("netdevsim"));
        assert_eq!(nic.mac.as_deref(), Some("02:11:22:33:44:55"));
        assert_eq!((nic.total_vfs, nic.num_vfs), (NETDEVSIM_DEFAULT_MAX_VFS, 2));
        assert_eq!(nic.eswitch_mode, Some(EswitchMode::Switchdev));
        let reps: Vec<_> = nic.vfs.iter().map(|v| v.representor.as_deref()).collect();
        assert_eq!(reps, [Some("eth3"), Some("eth4")]);
        assert!(nic.vfs.iter().all(|v| v.pci_address.is_empty()));
    }

    #[test]
    fn legacy_without_representors_and_max_vfs_from_debugfs() {
        let dir = tempfile::tempdir().unwrap();
        nsim(dir.path(), 0, false);
        write(
            dir.path(),
            "sys/kernel/debug/netdevsim/netdevsim3/max_vfs",
            "16\n",
        );
        let inv = discover_with_warnings(&SysFs::new(dir.path()))
            .unwrap()
            .inventory;
        let nic = &inv.nics[0];
        assert_eq!((nic.total_vfs, nic.num_vfs), (16, 0));
        assert_eq!(nic.eswitch_mode, Some(EswitchMode::Legacy));
        assert!(nic.vfs.is_empty());
    }

    #[test]
    fn identities() {
        assert!(is_pci_id("0000:3b:00.0"));
        assert!(!is_pci_id("netdevsim/netdevsim3"));
        assert_eq!(
            netdevsim_device("netdevsim/netdevsim10"),
            Some("netdevsim10")
        );
        assert_eq!(netdevsim_device("netdevsim/netdevsim"), None);
        assert_eq!(netdevsim_device("pci/0000:3b:00.0"), None);
        assert_eq!(netdevsim_device("netdevsim/netdevsim3/128"), None);
        assert_eq!(
            devlink_instance("netdevsim/netdevsim3").to_string(),
            "netdevsim/netdevsim3"
        );
        assert_eq!(
            devlink_instance("0000:3b:00.0").to_string(),
            "pci/0000:3b:00.0"
        );
    }
}
