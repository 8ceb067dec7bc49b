//! `sriov_drivers_autoprobe`: whether the kernel binds a driver to VFs as it creates them.

use std::path::PathBuf;

use super::{SriovError, blocking, device_dir, read_total};
use crate::pci::PciAddress;
use crate::sysfs::SysFs;

/// Requests about `sriov_drivers_autoprobe` of one PF: whether new VFs are bound to a driver
/// by the kernel as they are created.
#[derive(Clone, Debug)]
pub struct AutoprobeHandle {
    pub(super) sysfs: SysFs,
    pub(super) pf: PciAddress,
}

impl AutoprobeHandle {
    fn path(&self) -> Result<PathBuf, SriovError> {
        let dir = device_dir(&self.sysfs, self.pf)?;
        let path = dir.join("sriov_drivers_autoprobe");
        if !self.sysfs.exists(&path) {
            read_total(&self.sysfs, self.pf, &dir)?;
        }
        Ok(path)
    }

    /// `cat /sys/bus/pci/devices/$PF/sriov_drivers_autoprobe`.
    pub fn get(&self) -> Result<bool, SriovError> {
        let path = self.path()?;
        Ok(self.sysfs.read_number::<u8>(&path)? != 0)
    }

    /// `echo 0|1 > /sys/bus/pci/devices/$PF/sriov_drivers_autoprobe` (takes effect for VFs
    /// created afterwards).
    pub fn set(&self, on: bool) -> Result<(), SriovError> {
        let path = self.path()?;
        self.sysfs.write(&path, u8::from(on))?;
        Ok(())
    }

    /// [`AutoprobeHandle::get`] off the async runtime.
    pub async fn get_async(self) -> Result<bool, SriovError> {
        blocking(move || self.get()).await
    }

    /// [`AutoprobeHandle::set`] off the async runtime.
    pub async fn set_async(self, on: bool) -> Result<(), SriovError> {
        blocking(move || self.set(on)).await
    }
}
