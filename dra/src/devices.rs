//! The node's DRA devices, as pure functions of the applied pools, the host state the device
//! plugin's one-sysfs-pass scan reads (vendor and device IDs, NUMA, VF index, link type, RDMA,
//! health) and the slower [`Facts`] (PF names, eswitch modes, link speeds, PCIe roots).
//!
//! A device is a member of a pool whose `allocation` includes DRA
//! ([`crds::dra::Allocation::dra`]). Pool membership is the device plugin's own first-match
//! assignment over every pool ([`device_plugin::pool::assign`]), so a device belongs to the same
//! pool whichever interface offers it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crds::device_plugin::DeviceLinkType;
use crds::dra::{attr, device_name};
use crds::inventory::{EswitchMode, NicInventory};
use crds::vf::VfDeviceType;
use device_plugin::config::{Config, PoolSpec};
use device_plugin::host::HostState;
use device_plugin::pool::{PoolDevice, assign};
use nic::pci::PciAddress;

/// A typed attribute value (`resource.k8s.io/v1` `DeviceAttribute` has one of these).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attr {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// What is known of a PF beyond the fast scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PfFacts {
    /// Its netdev (`ens1f0np0`).
    pub name: Option<String>,
    /// Eswitch mode.
    pub eswitch: Option<EswitchMode>,
    /// Link speed in Mbit/s.
    pub speed_mbps: Option<u32>,
}

/// The slow facts: read by a full discovery when the set of functions changes, never on the
/// health path (a link speed read can wait for the RTNL lock).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Per PF (and per standalone function): name, eswitch mode, speed.
    pub pfs: BTreeMap<PciAddress, PfFacts>,
    /// The PCIe root of each function (`pci0000:00`), where sysfs shows one.
    pub pcie_roots: BTreeMap<PciAddress, String>,
}

impl Facts {
    /// From a discovered inventory and each function's resolved sysfs path.
    pub fn from_inventory(
        inv: &NicInventory,
        resolved: impl Fn(&PciAddress) -> Option<std::path::PathBuf>,
    ) -> Facts {
        let mut facts = Facts::default();
        for nic in &inv.nics {
            let Ok(pf) = nic.pci_address.parse::<PciAddress>() else {
                continue;
            };
            facts.pfs.insert(
                pf,
                PfFacts {
                    name: nic.name.clone(),
                    eswitch: nic.eswitch_mode,
                    speed_mbps: nic.speed_mbps.filter(|s| *s > 0),
                },
            );
            let vfs = nic.vfs.iter().filter_map(|v| v.pci_address.parse().ok());
            for addr in std::iter::once(pf).chain(vfs) {
                if let Some(root) = resolved(&addr).as_deref().and_then(pcie_root) {
                    facts.pcie_roots.insert(addr, root);
                }
            }
        }
        facts
    }
}

/// The PCIe root of a device from its resolved sysfs path
/// (`/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.2` → `pci0000:00`): the first component
/// `pci<domain>:<bus>`.
pub fn pcie_root(path: &Path) -> Option<String> {
    path.components().find_map(|c| {
        let s = c.as_os_str().to_str()?;
        let rest = s.strip_prefix("pci")?;
        let (domain, bus) = rest.split_once(':')?;
        let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
        (hex(domain, 4) && hex(bus, 2)).then(|| s.to_ascii_lowercase())
    })
}

/// One device the driver knows: published when healthy and not held elsewhere, preparable
/// whenever it is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DraDevice {
    /// Its ResourceSlice name ([`device_name`]).
    pub name: String,
    /// The pool's checked configuration.
    pub pool: PoolSpec,
    /// The device as the device plugin sees it (address, PF, NUMA, driver, IOMMU, RDMA, health).
    pub device: PoolDevice,
    /// Attributes, by their name in the slice.
    pub attributes: BTreeMap<String, Attr>,
    /// The `maxRate` capacity (the PF's link speed, Mbit/s), when known.
    pub max_rate_mbps: Option<u32>,
}

impl DraDevice {
    /// Healthy (offerable).
    pub fn is_healthy(&self) -> bool {
        self.device.health.is_healthy()
    }

    /// The PCI address.
    pub fn pci_address(&self) -> String {
        self.device.addr.to_string()
    }
}

fn link_type_name(l: DeviceLinkType) -> &'static str {
    match l {
        DeviceLinkType::Ether => "ether",
        DeviceLinkType::Infiniband => "infiniband",
    }
}

fn device_type_name(t: VfDeviceType) -> &'static str {
    match t {
        VfDeviceType::Netdevice => "netdevice",
        VfDeviceType::VfioPci => "vfio-pci",
    }
}

/// Every device of the DRA pools, sorted by name.
pub fn devices(config: &Config, host: &HostState, facts: &Facts) -> Vec<DraDevice> {
    let mut out = Vec::new();
    for (spec, devs) in config.pools.iter().zip(assign(config, host)) {
        if !spec.allocation.dra() {
            continue;
        }
        for d in devs {
            if let Some(dev) = dra_device(spec, d, host, facts) {
                out.push(dev);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn dra_device(
    spec: &PoolSpec,
    d: PoolDevice,
    host: &HostState,
    facts: &Facts,
) -> Option<DraDevice> {
    let f = host.get(&d.addr)?;
    let name = device_name(&d.addr.to_string())?;
    let mut a = BTreeMap::new();
    let s = |v: String| Attr::Str(v);
    a.insert(attr::VENDOR.into(), s(format!("{:04x}", f.vendor)));
    a.insert(attr::DEVICE.into(), s(format!("{:04x}", f.device)));
    a.insert(attr::PCI_ADDRESS.into(), s(d.addr.to_string()));
    // a whole PF is its own PF
    let pf = d.pf().unwrap_or(d.addr);
    a.insert(attr::PF_PCI_ADDRESS.into(), s(pf.to_string()));
    let pf_facts = facts.pfs.get(&pf);
    let pf_name = host
        .get(&pf)
        .and_then(|p| p.link.as_ref())
        .and_then(|l| l.netdev.clone())
        .or_else(|| pf_facts.and_then(|p| p.name.clone()));
    if let Some(n) = pf_name {
        a.insert(attr::PF_NAME.into(), s(n));
    }
    if let Some(n) = d.numa_node {
        a.insert(attr::NUMA_NODE.into(), Attr::Int(i64::from(n)));
    }
    if let Some(root) = facts.pcie_roots.get(&d.addr) {
        a.insert(attr::PCIE_ROOT.into(), s(root.clone()));
    }
    a.insert(
        attr::LINK_TYPE.into(),
        s(link_type_name(f.link_type).into()),
    );
    if let Some(mode) = pf_facts.and_then(|p| p.eswitch) {
        let m = match mode {
            EswitchMode::Legacy => "legacy",
            EswitchMode::Switchdev => "switchdev",
        };
        a.insert(attr::ESWITCH_MODE.into(), s(m.into()));
    }
    a.insert(attr::RDMA.into(), Attr::Bool(!d.rdma.devices.is_empty()));
    if let Some((_, index)) = d.vf_of {
        a.insert(attr::VF_INDEX.into(), Attr::Int(i64::from(index)));
    }
    a.insert(attr::RESOURCE_NAME.into(), s(spec.name.clone()));
    a.insert(
        attr::DEVICE_TYPE.into(),
        s(device_type_name(spec.device_type).into()),
    );
    Some(DraDevice {
        name,
        pool: spec.clone(),
        max_rate_mbps: pf_facts.and_then(|p| p.speed_mbps),
        attributes: a,
        device: d,
    })
}

/// The devices to publish: healthy, and not held by the device plugin (`held`: PCI addresses in
/// the kubelet's device-plugin checkpoint, which matters for `allocation: both` pools).
pub fn offered<'a>(
    devices: &'a [DraDevice],
    held: &'a BTreeSet<String>,
) -> impl Iterator<Item = &'a DraDevice> + 'a {
    devices.iter().filter(move |d| {
        d.is_healthy() && !(d.pool.allocation.device_plugin() && held.contains(&d.pci_address()))
    })
}

/// The kubelet's device-plugin checkpoint
/// (`/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint`): the device IDs (our PCI
/// addresses) assigned to containers of resources with `prefix/`. Unreadable JSON gives an
/// empty set: the checkpoint only narrows what is offered.
pub fn held_by_device_plugin(checkpoint: &str, prefix: &str) -> BTreeSet<String> {
    let mut held = BTreeSet::new();
    let Ok(v) = serde_json::from_str::<serde_json::Value>(checkpoint) else {
        return held;
    };
    let entries = v
        .pointer("/Data/PodDeviceEntries")
        .and_then(|e| e.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for e in entries {
        let ours = e
            .get("ResourceName")
            .and_then(|r| r.as_str())
            .is_some_and(|r| r.starts_with(&format!("{prefix}/")));
        if !ours {
            continue;
        }
        // `DeviceIDs`: NUMA node -> IDs (older kubelets: a plain list)
        match e.get("DeviceIDs") {
            Some(serde_json::Value::Object(by_numa)) => {
                for ids in by_numa.values().filter_map(|i| i.as_array()) {
                    held.extend(ids.iter().filter_map(|i| i.as_str()).map(str::to_owned));
                }
            }
            Some(serde_json::Value::Array(ids)) => {
                held.extend(ids.iter().filter_map(|i| i.as_str()).map(str::to_owned));
            }
            _ => {}
        }
    }
    held
}

/// The kubelet's device-plugin checkpoint file in the device-plugin directory.
pub const CHECKPOINT: &str = "kubelet_internal_checkpoint";

/// The devices held by the device plugin, for the prefixes of the `allocation: both` pools among
/// `pools` (read from [`CHECKPOINT`] in `dir`; nothing to read without such a pool).
pub fn held_in_checkpoint<'a>(
    pools: impl IntoIterator<Item = &'a PoolSpec>,
    dir: &Path,
) -> BTreeSet<String> {
    let prefixes: BTreeSet<&str> = pools
        .into_iter()
        .filter(|p| p.allocation.dra() && p.allocation.device_plugin())
        .map(|p| p.prefix.as_str())
        .collect();
    if prefixes.is_empty() {
        return BTreeSet::new();
    }
    let text = std::fs::read_to_string(dir.join(CHECKPOINT)).unwrap_or_default();
    prefixes
        .into_iter()
        .flat_map(|p| held_by_device_plugin(&text, p))
        .collect()
}

/// The devices by name (for NodePrepareResources).
pub fn by_name(devices: &[DraDevice]) -> BTreeMap<String, DraDevice> {
    devices
        .iter()
        .map(|d| (d.name.clone(), d.clone()))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use device_plugin::config::{Format, parse_and_check};
    use device_plugin::host::scan;
    use nic::fixtures::HostBuilder;

    use super::*;

    pub(crate) fn config(allocation: &str) -> Config {
        parse_and_check(
            &format!(
                r#"{{"resourceList": [{{"resourceName": "cx6_vf", "resourcePrefix": "smartnic.io",
                 "deviceType": "netdevice", "allocation": "{allocation}",
                 "selectors": [{{"pfs": [{{"pciAddress": "0000:3b:00.0"}}]}}]}}]}}"#
            ),
            Format::Json,
        )
        .unwrap()
    }

    #[test]
    fn attributes_of_a_vf() {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Switchdev)
            .build()
            .unwrap();
        let state = scan(&host.sysfs()).unwrap();
        let inv = nic::discovery::discover(&host.sysfs()).unwrap();
        let facts = Facts::from_inventory(&inv, |a| {
            Some(format!("/sys/devices/pci0000:3a/0000:3a:00.0/{a}").into())
        });
        let devs = devices(&config("dra"), &state, &facts);
        assert_eq!(devs.len(), 4);
        let d = &devs[1];
        assert_eq!(d.name, "pci-0000-3b-00-3");
        let get = |k: &str| d.attributes.get(k).cloned();
        let s = |v: &str| Some(Attr::Str(v.into()));
        assert_eq!(get(attr::VENDOR), s("15b3"));
        assert_eq!(get(attr::DEVICE), s("101e"));
        assert_eq!(get(attr::PCI_ADDRESS), s("0000:3b:00.3"));
        assert_eq!(get(attr::PF_PCI_ADDRESS), s("0000:3b:00.0"));
        assert_eq!(get(attr::PF_NAME), s("ens1f0np0"));
        assert_eq!(get(attr::NUMA_NODE), Some(Attr::Int(0)));
        assert_eq!(get(attr::PCIE_ROOT), s("pci0000:3a"));
        assert_eq!(get(attr::LINK_TYPE), s("ether"));
        assert_eq!(get(attr::ESWITCH_MODE), s("switchdev"));
        assert_eq!(get(attr::VF_INDEX), Some(Attr::Int(1)));
        assert_eq!(get(attr::RESOURCE_NAME), s("cx6_vf"));
        assert_eq!(get(attr::DEVICE_TYPE), s("netdevice"));
        assert!(matches!(get(attr::RDMA), Some(Attr::Bool(_))));
        // device-plugin-only pools are not DRA devices
        assert!(devices(&config("devicePlugin"), &state, &facts).is_empty());
    }

    /// A whole PF (a pool selecting a PF without VFs) is its own PF: its name comes from
    /// discovery, and it has no VF index.
    #[test]
    fn a_whole_pf_is_a_device_without_vf_index() {
        let host = HostBuilder::new()
            .igb_82576()
            .edit_pf("0000:01:00.0", |pf| pf.set_num_vfs(0))
            .build()
            .unwrap();
        let cfg = parse_and_check(
            r#"{"resourceList": [{"resourceName": "igb_pf", "resourcePrefix": "smartnic.io",
                "deviceType": "netdevice", "allocation": "dra",
                "selectors": [{"pciAddresses": ["0000:01:00.0"]}]}]}"#,
            Format::Json,
        )
        .unwrap();
        let state = scan(&host.sysfs()).unwrap();
        let inv = nic::discovery::discover(&host.sysfs()).unwrap();
        let devs = devices(&cfg, &state, &Facts::from_inventory(&inv, |_| None));
        assert_eq!(devs.len(), 1);
        let a = &devs[0].attributes;
        assert_eq!(devs[0].name, "pci-0000-01-00-0");
        assert_eq!(a.get(attr::VF_INDEX), None);
        assert_eq!(a[attr::PF_PCI_ADDRESS], Attr::Str("0000:01:00.0".into()));
        assert_eq!(a[attr::PF_NAME], Attr::Str("enp1s0".into()));
        assert_eq!(a[attr::VENDOR], Attr::Str("8086".into()));
    }

    #[test]
    fn unhealthy_and_held_devices_are_not_offered() {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        let pf = host.device_dir("0000:3b:00.0").join("net/ens1f0np0");
        let offered_names = |alloc: &str, held: &BTreeSet<String>| {
            let state = scan(&host.sysfs()).unwrap();
            let devs = devices(&config(alloc), &state, &Facts::default());
            offered(&devs, held)
                .map(|d| d.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(offered_names("dra", &BTreeSet::new()).len(), 4);
        let held = held_by_device_plugin(
            r#"{"Data":{"PodDeviceEntries":[
                {"PodUID":"p","ContainerName":"c","ResourceName":"smartnic.io/cx6_vf",
                 "DeviceIDs":{"0":["0000:3b:00.2"]},"AllocResp":""},
                {"PodUID":"q","ContainerName":"c","ResourceName":"other.io/x",
                 "DeviceIDs":{"0":["0000:3b:00.3"]},"AllocResp":""}],
                "RegisteredDevices":{}},"Checksum":1}"#,
            "smartnic.io",
        );
        assert_eq!(held, BTreeSet::from(["0000:3b:00.2".to_owned()]));
        // `both`: the device plugin's device is not offered twice; `dra` pools ignore it
        assert_eq!(
            offered_names("both", &held),
            ["pci-0000-3b-00-3", "pci-0000-3b-00-4", "pci-0000-3b-00-5"]
        );
        assert_eq!(offered_names("dra", &held).len(), 4);
        std::fs::write(pf.join("operstate"), "down\n").unwrap();
        assert!(offered_names("dra", &BTreeSet::new()).is_empty());
        assert!(held_by_device_plugin("not json", "smartnic.io").is_empty());
    }

    #[test]
    fn pcie_roots_from_sysfs_paths() {
        let r = |p: &str| pcie_root(Path::new(p));
        assert_eq!(
            r("/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.2").as_deref(),
            Some("pci0000:00")
        );
        assert_eq!(
            r("/sys/devices/pci0001:AF/0001:af:00.0").as_deref(),
            Some("pci0001:af")
        );
        assert_eq!(r("/fixture/sys/bus/pci/devices/0000:03:00.2"), None);
        assert_eq!(r("/sys/devices/pci/x"), None);
    }
}
