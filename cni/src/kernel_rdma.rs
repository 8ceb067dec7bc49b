//! The RDMA part of [`crate::kernel::KernelHost`]: the VF's RDMA device from sysfs, the
//! kernel's RDMA netns mode and moving a device between namespaces over RDMA netlink
//! (`nic::rdma`).
//!
//! An RDMA device is moved by a request sent from the namespace it is in (the kernel refuses
//! one from anywhere else): into a pod from the host, back from inside the pod.

use std::{fs::File, os::fd::AsFd, path::Path};

use nic::{
    netns::{NetnsRef, run_in_netns_here},
    rdma::{self, NetnsMode, RdmaError, RdmaNetlink},
    sysfs::SysFs,
};

use crate::host::{HostError, HostErrorKind, HostResult, VfDevice};

fn rdma_err(e: RdmaError) -> HostError {
    let kind = match (&e, e.errno()) {
        (RdmaError::NoDevice(_), _) | (_, Some(nix::libc::ENODEV)) => HostErrorKind::NoLink,
        (_, Some(nix::libc::EOPNOTSUPP)) => HostErrorKind::Unsupported,
        _ => HostErrorKind::Other,
    };
    HostError::new(kind, e.to_string())
}

/// The RDMA device under the VF's PCI function, else the one bound to its netdev (soft-RoCE:
/// an `rxe` device is no PCI child of the VF).
pub fn device(sysfs: &SysFs, vf: &VfDevice) -> Option<String> {
    rdma::pci_rdma_device(sysfs, &vf.bdf).or_else(|| {
        vf.netdev
            .as_deref()
            .and_then(|n| rdma::netdev_rdma_device(sysfs, n))
    })
}

/// The kernel's mode; `None` when there is no RDMA netlink (no `ib_core`).
pub fn netns_mode() -> HostResult<Option<NetnsMode>> {
    match RdmaNetlink::connect() {
        Err(RdmaError::Socket(_)) => Ok(None),
        Err(e) => Err(rdma_err(e)),
        Ok(mut nl) => nl.netns_mode().map(Some).map_err(rdma_err),
    }
}

/// Moves `name` from this (the host's) namespace into `pod`.
pub fn to_pod(name: &str, pod: &Path) -> HostResult<()> {
    let ns = File::open(pod).map_err(|e| {
        HostError::new(
            HostErrorKind::NoNetns,
            format!("cannot open network namespace {}: {e}", pod.display()),
        )
    })?;
    let mut nl = RdmaNetlink::connect().map_err(rdma_err)?;
    nl.move_to_netns(name, ns.as_fd()).map_err(rdma_err)
}

/// Moves `name` from `pod` back into this (the host's) namespace; `false` when it is not in
/// `pod`.
pub fn to_host(pod: &Path, name: &str) -> HostResult<bool> {
    let home = File::open("/proc/thread-self/ns/net")
        .map_err(|e| HostError::other(format!("cannot open this network namespace: {e}")))?;
    let moved = run_in_netns_here(&NetnsRef::path(pod), || {
        let mut nl = RdmaNetlink::connect()?;
        nl.move_to_netns(name, home.as_fd())
    })
    .map_err(|e| HostError::new(HostErrorKind::NoNetns, e.to_string()))?;
    match moved {
        Ok(()) => Ok(true),
        Err(RdmaError::NoDevice(_)) => Ok(false),
        Err(e) => Err(rdma_err(e)),
    }
}
