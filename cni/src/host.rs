//! The seam between the plugin's logic and the machine: every link, address, route and VF
//! operation a mode needs, named by namespace. [`crate::kernel::KernelHost`] carries them out on
//! the kernel (through `nic`); [`crate::fake::FakeHost`] keeps them in memory for the tests of the
//! journal, fault injection and concurrency.

use std::path::{Path, PathBuf};

use crds::link::{IpvlanMode, MacvlanMode};
use nic::{
    netlink::{MacAddr, VfInfo, VfSetting},
    pci::PciAddress,
};

use crate::{
    cidr::Cidr,
    error::{CniError, code},
    result::Route,
};

/// Where an operation happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ns<'a> {
    /// The plugin's own (host) network namespace.
    Host,
    /// A pod's namespace, by path (`CNI_NETNS`).
    Pod(&'a Path),
}

impl std::fmt::Display for Ns<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Host => f.write_str("the host"),
            Self::Pod(p) => write!(f, "netns {}", p.display()),
        }
    }
}

/// Why a host operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct HostError {
    /// What failed, naming the device and namespace.
    pub msg: String,
    /// The kind of failure, for the callers that tolerate some.
    pub kind: HostErrorKind,
}

/// Kinds of [`HostError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostErrorKind {
    /// The link does not exist.
    NoLink,
    /// The network namespace is gone (or never was).
    NoNetns,
    /// A link of that name exists already.
    Exists,
    /// The kernel lacks the feature (no ipvlan module, ...).
    Unsupported,
    /// Anything else.
    Other,
}

impl HostError {
    /// A failure of kind `kind`.
    pub fn new(kind: HostErrorKind, msg: impl Into<String>) -> Self {
        Self {
            msg: msg.into(),
            kind,
        }
    }

    /// An "other" failure.
    pub fn other(msg: impl Into<String>) -> Self {
        Self::new(HostErrorKind::Other, msg)
    }
}

impl From<HostError> for CniError {
    fn from(e: HostError) -> Self {
        let c = match e.kind {
            HostErrorKind::NoNetns => code::INVALID_NETNS,
            _ => code::HOST,
        };
        CniError::new(c, e.msg)
    }
}

/// Result of host operations.
pub type HostResult<T> = Result<T, HostError>;

/// A link as the plugin needs to see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// Name.
    pub name: String,
    /// Index.
    pub index: u32,
    /// MAC.
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: u32,
    /// Admin up.
    pub up: bool,
    /// `IFLA_INFO_KIND` (`macvlan`, `ipvlan`, `veth`, ...).
    pub kind: Option<String>,
}

/// A VF as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfDevice {
    /// VF PCI address.
    pub bdf: PciAddress,
    /// PF netdev name.
    pub pf: String,
    /// PF PCI address (the target of `physfn`), when sysfs says.
    pub pf_bdf: Option<PciAddress>,
    /// VF index on the PF.
    pub index: u32,
    /// The VF's netdev in the host, if it has one there now.
    pub netdev: Option<String>,
    /// Bound driver (`igbvf`, `mlx5_core`, `vfio-pci`, ...).
    pub driver: Option<String>,
}

impl VfDevice {
    /// Bound to a userspace driver: no netdev, PF-side settings only.
    pub fn is_userspace(&self) -> bool {
        userspace_driver(self.driver.as_deref())
    }
}

/// A userspace (DPDK, VM) driver: the function has no netdev.
fn userspace_driver(driver: Option<&str>) -> bool {
    matches!(driver, Some("vfio-pci" | "uio_pci_generic" | "igb_uio"))
}

/// A PCI network function that is no VF: a whole PF handed to a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfDevice {
    /// PCI address.
    pub bdf: PciAddress,
    /// Its netdev in the host, if it has one there now.
    pub netdev: Option<String>,
    /// Bound driver (`igb`, `mlx5_core`, `vfio-pci`, ...).
    pub driver: Option<String>,
    /// VFs enabled on it (`sriov_numvfs`; 0 when it has no SR-IOV).
    pub num_vfs: u32,
}

impl PfDevice {
    /// Bound to a userspace driver: no netdev.
    pub fn is_userspace(&self) -> bool {
        userspace_driver(self.driver.as_deref())
    }
}

/// What to create for macvlan and ipvlan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VirtKind {
    /// macvlan, with the allowed source MACs of mode `source`.
    Macvlan(MacvlanMode, Vec<MacAddr>),
    /// ipvlan.
    Ipvlan(IpvlanMode),
}

/// What to set on a pod interface once it is in the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodIfConfig {
    /// MTU to set.
    pub mtu: Option<u32>,
    /// MAC to set.
    pub mac: Option<MacAddr>,
    /// Addresses (added before the link goes up, so the kernel's arp_notify / ndisc_notify
    /// announce them: the gratuitous ARP and unsolicited NA).
    pub addresses: Vec<Cidr>,
    /// Routes (added after up).
    pub routes: Vec<Route>,
    /// The addresses' gateways: the next hop of a route that names none.
    pub gateways: Vec<std::net::IpAddr>,
}

/// The operations of the modes.
pub trait Host {
    /// The VF at `bdf` (sysfs: `physfn/net`, `virtfnN`, `net/`, `driver`).
    fn vf_device(&self, bdf: &PciAddress) -> HostResult<VfDevice>;

    /// The function at `bdf` when it is no VF (it has no `physfn`); `None` for a VF.
    fn whole_pf(&self, bdf: &PciAddress) -> HostResult<Option<PfDevice>>;

    /// Unbinds the VF at `bdf` from its driver `driver` (`drivers/<driver>/unbind`): its netdev
    /// goes away, wherever it is.
    fn unbind_vf(&self, bdf: &PciAddress, driver: &str) -> HostResult<()>;

    /// Binds the unbound VF at `bdf` to `driver` (`drivers/<driver>/bind`): the driver reads what
    /// the PF holds for the VF (mlx5: its GUIDs) as it probes, and makes a new netdev.
    fn bind_vf(&self, bdf: &PciAddress, driver: &str) -> HostResult<()>;

    /// The VF at `bdf` once it has a netdev in the host, looking again until `timeout` has
    /// passed; `None` when none appeared by then.
    fn wait_vf_netdev(
        &self,
        bdf: &PciAddress,
        timeout: std::time::Duration,
    ) -> HostResult<Option<VfDevice>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let dev = self.vf_device(bdf)?;
            if dev.netdev.is_some() {
                return Ok(Some(dev));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// One row of the PF's VF table.
    fn vf_row(&self, pf: &str, vf: u32) -> HostResult<VfInfo>;

    /// One VF setting through the PF.
    fn set_vf(&self, pf: &str, vf: u32, setting: VfSetting) -> HostResult<()>;

    /// The P_Key table of an InfiniBand VF's port (`infiniband/<dev>/ports/1/pkeys/*`, which
    /// the subnet manager fills), unused (zero) entries left out; empty when it has none.
    fn vf_pkeys(&self, bdf: &PciAddress) -> HostResult<Vec<u16>>;

    /// A link by name; `None` when missing (a missing pod netns is an error of kind `NoNetns`).
    fn link(&self, ns: Ns<'_>, name: &str) -> HostResult<Option<LinkState>>;

    /// Creates a macvlan/ipvlan child of host link `master` (as [`Host::link`] found it)
    /// directly in `pod`, named `name`.
    fn create_child(
        &self,
        master: &LinkState,
        kind: &VirtKind,
        pod: &Path,
        name: &str,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
    ) -> HostResult<()>;

    /// Moves host link `name` into `pod` and renames it `new_name`, in one request.
    fn move_to_pod(&self, name: &str, pod: &Path, new_name: &str) -> HostResult<()>;

    /// Takes pod link `name` down, renames it `new_name` and moves it back to the host.
    fn move_to_host(&self, pod: &Path, name: &str, new_name: &str) -> HostResult<()>;

    /// Renames, sets MAC/MTU on a link in `ns` (down first; left down).
    fn reset_link(
        &self,
        ns: Ns<'_>,
        name: &str,
        new_name: Option<&str>,
        mac: Option<MacAddr>,
        mtu: Option<u32>,
    ) -> HostResult<()>;

    /// Configures a pod interface: sysctls, MTU, MAC, addresses, up, routes. Returns the link
    /// as configured.
    fn configure(&self, pod: &Path, name: &str, conf: &PodIfConfig) -> HostResult<LinkState>;

    /// Deletes a link; `false` when it was not there (or the namespace is gone).
    fn delete_link(&self, ns: Ns<'_>, name: &str) -> HostResult<bool>;

    /// The addresses on a link.
    fn addresses(&self, ns: Ns<'_>, name: &str) -> HostResult<Vec<Cidr>>;

    /// Destinations of the routes through a link (main table).
    fn routes(&self, ns: Ns<'_>, name: &str) -> HostResult<Vec<Cidr>>;

    /// Turns on `l2-fwd-offload` on NIC `master` when it has it; true when it is on.
    fn l2_fwd_offload(&self, master: &str) -> HostResult<bool>;

    /// True when the namespace file opens.
    fn netns_exists(&self, pod: &Path) -> bool;

    /// The RDMA device of VF `vf` in the host: the one under its PCI function
    /// (`infiniband/`), else one bound to its netdev (a soft-RoCE device); `None` when it has
    /// none.
    fn rdma_device(&self, vf: &VfDevice) -> HostResult<Option<String>>;

    /// The kernel's RDMA network-namespace mode; `None` without an RDMA subsystem.
    fn rdma_netns_mode(&self) -> HostResult<Option<nic::rdma::NetnsMode>>;

    /// Moves RDMA device `name` from the host into `pod`.
    fn rdma_to_pod(&self, name: &str, pod: &Path) -> HostResult<()>;

    /// Moves RDMA device `name` from `pod` back to the host; `false` when it is not in `pod`.
    fn rdma_to_host(&self, pod: &Path, name: &str) -> HostResult<bool>;
}

/// Where files the plugin reads live (overridable for tests).
#[derive(Clone, Debug)]
pub struct Paths {
    /// The file whose presence says the node's VFs are configured.
    pub ready_file: PathBuf,
    /// The directories a `runtimeConfig.CNIDeviceInfoFile` may be in ([`crate::devinfo::dirs`]).
    pub devinfo_dirs: Vec<PathBuf>,
}
