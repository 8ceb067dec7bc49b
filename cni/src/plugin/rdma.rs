//! RDMA isolation in `mode: sriov`. On a node whose `rdmaMode` is `exclusive` (the agent says
//! so in the node's device-plugin file, `rdmaExclusive`), the VF's RDMA device goes into the pod
//! with the VF: in the kernel's exclusive mode an RDMA device stays in the namespace it is in
//! when its netdev moves, so without this the pod would have a VF netdev and no RDMA device.
//!
//! ```text
//!   ADD  ... vf-configure ─► rdma-move (RDMA netlink, from the host) ─► vf-move ─► ...
//!   DEL  the RDMA device back to the host (from inside the pod's namespace) ─► the netdev back ─► ...
//! ```
//!
//! The kernel must be in exclusive mode (`rdma system set netns exclusive`): an ADD of a VF with
//! an RDMA device is refused otherwise, since the pod would share every RDMA device of the node.
//! A DEL after the pod's namespace is gone has nothing to move: the kernel returns the RDMA
//! devices of a destroyed namespace to the initial one. On a node whose `rdmaMode` is `shared` or
//! unset nothing is moved: every pod sees every RDMA device (what shared mode is).

use std::path::Path;

use crds::device_plugin::DevicePluginConfig;
use nic::rdma::NetnsMode;

use super::Plugin;
use crate::{
    error::{CniError, code},
    host::{Host, VfDevice},
    store::{Journal, Step},
    switch::Switch,
};

impl<H: Host, S: Switch> Plugin<H, S> {
    /// Whether the node's device-plugin file says its `rdmaMode` is exclusive. A file that
    /// cannot be read says nothing (the ADD of a VF was already refused without one).
    fn node_rdma_exclusive(&self) -> bool {
        std::fs::read(&self.paths.ready_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<DevicePluginConfig>(&b).ok())
            .is_some_and(|c| c.rdma_exclusive)
    }

    /// Moves VF `dev`'s RDMA device into `netns` when the node is RDMA-exclusive (journaled
    /// first).
    pub(super) fn rdma_add(
        &self,
        dev: &VfDevice,
        netns: &Path,
        journal: &mut Journal,
    ) -> Result<(), CniError> {
        if !self.node_rdma_exclusive() {
            return Ok(());
        }
        let Some(device) = self.host.rdma_device(dev)? else {
            return Ok(());
        };
        match self.host.rdma_netns_mode()? {
            Some(NetnsMode::Exclusive) => {}
            other => {
                let now =
                    other.map_or_else(|| "absent (no RDMA core)".to_owned(), |m| m.to_string());
                return Err(CniError::new(
                    code::HOST,
                    format!(
                        "VF {} has RDMA device {device} and this node's rdmaMode is exclusive, but the \
                         kernel's RDMA netns mode is {now} (`rdma system show netns`): the pod would share \
                         every RDMA device of the node. Set it with `rdma system set netns exclusive` \
                         while no other network namespace exists, or boot with ib_core netns_mode=0",
                        dev.bdf
                    ),
                ));
            }
        }
        journal.record(&Step::RdmaMove {
            device: device.clone(),
        })?;
        self.host.rdma_to_pod(&device, netns).map_err(|e| {
            CniError::new(
                code::HOST,
                format!(
                    "VF {}: cannot move RDMA device {device} into the pod: {}",
                    dev.bdf, e.msg
                ),
            )
        })
    }

    /// Brings RDMA device `device` back from `netns` to the host. Nothing to do when the
    /// namespace is gone (the kernel has returned it) or the device is not there (never moved,
    /// or back already).
    pub(super) fn rdma_release(&self, device: &str, netns: Option<&Path>) -> Result<(), CniError> {
        let Some(ns) = netns.filter(|ns| self.host.netns_exists(ns)) else {
            return Ok(());
        };
        let back = self.host.rdma_to_host(ns, device)?;
        tracing::info!(rdma = device, moved = back, "RDMA device back in the host");
        Ok(())
    }
}
