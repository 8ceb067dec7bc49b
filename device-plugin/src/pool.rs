//! Pools from the configuration and the host: which device belongs to which pool, and whether it
//! is healthy. Pure functions over [`Config`] and [`HostState`].
//!
//! - A PF that has VFs is never a device itself.
//! - A device goes to the first pool (in file order) with a selector it matches.
//! - Health: a device is `Unhealthy` when its PF's link is down (admin down, or `operstate`
//!   neither `up` nor `unknown`), when it is bound to a driver other than its pool's `deviceType` (or to none),
//!   when a `vfio-pci` device has no IOMMU group, when it vanished ([`keep_vanished`]), or, in
//!   an `allocation: both` pool, while the DRA driver holds it for a claim ([`hold_for_dra`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crds::vf::VfDeviceType;
use nic::pci::PciAddress;

use crate::config::{Config, PoolSpec, Selector};
use crate::host::{Function, HostState, LinkState, Rdma};

/// Drivers that give the VF no netdev (a `netdevice` pool cannot hand such a VF out).
const NON_NET_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic", "igb_uio", "pci-stub"];

/// Health of one device, with the reason when unhealthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Usable.
    Healthy,
    /// Not usable, and why (`PF 0000:3b:00.0 (ens1f0np0) link is down`).
    Unhealthy(String),
}

impl Health {
    /// True when healthy.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// The kubelet's word for it (`Healthy` / `Unhealthy`).
    pub fn as_kubelet(&self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Unhealthy(_) => "Unhealthy",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Unhealthy(why) => write!(f, "unhealthy: {why}"),
        }
    }
}

/// One device of a pool as ListAndWatch, Allocate and the preferred allocation see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolDevice {
    /// The PCI address: the device ID the kubelet sees.
    pub addr: PciAddress,
    /// Its PF and VF index, when it is a VF of a visible PF.
    pub vf_of: Option<(PciAddress, u32)>,
    /// NUMA node.
    pub numa_node: Option<i32>,
    /// Bound driver.
    pub driver: Option<String>,
    /// IOMMU group.
    pub iommu_group: Option<u32>,
    /// The IOMMU group is `vfio-noiommu`.
    pub noiommu: bool,
    /// RDMA facts.
    pub rdma: Rdma,
    /// Health.
    pub health: Health,
}

impl PoolDevice {
    /// The device ID the kubelet sees (`0000:3b:00.2`).
    pub fn id(&self) -> String {
        self.addr.to_string()
    }

    /// The PF, if any.
    pub fn pf(&self) -> Option<PciAddress> {
        self.vf_of.map(|(pf, _)| pf)
    }
}

/// True when `f` matches `sel` (every non-empty field matches).
pub fn matches(sel: &Selector, f: &Function) -> bool {
    let pfs = sel.pfs.is_empty()
        || f.vf_of.is_some_and(|(pf, index)| {
            sel.pfs.iter().any(|(addr, ranges)| {
                *addr == pf
                    && (ranges.is_empty()
                        || ranges.iter().any(|r| (r.first..=r.last).contains(&index)))
            })
        });
    pfs && (sel.pci_addresses.is_empty() || sel.pci_addresses.contains(&f.addr))
        && (sel.vendors.is_empty() || sel.vendors.contains(&f.vendor))
        && (sel.devices.is_empty() || sel.devices.contains(&f.device))
        && (sel.drivers.is_empty()
            || f.driver
                .as_deref()
                .is_some_and(|d| sel.drivers.iter().any(|s| s == d)))
        && (sel.link_types.is_empty() || sel.link_types.contains(&f.link_type))
}

/// The devices of every pool, in config order, each list sorted by address.
pub fn assign(config: &Config, host: &HostState) -> Vec<Vec<PoolDevice>> {
    let mut out: Vec<Vec<PoolDevice>> = vec![Vec::new(); config.pools.len()];
    for f in host.functions.values().filter(|f| !f.has_vfs) {
        let pool = config
            .pools
            .iter()
            .position(|p| p.selectors.iter().any(|s| matches(s, f)));
        if let Some(i) = pool {
            out[i].push(device(&config.pools[i], f, host));
        }
    }
    out
}

fn device(pool: &PoolSpec, f: &Function, host: &HostState) -> PoolDevice {
    PoolDevice {
        addr: f.addr,
        vf_of: f.vf_of,
        numa_node: f.numa_node,
        driver: f.driver.clone(),
        iommu_group: f.iommu_group,
        noiommu: f.noiommu,
        rdma: f.rdma.clone(),
        health: health(pool, f, host),
    }
}

/// The health of function `f` in `pool`.
pub fn health(pool: &PoolSpec, f: &Function, host: &HostState) -> Health {
    if let Some((pf, _)) = f.vf_of
        && let Some(link) = host.get(&pf).and_then(|p| p.link.as_ref())
        && let Some(why) = link_problem(link)
    {
        return Health::Unhealthy(format!("PF {pf} {why}"));
    }
    let driver = f.driver.as_deref();
    match (pool.device_type, driver) {
        (_, None) => Health::Unhealthy("bound to no driver".into()),
        (VfDeviceType::VfioPci, Some("vfio-pci")) if f.iommu_group.is_none() => {
            Health::Unhealthy("on vfio-pci but in no IOMMU group".into())
        }
        (VfDeviceType::VfioPci, Some("vfio-pci")) => Health::Healthy,
        (VfDeviceType::VfioPci, Some(d)) => {
            Health::Unhealthy(format!("bound to {d}, the pool wants vfio-pci"))
        }
        (VfDeviceType::Netdevice, Some(d)) if NON_NET_DRIVERS.contains(&d) => Health::Unhealthy(
            format!("bound to {d}, the pool wants the kernel network driver"),
        ),
        (VfDeviceType::Netdevice, Some(_)) => Health::Healthy,
    }
}

/// Why a PF link is not usable, if it is not: no netdev, admin down (`flags`), or `operstate`
/// other than `up` (carrier loss shows there as `down` or `lowerlayerdown`; `unknown`, from
/// drivers that do not track it, counts as up).
fn link_problem(link: &LinkState) -> Option<String> {
    let Some(netdev) = &link.netdev else {
        return Some("has no netdev".into());
    };
    if link.admin_up == Some(false) {
        return Some(format!("({netdev}) is administratively down"));
    }
    match link.operstate.as_deref() {
        Some("up") | None => None,
        // drivers without operstate support report "unknown"
        Some("unknown") => None,
        Some(state) => Some(format!("({netdev}) link is {state}")),
    }
}

/// In an `allocation: both` pool, marks the devices the DRA driver prepared for a claim
/// (`prepared`: PCI addresses of the prepared-claim records) unhealthy, so that the kubelet
/// does not hand them to a pod as well. Other pools are left as they are.
pub fn hold_for_dra(pool: &PoolSpec, devices: &mut [PoolDevice], prepared: &BTreeSet<String>) {
    if !(pool.allocation.dra() && pool.allocation.device_plugin()) {
        return;
    }
    for d in devices.iter_mut() {
        if prepared.contains(&d.id()) {
            d.health = Health::Unhealthy("prepared for a DRA claim".into());
        }
    }
}

/// `now` plus the devices of `before` that are gone from it, marked unhealthy: a VF that
/// vanishes stays advertised (capacity unchanged, allocatable down) until the pool's
/// configuration changes, instead of silently shrinking the node.
pub fn keep_vanished(before: &[PoolDevice], now: Vec<PoolDevice>) -> Vec<PoolDevice> {
    let present: BTreeSet<PciAddress> = now.iter().map(|d| d.addr).collect();
    let mut all: BTreeMap<PciAddress, PoolDevice> = now.into_iter().map(|d| (d.addr, d)).collect();
    for d in before.iter().filter(|d| !present.contains(&d.addr)) {
        let mut gone = d.clone();
        gone.health = Health::Unhealthy("vanished from the host".into());
        all.insert(gone.addr, gone);
    }
    all.into_values().collect()
}

#[cfg(test)]
mod tests {
    use crds::device_plugin::DeviceLinkType;
    use crds::inventory::EswitchMode;
    use crds::vf::VfIndexRange;
    use nic::fixtures::HostBuilder;

    use super::*;
    use crate::host::scan;

    fn a(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    fn pool(name: &str, device_type: VfDeviceType, selectors: Vec<Selector>) -> PoolSpec {
        PoolSpec {
            prefix: "smartnic.io".into(),
            name: name.into(),
            device_type,
            is_rdma: false,
            exclude_topology: false,
            need_vhost_net: false,
            allocation: Default::default(),
            selectors,
        }
    }

    fn pf_sel(pf: &str, ranges: &[(u32, u32)]) -> Selector {
        Selector {
            pfs: vec![(
                a(pf),
                ranges
                    .iter()
                    .map(|&(first, last)| VfIndexRange { first, last })
                    .collect(),
            )],
            ..Selector::default()
        }
    }

    fn ids(devs: &[PoolDevice]) -> Vec<String> {
        devs.iter().map(PoolDevice::id).collect()
    }

    #[test]
    fn first_matching_pool_wins_and_pfs_with_vfs_are_never_devices() {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        let state = scan(&host.sysfs()).unwrap();
        let cfg = Config {
            pools: vec![
                pool(
                    "a",
                    VfDeviceType::Netdevice,
                    vec![pf_sel("0000:3b:00.0", &[(0, 1)])],
                ),
                pool(
                    "b",
                    VfDeviceType::Netdevice,
                    vec![Selector {
                        vendors: vec![0x15b3],
                        ..Selector::default()
                    }],
                ),
            ],
        };
        let pools = assign(&cfg, &state);
        assert_eq!(ids(&pools[0]), ["0000:3b:00.2", "0000:3b:00.3"]);
        // the rest of the Mellanox functions, without the two PFs
        assert_eq!(
            ids(&pools[1]),
            [
                "0000:3b:00.4",
                "0000:3b:00.5",
                "0000:3b:01.2",
                "0000:3b:01.3"
            ]
        );
        assert!(pools.iter().flatten().all(|d| d.health.is_healthy()));
        let by_device = Selector {
            devices: vec![0x101e],
            pci_addresses: vec![a("0000:3b:01.3")],
            ..Selector::default()
        };
        let f = state.get(&a("0000:3b:01.3")).unwrap();
        assert!(matches(&by_device, f));
        assert!(!matches(&by_device, state.get(&a("0000:3b:01.2")).unwrap()));
    }

    #[test]
    fn a_pf_without_vfs_is_a_device_of_its_own_and_drivers_select() {
        let host = HostBuilder::new()
            .igb_82576()
            .edit_pf("0000:01:00.0", |pf| pf.set_num_vfs(0))
            .build()
            .unwrap();
        let state = scan(&host.sysfs()).unwrap();
        let whole = |drivers: &[&str]| Selector {
            pci_addresses: vec![a("0000:01:00.0")],
            drivers: drivers.iter().map(|d| d.to_string()).collect(),
            ..Selector::default()
        };
        let cfg = Config {
            pools: vec![pool(
                "igb_pf",
                VfDeviceType::Netdevice,
                vec![whole(&["igb"])],
            )],
        };
        let pools = assign(&cfg, &state);
        assert_eq!(ids(&pools[0]), ["0000:01:00.0"]);
        assert_eq!(pools[0][0].vf_of, None);
        assert!(pools[0][0].health.is_healthy());
        // bound to another driver than the selector names: not in the pool at all
        let cfg = Config {
            pools: vec![pool(
                "igb_pf",
                VfDeviceType::Netdevice,
                vec![whole(&["vfio-pci"])],
            )],
        };
        assert!(assign(&cfg, &state)[0].is_empty());
        // with VFs enabled the PF is no device, whatever the selector says
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let state = scan(&host.sysfs()).unwrap();
        let cfg = Config {
            pools: vec![pool("igb_pf", VfDeviceType::Netdevice, vec![whole(&[])])],
        };
        assert!(assign(&cfg, &state)[0].is_empty());
    }

    /// `linkTypes` as in sriov-network-device-plugin: the same vendor selector splits a host's
    /// InfiniBand VFs from its Ethernet ones.
    #[test]
    fn link_types_split_infiniband_from_ethernet_vfs() {
        let host = HostBuilder::new()
            .connectx6_ib()
            .edit_pf("0000:af:00.0", |pf| pf.set_num_vfs(2))
            .cx6dx(EswitchMode::Legacy)
            .build()
            .unwrap();
        let state = scan(&host.sysfs()).unwrap();
        let by_link = |l: DeviceLinkType| Selector {
            vendors: vec![0x15b3],
            link_types: vec![l],
            ..Selector::default()
        };
        let cfg = Config {
            pools: vec![
                pool(
                    "ib",
                    VfDeviceType::Netdevice,
                    vec![by_link(DeviceLinkType::Infiniband)],
                ),
                pool(
                    "eth",
                    VfDeviceType::Netdevice,
                    vec![by_link(DeviceLinkType::Ether)],
                ),
            ],
        };
        let pools = assign(&cfg, &state);
        assert_eq!(ids(&pools[0]), ["0000:af:00.1", "0000:af:00.2"]);
        assert!(!pools[1].is_empty());
        assert!(pools[1].iter().all(|d| !d.id().starts_with("0000:af")));
    }

    #[test]
    fn health_follows_pf_link_and_driver() {
        let host = HostBuilder::new().e810().build().unwrap();
        let pf = host.device_dir("0000:17:00.0").join("net/ens2f0np0");
        let net = pool(
            "net",
            VfDeviceType::Netdevice,
            vec![pf_sel("0000:17:00.0", &[])],
        );
        let vfio = pool(
            "dpdk",
            VfDeviceType::VfioPci,
            vec![pf_sel("0000:17:00.0", &[])],
        );
        let health_of = |p: &PoolSpec, vf: &str| {
            let state = scan(&host.sysfs()).unwrap();
            health(p, state.get(&a(vf)).unwrap(), &state)
        };
        assert_eq!(health_of(&net, "0000:17:02.0"), Health::Healthy);
        // VF 1 is on vfio-pci
        assert_eq!(
            health_of(&net, "0000:17:02.1"),
            Health::Unhealthy("bound to vfio-pci, the pool wants the kernel network driver".into())
        );
        assert_eq!(health_of(&vfio, "0000:17:02.1"), Health::Healthy);
        assert_eq!(
            health_of(&vfio, "0000:17:02.0"),
            Health::Unhealthy("bound to iavf, the pool wants vfio-pci".into())
        );
        std::fs::write(pf.join("operstate"), "down\n").unwrap();
        assert_eq!(
            health_of(&net, "0000:17:02.0"),
            Health::Unhealthy("PF 0000:17:00.0 (ens2f0np0) link is down".into())
        );
        std::fs::write(pf.join("operstate"), "lowerlayerdown\n").unwrap();
        assert_eq!(
            health_of(&net, "0000:17:02.0"),
            Health::Unhealthy("PF 0000:17:00.0 (ens2f0np0) link is lowerlayerdown".into())
        );
        std::fs::write(pf.join("operstate"), "unknown\n").unwrap();
        assert!(health_of(&net, "0000:17:02.0").is_healthy());
        std::fs::write(pf.join("operstate"), "up\n").unwrap();
        std::fs::write(pf.join("flags"), "0x1002\n").unwrap();
        assert_eq!(
            health_of(&net, "0000:17:02.0"),
            Health::Unhealthy("PF 0000:17:00.0 (ens2f0np0) is administratively down".into())
        );
        std::fs::write(pf.join("flags"), "0x1003\n").unwrap();
        assert!(health_of(&net, "0000:17:02.0").is_healthy());
        host.remove_attr("0000:17:02.2", "driver").unwrap();
        assert_eq!(
            health_of(&net, "0000:17:02.2"),
            Health::Unhealthy("bound to no driver".into())
        );
        host.remove_attr("0000:17:02.1", "iommu_group").unwrap();
        assert_eq!(
            health_of(&vfio, "0000:17:02.1"),
            Health::Unhealthy("on vfio-pci but in no IOMMU group".into())
        );
    }

    /// A healthy igbvf VF at `s`, of no visible PF.
    fn dev(s: &str) -> PoolDevice {
        PoolDevice {
            addr: a(s),
            vf_of: None,
            numa_node: None,
            driver: Some("igbvf".into()),
            iommu_group: None,
            noiommu: false,
            rdma: Rdma::default(),
            health: Health::Healthy,
        }
    }

    #[test]
    fn devices_of_both_pools_held_by_dra_are_unhealthy() {
        let prepared = BTreeSet::from(["0000:01:10.2".to_owned()]);
        let mut p = pool("vf", VfDeviceType::Netdevice, Vec::new());
        let mut devs = vec![dev("0000:01:10.0"), dev("0000:01:10.2")];
        hold_for_dra(&p, &mut devs, &prepared);
        assert!(
            devs.iter().all(|d| d.health.is_healthy()),
            "a device-plugin pool"
        );
        p.allocation = crds::dra::Allocation::Both;
        hold_for_dra(&p, &mut devs, &prepared);
        assert!(devs[0].health.is_healthy());
        assert_eq!(
            devs[1].health,
            Health::Unhealthy("prepared for a DRA claim".into())
        );
    }

    #[test]
    fn vanished_devices_stay_unhealthy() {
        let before = vec![dev("0000:01:10.0"), dev("0000:01:10.2")];
        let now = vec![dev("0000:01:10.2"), dev("0000:01:10.4")];
        let merged = keep_vanished(&before, now);
        assert_eq!(
            ids(&merged),
            ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"]
        );
        assert_eq!(
            merged[0].health,
            Health::Unhealthy("vanished from the host".into())
        );
        assert!(merged[1].health.is_healthy() && merged[2].health.is_healthy());
    }
}
