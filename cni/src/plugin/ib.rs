//! Mode ib: the rebind that hands a VF the GUID just set through the PF. mlx5 reads a VF's node
//! and port GUIDs when the VF's driver probes, so a GUID set on a bound VF reaches its IPoIB
//! netdev only after the VF is unbound and bound again (NVIDIA's order, which the agent follows
//! too: GUIDs through the PF, then rebind).
//!
//! ```text
//!   ADD  ... vf-configure (GUIDs) ─► vf-rebind (unbind) ─► vf-bind (bind, wait for the netdev) ─► vf-move ...
//!   DEL  ... the netdev back, the VF's own GUIDs back ─► bound if it is not ─► unbind, bind ─►
//!        wait for the netdev ─► its saved name back
//! ```
//!
//! A GUID the VF has already is not set again and the VF is not rebound. A VF on a userspace
//! driver (vfio-pci) has no netdev to refresh: its guest's driver reads the GUIDs when it probes.

use nic::pci::PciAddress;

use super::{NETDEV_RETURN_WAIT, Plugin};
use crate::{
    config::NetConf,
    error::{CniError, code},
    host::{Host, Ns, VfDevice},
    store::{Journal, SavedVf, Step},
    switch::Switch,
};

impl<H: Host, S: Switch> Plugin<H, S> {
    /// Whether the GUID the pod gets differs from the node or port GUID the VF has now, on a VF
    /// bound to a kernel driver (the only case a rebind is for).
    pub(super) fn ib_guid_changes(&self, conf: &NetConf, dev: &VfDevice) -> Result<bool, CniError> {
        let (Some(guid), Some(_)) = (conf.ib_guid, &dev.driver) else {
            return Ok(false);
        };
        if dev.is_userspace() {
            return Ok(false);
        }
        let row = self.host.vf_row(&dev.pf, dev.index)?;
        Ok(row.node_guid != Some(guid) || row.port_guid != Some(guid))
    }

    /// Unbinds VF `dev` from its driver and binds it again (journaled before each), then waits
    /// for its new netdev: the VF as it is now, with that netdev's (maybe new) name.
    pub(super) fn ib_rebind(
        &self,
        dev: VfDevice,
        journal: &mut Journal,
    ) -> Result<VfDevice, CniError> {
        let Some(driver) = dev.driver.clone() else {
            return Ok(dev);
        };
        journal.record(&Step::VfRebind {
            driver: driver.clone(),
        })?;
        self.host.unbind_vf(&dev.bdf, &driver)?;
        journal.record(&Step::VfBind)?;
        self.host.bind_vf(&dev.bdf, &driver)?;
        self.host
            .wait_vf_netdev(&dev.bdf, NETDEV_RETURN_WAIT)?
            .ok_or_else(|| {
                CniError::new(
                    code::HOST,
                    format!(
                        "VF {} of {} ({}): no netdev appeared within {}s after it was rebound to {driver} \
                         to take its new GUID",
                        dev.index,
                        dev.pf,
                        dev.bdf,
                        NETDEV_RETURN_WAIT.as_secs()
                    ),
                )
            })
    }

    /// DEL of an attachment whose ADD rebound the VF (or may have): with its own GUIDs back
    /// through the PF, the VF is bound to `driver` again if a crash left it unbound, rebound so
    /// it reads them, and its new netdev gets its saved name and MTU back.
    pub(super) fn ib_rebind_release(
        &self,
        addr: &PciAddress,
        driver: &str,
        saved: &SavedVf,
    ) -> Result<(), CniError> {
        let dev = self.host.vf_device(addr)?;
        if let Some(bound) = &dev.driver {
            self.host.unbind_vf(addr, bound)?;
        }
        self.host.bind_vf(addr, driver)?;
        let Some(dev) = self.host.wait_vf_netdev(addr, NETDEV_RETURN_WAIT)? else {
            return Err(CniError::new(
                code::TRY_AGAIN,
                format!(
                    "VF {} of {} ({addr}): no netdev appeared within {}s after it was rebound to \
                     {driver} with its own GUID; the VF stays reserved, DEL again",
                    dev.index,
                    dev.pf,
                    NETDEV_RETURN_WAIT.as_secs()
                ),
            ));
        };
        let current = dev.netdev.unwrap_or_default();
        let want = saved.netdev.as_deref().unwrap_or(&current);
        let rename = (current != want).then_some(want);
        self.reset_vf_netdev(Ns::Host, &current, rename, None, saved.netdev_mtu)
    }
}
