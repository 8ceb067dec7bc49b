//! PCI addresses and the `pci.ids` name database.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sysfs::SysFs;

/// A PCI function address (`domain:bus:device.function`, e.g. `0000:3b:00.0`).
///
/// Orders by domain, bus, device, function, which is also the order `lspci` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    /// PCI segment (domain); 16 bits on most hosts, wider behind Intel VMD.
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

/// A string that is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a PCI address (expected DDDD:BB:DD.F, e.g. 0000:3b:00.0)")]
pub struct PciAddressError {
    /// The rejected input.
    pub input: String,
}

impl PciAddress {
    /// Builds an address; `None` when the device is above 31 or the function above 7.
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<Self> {
        (device < 32 && function < 8).then_some(PciAddress {
            domain,
            bus,
            device,
            function,
        })
    }

    /// The 16-bit routing id within the domain: `bus << 8 | device << 3 | function`.
    pub fn routing_id(&self) -> u16 {
        (u16::from(self.bus) << 8) | (u16::from(self.device) << 3) | u16::from(self.function)
    }

    /// The address with routing id `rid` in the same domain (how SR-IOV places VFs:
    /// `PF rid + sriov_offset + i * sriov_stride`).
    pub fn from_routing_id(domain: u32, rid: u16) -> Self {
        PciAddress {
            domain,
            bus: (rid >> 8) as u8,
            device: ((rid >> 3) & 0x1f) as u8,
            function: (rid & 0x7) as u8,
        }
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl FromStr for PciAddress {
    type Err = PciAddressError;

    /// Parses `DDDD:BB:DD.F`; the short form `BB:DD.F` (as `lspci` prints it) means domain 0.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PciAddressError {
            input: s.to_owned(),
        };
        let hex = |part: &str, max_len: usize| -> Result<u32, PciAddressError> {
            if part.is_empty()
                || part.len() > max_len
                || !part.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(err());
            }
            u32::from_str_radix(part, 16).map_err(|_| err())
        };
        let (head, function) = s.rsplit_once('.').ok_or_else(err)?;
        let mut parts = head.rsplitn(3, ':');
        let device = parts.next().ok_or_else(err)?;
        let bus = parts.next().ok_or_else(err)?;
        let domain = parts.next().map_or(Ok(0), |d| hex(d, 8))?;
        let addr = PciAddress::new(
            domain,
            u8::try_from(hex(bus, 2)?).map_err(|_| err())?,
            u8::try_from(hex(device, 2)?).map_err(|_| err())?,
            u8::try_from(hex(function, 1)?).map_err(|_| err())?,
        );
        addr.ok_or_else(err)
    }
}

impl Serialize for PciAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Vendor and device names from the `pci.ids` database (`/usr/share/hwdata/pci.ids`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PciIds {
    vendors: HashMap<u16, PciVendor>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PciVendor {
    name: String,
    devices: HashMap<u16, String>,
}

impl PciIds {
    /// Parses the whole database.
    pub fn parse(text: &str) -> Self {
        Self::parse_filtered(text, |_| true)
    }

    /// Parses only the vendors for which `want` is true; the rest of the file is skipped cheaply
    /// (the full database is ~1.5 MB, and discovery needs two or three vendors).
    ///
    /// Format: `vvvv  Vendor name`, then `\tdddd  Device name` lines, then `\t\tssss ssss  ...`
    /// subsystem lines (ignored). The class list at the end (`C cc  Class name`) ends the vendor
    /// section. Lines that do not fit are skipped.
    pub fn parse_filtered(text: &str, mut want: impl FnMut(u16) -> bool) -> Self {
        let mut ids = PciIds::default();
        let mut current: Option<u16> = None;
        for line in text.lines() {
            if line.starts_with("C ") {
                break;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('\t') {
                if rest.starts_with('\t') {
                    continue; // subsystem line
                }
                let Some(vendor) = current else { continue };
                if let Some((id, name)) = split_id_name(rest)
                    && let Some(v) = ids.vendors.get_mut(&vendor)
                {
                    v.devices.insert(id, name.to_owned());
                }
                continue;
            }
            current = None;
            if let Some((id, name)) = split_id_name(line)
                && want(id)
            {
                ids.vendors.insert(
                    id,
                    PciVendor {
                        name: name.to_owned(),
                        devices: HashMap::new(),
                    },
                );
                current = Some(id);
            }
        }
        ids
    }

    /// Loads the first database found under the sysfs root (`usr/share/hwdata/pci.ids`, then
    /// `usr/share/misc/pci.ids`), keeping only `vendors` (all when empty). `None` when no database
    /// is installed or it cannot be read.
    pub fn load(sysfs: &SysFs, vendors: &BTreeSet<u16>) -> Option<(PathBuf, Self)> {
        sysfs.pci_ids_paths().into_iter().find_map(|path| {
            let ids = Self::load_file(&path, vendors)?;
            Some((path, ids))
        })
    }

    /// The whole database under the sysfs root, parsed once per process and path and shared
    /// afterwards (discovery runs on every resync; the file is ~1.5 MB). A database that is
    /// missing is looked for again on the next call.
    pub fn shared(sysfs: &SysFs) -> Option<(PathBuf, Arc<Self>)> {
        static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<PciIds>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Mutex::default);
        for path in sysfs.pci_ids_paths() {
            // A panic while parsing leaves no entry behind, so the map is still usable.
            let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(ids) = map.get(&path) {
                return Some((path, Arc::clone(ids)));
            }
            if let Some(ids) = Self::load_file(&path, &BTreeSet::new()) {
                let ids = Arc::new(ids);
                map.insert(path.clone(), Arc::clone(&ids));
                return Some((path, ids));
            }
        }
        None
    }

    fn load_file(path: &Path, vendors: &BTreeSet<u16>) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        Some(Self::parse_filtered(&text, |id| {
            vendors.is_empty() || vendors.contains(&id)
        }))
    }

    /// The vendor name (`Mellanox Technologies`).
    pub fn vendor_name(&self, vendor: u16) -> Option<&str> {
        self.vendors.get(&vendor).map(|v| v.name.as_str())
    }

    /// The device name (`MT2892 Family [ConnectX-6 Dx]`).
    pub fn device_name(&self, vendor: u16, device: u16) -> Option<&str> {
        self.vendors
            .get(&vendor)?
            .devices
            .get(&device)
            .map(String::as_str)
    }
}

/// `1593  Ethernet Controller E810-C for SFP` -> (0x1593, "Ethernet Controller E810-C for SFP").
fn split_id_name(line: &str) -> Option<(u16, &str)> {
    let (id, name) = line.split_once(char::is_whitespace)?;
    if id.len() != 4 {
        return None;
    }
    let id = u16::from_str_radix(id, 16).ok()?;
    let name = name.trim();
    (!name.is_empty()).then_some((id, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shared_database_is_parsed_once() {
        let dir = tempfile::tempdir().unwrap();
        let sysfs = SysFs::new(dir.path());
        assert!(PciIds::shared(&sysfs).is_none());
        let path = sysfs.path("usr/share/misc/pci.ids");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, IDS).unwrap();
        let (found, a) = PciIds::shared(&sysfs).unwrap();
        assert_eq!(found, path);
        assert_eq!(a.vendor_name(0x8086), Some("Intel Corporation"));
        // a changed file is not read again
        std::fs::write(&path, "").unwrap();
        let (_, b) = PciIds::shared(&sysfs).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn parses_and_displays() {
        let a: PciAddress = "0000:3b:00.1".parse().unwrap();
        assert_eq!(
            a,
            PciAddress {
                domain: 0,
                bus: 0x3b,
                device: 0,
                function: 1
            }
        );
        assert_eq!(a.to_string(), "0000:3b:00.1");
        let short: PciAddress = "3b:00.1".parse().unwrap();
        assert_eq!(short, a);
        let upper: PciAddress = "0000:AF:1F.7".parse().unwrap();
        assert_eq!(upper.to_string(), "0000:af:1f.7");
        let vmd: PciAddress = "10000:01:00.0".parse().unwrap();
        assert_eq!(vmd.domain, 0x10000);
        assert_eq!(vmd.to_string(), "10000:01:00.0");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "eth0",
            "0000:3b:00",
            "0000:3b:00.8",
            "0000:3b:20.0",
            "0000:3b:00.0.0",
            "0000:3bb:00.0",
            "0000:3b:0x.0",
            ":3b:00.0",
            "0000::00.0",
            "1:2:3:4.0",
            "+000:3b:00.0",
        ] {
            let e = bad.parse::<PciAddress>();
            assert!(e.is_err(), "{bad:?} parsed as {e:?}");
        }
        let e = "eth0".parse::<PciAddress>().unwrap_err();
        assert!(e.to_string().contains("\"eth0\" is not a PCI address"));
    }

    #[test]
    fn orders_like_lspci() {
        let mut v: Vec<PciAddress> = [
            "0000:3b:00.1",
            "0000:3b:00.0",
            "0000:17:00.0",
            "0001:00:00.0",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        v.sort();
        let s: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(
            s,
            [
                "0000:17:00.0",
                "0000:3b:00.0",
                "0000:3b:00.1",
                "0001:00:00.0"
            ]
        );
    }

    #[test]
    fn routing_ids_place_vfs() {
        let pf: PciAddress = "0000:01:00.0".parse().unwrap();
        // 82576: VF offset 0x80, stride 2.
        let vf1 = PciAddress::from_routing_id(0, pf.routing_id() + 0x80 + 2);
        assert_eq!(vf1.to_string(), "0000:01:10.2");
    }

    #[test]
    fn serde_as_string() {
        let a: PciAddress = "0000:3b:00.2".parse().unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"0000:3b:00.2\"");
        let b: PciAddress = serde_json::from_str("\"0000:3b:00.2\"").unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<PciAddress>("\"x\"").is_err());
    }

    const IDS: &str = "\
# comment
15b3  Mellanox Technologies
\t101d  MT2892 Family [ConnectX-6 Dx]
\t\t15b3 0008  ConnectX-6 Dx EN adapter card
\t101e  ConnectX Family mlx5Gen Virtual Function
8086  Intel Corporation
\t1593  Ethernet Controller E810-C for SFP
\tzzzz  broken line
C 02  Network controller
\t00  Ethernet controller
";

    #[test]
    fn pci_ids_names() {
        let ids = PciIds::parse(IDS);
        assert_eq!(ids.vendor_name(0x15b3), Some("Mellanox Technologies"));
        assert_eq!(
            ids.device_name(0x15b3, 0x101d),
            Some("MT2892 Family [ConnectX-6 Dx]")
        );
        assert_eq!(
            ids.device_name(0x8086, 0x1593),
            Some("Ethernet Controller E810-C for SFP")
        );
        assert_eq!(ids.device_name(0x8086, 0x0000), None);
        assert_eq!(ids.vendor_name(0x1234), None);
        // the class section is not mistaken for devices of the last vendor
        assert_eq!(ids.device_name(0x8086, 0x0000), None);
    }

    #[test]
    fn pci_ids_filtered() {
        let ids = PciIds::parse_filtered(IDS, |v| v == 0x8086);
        assert_eq!(ids.vendor_name(0x15b3), None);
        assert_eq!(ids.device_name(0x15b3, 0x101d), None);
        assert_eq!(ids.vendor_name(0x8086), Some("Intel Corporation"));
    }

    #[test]
    fn pci_ids_load_prefers_hwdata() {
        let dir = tempfile::tempdir().unwrap();
        let sysfs = SysFs::new(dir.path());
        assert!(PciIds::load(&sysfs, &BTreeSet::new()).is_none());
        std::fs::create_dir_all(sysfs.path("usr/share/misc")).unwrap();
        std::fs::write(sysfs.path("usr/share/misc/pci.ids"), IDS).unwrap();
        let (path, ids) = PciIds::load(&sysfs, &BTreeSet::new()).unwrap();
        assert!(path.ends_with("misc/pci.ids"));
        assert_eq!(ids.vendor_name(0x8086), Some("Intel Corporation"));
        std::fs::create_dir_all(sysfs.path("usr/share/hwdata")).unwrap();
        std::fs::write(sysfs.path("usr/share/hwdata/pci.ids"), "1234  Other\n").unwrap();
        let (path, ids) = PciIds::load(&sysfs, &BTreeSet::new()).unwrap();
        assert!(path.ends_with("hwdata/pci.ids"));
        assert_eq!(ids.vendor_name(0x1234), Some("Other"));
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(domain in 0u32..0x2_0000, bus: u8, device in 0u8..32, function in 0u8..8) {
            let a = PciAddress::new(domain, bus, device, function).unwrap();
            let back: PciAddress = a.to_string().parse().unwrap();
            prop_assert_eq!(a, back);
        }

        #[test]
        fn routing_id_round_trip(rid: u16) {
            prop_assert_eq!(PciAddress::from_routing_id(0, rid).routing_id(), rid);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = s.parse::<PciAddress>();
        }
    }
}
