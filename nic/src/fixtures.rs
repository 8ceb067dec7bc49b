//! Fake sysfs trees for tests (feature `test-util`).
//!
//! [`HostBuilder`] writes the layout the kernel exposes into a directory, with relative symbolic
//! links so a tree can be checked in and used from any checkout:
//!
//! ```text
//!   sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/   vendor device class modalias numa_node
//!       sriov_totalvfs sriov_numvfs ... driver -> ../../../../bus/pci/drivers/mlx5_core
//!       iommu_group -> ../../../../kernel/iommu_groups/40   virtfn0 -> ../0000:3b:00.2
//!       net/ens1f0np0/{address,mtu,operstate,speed,type,ifindex,phys_port_name,phys_switch_id}
//!   sys/bus/pci/devices/0000:3b:00.0 -> ../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0
//!   sys/bus/pci/drivers/<drv>/{bind,unbind,new_id,remove_id}   sys/bus/pci/drivers_probe
//!   sys/class/net/ens1f0np0 -> ../../devices/.../0000:3b:00.0/net/ens1f0np0
//!   sys/kernel/iommu_groups/40/devices/0000:3b:00.0 -> ../../../../devices/.../0000:3b:00.0
//!   usr/share/hwdata/pci.ids                           (only the entries the tree uses)
//! ```
//!
//! Presets: [`HostBuilder::cx6dx`] (NVIDIA ConnectX-6 Dx, legacy or switchdev with representors),
//! [`HostBuilder::e810`] (Intel E810 with one VF on vfio-pci), [`HostBuilder::igb_82576`] (Intel
//! 82576, the NIC QEMU emulates), [`HostBuilder::connectx6_ib`] (an InfiniBand port) and
//! [`HostBuilder::generated`] (N PFs x M VFs, for benchmarks).
//!
//! There is no kernel behind a fixture: writes only change files. [`FakeHost::settle`] plays the
//! kernel's part afterwards (VFs appear for a new `sriov_numvfs`, `bind`/`unbind` move the `driver`
//! link), and [`FakeClock`] lets tests of waiting code run without sleeping.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crds::inventory::EswitchMode;

use crate::devlink::{DevlinkDev, EswitchMode as DevlinkEswitchMode, FakeDevlink};
use crate::pci::PciAddress;
use crate::sriov::Clock;
use crate::sysfs::SysFs;

/// PCI class of an Ethernet controller.
pub const CLASS_ETHERNET: u32 = 0x02_00_00;
/// PCI class of an InfiniBand controller.
pub const CLASS_INFINIBAND: u32 = 0x02_07_00;
/// PCI class of an NVMe controller (not a NIC; discovery must skip it).
pub const CLASS_NVME: u32 = 0x01_08_02;

/// Names the fixture `pci.ids` knows (vendor, device, name).
const KNOWN_DEVICES: &[(u16, u16, &str)] = &[
    (0x15b3, 0x101b, "MT28908 Family [ConnectX-6]"),
    (
        0x15b3,
        0x101c,
        "MT28908 Family [ConnectX-6 Virtual Function]",
    ),
    (0x15b3, 0x101d, "MT2892 Family [ConnectX-6 Dx]"),
    (0x15b3, 0x101e, "ConnectX Family mlx5Gen Virtual Function"),
    (0x8086, 0x1593, "Ethernet Controller E810-C for SFP"),
    (0x8086, 0x1889, "Ethernet Adaptive Virtual Function"),
    (0x8086, 0x10c9, "82576 Gigabit Network Connection"),
    (0x8086, 0x10ca, "82576 Virtual Function"),
    (0x144d, 0xa808, "NVMe SSD Controller SM981/PM981/PM983"),
];
const KNOWN_VENDORS: &[(u16, &str)] = &[
    (0x15b3, "Mellanox Technologies"),
    (0x8086, "Intel Corporation"),
    (0x144d, "Samsung Electronics Co Ltd"),
];

/// One netdev of a fixture PCI function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetdevSpec {
    /// Interface name.
    pub name: String,
    /// `address`.
    pub mac: String,
    /// `mtu`.
    pub mtu: u32,
    /// `operstate`.
    pub operstate: String,
    /// `speed`; `None` leaves the file out (what an unreadable attribute looks like here).
    pub speed: Option<i64>,
    /// `type`: 1 Ethernet, 32 InfiniBand.
    pub link_type: u32,
    /// `phys_port_name`; `None` leaves the file out (drivers without devlink ports).
    pub phys_port_name: Option<String>,
    /// `phys_switch_id`; `None` leaves the file out.
    pub phys_switch_id: Option<String>,
    /// `compat/devlink/mode` (what OFED's mlx5 exposes); `None` leaves it out.
    pub compat_devlink_mode: Option<String>,
}

impl NetdevSpec {
    /// An Ethernet netdev that is up, MTU 1500, with no speed and no switchdev attributes.
    pub fn eth(name: impl Into<String>, mac: impl Into<String>) -> Self {
        NetdevSpec {
            name: name.into(),
            mac: mac.into(),
            mtu: 1500,
            operstate: "up".into(),
            speed: None,
            link_type: 1,
            phys_port_name: None,
            phys_switch_id: None,
            compat_devlink_mode: None,
        }
    }

    /// Sets `speed`.
    pub fn speed(mut self, mbps: i64) -> Self {
        self.speed = Some(mbps);
        self
    }

    /// Sets `phys_port_name` and `phys_switch_id`.
    pub fn port(mut self, port_name: impl Into<String>, switch_id: Option<&str>) -> Self {
        self.phys_port_name = Some(port_name.into());
        self.phys_switch_id = switch_id.map(str::to_owned);
        self
    }
}

/// One PCI function of a fixture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSpec {
    /// PCI address.
    pub address: PciAddress,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Subsystem vendor and device ids.
    pub subsystem: (u16, u16),
    /// PCI class (`0x020000`).
    pub class: u32,
    /// Bound driver, if any.
    pub driver: Option<String>,
    /// `numa_node` (`-1` = none).
    pub numa_node: i32,
    /// IOMMU group, if the host has an IOMMU.
    pub iommu_group: Option<u32>,
    /// Netdevs under `net/`; the first is the function's own, the rest are representors.
    pub netdevs: Vec<NetdevSpec>,
    /// RDMA device name under `infiniband/` (`mlx5_0`), if any.
    pub infiniband: Option<String>,
}

impl FunctionSpec {
    /// A function with the given ids, bound to `driver`, NUMA node 0, no netdev.
    pub fn new(address: PciAddress, vendor: u16, device: u16, class: u32, driver: &str) -> Self {
        FunctionSpec {
            address,
            vendor,
            device,
            subsystem: (vendor, 0),
            class,
            driver: Some(driver.to_owned()),
            numa_node: 0,
            iommu_group: None,
            netdevs: Vec::new(),
            infiniband: None,
        }
    }
}

/// How VFs of a PF look when they are created (by a preset or by [`FakeHost::settle`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfTemplate {
    /// VF device id (`sriov_vf_device`).
    pub device: u16,
    /// Driver the VFs bind to on creation.
    pub driver: Option<String>,
    /// VF netdev names are `<prefix><index>` (`ens1f0v3`).
    pub netdev_prefix: String,
    /// Representor names in switchdev are `<prefix><index>` (`ens1f0npf0vf3`).
    pub representor_prefix: String,
    /// First three bytes of the VF MACs.
    pub mac_prefix: [u8; 3],
    /// `speed` of the VF netdevs.
    pub speed: Option<i64>,
    /// `sriov_offset` and `sriov_stride`: VF `i` has routing id `PF + offset + i * stride`.
    pub offset: u16,
    /// See `offset`.
    pub stride: u16,
}

/// One SR-IOV PF with its VFs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfSpec {
    /// The PF itself; `netdevs[0]` is its netdev (the uplink in switchdev).
    pub function: FunctionSpec,
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// The enabled VFs, index = VF id.
    pub vfs: Vec<FunctionSpec>,
    /// Template for new VFs.
    pub vf_template: VfTemplate,
    /// Eswitch mode; in switchdev every VF gets a representor netdev under the PF's `net/`.
    pub eswitch: EswitchMode,
}

impl PfSpec {
    /// The PF's eswitch switch id (`phys_switch_id` of its first netdev).
    pub fn switch_id(&self) -> Option<&str> {
        self.function.netdevs.first()?.phys_switch_id.as_deref()
    }

    /// Replaces the VFs with `n` fresh ones from the template (and representors in switchdev).
    pub fn set_num_vfs(&mut self, n: u32) {
        self.vfs = (0..n).map(|i| self.make_vf(i)).collect();
        self.sync_representors();
    }

    /// Binds VF `vf` to `driver` (`vfio-pci` removes its netdev).
    pub fn bind_vf(&mut self, vf: usize, driver: &str) {
        let net = is_net_driver(driver);
        let name = format!("{}{vf}", self.vf_template.netdev_prefix);
        if let Some(f) = self.vfs.get_mut(vf) {
            f.driver = Some(driver.to_owned());
            if !net {
                f.netdevs.clear();
            } else if f.netdevs.is_empty() {
                f.netdevs.push(NetdevSpec::eth(
                    name,
                    mac(self.vf_template.mac_prefix, vf as u32),
                ));
            }
        }
    }

    fn vf_address(&self, i: u32) -> PciAddress {
        let t = &self.vf_template;
        let rid = u32::from(self.function.address.routing_id())
            + u32::from(t.offset)
            + i * u32::from(t.stride);
        PciAddress::from_routing_id(self.function.address.domain, (rid & 0xffff) as u16)
    }

    fn make_vf(&self, i: u32) -> FunctionSpec {
        let t = &self.vf_template;
        let mut f = FunctionSpec {
            address: self.vf_address(i),
            vendor: self.function.vendor,
            device: t.device,
            subsystem: self.function.subsystem,
            class: self.function.class,
            driver: t.driver.clone(),
            numa_node: self.function.numa_node,
            iommu_group: self.function.iommu_group.map(|g| g + 1 + i),
            netdevs: Vec::new(),
            infiniband: None,
        };
        if t.driver.as_deref().is_some_and(is_net_driver) {
            let mut nd = NetdevSpec::eth(format!("{}{i}", t.netdev_prefix), mac(t.mac_prefix, i));
            nd.speed = t.speed;
            if self.function.class == CLASS_INFINIBAND {
                nd.link_type = 32;
            }
            f.netdevs.push(nd);
        }
        f
    }

    fn sync_representors(&mut self) {
        self.function.netdevs.truncate(1);
        if self.eswitch != EswitchMode::Switchdev {
            return;
        }
        let switch_id = self.switch_id().map(str::to_owned);
        let pf = u32::from(self.function.address.function);
        for i in 0..self.vfs.len() as u32 {
            let mut rep = NetdevSpec::eth(
                format!("{}{i}", self.vf_template.representor_prefix),
                mac([0x5a, 0x2e, pf as u8], i),
            );
            rep.phys_port_name = Some(format!("pf{pf}vf{i}"));
            rep.phys_switch_id = switch_id.clone();
            self.function.netdevs.push(rep);
        }
    }
}

fn is_net_driver(driver: &str) -> bool {
    !matches!(
        driver,
        "vfio-pci" | "uio_pci_generic" | "igb_uio" | "pci-stub"
    )
}

fn mac(prefix: [u8; 3], n: u32) -> String {
    let b = n.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        prefix[0], prefix[1], prefix[2], b[1], b[2], b[3]
    )
}

fn addr(s: &str) -> PciAddress {
    // Preset addresses are literals; a typo is a bug in this file, caught by every test.
    s.parse().unwrap_or(PciAddress {
        domain: 0xffff,
        bus: 0xff,
        device: 0x1f,
        function: 7,
    })
}

/// Builds fake sysfs trees. Start from [`HostBuilder::new`] and add presets or specs.
#[derive(Clone, Debug, Default)]
pub struct HostBuilder {
    pfs: Vec<PfSpec>,
    functions: Vec<FunctionSpec>,
    extra_drivers: BTreeSet<String>,
    no_pci_ids: bool,
}

impl HostBuilder {
    /// An empty host (only `lo`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an SR-IOV PF.
    pub fn pf(mut self, pf: PfSpec) -> Self {
        self.pfs.push(pf);
        self
    }

    /// Adds a PCI function that is not an SR-IOV PF (a plain NIC, an NVMe drive, a lone VF).
    pub fn function(mut self, f: FunctionSpec) -> Self {
        self.functions.push(f);
        self
    }

    /// Creates `sys/bus/pci/drivers/<driver>` even if no device uses it (a loaded module).
    pub fn driver_loaded(mut self, driver: &str) -> Self {
        self.extra_drivers.insert(driver.to_owned());
        self
    }

    /// Leaves out `usr/share/hwdata/pci.ids`.
    pub fn without_pci_ids(mut self) -> Self {
        self.no_pci_ids = true;
        self
    }

    /// Changes the PF at `pf` (no-op when absent).
    pub fn edit_pf(mut self, pf: &str, edit: impl FnOnce(&mut PfSpec)) -> Self {
        let a = addr(pf);
        if let Some(p) = self.pfs.iter_mut().find(|p| p.function.address == a) {
            edit(p);
        }
        self
    }

    /// The PFs added so far.
    pub fn pfs(&self) -> &[PfSpec] {
        &self.pfs
    }

    /// NVIDIA ConnectX-6 Dx (15b3:101d, VFs 15b3:101e, mlx5_core), two ports `0000:3b:00.0/1`
    /// (`ens1f0np0`, `ens1f1np1`) sharing one switch id, NUMA node 0, 8 VFs possible per PF,
    /// 4 enabled on port 0 and 2 on port 1. In switchdev every VF has a representor
    /// (`ens1f0npf0vf<N>`) under the PF's `net/`; in legacy the PF still reports `p0` and its switch
    /// id, as mlx5 does, but there are no representors.
    pub fn cx6dx(self, mode: EswitchMode) -> Self {
        let switch_id = "b8cef6030058e0a4";
        let mut b = self;
        for (port, vfs, group) in [(0u8, 4u32, 40u32), (1, 2, 60)] {
            let pf_addr = PciAddress {
                domain: 0,
                bus: 0x3b,
                device: 0,
                function: port,
            };
            let mut f = FunctionSpec::new(pf_addr, 0x15b3, 0x101d, CLASS_ETHERNET, "mlx5_core");
            f.subsystem = (0x15b3, 0x0008);
            f.iommu_group = Some(group);
            f.infiniband = Some(format!("mlx5_{port}"));
            f.netdevs.push(
                NetdevSpec::eth(
                    format!("ens1f{port}np{port}"),
                    mac([0xb8, 0xce, 0xf6], 0x58_e0a4 + u32::from(port)),
                )
                .speed(100_000)
                .port(format!("p{port}"), Some(switch_id)),
            );
            let mut pf = PfSpec {
                function: f,
                total_vfs: 8,
                vfs: Vec::new(),
                vf_template: VfTemplate {
                    device: 0x101e,
                    driver: Some("mlx5_core".into()),
                    netdev_prefix: format!("ens1f{port}v"),
                    representor_prefix: format!("ens1f{port}npf{port}vf"),
                    mac_prefix: [0x02, 0x3b, port],
                    speed: Some(100_000),
                    // VFs of port 1 follow those of port 0 on the bus.
                    offset: if port == 0 { 2 } else { 9 },
                    stride: 1,
                },
                eswitch: mode,
            };
            pf.set_num_vfs(vfs);
            b = b.pf(pf);
        }
        b.driver_loaded("vfio-pci")
    }

    /// Intel E810-C (8086:1593, ice, `0000:17:00.0` `ens2f0np0`, NUMA node 1, 128 VFs possible,
    /// 4 enabled: 8086:1889 on iavf, VF 1 bound to vfio-pci with no netdev). ice has an eswitch
    /// (legacy here).
    pub fn e810(self) -> Self {
        let pf_addr = addr("0000:17:00.0");
        let mut f = FunctionSpec::new(pf_addr, 0x8086, 0x1593, CLASS_ETHERNET, "ice");
        f.subsystem = (0x8086, 0x0002);
        f.numa_node = 1;
        f.iommu_group = Some(20);
        f.netdevs.push(
            NetdevSpec::eth("ens2f0np0", "b4:96:91:a5:c8:e0")
                .speed(25_000)
                .port("p0", Some("b49691ffffa5c8e0")),
        );
        let mut pf = PfSpec {
            function: f,
            total_vfs: 128,
            vfs: Vec::new(),
            vf_template: VfTemplate {
                device: 0x1889,
                driver: Some("iavf".into()),
                netdev_prefix: "ens2f0v".into(),
                representor_prefix: "ens2f0npf0vf".into(),
                mac_prefix: [0x02, 0x17, 0x00],
                speed: Some(25_000),
                offset: 16,
                stride: 1,
            },
            eswitch: EswitchMode::Legacy,
        };
        pf.set_num_vfs(4);
        pf.bind_vf(1, "vfio-pci");
        self.pf(pf)
    }

    /// Intel 82576 (8086:10c9, igb, `0000:01:00.0` `enp1s0`), as QEMU's `igb` device emulates it:
    /// 7 VFs possible (8086:10ca, igbvf, offset 0x80, stride 2), 2 enabled, no NUMA node, no
    /// switchdev attributes, VF speed `-1`.
    pub fn igb_82576(self) -> Self {
        let pf_addr = addr("0000:01:00.0");
        let mut f = FunctionSpec::new(pf_addr, 0x8086, 0x10c9, CLASS_ETHERNET, "igb");
        f.subsystem = (0x8086, 0x0000);
        f.numa_node = -1;
        f.iommu_group = Some(8);
        f.netdevs
            .push(NetdevSpec::eth("enp1s0", "52:54:00:12:34:56").speed(1000));
        let mut pf = PfSpec {
            function: f,
            total_vfs: 7,
            vfs: Vec::new(),
            vf_template: VfTemplate {
                device: 0x10ca,
                driver: Some("igbvf".into()),
                netdev_prefix: "enp1s0v".into(),
                representor_prefix: String::new(),
                mac_prefix: [0x52, 0x54, 0x01],
                speed: Some(-1),
                offset: 0x80,
                stride: 2,
            },
            eswitch: EswitchMode::Legacy,
        };
        pf.set_num_vfs(2);
        self.pf(pf).driver_loaded("vfio-pci")
    }

    /// An InfiniBand port: ConnectX-6 (15b3:101b, class 0x0207, mlx5_core) at `0000:af:00.0`,
    /// IPoIB netdev `ibp175s0` (type 32, MTU 4092, 20-byte address), `infiniband/mlx5_2`,
    /// 8 VFs possible, none enabled.
    pub fn connectx6_ib(self) -> Self {
        let pf_addr = addr("0000:af:00.0");
        let mut f = FunctionSpec::new(pf_addr, 0x15b3, 0x101b, CLASS_INFINIBAND, "mlx5_core");
        f.subsystem = (0x15b3, 0x0006);
        f.numa_node = 1;
        f.iommu_group = Some(90);
        f.infiniband = Some("mlx5_2".into());
        let mut nd = NetdevSpec::eth(
            "ibp175s0",
            "00:00:10:87:fe:80:00:00:00:00:00:00:b8:ce:f6:03:00:5a:20:00",
        )
        .speed(200_000);
        nd.link_type = 32;
        nd.mtu = 4092;
        f.netdevs.push(nd);
        let pf = PfSpec {
            function: f,
            total_vfs: 8,
            vfs: Vec::new(),
            vf_template: VfTemplate {
                device: 0x101c,
                driver: Some("mlx5_core".into()),
                netdev_prefix: "ibp175s0v".into(),
                representor_prefix: String::new(),
                mac_prefix: [0x02, 0xaf, 0x00],
                speed: None,
                offset: 1,
                stride: 1,
            },
            eswitch: EswitchMode::Legacy,
        };
        self.pf(pf)
    }

    /// `pfs` ConnectX-6 Dx-like PFs (buses `c0`, `c2`, ...), each with `vfs` VFs enabled (and
    /// representors in switchdev), for benchmarks.
    pub fn generated(mut self, pfs: u8, vfs: u32, mode: EswitchMode) -> Self {
        for k in 0..pfs.min(32) {
            let bus = 0xc0u8.wrapping_add(k * 2);
            let pf_addr = PciAddress {
                domain: 0,
                bus,
                device: 0,
                function: 0,
            };
            let mut f = FunctionSpec::new(pf_addr, 0x15b3, 0x101d, CLASS_ETHERNET, "mlx5_core");
            f.iommu_group = Some(1000 + u32::from(k) * 1000);
            f.numa_node = i32::from(k % 2);
            f.netdevs.push(
                NetdevSpec::eth(format!("gen{k}np0"), mac([0xb8, 0xce, 0xf6], u32::from(k)))
                    .speed(100_000)
                    .port("p0", Some(&format!("b8cef60300{k:06x}"))),
            );
            let mut pf = PfSpec {
                function: f,
                total_vfs: vfs.max(1),
                vfs: Vec::new(),
                vf_template: VfTemplate {
                    device: 0x101e,
                    driver: Some("mlx5_core".into()),
                    netdev_prefix: format!("gen{k}v"),
                    representor_prefix: format!("gen{k}npf0vf"),
                    mac_prefix: [0x02, bus, 0],
                    speed: Some(100_000),
                    offset: 2,
                    stride: 1,
                },
                eswitch: mode,
            };
            pf.set_num_vfs(vfs);
            self.pfs.push(pf);
        }
        self
    }

    /// Writes the tree into a new temporary directory (removed when the [`FakeHost`] drops).
    pub fn build(self) -> io::Result<FakeHost> {
        self.build_with(tempfile::tempdir()?)
    }

    /// Like [`HostBuilder::build`], with the temporary directory under `parent` (e.g. `/dev/shm`:
    /// an in-memory filesystem, like sysfs, for benchmarks).
    pub fn build_under(self, parent: &Path) -> io::Result<FakeHost> {
        self.build_with(tempfile::tempdir_in(parent)?)
    }

    fn build_with(self, dir: tempfile::TempDir) -> io::Result<FakeHost> {
        let root = dir.path().to_owned();
        self.write_tree(&root)?;
        Ok(FakeHost {
            root,
            _dir: Some(dir),
            pfs: RefCell::new(self.pfs),
            refusing: RefCell::default(),
        })
    }

    /// Writes the tree into `root` (which must be empty or absent) and returns a handle that does
    /// not delete it.
    pub fn build_in(self, root: &Path) -> io::Result<FakeHost> {
        fs::create_dir_all(root)?;
        if fs::read_dir(root)?.next().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is not empty", root.display()),
            ));
        }
        self.write_tree(root)?;
        Ok(FakeHost {
            root: root.to_owned(),
            _dir: None,
            pfs: RefCell::new(self.pfs),
            refusing: RefCell::default(),
        })
    }

    fn write_tree(&self, root: &Path) -> io::Result<()> {
        let t = Tree { root };
        let mut ifindex = 2u32;
        write_loopback(&t)?;
        t.file("sys/bus/pci/drivers_probe", "")?;
        t.file("sys/bus/pci/drivers_autoprobe", "1\n")?;
        t.dir("sys/class/net")?;
        t.dir("sys/bus/pci/devices")?;
        let mut drivers: BTreeSet<String> = self.extra_drivers.clone();
        let mut ids: BTreeSet<(u16, u16)> = BTreeSet::new();
        let mut all: Vec<&FunctionSpec> = Vec::new();
        for pf in &self.pfs {
            all.push(&pf.function);
            all.extend(pf.vfs.iter());
        }
        all.extend(self.functions.iter());
        for f in &all {
            drivers.extend(f.driver.clone());
            ids.insert((f.vendor, f.device));
        }
        for pf in &self.pfs {
            ids.insert((pf.function.vendor, pf.vf_template.device));
        }
        for d in &drivers {
            write_driver_dir(&t, d)?;
        }
        for pf in &self.pfs {
            let parent = parent_dir(&pf.function.address);
            write_function(&t, &parent, &pf.function, &mut ifindex)?;
            write_sriov(&t, &parent, pf)?;
            for (i, vf) in pf.vfs.iter().enumerate() {
                write_function(&t, &parent, vf, &mut ifindex)?;
                link_vf(&t, &parent, &pf.function.address, i, &vf.address)?;
            }
        }
        for f in &self.functions {
            write_function(&t, &parent_dir(&f.address), f, &mut ifindex)?;
        }
        if !self.no_pci_ids {
            t.file("usr/share/hwdata/pci.ids", &pci_ids_text(&ids))?;
        }
        Ok(())
    }
}

fn pci_ids_text(ids: &BTreeSet<(u16, u16)>) -> String {
    let mut by_vendor: BTreeMap<u16, Vec<u16>> = BTreeMap::new();
    for (v, d) in ids {
        by_vendor.entry(*v).or_default().push(*d);
    }
    let mut out = String::from("# pci.ids excerpt for this fixture\n");
    for (v, devices) in by_vendor {
        let Some((_, vname)) = KNOWN_VENDORS.iter().find(|(id, _)| *id == v) else {
            continue;
        };
        out.push_str(&format!("{v:04x}  {vname}\n"));
        for d in devices {
            if let Some((_, _, dname)) = KNOWN_DEVICES.iter().find(|(a, b, _)| *a == v && *b == d) {
                out.push_str(&format!("\t{d:04x}  {dname}\n"));
            }
        }
    }
    out.push_str(
        "C 02  Network controller\n\t00  Ethernet controller\n\t07  Infiniband controller\n",
    );
    out
}

/// `sys/devices/pci0000:3a/0000:3a:00.0` for a function on bus 3b (behind a root port on the bus
/// below), `sys/devices/pci0000:00` for a function on bus 0.
fn parent_dir(a: &PciAddress) -> PathBuf {
    if a.bus == 0 {
        PathBuf::from(format!("sys/devices/pci{:04x}:00", a.domain))
    } else {
        let up = a.bus - 1;
        PathBuf::from(format!(
            "sys/devices/pci{d:04x}:{up:02x}/{d:04x}:{up:02x}:00.0",
            d = a.domain
        ))
    }
}

/// Writes files and relative links under a root; all paths are relative to the root.
struct Tree<'a> {
    root: &'a Path,
}

impl Tree<'_> {
    fn dir(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        fs::create_dir_all(self.root.join(rel))
    }

    fn file(&self, rel: impl AsRef<Path>, content: &str) -> io::Result<()> {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(p, content)
    }

    /// A link at `at` pointing to `to`, stored relative to `at`'s directory.
    fn link(&self, at: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
        let at = at.as_ref();
        let from_dir = at.parent().unwrap_or(Path::new(""));
        let p = self.root.join(at);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        if fs::symlink_metadata(&p).is_ok() {
            fs::remove_file(&p)?;
        }
        symlink(relative(from_dir, to.as_ref()), p)
    }

    fn remove(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        let p = self.root.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(p),
            Ok(_) => fs::remove_file(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The path from directory `from` to `to` (both relative to the same root, without `..`).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<Component<'_>> = from.components().collect();
    let t: Vec<Component<'_>> = to.components().collect();
    // Like the kernel's links, always end in the target's own name (`device -> ../../../<bdf>`
    // rather than `../..` when the target is an ancestor).
    let common = f
        .iter()
        .zip(&t)
        .take_while(|(a, b)| a == b)
        .count()
        .min(t.len().saturating_sub(1));
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

fn write_loopback(t: &Tree<'_>) -> io::Result<()> {
    let d = "sys/devices/virtual/net/lo";
    t.file(format!("{d}/address"), "00:00:00:00:00:00\n")?;
    t.file(format!("{d}/mtu"), "65536\n")?;
    t.file(format!("{d}/operstate"), "unknown\n")?;
    t.file(format!("{d}/type"), "772\n")?;
    t.file(format!("{d}/ifindex"), "1\n")?;
    t.link("sys/class/net/lo", d)
}

fn write_driver_dir(t: &Tree<'_>, driver: &str) -> io::Result<()> {
    let d = format!("sys/bus/pci/drivers/{driver}");
    for f in ["bind", "unbind", "new_id", "remove_id"] {
        t.file(format!("{d}/{f}"), "")?;
    }
    Ok(())
}

fn write_function(
    t: &Tree<'_>,
    parent: &Path,
    f: &FunctionSpec,
    ifindex: &mut u32,
) -> io::Result<()> {
    let bdf = f.address.to_string();
    let dev = parent.join(&bdf);
    t.file(dev.join("vendor"), &format!("0x{:04x}\n", f.vendor))?;
    t.file(dev.join("device"), &format!("0x{:04x}\n", f.device))?;
    t.file(
        dev.join("subsystem_vendor"),
        &format!("0x{:04x}\n", f.subsystem.0),
    )?;
    t.file(
        dev.join("subsystem_device"),
        &format!("0x{:04x}\n", f.subsystem.1),
    )?;
    t.file(dev.join("class"), &format!("0x{:06x}\n", f.class))?;
    t.file(dev.join("revision"), "0x00\n")?;
    t.file(
        dev.join("modalias"),
        &format!(
            "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}\n",
            f.vendor,
            f.device,
            f.subsystem.0,
            f.subsystem.1,
            f.class >> 16,
            (f.class >> 8) & 0xff,
            f.class & 0xff
        ),
    )?;
    t.file(dev.join("numa_node"), &format!("{}\n", f.numa_node))?;
    t.file(dev.join("driver_override"), "(null)\n")?;
    t.link(dev.join("subsystem"), "sys/bus/pci")?;
    t.link(format!("sys/bus/pci/devices/{bdf}"), &dev)?;
    if let Some(drv) = &f.driver {
        bind_links(t, &dev, &bdf, drv)?;
    }
    if let Some(g) = f.iommu_group {
        let gdir = format!("sys/kernel/iommu_groups/{g}");
        t.file(format!("{gdir}/type"), "DMA\n")?;
        t.link(format!("{gdir}/devices/{bdf}"), &dev)?;
        t.link(dev.join("iommu_group"), gdir)?;
    }
    if let Some(ib) = &f.infiniband {
        t.file(dev.join("infiniband").join(ib).join("node_type"), "1: CA\n")?;
    }
    for nd in &f.netdevs {
        write_netdev(t, &dev, nd, *ifindex)?;
        *ifindex += 1;
    }
    Ok(())
}

fn bind_links(t: &Tree<'_>, dev: &Path, bdf: &str, driver: &str) -> io::Result<()> {
    let ddir = format!("sys/bus/pci/drivers/{driver}");
    write_driver_dir(t, driver)?;
    t.link(dev.join("driver"), &ddir)?;
    t.link(format!("{ddir}/{bdf}"), dev)
}

fn write_netdev(t: &Tree<'_>, dev: &Path, nd: &NetdevSpec, ifindex: u32) -> io::Result<()> {
    let n = dev.join("net").join(&nd.name);
    write_netdev_files(t, &n, nd, ifindex)?;
    t.link(n.join("device"), dev)?;
    t.link(format!("sys/class/net/{}", nd.name), n)
}

fn write_netdev_files(t: &Tree<'_>, n: &Path, nd: &NetdevSpec, ifindex: u32) -> io::Result<()> {
    t.file(n.join("address"), &format!("{}\n", nd.mac))?;
    t.file(n.join("mtu"), &format!("{}\n", nd.mtu))?;
    t.file(n.join("operstate"), &format!("{}\n", nd.operstate))?;
    t.file(n.join("type"), &format!("{}\n", nd.link_type))?;
    t.file(n.join("ifindex"), &format!("{ifindex}\n"))?;
    if let Some(s) = nd.speed {
        t.file(n.join("speed"), &format!("{s}\n"))?;
    }
    if let Some(p) = &nd.phys_port_name {
        t.file(n.join("phys_port_name"), &format!("{p}\n"))?;
    }
    if let Some(s) = &nd.phys_switch_id {
        t.file(n.join("phys_switch_id"), &format!("{s}\n"))?;
    }
    if let Some(m) = &nd.compat_devlink_mode {
        t.file(n.join("compat/devlink/mode"), &format!("{m}\n"))?;
    }
    Ok(())
}

fn write_sriov(t: &Tree<'_>, parent: &Path, pf: &PfSpec) -> io::Result<()> {
    let dev = parent.join(pf.function.address.to_string());
    let v = &pf.vf_template;
    t.file(dev.join("sriov_totalvfs"), &format!("{}\n", pf.total_vfs))?;
    t.file(dev.join("sriov_numvfs"), &format!("{}\n", pf.vfs.len()))?;
    t.file(dev.join("sriov_offset"), &format!("{}\n", v.offset))?;
    t.file(dev.join("sriov_stride"), &format!("{}\n", v.stride))?;
    t.file(dev.join("sriov_vf_device"), &format!("{:x}\n", v.device))?;
    t.file(dev.join("sriov_drivers_autoprobe"), "1\n")
}

fn link_vf(
    t: &Tree<'_>,
    parent: &Path,
    pf: &PciAddress,
    index: usize,
    vf: &PciAddress,
) -> io::Result<()> {
    t.link(
        parent.join(pf.to_string()).join(format!("virtfn{index}")),
        parent.join(vf.to_string()),
    )?;
    t.link(
        parent.join(vf.to_string()).join("physfn"),
        parent.join(pf.to_string()),
    )
}

/// A fixture tree on disk.
#[derive(Debug)]
pub struct FakeHost {
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pfs: RefCell<Vec<PfSpec>>,
    /// Drivers that never bind anything in [`FakeHost::settle`].
    refusing: RefCell<BTreeSet<String>>,
}

impl FakeHost {
    /// The root directory (pass it as `--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A [`SysFs`] on this tree.
    pub fn sysfs(&self) -> SysFs {
        SysFs::new(&self.root)
    }

    /// `rel` under the root.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.sysfs().path(rel)
    }

    /// `sys/bus/pci/devices/<bdf>` (a link to the device directory).
    pub fn device_dir(&self, bdf: &str) -> PathBuf {
        self.sysfs().pci_devices_dir().join(bdf)
    }

    fn device_rel(&self, bdf: &str) -> io::Result<PathBuf> {
        let link = self.device_dir(bdf);
        let target = fs::read_link(&link)?;
        // the bus link is `../../../devices/...`: resolve it lexically against sys/bus/pci/devices
        let mut out = PathBuf::from("sys/bus/pci/devices");
        for c in target.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(n) => out.push(n),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Overwrites attribute `attr` of PCI function `bdf` with raw text (e.g. `sriov_numvfs` = `"eight"`).
    pub fn set_attr(&self, bdf: &str, attr: &str, content: &str) -> io::Result<()> {
        fs::write(self.device_dir(bdf).join(attr), content)
    }

    /// Removes attribute (file, link or directory) `attr` of PCI function `bdf`.
    pub fn remove_attr(&self, bdf: &str, attr: &str) -> io::Result<()> {
        let rel = self.device_rel(bdf)?.join(attr);
        Tree { root: &self.root }.remove(rel)
    }

    /// Removes the `net/` directory of `bdf` and the `/sys/class/net` links into it.
    pub fn remove_net_dir(&self, bdf: &str) -> io::Result<()> {
        let net = self.device_dir(bdf).join("net");
        if let Ok(entries) = fs::read_dir(&net) {
            for e in entries.flatten() {
                let link = self.sysfs().class_net_dir().join(e.file_name());
                if fs::symlink_metadata(&link).is_ok() {
                    fs::remove_file(link)?;
                }
            }
        }
        self.remove_attr(bdf, "net")
    }

    /// Adds a netdev that belongs to no PCI function (`sys/devices/virtual/net/<name>`), e.g. a
    /// representor some driver parents elsewhere.
    pub fn add_virtual_netdev(&self, nd: &NetdevSpec) -> io::Result<()> {
        let t = Tree { root: &self.root };
        let n = PathBuf::from("sys/devices/virtual/net").join(&nd.name);
        write_netdev_files(&t, &n, nd, self.next_ifindex())?;
        t.link(format!("sys/class/net/{}", nd.name), n)
    }

    /// Makes `virtfn<index>` of PF `pf` dangle: the VF's directory and its bus entry disappear
    /// but the PF's link stays (what a racing VF removal looks like).
    pub fn dangle_virtfn(&self, pf: &str, index: u32) -> io::Result<()> {
        let link = self.device_dir(pf).join(format!("virtfn{index}"));
        let vf = fs::read_link(&link)?;
        let vf_bdf = vf
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = self.device_rel(&vf_bdf)?;
        let t = Tree { root: &self.root };
        t.remove(&rel)?;
        t.remove(format!("sys/bus/pci/devices/{vf_bdf}"))
    }

    /// Makes every write to `drivers/<driver>/bind` fail, as the kernel fails it (`ENODEV`) for
    /// a device the driver does not match (here `bind` becomes a directory: `EISDIR`).
    pub fn refuse_bind_writes(&self, driver: &str) -> io::Result<()> {
        let bind = self.sysfs().pci_drivers_dir().join(driver).join("bind");
        fs::remove_file(&bind)?;
        fs::create_dir(&bind)
    }

    /// Makes `driver` accept bind writes but never bind in [`FakeHost::settle`] (a probe that
    /// fails after the write returned, as with asynchronous probing).
    pub fn never_binds(&self, driver: &str) {
        self.refusing.borrow_mut().insert(driver.to_owned());
    }

    /// A [`FakeDevlink`] that matches the tree: one device `pci/<PF>` per SR-IOV PF in its
    /// eswitch mode and, in switchdev, the uplink port (index 65535, PF number = PCI function)
    /// and one `pcivf` port per VF (index VF + 1) with its representor netdev.
    pub fn devlink(&self) -> FakeDevlink {
        let fake = FakeDevlink::new();
        for pf in self.pfs.borrow().iter() {
            let dev = DevlinkDev::pci(pf.function.address);
            let mode = match pf.eswitch {
                EswitchMode::Legacy => DevlinkEswitchMode::Legacy,
                EswitchMode::Switchdev => DevlinkEswitchMode::Switchdev,
            };
            fake.add_dev(&dev, mode);
            if pf.eswitch != EswitchMode::Switchdev {
                continue;
            }
            let pfnum = u16::from(pf.function.address.function);
            if let Some(up) = pf.function.netdevs.first() {
                fake.add_uplink(&dev, 65535, pfnum, &up.name);
            }
            for (vf, rep) in pf.function.netdevs.iter().skip(1).enumerate() {
                let vf = vf as u16;
                fake.add_vf_port(&dev, u32::from(vf) + 1, pfnum, vf, Some(&rep.name));
            }
        }
        fake
    }

    /// Plays the kernel's part after writes to the tree:
    /// - a PF whose `sriov_numvfs` differs from its number of `virtfn` links gets exactly that many
    ///   fresh VFs (with representors in switchdev); unparseable values are left alone;
    /// - an address written to `drivers/<drv>/unbind` loses its `driver` link (and its netdevs);
    /// - an address written to `drivers/<drv>/bind` or to `drivers_probe` is bound (to
    ///   `driver_override` if set, else to the VF template's driver for `drivers_probe`).
    ///
    /// The request files are emptied afterwards.
    pub fn settle(&self) -> io::Result<()> {
        let t = Tree { root: &self.root };
        let sysfs = self.sysfs();
        let mut pfs = self.pfs.borrow_mut();
        let mut ifindex = self.next_ifindex();
        for pf in pfs.iter_mut() {
            let bdf = pf.function.address.to_string();
            let dev = self.device_dir(&bdf);
            let Ok(want) = sysfs.read_number::<u32>(&dev.join("sriov_numvfs")) else {
                continue;
            };
            let have = fs::read_dir(&dev)?
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("virtfn"))
                .count();
            if have == want as usize && pf.vfs.len() == have {
                continue;
            }
            let parent = parent_dir(&pf.function.address);
            self.remove_vfs(&t, &parent, pf)?;
            pf.set_num_vfs(want);
            for nd in pf.function.netdevs.iter().skip(1) {
                write_netdev(&t, &parent.join(&bdf), nd, ifindex)?;
                ifindex += 1;
            }
            for (i, vf) in pf.vfs.iter().enumerate() {
                write_function(&t, &parent, vf, &mut ifindex)?;
                link_vf(&t, &parent, &pf.function.address, i, &vf.address)?;
            }
        }
        drop(pfs);
        self.settle_drivers(&t, ifindex)
    }

    fn next_ifindex(&self) -> u32 {
        let sysfs = self.sysfs();
        let mut max = 1;
        for name in sysfs.list_dir(&sysfs.class_net_dir()).unwrap_or_default() {
            let p = sysfs.netdev_dir(&name).join("ifindex");
            if let Ok(i) = sysfs.read_number::<u32>(&p) {
                max = max.max(i);
            }
        }
        max + 1
    }

    fn remove_vfs(&self, t: &Tree<'_>, parent: &Path, pf: &PfSpec) -> io::Result<()> {
        let pf_dir = parent.join(pf.function.address.to_string());
        for nd in pf.function.netdevs.iter().skip(1) {
            t.remove(pf_dir.join("net").join(&nd.name))?;
            t.remove(format!("sys/class/net/{}", nd.name))?;
        }
        for (i, vf) in pf.vfs.iter().enumerate() {
            let bdf = vf.address.to_string();
            for nd in &vf.netdevs {
                t.remove(format!("sys/class/net/{}", nd.name))?;
            }
            if let Some(d) = &vf.driver {
                t.remove(format!("sys/bus/pci/drivers/{d}/{bdf}"))?;
            }
            if let Some(g) = vf.iommu_group {
                t.remove(format!("sys/kernel/iommu_groups/{g}"))?;
            }
            t.remove(parent.join(&bdf))?;
            t.remove(format!("sys/bus/pci/devices/{bdf}"))?;
            t.remove(pf_dir.join(format!("virtfn{i}")))?;
        }
        // stale links left by earlier breakage
        for e in fs::read_dir(self.root.join(&pf_dir))?.flatten() {
            if e.file_name().to_string_lossy().starts_with("virtfn") {
                fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }

    fn settle_drivers(&self, t: &Tree<'_>, mut ifindex: u32) -> io::Result<()> {
        let sysfs = self.sysfs();
        let drivers_dir = sysfs.pci_drivers_dir();
        let mut binds: Vec<(String, Option<String>)> = Vec::new();
        for drv in sysfs.list_dir(&drivers_dir).unwrap_or_default() {
            let ddir = drivers_dir.join(&drv);
            let unbind = sysfs.read_string(&ddir.join("unbind")).unwrap_or_default();
            if !unbind.is_empty() {
                fs::write(ddir.join("unbind"), "")?;
                self.unbind(t, &unbind, &drv)?;
            }
            let bind = sysfs.read_string(&ddir.join("bind")).unwrap_or_default();
            if !bind.is_empty() {
                fs::write(ddir.join("bind"), "")?;
                binds.push((bind, Some(drv)));
            }
        }
        let probe = sysfs
            .read_string(&sysfs.pci_drivers_probe())
            .unwrap_or_default();
        if !probe.is_empty() {
            fs::write(sysfs.pci_drivers_probe(), "")?;
            binds.push((probe, None));
        }
        for (bdf, drv) in binds {
            let over = sysfs
                .read_string(&self.device_dir(&bdf).join("driver_override"))
                .unwrap_or_default();
            let over = (!over.is_empty() && over != "(null)").then_some(over);
            let drv = match (drv, over) {
                // the kernel refuses a bind that does not match driver_override
                (Some(d), Some(o)) if d != o => continue,
                (Some(d), _) => d,
                (None, Some(o)) => o,
                (None, None) => match self.default_driver(&bdf) {
                    Some(d) => d,
                    None => continue,
                },
            };
            if !drivers_dir.join(&drv).exists() || self.refusing.borrow().contains(&drv) {
                continue;
            }
            self.bind(t, &bdf, &drv, &mut ifindex)?;
        }
        Ok(())
    }

    fn default_driver(&self, bdf: &str) -> Option<String> {
        let pfs = self.pfs.borrow();
        pfs.iter().find_map(|pf| {
            if pf.function.address.to_string() == bdf {
                return pf.function.driver.clone();
            }
            pf.vfs
                .iter()
                .any(|v| v.address.to_string() == bdf)
                .then(|| pf.vf_template.driver.clone())
                .flatten()
        })
    }

    fn unbind(&self, t: &Tree<'_>, bdf: &str, drv: &str) -> io::Result<()> {
        let rel = self.device_rel(bdf)?;
        let current = self
            .sysfs()
            .read_link_name(&self.root.join(rel.join("driver")));
        if current.ok().as_deref() != Some(drv) {
            return Ok(());
        }
        t.remove(rel.join("driver"))?;
        t.remove(format!("sys/bus/pci/drivers/{drv}/{bdf}"))?;
        if let Ok(entries) = fs::read_dir(self.root.join(rel.join("net"))) {
            for e in entries.flatten() {
                t.remove(format!("sys/class/net/{}", e.file_name().to_string_lossy()))?;
            }
        }
        t.remove(rel.join("net"))
    }

    fn bind(&self, t: &Tree<'_>, bdf: &str, drv: &str, ifindex: &mut u32) -> io::Result<()> {
        let rel = self.device_rel(bdf)?;
        if fs::symlink_metadata(self.root.join(rel.join("driver"))).is_ok() {
            return Ok(()); // already bound: the kernel answers EBUSY
        }
        bind_links(t, &rel, bdf, drv)?;
        if !is_net_driver(drv) {
            return Ok(());
        }
        let pfs = self.pfs.borrow();
        for pf in pfs.iter() {
            if let Some(i) = pf.vfs.iter().position(|v| v.address.to_string() == bdf) {
                let tpl = &pf.vf_template;
                let mut nd = NetdevSpec::eth(
                    format!("{}{i}", tpl.netdev_prefix),
                    mac(tpl.mac_prefix, i as u32),
                );
                nd.speed = tpl.speed;
                write_netdev(t, &rel, &nd, *ifindex)?;
                *ifindex += 1;
            }
        }
        Ok(())
    }
}

/// A [`Clock`] for tests: `sleep` advances a virtual time instantly and calls a hook with the
/// number of sleeps so far (e.g. to call [`FakeHost::settle`] after the second poll).
pub struct FakeClock<'a> {
    start: Instant,
    elapsed: Cell<Duration>,
    sleeps: Cell<u32>,
    on_sleep: Box<dyn Fn(u32) + 'a>,
}

impl<'a> FakeClock<'a> {
    /// A clock whose `sleep` calls `on_sleep(n)` for the n-th sleep (starting at 1).
    pub fn new(on_sleep: impl Fn(u32) + 'a) -> Self {
        FakeClock {
            start: Instant::now(),
            elapsed: Cell::new(Duration::ZERO),
            sleeps: Cell::new(0),
            on_sleep: Box::new(on_sleep),
        }
    }

    /// Number of sleeps so far.
    pub fn sleeps(&self) -> u32 {
        self.sleeps.get()
    }

    /// Virtual time slept so far.
    pub fn elapsed(&self) -> Duration {
        self.elapsed.get()
    }
}

impl Clock for FakeClock<'_> {
    fn now(&self) -> Instant {
        self.start + self.elapsed.get()
    }

    fn sleep(&self, d: Duration) {
        self.elapsed.set(self.elapsed.get() + d);
        self.sleeps.set(self.sleeps.get() + 1);
        (self.on_sleep)(self.sleeps.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(
                Path::new("sys/bus/pci/devices"),
                Path::new("sys/devices/pci0000:3a/x")
            ),
            PathBuf::from("../../../devices/pci0000:3a/x")
        );
        assert_eq!(
            relative(Path::new("a/b"), Path::new("a/c")),
            PathBuf::from("../c")
        );
        assert_eq!(
            relative(
                Path::new("d/0000:3b:00.0/net/ens1f0"),
                Path::new("d/0000:3b:00.0")
            ),
            PathBuf::from("../../../0000:3b:00.0")
        );
    }

    #[test]
    fn vf_addresses_follow_offset_and_stride() {
        let b = HostBuilder::new().igb_82576();
        let pf = &b.pfs()[0];
        let vfs: Vec<String> = pf.vfs.iter().map(|v| v.address.to_string()).collect();
        assert_eq!(vfs, ["0000:01:10.0", "0000:01:10.2"]);
        let b = HostBuilder::new().cx6dx(EswitchMode::Legacy);
        assert_eq!(b.pfs()[1].vfs[0].address.to_string(), "0000:3b:01.2");
    }

    #[test]
    fn tree_has_the_kernel_layout() {
        let host = HostBuilder::new()
            .cx6dx(EswitchMode::Switchdev)
            .build()
            .unwrap();
        let s = host.sysfs();
        let pf = host.device_dir("0000:3b:00.0");
        assert_eq!(s.read_string(&pf.join("class")).unwrap(), "0x020000");
        assert_eq!(s.read_link_name(&pf.join("driver")).unwrap(), "mlx5_core");
        assert_eq!(
            s.read_link_name(&pf.join("virtfn1")).unwrap(),
            "0000:3b:00.3"
        );
        assert_eq!(
            s.read_link_name(&host.device_dir("0000:3b:00.3").join("physfn"))
                .unwrap(),
            "0000:3b:00.0"
        );
        // class/net links resolve to the device's net/ dir, and device links back
        let rep = s.netdev_dir("ens1f0npf0vf2");
        assert_eq!(
            s.read_string(&rep.join("phys_port_name")).unwrap(),
            "pf0vf2"
        );
        assert_eq!(
            s.netdev_pci_address("ens1f0npf0vf2").unwrap().to_string(),
            "0000:3b:00.0"
        );
        assert_eq!(
            s.netdev_pci_address("ens1f0v3").unwrap().to_string(),
            "0000:3b:00.5"
        );
        // every link is relative
        let mut stack = vec![host.root().to_owned()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let m = fs::symlink_metadata(e.path()).unwrap();
                if m.file_type().is_symlink() {
                    let t = fs::read_link(e.path()).unwrap();
                    assert!(t.is_relative(), "{}", e.path().display());
                    assert!(e.path().exists(), "dangling {}", e.path().display());
                } else if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }

    #[test]
    fn settle_creates_and_removes_vfs() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let s = host.sysfs();
        let pf = host.device_dir("0000:01:00.0");
        fs::write(pf.join("sriov_numvfs"), "5").unwrap();
        host.settle().unwrap();
        assert!(pf.join("virtfn4").exists());
        assert_eq!(
            s.read_link_name(&pf.join("virtfn4")).unwrap(),
            "0000:01:11.0"
        );
        assert!(s.netdev_dir("enp1s0v4").exists());
        fs::write(pf.join("sriov_numvfs"), "0").unwrap();
        host.settle().unwrap();
        assert!(!pf.join("virtfn0").exists());
        assert!(!s.netdev_dir("enp1s0v0").exists());
        assert!(!host.device_dir("0000:01:10.0").exists());
    }

    #[test]
    fn settle_moves_drivers() {
        let host = HostBuilder::new().igb_82576().build().unwrap();
        let s = host.sysfs();
        let vf = host.device_dir("0000:01:10.2");
        fs::write(vf.join("driver_override"), "vfio-pci").unwrap();
        fs::write(s.pci_drivers_dir().join("igbvf/unbind"), "0000:01:10.2").unwrap();
        fs::write(s.pci_drivers_dir().join("vfio-pci/bind"), "0000:01:10.2").unwrap();
        host.settle().unwrap();
        assert_eq!(s.read_link_name(&vf.join("driver")).unwrap(), "vfio-pci");
        assert!(!vf.join("net").exists());
        assert!(!s.netdev_dir("enp1s0v1").exists());
        fs::write(vf.join("driver_override"), "\n").unwrap();
        fs::write(s.pci_drivers_dir().join("vfio-pci/unbind"), "0000:01:10.2").unwrap();
        fs::write(s.pci_drivers_probe(), "0000:01:10.2").unwrap();
        host.settle().unwrap();
        assert_eq!(s.read_link_name(&vf.join("driver")).unwrap(), "igbvf");
        assert!(s.netdev_dir("enp1s0v1").exists());
    }

    #[test]
    fn fake_clock_advances_without_sleeping() {
        let hits = Cell::new(0);
        let c = FakeClock::new(|n| hits.set(n));
        let t0 = c.now();
        c.sleep(Duration::from_secs(30));
        c.sleep(Duration::from_secs(30));
        assert_eq!(c.now() - t0, Duration::from_secs(60));
        assert_eq!(hits.get(), 2);
        assert_eq!(c.sleeps(), 2);
    }
}
