//! The VF an ADD takes must be one of this node's pools: the device plugin hands out only the
//! devices of the pools in the node's device-plugin file, so a `deviceID` outside them did not
//! come from an allocation (a tenant's own NetworkAttachmentDefinition can name any PCI
//! address). When the network names its resource, the VF must be in that pool.
//!
//! The same selectors as the device plugin (every non-empty field of a selector matches, any
//! selector of a pool), over what sysfs says of the device.

use std::{fs, io, path::Path};

use crds::device_plugin::{DevicePluginConfig, DeviceSelector};
use nic::pci::PciAddress;

use crate::error::{CniError, code};

/// What the selectors look at, read from sysfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The device's address.
    pub addr: PciAddress,
    /// Its PF's address and its VF index, for a VF.
    pub vf_of: Option<(PciAddress, u32)>,
    /// PCI vendor id, 4 lowercase hex digits.
    pub vendor: String,
    /// PCI device id, 4 lowercase hex digits.
    pub device: String,
    /// The bound driver's name, when one is bound.
    pub driver: Option<String>,
}

fn hex_id(path: &Path) -> io::Result<String> {
    let s = fs::read_to_string(path)?;
    Ok(s.trim().trim_start_matches("0x").to_ascii_lowercase())
}

/// Reads `addr` under `sys` (`/sys` on a node).
pub fn identify(sys: &Path, addr: PciAddress) -> io::Result<Device> {
    let dev = sys.join("bus/pci/devices").join(addr.to_string());
    let vendor = hex_id(&dev.join("vendor"))?;
    let device = hex_id(&dev.join("device"))?;
    let vf_of = match fs::read_link(dev.join("physfn")) {
        Ok(pf) => {
            let pf_addr: Option<PciAddress> = pf
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok());
            let pf_dir = dev.join("physfn");
            let index = fs::read_dir(&pf_dir)?.flatten().find_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let i: u32 = name.strip_prefix("virtfn")?.parse().ok()?;
                let target = fs::read_link(e.path()).ok()?;
                (target.file_name()?.to_str()? == addr.to_string()).then_some(i)
            });
            pf_addr.zip(index)
        }
        Err(_) => None,
    };
    let driver = fs::read_link(dev.join("driver"))
        .ok()
        .and_then(|l| l.file_name().and_then(|n| n.to_str()).map(str::to_owned));
    Ok(Device {
        addr,
        vf_of,
        vendor,
        device,
        driver,
    })
}

/// Whether `d` matches `sel` (every non-empty field).
pub fn matches(sel: &DeviceSelector, d: &Device) -> bool {
    let pfs = sel.pfs.is_empty()
        || d.vf_of.is_some_and(|(pf, index)| {
            sel.pfs.iter().any(|p| {
                p.pci_address.parse::<PciAddress>().ok() == Some(pf)
                    && (p.vfs.is_empty()
                        || p.vfs.iter().any(|r| (r.first..=r.last).contains(&index)))
            })
        });
    let addr = d.addr.to_string();
    pfs && (sel.pci_addresses.is_empty()
        || sel
            .pci_addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&addr)))
        && (sel.vendors.is_empty()
            || sel
                .vendors
                .iter()
                .any(|v| v.eq_ignore_ascii_case(&d.vendor)))
        && (sel.devices.is_empty()
            || sel
                .devices
                .iter()
                .any(|v| v.eq_ignore_ascii_case(&d.device)))
        && (sel.drivers.is_empty()
            || d.driver
                .as_deref()
                .is_some_and(|x| sel.drivers.iter().any(|s| s == x)))
}

/// Refuses `d` unless a pool of `config` holds it (the pool `<prefix>/<name>` = `resource`
/// when the network names one).
pub fn check(
    config: &DevicePluginConfig,
    d: &Device,
    resource: Option<&str>,
) -> Result<(), CniError> {
    let holds = config.resource_list.iter().any(|p| {
        resource.is_none_or(|r| format!("{}/{}", p.resource_prefix, p.resource_name) == r)
            && p.selectors.iter().any(|s| matches(s, d))
    });
    if holds {
        return Ok(());
    }
    Err(CniError::new(
        code::INVALID_CONFIG,
        match resource {
            Some(r) => format!(
                "key deviceID: {} is not a device of pool {r} on this node; only a device the device plugin allocated can be attached",
                d.addr
            ),
            None => format!(
                "key deviceID: {} is in none of this node's pools; only a device the device plugin allocated can be attached",
                d.addr
            ),
        },
    ))
}

/// The resource names (`<prefix>/<name>`) of `config`'s pools.
pub fn resources(config: &DevicePluginConfig) -> Vec<String> {
    config
        .resource_list
        .iter()
        .map(|p| format!("{}/{}", p.resource_prefix, p.resource_name))
        .collect()
}

/// Reads the node's device-plugin file and checks `addr` against it (see [`check`]); returns
/// the file's configuration.
pub fn check_on_node(
    pools_file: &Path,
    sys: &Path,
    addr: PciAddress,
    resource: Option<&str>,
) -> Result<DevicePluginConfig, CniError> {
    let bytes = fs::read(pools_file).map_err(|e| {
        CniError::new(
            code::INVALID_CONFIG,
            format!(
                "key deviceID: cannot read this node's pools from {}: {e}; no VF is attached before the node is configured",
                pools_file.display()
            ),
        )
    })?;
    let config: DevicePluginConfig = serde_json::from_slice(&bytes).map_err(|e| {
        CniError::new(
            code::INVALID_CONFIG,
            format!(
                "cannot decode this node's pools in {}: {e}",
                pools_file.display()
            ),
        )
    })?;
    let d = identify(sys, addr).map_err(|e| {
        CniError::new(
            code::INVALID_CONFIG,
            format!("key deviceID: {addr} is not a PCI device on this node: {e}"),
        )
    })?;
    check(&config, &d, resource)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use crds::{
        device_plugin::{PfVfs, ResourcePool},
        vf::VfIndexRange,
    };

    use super::*;

    fn pci(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    fn config() -> DevicePluginConfig {
        DevicePluginConfig {
            resource_list: vec![ResourcePool {
                resource_name: "cx6_vf".into(),
                resource_prefix: "smartnic.io".into(),
                selectors: vec![DeviceSelector {
                    pfs: vec![PfVfs {
                        pci_address: "0000:3b:00.0".into(),
                        name: None,
                        vfs: vec![VfIndexRange { first: 0, last: 3 }],
                    }],
                    ..DeviceSelector::default()
                }],
                ..ResourcePool::default()
            }],
            ..DevicePluginConfig::default()
        }
    }

    #[test]
    fn a_vf_of_a_pool_passes_and_others_do_not() {
        let vf = |i: u32, addr: &str| Device {
            addr: pci(addr),
            vf_of: Some((pci("0000:3b:00.0"), i)),
            vendor: "15b3".into(),
            device: "101e".into(),
            driver: Some("mlx5_core".into()),
        };
        check(&config(), &vf(2, "0000:3b:00.4"), None).unwrap();
        check(
            &config(),
            &vf(2, "0000:3b:00.4"),
            Some("smartnic.io/cx6_vf"),
        )
        .unwrap();
        let e = check(&config(), &vf(2, "0000:3b:00.4"), Some("smartnic.io/other")).unwrap_err();
        assert!(
            e.msg.contains("not a device of pool smartnic.io/other"),
            "{}",
            e.msg
        );
        let e = check(&config(), &vf(7, "0000:3b:01.1"), None).unwrap_err();
        assert!(e.msg.contains("in none of this node's pools"), "{}", e.msg);
        let mgmt = Device {
            vf_of: None,
            ..vf(0, "0000:00:1f.6")
        };
        assert!(check(&config(), &mgmt, None).is_err());
        let mut by_driver = config();
        by_driver.resource_list[0].selectors[0].drivers = vec!["vfio-pci".into()];
        assert!(check(&by_driver, &vf(2, "0000:3b:00.4"), None).is_err());
        let unbound = Device {
            driver: None,
            ..vf(2, "0000:3b:00.4")
        };
        assert!(check(&by_driver, &unbound, None).is_err());
        by_driver.resource_list[0].selectors[0].drivers = vec!["mlx5_core".into()];
        check(&by_driver, &vf(2, "0000:3b:00.4"), None).unwrap();
    }

    #[test]
    fn sysfs_says_which_pf_and_index() {
        let tmp = tempfile::tempdir().unwrap();
        let devs = tmp.path().join("bus/pci/devices");
        for (addr, vendor) in [("0000:3b:00.0", "0x15b3"), ("0000:3b:00.3", "0x15b3")] {
            fs::create_dir_all(devs.join(addr)).unwrap();
            fs::write(devs.join(addr).join("vendor"), format!("{vendor}\n")).unwrap();
            fs::write(devs.join(addr).join("device"), "0x101E\n").unwrap();
        }
        std::os::unix::fs::symlink("../0000:3b:00.0", devs.join("0000:3b:00.3/physfn")).unwrap();
        std::os::unix::fs::symlink("../0000:3b:00.3", devs.join("0000:3b:00.0/virtfn1")).unwrap();
        let d = identify(tmp.path(), pci("0000:3b:00.3")).unwrap();
        assert_eq!(d.vf_of, Some((pci("0000:3b:00.0"), 1)));
        assert_eq!((d.vendor.as_str(), d.device.as_str()), ("15b3", "101e"));
        let pf = identify(tmp.path(), pci("0000:3b:00.0")).unwrap();
        assert_eq!(pf.vf_of, None);
        let file = tmp.path().join("dp.json");
        assert!(
            check_on_node(&file, tmp.path(), d.addr, None)
                .unwrap_err()
                .msg
                .contains("cannot read this node's pools")
        );
        fs::write(&file, serde_json::to_vec(&config()).unwrap()).unwrap();
        let read = check_on_node(&file, tmp.path(), d.addr, None).unwrap();
        assert_eq!(resources(&read), ["smartnic.io/cx6_vf"]);
        assert!(check_on_node(&file, tmp.path(), pf.addr, None).is_err());
        assert!(
            check_on_node(&file, tmp.path(), pci("0000:5e:00.1"), None)
                .unwrap_err()
                .msg
                .contains("not a PCI device on this node")
        );
    }
}
