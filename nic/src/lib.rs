//! Host NIC access for every smartnic-operator component.
//!
//! One layer reads and changes the kernel state that the agent, the device plugin and the CNI plugin
//! share, each through a seam that tests can replace:
//!
//! ```text
//!   sysfs ──── SysFs { root }      PCI functions, SR-IOV (sriov_numvfs), drivers, representors
//!   rtnetlink ─ trait Netlink      links (veth, macvlan, ipvlan, vlan), VF settings, addresses, routes
//!   netns ───── trait Host         one handle per network namespace: RealHost (a thread per
//!                                  namespace) and FakeHost (views of one in-memory fake)
//!   devlink ─── trait Devlink      eswitch mode, ports, port functions, rates, dev info
//!   ethtool ─── trait Ethtool      offload features (hw-tc-offload, ...)
//!   uevents ─── trait Uevents      kernel uevents: PCI add/remove/bind/unbind, net add/remove
//!   rdma ────── RdmaNetlink        RDMA netns mode, moving an RDMA device to a namespace
//! ```

pub mod devlink;
pub mod discovery;
pub mod ethtool;
#[cfg(any(test, feature = "test-util"))]
pub mod fixtures;
#[cfg(any(test, feature = "test-util"))]
pub mod fuzz;
pub mod host;
pub mod netlink;
pub mod netns;
pub mod pci;
pub mod rdma;
pub mod representor;
pub mod sriov;
pub mod switchdev;
pub mod sysfs;
pub mod uevent;
